// Row kernels of token_logprobs, written once with GCC vector extensions and compiled once per
// instruction set (rows_avx512.cc, rows_avx2.cc, rows_generic.cc set GVPO_VW and the target).
// token_logprobs.cc picks one at run time, so one build runs on machines with and without AVX-512.
//
// Forward, per row of V logits, one pass over memory (row_logsumexp): every element's term is
// 2^((z - m) * c) (term, below) with c = log2(e)/tau and m the max seen so far, taken block by
// block (64 vectors, 4 KiB of float32 under AVX-512) with no max pass of its own: the block is summed
// against m while its max is kept; if that max passed m (rare after the first blocks), m is
// raised to it and the sum rescaled, the block summed again from L1 when its terms could have
// passed 2^JUMP. At the end m is the row's max, whose term is 1, so lse >= 0. 16-bit logits are
// widened in registers as they are loaded; every sum is flushed to double once per block.
// Backward, per row: grad[v] = -g/tau * exp((z[v] - m) / tau - lse), the target's g/tau * (1 - p)
// apart (expm1 in double).
// bench/NOTES.md counts the operations per vector of each pass.
//
// Expects GVPO_VW (floats per vector) and GVPO_ISA (namespace name) to be defined.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "row_kernels.h"
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace gvpo {
namespace GVPO_ISA {

typedef float vf __attribute__((vector_size(GVPO_VW * 4)));
typedef int32_t vi __attribute__((vector_size(GVPO_VW * 4)));
typedef uint16_t vh __attribute__((vector_size(GVPO_VW * 2)));
typedef uint32_t vu __attribute__((vector_size(GVPO_VW * 4)));
typedef double vd __attribute__((vector_size(GVPO_VW * 8)));
// Unaligned views for loads and stores.
typedef float vf_u __attribute__((vector_size(GVPO_VW * 4), aligned(4)));
typedef uint16_t vh_u __attribute__((vector_size(GVPO_VW * 2), aligned(2)));
typedef uint32_t vu_u __attribute__((vector_size(GVPO_VW * 4), aligned(2)));

constexpr int W = GVPO_VW;
constexpr float LOG2E = 1.44269504088896341f;

// a in every lane; a - 0 (not 0 + a) keeps the sign of a zero: -0 stays -0.
static inline vf splat(float a) { return a - vf{}; }

// a * b + c, fused where the instruction set has FMA, written out rather than left to the
// compiler's -ffp-contract setting, so that every build rounds the same way.
static inline vf mla(vf a, vf b, vf c) {
#if GVPO_VW == 16
  return (vf)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif GVPO_VW == 8
  return (vf)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
  return a * b + c;
#endif
}

// max(a, lo) and min(a, hi) that keep a NaN in a (vmaxps/vminps return their second operand
// when either is NaN).
static inline vf max_keep_nan(vf a, float lo) {
#if GVPO_VW == 16
  return (vf)_mm512_max_ps(_mm512_set1_ps(lo), (__m512)a);
#elif GVPO_VW == 8
  return (vf)_mm256_max_ps(_mm256_set1_ps(lo), (__m256)a);
#elif defined(__SSE2__)
  return (vf)_mm_max_ps(_mm_set1_ps(lo), (__m128)a);
#else
  return a < splat(lo) ? splat(lo) : a;
#endif
}
static inline vf min_keep_nan(vf a, float hi) {
#if GVPO_VW == 16
  return (vf)_mm512_min_ps(_mm512_set1_ps(hi), (__m512)a);
#elif GVPO_VW == 8
  return (vf)_mm256_min_ps(_mm256_set1_ps(hi), (__m256)a);
#elif defined(__SSE2__)
  return (vf)_mm_min_ps(_mm_set1_ps(hi), (__m128)a);
#else
  return a > splat(hi) ? splat(hi) : a;
#endif
}
// Lane-wise max for the sweeps, a > b ? a : b (a NaN lane may or may not win: its exp turns the
// sum NaN anyway). vmaxps computes exactly that; written out because GCC turned some of the
// ternaries into a compare and a masked move.
static inline vf vmax(vf a, vf b) {
#if GVPO_VW == 16
  return (vf)_mm512_max_ps((__m512)a, (__m512)b);
#elif GVPO_VW == 8
  return (vf)_mm256_max_ps((__m256)a, (__m256)b);
#elif defined(__SSE2__)
  return (vf)_mm_max_ps((__m128)a, (__m128)b);
#else
  return a > b ? a : b;
#endif
}

// 1 + a1 f + ... + a5 f^5 by Horner's rule, in FMAs.
static inline vf poly5(vf f, float a5, float a4, float a3, float a2, float a1) {
  vf p = mla(splat(a5), f, splat(a4));
  p = mla(p, f, splat(a3));
  p = mla(p, f, splat(a2));
  p = mla(p, f, splat(a1));
  return mla(p, f, splat(1.0f));
}
// 2^f on [-0.5, 0.5], p(0) = 1: a degree-5 minimax polynomial (see vexp2).
static inline vf exp2_half(vf f) {
  return poly5(f, 1.328226877e-03f, 9.672068059e-03f, 5.550666898e-02f, 2.402223051e-01f, 6.931470633e-01f);
}

#if GVPO_VW != 16
// 2^t for t >= -127 (or NaN) without AVX-512: adding 1.5*2^23 + 127 rounds t to an integer n
// whose low mantissa bits are n + 127, the biased exponent of 2^n (shifted into place); f = t - n
// in [-0.5, 0.5] goes through vexp2's polynomial. t < -126.5 gives exactly 0.
static inline vf exp2_shifted(vf t) {
  const vf shift = splat(12582912.0f + 127.0f);
  const vf k = t + shift;
  const vf f = t - (k - shift);
  return exp2_half(f) * (vf)((vi)k << 23);
}
#endif

// 2^t, the exp of the backward (AVX2's takes exp2_eighths, below), the GEMM tiles and the
// fallbacks (the forward sweep has its own, term, below): t = n + f with n = round(t) and 2^f a
// degree-5 minimax polynomial on [-0.5, 0.5] with p(0) = 1, relative error under 1.6e-7 in
// float32 arithmetic and about half an ulp near 1, where 1 - p (a dominant target's gradient) cancels (bench/NOTES.md
// gives the error budget: what it puts into l, logZ and the gradient). NaN stays NaN, t = -inf
// gives 0, and t may be positive up to 127 (the forward lets terms reach 2^JUMP).
//   AVX-512: f = t - round(t) (vreduceps), n = t - f, then p(f) * 2^n (vscalefps): 8
//   operations (bench/NOTES.md compares the variants tried); underflow is gradual to 2^-149,
//   then 0; vreduceps gives f = 0 for t = -inf, so 2^-inf = 0.
//   Otherwise: t clamped at -127 (NaN kept), then exp2_shifted: 11 operations; t < -126.5
//   gives exactly 0.
static inline vf vexp2(vf t) {
#if GVPO_VW == 16
  const vf f = (vf)_mm512_reduce_ps((__m512)t, 0x08);  // t - round(t), precision exception suppressed
  const vf n = t - f;                                  // round(t), exactly
  return (vf)_mm512_scalef_ps((__m512)exp2_half(f), (__m512)n);
#else
  return exp2_shifted(max_keep_nan(t, -127.0f));
#endif
}

// exp(x) for x <= 0 (the GEMM tiles' and the fallbacks' form): 2^(x log2 e). x = -inf gives 0,
// NaN stays NaN.
static inline vf vexp(vf x) { return vexp2(x * splat(LOG2E)); }
static inline float sexp(float x) { return vexp(splat(x))[0]; }

// A probability exp(x) with x = z/tau - logZ, which is <= 0 in exact arithmetic: where rounding
// of a large |z/tau| (or a caller's logZ) makes x positive, x is taken as 0, so p <= 1 and never
// overflows to inf. NaN stays NaN.
static inline vf vexp_p(vf x) { return vexp(min_keep_nan(x, 0.0f)); }
static inline float sexp_p(float x) { return vexp_p(splat(x))[0]; }

// Load W logits as float32, in order.
static inline vf load(const float* p) { return (vf) * (const vf_u*)p; }
static inline vf load(const uint16_t* p, DType d) {
#if GVPO_VW == 16  // (GCC widens a 16-lane convertvector in two halves)
  if (d == DType::bf16) return (vf)_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16);
#elif GVPO_VW == 8
  if (d == DType::bf16) return (vf)_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p)), 16);
