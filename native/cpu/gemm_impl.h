// The GEMM of gemm.h for one instruction set: included by rows_<isa>.cc after rows.h (it uses
// that file's vector type vf, W, vexp and the 16-bit loads), so GVPO_VW and GVPO_ISA are set.
//
// Micro-kernel MR x NR, NR = NV vectors: MR*NV accumulators, NV vectors of B and the broadcasts
// must fit the register file. AVX-512: 12 x 32 (24 accumulators), its k loop in assembly
// (micro_12x32); AVX2 and SSE2: 6 x 16 / 6 x 8 (12 accumulators + 2 B + 1 broadcast of 16
// registers), per k step 2 loads, 6 broadcasts, 12 FMAs.
#include <cmath>
#include <cstring>

#include "gemm.h"
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace gvpo {
namespace GVPO_ISA {

// (-DGVPO_NO_ASM -DGVPO_MR16=6 -DGVPO_NV16=4: the compiler-written AVX-512 kernel that
// bench/NOTES.md compares the assembly with.)
#ifndef GVPO_MR16
#define GVPO_MR16 12
#define GVPO_NV16 2
#endif
#if GVPO_VW == 16
constexpr int MR = GVPO_MR16, NV = GVPO_NV16;
static inline vf fmadd(vf a, vf b, vf c) { return (vf)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c); }
#elif GVPO_VW == 8
constexpr int MR = 6, NV = 2;
static inline vf fmadd(vf a, vf b, vf c) { return (vf)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c); }
#else
constexpr int MR = 6, NV = 2;
static inline vf fmadd(vf a, vf b, vf c) { return a * b + c; }
#endif
constexpr int NR = NV * W;

// A true broadcast (splat() adds to +0.0, which the compiler must keep for -0.0 inputs): with
// the value in memory it becomes one vbroadcastss on a load port, off the FMA ports.
static inline vf bcast(float a) {
#if GVPO_VW == 16
  return (vf)_mm512_set1_ps(a);
#elif GVPO_VW == 8
  return (vf)_mm256_set1_ps(a);
#elif GVPO_VW == 4 && defined(__SSE2__)
  return (vf)_mm_set1_ps(a);
#else
  vf v;
  for (int i = 0; i < W; i++) v[i] = a;
  return v;
#endif
}

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

// W consecutive elements from element i on, as float32.
template <int D>
static inline vf load_elems(const void* p, int64_t i) {
  if (D == 0) return load((const float*)p + i);
  return load((const uint16_t*)p + i, D == 1 ? DType::bf16 : DType::f16);
}

