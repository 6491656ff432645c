// The CUDA logits kernels' per-thread code (native/cuda/row_sweep.h) run on the CPU: a row's
// kThreads threads one after another, their states merged in the order of the kernel's warp
// shuffles and shared-memory step, then the row's epilogue; the backward likewise, every thread's
// stores and then the target's. Against the CPU kernels (float64-checked in test_cpu.cc): all
// dtypes, V = 1, 2, odd V (the scalar walk), V below, at and past the unrolled walk's reach,
// masked rows, rows of -inf, with a NaN or a +inf, tau from 1e-38 to 1e37, logits near +-3e38 and
// |z| near 1e4 at tau 1e-6, weights g whose g/tau passes float32's range, and the float32 backward
// in place. No GPU needed: what this cannot see is the device's own (shuffles, launches, the fast
// exponential's last bits), which native/tests/test_cuda.cu checks on a GPU. Prints "N passed, M
// failed"; exit 0 when all passed.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "../cuda/row_sweep.h"
#include "../kernels.h"
#include "check.h"
#include "reference.h"

using namespace gvpo;
using namespace gvpo::row_sweep;

namespace {

float elem(const void* row, DType d, int64_t v) {
  if (d == DType::f32) return ((const float*)row)[v];
  const uint16_t h = ((const uint16_t*)row)[v];
  return d == DType::bf16 ? bf16_to_f32(h) : (float)f16_to_f64(h);
}

bool aligned16(const void* p) { return ((uintptr_t)p % 16) == 0; }

// In each warp, for o = 16, 8, 4, 2, 1, every lane merges its state with lane l ^ o's as both
// were before the step: __shfl_xor_sync's exchange.
void butterfly(Lse* w, const Scale& k) {
  for (int o = 16; o > 0; o >>= 1) {
    Lse old[32];
    std::memcpy(old, w, sizeof(old));
    for (int l = 0; l < 32; l++) w[l] = lse_merge(old[l], old[l ^ o], k);
  }
}

// The forward kernel's block on one row (masked rows never reach it).
RowStats forward_row(const void* row, DType d, int64_t V, float inv_tau, int32_t y) {
  const Scale k = scale_of(inv_tau);
  const int E = d == DType::f32 ? 4 : 8;
  auto vec = [&](int64_t i, float* x) {
    for (int j = 0; j < E; j++) x[j] = elem(row, d, i * E + j);
  };
  auto one = [&](int64_t v) { return elem(row, d, v); };
  std::vector<Lse> lane(kThreads);
  for (int t = 0; t < kThreads; t++)
    lane[t] = E == 4 ? sweep_lse<4>(V, aligned16(row), t, kThreads, k, vec, one)
                     : sweep_lse<8>(V, aligned16(row), t, kThreads, k, vec, one);
  for (int w = 0; w < kThreads / 32; w++) butterfly(&lane[32 * w], k);
  Lse part[32];  // lane 0 of each warp to shared memory, then warp 0
  for (int l = 0; l < 32; l++) part[l] = l < kThreads / 32 ? lane[32 * l] : Lse{-INFINITY, 0.0, 0.0};
  butterfly(part, k);
  return finish_row(part[0], y, V, inv_tau, one);
}

// The backward kernel's block on one row; out may be the row itself (float32).
void backward_row(float* out, const void* row, DType d, int64_t V, float inv_tau, int32_t y, bool live, double g,
                  float m, float lse) {
  const BackRow b = back_row(g, live, V, m, lse, y, inv_tau);
  auto st4 = [&](int64_t q, float a, float c, float e, float f) {
    out[4 * q] = a, out[4 * q + 1] = c, out[4 * q + 2] = e, out[4 * q + 3] = f;
  };
  auto st1 = [&](int64_t v, float a) { out[v] = a; };
  if (b.zero || b.bad) {
    for (int t = 0; t < kThreads; t++) sweep_fill(b.zero ? 0.0f : NAN, V, aligned16(out), t, kThreads, st4, st1);
    return;
  }
  const int E = d == DType::f32 ? 4 : 8;
  auto vec = [&](int64_t i, float* x) {
    for (int j = 0; j < E; j++) x[j] = elem(row, d, i * E + j);
  };
  auto one = [&](int64_t v) { return elem(row, d, v); };
  const float zy = elem(row, d, y);  // read by every thread before the first store
  const bool al = aligned16(row) && aligned16(out);
  for (int t = 0; t < kThreads; t++) {
    if (E == 4)
      sweep_backward<4>(b, V, al, t, kThreads, vec, one, st4, st1);
    else
      sweep_backward<8>(b, V, al, t, kThreads, vec, one, st4, st1);
  }
  out[y] = back_target(b, zy);
}

struct Case {
  const char* name;
  int64_t R, V;
  DType d;
  float tau;
  // logits: offset + scale * N(0, 1) (rounded to d)
  float scale, offset;
  double g;      // the weights' scale (signs and sizes vary by row)
  bool special;  // rows 1..3: -inf everywhere but one, all -inf, a NaN; row 4 holds a +inf
};

void check_case(std::mt19937& rng, const Case& c) {
  const int64_t R = c.R, V = c.V, n = R * V;
  Logits L = random_logits(rng, R, V, c.d, c.scale);
  if (c.offset != 0.0f || c.special) {
    for (int64_t i = 0; i < n; i++) {
      float x = (float)L.f64[i] + c.offset;
      if (c.special) {
        const int64_t r = i / V, v = i % V;
        if ((r == 1 && v != V / 2) || r == 2) x = -INFINITY;
        if (r == 3 && v == V - 1) x = NAN;
        if (r == 4 && v == 0) x = INFINITY;
      }
      if (c.d == DType::f32)
        L.f32[i] = x;
      else
        L.h16[i] = c.d == DType::bf16 ? f32_to_bf16(x) : f32_to_f16(x);
    }
  }
  std::vector<int32_t> y(R);
  std::vector<float> mask(R);
  std::vector<double> g(R);
  for (int64_t r = 0; r < R; r++) {
    y[r] = (int32_t)(rng() % V);
    mask[r] = R > 1 && r % 7 == 5 ? 0.0f : 1.0f;
    g[r] = c.g * ((double)(rng() % 1000) / 500.0 - 1.0);
  }
  if (R > 6) g[6] = 0.0;
  if (c.special && R > 1) y[1] = (int32_t)(V / 2);  // the row's one finite logit
  const float inv_tau = 1.0f / c.tau;
  std::vector<float> lp(R), lz(R), rm(R), rl(R);
  std::vector<double> lp64(R);
  token_logprobs_forward_cpu(lp.data(), lz.data(), rm.data(), rl.data(), L.data(), c.d, y.data(), mask.data(), R, V,
                             c.tau, 0, lp64.data());
  const size_t esz = dtype_bytes(c.d);
  for (int64_t r = 0; r < R; r++) {
    const void* row = (const char*)L.data() + (size_t)(r * V) * esz;
    if (mask[r] == 0.0f) continue;  // the kernel writes zeros without reading the row
    const RowStats s = forward_row(row, c.d, V, inv_tau, y[r]);
    const double scale = 1.0 + std::fabs((double)lz[r]);
    const bool same_nan = std::isnan(s.l64) == std::isnan(lp64[r]);
    CHECK(same_nan && (std::isnan(lp64[r]) || std::fabs(s.l64 - lp64[r]) <= 1e-6 * scale) && !(s.l64 > 0.0) &&
              (s.l == (float)s.l64 || std::isnan(s.l64)),
          "%s row %lld: l %.10g, cpu %.10g", c.name, (long long)r, s.l64, lp64[r]);
    CHECK((std::isnan(s.lz) && std::isnan(lz[r])) || s.lz == lz[r] || std::fabs(s.lz - lz[r]) <= 1e-6 * scale,
          "%s row %lld: logZ %.9g, cpu %.9g", c.name, (long long)r, s.lz, lz[r]);
    if (std::isfinite(lz[r]))
      CHECK(s.m == rm[r] && std::fabs(s.lse - rl[r]) <= 1e-6 * (1.0 + std::fabs(rl[r])),
            "%s row %lld: split (%.9g, %.9g), cpu (%.9g, %.9g)", c.name, (long long)r, s.m, s.lse, rm[r], rl[r]);
    if (V == 1 && std::isfinite(lz[r]))
      CHECK(s.l64 == 0.0, "%s row %lld: V = 1 gives l %g", c.name, (long long)r, s.l64);
  }
  // The backward from the CPU's split, against the CPU's backward from it (in place for float32).
  std::vector<float> want((size_t)n), got((size_t)n, -7.0f);
  token_logprobs_backward_cpu(want.data(), L.data(), c.d, y.data(), mask.data(), rm.data(), rl.data(), g.data(), R, V,
                              c.tau, 0);
  std::vector<float> inplace = c.d == DType::f32 ? L.f32 : std::vector<float>();
  for (int64_t r = 0; r < R; r++) {
    const void* row = (const char*)L.data() + (size_t)(r * V) * esz;
    backward_row(got.data() + r * V, row, c.d, V, inv_tau, y[r], mask[r] != 0.0f, g[r], rm[r], rl[r]);
    if (!inplace.empty())
      backward_row(inplace.data() + r * V, inplace.data() + r * V, c.d, V, inv_tau, y[r], mask[r] != 0.0f, g[r], rm[r],
                   rl[r]);
  }
  for (int64_t r = 0; r < R; r++) {
    double err = 0, norm = 0;
    bool pattern = true;  // NaN and inf where the CPU has them, and only there
    for (int64_t v = 0; v < V; v++) {
      const float a = got[r * V + v], b = want[r * V + v];
      pattern &= std::isnan(a) == std::isnan(b) && std::isinf(a) == std::isinf(b) && (!std::isinf(a) || a == b);
      if (std::isfinite(a) && std::isfinite(b)) err += ((double)a - b) * ((double)a - b), norm += (double)b * b;
    }
    CHECK(pattern, "%s: gradient row %lld has NaN or inf where the CPU's has not (or the reverse)", c.name,
          (long long)r);
    CHECK(std::sqrt(err) <= 1e-5 * std::sqrt(norm) + 1e-30, "%s: gradient row %lld rel err %.3g", c.name, (long long)r,
          std::sqrt(err / (norm + 1e-300)));
    if (mask[r] == 0.0f || g[r] == 0.0)
      for (int64_t v = 0; v < V; v++)
        CHECK(got[r * V + v] == 0.0f, "%s: row %lld must be 0 (masked or g = 0)", c.name, (long long)r);
  }
  if (!inplace.empty())
    CHECK(std::memcmp(inplace.data(), got.data(), (size_t)n * 4) == 0, "%s: in place differs", c.name);
}

// A dominant token: every logit 0 but the target's, s above them, so that 1 - p = (V - 1) e^-s
// lies far below float32's (and at s = 28 double's) ulp of 1. l must keep its relative precision:
// the threads count the max's terms apart from the rest (Lse::n).
void check_dominant() {
  for (int64_t V : {2, 9, 33, 1000, 4099, 32768})
    for (float s : {16.625f, 20.0f, 28.0f})
      for (int64_t at : {(int64_t)0, V / 2, V - 1}) {
        std::vector<float> z((size_t)V, 0.0f);
        z[(size_t)at] = s;
        const RowStats st = forward_row(z.data(), DType::f32, V, 1.0f, (int32_t)at);
        const double want = -std::log1p((double)(V - 1) * std::exp(-(double)s));
        CHECK(std::fabs(st.l64 / want - 1.0) <= 2e-6, "dominant V=%lld s=%g at %lld: l %.9g want %.9g", (long long)V, s,
              (long long)at, st.l64, want);
      }
}

}  // namespace

