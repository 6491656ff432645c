// token_logprobs on CUDA: fused log-softmax + gather, and the gradient pass.
//
//   forward   logZ[r] = logsumexp_v z[r,v]/tau, l[r] = z[r,y[r]]/tau - logZ[r] <= 0   z: R x V
//   backward  grad[r,v] = g[r]/tau * ([v == y[r]] - exp(z[r,v]/tau - logZ[r])), 0 on masked rows
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
#include "dtype.cuh"
#include "workspace.h"

namespace gvpo {

constexpr int kThreads = 512;

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
  // nothing finite in b (also avoids -inf - -inf); but a lane that saw only NaN holds {-inf, NaN}
  // and its NaN must still poison the row, as the CPU's sum does
  if (b.m == -INFINITY) return {a.m, b.s != b.s ? b.s : a.s};
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
__global__ void __launch_bounds__(kThreads)
    token_logprobs_forward_kernel(float* logprobs, float* logZ, const T* logits, const int32_t* targets,
                                  const float* mask, int64_t V, float inv_tau) {
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
    const int32_t y = targets[r];  // checked by the callers; out of range here gives NaN, not a read
    const bool ok = isfinite(lz) && y >= 0 && y < V;
    // one token: l = 0 exactly; otherwise never positive, whatever the rounding of lz
    logprobs[r] = !ok ? NAN : V == 1 ? 0.0f : fminf(to_f32(row[y]) * inv_tau - lz, 0.0f);
  }
}

// A probability exp(x), x = z/tau - logZ <= 0 in exact arithmetic: where rounding of a large
// |z/tau| (or a caller's logZ) makes x positive, x is taken as 0, so p <= 1, never inf; NaN
// stays NaN (fminf would turn it into 0).
__device__ __forceinline__ float exp_p(float x) { return __expf(x > 0.0f ? 0.0f : x); }

template <typename T>
__global__ void __launch_bounds__(kThreads)
    token_logprobs_backward_kernel(float* grad, const T* logits, const int32_t* targets, const float* mask,
                                   const float* logZ, const float* g, int64_t V, float inv_tau) {
  const int64_t r = blockIdx.x;
  float* out = grad + r * V;
  const T* row = logits + r * V;
  const float gr = g[r], lz = logZ[r];
  const float coef = gr * inv_tau;
  const int32_t y = targets[r];
  // A masked row, a zero weight or a one-token vocabulary: l is constant, its gradient 0. A
  // target out of range (the callers refuse it first) or a non-finite logZ: a NaN row.
  const bool zero = gr == 0.0f || (mask && mask[r] == 0.0f) || V == 1;
  const bool bad = !zero && (!isfinite(lz) || !isfinite(gr) || y < 0 || y >= V);
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
        for (int q = 0; q < 4; q++) op[q] = zero ? 0.0f : bad ? NAN : -coef * exp_p(x[j + q] * inv_tau - lz);
        *reinterpret_cast<float4*>(out + i * E + j) = o;
      }
    }
    v0 = nvec * E;
  }
  for (int64_t v = v0 + threadIdx.x; v < V; v += blockDim.x)
    out[v] = zero ? 0.0f : bad ? NAN : -coef * exp_p(to_f32(row[v]) * inv_tau - lz);
  __syncthreads();  // the target element is written last, by one thread
  if (threadIdx.x == 0 && !zero && !bad) out[y] += coef;
}

template <typename T>
static int launch_forward(float* lp, float* lz, const void* z, const int32_t* y, const float* m, int64_t R, int64_t V,
                          float inv_tau, cudaStream_t s) {
  token_logprobs_forward_kernel<T><<<(unsigned)R, kThreads, 0, s>>>(lp, lz, (const T*)z, y, m, V, inv_tau);
  return (int)cudaGetLastError();
}

template <typename T>
static int launch_backward(float* grad, const void* z, const int32_t* y, const float* m, const float* lz,
                           const float* g, int64_t R, int64_t V, float inv_tau, cudaStream_t s) {
  token_logprobs_backward_kernel<T><<<(unsigned)R, kThreads, 0, s>>>(grad, (const T*)z, y, m, lz, g, V, inv_tau);
  return (int)cudaGetLastError();
}