#if GVPO_VW == 16
// r[t][c] -> r[c][t] for a 16 x 16 block: unpack pairs, shuffle quads, then exchange 128-bit
// lanes twice (64 shuffles for 256 elements).
static inline void transpose(vf* r) {
  __m512 t[16], s[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps((__m512)r[2 * i], (__m512)r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps((__m512)r[2 * i], (__m512)r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) {  // lane L of s[4i + c]: column 4L + c of rows 4i .. 4i+3
    s[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    s[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    s[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    s[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int c = 0; c < 4; c++) {
    __m512 x0 = _mm512_shuffle_f32x4(s[c], s[4 + c], 0x88), x1 = _mm512_shuffle_f32x4(s[c], s[4 + c], 0xDD);
    __m512 x2 = _mm512_shuffle_f32x4(s[8 + c], s[12 + c], 0x88), x3 = _mm512_shuffle_f32x4(s[8 + c], s[12 + c], 0xDD);
    r[c] = (vf)_mm512_shuffle_f32x4(x0, x2, 0x88);
    r[8 + c] = (vf)_mm512_shuffle_f32x4(x0, x2, 0xDD);
    r[4 + c] = (vf)_mm512_shuffle_f32x4(x1, x3, 0x88);
    r[12 + c] = (vf)_mm512_shuffle_f32x4(x1, x3, 0xDD);
  }
}
#elif GVPO_VW == 8
static inline void transpose(vf* r) {  // 8 x 8: unpack, shuffle, exchange 128-bit halves
  __m256 t[8], s[8];
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_ps((__m256)r[2 * i], (__m256)r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps((__m256)r[2 * i], (__m256)r[2 * i + 1]);
  }
  for (int i = 0; i < 2; i++) {
    s[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    s[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    s[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    s[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int c = 0; c < 4; c++) {
    r[c] = (vf)_mm256_permute2f128_ps(s[c], s[4 + c], 0x20);
    r[4 + c] = (vf)_mm256_permute2f128_ps(s[c], s[4 + c], 0x31);
  }
}
#endif

// The first MR lanes of v to p (MR <= W): one packed row of an A panel.
static inline void store_first(float* p, vf v) {
#if GVPO_VW == 16
  _mm512_mask_storeu_ps(p, (__mmask16)((1u << MR) - 1), (__m512)v);
#elif GVPO_VW == 8
  const __m256i m = _mm256_setr_epi32(0 < MR ? -1 : 0, 1 < MR ? -1 : 0, 2 < MR ? -1 : 0, 3 < MR ? -1 : 0,
                                      4 < MR ? -1 : 0, 5 < MR ? -1 : 0, 6 < MR ? -1 : 0, 7 < MR ? -1 : 0);
  _mm256_maskstore_ps(p, m, (__m256)v);
#else
  for (int i = 0; i < MR; i++) p[i] = v[i];
#endif
}
// p[0..n) in the first n lanes, zeros in the others (n <= W); reads nothing past p[n-1].
static inline vf load_first(const float* p, int n) {
#if GVPO_VW == 16
  return (vf)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p);
#elif GVPO_VW == 8
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return (vf)_mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane));
#else
  vf v = bcast(0.0f);
  for (int i = 0; i < n; i++) v[i] = p[i];
  return v;
#endif
}
static_assert(GVPO_VW < 8 || MR <= W, "an A panel's rows fit one transposed vector");

template <int D>
static void pack_a_t(float* Ap, const Mat& A, int64_t M, int64_t k0, int64_t kc) {
  for (int64_t p = 0; p * MR < M; p++) {
    float* dst = Ap + p * MR * kc;
    const int mi = (int)(M - p * MR < MR ? M - p * MR : MR);
    if (A.rs == 1 && !A.rows) {  // a column of the panel is contiguous (dZ^T): copy MR at a time
      for (int64_t k = 0; k < kc; k++) {
        const int64_t base = p * MR + (k0 + k) * A.cs;
#if GVPO_VW >= 8
        if (D == 0) {  // the mi floats, zeros after them, no read past them
          store_first(dst + k * MR, load_first((const float*)A.p + base, mi));
          continue;
        }
#endif
        for (int i = 0; i < mi; i++) dst[k * MR + i] = elem<D>(A.p, base + i);
        for (int i = mi; i < MR; i++) dst[k * MR + i] = 0.0f;
      }
      continue;
    }
    int64_t k = 0;
#if GVPO_VW >= 8
    if (A.cs == 1)  // W columns of the panel's rows at a time, transposed in registers
      for (; k + W <= kc; k += W) {
        vf r[W];
        for (int i = 0; i < W; i++) {
          const int64_t row = p * MR + i;
          r[i] = i < mi ? load_elems<D>(A.p, (A.rows ? A.rows[row] : row) * A.rs + k0 + k) : bcast(0.0f);
        }
        transpose(r);  // r[t][i] = A(p*MR + i, k0 + k + t)
        for (int t = 0; t < W; t++) store_first(dst + (k + t) * MR, r[t]);
      }
#endif
    for (int i = 0; i < MR; i++) {  // a row is contiguous: walk each row along k
      if (i >= mi) {
        for (int64_t kk = k; kk < kc; kk++) dst[kk * MR + i] = 0.0f;
        continue;
      }
      const int64_t row = p * MR + i;
      const int64_t base = (A.rows ? A.rows[row] : row) * A.rs + k0 * A.cs;
      for (int64_t kk = k; kk < kc; kk++) dst[kk * MR + i] = elem<D>(A.p, base + kk * A.cs);
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
    } else {  // a column is contiguous (the weight read as W^T)
      int64_t k = 0;
#if GVPO_VW >= 8
      if (nj == NR && !B.rows)  // W x W blocks through registers: W loads, a transpose, W stores
        for (; k + W <= kc; k += W)
          for (int h = 0; h < NV; h++) {
            vf r[W];
            for (int t = 0; t < W; t++) r[t] = load_elems<D>(B.p, (k0 + k) * B.rs + (j0 + h * W + t) * B.cs);
            transpose(r);
            for (int t = 0; t < W; t++) *(vf*)(dst + (k + t) * NR + h * W) = r[t];
          }
#endif
      for (int64_t j = 0; j < NR; j++) {
        for (int64_t kk = k; kk < kc; kk++) {
          const int64_t row = B.rows ? B.rows[k0 + kk] : k0 + kk;
          dst[kk * NR + j] = j < nj ? elem<D>(B.p, row * B.rs + (j0 + j) * B.cs) : 0.0f;
        }
      }
    }
  }
}

static void pack_a(float* Ap, const Mat& A, int64_t M, int64_t k0, int64_t kc) {
  if (A.d == DType::f32)
    pack_a_t<0>(Ap, A, M, k0, kc);
  else if (A.d == DType::bf16)
    pack_a_t<1>(Ap, A, M, k0, kc);
  else
    pack_a_t<2>(Ap, A, M, k0, kc);
}

static void pack_b(float* Bp, const Mat& B, int64_t k0, int64_t kc, int64_t N) {
  if (B.d == DType::f32)
    pack_b_t<0>(Bp, B, k0, kc, N);
  else if (B.d == DType::bf16)
    pack_b_t<1>(Bp, B, k0, kc, N);
  else
    pack_b_t<2>(Bp, B, k0, kc, N);
}

#if GVPO_VW == 16 && defined(__x86_64__) && !defined(GVPO_NO_ASM)
// The AVX-512 k loop, 12 x 32, in assembly: per k step 2 vector loads of B, 8 rows of A
// broadcast into registers (6 in rotation) and 4 rows broadcast inside their FMAs ({1to16}, one
// fused uop for the load and the FMA): 34 uops and 18 loads for 24 FMAs. On a core whose other
// hyperthread is busy, the load ports and the front end run out before the FMA units: all 12
// rows folded into FMAs (26 uops, 26 loads) ran slowest, 8 folded (30 uops, 22 loads) next, 4
// folded (this) and none (38 uops, 14 loads) fastest (bench/NOTES.md, item 9). Writes the
// tile, row-major, into t (64-byte aligned).
#define GVPO_K_STEP(ao, bo)                                                                                         \
  "vmovaps " #bo "(%[b]), %%zmm24\n vmovaps " #bo "+64(%[b]), %%zmm25\n" GVPO_RROW(ao, 0, 26, 0, 1)                 \
      GVPO_RROW(ao, 4, 27, 2, 3) GVPO_RROW(ao, 8, 28, 4, 5) GVPO_RROW(ao, 12, 29, 6, 7) GVPO_RROW(ao, 16, 30, 8, 9) \
          GVPO_RROW(ao, 20, 31, 10, 11) GVPO_RROW(ao, 24, 26, 12, 13) GVPO_RROW(ao, 28, 27, 14, 15)                 \
              GVPO_ROW(ao, 32, 16, 17) GVPO_ROW(ao, 36, 18, 19) GVPO_ROW(ao, 40, 20, 21) GVPO_ROW(ao, 44, 22, 23)
#define GVPO_RROW(ao, off, x, c0, c1)             \
  "vbroadcastss " #ao "+" #off "(%[a]), %%zmm" #x \
  "\n"                                            \
  "vfmadd231ps %%zmm24, %%zmm" #x ", %%zmm" #c0 "\n vfmadd231ps %%zmm25, %%zmm" #x ", %%zmm" #c1 "\n"
#define GVPO_ROW(ao, off, c0, c1)                                   \
  "vfmadd231ps " #ao "+" #off "(%[a])%{1to16%}, %%zmm24, %%zmm" #c0 \
  "\n"                                                              \
  "vfmadd231ps " #ao "+" #off "(%[a])%{1to16%}, %%zmm25, %%zmm" #c1 "\n"
#define GVPO_STORE(i) "vmovaps %%zmm" #i ", " #i "*64(%[t])\n"
static_assert(MR == 12 && NV == 2, "the assembly k loop is 12 x 32");
static inline void micro_12x32(float* t, int64_t kc, const float* a, const float* b) {
  int64_t pairs = kc / 2;
  asm volatile(
      "vpxord %%zmm0, %%zmm0, %%zmm0\n"
      "vmovaps %%zmm0, %%zmm1\n vmovaps %%zmm0, %%zmm2\n vmovaps %%zmm0, %%zmm3\n"
      "vmovaps %%zmm0, %%zmm4\n vmovaps %%zmm0, %%zmm5\n vmovaps %%zmm0, %%zmm6\n"
      "vmovaps %%zmm0, %%zmm7\n vmovaps %%zmm0, %%zmm8\n vmovaps %%zmm0, %%zmm9\n"
      "vmovaps %%zmm0, %%zmm10\n vmovaps %%zmm0, %%zmm11\n vmovaps %%zmm0, %%zmm12\n"
      "vmovaps %%zmm0, %%zmm13\n vmovaps %%zmm0, %%zmm14\n vmovaps %%zmm0, %%zmm15\n"
      "vmovaps %%zmm0, %%zmm16\n vmovaps %%zmm0, %%zmm17\n vmovaps %%zmm0, %%zmm18\n"
      "vmovaps %%zmm0, %%zmm19\n vmovaps %%zmm0, %%zmm20\n vmovaps %%zmm0, %%zmm21\n"
      "vmovaps %%zmm0, %%zmm22\n vmovaps %%zmm0, %%zmm23\n"
      "test %[pairs], %[pairs]\n jz 2f\n"
      "1:\n" GVPO_K_STEP(0, 0) GVPO_K_STEP(48, 128)
      "add $96, %[a]\n add $256, %[b]\n dec %[pairs]\n jnz 1b\n"
      "2:\n test $1, %[kc]\n jz 3f\n" GVPO_K_STEP(0, 0)
      "3:\n"
      GVPO_STORE(0) GVPO_STORE(1) GVPO_STORE(2) GVPO_STORE(3) GVPO_STORE(4) GVPO_STORE(5)
      GVPO_STORE(6) GVPO_STORE(7) GVPO_STORE(8) GVPO_STORE(9) GVPO_STORE(10) GVPO_STORE(11)
      GVPO_STORE(12) GVPO_STORE(13) GVPO_STORE(14) GVPO_STORE(15) GVPO_STORE(16) GVPO_STORE(17)
      GVPO_STORE(18) GVPO_STORE(19) GVPO_STORE(20) GVPO_STORE(21) GVPO_STORE(22) GVPO_STORE(23)
      : [a] "+r"(a), [b] "+r"(b), [pairs] "+r"(pairs)
      : [kc] "r"(kc), [t] "r"(t)
      : "cc", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
        "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18",
        "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28",
        "xmm29", "xmm30", "xmm31");
}
#undef GVPO_K_STEP
#undef GVPO_ROW
#undef GVPO_RROW
#undef GVPO_STORE
#endif

// C[m x n] (=|+=) sum_k a[k*MR + i] * b[k*NR + j], m <= MR, n <= NR.
static inline void micro(int64_t kc, const float* __restrict a, const float* __restrict b, float* C, int64_t ldc, int m,
                         int n, bool accumulate) {
  vf c[MR][NV];
#if defined(__x86_64__) || defined(__i386__)
  if (accumulate)  // the C tile is read after the k loop: start its lines on their way now
    for (int i = 0; i < m; i++)
      for (int l = 0; l < n; l += 16) _mm_prefetch((const char*)(C + i * ldc + l), _MM_HINT_T0);
#endif
#if GVPO_VW == 16 && defined(__x86_64__) && !defined(GVPO_NO_ASM)
  micro_12x32((float*)c, kc, a, b);
#else
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) c[i][v] = bcast(0.0f);
  for (int64_t k = 0; k < kc; k++) {
    vf bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) bv[v] = *(const vf*)(b + v * W);  // 64-byte aligned panels
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      const vf ai = bcast(a[i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) c[i][v] = fmadd(ai, bv[v], c[i][v]);
    }
    a += MR;
    b += NR;
  }
#endif
  if (m == MR && n == NR) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) {
        vf_u* p = (vf_u*)(C + i * ldc + v * W);
        *p = accumulate ? *p + c[i][v] : c[i][v];
      }
    return;
  }
  alignas(64) float t[MR * NR];
  for (int i = 0; i < MR; i++)
    for (int v = 0; v < NV; v++) *(vf*)(t + i * NR + v * W) = c[i][v];
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) C[i * ldc + j] = accumulate ? C[i * ldc + j] + t[i * NR + j] : t[i * NR + j];
}

// Loop order: each A micro-panel (MR x kc, L1) meets every B micro-panel (kc x NR, from L2).
// (Blocking B by 64-256 columns, so that less of it need stay in L2, measured no different.)
static void gemm(float* C, int64_t ldc, const float* Ap, const float* Bp, int64_t M, int64_t N, int64_t kc,
                 bool accumulate) {
  for (int64_t i0 = 0; i0 < M; i0 += MR) {
    const float* a = Ap + (i0 / MR) * MR * kc;
    const int m = (int)(M - i0 < MR ? M - i0 : MR);
    for (int64_t j0 = 0; j0 < N; j0 += NR) {
      const int n = (int)(N - j0 < NR ? N - j0 : NR);
      micro(kc, a, Bp + (j0 / NR) * NR * kc, C + i0 * ldc + j0, ldc, m, n, accumulate);
    }
  }
}

// As rows.h's row_logsumexp: exponents u = (z - max) * inv_tau, never positive, the maximum's
// exactly 0; the tile's max and log sum e^u are kept apart (a huge max/tau would swallow the
// latter). With ent: also t = sum e^u u, and the tile's entropy log(sum) - t/sum, which is
// >= 0 by construction (sum >= 1, t <= 0).
static void tile_logsumexp(float* mxo, double* lse, double* ent, const float* Z, int64_t ldz, int64_t m, int64_t n,
                           float inv_tau) {
  const int64_t full = n / W * W;
  for (int64_t i = 0; i < m; i++) {
    const float* z = Z + i * ldz;
    const float mx = max_f32(z, n);
    if (!(mx > -INFINITY)) {  // all -inf: no mass; only NaN and -inf: NaN (else the sum below turns NaN)
      bool nan = false;
      for (int64_t j = 0; j < n; j++) nan = nan || z[j] != z[j];
      mxo[i] = nan ? NAN : mx;
      lse[i] = nan ? (double)NAN : 0.0;
      if (ent) ent[i] = nan ? (double)NAN : 0.0;
      continue;
    }
    mxo[i] = mx;
    if (mx == INFINITY) {  // +inf - +inf: NaN, as the terms would give (the max's are counted apart below)
      lse[i] = NAN;
      if (ent) ent[i] = NAN;
      continue;
    }
    // lse = log(ones + rest) = log1p(rest + ones - 1): the max's terms (ones >= 1 of them) apart
    // from the rest, whose relative precision a dominant token's l and 1 - p need (sum_exp).
    double ones;
    if (!ent) {
      double rest = sum_exp([&](int64_t j) { return load(z + j); }, full, mx, inv_tau, ones);
      for (int64_t j = full; j < n; j++) z[j] == mx ? (void)(ones += 1.0) : (void)(rest += sexp((z[j] - mx) * inv_tau));
      lse[i] = std::log1p(rest + (ones - 1.0));
      continue;
    }
    // The sum in sum_exp's order (two accumulators, alternate vectors), so that lse, and l, are
    // the same bits with or without the entropy.
    const vf vm = splat(mx), s = splat(inv_tau), zero = splat(0.0f);
    vf a[2] = {zero, zero}, b = zero, o = zero;
    for (int64_t j = 0; j < full; j += W) {
      const vf x = load(z + j), u = (x - vm) * s, e = vexp(u), oj = ones_at(x, vm);
      a[(j / W) & 1] += e - oj;
      o += oj;
      b += e > zero ? e * u : zero;  // a -inf logit adds nothing (0 * -inf would be NaN)
    }
    double rest = hsum(a[0] + a[1]), t = hsum(b);
    ones = hsum(o);
    for (int64_t j = full; j < n; j++) {
      const float u = (z[j] - mx) * inv_tau, e = sexp(u);
      z[j] == mx ? (void)(ones += 1.0) : (void)(rest += e);
      t += e > 0.0f ? (double)e * u : 0.0;
    }
    const double ls = std::log1p(rest + (ones - 1.0));
    lse[i] = ls;
    ent[i] = ls - t / (ones + rest);
  }
}

static void tile_softmax_grad(float* Z, int64_t ldz, int64_t m, int64_t n, float inv_tau, const float* shift,
                              const float* logZ, const float* coef, const float* coef_h, const float* ent,
                              const int32_t* y) {
  const vf s = splat(inv_tau), zero = splat(0.0f);
  const int64_t full = n / W * W;
  for (int64_t i = 0; i < m; i++) {
    float* z = Z + i * ldz;
    const float c = coef[i], lz = logZ[i], ch = coef_h ? coef_h[i] : 0.0f, sh = shift[i];
    if (!std::isfinite(lz)) {  // a non-finite row yields NaN, never a silent zero
      for (int64_t j = 0; j < n; j++) z[j] = NAN;
      continue;
    }
    const bool has_target = y[i] >= 0 && y[i] < n;
    const float zt = has_target ? z[y[i]] : 0.0f;  // read before the row is overwritten
    const vf vlz = splat(lz), nc = splat(-c), vsh = splat(sh);
    if (ch == 0.0f) {
      for (int64_t j = 0; j < full; j += W) *(vf_u*)(z + j) = nc * vexp_p((load(z + j) - vsh) * s - vlz);
      for (int64_t j = full; j < n; j++) z[j] = -c * sexp_p((z[j] - sh) * inv_tau - lz);
    } else {  // -p (c + ch (log p + H)); a p of 0 gives 0 even where log p is -inf
      const float h = ent[i];
      const vf vch = splat(ch), vh = splat(h);
      for (int64_t j = 0; j < full; j += W) {
        vf u = (load(z + j) - vsh) * s - vlz;
        u = u > zero ? zero : u;
        const vf p = vexp(u), g = (nc - vch * (u + vh)) * p;
        *(vf_u*)(z + j) = p != zero ? g : zero;  // NaN stays NaN
      }
      for (int64_t j = full; j < n; j++) {
        float u = (z[j] - sh) * inv_tau - lz;
        u = u > 0.0f ? 0.0f : u;
        const float p = sexp(u);
        z[j] = p != 0.0f ? -p * (c + ch * (u + h)) : 0.0f;
      }
    }
    if (has_target) {
      // c (1 - p) - ch p (log p + H) in double, 1 - p from expm1: c - c p in float32 cancels to 0
      // for a dominant target (1 - p below 2^-24) and keeps 2^-24 / (1 - p) of it above
      double u = ((double)zt - (double)sh) * (double)inv_tau - (double)lz;
      u = u > 0.0 ? 0.0 : u;  // NaN stays NaN
      const double p = std::exp(u), e = ch == 0.0f || p == 0.0 ? 0.0 : (double)ch * p * (u + (double)ent[i]);
      z[y[i]] = (float)(-(double)c * std::expm1(u) - e);
    }
  }
}

// The FMA peak probe: independent chains, at least latency x ports on every target (8 on these
// cores: 4 cycles x 2 pipes), all in registers, no memory traffic: 24 with AVX-512's 32 vector
// registers, 12 with 16 (with 24 there, GCC kept 11 chains on the stack, and each iteration waited
// on their store-to-load round trips: the probe read half the peak on a Zen 3, below what the
// GEMM itself ran at). Returns the flops performed.
static double fma_probe(int64_t iterations, float seed) {
  constexpr int CHAINS = W == 16 ? 24 : 12;
  vf c[CHAINS];
  const vf a = bcast(1.0f - seed * 1e-7f), b = bcast(seed * 1e-7f);
#pragma GCC unroll 24
  for (int i = 0; i < CHAINS; i++) c[i] = bcast(seed + (float)i);  // distinct: equal chains would be merged
  for (int64_t k = 0; k < iterations; k++) {
#pragma GCC unroll 24
    for (int i = 0; i < CHAINS; i++) c[i] = fmadd(c[i], a, b);
  }
  vf s = bcast(0.0f);
  for (int i = 0; i < CHAINS; i++) s += c[i];
  volatile float sink = s[0];  // keeps the loop
  (void)sink;
  return (double)iterations * CHAINS * W * 2;
}

extern const GemmKernels gemm_kernels;
const GemmKernels gemm_kernels = {MR, NR, pack_a, pack_b, gemm, tile_logsumexp, tile_softmax_grad, fma_probe};

}  // namespace GVPO_ISA
}  // namespace gvpo
