// token_logprobs on CUDA: fused log-softmax + gather, and the gradient pass, with the CPU's rules
// (row_sweep.h, whose per-thread code these kernels run):
//
//   forward   m = max_v z[r,v], lse = log sum_v exp((z - m)/tau) (double), logZ = m/tau + lse,
//             l = (z_y - m)/tau - lse <= 0 (double)
//   backward  grad[r,v] = g[r]/tau ([v == y] - exp((z - m)/tau - lse)), 0 on masked rows
//
// One block per row (R = N*T is thousands; V is 32k-152k, so a row is 64-600 KB: enough work per
// block, and no cross-block reduction). Each thread walks the row with 16-byte loads (4 float32
// or 8 bf16/fp16 values), kUnroll in flight, keeping an online (max, sum) pair; pairs merge by
// warp shuffles, then across warps in shared memory. Rows whose start is not 16-byte aligned take
// a scalar path. Bytes: forward reads R*V*esz once (streaming loads); backward reads them again and
// writes R*V*4 (streaming stores).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>

#include "../kernels.h"
#include "dtype.cuh"
#include "row_sweep.h"
#include "workspace.h"

namespace gvpo {

using namespace row_sweep;

__device__ Lse block_lse(Lse v, const Scale& k) {
  __shared__ Lse part[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) {
    Lse w{__shfl_xor_sync(0xffffffff, v.m, o), __shfl_xor_sync(0xffffffff, v.s, o),
          __shfl_xor_sync(0xffffffff, v.n, o)};
    v = lse_merge(v, w, k);
  }
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) part[warp] = v;
  __syncthreads();
  v = lane < (int)(blockDim.x / 32) ? part[lane] : Lse{-INFINITY, 0.0, 0.0};
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) {
      Lse w{__shfl_xor_sync(0xffffffff, v.m, o), __shfl_xor_sync(0xffffffff, v.s, o),
            __shfl_xor_sync(0xffffffff, v.n, o)};
      v = lse_merge(v, w, k);
    }
  return v;  // valid in warp 0
}

// 16 bytes of logits as E floats.
template <typename T>
struct Vec {
  static constexpr int E = 16 / sizeof(T);
};