#endif
  if (d == DType::bf16) return (vf)(__builtin_convertvector(*(const vh_u*)p, vu) << 16);
#if GVPO_VW == 16
  return (vf)_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p));
#elif GVPO_VW == 8
  return (vf)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p));
#else
  // float16 -> float32 without F16C: shift exponent+mantissa into place and rescale by 2^112,
  // which turns normals and subnormals alike into the right float; inf and NaN keep an all-ones
  // exponent.
  vu h = __builtin_convertvector(*(const vh_u*)p, vu);
  vu sign = (h & 0x8000u) << 16;
  vu em = h & 0x7fffu;
  vf f = (vf)(em << 13) * splat(0x1p112f);
  vu bits = (vu)f;
  bits = em >= 0x7c00u ? ((em << 13) | 0x7f800000u) : bits;
  return (vf)(bits | sign);
#endif
}

static inline float load1(const void* logits, DType d, int64_t i) {
  if (d == DType::f32) return ((const float*)logits)[i];
  uint16_t h = ((const uint16_t*)logits)[i];
  uint16_t hv[W] = {};
  hv[0] = h;
  return load(hv, d)[0];
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

static inline float max_f32(const float* z, int64_t n) {
  vf vm = splat(-INFINITY);
  int64_t i = 0;
  for (; i + W <= n; i += W) vm = vmax(load(z + i), vm);
  float m = hmax(vm);
  for (; i < n; i++) m = z[i] > m ? z[i] : m;
  return m;
}

// The terms of the elements equal to m, exactly 1, as float32 1.0 where x == m and 0 elsewhere:
// the sums take them out of their float32 lanes and count them apart, so that no lane holds a 1
// that would swallow the small terms added to it (a dominant token's 1 - p is their sum).
static inline vf ones_at(vf x, vf m) { return (vf)((vi)(x == m) & (vi)splat(1.0f)); }

// Sum exp((z[i] - m) * inv_tau) over n elements (n a multiple of W) but for the elements equal to
// m, whose number goes to `ones`; two accumulators deep (alternate vectors), reduced in double;
// load(i) gives z[i .. i+W). (The GEMM tiles' log-sum-exp, which other tile code repeats in this
// order and form to get the same bits.)
template <typename Load>
static inline double sum_exp(Load load, int64_t n, float m, float inv_tau, double& ones) {
  const vf vm = splat(m), s = splat(inv_tau);
  vf a0 = splat(0.0f), a1 = a0, o = a0;
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    const vf x0 = load(i), x1 = load(i + W), o0 = ones_at(x0, vm), o1 = ones_at(x1, vm);
    a0 += vexp((x0 - vm) * s) - o0;
    a1 += vexp((x1 - vm) * s) - o1;
    o += o0 + o1;
  }
  if (i < n) {
    const vf x0 = load(i), o0 = ones_at(x0, vm);
    a0 += vexp((x0 - vm) * s) - o0;
    o += o0;
  }
  ones = hsum(o);
  return hsum(a0 + a1);
}

