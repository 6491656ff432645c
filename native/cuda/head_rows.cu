// The fused LM head's row kernels on CUDA (kernels.h), over a chunk of float32 logits z (rows x V)
// that gemm.cu has just written: the twins of the CPU head's tile functions (gemm_impl.h).
//
//   head_entropy_cuda        H[r] = log1p(a + o - 1) - t/(o + a), a = sum_v e^u over the terms below
//                            the max, o the count of those at it, t = sum_v e^u u, u = (z - max z)/tau
//   head_softmax_grad_cuda   z[r, v] <- (gl ([v == y] - p) - gH p (u + H)) / tau, in place,
//                            u = (z - shift)/tau - logZ, p = e^u
//
// One block per row, a grid-stride walk along the row, a block reduction (warp shuffles, then
// shared memory). Exponents u are clamped at 0 (p <= 1 whatever the rounding of logZ), a p of 0
// contributes 0 even where u is -inf, and NaN stays NaN.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "../kernels.h"

namespace gvpo {

namespace {

constexpr int kRowThreads = 256;

__device__ double block_sum(double v) {
  __shared__ double part[kRowThreads / 32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) part[warp] = v;
  __syncthreads();
  v = lane < (int)(blockDim.x / 32) ? part[lane] : 0.0;
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
  return v;  // valid in thread 0
}

__device__ __forceinline__ float exponent(float z, float shift, float inv_tau, float lz) {
  const float u = fmaf(z - shift, inv_tau, -lz);
  return u > 0.0f ? 0.0f : u;  // NaN stays NaN
}

__device__ float block_max(float v) {
  __shared__ float part[kRowThreads / 32];
  __shared__ float all;
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffff, v, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) part[warp] = v;
  __syncthreads();
  v = lane < (int)(blockDim.x / 32) ? part[lane] : -INFINITY;
  if (warp == 0) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffff, v, o));
    if (lane == 0) all = v;
  }
  __syncthreads();
  return all;  // in every thread
}

// As the CPU's tile_logsumexp: exponents u = (z - max)/tau, the maximum's exactly 0, so that H =
// log sum e^u - sum e^u u / sum e^u keeps its relative precision however peaked the row is (an
// exponent taken against a float32 logZ would carry an error of ulp(logZ)); the sums in double,
// since for a peaked row sum e^u is 1 plus far less than float32's ulp of 1.
__global__ void __launch_bounds__(kRowThreads)
    head_entropy_kernel(float* entropy, const float* z, int64_t V, float inv_tau) {
  const int64_t r = blockIdx.x;
  const float* row = z + r * V;
  float m = -INFINITY;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) m = fmaxf(m, row[v]);  // NaN is skipped here...
  m = block_max(m);
  // the maximum's terms (exactly 1 each, u = 0) counted apart in o, as the CPU's tile does: in the
  // double sum with the rest they would round away every term below 2^-53 of it (a row [40, 0]
  // gave H 2.4 % off)
  const bool finite_max = isfinite(m);
  double a = 0.0, t = 0.0, o = 0.0;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
    const float x = row[v];
    if (finite_max && x == m) {
      o += 1.0;
      continue;
    }
    const float u = (x - m) * inv_tau, e = __expf(u);  // ...and poisons a here (as does a row of -inf)
    a += e;
    t += e != 0.0f ? (double)e * u : 0.0;
  }
  a = block_sum(a);
  __syncthreads();  // block_sum's shared memory is reused
  t = block_sum(t);
  __syncthreads();
  o = block_sum(o);
  if (threadIdx.x == 0) {
    const float h = (float)(log1p(a + (o - 1.0)) - t / (o + a));
    entropy[r] = h != h ? h : V == 1 ? 0.0f : fminf(fmaxf(h, 0.0f), logf((float)V));
  }
}

__global__ void __launch_bounds__(kRowThreads)
    head_softmax_grad_kernel(float* z, const int32_t* targets, const float* shift, const float* logZ, const float* ent,
                             const float* gl, const float* gh, int64_t V, float inv_tau) {
  const int64_t r = blockIdx.x;
  float* row = z + r * V;
  const float lz = logZ[r], sh = shift ? shift[r] : 0.0f, cl = gl[r] * inv_tau, ch = gh ? gh[r] * inv_tau : 0.0f;
  const float h = ch != 0.0f ? ent[r] : 0.0f;
  const int32_t y = targets[r];
  const bool bad = !isfinite(lz) || !isfinite(sh) || y < 0 || y >= V;  // callers refuse bad targets first
  const float zt = bad ? 0.0f : row[y];  // the target's logit, read before any thread overwrites it
  __syncthreads();
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
    if (bad) {
      row[v] = NAN;
      continue;
    }
    const float u = exponent(row[v], sh, inv_tau, lz), p = __expf(u);
    row[v] = p != 0.0f ? -p * (cl + ch * (u + h)) : 0.0f;
  }
  __syncthreads();  // the target element is written last, by one thread
  if (threadIdx.x == 0 && !bad) {
    // c (1 - p) - ch p (log p + H) in double, 1 - p from expm1, as the CPU's tile: cl - cl p in
    // float32 cancels to 0 for a dominant target
    double u = ((double)zt - (double)sh) * (double)inv_tau - (double)lz;
    u = u > 0.0 ? 0.0 : u;  // NaN stays NaN
    const double p = exp(u), e = ch == 0.0f || p == 0.0 ? 0.0 : (double)ch * p * (u + (double)h);
    row[y] = (float)(-(double)cl * expm1(u) - e);
  }
}

}  // namespace

int head_entropy_cuda(float* entropy, const float* z, int64_t rows, int64_t vocab, float temperature, void* stream) {
  if (rows == 0) return 0;
  head_entropy_kernel<<<(unsigned)rows, kRowThreads, 0, (cudaStream_t)stream>>>(entropy, z, vocab, 1.0f / temperature);
  return (int)cudaGetLastError();
}

int head_softmax_grad_cuda(float* z, const int32_t* targets, const float* shift, const float* logZ,
                           const float* entropy, const float* grad_logprobs, const float* grad_entropy, int64_t rows,
                           int64_t vocab, float temperature, void* stream) {
  if (rows == 0) return 0;
  head_softmax_grad_kernel<<<(unsigned)rows, kRowThreads, 0, (cudaStream_t)stream>>>(
      z, targets, shift, logZ, entropy, grad_logprobs, grad_entropy, vocab, 1.0f / temperature);
  return (int)cudaGetLastError();
}

}  // namespace gvpo
