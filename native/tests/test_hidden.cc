// C++ harness for the fused LM head (gvpo_from_hidden_*): no Node. Checks against a float64
// reference written here (z = hidden * weight^T in double, then the definitions), against the
// logits kernels on the materialized float32 logits, bitwise independence of the thread count,
// masked rows, V = 1 and non-finite rows. Run once per GVPO_SIMD value (scripts/test-native.sh).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "../kernels.h"
#include "check.h"
#include "reference.h"

using namespace gvpo;

namespace {

struct Case {
  int64_t N, T, H, V;
  DType d;
  float tau;
  int ref;  // 0: Sref = S, 1: per token, 2: per sequence
};

struct Result {
  std::vector<float> dH, dW, lp, lz;
  std::vector<double> S, Q, gs, c;
  int64_t bad = 0;
  LossAndTerms t{};
};

double max_abs(const std::vector<double>& x) {
  double m = 0;
  for (double v : x) m = std::fmax(m, std::fabs(v));
  return m;
}

Result run(const Case& k, const Logits& hid, const Logits& w, const std::vector<int32_t>& y,
           const std::vector<float>& mask, const std::vector<double>& refTok, const std::vector<double>& refSeq,
           const std::vector<double>& R, const std::vector<int32_t>& off, int threads) {
  const int64_t rows = k.N * k.T;
  Result r;
  r.dH.assign(rows * k.H, NAN);  // NaN: an element the kernel does not write fails the checks
  r.dW.assign(k.V * k.H, NAN);
  r.lp.resize(rows);
  r.lz.resize(rows);
  r.S.resize(k.N), r.Q.resize(k.N), r.gs.resize(k.N), r.c.resize(k.N);
  GvpoFromHiddenOut out{
      {r.lp.data(), r.lz.data(), r.S.data(), r.Q.data(), r.gs.data(), r.c.data(), 0}, r.dH.data(), r.dW.data()};
  GvpoHiddenBatch in{
      {k.d, y.data(), mask.data(), k.ref == 1 ? refTok.data() : nullptr, k.ref == 2 ? refSeq.data() : nullptr, R.data(),
       off.data(), (int64_t)off.size() - 1, k.N, k.T, k.V, k.tau, 0.1, true},
      hid.data(),
      w.data(),
      k.H};
  r.t = gvpo_from_hidden_cpu(out, in, threads);
  r.bad = out.nonfinite_rows;
  return r;
}

void check_case(std::mt19937& rng, const Case& k) {
  const int64_t rows = k.N * k.T, H = k.H, V = k.V;
  Logits hid = random_logits(rng, rows, H, k.d, 1.0f);
  Logits w = random_logits(rng, V, H, k.d, 2.0f / std::sqrt((float)H));
  std::vector<int32_t> y(rows);
  std::vector<float> mask(rows);
  std::vector<double> refTok(rows), refSeq(k.N), R(k.N);
  for (int64_t r = 0; r < rows; r++) {
    mask[r] = (r % k.T == 0 && k.T > 1) || rng() % 4 == 0 ? 0.0f : 1.0f;  // prompt-like holes
    y[r] = mask[r] == 0.0f ? -7 : (int32_t)(rng() % V);                   // masked targets may hold anything
    refTok[r] = -0.1 * (double)(rng() % 50);
  }
  for (int64_t n = 0; n < k.N; n++) refSeq[n] = -(double)(rng() % 100), R[n] = (double)(rng() % 7);
  std::vector<int32_t> off = {0};  // ragged groups, a size-1 group included when N allows
  for (int64_t n = 0; n < k.N;) {
    int64_t s = std::min<int64_t>(k.N - n, 1 + off.size() % 3);
    off.push_back((int32_t)(n += s));
  }
  Result a = run(k, hid, w, y, mask, refTok, refSeq, R, off, 1);

  // float64 reference: materialize z, then the definitions.
  std::vector<double> z(rows * V), lp(rows), lz(rows), S(k.N, 0.0), Q(k.N, 0.0), gs(k.N), c(k.N);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t v = 0; v < V; v++) {
      double s = 0;
      for (int64_t h = 0; h < H; h++) s += hid.f64[r * H + h] * w.f64[v * H + h];
      z[r * V + v] = s;
    }
  ref_token_logprobs(lp.data(), lz.data(), z.data(), y.data(), mask.data(), rows, V, k.tau);
  for (int64_t r = 0; r < rows; r++) {
    S[r / k.T] += mask[r] * lp[r];
    Q[r / k.T] += mask[r] * refTok[r];
  }
  const std::vector<double>& Sref = k.ref == 0 ? S : k.ref == 1 ? Q : refSeq;
  double L = ref_gvpo_loss(gs.data(), c.data(), S.data(), Sref.data(), R.data(), off.data(), (int64_t)off.size() - 1,
                           0.1, true);
  std::vector<float> g(rows);
  for (int64_t r = 0; r < rows; r++) g[r] = (float)(mask[r] * gs[r / k.T]);
  std::vector<double> dz(rows * V), dH(rows * H, 0.0), dW(V * H, 0.0);
  std::vector<double> aH(rows * H, 0.0), aW(V * H, 0.0);  // the same sums of |products|
  for (int64_t r = 0; r < rows; r++)                      // masked rows (g = 0) have targets outside [0, V)
    for (int64_t v = 0; v < V && g[r] != 0.0f; v++)
      dz[r * V + v] = g[r] / k.tau * ((v == y[r] ? 1.0 : 0.0) - std::exp(z[r * V + v] / k.tau - lz[r]));
  for (int64_t r = 0; r < rows; r++)
    for (int64_t v = 0; v < V; v++)
      for (int64_t h = 0; h < H; h++) {
        dH[r * H + h] += dz[r * V + v] * w.f64[v * H + h];
        dW[v * H + h] += dz[r * V + v] * hid.f64[r * H + h];
        aH[r * H + h] += std::fabs(dz[r * V + v] * w.f64[v * H + h]);
        aW[v * H + h] += std::fabs(dz[r * V + v] * hid.f64[r * H + h]);
      }

