// The per-thread bodies of token_logprobs.cu's kernels (one block of kThreads threads per row),
// written over explicit thread indices and load/store functions so that the same code also runs
// on the host, where native/tests/test_row_sweep.cc executes a block's threads one after another,
// merges their states in the order of the GPU's shuffles and compares the rows with the CPU
// kernels (no GPU needed to check the arithmetic, the rules and the index walks).
//
// The rules are the CPU's (native/cpu/token_logprobs.cc, rows.h):
//   forward   m = max_v z, s = sum_v exp((z - m)/tau) (double), lse = log s, logZ = m/tau + lse,
//             l = (z_y - m)/tau - lse in double, never positive; 0 when V = 1; NaN for a
//             non-finite logZ or a target outside [0, V)
//   backward  grad[v] = c ([v == y] - exp((z - m)/tau - lse)), c = g/tau taken in double: past
//             float32's range the row runs on c 2^-e and each element is scaled back (rounded
//             once, inf only where the element itself passes the range); the target's c (1 - p)
//             from expm1 in double; 0 rows (masked, g = 0, V = 1) and NaN rows (a bad target, a
//             non-finite split or g)
// Exponents are taken against the row's max in the logits' own units, so that l and p keep their
// precision however large |z/tau| is.
#pragma once
#include <cfloat>
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define GVPO_ROW __host__ __device__ __forceinline__
#else
#define GVPO_ROW inline
#endif

