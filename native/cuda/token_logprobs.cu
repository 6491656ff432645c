// token_logprobs on CUDA: fused log-softmax + gather, and the gradient pass.
//
//   forward   logZ[r] = logsumexp_v z[r,v]/tau, l[r] = z[r,y[r]]/tau - logZ[r]    z: R x V
//   backward  grad[r,v] = g[r]/tau * ([v == y[r]] - exp(z[r,v]/tau - logZ[r]))
//
// One block per row (R = N*T is thousands; V is 32k-152k, so a row is 64-600 KB: enough work per
// block, and no cross-block reduction). Each thread walks the row with 16-byte loads (4 float32
// or 8 bf16/fp16 values), keeping an online (max, sum) pair; pairs merge by warp shuffles, then
// across warps in shared memory. Rows whose start is not 16-byte aligned (V*esz % 16 != 0) take a
// scalar path. Bytes: forward reads R*V*esz once; backward reads them again and writes R*V*4.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>

#include "../kernels.h"

namespace gvpo {

constexpr int kThreads = 512;

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }

// Online log-sum-exp state: running max m and sum s of exp(x - m).
struct Lse {
  float m, s;
};

__device__ __forceinline__ void lse_add(Lse& a, float x) {
  if (x > a.m) {
    a.s = a.s * __expf(a.m - x) + 1.0f;
    a.m = x;
  } else if (x > -INFINITY || x != x) {
    a.s += __expf(x - a.m);  // -inf adds nothing (and -inf - -inf must not become NaN); NaN poisons s
  }
}

__device__ __forceinline__ Lse lse_merge(Lse a, Lse b) {
  if (b.m > a.m) {
    Lse t = a;
    a = b;
    b = t;
  }
  if (b.m == -INFINITY) return a;  // nothing in b (also avoids -inf - -inf)
  return {a.m, a.s + b.s * __expf(b.m - a.m)};
}

__device__ Lse block_lse(Lse v) {
  __shared__ Lse part[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) {
    Lse w{__shfl_xor_sync(0xffffffff, v.m, o), __shfl_xor_sync(0xffffffff, v.s, o)};
    v = lse_merge(v, w);
  }
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) part[warp] = v;
  __syncthreads();
  v = lane < (int)(blockDim.x / 32) ? part[lane] : Lse{-INFINITY, 0.0f};
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) {
      Lse w{__shfl_xor_sync(0xffffffff, v.m, o), __shfl_xor_sync(0xffffffff, v.s, o)};
      v = lse_merge(v, w);
    }
  return v;  // valid in warp 0
}

// 16 bytes of logits as E floats.
template <typename T>
struct Vec {
  static constexpr int E = 16 / sizeof(T);
};

template <typename T>
__device__ __forceinline__ void load16(const T* p, float* out) {
  uint4 raw = *reinterpret_cast<const uint4*>(p);
  const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int i = 0; i < Vec<T>::E; i++) out[i] = to_f32(e[i]);
}