template <typename T>
__device__ __forceinline__ void unpack16(uint4 raw, float* out) {
  const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int i = 0; i < Vec<T>::E; i++) out[i] = to_f32(e[i]);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    token_logprobs_forward_kernel(float* logprobs, float* logZ, double* logprobs64, float* row_max, float* row_lse,
                                  const T* logits, const int32_t* targets, const float* mask, int64_t V,
                                  float inv_tau) {
  const int64_t r = blockIdx.x;
  if (mask && mask[r] == 0.0f) {  // uniform per block: no thread reads the row
    if (threadIdx.x == 0) {
      logprobs[r] = logZ[r] = 0.0f;
      if (logprobs64) logprobs64[r] = 0.0;
      if (row_max) row_max[r] = 0.0f;
      if (row_lse) row_lse[r] = 0.0f;
    }
    return;
  }
  const T* row = logits + r * V;
  const uint4* vrow = reinterpret_cast<const uint4*>(row);
  const Scale k = scale_of(inv_tau);
  auto vec = [&](int64_t i, float* x) { unpack16<T>(__ldcs(vrow + i), x); };  // read once: streamed past L2
  auto one = [&](int64_t v) { return to_f32(row[v]); };
  const Lse part = sweep_lse<Vec<T>::E>(V, ((uintptr_t)row % 16) == 0, (int)threadIdx.x, (int)blockDim.x, k, vec, one);
  const Lse tot = block_lse(part, k);
  if (threadIdx.x == 0) {
    const RowStats st = finish_row(tot, targets[r], V, inv_tau, one);  // a target out of range: NaN, not a read
    logprobs[r] = st.l;
    logZ[r] = st.lz;
    if (logprobs64) logprobs64[r] = st.l64;
    if (row_max) row_max[r] = st.m;
    if (row_lse) row_lse[r] = st.lse;
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    token_logprobs_backward_kernel(float* grad, const T* logits, const int32_t* targets, const float* mask,
                                   const float* row_max, const float* row_lse, const double* g, int64_t V,
                                   float inv_tau) {
  const int64_t r = blockIdx.x;
  float* out = grad + r * V;
  const T* row = logits + r * V;
  const int32_t y = targets[r];
  const BackRow b = back_row(g[r], !mask || mask[r] != 0.0f, V, row_max ? row_max[r] : 0.0f, row_lse[r], y, inv_tau);
  float4* out4 = reinterpret_cast<float4*>(out);
  auto st4 = [&](int64_t q, float a, float c, float d, float e) { __stcs(out4 + q, make_float4(a, c, d, e)); };
  auto st1 = [&](int64_t v, float a) { out[v] = a; };
  const int tid = (int)threadIdx.x, T_ = (int)blockDim.x;
  if (b.zero || b.bad) {  // uniform per block
    sweep_fill(b.zero ? 0.0f : NAN, V, ((uintptr_t)out % 16) == 0, tid, T_, st4, st1);
    return;
  }
  const float zy = to_f32(row[y]);  // every thread reads it before any writes (grad may alias the row)
  __syncthreads();
  const uint4* vrow = reinterpret_cast<const uint4*>(row);
  auto vec = [&](int64_t i, float* x) { unpack16<T>(vrow[i], x); };
  auto one = [&](int64_t v) { return to_f32(row[v]); };
  sweep_backward<Vec<T>::E>(b, V, ((uintptr_t)row % 16) == 0 && ((uintptr_t)out % 16) == 0, tid, T_, vec, one, st4,
                            st1);
  __syncthreads();  // the target element is written last, by one thread
  if (tid == 0) out[y] = back_target(b, zy);
}

template <typename T>
static int launch_forward(float* lp, float* lz, double* lp64, float* rm, float* rl, const void* z, const int32_t* y,
                          const float* m, int64_t R, int64_t V, float inv_tau, cudaStream_t s) {
  if (R == 0) return 0;
  token_logprobs_forward_kernel<T>
      <<<(unsigned)R, kThreads, 0, s>>>(lp, lz, lp64, rm, rl, (const T*)z, y, m, V, inv_tau);
  return (int)cudaGetLastError();
}

template <typename T>
static int launch_backward(float* grad, const void* z, const int32_t* y, const float* m, const float* rm,
                           const float* rl, const double* g, int64_t R, int64_t V, float inv_tau, cudaStream_t s) {
  if (R == 0) return 0;
  token_logprobs_backward_kernel<T><<<(unsigned)R, kThreads, 0, s>>>(grad, (const T*)z, y, m, rm, rl, g, V, inv_tau);
  return (int)cudaGetLastError();
}

int token_logprobs_forward_cuda(float* logprobs, float* logZ, double* logprobs64, float* row_max, float* row_lse,
                                const void* logits, DType dtype, const int32_t* targets, const float* mask,
                                int64_t rows, int64_t vocab, float temperature, void* stream) {
  cudaStream_t s = (cudaStream_t)stream;
  const float inv = 1.0f / temperature;
  switch (dtype) {
    case DType::f32:
      return launch_forward<float>(logprobs, logZ, logprobs64, row_max, row_lse, logits, targets, mask, rows, vocab,
                                   inv, s);
    case DType::bf16:
      return launch_forward<__nv_bfloat16>(logprobs, logZ, logprobs64, row_max, row_lse, logits, targets, mask, rows,
                                           vocab, inv, s);
    case DType::f16:
      return launch_forward<__half>(logprobs, logZ, logprobs64, row_max, row_lse, logits, targets, mask, rows, vocab,
                                    inv, s);
  }
  return (int)cudaErrorInvalidValue;
}

int token_logprobs_backward_cuda(float* grad, const void* logits, DType dtype, const int32_t* targets,
                                 const float* mask, const float* row_max, const float* row_lse,
                                 const double* token_weights, int64_t rows, int64_t vocab, float temperature,
                                 void* stream) {
  cudaStream_t s = (cudaStream_t)stream;
  const float inv = 1.0f / temperature;
  const double* g = token_weights;
  switch (dtype) {
    case DType::f32:
      return launch_backward<float>(grad, logits, targets, mask, row_max, row_lse, g, rows, vocab, inv, s);
    case DType::bf16:
      return launch_backward<__nv_bfloat16>(grad, logits, targets, mask, row_max, row_lse, g, rows, vocab, inv, s);
    case DType::f16:
      return launch_backward<__half>(grad, logits, targets, mask, row_max, row_lse, g, rows, vocab, inv, s);
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
                             int err_len, float* row_max, float* row_lse) {
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
  const bool split = row_max && row_lse;
  if (split) {
    GVPO_CUDA_TRY(w.rmax.reserve(R * 4));
    GVPO_CUDA_TRY(w.rlse.reserve(R * 4));
  }
  Pin pin(logits, zb);
  Drain drain{w.stream};  // before the pin ends, even on an error return
  cudaStream_t s = w.stream;
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[0], s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(w.logits.ptr, logits, zb, cudaMemcpyHostToDevice, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(w.targets.ptr, targets, R * 4, cudaMemcpyHostToDevice, s));
  if (mask) GVPO_CUDA_TRY(cudaMemcpyAsync(w.mask.ptr, mask, R * 4, cudaMemcpyHostToDevice, s));
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[1], s));
  GVPO_CUDA_TRY(token_logprobs_forward_cuda((float*)w.lp.ptr, (float*)w.lz.ptr, nullptr,
                                            split ? (float*)w.rmax.ptr : nullptr, split ? (float*)w.rlse.ptr : nullptr,
                                            w.logits.ptr, dtype, (const int32_t*)w.targets.ptr,
                                            mask ? (const float*)w.mask.ptr : nullptr, R, V, tau, s));
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[2], s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(logprobs, w.lp.ptr, R * 4, cudaMemcpyDeviceToHost, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(logZ, w.lz.ptr, R * 4, cudaMemcpyDeviceToHost, s));
  if (split) {
    GVPO_CUDA_TRY(cudaMemcpyAsync(row_max, w.rmax.ptr, R * 4, cudaMemcpyDeviceToHost, s));
    GVPO_CUDA_TRY(cudaMemcpyAsync(row_lse, w.rlse.ptr, R * 4, cudaMemcpyDeviceToHost, s));
  }
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[3], s));
  GVPO_CUDA_TRY(cudaStreamSynchronize(s));
  if (t) *t = {elapsed(w.ev[0], w.ev[1]), elapsed(w.ev[1], w.ev[2]), elapsed(w.ev[2], w.ev[3])};
  return 0;
}

}  // namespace gvpo
