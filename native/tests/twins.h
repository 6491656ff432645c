// The CUDA host-array entry points of the fused ops (gvpo_from_logits_cuda_host,
// gvpo_from_hidden_cuda_host and its phases) against their CPU twins (themselves checked against
// float64 in test_cpu.cc and test_hidden.cc), shared by test_cuda.cu (on a GPU) and
// test_cuda_host.cc (the same host code over a stand-in runtime on the CPU).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "../kernels.h"
#include "check.h"
#include "reference.h"

namespace gvpo {

inline bool near(double got, double want, double atol, double rtol) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  return std::fabs(got - want) <= atol + rtol * std::fabs(want);
}

inline void check_host_entry(std::mt19937& rng, DType d) {
  const int64_t N = 6, T = 4, V = 5003, G = 3;
  std::vector<int32_t> off = {0, 2, 3, 6}, y(N * T);
  std::vector<float> mask(N * T);
  std::vector<double> Q(N), R(N);
  Logits L = random_logits(rng, N * T, V, d, 2.0f);
  for (int64_t i = 0; i < N * T; i++) y[i] = (int32_t)(rng() % V), mask[i] = (i % T) ? 1.0f : 0.0f;
  for (int64_t n = 0; n < N; n++) Q[n] = -20.0 - n, R[n] = (double)(n % 2);
  // The CPU twin, then the CUDA one on the same batch.
  GvpoLogitsBatch in{{d, y.data(), mask.data(), nullptr, Q.data(), R.data(), off.data(), G, N, T, V, 1.0f, 0.1, true},
                     L.data()};
  std::vector<float> grad(N * T * V), lp(N * T), lz(N * T);
  std::vector<double> S(N), Sq(N), gs(N), c(N);
  GvpoFromLogitsOut cpu{{lp.data(), lz.data(), S.data(), Sq.data(), gs.data(), c.data(), 0}, grad.data()};
  LossAndTerms t = gvpo_from_logits_cpu(cpu, in, 0);
  std::vector<float> hgrad(N * T * V, NAN), hlp(N * T), hlz(N * T);
  std::vector<double> hS(N), hQ(N), hgs(N), hc(N);
  CudaTimings tm{};
  LossAndTerms ct{};
  char err[512] = {0};
  GvpoFromLogitsOut out{{hlp.data(), hlz.data(), hS.data(), hQ.data(), hgs.data(), hc.data(), 0}, hgrad.data()};
  int e = gvpo_from_logits_cuda_host(out, &ct, &tm, in, err, sizeof(err));
  CHECK(e == 0, "host entry failed: %s", err);
  CHECK(near(ct.loss, t.loss, 1e-7, 1e-4), "host loss cuda %.10g cpu %.10g", ct.loss, t.loss);
  double er = 0, nr = 0;
  for (size_t i = 0; i < grad.size(); i++)
    er += (hgrad[i] - grad[i]) * (hgrad[i] - grad[i]), nr += (double)grad[i] * grad[i];
  CHECK(std::sqrt(er) <= 1e-4 * std::sqrt(nr) + 1e-7, "host grad rel err %.3g", std::sqrt(er / (nr + 1e-300)));
  if (d == DType::f32) {  // in place: the gradient comes back over the caller's logits
    std::vector<float> z = L.f32;
    GvpoLogitsBatch zin = in;
    zin.logits = z.data();
    GvpoFromLogitsOut ip{{hlp.data(), hlz.data(), hS.data(), hQ.data(), hgs.data(), hc.data(), 0}, z.data()};
    e = gvpo_from_logits_cuda_host(ip, &ct, &tm, zin, err, sizeof(err));
    CHECK(e == 0 && std::memcmp(z.data(), hgrad.data(), z.size() * 4) == 0, "in-place host entry differs (%s)", err);
  }
}

// Relative error of `got` against `want`, over the elements where want is finite; NaN where the
// other is NaN must match exactly.
inline double rel_err(const float* got, const float* want, size_t n, bool* nan_ok) {
  double e = 0, s = 0;
  *nan_ok = true;
  for (size_t i = 0; i < n; i++) {
    if (std::isnan(want[i]) || std::isnan(got[i])) {
      *nan_ok = *nan_ok && std::isnan(want[i]) && std::isnan(got[i]);
      continue;
    }
    e += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
    s += (double)want[i] * want[i];
  }
  return std::sqrt(e / (s + 1e-30));
}