  const char* dn[] = {"f32", "bf16", "f16"};
  char at[128];
  std::snprintf(at, sizeof at, "N=%lld T=%lld H=%lld V=%lld %s tau=%g ref=%d:", (long long)k.N, (long long)k.T,
                (long long)H, (long long)V, dn[(int)k.d], k.tau, k.ref);
  CHECK(a.bad == 0, "%s %lld non-finite rows", at, (long long)a.bad);
  for (int64_t r = 0; r < rows; r++) {
    CHECK(std::fabs(a.lp[r] - lp[r]) <= 2e-5 * (1 + std::fabs(lz[r])) && a.lp[r] <= 0.0f,
          "%s logprob r=%lld got %.8g want %.8g", at, (long long)r, a.lp[r], lp[r]);
    if (mask[r] == 0.0f) CHECK(a.lp[r] == 0.0f && a.lz[r] == 0.0f, "%s masked row %lld", at, (long long)r);
    if (V == 1 && mask[r] != 0.0f) CHECK(a.lp[r] == 0.0f, "%s V=1 logprob not 0", at);
  }
  CHECK(std::fabs(a.t.loss - L) <= 1e-4 * (1 + std::fabs(L)), "%s loss %.10g want %.10g", at, a.t.loss, L);
  const double gH = max_abs(dH), gW = max_abs(dW);
  double eH = 0, eW = 0;
  auto worse = [](double e, double d) { return d > e || d != d ? d : e; };  // NaN sticks
  for (size_t i = 0; i < dH.size(); i++) eH = worse(eH, std::fabs(a.dH[i] - dH[i]));
  for (size_t i = 0; i < dW.size(); i++) eW = worse(eW, std::fabs(a.dW[i] - dW[i]));
  if (k.d == DType::bf16 && std::strcmp(cpu_simd_level(), "avx512bf16") == 0) {
    // bfloat16 products: dZ is rounded to bfloat16 (relative 2^-9) where it meets the inputs,
    // so each element may be off by 2^-9 of its sum of |products|, plus float32's share.
    double qH = 0, qW = 0;  // the worst error as a share of its allowance
    for (size_t i = 0; i < dH.size(); i++)
      qH = worse(qH, std::fabs(a.dH[i] - dH[i]) / (0x1p-8 * aH[i] + 1e-4 * gH + 1e-9));
    for (size_t i = 0; i < dW.size(); i++)
      qW = worse(qW, std::fabs(a.dW[i] - dW[i]) / (0x1p-8 * aW[i] + 1e-4 * gW + 1e-9));
    CHECK(qH <= 1.0, "%s bfloat16 products: dH error %.3g of its allowance (max err %.3g, scale %.3g)", at, qH, eH, gH);
    CHECK(qW <= 1.0, "%s bfloat16 products: dW error %.3g of its allowance (max err %.3g, scale %.3g)", at, qW, eW, gW);
  } else {
    CHECK(eH <= 1e-4 * gH + 1e-9, "%s dH max err %.3g (scale %.3g)", at, eH, gH);
    CHECK(eW <= 1e-4 * gW + 1e-9, "%s dW max err %.3g (scale %.3g)", at, eW, gW);
  }
  if (V == 1) CHECK(gH == 0 && max_abs(std::vector<double>(a.dW.begin(), a.dW.end())) == 0, "%s V=1 grad", at);
  for (int64_t r = 0; r < rows; r++)
    if (mask[r] == 0.0f)
      for (int64_t h = 0; h < H; h++) CHECK(a.dH[r * H + h] == 0.0f, "%s masked row dH", at);

