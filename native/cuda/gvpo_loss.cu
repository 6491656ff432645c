// gvpo_loss on CUDA: per-sequence sums S[n] = sum_t m[n,t] l[n,t] of the forward's l in double,
// then the group's loss (native/group_loss.h, the same code as the CPU loop) and the per-token
// gradient weights w[n,t] = m[n,t] dL/dS[n] in double, in one small kernel over groups (ragged
// groups included), then one block that adds the groups' terms in a fixed order (deterministic).
// ref_seq may be null: Sref = S. O(N*T + N) work: one block per group, one thread per sequence for
// the token sums, in t order with masked tokens skipped (the CPU's sequence_logprobs, bit for bit).
#include <cuda_runtime.h>

#include "../group_loss.h"
#include "../kernels.h"

namespace gvpo {

constexpr int kLossThreads = 256;

__global__ void __launch_bounds__(kLossThreads)
    gvpo_group_kernel(double* seq, double* grad_seq, double* residuals, double* token_weights, double* group_terms,
                      const double* token_logprobs, const float* mask, const double* ref_seq, const double* rewards,
                      const int32_t* offsets, int64_t groups, int64_t T, double beta, bool mean_reduction) {
  const int g = blockIdx.x;
  const double* Q = ref_seq ? ref_seq : seq;  // no reference: pi_theta' is the current policy
  const int b = offsets[g], e = offsets[g + 1];
  for (int n = b + threadIdx.x; n < e; n += blockDim.x) {
    double s = 0.0;
    for (int64_t t = 0; t < T; t++) {
      const float m = mask[n * T + t];
      // rounded twice, never contracted into an FMA (the CPU's product and sum, bit for bit)
      if (m != 0.0f) s = __dadd_rn(s, __dmul_rn((double)m, token_logprobs[n * T + t]));
    }
    seq[n] = s;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double* t5 = group_terms + kTerms * g;
    for (int i = 0; i < kTerms; i++) t5[i] = 0.0;
    group_loss(grad_seq, residuals, t5, seq, Q, rewards, b, e, beta, reduction_scale(offsets, groups, mean_reduction));
  }
  __syncthreads();
  for (int64_t r = (int64_t)b * T + threadIdx.x; r < (int64_t)e * T; r += blockDim.x)
    token_weights[r] = mask[r] == 0.0f ? 0.0 : mask[r] * grad_seq[r / T];  // 0 even where dL/dS is NaN
}

// terms[i] = sum_g group_terms[5g + i], in a fixed order (thread j adds groups j, j+256, ...,
// then a fixed tree): the same inputs always give the same bits.
__global__ void __launch_bounds__(kLossThreads)
    gvpo_terms_kernel(double* terms, const double* group_terms, int64_t groups) {
  __shared__ double part[kLossThreads];
  for (int i = 0; i < kTerms; i++) {
    double s = 0.0;
    for (int64_t g = threadIdx.x; g < groups; g += blockDim.x) s += group_terms[kTerms * g + i];
    part[threadIdx.x] = s;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
      if ((int)threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
      __syncthreads();
    }
    if (threadIdx.x == 0) terms[i] = part[0];
    __syncthreads();
  }
}

int gvpo_loss_cuda(double* seq, double* grad_seq, double* residuals, double* token_weights, double* terms,
                   const double* token_logprobs, const float* mask, const double* ref_seq, const double* rewards,
                   const int32_t* offsets, int64_t groups, int64_t sequences, int64_t tokens, double beta,
                   bool mean_reduction, void* stream) {
  (void)sequences;
  cudaStream_t s = (cudaStream_t)stream;
  double* ws = nullptr;
  cudaError_t e = cudaMallocAsync((void**)&ws, sizeof(double) * kTerms * groups, s);
  if (e != cudaSuccess) return (int)e;
  gvpo_group_kernel<<<(unsigned)groups, kLossThreads, 0, s>>>(seq, grad_seq, residuals, token_weights, ws,
                                                              token_logprobs, mask, ref_seq, rewards, offsets, groups,
                                                              tokens, beta, mean_reduction);
  e = cudaGetLastError();
  if (e == cudaSuccess) {
    gvpo_terms_kernel<<<1, kLossThreads, 0, s>>>(terms, ws, groups);
    e = cudaGetLastError();
  }
  cudaError_t f = cudaFreeAsync(ws, s);
  return (int)(e != cudaSuccess ? e : f);
}

}  // namespace gvpo
