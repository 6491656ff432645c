// The logits kernels' error budget, for bench/NOTES.md: the largest error the row kernels (their
// exp, the one-pass sum, the gradient) put into l, logZ and dL/dz against float64, per dtype, on
// logits of a few shapes: spread (Gaussian), with a dominant target late in the row (the
// reference has to move, and 1 - p cancels), and two-token rows.
//   gvpo_error_budget            (GVPO_SIMD=avx2|sse2 for the other instruction sets)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "../kernels.h"
#include "reference.h"

using namespace gvpo;

namespace {

void set(Logits& L, size_t i, float x) {
  if (L.dtype == DType::f32) {
    L.f32[i] = x;
    L.f64[i] = x;
  } else if (L.dtype == DType::bf16) {
    L.h16[i] = f32_to_bf16(x);
    L.f64[i] = bf16_to_f32(L.h16[i]);
  } else {
    L.h16[i] = f32_to_f16(x);
    L.f64[i] = f16_to_f64(L.h16[i]);
  }
}

struct Case {
  const char* name;
  float scale;  // logits ~ N(0, scale)
  int64_t V;
  float tau;
  bool peaked;  // the target 12..22 above the rest, in the last quarter of the row
};

}  // namespace

int main() {
  std::mt19937 rng(42);
  const Case cases[] = {
      {"N(0, 3), V = 32768", 3, 32768, 1, false}, {"N(0, 3), V = 32768, tau = 0.7", 3, 32768, 0.7f, false},
      {"N(0, 1), V = 1000", 1, 1000, 1, false},   {"N(0, 10), V = 4097", 10, 4097, 1, false},
      {"peaked, V = 32768", 3, 32768, 1, true},   {"peaked, V = 50", 3, 50, 1, true},
      {"V = 2, tau = 0.7", 3, 2, 0.7f, false}};
  std::printf(
      "simd=%s: max over rows of |dl|, |dl|/|l|, |d logZ|, the row's relative L2 error of dL/dz, and of the target's "
      "element\n",
      cpu_simd_level());
  std::printf(
      "| logits | dtype | abs l | rel l | abs logZ | rel L2 dL/dz | rel target dL/dz |\n| --- | --- | --- | --- | --- "
      "| --- | --- |\n");
  const char* dn[] = {"float32", "bfloat16", "float16"};
  for (const Case& c : cases)
    for (int d = 0; d < 3; d++) {
      const int64_t R = c.V > 10000 ? 48 : 1200, V = c.V;
      Logits L = random_logits(rng, R, V, (DType)d, c.scale);
      std::vector<int32_t> y(R);
      std::vector<float> g(R, 1.0f), lp(R), lz(R), rm(R), rl(R), grad((size_t)(R * V));
      for (int64_t r = 0; r < R; r++) {
        y[r] = (int32_t)(rng() % V);
        if (c.peaked) {
          y[r] = (int32_t)(V - 1 - rng() % (V / 4 + 1));
          set(L, (size_t)(r * V + y[r]), 12.0f + (float)(rng() % 100) / 10.0f);
        }
      }
      token_logprobs_forward_cpu(lp.data(), lz.data(), rm.data(), rl.data(), L.data(), (DType)d, y.data(), nullptr, R,
                                 V, c.tau, 1);
      token_logprobs_backward_cpu(grad.data(), L.data(), (DType)d, y.data(), nullptr, rm.data(), rl.data(), g.data(), R,
                                  V, c.tau, 1);
      std::vector<double> rlp(R), rlz(R), rg((size_t)(R * V));
      ref_token_logprobs(rlp.data(), rlz.data(), L.f64.data(), y.data(), nullptr, R, V, c.tau);
      ref_token_logprobs_backward(rg.data(), L.f64.data(), y.data(), g.data(), R, V, c.tau);
      double el = 0, erl = 0, ez = 0, eg = 0, et = 0;
      for (int64_t r = 0; r < R; r++) {
        el = std::max(el, std::fabs(lp[r] - rlp[r]));
        erl = std::max(erl, std::fabs(lp[r] - rlp[r]) / std::max(std::fabs(rlp[r]), 1e-300));
        ez = std::max(ez, std::fabs(lz[r] - rlz[r]));
        double e2 = 0, n2 = 0;
        for (int64_t v = 0; v < V; v++) {
          const double e = grad[r * V + v] - rg[r * V + v];
          e2 += e * e, n2 += rg[r * V + v] * rg[r * V + v];
        }
        eg = std::max(eg, std::sqrt(e2 / std::max(n2, 1e-300)));
        et = std::max(et,
                      std::fabs(grad[r * V + y[r]] - rg[r * V + y[r]]) / std::max(std::fabs(rg[r * V + y[r]]), 1e-300));
      }
      std::printf("| %s | %s | %.1e | %.1e | %.1e | %.1e | %.1e |\n", c.name, dn[d], el, erl, ez, eg, et);
    }
  return 0;
}
