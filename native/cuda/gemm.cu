// gemm_cuda: C[m, n] (row-major, leading dimension ldc) = sum_k A(m, k) * B(k, n), or C += that,
// with A and B read through strides in their own dtypes and converted to float32 as they are
// loaded; products and sums in float32 (no TF32, no tensor cores: the same rounding class as the
// CPU kernels, against which it is tested).
//
// The fused LM head's three products all fit this form (rows r, vocab v, hidden h):
//   logits  Z[r, v]  = sum_h H[r, h] W[v, h]    A = H  (k contiguous), B = W  (k contiguous)
//   dH      dH[r, h] = sum_v dZ[r, v] W[v, h]   A = dZ (k contiguous), B = W  (n contiguous)
//   dW      dW[v, h] += sum_r dZ[r, v] H[r, h]  A = dZ (m contiguous), B = H  (n contiguous)
//
// The tile itself (gemm_tile.h) is host-testable: native/tests/test_gemm_tile.cc runs it on the CPU.
#include <cuda_runtime.h>

#include <cstdint>

#include "../kernels.h"
#include "dtype.cuh"
#include "gemm_tile.h"

namespace gvpo {

namespace {

using namespace gemm_tile;

struct BlockSync {
  __device__ __forceinline__ void operator()() const { __syncthreads(); }
};

template <typename TA, typename TB>
__global__ void __launch_bounds__(TPB) gemm_kernel(Args<TA, TB> g) {
  __shared__ float As[BK][BM + PAD];
  __shared__ float Bs[BK][BN + PAD];
  tile(g, blockIdx.y, blockIdx.x, threadIdx.x, As, Bs, BlockSync{});
}

template <typename TA, typename TB>
int launch(float* c, int64_t ldc, const void* a, int64_t a_m, int64_t a_k, const void* b, int64_t b_k, int64_t b_n,
           int64_t M, int64_t N, int64_t K, bool accumulate, cudaStream_t s) {
  const dim3 grid((unsigned)((N + BN - 1) / BN), (unsigned)((M + BM - 1) / BM));
  const Args<TA, TB> g{c, ldc, (const TA*)a, a_m, a_k, (const TB*)b, b_k, b_n, M, N, K, accumulate};
  gemm_kernel<TA, TB><<<grid, TPB, 0, s>>>(g);
  return (int)cudaGetLastError();
}

template <typename TA>
int launch_b(DType tb, float* c, int64_t ldc, const void* a, int64_t a_m, int64_t a_k, const void* b, int64_t b_k,
             int64_t b_n, int64_t M, int64_t N, int64_t K, bool acc, cudaStream_t s) {
  switch (tb) {
    case DType::f32:
      return launch<TA, float>(c, ldc, a, a_m, a_k, b, b_k, b_n, M, N, K, acc, s);
    case DType::bf16:
      return launch<TA, __nv_bfloat16>(c, ldc, a, a_m, a_k, b, b_k, b_n, M, N, K, acc, s);
    case DType::f16:
      return launch<TA, __half>(c, ldc, a, a_m, a_k, b, b_k, b_n, M, N, K, acc, s);
  }
  return (int)cudaErrorInvalidValue;
}

}  // namespace

int gemm_cuda(float* c, int64_t ldc, const void* a, DType ta, int64_t a_m, int64_t a_k, const void* b, DType tb,
              int64_t b_k, int64_t b_n, int64_t M, int64_t N, int64_t K, bool accumulate, void* stream) {
  if (M <= 0 || N <= 0) return 0;
  // The grid's y extent is 65535 blocks; x is 2^31 - 1.
  if ((M + BM - 1) / BM > 65535 || (N + BN - 1) / BN > 0x7fffffff) return (int)cudaErrorInvalidConfiguration;
  if (K <= 0 && accumulate) return 0;  // C += nothing
  cudaStream_t s = (cudaStream_t)stream;
  switch (ta) {  // K = 0 without accumulate still runs: C = 0
    case DType::f32:
      return launch_b<float>(tb, c, ldc, a, a_m, a_k, b, b_k, b_n, M, N, K, accumulate, s);
    case DType::bf16:
      return launch_b<__nv_bfloat16>(tb, c, ldc, a, a_m, a_k, b, b_k, b_n, M, N, K, accumulate, s);
    case DType::f16:
      return launch_b<__half>(tb, c, ldc, a, a_m, a_k, b, b_k, b_n, M, N, K, accumulate, s);
  }
  return (int)cudaErrorInvalidValue;
}

}  // namespace gvpo
