// C++ harness for the CPU kernels: no Node. Checks every kernel against a float64 reference
// written here, over a grid of shapes (awkward ones included) and all dtypes, plus the
// -inf / NaN cases. Built by CMake (target gvpo_test_cpu), also with ASan+UBSan
// (scripts/test-asan.sh). Exit code 0 = all passed. Run it once per GVPO_SIMD value to cover
// every instruction set the machine has.
#include <algorithm>
#include <cfloat>
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

static void check_shape(std::mt19937& rng, int64_t R, int64_t V, DType d, float tau, int threads, bool masked) {
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
  std::vector<float> lp(R), lz(R), rm(R), rl(R), grad((size_t)(R * V)), grad2((size_t)(R * V));
  token_logprobs_forward_cpu(lp.data(), lz.data(), rm.data(), rl.data(), L.data(), d, y.data(), mask.data(), R, V, tau,
                             threads);
  std::vector<double> rlp(R), rlz(R), rgrad((size_t)(R * V));
  ref_token_logprobs(rlp.data(), rlz.data(), L.f64.data(), y.data(), mask.data(), R, V, tau);
  for (int64_t r = 0; r < R; r++) {
    CHECK(lp[r] <= 0.0f, "positive logprob %.8g R=%lld V=%lld r=%lld", lp[r], (long long)R, (long long)V, (long long)r);
    CHECK(close(lp[r], rlp[r], 1e-5 * (1 + std::fabs(rlz[r])), 1e-5),
          "logprob R=%lld V=%lld dtype=%d r=%lld got %.8g want %.8g", (long long)R, (long long)V, (int)d, (long long)r,
          lp[r], rlp[r]);
    CHECK(close(lz[r], rlz[r], 1e-5, 1e-5), "logZ r=%lld got %.8g want %.8g", (long long)r, lz[r], rlz[r]);
  }
  // Both forms of the backward: from logZ, and from the row's (max, lse).
  token_logprobs_backward_cpu(grad.data(), L.data(), d, y.data(), mask.data(), nullptr, lz.data(), g.data(), R, V, tau,
                              threads);
  token_logprobs_backward_cpu(grad2.data(), L.data(), d, y.data(), mask.data(), rm.data(), rl.data(), g.data(), R, V,
                              tau, threads);
  ref_token_logprobs_backward(rgrad.data(), L.f64.data(), y.data(), g.data(), R, V, tau);
  if (V == 1) std::fill(rgrad.begin(), rgrad.end(), 0.0);  // l = 0 exactly: no gradient
  for (const std::vector<float>* gv : {&grad, &grad2}) {
    double err = 0, norm = 0;
    for (size_t i = 0; i < gv->size(); i++) {
      err += ((*gv)[i] - rgrad[i]) * ((*gv)[i] - rgrad[i]);
      norm += rgrad[i] * rgrad[i];
    }
    CHECK(std::sqrt(err) <= 1e-5 * std::sqrt(norm) + 1e-7, "grad R=%lld V=%lld rel err %.3g", (long long)R,
          (long long)V, std::sqrt(err / (norm + 1e-300)));
  }
  // In place (f32 only): the same numbers written over the logits.
  if (d == DType::f32) {
    std::vector<float> z = L.f32;
    token_logprobs_backward_cpu(z.data(), z.data(), d, y.data(), mask.data(), nullptr, lz.data(), g.data(), R, V, tau,
                                threads);
    CHECK(std::memcmp(z.data(), grad.data(), z.size() * 4) == 0, "in-place differs R=%lld V=%lld", (long long)R,
          (long long)V);
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
  int64_t bad = token_logprobs_forward_cpu(lp, lz, nullptr, nullptr, z.data(), DType::f32, y, nullptr, 4, V, 1.0f, 1);
  CHECK(bad == 2, "nonfinite rows %lld", (long long)bad);
  CHECK(std::isfinite(lp[0]) && std::isfinite(lp[3]), "finite rows got NaN");
  CHECK(std::isnan(lp[1]) && std::isnan(lp[2]), "nonfinite rows not NaN");
  float g[4] = {1, 1, 1, 1};
  std::vector<float> grad(4 * V);
  token_logprobs_backward_cpu(grad.data(), z.data(), DType::f32, y, nullptr, nullptr, lz, g, 4, V, 1.0f, 1);
  CHECK(grad[0 * V + 5] == 0.0f, "-inf logit grad %g", grad[5]);
  CHECK(std::isnan(grad[1 * V]) && std::isnan(grad[2 * V]), "NaN rows grad not NaN");
  for (int64_t v = 0; v < V; v++) CHECK(std::isfinite(grad[3 * V + v]), "row 3 grad");
}

// The forward's one pass takes a reference from the row's first block and raises it block by
// block: rows whose max comes late (far above the first block: that block is summed again; a
// little above: rescaled), a ramp that raises it in every block, a NaN among the -inf of a
// first block, and a temperature so small that log2(e)/tau is not finite (the two-pass path).
static void check_reference_moves() {
  const int64_t V = 9000;
  std::vector<std::vector<float>> rows;
  std::vector<float> base(V);
  for (int64_t v = 0; v < V; v++) base[v] = 0.001f * (float)((v * 7919) % 1000);
  for (float jump : {40.0f, 0.6f, 0.05f}) {  // the max in the last block, jump above the rest
    std::vector<float> z = base;
    z[V - 3] = 1.0f + jump;
    rows.push_back(z);
  }
  {
    std::vector<float> z(V);  // a ramp: every block's max passes the previous one
    for (int64_t v = 0; v < V; v++) z[v] = 0.01f * (float)v;
    rows.push_back(z);
  }
  for (float tau : {1.0f, 0.05f, 7.0f}) {
    for (const std::vector<float>& z : rows) {
      const int32_t y = (int32_t)(V - 3);
      float lp, lz, m, lse, w = 1.0f;
      token_logprobs_forward_cpu(&lp, &lz, &m, &lse, z.data(), DType::f32, &y, nullptr, 1, V, tau, 1);
      std::vector<double> z64(z.begin(), z.end());
      double rlp, rlz;
      ref_token_logprobs(&rlp, &rlz, z64.data(), &y, nullptr, 1, V, tau);
      const float mx = *std::max_element(z.begin(), z.end());
      CHECK(m == mx, "reference %.9g is not the row max %.9g (tau %g)", m, mx, tau);
      CHECK(close(lp, rlp, 1e-6 * (1 + std::fabs(rlz)), 1e-5) && lp <= 0.0f, "moves: logprob %.9g want %.9g tau %g", lp,
            rlp, tau);
      CHECK(close(lz, rlz, 1e-6, 1e-6), "moves: logZ %.9g want %.9g tau %g", lz, rlz, tau);
      std::vector<float> grad(V);
      std::vector<double> rgrad(V);
      token_logprobs_backward_cpu(grad.data(), z.data(), DType::f32, &y, nullptr, &m, &lse, &w, 1, V, tau, 1);
      ref_token_logprobs_backward(rgrad.data(), z64.data(), &y, &w, 1, V, tau);
      double err = 0, norm = 0;
      for (int64_t v = 0; v < V; v++) err += (grad[v] - rgrad[v]) * (grad[v] - rgrad[v]), norm += rgrad[v] * rgrad[v];
      CHECK(std::sqrt(err) <= 1e-5 * std::sqrt(norm) + 1e-7, "moves: grad rel err %.3g tau %g", std::sqrt(err / norm),
            tau);
    }
  }
  // A NaN among the -inf of the first blocks: the row is NaN (counted), whatever follows.
  for (int d = 0; d < 3; d++) {
    std::vector<float> z(V, -INFINITY);
    z[1500] = NAN;
    for (int64_t v = 5000; v < V; v++) z[v] = 0.5f;
    Logits L{(DType)d, {}, {}, {}};
    if (d == 0) L.f32 = z;
    for (float x : z)
      L.h16.push_back(d == 1 ? f32_to_bf16(x) : (x != x ? (uint16_t)0x7e00 : x < 0 ? (uint16_t)0xfc00 : f32_to_f16(x)));
    const int32_t y = 6000;
    float lp, lz;
    const int64_t bad =
        token_logprobs_forward_cpu(&lp, &lz, nullptr, nullptr, L.data(), (DType)d, &y, nullptr, 1, V, 1.0f, 1);
    CHECK(bad == 1 && std::isnan(lp), "NaN behind -inf: dtype %d got l = %g, %lld bad rows", d, lp, (long long)bad);
  }
  // tau so small that log2(e)/tau overflows float32: l = (z_y - max)/tau - log(1 + ...).
  {
    const std::vector<float> z = {0.1f, 0.2f, 0.3f};
    const float tau = 3e-39f;
    for (int32_t y : {2, 1}) {
      float lp, lz;
      token_logprobs_forward_cpu(&lp, &lz, nullptr, nullptr, z.data(), DType::f32, &y, nullptr, 1, 3, tau, 1);
      const double want = y == 2 ? 0.0 : (double)((0.2f - 0.3f) * (1.0f / tau));
      CHECK(close(lp, want, 1e-6, 1e-6) && std::isfinite(lz), "tau %g y %d: l %.9g want %.9g", tau, y, lp, want);
    }
  }
}

// Logits near -3e38 and +3e38: z - max passes float32's range while l, logZ and the gradient do
// not, at an ordinary temperature (l about -1e38), a large one (the one-pass sweep) and one
// above 1e36 (two passes; there the exponents are not negligible). Against a reference that takes
// z - max in double, float32 and bfloat16 (the values are bfloat16's exactly).
static void check_extreme_logits() {
  const float a = 0x1.8p127f;  // 2.55e38
  const std::vector<float> z = {a, -a, 0.5f * a, -0.75f * a, 0.0f};
  const int64_t V = (int64_t)z.size();
  for (float tau : {1.0f, 7.0f, 1e20f, 1e38f})
    for (int d = 0; d < 2; d++)
      for (int32_t y : {1, 0, 3}) {
        std::vector<uint16_t> h;
        for (float x : z) h.push_back(f32_to_bf16(x));
        const void* data = d == 0 ? (const void*)z.data() : (const void*)h.data();
        float lp, lz, m, lse, g = 1.0f;
        token_logprobs_forward_cpu(&lp, &lz, &m, &lse, data, (DType)d, &y, nullptr, 1, V, tau, 1);
        double S = 0;
        for (float x : z) S += std::exp(((double)x - a) / tau);
        const double rlse = std::log(S), rlp = ((double)z[y] - a) / tau - rlse, rlz = a / (double)tau + rlse;
        CHECK(close(lp, (float)rlp, 1e-6 * (1 + std::fabs(rlp)), 1e-6),  // -inf where l is below float32's range
              "extreme logits, dtype %d tau %g y %d: l %.9g want %.9g", d, tau, y, lp, rlp);
        CHECK(close(lz, rlz, 1e-6 * (1 + std::fabs(rlz)), 1e-6), "extreme logits, dtype %d tau %g: logZ %.9g want %.9g",
              d, tau, lz, rlz);
        std::vector<float> grad(V);
        token_logprobs_backward_cpu(grad.data(), data, (DType)d, &y, nullptr, &m, &lse, &g, 1, V, tau, 1);
        for (int64_t v = 0; v < V; v++) {
          const double want = ((v == y) - std::exp(((double)z[v] - a) / tau - rlse)) / tau;
          CHECK(close(grad[v], want, 1e-6 / tau + 3e-45, 1e-5),
                "extreme logits, dtype %d tau %g y %d: grad[%lld] %.9g want %.9g", d, tau, y, (long long)v, grad[v],
                want);
        }
      }
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
    LossAndTerms t = gvpo_loss_cpu(gs.data(), c.data(), S.data(), Q.data(), R.data(), off.data(), G, 0.1, mean);
    double rl = ref_gvpo_loss(rgs.data(), rc.data(), S.data(), Q.data(), R.data(), off.data(), G, 0.1, mean);
    CHECK(close(t.loss, rl, 1e-12, 1e-10), "loss %g vs %g", t.loss, rl);
    CHECK(close(t.advantage + t.trust_region + t.variance + t.constant, t.loss, 1e-12, 1e-9),
          "terms do not sum to loss");
    for (int64_t n = 0; n < N; n++) CHECK(close(gs[n], rgs[n], 1e-12, 1e-10), "dL/dS n=%lld", (long long)n);
    CHECK(gs[3] == 0.0 && c[3] == 0.0, "size-1 group not zero");
  }
}