  // The same numbers, bit for bit, with another thread count.
  Result b = run(k, hid, w, y, mask, refTok, refSeq, R, off, 3);
  CHECK(std::memcmp(a.dH.data(), b.dH.data(), a.dH.size() * 4) == 0 &&
            std::memcmp(a.dW.data(), b.dW.data(), a.dW.size() * 4) == 0 &&
            std::memcmp(a.lp.data(), b.lp.data(), a.lp.size() * 4) == 0,
        "%s thread count changed the result", at);

  // The fused op on the materialized float32 logits agrees to float32 rounding, gradients
  // carried through the head in double.
  if (k.d == DType::f32) {
    std::vector<float> zf(rows * V), g2(rows * V), lp2(rows), lz2(rows);
    std::vector<double> S2(k.N), Q2(k.N), gs2(k.N), c2(k.N);
    for (size_t i = 0; i < zf.size(); i++) zf[i] = (float)z[i];
    GvpoLogitsBatch lb{
        {DType::f32, y.data(), mask.data(), k.ref == 1 ? refTok.data() : nullptr, k.ref == 2 ? refSeq.data() : nullptr,
         R.data(), off.data(), (int64_t)off.size() - 1, k.N, k.T, V, k.tau, 0.1, true},
        zf.data()};
    GvpoFromLogitsOut lo{{lp2.data(), lz2.data(), S2.data(), Q2.data(), gs2.data(), c2.data(), 0}, g2.data()};
    LossAndTerms t2 = gvpo_from_logits_cpu(lo, lb, 1);
    CHECK(std::fabs(a.t.loss - t2.loss) <= 1e-4 * (1 + std::fabs(t2.loss)), "%s loss vs logits op %.9g %.9g", at,
          a.t.loss, t2.loss);
    for (int64_t r = 0; r < rows; r++)
      CHECK(std::fabs(a.lp[r] - lp2[r]) <= 2e-5 * (1 + std::fabs(lz2[r])),
            "%s logprob vs logits op r=%lld: %.8g vs %.8g", at, (long long)r, a.lp[r], lp2[r]);
    std::vector<double> dH2(rows * H, 0.0);
    for (int64_t r = 0; r < rows; r++)
      for (int64_t v = 0; v < V; v++)
        for (int64_t h = 0; h < H; h++) dH2[r * H + h] += g2[r * V + v] * w.f64[v * H + h];
    double e2 = 0;
    for (size_t i = 0; i < dH2.size(); i++) e2 = std::fmax(e2, std::fabs(a.dH[i] - dH2[i]));
    CHECK(e2 <= 1e-4 * max_abs(dH2) + 1e-9, "%s dH vs logits op max err %.3g", at, e2);
  }
}

