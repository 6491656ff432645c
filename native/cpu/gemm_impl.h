// The GEMM of gemm.h for one instruction set: included by rows_<isa>.cc after rows.h (it uses
// that file's vector type vf, W, vexp and the 16-bit loads), so GVPO_VW and GVPO_ISA are set.
//
// Micro-kernel MR x NR with NR = 2 vectors: MR*2 accumulators + 2 B vectors + 1 broadcast must
// fit the register file (AVX-512: 14 x 32 uses 28 + 3 of 32 zmm; AVX2 and SSE2: 6 x 16 / 6 x 8
// use 12 + 3 of 16). Per k step: 2 loads, MR broadcasts, 2*MR FMAs.
#include <cmath>
#include <cstring>

#include "gemm.h"
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace gvpo {
namespace GVPO_ISA {

#if GVPO_VW == 16
constexpr int MR = 14;
static inline vf fmadd(vf a, vf b, vf c) { return (vf)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c); }
#elif GVPO_VW == 8
constexpr int MR = 6;
static inline vf fmadd(vf a, vf b, vf c) { return (vf)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c); }
#else
constexpr int MR = 6;
static inline vf fmadd(vf a, vf b, vf c) { return a * b + c; }
#endif
constexpr int NR = 2 * W;

// One element of a Mat as float32 (scalar: packing is O(size), the GEMM O(size * k)).
static inline float f16_bits_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, em = h & 0x7fffu;
  float f;
  uint32_t bits;
  if (em >= 0x7c00u) {
    bits = (em << 13) | 0x7f800000u;
  } else {
    uint32_t b = em << 13;
    std::memcpy(&f, &b, 4);
    f *= 0x1p112f;  // normals and subnormals alike (see rows.h)
    std::memcpy(&bits, &f, 4);
  }
  bits |= sign;
  std::memcpy(&f, &bits, 4);
  return f;
}

template <int D>
static inline float elem(const void* p, int64_t i) {
  if (D == 0) return ((const float*)p)[i];
  uint16_t h = ((const uint16_t*)p)[i];
  if (D == 1) {
    uint32_t b = (uint32_t)h << 16;
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  }
  return f16_bits_to_f32(h);
}

template <int D>
static void pack_a_t(float* Ap, const Mat& A, int64_t M, int64_t k0, int64_t kc) {
  for (int64_t p = 0; p * MR < M; p++) {
    float* dst = Ap + p * MR * kc;
    for (int i = 0; i < MR; i++) {
      const int64_t row = p * MR + i;
      if (row >= M) {
        for (int64_t k = 0; k < kc; k++) dst[k * MR + i] = 0.0f;
        continue;
      }
      const int64_t base = (A.rows ? A.rows[row] : row) * A.rs + k0 * A.cs;
      for (int64_t k = 0; k < kc; k++) dst[k * MR + i] = elem<D>(A.p, base + k * A.cs);
    }
  }
}

template <int D>
static void pack_b_t(float* Bp, const Mat& B, int64_t k0, int64_t kc, int64_t N) {
  for (int64_t q = 0; q * NR < N; q++) {
    float* dst = Bp + q * NR * kc;
    const int64_t j0 = q * NR, nj = N - j0 < NR ? N - j0 : NR;
    if (B.cs == 1) {  // a row of the panel is contiguous: copy (and convert) NR at a time
      for (int64_t k = 0; k < kc; k++) {
        const int64_t base = (B.rows ? B.rows[k0 + k] : k0 + k) * B.rs + j0;
        float* d = dst + k * NR;
        for (int64_t j = 0; j < nj; j++) d[j] = elem<D>(B.p, base + j);
        for (int64_t j = nj; j < NR; j++) d[j] = 0.0f;
      }
    } else {  // a column is contiguous (the weight read as W^T): walk each column down k
      for (int64_t j = 0; j < NR; j++) {
        if (j >= nj) {
          for (int64_t k = 0; k < kc; k++) dst[k * NR + j] = 0.0f;
          continue;
        }
        for (int64_t k = 0; k < kc; k++) {
          const int64_t row = B.rows ? B.rows[k0 + k] : k0 + k;
          dst[k * NR + j] = elem<D>(B.p, row * B.rs + (j0 + j) * B.cs);
        }
      }
    }
  }
}

static void pack_a(float* Ap, const Mat& A, int64_t M, int64_t k0, int64_t kc) {
  if (A.d == DType::f32) pack_a_t<0>(Ap, A, M, k0, kc);
  else if (A.d == DType::bf16) pack_a_t<1>(Ap, A, M, k0, kc);
  else pack_a_t<2>(Ap, A, M, k0, kc);
}