// Log-probs are never positive, on every instruction set, where rounding used to make them so:
// one-token rows, a dominant target at a small temperature, temperatures so small that z/tau
// leaves float32's comfortable range, and large logits.
static void check_sign() {
  struct Case {
    std::vector<float> z;
    int32_t y;
    float tau;
    double want;
  };
  const Case cases[] = {
      {{-80.0f}, 0, 0.3f, 0.0},
      {{30000.0f, 0.0f}, 0, 0.3f, 0.0},
      {{-80.0f}, 0, 1e-30f, 0.0},
      {{1.0f, 2.0f, 3.0f}, 2, 1e-30f, 0.0},
      {{1.0f, 2.0f, 3.0f}, 0, 1e-30f, -2e30},
      {{1e4f, -1e4f, 9999.0f}, 0, 1e-6f, -std::log1p(std::exp(-1e6))},
      {{1e4f, -1e4f, 9999.0f}, 2, 1e-6f, -1e6},
      {{80.0f, 80.0f}, 1, 2.7f, -std::log(2.0)},
      // Temperatures so large that (z - m)/tau is below 1e-30 while -inf logits must still give
      // 0: the sweep (log2(e)/tau just above its floor) and the two-pass path (below it; at
      // 1e38 the sweep's AVX2 clamp, -127.25 tau/log2(e), would be -inf).
      {{1.0f, -INFINITY, 1.0f, -INFINITY}, 0, 1e29f, -std::log(2.0)},
      {{1.0f, -INFINITY, 1.0f, -INFINITY}, 2, 1e31f, -std::log(2.0)},
      {{1.0f, -INFINITY, 1.0f, -INFINITY}, 2, 1e38f, -std::log(2.0)},
      // Temperatures so small that log2(e)/tau is near float32's top: the sweep just below
      // MAX_C (AVX2's 8 log2(e)/tau still finite) and the two-pass path above it.
      {{1.0f, -INFINITY, 1.0f, -INFINITY}, 0, 4e-38f, -std::log(2.0)},
      {{1.0f, -INFINITY, 1.0f, -INFINITY}, 2, 2e-38f, -std::log(2.0)},
      {{1.0f, 2.0f, 3.0f}, 1, 4e-38f, -2.5e37},
      {{1.0f, 2.0f, 3.0f}, 1, 2e-38f, -5e37},
  };
  for (const Case& c : cases) {
    const int64_t V = (int64_t)c.z.size();
    float lp, lz, m, lse;
    token_logprobs_forward_cpu(&lp, &lz, &m, &lse, c.z.data(), DType::f32, &c.y, nullptr, 1, V, c.tau, 1);
    CHECK(lp <= 0.0f, "positive logprob %.9g V=%lld tau=%g", lp, (long long)V, c.tau);
    CHECK(close(lp, c.want, 1e-6, 1e-6), "logprob V=%lld tau=%g got %.9g want %.9g", (long long)V, c.tau, lp, c.want);
    // The gradient from the row's own statistics sums to ~0 and is exactly 0 for one token.
    std::vector<float> grad(V);
    float w = 1.0f;
    token_logprobs_backward_cpu(grad.data(), c.z.data(), DType::f32, &c.y, nullptr, &m, &lse, &w, 1, V, c.tau, 1);
    double sum = 0, scale = 0;
    for (float x : grad) sum += x, scale = std::fmax(scale, std::fabs(x));
    CHECK(V > 1 || grad[0] == 0.0f, "one-token gradient %.9g", grad[0]);
    CHECK(std::fabs(sum) <= 1e-5 * scale + 1e-30, "gradient row sum %.3g (scale %.3g)", sum, scale);
    for (float x : grad) CHECK(std::isfinite(x), "non-finite gradient, tau=%g", c.tau);
  }
}