int main() {
  check_dominant();
  std::mt19937 rng(97);
  // V: 1, 2, odd (no vector walk past the first row), below one vector per thread, around the
  // unrolled walk's reach (kUnroll * kThreads vectors) and a real vocabulary
  const int64_t vocabs[] = {1, 2, 7, 129, 2048, 4097, 8192, 16385, 32768, 151936};
  const DType dts[] = {DType::f32, DType::bf16, DType::f16};
  for (int64_t V : vocabs)
    for (DType d : dts) {
      const int64_t R = V > 40000 ? 3 : 9;
      check_case(rng, {"random", R, V, d, d == DType::bf16 ? 0.7f : 1.0f, 3.0f, 0.0f, 1.0, false});
      if (V >= 2) check_case(rng, {"special rows", std::max<int64_t>(R, 6), V, d, 1.0f, 3.0f, 0.0f, 1.0, true});
    }
  const int64_t V = 1031;  // odd: a row's start is 16-byte aligned only every 4th (8th) row
  const Case extremes[] = {
      {"|z| 1e4, tau 1e-6", 9, V, DType::f32, 1e-6f, 1.0f, 1e4f, 0.5, false},
      {"tau 1e-38", 9, V, DType::f32, 1e-38f, 5.0f, 0.0f, 1e-30, false},
      {"tau 1e37", 9, V, DType::f32, 1e37f, 3e37f, 0.0f, 0.5, false},
      {"+-3e38, tau 7", 9, V, DType::f32, 7.0f, 1e38f, 0.0f, 0.5, false},
      {"+-3e38, tau 1e37", 9, V, DType::f32, 1e37f, 1e38f, 0.0f, 0.5, false},
      {"g 1e30, tau 1e-9", 9, V, DType::f32, 1e-9f, 3.0f, 0.0f, 1e30, false},
      {"g 1e300", 9, V, DType::bf16, 0.7f, 3.0f, 0.0f, 1e300, false},
      {"g 1e300, tau 1e-30", 9, V, DType::f16, 1e-30f, 3.0f, 0.0f, 1e300, false},
      {"g 1e-300", 9, V, DType::f32, 1.0f, 3.0f, 0.0f, 1e-300, false},
  };
  for (const Case& c : extremes) check_case(rng, c);
  std::printf("%d checks, %d failures\n%d passed, %d failed\n", checks, failures, checks - failures, failures);
  return failures ? 1 : 0;
}