constexpr int64_t STEP = 2 * W;  // elements per load2
#ifndef GVPO_PF
#define GVPO_PF 4096  // bytes
#endif

// Two vectors of float32 from 2W logits, in any lane order (the forward only sums and maxes
// them): bfloat16 pairs are split into their low and high halves with one shift and one and.
template <int D>
struct Src {
  const void* p;
  int64_t ahead;  // prefetch distance in bytes (0 for a copy on the stack)
  inline void load2(int64_t i, vf& a, vf& b) const {
    if (D == 0) {
      a = load((const float*)p + i);
      b = load((const float*)p + i + W);
    } else if (D == 1) {
      const vu v = *(const vu_u*)((const uint16_t*)p + i);
      a = (vf)(v << 16);
      b = (vf)(v & 0xffff0000u);
    } else {
      a = load((const uint16_t*)p + i, DType::f16);
      b = load((const uint16_t*)p + i + W, DType::f16);
    }
  }
  // Software prefetch into L1 of the lines `ahead` bytes past the step at element i: the sweep
  // spends more time per line than a plain read, and this keeps the loads ahead of it
  // (bench/NOTES.md: 1-16 KiB tried). The address is computed as an integer: past the end of
  // the logits a prefetch is a hint that touches nothing.
  inline void prefetch(int64_t i) const {
#if defined(__x86_64__) || defined(__i386__)
    const uintptr_t a = (uintptr_t)p + (uintptr_t)(i * (D == 0 ? 4 : 2) + ahead);
    for (int64_t b = 0; b < STEP * (D == 0 ? 4 : 2); b += 64) _mm_prefetch((const char*)(a + b), _MM_HINT_T0);
#else
    (void)i;
#endif
  }
};