// A masked row's target may hold anything and its gradient is 0; a live row's bad target (the
// callers refuse it first) gives a NaN row and is never used as an index. ASan watches.
static void check_bad_targets() {
  const int64_t V = 4;
  std::vector<float> z = {1, 2, 3, 4, .1f, .2f, .3f, .4f, 5, 6, 7, 8};
  const int32_t y[3] = {-1, 0, 2147483647};
  const float mask[3] = {0, 1, 1};
  float lp[3], lz[3];
  int64_t bad = token_logprobs_forward_cpu(lp, lz, nullptr, nullptr, z.data(), DType::f32, y, mask, 3, V, 1.0f, 1);
  CHECK(bad == 1 && lp[0] == 0.0f && std::isfinite(lp[1]) && std::isnan(lp[2]), "bad targets forward");
  const float w[3] = {1, 1, 1};
  std::vector<float> grad(3 * V, 7.0f);
  token_logprobs_backward_cpu(grad.data(), z.data(), DType::f32, y, mask, nullptr, lz, w, 3, V, 1.0f, 1);
  for (int64_t v = 0; v < V; v++) {
    CHECK(grad[v] == 0.0f, "masked row gradient %g", grad[v]);
    CHECK(std::isnan(grad[2 * V + v]), "bad-target row not NaN");
  }
  double s = 0;
  for (int64_t v = 0; v < V; v++) s += grad[V + v];
  CHECK(std::fabs(s) < 1e-6, "live row gradient sum %g", s);
}

