// The fused head's GEMM in bfloat16 for CPUs with AVX512_BF16 (gemm.h): vdpbf16ps multiplies
// pairs of bfloat16 and adds both products into float32 lanes, twice the multiply-adds of a
// float32 FMA per instruction. Used for bfloat16 hidden states and weight only (gemm_kernels):
// their products are exact in float32, so the logits, logZ and the log-probs come out as the
// float32 path's; the gradient's dZ (float32) is rounded to bfloat16 (to nearest even) where it
// is packed for dH and dW, a relative 2^-9 per product, as in bfloat16 mixed-precision training.
// GVPO_SIMD=avx512 keeps the float32 products.
//
// Packed layouts: those of gemm.h with the k index taken in pairs. Each 32-bit slot holds the
// bfloat16 pair (k, k+1) (k even, low half first, a zero past kc); slot (kp, i) of an A panel is
// at kp*MR + i, slot (kp, j) of a B panel at kp*NR + j. Panels keep the float32 strides (MR*kc,
// NR*kc slots), so the callers' offsets are unchanged and half of each panel stays unused.
// The micro-kernel is the float32 one's 12 x 32 with vdpbf16ps for vfmadd231ps: per pair step
// 2 vector loads of B, 8 A pairs broadcast into registers and 4 inside their instructions.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gemm.h"
#include "parallel.h"

#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,f16c")
// GCC 12 flags the undefined-on-purpose pass-through operands of the masked intrinsics.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