static inline bool any_gt(vf a, float b) {
#if GVPO_VW == 16
  return _mm512_cmp_ps_mask((__m512)a, _mm512_set1_ps(b), _CMP_GT_OQ) != 0;
#elif GVPO_VW == 8
  return _mm256_movemask_ps(_mm256_cmp_ps((__m256)a, _mm256_set1_ps(b), _CMP_GT_OQ)) != 0;
#elif defined(__SSE2__)
  return _mm_movemask_ps(_mm_cmpgt_ps((__m128)a, _mm_set1_ps(b))) != 0;
#else
  for (int i = 0; i < W; i++)
    if (a[i] > b) return true;
  return false;
#endif
}

#if GVPO_VW == 8
// 2^(d c8 / 8) for d c8 >= -1016.4 (or NaN), the AVX2 exp of the forward's term and the backward:
// J = round(d c8) by one FMA that adds 1.5*2^23 + 8*127 (J lands in the sum's low bits),
// f = d c8 - J in [-0.5, 0.5] by a second, 2^(f/8) by a degree-3 polynomial (relative error
// 8.5e-8 in float32 Horner; the whole exp 1.6e-7, vexp2 1.7e-7), and 2^(J/8) = 2^n 2^(j/8)
// (J = 8 n + j) from the low bits: a shift for the exponent, an 8-entry table (vpermd) for
// 2^(j/8), one integer add. 10 operations, 5 of them FMAs where vexp2's degree-5 form needs 7:
// the FMA pipes are what bound the AVX2 sweeps (bench/NOTES.md, round 4). On Zen 3 the vpermd
// takes two FMA slots, and nothing tried in its place was faster (bench/NOTES.md, "Where the
// AVX2 sweep's time goes on Zen 3"). J = -1016 gives exactly 0; J up to 1023 is right.
static inline vf exp2_eighths(vf d, vf c8) {
  const vf S = splat(12582912.0f + 1016.0f);  // 1.5 * 2^23 + 8 * 127
  const vf k = mla(d, c8, S);                 // S + J
  const vf f = mla(d, c8, S - k);             // d c8 - J
  vf p = mla(splat(1.0839106108e-04f), f, splat(3.7540255580e-03f));
  p = mla(p, f, splat(8.6643405259e-02f));
  p = mla(p, f, splat(1.0f));  // 2^(f/8)
  // k's low 12 bits shifted up by 20 give the biased exponent n + 127 and j << 20; the table
  // entry j (vpermd reads the low 3 bits) is 2^(j/8) with those two taken out again.
  const __m256i tab = _mm256_setr_epi32(0, -289342, -509968, -655657, -719629, -694486, -572163, -343865);
  const __m256i ki = (__m256i)k;
  return p * (vf)_mm256_add_epi32(_mm256_slli_epi32(ki, 20), _mm256_permutevar8x32_epi32(tab, ki));
}
#endif