// A coefficient g/tau beyond float32's range (g near its max at tau < 1, or a double dL/dS
// above it) where most elements are not: each element is c * ([v == y] - p) taken in double and
// rounded once, +-inf only where that passes float32's range, never NaN (inf * an underflowed p).
static void check_huge_weights() {
  const int64_t V = 300;
  std::vector<float> z(V);
  for (int64_t v = 0; v < V; v++) z[v] = (float)(v % 7) - 0.5f * (float)v;  // p from ~0.6 down to 0
  const int32_t y = 3;
  const float tau = 0.25f;
  float lp, lz, m, lse;
  token_logprobs_forward_cpu(&lp, &lz, &m, &lse, z.data(), DType::f32, &y, nullptr, 1, V, tau, 1);
  double zmax = -INFINITY, sum = 0;
  for (float x : z) zmax = std::fmax(zmax, (double)x / tau);
  for (float x : z) sum += std::exp((double)x / tau - zmax);
  const double logZ = zmax + std::log(sum);
  for (double g : {1e38, -3e38, 1.2e39, -5e45, 1e300}) {
    const double c = g / tau;
    std::vector<float> grad(V);
    if (g <= FLT_MAX && g >= -FLT_MAX) {
      const float w = (float)g;
      token_logprobs_backward_cpu(grad.data(), z.data(), DType::f32, &y, nullptr, &m, &lse, &w, 1, V, tau, 1);
    } else {
      token_logprobs_backward_cpu(grad.data(), z.data(), DType::f32, &y, nullptr, &m, &lse, &g, 1, V, tau, 1);
    }
    int finite = 0;
    for (int64_t v = 0; v < V; v++) {
      const double p = std::exp((double)z[v] / tau - logZ);
      const double want = (double)(float)(c * ((v == y ? 1.0 : 0.0) - p));
      const double got = grad[v];
      CHECK(!std::isnan(got), "NaN gradient at v=%lld, g=%g", (long long)v, g);
      if (p < 1e-30) continue;  // the float32 exp underflows to 0 there, whatever c is
      if (std::isinf(want)) {
        CHECK(got == want, "v=%lld g=%g: got %.9g want %.9g", (long long)v, g, got, want);
      } else {
        finite++;
        CHECK(close(got, want, 0.0, 1e-4), "v=%lld g=%g: got %.9g want %.9g", (long long)v, g, got, want);
      }
    }
    if (std::fabs(g) < 1e40) CHECK(finite > 10, "g=%g: only %d finite elements were compared", g, finite);
  }
}

