// C++ harness for the CPU kernels: no Node. Checks every kernel against a float64 reference
// written here, over a grid of shapes (awkward ones included) and all dtypes, plus the
// -inf / NaN cases. Built by CMake (target gvpo_test_cpu), also with ASan+UBSan
// (scripts/test-asan.sh). Exit code 0 = all passed. Run it once per GVPO_SIMD value to cover
// every instruction set the machine has.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "../kernels.h"
#include "check.h"
#include "reference.h"

using namespace gvpo;

static bool close(double got, double want, double atol, double rtol) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  return std::fabs(got - want) <= atol + rtol * std::fabs(want);
}

static void check_shape(std::mt19937& rng, int64_t R, int64_t V, DType d, float tau, int threads,
                        bool masked) {
  Logits L = random_logits(rng, R, V, d, 3.0f);
  std::vector<int32_t> y(R);
  std::vector<float> mask(R), g(R);
  std::uniform_int_distribution<int32_t> tok(0, (int32_t)V - 1);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int64_t r = 0; r < R; r++) {
    y[r] = tok(rng);
    mask[r] = masked ? (float)(rng() % 3 != 0) : 1.0f;
    g[r] = mask[r] * u(rng);
  }
  std::vector<float> lp(R), lz(R), grad((size_t)(R * V));
  token_logprobs_forward_cpu(lp.data(), lz.data(), L.data(), d, y.data(), mask.data(), R, V, tau,
                             threads);
  std::vector<double> rlp(R), rlz(R), rgrad((size_t)(R * V));
  ref_token_logprobs(rlp.data(), rlz.data(), L.f64.data(), y.data(), mask.data(), R, V, tau);
  for (int64_t r = 0; r < R; r++) {
    CHECK(close(lp[r], rlp[r], 1e-5 * (1 + std::fabs(rlz[r])), 1e-5),
          "logprob R=%lld V=%lld dtype=%d r=%lld got %.8g want %.8g", (long long)R, (long long)V,
          (int)d, (long long)r, lp[r], rlp[r]);
    CHECK(close(lz[r], rlz[r], 1e-5, 1e-5), "logZ r=%lld got %.8g want %.8g", (long long)r, lz[r],
          rlz[r]);
  }
  token_logprobs_backward_cpu(grad.data(), L.data(), d, y.data(), lz.data(), g.data(), R, V, tau,
                              threads);
  ref_token_logprobs_backward(rgrad.data(), L.f64.data(), y.data(), g.data(), R, V, tau);
  double err = 0, norm = 0;
  for (size_t i = 0; i < grad.size(); i++) {
    err += (grad[i] - rgrad[i]) * (grad[i] - rgrad[i]);
    norm += rgrad[i] * rgrad[i];
  }
  CHECK(std::sqrt(err) <= 1e-5 * std::sqrt(norm) + 1e-7, "grad R=%lld V=%lld rel err %.3g",
        (long long)R, (long long)V, std::sqrt(err / (norm + 1e-300)));
  // In place (f32 only): the same numbers written over the logits.
  if (d == DType::f32) {
    std::vector<float> z = L.f32;
    token_logprobs_backward_cpu(z.data(), z.data(), d, y.data(), lz.data(), g.data(), R, V, tau,
                                threads);
    CHECK(std::memcmp(z.data(), grad.data(), z.size() * 4) == 0, "in-place differs R=%lld V=%lld",
          (long long)R, (long long)V);
  }
}

static void check_nonfinite() {
  // Row 0: one -inf logit (finite row). Row 1: all -inf. Row 2: a NaN. Row 3: fine.
  const int64_t V = 37;
  std::vector<float> z(4 * V);
  for (int64_t i = 0; i < 4 * V; i++) z[i] = 0.01f * (float)(i % 13);
  z[0 * V + 5] = -INFINITY;
  for (int64_t v = 0; v < V; v++) z[1 * V + v] = -INFINITY;
  z[2 * V + 3] = NAN;
  int32_t y[4] = {1, 0, 2, 4};
  float lp[4], lz[4];
  int64_t bad = token_logprobs_forward_cpu(lp, lz, z.data(), DType::f32, y, nullptr, 4, V, 1.0f, 1);
  CHECK(bad == 2, "nonfinite rows %lld", (long long)bad);
  CHECK(std::isfinite(lp[0]) && std::isfinite(lp[3]), "finite rows got NaN");
  CHECK(std::isnan(lp[1]) && std::isnan(lp[2]), "nonfinite rows not NaN");
  float g[4] = {1, 1, 1, 1};
  std::vector<float> grad(4 * V);
  token_logprobs_backward_cpu(grad.data(), z.data(), DType::f32, y, lz, g, 4, V, 1.0f, 1);
  CHECK(grad[0 * V + 5] == 0.0f, "-inf logit grad %g", grad[5]);
  CHECK(std::isnan(grad[1 * V]) && std::isnan(grad[2 * V]), "NaN rows grad not NaN");
  for (int64_t v = 0; v < V; v++) CHECK(std::isfinite(grad[3 * V + v]), "row 3 grad");
}

static void check_loss(std::mt19937& rng) {
  // Ragged groups including size 1; compare with the double reference in reference.h.
  std::vector<int32_t> off = {0, 3, 4, 9, 11};
  int64_t G = 4, N = 11;
  std::normal_distribution<double> nd;
  std::vector<double> S(N), Q(N), R(N), gs(N), c(N), rgs(N), rc(N);
  for (int64_t n = 0; n < N; n++) {
    S[n] = nd(rng) * 5;
    Q[n] = S[n] + nd(rng);
    R[n] = nd(rng);
  }
  for (int mean = 0; mean < 2; mean++) {
    GvpoTerms t = gvpo_loss_cpu(gs.data(), c.data(), S.data(), Q.data(), R.data(), off.data(), G,
                                0.1, mean);
    double rl = ref_gvpo_loss(rgs.data(), rc.data(), S.data(), Q.data(), R.data(), off.data(), G,
                              0.1, mean);
    CHECK(close(t.loss, rl, 1e-12, 1e-10), "loss %g vs %g", t.loss, rl);
    CHECK(close(t.advantage + t.trust_region + t.variance + t.constant, t.loss, 1e-12, 1e-9),
          "terms do not sum to loss");
    for (int64_t n = 0; n < N; n++) CHECK(close(gs[n], rgs[n], 1e-12, 1e-10), "dL/dS n=%lld", (long long)n);
    CHECK(gs[3] == 0.0 && c[3] == 0.0, "size-1 group not zero");
  }
}

int main() {
  std::mt19937 rng(1234);
  std::printf("simd=%s threads=%d\n", cpu_simd_level(), cpu_default_threads());
  const int64_t shapes[][2] = {{1, 1},    {1, 2},   {3, 7},    {5, 123},  {7, 16},
                               {2, 4095}, {4, 4097}, {9, 2048}, {64, 1000}, {3, 32768}};
  for (auto& s : shapes)
    for (int d = 0; d < 3; d++)
      for (int threads : {1, 3}) {
        check_shape(rng, s[0], s[1], (DType)d, 1.0f, threads, false);
        check_shape(rng, s[0], s[1], (DType)d, 0.7f, threads, true);
      }
  check_nonfinite();
  check_loss(rng);
  std::printf("%d checks, %d failures\n", checks, failures);
  std::printf("%d passed, %d failed\n", checks - failures, failures);
  return failures ? 1 : 0;
}