// The forward sweep's term 2^(d c) of d = x - m <= 0 (x a logit, m the reference, c =
// log2(e)/tau); d = 0 (the max) gives exactly 1.
//   AVX-512: t = d c, f = t - floor(t) (vreduceps), a degree-5 polynomial for 2^f on [0, 1)
//   with p(0) = 1, then p * 2^floor(t) (vscalefps, which floors t itself): 8 operations, one
//   fewer than vexp2(d * c), which rounds to nearest and must form n = t - f; d = -inf gives 0.
//   (Only the sweep's sum takes this form: near t = 0 from below p is evaluated near 1, with
//   the polynomial's 1.5e-7 relative error, where vexp2 keeps about half an ulp; the backward's
//   probabilities near 1 keep vexp2, or under AVX2 exp2_eighths, whose p(f) near f = 0 is as close.)
//   AVX2: d clamped below at dmin (a term of exactly 0), then exp2_eighths with 8 c: 11
//   operations, the final multiply fused into the accumulation.
//   Elsewhere (no FMA): vexp2(d * c).
// A NaN stays NaN. Terms of d > 0 are only right up to 2^JUMP (the sweep sums a block again when
// its max passed m by more). c must lie in [MIN_C, MAX_C]: below it -inf * c would not reach the
// clamp, above it 8 c is not finite (rows with tau above about 1e30 or below 4e-38 take the
// two-pass path).
constexpr float MIN_C = 1e-30f, MAX_C = 4e37f;
struct Terms {
  vf m, c;
  vf c8, dmin;  // AVX2's 8 c, and its clamp: 8 d c then rounds to -1016 or above
  Terms(float m_, float c_) : m(splat(m_)), c(splat(c_)), c8(splat(8.0f * c_)), dmin(splat(-127.0f / c_)) {}
};
// 2^f on [0, 1), p(0) = 1: relative error under 1.5e-7 in float32 Horner (bench/NOTES.md).
static inline vf exp2_01(vf f) {
  return poly5(f, 1.867118292e-03f, 9.017054923e-03f, 5.579989403e-02f, 2.401644588e-01f, 6.931512952e-01f);
}
static inline vf term(vf d, const Terms& r) {
#if GVPO_VW == 16
  const vf t = d * r.c;
  const vf f = (vf)_mm512_reduce_ps((__m512)t, 0x09);  // t - floor(t), precision exception suppressed
  return (vf)_mm512_scalef_ps((__m512)exp2_01(f), (__m512)t);
#elif GVPO_VW == 8
  return exp2_eighths((vf)_mm256_max_ps((__m256)r.dmin, (__m256)d), r.c8);  // NaN kept (vmaxps: its second operand)
#else
  return vexp2(d * r.c);
#endif
}

constexpr int64_t BLOCK = 32 * STEP;  // elements per reference check: 4 KiB of float32 (AVX-512)
// A block whose max lies above the reference m by at most JUMP/c keeps its terms (computed
// against m, at most 2^JUMP) and is rescaled with the rest; one further above is summed again
// against its own max. Either way m becomes the block's max: at the end m is the row's max.
#ifndef GVPO_JUMP
#define GVPO_JUMP 2.0f
#endif
constexpr float JUMP = GVPO_JUMP;

// Sum of the terms (see Terms) over steps [s0, s1) of src and its lane-wise max (mx): two steps (four
// accumulators) per iteration under AVX-512; one step (two accumulators) below it, where 16
// vector registers would otherwise spill the accumulators.
template <int D>
static inline vf block_sum(const Src<D>& src, int64_t s0, int64_t s1, const Terms& r, vf& mx) {
  vf a0 = splat(0.0f), a1 = a0, x0, x1;
  int64_t s = s0;
#if GVPO_VW == 16
  vf a2 = a0, a3 = a0, x2, x3;
  for (; s + 2 <= s1; s += 2) {
    src.prefetch(s * STEP);
    src.prefetch(s * STEP + STEP);
    src.load2(s * STEP, x0, x1);
    src.load2(s * STEP + STEP, x2, x3);
    mx = vmax(vmax(x0, x1), vmax(vmax(x2, x3), mx));
    a0 += term(x0 - r.m, r);
    a1 += term(x1 - r.m, r);
    a2 += term(x2 - r.m, r);
    a3 += term(x3 - r.m, r);
  }
  a0 += a2;
  a1 += a3;
#endif
  for (; s < s1; s++) {
    src.prefetch(s * STEP);
    src.load2(s * STEP, x0, x1);
    mx = vmax(vmax(x0, x1), mx);
    a0 += term(x0 - r.m, r);
    a1 += term(x1 - r.m, r);
  }
  return a0 + a1;
}