int token_logprobs_forward_cuda(float* logprobs, float* logZ, const void* logits, DType dtype, const int32_t* targets,
                                const float* mask, int64_t rows, int64_t vocab, float temperature, void* stream) {
  cudaStream_t s = (cudaStream_t)stream;
  const float inv = 1.0f / temperature;
  switch (dtype) {
    case DType::f32:
      return launch_forward<float>(logprobs, logZ, logits, targets, mask, rows, vocab, inv, s);
    case DType::bf16:
      return launch_forward<__nv_bfloat16>(logprobs, logZ, logits, targets, mask, rows, vocab, inv, s);
    case DType::f16:
      return launch_forward<__half>(logprobs, logZ, logits, targets, mask, rows, vocab, inv, s);
  }
  return (int)cudaErrorInvalidValue;
}

int token_logprobs_backward_cuda(float* grad, const void* logits, DType dtype, const int32_t* targets,
                                 const float* mask, const float* logZ, const float* grad_token_logprobs, int64_t rows,
                                 int64_t vocab, float temperature, void* stream) {
  cudaStream_t s = (cudaStream_t)stream;
  const float inv = 1.0f / temperature;
  switch (dtype) {
    case DType::f32:
      return launch_backward<float>(grad, logits, targets, mask, logZ, grad_token_logprobs, rows, vocab, inv, s);
    case DType::bf16:
      return launch_backward<__nv_bfloat16>(grad, logits, targets, mask, logZ, grad_token_logprobs, rows, vocab, inv,
                                            s);
    case DType::f16:
      return launch_backward<__half>(grad, logits, targets, mask, logZ, grad_token_logprobs, rows, vocab, inv, s);
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

// Host arrays in, log-probs and logZ out (workspace.h).
int token_logprobs_cuda_host(float* logprobs, float* logZ, CudaTimings* t, const void* logits, DType dtype,
                             const int32_t* targets, const float* mask, int64_t R, int64_t V, float tau, char* err,
                             int err_len) {
  using namespace cuda_host;
  Workspace& w = ws();
  std::lock_guard<std::mutex> guard(w.lock);
  if (int e = prepare(w, err, err_len)) return e;
  const size_t zb = (size_t)R * V * dtype_bytes(dtype);
  GVPO_CUDA_TRY(w.logits.reserve(zb));
  GVPO_CUDA_TRY(w.targets.reserve(R * 4));
  GVPO_CUDA_TRY(w.mask.reserve(R * 4));
  GVPO_CUDA_TRY(w.lp.reserve(R * 4));
  GVPO_CUDA_TRY(w.lz.reserve(R * 4));
  Pin pin(logits, zb);
  Drain drain{w.stream};  // before the pin ends, even on an error return
  cudaStream_t s = w.stream;
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[0], s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(w.logits.ptr, logits, zb, cudaMemcpyHostToDevice, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(w.targets.ptr, targets, R * 4, cudaMemcpyHostToDevice, s));
  if (mask) GVPO_CUDA_TRY(cudaMemcpyAsync(w.mask.ptr, mask, R * 4, cudaMemcpyHostToDevice, s));
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[1], s));
  GVPO_CUDA_TRY(token_logprobs_forward_cuda((float*)w.lp.ptr, (float*)w.lz.ptr, w.logits.ptr, dtype,
                                            (const int32_t*)w.targets.ptr, mask ? (const float*)w.mask.ptr : nullptr, R,
                                            V, tau, s));
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[2], s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(logprobs, w.lp.ptr, R * 4, cudaMemcpyDeviceToHost, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(logZ, w.lz.ptr, R * 4, cudaMemcpyDeviceToHost, s));
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[3], s));
  GVPO_CUDA_TRY(cudaStreamSynchronize(s));
  if (t) *t = {elapsed(w.ev[0], w.ev[1]), elapsed(w.ev[1], w.ev[2]), elapsed(w.ev[2], w.ev[3])};
  return 0;
}

}  // namespace gvpo
