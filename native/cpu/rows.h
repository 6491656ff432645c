// Row kernels of token_logprobs, written once with GCC vector extensions and compiled once per
// instruction set (rows_avx512.cc, rows_avx2.cc, rows_generic.cc set GVPO_VW and the target).
// token_logprobs.cc picks one at run time, so one build runs on machines with and without AVX-512.
//
// Forward, per row of V logits: for each tile of TILE elements take the tile max (16-bit logits
//   are first converted into a stack tile in L1), rescale the running sum if the max grew, add
//   sum exp((z - max) / tau) over the tile: the logits are read from memory once and exp is
//   evaluated once per element.
// Backward, per row: grad[v] = -g/tau * exp((z[v] - m)/tau - lse), then grad[y] += g/tau.
//
// Expects GVPO_VW (floats per vector) and GVPO_ISA (namespace name) to be defined.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "row_kernels.h"
#if GVPO_VW == 16
#include <immintrin.h>
#endif

namespace gvpo {
namespace GVPO_ISA {

typedef float vf __attribute__((vector_size(GVPO_VW * 4)));
typedef int32_t vi __attribute__((vector_size(GVPO_VW * 4)));
typedef uint16_t vh __attribute__((vector_size(GVPO_VW * 2)));
typedef uint32_t vu __attribute__((vector_size(GVPO_VW * 4)));
// Unaligned views for loads and stores.
typedef float vf_u __attribute__((vector_size(GVPO_VW * 4), aligned(4)));
typedef uint16_t vh_u __attribute__((vector_size(GVPO_VW * 2), aligned(2)));

constexpr int W = GVPO_VW;
constexpr int TILE = 2048;  // 8 KiB of float32: stays in L1 between the max and the exp sweep

static inline vf splat(float a) { return vf{} + a; }

// exp(x) for x <= 0 (Cephes polynomial, ~2 ulp): x < -86 gives exactly 0 (so -inf -> 0), and
// NaN propagates. No input clamp: what the polynomial makes of -inf or tiny x is discarded by
// the final select. 2^n is applied by vscalefps under AVX-512 (one op instead of four).
static inline vf vexp(vf x) {
  const vf lo = splat(-86.0f);
  const vf magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  vf t = x * splat(1.44269504088896341f) + magic;
  vf n = t - magic;
  vf r = x - n * splat(0.693359375f) - n * splat(-2.12194440e-4f);
  vf p = splat(1.9875691500e-4f);
  p = p * r + splat(1.3981999507e-3f);
  p = p * r + splat(8.3334519073e-3f);
  p = p * r + splat(4.1665795894e-2f);
  p = p * r + splat(1.6666665459e-1f);
  p = p * r + splat(5.0000001201e-1f);
  p = p * (r * r) + r + splat(1.0f);
#if GVPO_VW == 16
  vf y = (vf)_mm512_scalef_ps((__m512)p, (__m512)n);
#else
  vi ni = (vi)t - (vi)magic;
  vf y = p * (vf)((ni + 127) << 23);
#endif
  return x < lo ? splat(0.0f) : y;
}

static inline float sexp(float x) { return vexp(splat(x))[0]; }

// A probability exp(x) with x = z/tau - logZ, which is <= 0 in exact arithmetic: where rounding
// of a large |z/tau| (or a caller's logZ) makes x positive, x is taken as 0, so p <= 1 and never
// overflows to inf (vexp assumes x <= 0). NaN stays NaN.
static inline vf vexp_p(vf x) { return vexp(x > splat(0.0f) ? splat(0.0f) : x); }
static inline float sexp_p(float x) { return vexp_p(splat(x))[0]; }

// Load W logits as float32.
static inline vf load(const float* p) { return (vf) * (const vf_u*)p; }
static inline vf load(const uint16_t* p, DType d) {
  vu h = __builtin_convertvector(*(const vh_u*)p, vu);
  if (d == DType::bf16) return (vf)(h << 16);
  // float16 -> float32: shift exponent+mantissa into place and rescale by 2^112, which turns
  // normals and subnormals alike into the right float; inf and NaN keep an all-ones exponent.
  vu sign = (h & 0x8000u) << 16;
  vu em = h & 0x7fffu;
  vf f = (vf)(em << 13) * splat(0x1p112f);
  vu bits = (vu)f;
  bits = em >= 0x7c00u ? ((em << 13) | 0x7f800000u) : bits;
  return (vf)(bits | sign);
}

static inline float load1(const void* logits, DType d, int64_t i) {
  if (d == DType::f32) return ((const float*)logits)[i];
  uint16_t h = ((const uint16_t*)logits)[i];
  vh hv{};
  hv[0] = h;
  return load((const uint16_t*)&hv, d)[0];
}

static inline float hmax(vf v) {
  float m = v[0];
  for (int i = 1; i < W; i++) m = v[i] > m ? v[i] : m;
  return m;
}
static inline double hsum(vf v) {
  double s = 0;
  for (int i = 0; i < W; i++) s += v[i];
  return s;
}

// Convert n (<= TILE) 16-bit logits into tile as float32, padded with -inf to a multiple of W.
// Returns the tile max (a NaN logit may or may not win; the sum then turns NaN anyway).
static inline float fill_tile(float* tile, const uint16_t* src, DType d, int64_t n) {
  vf vmax = splat(-INFINITY);
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    vf z = load(src + i, d);
    *(vf*)(tile + i) = z;
    vmax = z > vmax ? z : vmax;
  }
  if (i < n) {
    vf z = splat(-INFINITY);
    for (int j = 0; i + j < n; j++) z[j] = load1(src, d, i + j);
    *(vf*)(tile + i) = z;
    vmax = z > vmax ? z : vmax;
  }
  return hmax(vmax);
}

static inline float max_f32(const float* z, int64_t n) {
  vf vmax = splat(-INFINITY);
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    vf x = load(z + i);
    vmax = x > vmax ? x : vmax;
  }
  float m = hmax(vmax);
  for (; i < n; i++) m = z[i] > m ? z[i] : m;
  return m;
}