// The CUDA fused LM head against the CPU one (tested against float64 in test_hidden.cc): the whole
// op and its two phases. Masked rows hold NaN hidden states (they must not reach anything); one
// live row can have an out-of-range target (the kernels' last line: a NaN row).
inline void check_hidden(std::mt19937& rng, int64_t N, int64_t T, int64_t H, int64_t V, DType d, bool bad_target) {
  const int64_t R = N * T;
  Logits hid = random_logits(rng, R, H, d, 1.0f), W = random_logits(rng, V, H, d, 0.5f);
  std::vector<int32_t> y(R), off;
  std::vector<float> mask(R);
  for (int64_t r = 0; r < R; r++) {
    y[r] = (int32_t)(rng() % V);
    mask[r] = (r % T == 0 && T > 1) ? 0.0f : (rng() % 5 == 0 ? 0.5f : 1.0f);
    if (mask[r] == 0.0f) {  // a prompt token: NaN hidden state and any target
      y[r] = -7;
      for (int64_t h = 0; h < H; h++) {
        if (d == DType::f32)
          hid.f32[r * H + h] = NAN;
        else
          hid.h16[r * H + h] = 0x7fc0;
      }
    }
  }
  if (bad_target) y[R - 1] = (int32_t)V, mask[R - 1] = 1.0f;
  for (int64_t n = 0; n <= N;) off.push_back((int32_t)n), n += (n % 3) + 1;  // ragged, size-1 groups too
  if (off.back() != N) off.push_back((int32_t)N);
  std::vector<double> Q(N), Rw(N);
  for (int64_t n = 0; n < N; n++) Q[n] = -3.0 * n - 1.0, Rw[n] = (double)(rng() % 5);
  GvpoHiddenBatch in{{d, y.data(), mask.data(), nullptr, Q.data(), Rw.data(), off.data(), (int64_t)off.size() - 1, N, T,
                      V, 0.8f, 0.3, true},
                     hid.data(),
                     W.data(),
                     H};
  struct Outs {
    std::vector<float> gh, gw, lp, lz;
    std::vector<double> S, Sq, gs, c;
    GvpoFromHiddenOut o;
    Outs(int64_t R, int64_t N, int64_t H, int64_t V)
        : gh(R * H, -1.0f), gw(V * H, -1.0f), lp(R, -1.0f), lz(R, -1.0f), S(N), Sq(N), gs(N), c(N) {
      o = {{lp.data(), lz.data(), S.data(), Sq.data(), gs.data(), c.data(), -1}, gh.data(), gw.data()};
    }
  } cpu(R, N, H, V), gpu(R, N, H, V);
  LossAndTerms tc = gvpo_from_hidden_cpu(cpu.o, in, 0), tg{};
  CudaTimings tm{};
  char err[512] = {0};
  int e = gvpo_from_hidden_cuda_host(gpu.o, &tg, &tm, in, err, sizeof(err));
  CHECK(e == 0, "gvpo_from_hidden_cuda_host failed: %s", err);
  bool nan_ok;
  const double elp = rel_err(gpu.lp.data(), cpu.lp.data(), R, &nan_ok);
  CHECK(elp <= 2e-5 && nan_ok, "hidden N=%lld T=%lld H=%lld V=%lld d=%d: l error %.3g (NaN rows %s)", (long long)N,
        (long long)T, (long long)H, (long long)V, (int)d, elp, nan_ok ? "match" : "differ");
  CHECK(gpu.o.nonfinite_rows == cpu.o.nonfinite_rows, "nonfinite rows cuda %lld cpu %lld",
        (long long)gpu.o.nonfinite_rows, (long long)cpu.o.nonfinite_rows);
  for (int64_t r = 0; r < R; r++)
    CHECK(!(gpu.lp[r] > 0.0f) && (mask[r] != 0.0f || (gpu.lp[r] == 0.0f && gpu.lz[r] == 0.0f)),
          "row %lld: l %g logZ %g", (long long)r, gpu.lp[r], gpu.lz[r]);
  CHECK(bad_target ? std::isnan(tg.loss) == std::isnan(tc.loss) : near(tg.loss, tc.loss, 1e-6, 1e-4),
        "hidden loss cuda %.10g cpu %.10g", tg.loss, tc.loss);
  const double egh = rel_err(gpu.gh.data(), cpu.gh.data(), cpu.gh.size(), &nan_ok);
  CHECK(egh <= 1e-4 && nan_ok, "dL/dhidden error %.3g (NaN %s)", egh, nan_ok ? "match" : "differ");
  const double egw = rel_err(gpu.gw.data(), cpu.gw.data(), cpu.gw.size(), &nan_ok);
  CHECK(egw <= 1e-4 && nan_ok, "dL/dweight error %.3g (NaN %s)", egw, nan_ok ? "match" : "differ");
  for (int64_t r = 0; r < R; r++)  // a masked row's gradient is exactly 0
    if (mask[r] == 0.0f)
      for (int64_t h = 0; h < H; h++)
        CHECK(gpu.gh[r * H + h] == 0.0f, "masked row %lld has dL/dhidden %g", (long long)r, gpu.gh[r * H + h]);
  // The phases: forward alone (bit-equal), then backward from the whole op's own logZ and dL/dS
  // (close: the one call hands its backward the split of logZ, the phases logZ alone).
  Outs f(R, N, H, V);
  e = gvpo_from_hidden_forward_cuda_host(f.o, &tm, in, err, sizeof(err));
  CHECK(e == 0 && std::memcmp(f.lp.data(), gpu.lp.data(), R * 4) == 0, "forward phase differs from the whole op (%s)",
        err);
  std::vector<float> gh(R * H, 5.0f), gw(V * H, 5.0f);
  e = gvpo_from_hidden_backward_cuda_host(gh.data(), gw.data(), &tm, gpu.lz.data(), gpu.gs.data(), in, false, err,
                                          sizeof(err));
  bool nan_gh, nan_gw;
  const double pgh = rel_err(gh.data(), gpu.gh.data(), gh.size(), &nan_gh),
               pgw = rel_err(gw.data(), gpu.gw.data(), gw.size(), &nan_gw);
  CHECK(e == 0 && (bad_target || (pgh <= 1e-5 && pgw <= 1e-5 && nan_gh && nan_gw)),
        "backward phase differs from the whole op: %.3g, %.3g (%s)", pgh, pgw, err);
}