namespace gvpo {
namespace avx512bf16 {
namespace {

constexpr int MR = 12, NR = 32;

// float32 -> bfloat16 bits, to nearest even; NaN stays a (quiet) NaN.
inline uint32_t bf16_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  if ((b & 0x7fffffffu) > 0x7f800000u) return (b >> 16) | 0x40u;
  return (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
}
inline uint32_t f16_to_bf16_bits(uint16_t h) { return bf16_bits(_cvtsh_ss(h)); }

// Element (i, k) of a Mat as bfloat16 bits (zero outside the matrix's k range is the caller's).
inline uint32_t elem_bits(const Mat& A, int64_t row, int64_t k) {
  const int64_t at = (A.rows ? A.rows[row] : row) * A.rs + k * A.cs;
  if (A.d == DType::bf16) return ((const uint16_t*)A.p)[at];
  if (A.d == DType::f32) return bf16_bits(((const float*)A.p)[at]);
  return f16_to_bf16_bits(((const uint16_t*)A.p)[at]);
}

// B(k, j) of a Mat whose rows are the k index (row(k) = rows ? rows[k] : k).
inline uint32_t b_bits(const Mat& B, int64_t k, int64_t j) {
  const int64_t at = (B.rows ? B.rows[k] : k) * B.rs + j * B.cs;
  if (B.d == DType::bf16) return ((const uint16_t*)B.p)[at];
  if (B.d == DType::f32) return bf16_bits(((const float*)B.p)[at]);
  return f16_to_bf16_bits(((const uint16_t*)B.p)[at]);
}

// r[t][c] -> r[c][t] for a 16 x 16 block of 32-bit values (as gemm_impl.h's transpose).
inline void transpose16(__m512i* r) {
  __m512 t[16], s[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps((__m512)r[2 * i], (__m512)r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps((__m512)r[2 * i], (__m512)r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) {
    s[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    s[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    s[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    s[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int c = 0; c < 4; c++) {
    __m512 x0 = _mm512_shuffle_f32x4(s[c], s[4 + c], 0x88), x1 = _mm512_shuffle_f32x4(s[c], s[4 + c], 0xDD);
    __m512 x2 = _mm512_shuffle_f32x4(s[8 + c], s[12 + c], 0x88), x3 = _mm512_shuffle_f32x4(s[8 + c], s[12 + c], 0xDD);
    r[c] = (__m512i)_mm512_shuffle_f32x4(x0, x2, 0x88);
    r[8 + c] = (__m512i)_mm512_shuffle_f32x4(x0, x2, 0xDD);
    r[4 + c] = (__m512i)_mm512_shuffle_f32x4(x1, x3, 0x88);
    r[12 + c] = (__m512i)_mm512_shuffle_f32x4(x1, x3, 0xDD);
  }
}

// 16 pairs (32 consecutive elements along k) of a row, as 32-bit slots; n < 32 elements are
// read (no read past them), the rest zero.
inline __m512i row_pairs(const void* p, DType d, int64_t n) {
  if (d == DType::bf16) {
    const __mmask32 m = n >= 32 ? ~0u : (__mmask32)((1u << n) - 1);
    return _mm512_maskz_loadu_epi16(m, p);
  }
  const __mmask16 m0 = n >= 16 ? 0xffff : (__mmask16)((1u << (n > 0 ? n : 0)) - 1);
  const __mmask16 m1 = n >= 32 ? 0xffff : n <= 16 ? 0 : (__mmask16)((1u << (n - 16)) - 1);
  __m512 lo, hi;
  if (d == DType::f32) {
    lo = _mm512_maskz_loadu_ps(m0, p);
    hi = _mm512_maskz_loadu_ps(m1, (const float*)p + 16);
  } else {
    lo = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m0, p));
    hi = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m1, (const uint16_t*)p + 16));
  }
  // cvtne2ps puts hi's 16 in the upper half; the pairs want elements in order.
  return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

// Interleaves the bfloat16 of two rows a and b (k and k+1) into 32-bit pairs: 32 columns ->
// two vectors of 16 pairs.
inline void interleave(__m512i a, __m512i b, __m512i& p0, __m512i& p1) {
  static const uint16_t i0[32] = {0, 32, 1, 33, 2,  34, 3,  35, 4,  36, 5,  37, 6,  38, 7,  39,
                                  8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
  static const uint16_t i1[32] = {16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21, 53, 22, 54, 23, 55,
                                  24, 56, 25, 57, 26, 58, 27, 59, 28, 60, 29, 61, 30, 62, 31, 63};
  p0 = _mm512_permutex2var_epi16(a, _mm512_loadu_si512(i0), b);
  p1 = _mm512_permutex2var_epi16(a, _mm512_loadu_si512(i1), b);
}

// 32 elements of one row along j (contiguous, n <= 32 of them read), as bfloat16 in 16-bit lanes.
inline __m512i row_halves(const void* p, DType d, int64_t n) {
  if (d == DType::bf16) return _mm512_maskz_loadu_epi16(n >= 32 ? ~0u : (__mmask32)((1u << n) - 1), p);
  return row_pairs(p, d, n);  // the same 32 elements in order, as 16-bit lanes
}

// Interleaves the first 16 bfloat16 of a and of b (16-bit lanes) into 16 pairs.
inline __m512i pairs16(__m256i a, __m256i b) {
  static const uint16_t ix[32] = {0, 32, 1, 33, 2,  34, 3,  35, 4,  36, 5,  37, 6,  38, 7,  39,
                                  8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
  return _mm512_permutex2var_epi16(_mm512_castsi256_si512(a), _mm512_loadu_si512(ix), _mm512_castsi256_si512(b));
}

// First n (<= 16) elements from p as 16 bfloat16 (zeros after them, nothing read past them).
inline __m256i bf16x16(const void* p, DType d, int n) {
  const __mmask16 m = n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1);
  if (d == DType::bf16) return _mm256_maskz_loadu_epi16(m, p);
  const __m512 f = d == DType::f32 ? _mm512_maskz_loadu_ps(m, p) : _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  return (__m256i)_mm512_cvtneps_pbh(f);
}

void pack_a(float* Ap, const Mat& A, int64_t M, int64_t k0, int64_t kc) {
  const int64_t P = (kc + 1) / 2, esz = (int64_t)dtype_bytes(A.d);
  for (int64_t p = 0; p * MR < M; p++) {
    uint32_t* dst = (uint32_t*)(Ap + p * MR * kc);
    const int mi = (int)(M - p * MR < MR ? M - p * MR : MR);
    const __mmask16 rows_m = (__mmask16)((1u << mi) - 1), all = (__mmask16)((1u << MR) - 1);
    if (A.rs == 1 && !A.rows) {  // a column of the panel is contiguous (dZ^T): two columns per pair
      for (int64_t kp = 0; kp < P; kp++) {
        const int64_t k = k0 + 2 * kp;
        const char* c0 = (const char*)A.p + (p * MR + k * A.cs) * esz;
        const __m256i a = bf16x16(c0, A.d, mi);
        const __m256i b = 2 * kp + 1 < kc ? bf16x16(c0 + A.cs * esz, A.d, mi) : _mm256_setzero_si256();
        _mm512_mask_storeu_epi32(dst + kp * MR, all, _mm512_maskz_mov_epi32(rows_m, pairs16(a, b)));
      }
      continue;
    }
    if (A.cs == 1) {  // a row is contiguous: 16 pairs of 12 rows at a time, transposed in registers
      for (int64_t kp = 0; kp < P; kp += 16) {
        const int64_t n = kc - 2 * kp < 32 ? kc - 2 * kp : 32;
        __m512i r[16];
        for (int i = 0; i < 16; i++) {
          const int64_t row = p * MR + i;
          r[i] = i < mi
                     ? row_pairs((const char*)A.p + ((A.rows ? A.rows[row] : row) * A.rs + k0 + 2 * kp) * esz, A.d, n)
                     : _mm512_setzero_si512();
        }
        transpose16(r);  // r[t] lane i = pair kp + t of row i
        for (int t = 0; t < 16 && kp + t < P; t++) _mm512_mask_storeu_epi32(dst + (kp + t) * MR, all, r[t]);
      }
      continue;
    }
    for (int64_t kp = 0; kp < P; kp++)
      for (int i = 0; i < MR; i++) {
        const int64_t k = k0 + 2 * kp, row = p * MR + i;
        const uint32_t lo = i < mi ? elem_bits(A, row, k) : 0u;
        const uint32_t hi = i < mi && 2 * kp + 1 < kc ? elem_bits(A, row, k + 1) : 0u;
        dst[kp * MR + i] = lo | hi << 16;
      }
  }
}

void pack_b(float* Bp, const Mat& B, int64_t k0, int64_t kc, int64_t N) {
  const int64_t P = (kc + 1) / 2, esz = (int64_t)dtype_bytes(B.d);
  for (int64_t q = 0; q * NR < N; q++) {
    uint32_t* dst = (uint32_t*)(Bp + q * NR * kc);
    const int64_t j0 = q * NR, nj = N - j0 < NR ? N - j0 : NR;
    if (B.cs == 1) {  // a row (one k) of the panel is contiguous: rows k and k+1 interleaved
      for (int64_t kp = 0; kp < P; kp++) {
        const int64_t k = k0 + 2 * kp;
        const __m512i a = row_halves((const char*)B.p + ((B.rows ? B.rows[k] : k) * B.rs + j0) * esz, B.d, nj);
        const __m512i b =
            2 * kp + 1 < kc
                ? row_halves((const char*)B.p + ((B.rows ? B.rows[k + 1] : k + 1) * B.rs + j0) * esz, B.d, nj)
                : _mm512_setzero_si512();
        __m512i p0, p1;
        interleave(a, b, p0, p1);
        _mm512_storeu_si512(dst + kp * NR, p0);
        _mm512_storeu_si512(dst + kp * NR + 16, p1);
      }
      continue;
    }
    if (B.rs == 1 && !B.rows) {  // a column (one j) is contiguous along k (the weight as W^T)
      for (int64_t kp = 0; kp < P; kp += 16) {
        const int64_t n = kc - 2 * kp < 32 ? kc - 2 * kp : 32;
        for (int h = 0; h < NR / 16; h++) {
          __m512i r[16];
          for (int t = 0; t < 16; t++) {
            const int64_t j = j0 + h * 16 + t;
            r[t] =
                j < N ? row_pairs((const char*)B.p + (k0 + 2 * kp + j * B.cs) * esz, B.d, n) : _mm512_setzero_si512();
          }
          transpose16(r);  // r[t] lane c = pair kp + t of column h*16 + c
          for (int t = 0; t < 16 && kp + t < P; t++) _mm512_storeu_si512(dst + (kp + t) * NR + h * 16, r[t]);
        }
      }
      continue;
    }
    for (int64_t kp = 0; kp < P; kp++)
      for (int64_t j = 0; j < NR; j++) {
        const int64_t k = k0 + 2 * kp;
        const uint32_t lo = j < nj ? b_bits(B, k, j0 + j) : 0u;
        const uint32_t hi = j < nj && 2 * kp + 1 < kc ? b_bits(B, k + 1, j0 + j) : 0u;
        dst[kp * NR + j] = lo | hi << 16;
      }
  }
}

// The k loop in assembly (see gemm_impl.h's micro_12x32, the same shape and register use): per
// pair step, 2 vector loads of B, 8 rows of A broadcast into registers and 4 inside their
// instructions ({1to16}); 24 vdpbf16ps. Writes the 12 x 32 tile, row-major, into t.
#define GVPO_K_STEP(ao, bo)                                                                                         \
  "vmovaps " #bo "(%[b]), %%zmm24\n vmovaps " #bo "+64(%[b]), %%zmm25\n" GVPO_RROW(ao, 0, 26, 0, 1)                 \
      GVPO_RROW(ao, 4, 27, 2, 3) GVPO_RROW(ao, 8, 28, 4, 5) GVPO_RROW(ao, 12, 29, 6, 7) GVPO_RROW(ao, 16, 30, 8, 9) \
          GVPO_RROW(ao, 20, 31, 10, 11) GVPO_RROW(ao, 24, 26, 12, 13) GVPO_RROW(ao, 28, 27, 14, 15)                 \
              GVPO_ROW(ao, 32, 16, 17) GVPO_ROW(ao, 36, 18, 19) GVPO_ROW(ao, 40, 20, 21) GVPO_ROW(ao, 44, 22, 23)
#define GVPO_RROW(ao, off, x, c0, c1)             \
  "vpbroadcastd " #ao "+" #off "(%[a]), %%zmm" #x \
  "\n"                                            \
  "vdpbf16ps %%zmm24, %%zmm" #x ", %%zmm" #c0 "\n vdpbf16ps %%zmm25, %%zmm" #x ", %%zmm" #c1 "\n"
#define GVPO_ROW(ao, off, c0, c1)                                 \
  "vdpbf16ps " #ao "+" #off "(%[a])%{1to16%}, %%zmm24, %%zmm" #c0 \
  "\n"                                                            \
  "vdpbf16ps " #ao "+" #off "(%[a])%{1to16%}, %%zmm25, %%zmm" #c1 "\n"
#define GVPO_STORE(i) "vmovaps %%zmm" #i ", " #i "*64(%[t])\n"
inline void micro_12x32(float* t, int64_t kp, const uint32_t* a, const uint32_t* b) {
  int64_t twos = kp / 2;
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
      "test %[twos], %[twos]\n jz 2f\n"
      "1:\n" GVPO_K_STEP(0, 0) GVPO_K_STEP(48, 128)
      "add $96, %[a]\n add $256, %[b]\n dec %[twos]\n jnz 1b\n"
      "2:\n test $1, %[kp]\n jz 3f\n" GVPO_K_STEP(0, 0)
      "3:\n"
      GVPO_STORE(0) GVPO_STORE(1) GVPO_STORE(2) GVPO_STORE(3) GVPO_STORE(4) GVPO_STORE(5)
      GVPO_STORE(6) GVPO_STORE(7) GVPO_STORE(8) GVPO_STORE(9) GVPO_STORE(10) GVPO_STORE(11)
      GVPO_STORE(12) GVPO_STORE(13) GVPO_STORE(14) GVPO_STORE(15) GVPO_STORE(16) GVPO_STORE(17)
      GVPO_STORE(18) GVPO_STORE(19) GVPO_STORE(20) GVPO_STORE(21) GVPO_STORE(22) GVPO_STORE(23)
      : [a] "+r"(a), [b] "+r"(b), [twos] "+r"(twos)
      : [kp] "r"(kp), [t] "r"(t)
      : "cc", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
        "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18",
        "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28",
        "xmm29", "xmm30", "xmm31");
}
#undef GVPO_K_STEP
#undef GVPO_ROW
#undef GVPO_RROW
#undef GVPO_STORE

// C[m x n] (=|+=) the tile of kp pair steps, m <= MR, n <= NR.
inline void micro(int64_t kp, const uint32_t* a, const uint32_t* b, float* C, int64_t ldc, int m, int n,
                  bool accumulate) {
  alignas(64) float t[MR * NR];
  if (accumulate)  // the C tile is read after the k loop: start its lines on their way now
    for (int i = 0; i < m; i++)
      for (int l = 0; l < n; l += 16) _mm_prefetch((const char*)(C + i * ldc + l), _MM_HINT_T0);
  micro_12x32(t, kp, a, b);
  if (m == MR && n == NR) {
    for (int i = 0; i < MR; i++)
      for (int v = 0; v < NR; v += 16) {
        const __m512 x = _mm512_load_ps(t + i * NR + v);
        float* c = C + i * ldc + v;
        _mm512_storeu_ps(c, accumulate ? _mm512_add_ps(_mm512_loadu_ps(c), x) : x);
      }
    return;
  }
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) C[i * ldc + j] = accumulate ? C[i * ldc + j] + t[i * NR + j] : t[i * NR + j];
}

void gemm(float* C, int64_t ldc, const float* Ap, const float* Bp, int64_t M, int64_t N, int64_t kc, bool accumulate) {
  const int64_t P = (kc + 1) / 2;
  for (int64_t i0 = 0; i0 < M; i0 += MR) {
    const uint32_t* a = (const uint32_t*)(Ap + (i0 / MR) * MR * kc);
    const int m = (int)(M - i0 < MR ? M - i0 : MR);
    for (int64_t j0 = 0; j0 < N; j0 += NR) {
      const int n = (int)(N - j0 < NR ? N - j0 : NR);
      micro(P, a, (const uint32_t*)(Bp + (j0 / NR) * NR * kc), C + i0 * ldc + j0, ldc, m, n, accumulate);
    }
  }
}

}  // namespace

const GemmKernels* gemm_kernels() {
  static const GemmKernels k = [] {
    GemmKernels t = avx512::gemm_kernels;  // the tiles' softmax functions and the FMA probe
    t.mr = MR;
    t.nr = NR;
    t.pack_a = pack_a;
    t.pack_b = pack_b;
    t.gemm = gemm;
    return t;
  }();
  return &k;
}

// The bfloat16 dot-product peak probe: 24 independent register-resident vdpbf16ps chains.
// Returns the flops performed (2 per multiply-add: 64 per instruction).
double dot_probe(int64_t iterations, float seed) {
  constexpr int CHAINS = 24;
  __m512 c[CHAINS];
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1.0f), _mm512_set1_ps(1.0f - seed * 1e-3f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0x1p-12f), _mm512_set1_ps(0x1p-13f));
#pragma GCC unroll 24
  for (int i = 0; i < CHAINS; i++) c[i] = _mm512_set1_ps(seed + (float)i);  // distinct: equal chains would be merged
  for (int64_t k = 0; k < iterations; k++) {
#pragma GCC unroll 24
    for (int i = 0; i < CHAINS; i++) c[i] = _mm512_dpbf16_ps(c[i], a, b);
  }
  __m512 s = _mm512_setzero_ps();
  for (int i = 0; i < CHAINS; i++) s = _mm512_add_ps(s, c[i]);
  volatile float sink = _mm512_reduce_add_ps(s);  // keeps the loop
  (void)sink;
  return (double)iterations * CHAINS * 64;
}

}  // namespace avx512bf16
}  // namespace gvpo
#endif

namespace gvpo {

double bf16_dot_probe_cpu(int64_t iterations, int threads) {
#if defined(__x86_64__)
  if (std::string(cpu_simd_level()) != "avx512bf16") return 0.0;
  const int t = resolve_threads(threads);
  std::vector<double> flops((size_t)t);
  parallel_each(t, [&](int i) { flops[i] = avx512bf16::dot_probe(iterations, (float)i + 1.0f); });
  double sum = 0;
  for (double f : flops) sum += f;
  return sum;
#else
  (void)iterations, (void)threads;
  return 0.0;
#endif
}

}  // namespace gvpo