static void pack_b(float* Bp, const Mat& B, int64_t k0, int64_t kc, int64_t N) {
  if (B.d == DType::f32) pack_b_t<0>(Bp, B, k0, kc, N);
  else if (B.d == DType::bf16) pack_b_t<1>(Bp, B, k0, kc, N);
  else pack_b_t<2>(Bp, B, k0, kc, N);
}

// C[m x n] (=|+=) sum_k a[k*MR + i] * b[k*NR + j], m <= MR, n <= NR.
static inline void micro(int64_t kc, const float* __restrict a, const float* __restrict b,
                         float* C, int64_t ldc, int m, int n, bool accumulate) {
  vf c0[MR], c1[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) c0[i] = c1[i] = splat(0.0f);
  for (int64_t k = 0; k < kc; k++) {
    const vf b0 = *(const vf_u*)b, b1 = *(const vf_u*)(b + W);
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      const vf ai = splat(a[i]);
      c0[i] = fmadd(ai, b0, c0[i]);
      c1[i] = fmadd(ai, b1, c1[i]);
    }
    a += MR;
    b += NR;
  }
  if (m == MR && n == NR) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      vf_u* p0 = (vf_u*)(C + i * ldc);
      vf_u* p1 = (vf_u*)(C + i * ldc + W);
      if (accumulate) {
        *p0 = *p0 + c0[i];
        *p1 = *p1 + c1[i];
      } else {
        *p0 = c0[i];
        *p1 = c1[i];
      }
    }
    return;
  }
  alignas(64) float t[MR * NR];
  for (int i = 0; i < MR; i++) {
    *(vf*)(t + i * NR) = c0[i];
    *(vf*)(t + i * NR + W) = c1[i];
  }
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) C[i * ldc + j] = accumulate ? C[i * ldc + j] + t[i * NR + j] : t[i * NR + j];
}

// Loop order: each B panel (kc x NR, L1) meets every A panel (MR x kc, L2) in turn.
static void gemm(float* C, int64_t ldc, const float* Ap, const float* Bp, int64_t M, int64_t N,
                 int64_t kc, bool accumulate) {
  for (int64_t j0 = 0; j0 < N; j0 += NR) {
    const float* b = Bp + (j0 / NR) * NR * kc;
    const int n = (int)(N - j0 < NR ? N - j0 : NR);
    for (int64_t i0 = 0; i0 < M; i0 += MR) {
      const int m = (int)(M - i0 < MR ? M - i0 : MR);
      micro(kc, Ap + (i0 / MR) * MR * kc, b, C + i0 * ldc + j0, ldc, m, n, accumulate);
    }
  }
}

static void tile_logsumexp(double* lse, const float* Z, int64_t ldz, int64_t m, int64_t n,
                           float inv_tau) {
  const vf s = splat(inv_tau);
  const int64_t full = n / W * W;
  for (int64_t i = 0; i < m; i++) {
    const float* z = Z + i * ldz;
    vf vmax = splat(-INFINITY);
    for (int64_t j = 0; j < full; j += W) {
      vf x = load(z + j);
      vmax = x > vmax ? x : vmax;
    }
    float mx = hmax(vmax);
    for (int64_t j = full; j < n; j++) mx = z[j] > mx ? z[j] : mx;
    mx *= inv_tau;  // tau > 0: the max commutes with the scaling
    if (!(mx > -INFINITY)) {  // all -inf: -inf (a NaN in the row turns the sum NaN below)
      lse[i] = mx;
      continue;
    }
    double sum = sum_exp([&](int64_t j) { return load(z + j) * s; }, full, mx);
    for (int64_t j = full; j < n; j++) sum += sexp(z[j] * inv_tau - mx);
    lse[i] = (double)mx + std::log(sum);
  }
}

static void tile_softmax_grad(float* Z, int64_t ldz, int64_t m, int64_t n, float inv_tau,
                              const float* logZ, const float* coef, const int32_t* y) {
  const vf s = splat(inv_tau);
  const int64_t full = n / W * W;
  for (int64_t i = 0; i < m; i++) {
    float* z = Z + i * ldz;
    const float c = coef[i], lz = logZ[i];
    if (!std::isfinite(lz)) {  // a non-finite row yields NaN, never a silent zero
      for (int64_t j = 0; j < n; j++) z[j] = NAN;
      continue;
    }
    const vf vlz = splat(lz), nc = splat(-c);
    for (int64_t j = 0; j < full; j += W) *(vf_u*)(z + j) = nc * vexp(load(z + j) * s - vlz);
    for (int64_t j = full; j < n; j++) z[j] = -c * sexp(z[j] * inv_tau - lz);
    if (y[i] >= 0 && y[i] < n) z[y[i]] += c;
  }
}

extern const GemmKernels gemm_kernels;
const GemmKernels gemm_kernels = {MR,   NR, pack_a, pack_b, gemm, tile_logsumexp,
                                  tile_softmax_grad};

}  // namespace GVPO_ISA
}  // namespace gvpo