// The CUDA head (token_logprobs_from_hidden_*_cuda_host) against the CPU one (tested against
// float64 in test_token_logprobs_from_hidden.cc): l, logZ, H; the gradients for upstream gl and gH
// with H given and recomputed; gradWeight accumulated. Masked rows hold NaN hidden states, any
// target and NaN upstream.
inline void check_head(std::mt19937& rng, int64_t R, int64_t H, int64_t V, DType d, float tau) {
  // |z/tau| of order 10 however small tau is: a peaked softmax whose gradients are not all rounding
  Logits hid = random_logits(rng, R, H, d, 1.0f), W = random_logits(rng, V, H, d, 0.5f * std::fmin(1.0f, 10.0f * tau));
  std::vector<int32_t> y(R);
  std::vector<float> mask(R), gl(R), gh(R);
  for (int64_t r = 0; r < R; r++) {
    mask[r] = R > 1 && rng() % 4 == 0 ? 0.0f : 1.0f;
    y[r] = mask[r] == 0.0f ? -3 : (int32_t)(rng() % V);
    gl[r] = mask[r] == 0.0f ? NAN : (float)(rng() % 200) / 100.0f - 1.0f;
    gh[r] = mask[r] == 0.0f ? NAN : rng() % 3 ? (float)(rng() % 200) / 100.0f - 1.0f : 0.0f;
    if (mask[r] == 0.0f)
      for (int64_t h = 0; h < H; h++) {
        if (d == DType::f32)
          hid.f32[r * H + h] = NAN;
        else
          hid.h16[r * H + h] = 0x7fc0;
      }
  }
  const HeadInputs in{hid.data(), W.data(), d, y.data(), mask.data(), R, H, V, tau};
  std::vector<float> lp(R), lz(R), ent(R), dH(R * H), dW(V * H);
  const int64_t bad = token_logprobs_from_hidden_forward_cpu(lp.data(), lz.data(), ent.data(), in, 0);
  token_logprobs_from_hidden_backward_cpu(dH.data(), dW.data(), in, lz.data(), ent.data(), gl.data(), gh.data(), false,
                                          0);
  std::vector<float> clp(R, -1.0f), clz(R, -1.0f), cent(R, -1.0f), cdH(R * H, -1.0f), cdW(V * H, -1.0f);
  int64_t cbad = -1;
  CudaTimings tm{};
  char err[512] = {0};
  int e = token_logprobs_from_hidden_forward_cuda_host(clp.data(), clz.data(), cent.data(), &cbad, &tm, in, err,
                                                       sizeof(err));
  CHECK(e == 0, "head forward (cuda) failed: %s", err);
  bool nan_ok;
  char at[96];
  std::snprintf(at, sizeof at, "head R=%lld H=%lld V=%lld d=%d tau=%g:", (long long)R, (long long)H, (long long)V,
                (int)d, tau);
  const double el = rel_err(clp.data(), lp.data(), R, &nan_ok);
  CHECK(el <= 2e-5 && nan_ok && cbad == bad, "%s l error %.3g, non-finite rows cuda %lld cpu %lld", at, el,
        (long long)cbad, (long long)bad);
  const double eh = rel_err(cent.data(), ent.data(), R, &nan_ok);
  CHECK(eh <= 2e-5 && nan_ok, "%s H error %.3g", at, eh);
  for (int64_t r = 0; r < R; r++)
    CHECK(!(clp[r] > 0.0f) && !(cent[r] < 0.0f) &&
              (mask[r] != 0.0f || (clp[r] == 0.0f && clz[r] == 0.0f && cent[r] == 0.0f)),
          "%s row %lld: l %g logZ %g H %g", at, (long long)r, clp[r], clz[r], cent[r]);
  for (int given = 1; given >= 0; given--) {  // H from the forward, then recomputed by the backward
    e = token_logprobs_from_hidden_backward_cuda_host(cdH.data(), cdW.data(), &tm, in, lz.data(),
                                                      given ? ent.data() : nullptr, gl.data(), gh.data(), false, err,
                                                      sizeof(err));
    CHECK(e == 0, "head backward (cuda) failed: %s", err);
    const double egh = rel_err(cdH.data(), dH.data(), dH.size(), &nan_ok);
    CHECK(egh <= 1e-4 && nan_ok, "%s dL/dhidden error %.3g (H %s)", at, egh, given ? "given" : "recomputed");
    const double egw = rel_err(cdW.data(), dW.data(), dW.size(), &nan_ok);
    CHECK(egw <= 1e-4 && nan_ok, "%s dL/dweight error %.3g (H %s)", at, egw, given ? "given" : "recomputed");
  }
  for (int64_t r = 0; r < R; r++)
    if (mask[r] == 0.0f)
      for (int64_t h = 0; h < H; h++)
        CHECK(cdH[r * H + h] == 0.0f, "%s masked row %lld has dL/dhidden", at, (long long)r);
  std::vector<float> acc(V * H);
  for (size_t i = 0; i < acc.size(); i++) acc[i] = (float)(i % 7) - 3.0f;
  std::vector<float> want = acc;
  for (size_t i = 0; i < acc.size(); i++) want[i] += dW[i];
  e = token_logprobs_from_hidden_backward_cuda_host(cdH.data(), acc.data(), &tm, in, lz.data(), ent.data(), gl.data(),
                                                    gh.data(), true, err, sizeof(err));
  CHECK(e == 0 && rel_err(acc.data(), want.data(), acc.size(), &nan_ok) <= 1e-5 && nan_ok, "%s accumulate (%s)", at,
        err);
}