namespace gvpo {
namespace row_sweep {

constexpr int kThreads = 512;  // per block, one row per block
constexpr int kUnroll = 4;     // 16-byte vectors each thread loads before it uses the first
constexpr float kLog2e = 1.44269504088896341f;

GVPO_ROW bool finite(double x) { return x - x == 0.0; }  // false for inf and NaN

// e^x: the GPU's fast exponential on the device (2 ulp near 0, where p matters; it flushes results
// below 2^-126 to 0), the C library's on the host.
GVPO_ROW float exp_fast(float x) {
#ifdef __CUDA_ARCH__
  return __expf(x);
#else
  return std::exp(x);
#endif
}

// How a row's exponents are scaled: c = log2(e)/tau. `wide` where tau is above 1e36 (z - m can
// pass float32's range where the exponent does not underflow) or below 1e-38 (log2(e)/tau can pass
// it): the exponent is then taken in double.
struct Scale {
  float c, inv_tau;
  bool wide;
};
GVPO_ROW Scale scale_of(float inv_tau) { return {inv_tau * kLog2e, inv_tau, !(inv_tau >= 1e-36f && inv_tau <= 1e38f)}; }

// The exponent (z - m)/tau in base 2.
GVPO_ROW float arg2(float z, float m, const Scale& k) {
  return k.wide ? (float)(((double)z - (double)m) * (double)k.inv_tau * 1.4426950408889634) : (z - m) * k.c;
}

// Online log-sum-exp state: running max m of the logits, the number n of logits equal to it
// (terms of exactly 1) and the sum s of the other terms exp((z - m)/tau). n apart from s keeps the
// relative precision of s, a dominant token's 1 - p, which 1 + s in double would lose below 1e-16.
struct Lse {
  float m;
  double s, n;
};

// Adds n logits: the max first (a NaN is skipped there and poisons the sum), the state rescaled
// when the max rises, then the terms in float32 against it, added to the double sum (the max's
// own apart, counted in n: in the same float32 part a 1 would swallow the rest).
template <int n>
GVPO_ROW void lse_add(Lse& a, const float* x, const Scale& k) {
  float vm = x[0];
#pragma unroll
  for (int j = 1; j < n; j++) vm = fmaxf(vm, x[j]);
  if (vm > a.m) {
    a.s = (a.s + a.n) * (double)exp2f(arg2(a.m, vm, k));  // 0 while the state held only -inf (NaN stays NaN)
    a.n = 0.0;
    a.m = vm;
  }
  float part = 0.0f;
  if (a.m == -INFINITY) {  // nothing finite yet: -inf adds 0 (-inf - -inf must not be NaN), NaN poisons
#pragma unroll
    for (int j = 0; j < n; j++) part += x[j] == -INFINITY ? 0.0f : x[j];
  } else {
    int ones = 0;
#pragma unroll
    for (int j = 0; j < n; j++)  // (a max of +inf is no term: +inf - +inf poisons the sum)
      x[j] == a.m&& a.m < INFINITY ? (void)ones++ : (void)(part += exp2f(arg2(x[j], a.m, k)));
    a.n += (double)ones;
  }
  a.s += (double)part;
}

GVPO_ROW Lse lse_merge(Lse a, Lse b, const Scale& k) {
  if (b.m > a.m) {
    const Lse t = a;
    a = b;
    b = t;
  }
  // nothing finite in b (also avoids -inf - -inf); but a lane that saw only NaN holds {-inf, NaN}
  // and its NaN must still poison the row, as the CPU's sum does
  if (b.m == -INFINITY) return {a.m, b.s != b.s ? b.s : a.s, a.n};
  if (b.m == a.m) return {a.m, a.s + b.s, a.n + b.n};
  return {a.m, a.s + (b.s + b.n) * (double)exp2f(arg2(b.m, a.m, k)), a.n};
}

// The walk both kernels make along a row of V logits, as thread tid of T: when the row is 16-byte
// aligned its vectors i = tid, tid + T, ... (E logits each; vec(i, x) loads one, kUnroll of them
// before the first is used; each(i, x) takes it), then from the last whole vector (from 0 when not
// aligned) its elements v = tid, tid + T, ... (single(v)).
template <int E, class Vec, class Each, class Single>
GVPO_ROW void walk(int64_t V, bool aligned, int tid, int T, Vec vec, Each each, Single single) {
  int64_t v0 = 0;
  if (aligned) {
    const int64_t nvec = V / E;
    int64_t i = tid;
    for (; i + (int64_t)(kUnroll - 1) * T < nvec; i += (int64_t)kUnroll * T) {
      float x[kUnroll][E];
#pragma unroll
      for (int u = 0; u < kUnroll; u++) vec(i + (int64_t)u * T, x[u]);
#pragma unroll
      for (int u = 0; u < kUnroll; u++) each(i + (int64_t)u * T, x[u]);
    }
    for (; i < nvec; i += T) {
      float x[E];
      vec(i, x);
      each(i, x);
    }
    v0 = nvec * E;
  }
  for (int64_t v = v0 + tid; v < V; v += T) single(v);
}

// Thread tid's part of a row's (max, sum); one(v) loads element v.
template <int E, class Vec, class One>
GVPO_ROW Lse sweep_lse(int64_t V, bool aligned, int tid, int T, const Scale& k, Vec vec, One one) {
  Lse acc{-INFINITY, 0.0, 0.0};
  walk<E>(
      V, aligned, tid, T, vec, [&](int64_t, const float* x) { lse_add<E>(acc, x, k); },
      [&](int64_t v) {
        const float x = one(v);
        lse_add<1>(acc, &x, k);
      });
  return acc;
}

// A live row's results from its merged state: l (float32 and double), logZ and the split (m, lse)
// the backward takes. one(y) reads the target's logit (only for a target in range).
struct RowStats {
  float l, lz, m, lse;
  double l64;
};
template <class One>
GVPO_ROW RowStats finish_row(Lse tot, int32_t y, int64_t V, float inv_tau, One one) {
  const float m = tot.m;
  // a row of -inf: lse = -inf; a NaN or a +inf (+inf - +inf): NaN
  // log(n + s) = log1p(s + n - 1), n >= 1 for a finite max
  const double lse = m == -INFINITY && tot.s == tot.s ? -INFINITY
                     : m == -INFINITY                 ? log(tot.s)
                                                      : log1p(tot.s + (tot.n - 1.0));
  const float lz = (float)((double)m * inv_tau + lse);
  double l = 0.0;  // one token: l = 0 exactly
  if (!finite(lz) || y < 0 || y >= V) {
    l = NAN;
  } else if (V > 1) {
    const double x = ((double)one(y) - m) * inv_tau - lse;
    l = x < 0.0 ? x : 0.0;  // <= 0 by construction; the clamp guards the rounding
  }
  return {(float)l, lz, m, (float)lse, l};
}

// The backward's per-row facts.
struct BackRow {
  bool zero, bad, wide;
  int e;  // the scale of c: elements are computed on c 2^-e and scaled back by 2^e
  float coef, m, lse, inv_tau;
};

// g * inv_tau * 2^-e as a float (the CPU's scaled_coef, pow2.h), e from the exponents alone.
GVPO_ROW float scaled_coef(double g, double inv_tau, int e) {
  const int eb = ilogb(inv_tau);
  return (float)(ldexp(g, eb - e) * ldexp(inv_tau, -eb));
}

GVPO_ROW BackRow back_row(double g, bool live, int64_t V, float m, float lse, int32_t y, float inv_tau) {
  BackRow b{};
  // a masked row, a zero weight or a one-token vocabulary: l is constant, its gradient 0; a target
  // out of range (the callers refuse it first), a non-finite split or weight: a NaN row
  b.zero = g == 0.0 || !live || V == 1;
  b.bad = !b.zero && (!finite(m) || !finite(lse) || !finite(g) || y < 0 || y >= V);
  b.wide = scale_of(inv_tau).wide;
  b.m = m, b.lse = lse, b.inv_tau = inv_tau;
  if (b.zero || b.bad) return b;
  const double c = g * inv_tau;
  b.e = fabs(c) <= FLT_MAX ? 0 : ilogb(g) + ilogb((double)inv_tau) - 64;
  b.coef = b.e ? scaled_coef(g, inv_tau, b.e) : (float)c;
  return b;
}

// Element v's gradient, v != y (the target's is back_target's). Scaled: the row runs on c 2^-e
// (b.e != 0), a separate instantiation so that the common one carries none of its code; it keeps
// p's subnormal range (its elements c p can be far from 0 there) with the full-precision exp.
template <bool Scaled>
GVPO_ROW float back_value(const BackRow& b, float z) {
  const float x = b.wide ? (float)(((double)z - b.m) * b.inv_tau - b.lse) : fmaf(z - b.m, b.inv_tau, -b.lse);
  const float u = x > 0.0f ? 0.0f : x;  // p <= 1 whatever the rounding; NaN stays NaN
  if (!Scaled) return -b.coef * exp_fast(u);
  return (float)ldexp(-(double)b.coef * expf(u), b.e);
}

// The target's c (1 - p), from expm1 in double: for a dominant target p is near 1, and 1 - p taken
// from a float32 p would keep only its last bits.
GVPO_ROW float back_target(const BackRow& b, float zy) {
  const double x = ((double)zy - b.m) * b.inv_tau - b.lse;
  const double t = -(double)b.coef * expm1(x > 0.0 ? 0.0 : x);  // NaN stays NaN
  return (float)(b.e ? ldexp(t, b.e) : t);
}

// Thread tid's part of a row's gradient, written through st4(q, a, b, c, d) (floats 4q .. 4q + 3)
// and st1(v, a) along walk's path (out must be 16-byte aligned with the row). The target's element
// is written here too, and afterwards by back_target.
template <int E, bool Scaled, class Vec, class One, class St4, class St1>
GVPO_ROW void sweep_backward_as(const BackRow& b, int64_t V, bool aligned, int tid, int T, Vec vec, One one, St4 st4,
                                St1 st1) {
  walk<E>(
      V, aligned, tid, T, vec,
      [&](int64_t i, const float* x) {
#pragma unroll
        for (int j = 0; j < E; j += 4)
          st4((i * E + j) / 4, back_value<Scaled>(b, x[j]), back_value<Scaled>(b, x[j + 1]),
              back_value<Scaled>(b, x[j + 2]), back_value<Scaled>(b, x[j + 3]));
      },
      [&](int64_t v) { st1(v, back_value<Scaled>(b, one(v))); });
}
template <int E, class Vec, class One, class St4, class St1>
GVPO_ROW void sweep_backward(const BackRow& b, int64_t V, bool aligned, int tid, int T, Vec vec, One one, St4 st4,
                             St1 st1) {
  if (b.e)
    sweep_backward_as<E, true>(b, V, aligned, tid, T, vec, one, st4, st1);
  else
    sweep_backward_as<E, false>(b, V, aligned, tid, T, vec, one, st4, st1);
}

// A row of one value f (0 or NaN) by thread tid.
template <class St4, class St1>
GVPO_ROW void sweep_fill(float f, int64_t V, bool aligned, int tid, int T, St4 st4, St1 st1) {
  int64_t v0 = 0;
  if (aligned) {
    for (int64_t q = tid; q < V / 4; q += T) st4(q, f, f, f, f);
    v0 = V / 4 * 4;
  }
  for (int64_t v = v0 + tid; v < V; v += T) st1(v, f);
}

}  // namespace row_sweep
}  // namespace gvpo