// The terms of steps [s0, s1) against r.m (the row's max) with the max's own terms, exactly 1,
// taken out and counted in `ones` instead: what is left has no 1 in any lane to swallow it.
template <int D>
static inline vf rest_of(const Src<D>& src, int64_t s0, int64_t s1, const Terms& r, vf& ones) {
  vf a0 = splat(0.0f), a1 = a0, x0, x1;
  for (int64_t s = s0; s < s1; s++) {
    src.load2(s * STEP, x0, x1);
    const vf o0 = ones_at(x0, r.m), o1 = ones_at(x1, r.m);
    a0 += term(x0 - r.m, r) - o0;
    a1 += term(x1 - r.m, r) - o1;
    ones += o0 + o1;
  }
  return a0 + a1;
}

// The row's statistics by a max pass and a sum pass in natural units, for rows whose
// log2(e)/tau is above MAX_C (tau below about 3.6e-38) or below MIN_C (tau above about 1.4e30).
static RowStats lse_two_pass(const void* row, DType d, int64_t V, float inv_tau) {
  float m = -INFINITY;
  bool nan = false;
  for (int64_t i = 0; i < V; i++) {
    const float z = load1(row, d, i);
    m = z > m ? z : m;
    nan = nan || z != z;
  }
  if (m == -INFINITY || m == INFINITY || nan) return {m, m == -INFINITY && !nan ? -INFINITY : NAN};
  double sum = 0.0;
  for (int64_t i = 0; i < V; i++) sum += sexp((float)(((double)load1(row, d, i) - m) * inv_tau));
  return {m, std::log(sum)};
}