// Two float32 results of the same sum agree: within tol * scale where both are finite; where either
// is not, the other is the same value, or a finite one past 2^127 of the same sign (a sum at the
// edge of float32's range, which either side's rounding may take past it).
inline bool agree(float got, float want, double tol, double scale) {
  if (std::isnan(got) || std::isnan(want)) return std::isnan(got) && std::isnan(want);
  if (std::isfinite(got) && std::isfinite(want)) return std::fabs((double)got - want) <= tol * scale;
  return got == want ||
         (std::signbit(got) == std::signbit(want) && std::fmax(std::fabs(got), std::fabs(want)) >= 0x1p127);
}

// The head's backward with a few rows' upstream past float32's range (rows `big`), CUDA against the
// CPU twin: every other row's dL/dhidden is what it is when the big rows' upstream is 0 (the CUDA
// head once scaled every row by one exponent for the batch: an upstream of 1e80 flushed the other
// rows to 0); dL/dweight takes each row at the batch's largest exponent, so its columns where the
// big rows' hidden states are 0 hold the other rows' sum alone, at moderate exponents (2^66 at
// most) the same as when the big rows' upstream is 0. 40 rows with V = 32768: two chunks of the
// CUDA head, a big row in each. run(upstream, dH, dW, cuda) runs one backward.
template <class Run>
void check_row_scales(const char* what, int64_t R, int64_t H, int64_t V, const std::vector<int64_t>& big,
                      int64_t zero_cols, bool moderate, Run run) {
  std::vector<float> dH[2][2], dW[2][2];  // [cuda][baseline]
  for (int cuda = 0; cuda < 2; cuda++)
    for (int base = 0; base < 2; base++) {
      dH[cuda][base].assign(R * H, -1.0f), dW[cuda][base].assign(V * H, -1.0f);
      run(base == 1, dH[cuda][base].data(), dW[cuda][base].data(), cuda == 1);
    }
  const auto is_big = [&](int64_t r) { return std::find(big.begin(), big.end(), r) != big.end(); };
  for (int cuda = 0; cuda < 2; cuda++) {
    const char* who = cuda ? "cuda" : "cpu";
    const std::vector<float>&got = dH[cuda][0], &base = dH[cuda][1], &cpu = dH[0][0];
    // against its own run at an upstream of 0, row by row; against the CPU's (another order of
    // the sums) on the scale of the other rows' largest element, as check_head's norms
    double others = 1e-30;
    for (int64_t r = 0; r < R; r++)
      for (int64_t h = 0; h < H && !is_big(r); h++) others = std::fmax(others, std::fabs(cpu[r * H + h]));
    for (int64_t r = 0; r < R; r++) {
      double row = 1e-30;
      for (int64_t h = 0; h < H; h++)
        row = std::fmax(row, std::isfinite(cpu[r * H + h]) ? std::fabs(cpu[r * H + h]) : 0.0);
      for (int64_t h = 0; h < H; h++) {
        const float x = got[r * H + h];
        if (!is_big(r))
          CHECK(std::isfinite(x) && agree(x, base[r * H + h], 1e-6, row),
                "%s %s: row %lld dH[%lld] %g, %g at an upstream of 0", what, who, (long long)r, (long long)h, x,
                base[r * H + h]);
        CHECK(agree(x, cpu[r * H + h], 1e-4, is_big(r) ? row : others), "%s %s: row %lld dH[%lld] %g, the CPU's %g",
              what, who, (long long)r, (long long)h, x, cpu[r * H + h]);
      }
    }
    // dW's columns h < zero_cols: the other rows' sum alone; the rest at the big rows' scale
    double scale = 1e-30, scale_big = 1e-30;
    for (int64_t v = 0; v < V; v++)
      for (int64_t h = 0; h < H; h++) {
        const double c = std::fabs(h < zero_cols ? dW[1][1][v * H + h] : dW[0][0][v * H + h]);
        if (std::isfinite(c)) (h < zero_cols ? scale : scale_big) = std::fmax(h < zero_cols ? scale : scale_big, c);
      }
    int bad = 0;
    for (int64_t v = 0; v < V; v++)
      for (int64_t h = 0; h < H; h++) {
        const float x = dW[cuda][0][v * H + h], c = dW[0][0][v * H + h], b = dW[cuda][1][v * H + h];
        const bool ok = h < zero_cols
                            ? std::isfinite(x) && agree(x, c, 1e-4, scale) && (!moderate || agree(x, b, 1e-5, scale))
                            : agree(x, c, 1e-4, scale_big);
        if (!ok && bad++ < 3)
          CHECK(false, "%s %s: dW[%lld, %lld] %g, the CPU's %g, %g at an upstream of 0", what, who, (long long)v,
                (long long)h, x, c, b);
      }
    CHECK(bad == 0, "%s %s: %d elements of dW off", what, who, bad);
  }
}