// Adds sum exp((z[i] - m) * s) over n elements (n a multiple of W), two accumulators deep to
// hide the FMA latency, reduced in double. load(i) gives z[i .. i+W).
template <typename Load>
static inline double sum_exp(Load load, int64_t n, float m, float inv_tau) {
  const vf vm = splat(m), s = splat(inv_tau);
  vf a0 = splat(0.0f), a1 = splat(0.0f);
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    a0 += vexp((load(i) - vm) * s);
    a1 += vexp((load(i + W) - vm) * s);
  }
  if (i < n) a0 += vexp((load(i) - vm) * s);
  return hsum(a0 + a1);
}

// The row's statistics: m = max_v z[v] (unscaled) and lse = log sum_v exp((z[v] - m) / tau),
// so that logZ = m / tau + lse. Every exponent is (z - m) * inv_tau: a subtraction then a
// product, rounded the same way for every element, the target included, and never positive;
// the maximum's term is exactly 1, so lse >= 0 and l = (z[y] - m) * inv_tau - lse <= 0.
// float32 rows are read in place (max, then the exp sweep from L1); 16-bit rows are converted
// once into a stack tile. A row of -inf gives m = -inf; a NaN anywhere gives lse = NaN.
RowStats row_logsumexp(const void* row, DType d, int64_t V, float inv_tau) {
  alignas(64) float tile[TILE];
  double sum = 0.0;
  float m = -INFINITY;
  for (int64_t base = 0; base < V; base += TILE) {
    const int64_t n = V - base < TILE ? V - base : TILE;
    const int64_t full = n / W * W;
    const float* z = d == DType::f32 ? (const float*)row + base : tile;
    const float bm = d == DType::f32 ? max_f32(z, n) : fill_tile(tile, (const uint16_t*)row + base, d, n);
    if (bm > m) {  // grew (false for NaN): rescale what we had
      if (sum != 0.0) sum *= std::exp((double)(m - bm) * inv_tau);
      m = bm;
    }
    if (m == -INFINITY) continue;  // everything so far is -inf: contributes 0
    if (m == INFINITY || std::isnan(bm)) return {m, NAN};
    if (d == DType::f32) {
      sum += sum_exp([&](int64_t i) { return load(z + i); }, full, m, inv_tau);
      for (int64_t i = full; i < n; i++) sum += sexp((z[i] - m) * inv_tau);
    } else {
      sum += sum_exp([&](int64_t i) { return *(vf*)(tile + i); }, (n + W - 1) / W * W, m, inv_tau);
    }
  }
  return {m, m == -INFINITY ? -INFINITY : std::log(sum)};
}

// (z[y] - m) * inv_tau, rounded exactly as row_logsumexp rounds the target's term.
float row_target(const void* row, DType d, int32_t y, float m, float inv_tau) {
  return (load1(row, d, y) - m) * inv_tau;
}

// Stores one vector of gradient. Under AVX-512 the stores are non-temporal when 64-byte aligned:
// the gradient is written once and not read back here, so streaming it past the cache saves the
// read-for-ownership of every line (a third of the gradient's memory traffic).
static inline void store_grad(float* p, vf v) {
#if GVPO_VW == 16
  _mm512_stream_ps(p, (__m512)v);
#else
  *(vf_u*)p = v;
#endif
}

// grad[v] = coef * ([v == y] - exp((z[v] - m) * inv_tau - lse)) for one row; grad may alias row
// (f32). With m = 0 and lse = logZ this is exp(z/tau - logZ); with the row's own (m, lse) the
// exponent keeps full precision however large |z/tau| is.
void row_backward(float* grad, const void* row, DType d, int64_t V, float inv_tau, float m,
                  float lse, int32_t y, float coef) {
  const vf s = splat(inv_tau), vm = splat(m), vl = splat(lse), nc = splat(-coef);
  auto one = [&](int64_t i) { return -coef * sexp_p((load1(row, d, i) - m) * inv_tau - lse); };
  int64_t i = 0;
#if GVPO_VW == 16
  for (; i < V && ((uintptr_t)(grad + i) & 63) != 0; i++) grad[i] = one(i);  // to a 64-byte boundary
#endif
  if (d == DType::f32) {
    const float* z = (const float*)row;
    for (; i + W <= V; i += W) store_grad(grad + i, nc * vexp_p((load(z + i) - vm) * s - vl));
  } else {
    const uint16_t* z = (const uint16_t*)row;
    for (; i + W <= V; i += W) store_grad(grad + i, nc * vexp_p((load(z + i, d) - vm) * s - vl));
  }
  for (; i < V; i++) grad[i] = one(i);
#if GVPO_VW == 16
  _mm_sfence();  // streaming stores are ordered before the ordinary one below (and the caller's reads)
#endif
  grad[y] += coef;
}

}  // namespace GVPO_ISA
}  // namespace gvpo