template <int D>
static RowStats lse_one_pass(const void* row, int64_t V, float inv_tau) {
  typedef typename std::conditional<D == 0, float, uint16_t>::type E;
  const float c = inv_tau * LOG2E;
  const int64_t full = V / STEP;  // whole steps; the rest goes through a copy padded with -inf
  E pad[STEP];
  E neg_inf;
  if constexpr (D == 0)
    neg_inf = -INFINITY;
  else
    neg_inf = D == 1 ? 0xff80u : 0xfc00u;
  for (int64_t j = 0; j < STEP; j++) pad[j] = full * STEP + j < V ? ((const E*)row)[full * STEP + j] : neg_inf;
  const Src<D> src{row, GVPO_PF}, tail{pad, 0};
  const int64_t steps = full + (full * STEP < V), bs = BLOCK / STEP;
  auto block_of = [&](int64_t s0, int64_t s1, const Terms& r, vf& mx) {
    vf sum = block_sum(src, s0, s1 < full ? s1 : full, r, mx);
    if (s1 > full) sum += block_sum(tail, 0, 1, r, mx);
    return sum;
  };
  // The reference: the max of the first block that has a finite one (read from memory; the
  // block is then in L1 for its sum). Blocks before it hold only -inf (terms 0) or a NaN.
  float m = -INFINITY;
  int64_t s0 = 0;
  for (; s0 < steps; s0 += bs) {
    const int64_t s1 = s0 + bs < steps ? s0 + bs : steps;
    vf mx = splat(-INFINITY);
    for (int64_t s = s0; s < s1; s++) {
      vf a, b;
      if (s < full)
        src.load2(s * STEP, a, b);
      else
        tail.load2(0, a, b);
      mx = vmax(vmax(a, b), mx);
    }
    m = hmax(mx);
    if (m == INFINITY) return {m, NAN};
    if (m > -INFINITY) break;
    for (int64_t v = s0 * STEP; v < s1 * STEP && v < V; v++)  // a NaN in a block of -inf
      if (load1(row, D == 0 ? DType::f32 : (DType)D, v) != load1(row, D == 0 ? DType::f32 : (DType)D, v))
        return {m, NAN};
  }
  if (m == -INFINITY) return {m, -INFINITY};
  // The block that holds m (the reference block) is kept out of acc: in float32 its max's term,
  // 1, would swallow the small terms summed into the same lane, and with them the relative
  // precision of lse = log1p(sum of the other terms) that a dominant token's 1 - p needs. At the
  // end it is summed again against the final m with the max's terms taken out (rest_of).
  vd acc = vd{} + 0.0, pend = acc;  // pend: the reference block's sum, as acc would hold it
  int64_t ref = s0;
  Terms r(m, c);
  for (; s0 < steps; s0 += bs) {
    const int64_t s1 = s0 + bs < steps ? s0 + bs : steps;
    vf bmx = splat(-INFINITY);
    vf sum = block_of(s0, s1, r, bmx);
    if (__builtin_expect(any_gt(bmx, m), 0)) {  // a NaN never passes: the sum carries it
      const float bm = hmax(bmx);
      if (bm == INFINITY) return {bm, NAN};
      const Terms rb(bm, c);
      const double scale = std::exp2(((double)m - bm) * c);
      acc = (acc + pend) * scale;
      if ((double)(bm - m) * c > JUMP) {  // terms above 2^JUMP: sum the block again against bm
        vf unused = bmx;
        pend = __builtin_convertvector(block_of(s0, s1, rb, unused), vd);
      } else {
        pend = __builtin_convertvector(sum, vd) * scale;
      }
      ref = s0;
      m = bm;
      r = rb;
    } else if (s0 == ref) {
      pend = __builtin_convertvector(sum, vd);
    } else {
      acc += __builtin_convertvector(sum, vd);
    }
  }
  // Where the other terms sum to 8 or more, no second look: the max's lane rounded at most 32 adds
  // at half an ulp of 1 + its share of them (in units of the final max's term), which relative to
  // their sum is no more than float32 summation costs any lane (2e-6 at worst, 2e-7 typically).
  double sf = 0.0;
  for (int i = 0; i < W; i++) sf += acc[i] + pend[i];
  if (sf >= 9.0) return {m, std::log(sf)};
  vf ones = splat(0.0f);
  const int64_t r1 = ref + bs < steps ? ref + bs : steps;
  vf rest = rest_of(src, ref, r1 < full ? r1 : full, r, ones);
  if (r1 > full) rest += rest_of(tail, 0, 1, r, ones);
  acc += __builtin_convertvector(rest, vd);
  double s = 0.0;
  for (int i = 0; i < W; i++) s += acc[i];
  // s: the terms below 1; hsum(ones) >= 1: the elements equal to m (NaN kept)
  return {m, std::log1p(s + (hsum(ones) - 1.0))};
}

// The row's statistics: m = its max logit and lse = log sum_v exp((z[v] - m) / tau) >= 0, so
// that logZ = m / tau + lse. A row of -inf gives m = -inf; a NaN anywhere or a +inf gives
// lse = NaN.
RowStats row_logsumexp(const void* row, DType d, int64_t V, float inv_tau) {
  const float c = inv_tau * LOG2E;
  if (!(c >= MIN_C && c <= MAX_C)) return lse_two_pass(row, d, V, inv_tau);
  if (d == DType::f32) return lse_one_pass<0>(row, V, inv_tau);
  if (d == DType::bf16) return lse_one_pass<1>(row, V, inv_tau);
  return lse_one_pass<2>(row, V, inv_tau);
}