inline void check_head_row_scales(std::mt19937& rng) {
  const int64_t R = 40, H = 8, V = 32768, zero_cols = 3;
  const std::vector<int64_t> big = {0, 35};
  std::vector<int32_t> y(R), off = {0, 20, 40};
  for (auto& t : y) t = (int32_t)(rng() % V);
  std::vector<float> mask(R, 1.0f);
  CudaTimings tm{};
  char err[512] = {0};
  // GVPO's dL/dS, given in double: the rows' exponents come from gvpo_from_hidden
  {
    Logits hid = random_logits(rng, R, H, DType::f32, 1.0f), W = random_logits(rng, V, H, DType::f32, 0.5f);
    for (int64_t r : big)
      for (int64_t h = 0; h < zero_cols; h++) hid.f32[r * H + h] = 0.0f;
    std::vector<double> Rw(R, 0.0), gs(R);
    for (auto& g : gs) g = (double)(rng() % 200) / 100.0 - 1.0;
    GvpoHiddenBatch in{
        {DType::f32, y.data(), mask.data(), nullptr, nullptr, Rw.data(), off.data(), 2, R, 1, V, 1.0f, 0.1, true},
        hid.data(),
        W.data(),
        H};
    std::vector<float> lp(R), lz(R);
    token_logprobs_from_hidden_forward_cpu(lp.data(), lz.data(), nullptr, in.head(), 0);
    const double sizes[][2] = {{1e80, -1e300}, {1e40, -1e50}};
    for (auto& sz : sizes) {
      char what[96];
      std::snprintf(what, sizeof what, "gvpo head, dL/dS %g and %g", sz[0], sz[1]);
      check_row_scales(what, R, H, V, big, zero_cols, sz[0] < 1e45, [&](bool base, float* dh, float* dw, bool cuda) {
        std::vector<double> g = gs;
        g[big[0]] = base ? 0.0 : sz[0], g[big[1]] = base ? 0.0 : sz[1];
        if (!cuda) return gvpo_from_hidden_backward_cpu(dh, dw, lz.data(), g.data(), in, false, 0);
        CHECK(gvpo_from_hidden_backward_cuda_host(dh, dw, &tm, lz.data(), g.data(), in, false, err, sizeof(err)) == 0,
              "%s: cuda failed: %s", what, err);
      });
    }
  }
  // The per-token head at tau 1e-3: g / tau past 2^100 for row 0's gl and row 35's gH (the entropy
  // path's kernel), with accumulate too
  {
    const float tau = 1e-3f;
    Logits hid = random_logits(rng, R, H, DType::f32, 1.0f), W = random_logits(rng, V, H, DType::f32, 0.5f * 10 * tau);
    for (int64_t r : big)
      for (int64_t h = 0; h < zero_cols; h++) hid.f32[r * H + h] = 0.0f;
    std::vector<float> gl(R), gh(R, 0.0f), acc0(V * H);
    for (auto& g : gl) g = (float)(rng() % 200) / 100.0f - 1.0f;
    for (int64_t r = 1; r < R; r += 3) gh[r] = (float)(rng() % 200) / 100.0f - 1.0f;
    for (size_t i = 0; i < acc0.size(); i++) acc0[i] = (float)(i % 7) - 3.0f;
    const HeadInputs in{hid.data(), W.data(), DType::f32, y.data(), mask.data(), R, H, V, tau};
    std::vector<float> lp(R), lz(R), ent(R);
    token_logprobs_from_hidden_forward_cpu(lp.data(), lz.data(), ent.data(), in, 0);
    for (int accumulate = 0; accumulate < 2; accumulate++) {
      char what[96];
      std::snprintf(what, sizeof what, "token head at tau %g, gl 3e38 and gH -1e37%s", tau,
                    accumulate ? ", accumulate" : "");
      check_row_scales(what, R, H, V, big, zero_cols, true, [&](bool base, float* dh, float* dw, bool cuda) {
        std::vector<float> l = gl, e = gh;
        l[big[0]] = base ? 0.0f : 3e38f, e[big[1]] = base ? 0.0f : -1e37f;
        if (accumulate) std::copy(acc0.begin(), acc0.end(), dw);
        if (!cuda)
          return token_logprobs_from_hidden_backward_cpu(dh, dw, in, lz.data(), ent.data(), l.data(), e.data(),
                                                         accumulate == 1, 0);
        CHECK(token_logprobs_from_hidden_backward_cuda_host(dh, dw, &tm, in, lz.data(), ent.data(), l.data(), e.data(),
                                                            accumulate == 1, err, sizeof(err)) == 0,
              "%s: cuda failed: %s", what, err);
      });
    }
  }
}

