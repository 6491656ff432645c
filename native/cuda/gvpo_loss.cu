// gvpo_loss on CUDA: per-sequence sums, group centring, residuals, dL/dS and the per-token
// gradient weights, in one small kernel over groups (ragged groups included), then one block
// that adds the groups' diagonal terms in a fixed order (deterministic).
//
//   S[n] = sum_t m[n,t] l[n,t];  a = R - mean R,  p = S - mean S,  q = Sref - mean Sref
//   c = beta (p - q) - a;  dL/dS = beta c / (k - 1) * scale;  g[n,t] = m[n,t] dL/dS[n]
//   scale = 1 / #groups with k >= 2 for 'mean', else 1
// ref_seq may be null: Sref = S. O(N*T + N) work: one block per group, one warp per sequence for the token sums.
#include <cuda_runtime.h>

#include "../kernels.h"

namespace gvpo {

constexpr int kLossThreads = 256;

__global__ void __launch_bounds__(kLossThreads) gvpo_group_kernel1(
    double* seq, double* grad_seq, double* residuals, float* grad_logprobs, double* group_terms,
    const float* token_logprobs, const float* mask, const double* ref_seq, const double* rewards,
    const int32_t* offsets, int64_t groups, int64_t T, double beta, bool mean_reduction) {
  const int g = blockIdx.x;
  const double* Q = ref_seq ? ref_seq : seq;  // no reference: pi_theta' is the current policy
  const int b = offsets[g], e = offsets[g + 1], k = e - b;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  for (int n = b + warp; n < e; n += warps) {
    double s = 0.0;
    for (int64_t t = lane; t < T; t += 32) {
      float m = mask[n * T + t];
      if (m != 0.0f) s += (double)m * (double)token_logprobs[n * T + t];
    }
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
    if (lane == 0) seq[n] = s;
  }
  __shared__ double scale;
  __syncthreads();
  if (threadIdx.x == 0) {
    int live = 0;
    if (mean_reduction)
      for (int64_t j = 0; j < groups; j++) live += offsets[j + 1] - offsets[j] >= 2;
    scale = live > 0 ? 1.0 / live : 1.0;
    double* t5 = group_terms + 5 * g;
    for (int i = 0; i < 5; i++) t5[i] = 0.0;
    if (k < 2) {
      for (int n = b; n < e; n++) grad_seq[n] = residuals[n] = 0.0;
    } else {
      double mR = 0, mS = 0, mQ = 0;
      for (int n = b; n < e; n++) mR += rewards[n], mS += seq[n], mQ += Q[n];
      mR /= k, mS /= k, mQ /= k;
      const double inv = 1.0 / (k - 1);
      for (int n = b; n < e; n++) {
        double a = rewards[n] - mR, p = seq[n] - mS, q = Q[n] - mQ;
        double c = beta * (p - q) - a;
        residuals[n] = c;
        grad_seq[n] = beta * c * inv * scale;
        t5[0] += 0.5 * inv * c * c;
        t5[1] += -beta * inv * a * p;
        t5[2] += -beta * beta * inv * p * q;
        t5[3] += 0.5 * beta * beta * inv * p * p;
        t5[4] += 0.5 * inv * (a + beta * q) * (a + beta * q);
      }
      for (int i = 0; i < 5; i++) t5[i] *= scale;
    }
  }
  __syncthreads();
  for (int64_t r = (int64_t)b * T + threadIdx.x; r < (int64_t)e * T; r += blockDim.x)
    grad_logprobs[r] = (float)(mask[r] * grad_seq[r / T]);
}

// terms[i] = sum_g group_terms[5g + i], in a fixed order (thread j adds groups j, j+256, ...,
// then a fixed tree): the same inputs always give the same bits.
__global__ void __launch_bounds__(kLossThreads) gvpo_terms_kernel1(double* terms, const double* group_terms, int64_t groups) {
  __shared__ double part[kLossThreads];
  for (int i = 0; i < 5; i++) {
    double s = 0.0;
    for (int64_t g = threadIdx.x; g < groups; g += blockDim.x) s += group_terms[5 * g + i];
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

int gvpo_loss_cuda(double* seq, double* grad_seq, double* residuals, float* grad_logprobs,
                   double* terms, const float* token_logprobs, const float* mask,
                   const double* ref_seq, const double* rewards, const int32_t* offsets,
                   int64_t groups, int64_t sequences, int64_t tokens, double beta,
                   bool mean_reduction, void* stream) {
  (void)sequences;
  cudaStream_t s = (cudaStream_t)stream;
  double* ws = nullptr;
  cudaError_t e = cudaMallocAsync((void**)&ws, sizeof(double) * 5 * groups, s);
  if (e != cudaSuccess) return (int)e;
  gvpo_group_kernel1<<<(unsigned)groups, kLossThreads, 0, s>>>(seq, grad_seq, residuals, grad_logprobs, ws, token_logprobs,
                                                               mask, ref_seq, rewards, offsets, groups, tokens, beta, mean_reduction);
  e = cudaGetLastError();
  if (e == cudaSuccess) {
    gvpo_terms_kernel1<<<1, kLossThreads, 0, s>>>(terms, ws, groups);
    e = cudaGetLastError();
  }
  cudaError_t f = cudaFreeAsync(ws, s);
  return (int)(e != cudaSuccess ? e : f);
}

}  // namespace gvpo