// The fused op against its own composition from the reference: S, Sref (three ways), the loss,
// and dL/dz = m * dL/dS / tau * (onehot - softmax).
static void check_fused(std::mt19937& rng, DType d, int ref_kind) {
  const int64_t N = 5, T = 3, V = 37, R = N * T;
  const float tau = 0.8f;
  const double beta = 0.3;
  Logits L = random_logits(rng, R, V, d, 3.0f);
  std::vector<int32_t> y(R), off = {0, 2, 3, 5};
  std::vector<float> mask(R);
  std::vector<double> rtok(R), rseq(N), rew(N);
  std::normal_distribution<double> nd;
  for (int64_t r = 0; r < R; r++) {
    y[r] = (int32_t)(rng() % V);
    mask[r] = r % T == 0 ? 0.0f : (r % 4 == 1 ? 0.5f : 1.0f);
    rtok[r] = -std::fabs(nd(rng));
  }
  for (int64_t n = 0; n < N; n++) rseq[n] = -std::fabs(nd(rng)) * 3, rew[n] = nd(rng);
  GvpoLogitsBatch in{{d, y.data(), mask.data(), ref_kind == 1 ? rtok.data() : nullptr,
                      ref_kind == 2 ? rseq.data() : nullptr, rew.data(), off.data(), 3, N, T, V, tau, beta, true},
                     L.data()};
  std::vector<float> grad(R * V), lp(R), lz(R);
  std::vector<double> S(N), Q(N), gs(N), c(N);
  GvpoFromLogitsOut out{{lp.data(), lz.data(), S.data(), Q.data(), gs.data(), c.data(), 0}, grad.data()};
  LossAndTerms t = gvpo_from_logits_cpu(out, in, 2);
  // reference
  std::vector<double> rlp(R), rlz(R), rS(N, 0), rQ(N, 0), rgs(N), rc(N), rgrad(R * V);
  ref_token_logprobs(rlp.data(), rlz.data(), L.f64.data(), y.data(), mask.data(), R, V, tau);
  for (int64_t r = 0; r < R; r++) rS[r / T] += mask[r] * rlp[r], rQ[r / T] += mask[r] * rtok[r];
  if (ref_kind == 0) rQ = rS;
  if (ref_kind == 2) rQ = rseq;
  double rl = ref_gvpo_loss(rgs.data(), rc.data(), rS.data(), rQ.data(), rew.data(), off.data(), 3, beta, true);
  std::vector<float> w(R);
  for (int64_t r = 0; r < R; r++) w[r] = (float)(mask[r] * rgs[r / T]);
  ref_token_logprobs_backward(rgrad.data(), L.f64.data(), y.data(), w.data(), R, V, tau);
  CHECK(close(t.loss, rl, 1e-9, 1e-5), "fused loss %.10g vs %.10g (ref %d)", t.loss, rl, ref_kind);
  for (int64_t n = 0; n < N; n++) {
    CHECK(close(S[n], rS[n], 1e-5, 1e-5), "fused S[%lld]", (long long)n);
    CHECK(close(Q[n], rQ[n], 1e-5, 1e-5), "fused Sref[%lld]", (long long)n);
  }
  double err = 0, norm = 0;
  for (size_t i = 0; i < grad.size(); i++)
    err += (grad[i] - rgrad[i]) * (grad[i] - rgrad[i]), norm += rgrad[i] * rgrad[i];
  CHECK(std::sqrt(err) <= 1e-5 * std::sqrt(norm) + 1e-9, "fused grad rel err %.3g", std::sqrt(err / (norm + 1e-300)));
  // The two phases give the same numbers.
  std::vector<float> grad2(R * V), lp2(R), lz2(R);
  std::vector<double> S2(N), Q2(N);
  GvpoFromLogitsOut o2{{lp2.data(), lz2.data(), S2.data(), Q2.data(), nullptr, nullptr, 0}, nullptr};
  gvpo_forward_cpu(o2, in, 1);
  gvpo_backward_cpu(grad2.data(), lz2.data(), gs.data(), in, 1);
  CHECK(S2 == S && Q2 == Q, "phase 1 differs from the fused op");
  double e2 = 0;
  for (size_t i = 0; i < grad.size(); i++) e2 = std::fmax(e2, std::fabs(grad2[i] - grad[i]));
  CHECK(e2 <= 1e-6, "phase 2 differs from the fused op by %.3g", e2);
}

int main() {
  std::mt19937 rng(1234);
  std::printf("simd=%s threads=%d\n", cpu_simd_level(), cpu_default_threads());
  const int64_t shapes[][2] = {{1, 1},    {1, 2},    {3, 7},    {5, 123},   {7, 16},
                               {2, 4095}, {4, 4097}, {9, 2048}, {64, 1000}, {3, 32768}};
  for (auto& s : shapes)
    for (int d = 0; d < 3; d++)
      for (int threads : {1, 3}) {
        check_shape(rng, s[0], s[1], (DType)d, 1.0f, threads, false);
        check_shape(rng, s[0], s[1], (DType)d, 0.7f, threads, true);
      }
  check_nonfinite();
  check_reference_moves();
  check_extreme_logits();
  check_huge_weights();
  check_loss(rng);
  check_sign();
  check_bad_targets();
  for (int d = 0; d < 3; d++)
    for (int ref = 0; ref < 3; ref++) check_fused(rng, (DType)d, ref);
  std::printf("%d checks, %d failures\n", checks, failures);
  std::printf("%d passed, %d failed\n", checks - failures, failures);
  return failures ? 1 : 0;
}