// accumulate at a huge scale: gl near float32's max at tau 1e-30 puts the batch's exponent near
// 2^126, and a caller's dW entry of 1e-30 scaled down by it and back came out 0. Where the batch
// adds nothing to dW (the huge row's zero hidden column, every other row's gl 0) the caller's
// entries must come back as they were, on the CPU and on CUDA.
inline void check_head_accumulate_scale(std::mt19937& rng) {
  const int64_t R = 3, H = 4, V = 50;
  Logits hid = random_logits(rng, R, H, DType::f32, 1.0f), W = random_logits(rng, V, H, DType::f32, 0.5f);
  hid.f32[0] = 0.0f;  // row 0's column 0: dW[:, 0] gets nothing from it
  std::vector<int32_t> y = {1, 7, 20};
  std::vector<float> mask(R, 1.0f), gl = {3e38f, 0.0f, 0.0f};
  const HeadInputs in{hid.data(), W.data(), DType::f32, y.data(), mask.data(), R, H, V, 1e-30f};
  std::vector<float> lp(R), lz(R);
  token_logprobs_from_hidden_forward_cpu(lp.data(), lz.data(), nullptr, in, 0);
  CudaTimings tm{};
  char err[512] = {0};
  for (int cuda = 0; cuda < 2; cuda++) {
    std::vector<float> dH(R * H), dW(V * H, 1e-30f);
    if (cuda)
      CHECK(token_logprobs_from_hidden_backward_cuda_host(dH.data(), dW.data(), &tm, in, lz.data(), nullptr, gl.data(),
                                                          nullptr, true, err, sizeof(err)) == 0,
            "accumulate at 2^126: cuda failed: %s", err);
    else
      token_logprobs_from_hidden_backward_cpu(dH.data(), dW.data(), in, lz.data(), nullptr, gl.data(), nullptr, true,
                                              0);
    for (int64_t v = 0; v < V; v++)
      CHECK(dW[v * H] == 1e-30f, "accumulate at 2^126 (%s): dW[%lld, 0] = %g, the caller's 1e-30",
            cuda ? "cuda" : "cpu", (long long)v, dW[v * H]);
  }
}

// {N, T, H, V}: T = 1, V = 1, 2, H and V off every tile edge; V = 32768 with 96 rows: several chunks.
inline void check_hidden_twins(std::mt19937& rng) {
  const int64_t heads[][4] = {{4, 3, 5, 7},  {6, 1, 17, 130},    {3, 5, 129, 1},
                              {5, 4, 64, 2}, {8, 12, 33, 32768}, {2, 9, 300, 5003}};
  for (auto& k : heads)
    for (int d = 0; d < 3; d++) check_hidden(rng, k[0], k[1], k[2], k[3], (DType)d, false);
  check_hidden(rng, 4, 3, 20, 50, DType::f32, true);
  const int64_t heads2[][3] = {{1, 5, 1}, {1, 9, 2}, {7, 17, 130}, {40, 33, 5003}, {40, 8, 32768}};
  const float taus[] = {1.0f, 0.001f, 30.0f};
  int i = 0;
  for (auto& k : heads2)
    for (int d = 0; d < 3; d++, i++) check_head(rng, k[0], k[1], k[2], (DType)d, taus[(i + i / 3) % 3]);
}

}  // namespace gvpo