// (z[y] - m) * inv_tau: the target's exponent in natural units, in double: z[y] - m can pass
// float32's range (logits near -3e38 and +3e38) where l itself is a float.
double row_target(const void* row, DType d, int32_t y, float m, float inv_tau) {
  return ((double)load1(row, d, y) - m) * inv_tau;
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
// exponent keeps full precision however large |z/tau| is. The exponent is one FMA in natural
// units, so that it is rounded once where it is near 0 (a dominant token's p, whose 1 - p
// cancels), and only then turned to base 2 (vexp2; exp2_eighths under AVX2).
void row_backward(float* grad, const void* row, DType d, int64_t V, float inv_tau, float m, float lse, int32_t y,
                  float coef) {
  const vf s = splat(inv_tau), vm = splat(m), nl = splat(-lse), nc = splat(-coef);
#if GVPO_VW == 8
  // AVX2: exp2_eighths, x clamped at -88 (where 8 x log2(e) rounds to -1016: p = 0).
  const vf c8 = splat(8.0f * LOG2E);
  auto p_of = [&](vf z) { return exp2_eighths(max_keep_nan(min_keep_nan(mla(z - vm, s, nl), 0.0f), -88.0f), c8); };
#else
  auto p_of = [&](vf z) { return vexp_p(mla(z - vm, s, nl)); };
#endif
  auto one = [&](int64_t i) { return -coef * p_of(splat(load1(row, d, i)))[0]; };
  const float zy = load1(row, d, y);  // read before grad (which may alias the row) is written
  int64_t i = 0;
  // tau above 1e36: z - m can pass float32's range (logits near -3e38 and +3e38) where its
  // exponent (z - m)/tau does not underflow, so such rows take the exponent in double.
  if (!(inv_tau >= 1e-36f)) {
    for (; i < V; i++) {
      const double x = ((double)load1(row, d, i) - m) * inv_tau - lse;
      grad[i] = (float)(-(double)coef * std::exp(x > 0.0 ? 0.0 : x));
    }
  }
#if GVPO_VW == 16
  for (; i < V && ((uintptr_t)(grad + i) & 63) != 0; i++) grad[i] = one(i);  // to a 64-byte boundary
#endif
  if (d == DType::f32) {
    const float* z = (const float*)row;
    for (; i + W <= V; i += W) store_grad(grad + i, nc * p_of(load(z + i)));
  } else {
    const uint16_t* z = (const uint16_t*)row;
    for (; i + W <= V; i += W) store_grad(grad + i, nc * p_of(load(z + i, d)));
  }
  for (; i < V; i++) grad[i] = one(i);
#if GVPO_VW == 16
  _mm_sfence();  // streaming stores are ordered before the ordinary one below (and the caller's reads)
#endif
  // The target's coef * (1 - p) from expm1 in double: for a dominant target p is near 1, and
  // 1 - p taken from a float32 p would keep only its last bits. A NaN target logit stays NaN
  // (the clamp's comparison is false for it).
  const double xy = ((double)zy - m) * inv_tau - lse;
  grad[y] = (float)(-(double)coef * std::expm1(xy > 0.0 ? 0.0 : xy));
}

// The exp-throughput probe: the forward sweep's own term on register-resident arguments (CH
// independent chains, each one add, one term and one accumulate per vector, as in the sweep),
// no memory traffic. c is read through a volatile, so that the compiler cannot drop the
// multiplication by it or contract it differently from the sweep's code. Returns the elements
// exponentiated. (Fewer chains below AVX-512: 16 vector registers hold 4 chains and the exp's
// constants without spilling.)
double exp_probe(int64_t iterations, float seed) {
  constexpr int CH = W == 16 ? 8 : 4;
  vf x[CH], acc[CH];
  const vf step = splat(-1e-7f);
  volatile float one = 1.0f;
  const Terms r(0.0f, one);
#pragma GCC unroll 8
  for (int j = 0; j < CH; j++) x[j] = splat(-0.37f * (float)(j + 1) - 0.01f * seed), acc[j] = splat(0.0f);
  for (int64_t k = 0; k < iterations; k++) {
#pragma GCC unroll 8
    for (int j = 0; j < CH; j++) {
      x[j] += step;
      acc[j] += term(x[j], r);
    }
  }
  vf s = splat(0.0f);
  for (int j = 0; j < CH; j++) s += acc[j];
  volatile float sink = s[0];  // keeps the loop
  (void)sink;
  return (double)iterations * CH * W;
}

}  // namespace GVPO_ISA
}  // namespace gvpo
