// The body of gemm.cu's kernel: one 128 x 128 tile of C = A B (or C += A B) per block of 256
// threads, written over explicit block and thread indices, shared slices and a barrier so that
// the same code also runs on the host, where native/tests/test_gemm_tile.cc executes it block by
// block with 256 threads and a std::barrier (no GPU needed to check its index arithmetic).
//
// Thread (ty, tx) of a 16 x 16 grid owns rows ty + 16 i and columns tx + 16 j (i, j < 8): a
// warp's 32 threads read 16 consecutive B columns of shared memory (no bank conflict) and 2 A
// rows (broadcasts), and store 16 consecutive floats of C per (i, j). K is walked in slices of 8,
// staged k-major in shared memory and loaded along whichever dimension is contiguous in global
// memory (coalesced in every layout). Out-of-range elements load as 0, so M, N and K need not be
// multiples of anything; each C element sums its K products in one fixed order.
// The caller declares to_f32(T) for the element types before including this file.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define GVPO_TILE __device__ __forceinline__
#else
#define GVPO_TILE inline
#endif

namespace gvpo {
namespace gemm_tile {

constexpr int BM = 128, BN = 128, BK = 8, TPB = 256;
constexpr int PAD = 4;  // shared rows of BM + 4 floats: the transposing stores spread over banks

// C[m, n] (ldc) = sum_k A(m, k) B(k, n) (+ C), A(m, k) = a[m*a_m + k*a_k], B(k, n) = b[k*b_k + n*b_n].
template <typename TA, typename TB>
struct Args {
  float* c;
  int64_t ldc;
  const TA* a;
  int64_t a_m, a_k;
  const TB* b;
  int64_t b_k, b_n;
  int64_t M, N, K;
  bool accumulate;
};

// One BK-deep slice of an operand into shared memory, stored [k][i] for i < W (W = BM or BN).
// The operand's element (i, k) is at p[(i0 + i) * s_i + (k0 + k) * s_k]; i_extent, k_extent bound
// it. When s_k == 1 threads walk k fastest (a row's 8 k values are adjacent), else i fastest.
template <typename T, int W>
GVPO_TILE void load_slice(float (*S)[W + PAD], int tid, const T* p, int64_t s_i, int64_t s_k, int64_t i0, int64_t k0,
                          int64_t i_extent, int64_t k_extent) {
  const bool k_fastest = s_k == 1;
#pragma unroll
  for (int q = 0; q < W * BK / TPB; q++) {
    const int e = tid + q * TPB;
    const int i = k_fastest ? e / BK : e % W;
    const int k = k_fastest ? e % BK : e / W;
    const int64_t gi = i0 + i, gk = k0 + k;
    S[k][i] = gi < i_extent && gk < k_extent ? to_f32(p[gi * s_i + gk * s_k]) : 0.0f;
  }
}

// The tile (block_m, block_n) of C, as thread `tid` of the block computes its part of it.
template <typename TA, typename TB, typename Sync>
GVPO_TILE void tile(const Args<TA, TB>& g, int64_t block_m, int64_t block_n, int tid, float (*As)[BM + PAD],
                    float (*Bs)[BN + PAD], Sync sync) {
  const int64_t m0 = block_m * BM, n0 = block_n * BN;
  const int ty = tid / 16, tx = tid % 16;
  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; i++)
#pragma unroll
    for (int j = 0; j < 8; j++) acc[i][j] = 0.0f;
  for (int64_t k0 = 0; k0 < g.K; k0 += BK) {
    load_slice<TA, BM>(As, tid, g.a, g.a_m, g.a_k, m0, k0, g.M, g.K);
    load_slice<TB, BN>(Bs, tid, g.b, g.b_n, g.b_k, n0, k0, g.N, g.K);
    sync();
#pragma unroll
    for (int k = 0; k < BK; k++) {
      float av[8], bv[8];
#pragma unroll
      for (int i = 0; i < 8; i++) av[i] = As[k][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 8; j++) bv[j] = Bs[k][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 8; i++)
#pragma unroll
        for (int j = 0; j < 8; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    sync();  // the next slice overwrites what this one read
  }
#pragma unroll
  for (int i = 0; i < 8; i++) {
    const int64_t m = m0 + ty + 16 * i;
    if (m >= g.M) continue;
#pragma unroll
    for (int j = 0; j < 8; j++) {
      const int64_t n = n0 + tx + 16 * j;
      if (n >= g.N) continue;
      float* out = g.c + m * g.ldc + n;
      *out = g.accumulate ? *out + acc[i][j] : acc[i][j];
    }
  }
}

}  // namespace gemm_tile
}  // namespace gvpo