template <typename T>
__global__ void __launch_bounds__(kThreads) token_logprobs_forward_kernel1(
    float* logprobs, float* logZ, const T* logits, const int32_t* targets, const float* mask,
    int64_t V, float inv_tau) {
  const int64_t r = blockIdx.x;
  if (mask && mask[r] == 0.0f) {  // uniform per block: no thread reads the row
    if (threadIdx.x == 0) logprobs[r] = logZ[r] = 0.0f;
    return;
  }
  const T* row = logits + r * V;
  Lse acc{-INFINITY, 0.0f};
  constexpr int E = Vec<T>::E;
  const bool aligned = ((uintptr_t)row % 16) == 0;
  int64_t v0 = 0;
  if (aligned) {
    const int64_t nvec = V / E;
    for (int64_t i = threadIdx.x; i < nvec; i += blockDim.x) {
      float x[E];
      load16(row + i * E, x);
#pragma unroll
      for (int j = 0; j < E; j++) lse_add(acc, x[j] * inv_tau);
    }
    v0 = nvec * E;
  }
  for (int64_t v = v0 + threadIdx.x; v < V; v += blockDim.x) lse_add(acc, to_f32(row[v]) * inv_tau);
  Lse tot = block_lse(acc);
  if (threadIdx.x == 0) {
    float lz = tot.m + logf(tot.s);
    if (tot.m == -INFINITY) lz = -INFINITY;
    logZ[r] = lz;
    logprobs[r] = isfinite(lz) ? to_f32(row[targets[r]]) * inv_tau - lz : NAN;
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) token_logprobs_backward_kernel1(
    float* grad, const T* logits, const int32_t* targets, const float* logZ, const float* g,
    int64_t V, float inv_tau) {
  const int64_t r = blockIdx.x;
  float* out = grad + r * V;
  const T* row = logits + r * V;
  const float gr = g[r], lz = logZ[r];
  const float coef = gr * inv_tau;
  const bool zero = gr == 0.0f, bad = !isfinite(lz);
  constexpr int E = Vec<T>::E;
  // 16-byte loads need the logits row aligned; 16-byte stores need the float row aligned (E floats
  // of output per load when T is float; 2 float4 stores per 8 half values otherwise).
  const bool aligned = ((uintptr_t)row % 16) == 0 && ((uintptr_t)out % 16) == 0;
  int64_t v0 = 0;
  if (aligned) {
    const int64_t nvec = V / E;
    for (int64_t i = threadIdx.x; i < nvec; i += blockDim.x) {
      float x[E];
      if (!zero && !bad) load16(row + i * E, x);
#pragma unroll
      for (int j = 0; j < E; j += 4) {
        float4 o;
        float* op = &o.x;
#pragma unroll
        for (int q = 0; q < 4; q++) op[q] = zero ? 0.0f : bad ? NAN : -coef * __expf(x[j + q] * inv_tau - lz);
        *reinterpret_cast<float4*>(out + i * E + j) = o;
      }
    }
    v0 = nvec * E;
  }
  for (int64_t v = v0 + threadIdx.x; v < V; v += blockDim.x)
    out[v] = zero ? 0.0f : bad ? NAN : -coef * __expf(to_f32(row[v]) * inv_tau - lz);
  __syncthreads();  // the target element is written last, by one thread
  if (threadIdx.x == 0 && !zero && !bad) out[targets[r]] += coef;
}

template <typename T>
static int launch_forward(float* lp, float* lz, const void* z, const int32_t* y, const float* m,
                          int64_t R, int64_t V, float inv_tau, cudaStream_t s) {
  token_logprobs_forward_kernel1<T><<<(unsigned)R, kThreads, 0, s>>>(lp, lz, (const T*)z, y, m, V, inv_tau);
  return (int)cudaGetLastError();
}

template <typename T>
static int launch_backward(float* grad, const void* z, const int32_t* y, const float* lz,
                           const float* g, int64_t R, int64_t V, float inv_tau, cudaStream_t s) {
  token_logprobs_backward_kernel1<T><<<(unsigned)R, kThreads, 0, s>>>(grad, (const T*)z, y, lz, g, V, inv_tau);
  return (int)cudaGetLastError();
}

int token_logprobs_forward_cuda(float* logprobs, float* logZ, const void* logits, DType dtype,
                                const int32_t* targets, const float* mask, int64_t rows,
                                int64_t vocab, float temperature, void* stream) {
  cudaStream_t s = (cudaStream_t)stream;
  const float inv = 1.0f / temperature;
  switch (dtype) {
    case DType::f32: return launch_forward<float>(logprobs, logZ, logits, targets, mask, rows, vocab, inv, s);
    case DType::bf16: return launch_forward<__nv_bfloat16>(logprobs, logZ, logits, targets, mask, rows, vocab, inv, s);
    case DType::f16: return launch_forward<__half>(logprobs, logZ, logits, targets, mask, rows, vocab, inv, s);
  }
  return (int)cudaErrorInvalidValue;
}

int token_logprobs_backward_cuda(float* grad, const void* logits, DType dtype,
                                 const int32_t* targets, const float* logZ,
                                 const float* grad_logprobs, int64_t rows, int64_t vocab,
                                 float temperature, void* stream) {
  cudaStream_t s = (cudaStream_t)stream;
  const float inv = 1.0f / temperature;
  switch (dtype) {
    case DType::f32: return launch_backward<float>(grad, logits, targets, logZ, grad_logprobs, rows, vocab, inv, s);
    case DType::bf16: return launch_backward<__nv_bfloat16>(grad, logits, targets, logZ, grad_logprobs, rows, vocab, inv, s);
    case DType::f16: return launch_backward<__half>(grad, logits, targets, logZ, grad_logprobs, rows, vocab, inv, s);
  }
  return (int)cudaErrorInvalidValue;
}

int cuda_device_info(int* count, char* name, int name_len) {
  cudaError_t e = cudaGetDeviceCount(count);
  if (e != cudaSuccess) {
    *count = 0;
    snprintf(name, name_len, "%s", cudaGetErrorString(e));
    return (int)e;
  }
  if (*count > 0) {
    cudaDeviceProp p;
    e = cudaGetDeviceProperties(&p, 0);
    if (e != cudaSuccess) return (int)e;
    snprintf(name, name_len, "%s", p.name);
  }
  return 0;
}

}  // namespace gvpo