// A NaN in one hidden row makes that row's logZ NaN, counted; the other rows stay finite.
void check_nonfinite(std::mt19937& rng) {
  const int64_t N = 2, T = 3, H = 9, V = 40, rows = N * T;
  Logits hid = random_logits(rng, rows, H, DType::f32, 1.0f);
  Logits w = random_logits(rng, V, H, DType::f32, 1.0f);
  hid.f32[4 * H + 2] = NAN;
  std::vector<int32_t> y(rows, 3);
  y[1] = V;  // out of range under the mask: NaN, never a read outside the tile
  std::vector<float> mask(rows, 1.0f), lp(rows), lz(rows);
  std::vector<double> S(N), Q(N);
  GvpoHiddenBatch in{
      {DType::f32, y.data(), mask.data(), nullptr, nullptr, nullptr, nullptr, 0, N, T, V, 1.0f, 0.1, true},
      hid.data(),
      w.data(),
      H};
  GvpoOut out{lp.data(), lz.data(), S.data(), Q.data(), nullptr, nullptr, 0};
  gvpo_from_hidden_forward_cpu(out, in, 2);
  const int64_t bad = out.nonfinite_rows;
  CHECK(bad == 2 && std::isnan(lp[4]) && std::isnan(lz[4]) && std::isnan(lp[1]),  // logZ NaN, as the logits ops give
        "NaN rows not reported (%lld)", (long long)bad);
  std::vector<double> gs(N, 0.5);
  std::vector<float> dH(rows * H), dW(V * H);
  gvpo_from_hidden_backward_cpu(dH.data(), dW.data(), lz.data(), gs.data(), in, false, 2);
  CHECK(std::isnan(dH[1 * H]) && std::isnan(dH[4 * H]) && std::isfinite(dH[0]), "NaN rows' dH");
  for (int64_t r = 0; r < rows; r++)
    if (r != 4 && r != 1) CHECK(std::isfinite(lp[r]) && lp[r] <= 0.0f, "finite row %lld got %g", (long long)r, lp[r]);
  CHECK(std::isnan(S[0]) && std::isnan(S[1]), "S: %g %g", S[0], S[1]);
}

}  // namespace

int main() {
  std::mt19937 rng(4321);
  std::printf("simd=%s threads=%d\n", cpu_simd_level(), cpu_default_threads());
  const int64_t shapes[][4] = {{2, 3, 5, 7},
                               {3, 2, 17, 1},
                               {4, 1, 33, 257},
                               {1, 1, 1, 2},
                               {5, 3, 70, 600},
                               {2, 5, 300, 513},
                               {12, 10, 20, 300},
                               // several row blocks, forward (> 512 rows) and backward (> H/2)
                               {8, 80, 16, 40},
                               {3, 35, 96, 257},
                               // enough work for a team of threads (2 and 3), several
                               // sub-blocks a block, chunk buffers used twice over, H > KC
                               {6, 50, 130, 700},
                               {4, 30, 260, 520}};
  int i = 0;
  for (auto& s : shapes)
    for (int d = 0; d < 3; d++, i++)
      check_case(rng, Case{s[0], s[1], s[2], s[3], (DType)d, i % 2 ? 0.7f : 1.0f, i % 3});
  check_nonfinite(rng);
  std::printf("%d checks, %d failures\n", checks, failures);
  return failures ? 1 : 0;
}
