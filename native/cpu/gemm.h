// The fused LM head's matrix multiplies: BLIS-style packing + a register-blocked micro-kernel,
// compiled once per instruction set (gemm_impl.h, included by rows_<isa>.cc) and picked at run
// time by gvpo_from_hidden.cc. Single-threaded: the caller splits the work so that every output
// element is owned by one thread and summed in one fixed order (results do not depend on the
// thread count).
//
// Packed layouts (float32, zero-padded to whole panels):
//   A (M x kc block): panels of MR rows,    Ap[p*MR*kc + k*MR + i] = A(p*MR + i, k0 + k)
//   B (kc x N block): panels of NR columns, Bp[q*NR*kc + k*NR + j] = B(k0 + k, q*NR + j)
// so the micro-kernel reads both with unit stride: per k, one broadcast of each of MR A values
// and NR/W vector loads of B, into MR x NR accumulators held in registers.
#pragma once
#include <cstdint>

#include "../kernels.h"

namespace gvpo {

// A strided view of a matrix in memory: element (i, j) is p[row(i)*rs + j*cs] in dtype d, with
// row(i) = rows ? rows[i] : i (a gather of live rows; masked rows never enter a GEMM).
struct Mat {
  const void* p;
  DType d;
  int64_t rs, cs;
  const int32_t* rows;
};

struct GemmKernels {
  int mr, nr;
  // Packs one k block of A (rows 0..M-1, columns k0..k0+kc-1) / of B (rows k0.., columns 0..N-1).
  void (*pack_a)(float* Ap, const Mat& A, int64_t M, int64_t k0, int64_t kc);
  void (*pack_b)(float* Bp, const Mat& B, int64_t k0, int64_t kc, int64_t N);
  // C[M x N] (=|+=) Ap * Bp over one k block; C row-major with leading dimension ldc.
  void (*gemm)(float* C, int64_t ldc, const float* Ap, const float* Bp, int64_t M, int64_t N, int64_t kc,
               bool accumulate);
  // Per row i < m of the tile Z (m x n, leading dimension ldz): mx[i] = max_j Z[i, j] and
  // lse[i] = log sum_j exp((Z[i, j] - mx[i]) * inv_tau) >= 0, so that the tile's logsumexp of
  // Z * inv_tau is mx * inv_tau + lse (a row of -inf: mx = -inf, lse = 0; a NaN: both NaN); when
  // ent is not null, ent[i] = -sum_j q log q with q = softmax(Z[i, 0..n) * inv_tau), the entropy
  // within the tile (>= 0; 0 for a row of -inf).
  void (*tile_logsumexp)(float* mx, double* lse, double* ent, const float* Z, int64_t ldz, int64_t m, int64_t n,
                         float inv_tau);
  // In place, with p = exp(min(0, (Z[i,j] - shift[i])*inv_tau - logZ[i])) (log p the exponent):
  //   Z[i,j] = coef[i] ([j == y[i]] - p) - coef_h[i] p (log p + ent[i])
  // coef_h null (or coef_h[i] == 0): no entropy term, ent not read. y[i] may lie outside [0, n)
  // (the target is in another tile); a row whose logZ is not finite becomes NaN. shift[i] = 0
  // with logZ[i] the row's log-normalizer, or a LogZSplit's parts (kernels.h).
  void (*tile_softmax_grad)(float* Z, int64_t ldz, int64_t m, int64_t n, float inv_tau, const float* shift,
                            const float* logZ, const float* coef, const float* coef_h, const float* ent,
                            const int32_t* y);
  // Register-resident FMAs for the peak probe; returns the flops performed.
  double (*fma_probe)(int64_t iterations, float seed);
};

#define GVPO_DECLARE_GEMM(isa)           \
  namespace isa {                        \
  extern const GemmKernels gemm_kernels; \
  }
GVPO_DECLARE_GEMM(generic)
#if defined(__x86_64__) || defined(__i386__)
GVPO_DECLARE_GEMM(avx2)
GVPO_DECLARE_GEMM(avx512)
#endif
#undef GVPO_DECLARE_GEMM

#if defined(__x86_64__)
// bfloat16 products (vdpbf16ps) on CPUs with AVX512_BF16 (gemm_bf16.cc): the avx512 kernels with
// their own packing and micro-kernel; and the bfloat16 dot-product peak probe (flops done).
namespace avx512bf16 {
const GemmKernels* gemm_kernels();
double dot_probe(int64_t iterations, float seed);
}  // namespace avx512bf16
#endif

// The kernels for the instruction set token_logprobs picked (cpu_simd_level()) and inputs of
// dtype d: the avx512bf16 level multiplies bfloat16 inputs in bfloat16, any other in float32.
const GemmKernels& gemm_kernels(DType d);

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

}  // namespace gvpo
