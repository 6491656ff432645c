// Host-array entry points for the CUDA kernels: copy in, run, copy out, on one stream with
// device allocations reused across calls (grown, never shrunk) and the caller's large arrays
// page-locked in place for the copies (cudaHostRegister; pageable copies if that is refused).
// Copy time and kernel time are measured with events and reported separately.
// One call at a time per process (a mutex): the workspace and stream are shared.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <mutex>

#include "../kernels.h"

namespace gvpo {

namespace {

struct Buffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  cudaError_t reserve(size_t n) {
    if (n <= bytes) return cudaSuccess;
    if (ptr) cudaFree(ptr);
    ptr = nullptr;
    bytes = 0;
    cudaError_t e = cudaMalloc(&ptr, n);
    if (e == cudaSuccess) bytes = n;
    return e;
  }
};

struct Workspace {
  std::mutex lock;
  cudaStream_t stream = nullptr;
  cudaEvent_t ev[4] = {nullptr, nullptr, nullptr, nullptr};
  Buffer logits, targets, mask, lp, lz, seq, gseq, resid, g, ref, rewards, offsets, terms, grad;
};

Workspace& ws() {
  static Workspace w;
  return w;
}

// Page-locks a host range for the duration of a call, if the driver agrees.
struct Pin {
  void* p = nullptr;
  Pin(const void* ptr, size_t bytes) {
    if (cudaHostRegister(const_cast<void*>(ptr), bytes, cudaHostRegisterDefault) == cudaSuccess)
      p = const_cast<void*>(ptr);
    else
      cudaGetLastError();  // clear: pageable copies work too, only slower
  }
  ~Pin() {
    if (p) cudaHostUnregister(p);
  }
};

#define GVPO_CUDA_TRY(call)                                                                      \
  do {                                                                                           \
    cudaError_t e_ = (cudaError_t)(call);                                                        \
    if (e_ != cudaSuccess) {                                                                     \
      snprintf(err, err_len, "%s failed: %s (%s:%d)", #call, cudaGetErrorString(e_), __FILE__, __LINE__); \
      return (int)e_;                                                                            \
    }                                                                                            \
  } while (0)

int prepare(Workspace& w, char* err, int err_len) {
  if (w.stream) return 0;
  GVPO_CUDA_TRY(cudaStreamCreateWithFlags(&w.stream, cudaStreamNonBlocking));
  for (auto& e : w.ev) GVPO_CUDA_TRY(cudaEventCreate(&e));
  return 0;
}

float elapsed(cudaEvent_t a, cudaEvent_t b) {
  float ms = 0;
  cudaEventElapsedTime(&ms, a, b);
  return ms;
}

}  // namespace

int token_logprobs_cuda_host(float* logprobs, float* logZ, CudaTimings* t, const void* logits,
                             DType dtype, const int32_t* targets, const float* mask, int64_t R,
                             int64_t V, float tau, char* err, int err_len) {
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
  cudaStream_t s = w.stream;
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[0], s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(w.logits.ptr, logits, zb, cudaMemcpyHostToDevice, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(w.targets.ptr, targets, R * 4, cudaMemcpyHostToDevice, s));
  if (mask) GVPO_CUDA_TRY(cudaMemcpyAsync(w.mask.ptr, mask, R * 4, cudaMemcpyHostToDevice, s));
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[1], s));
  GVPO_CUDA_TRY(token_logprobs_forward_cuda((float*)w.lp.ptr, (float*)w.lz.ptr, w.logits.ptr, dtype,
                                            (const int32_t*)w.targets.ptr, mask ? (const float*)w.mask.ptr : nullptr,
                                            R, V, tau, s));
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[2], s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(logprobs, w.lp.ptr, R * 4, cudaMemcpyDeviceToHost, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(logZ, w.lz.ptr, R * 4, cudaMemcpyDeviceToHost, s));
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[3], s));
  GVPO_CUDA_TRY(cudaStreamSynchronize(s));
  if (t) *t = {elapsed(w.ev[0], w.ev[1]), elapsed(w.ev[1], w.ev[2]), elapsed(w.ev[2], w.ev[3])};
  return 0;
}

int gvpo_from_logits_cuda_host(const GvpoCudaOut& out, CudaTimings* t, const void* logits,
                               DType dtype, const int32_t* targets, const float* mask,
                               const double* ref_seq, const double* rewards,
                               const int32_t* offsets, int64_t G, int64_t N, int64_t T, int64_t V,
                               float tau, double beta, bool mean_reduction, char* err, int err_len) {
  Workspace& w = ws();
  std::lock_guard<std::mutex> guard(w.lock);
  if (int e = prepare(w, err, err_len)) return e;
  const int64_t R = N * T;
  const size_t zb = (size_t)R * V * dtype_bytes(dtype), gb = (size_t)R * V * 4;
  // In place (float32 only) the gradient is written over the device copy of the logits.
  const bool in_place = out.grad == logits;
  GVPO_CUDA_TRY(w.logits.reserve(zb));
  if (!in_place) GVPO_CUDA_TRY(w.grad.reserve(gb));
  GVPO_CUDA_TRY(w.targets.reserve(R * 4));
  GVPO_CUDA_TRY(w.mask.reserve(R * 4));
  GVPO_CUDA_TRY(w.lp.reserve(R * 4));
  GVPO_CUDA_TRY(w.lz.reserve(R * 4));
  GVPO_CUDA_TRY(w.g.reserve(R * 4));
  GVPO_CUDA_TRY(w.seq.reserve(N * 8));
  GVPO_CUDA_TRY(w.gseq.reserve(N * 8));
  GVPO_CUDA_TRY(w.resid.reserve(N * 8));
  GVPO_CUDA_TRY(w.ref.reserve(N * 8));
  GVPO_CUDA_TRY(w.rewards.reserve(N * 8));
  GVPO_CUDA_TRY(w.offsets.reserve((G + 1) * 4));
  GVPO_CUDA_TRY(w.terms.reserve(5 * 8));
  float* dgrad = in_place ? (float*)w.logits.ptr : (float*)w.grad.ptr;
  Pin pin_in(logits, zb);
  Pin pin_out(out.grad, in_place ? 0 : gb);
  cudaStream_t s = w.stream;
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[0], s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(w.logits.ptr, logits, zb, cudaMemcpyHostToDevice, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(w.targets.ptr, targets, R * 4, cudaMemcpyHostToDevice, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(w.mask.ptr, mask, R * 4, cudaMemcpyHostToDevice, s));
  if (ref_seq) GVPO_CUDA_TRY(cudaMemcpyAsync(w.ref.ptr, ref_seq, N * 8, cudaMemcpyHostToDevice, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(w.rewards.ptr, rewards, N * 8, cudaMemcpyHostToDevice, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(w.offsets.ptr, offsets, (G + 1) * 4, cudaMemcpyHostToDevice, s));
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[1], s));
  GVPO_CUDA_TRY(token_logprobs_forward_cuda((float*)w.lp.ptr, (float*)w.lz.ptr, w.logits.ptr, dtype,
                                            (const int32_t*)w.targets.ptr, (const float*)w.mask.ptr, R, V, tau, s));
  GVPO_CUDA_TRY(gvpo_loss_cuda((double*)w.seq.ptr, (double*)w.gseq.ptr, (double*)w.resid.ptr, (float*)w.g.ptr,
                               (double*)w.terms.ptr, (const float*)w.lp.ptr, (const float*)w.mask.ptr,
                               ref_seq ? (const double*)w.ref.ptr : nullptr, (const double*)w.rewards.ptr,
                               (const int32_t*)w.offsets.ptr, G, N, T, beta, mean_reduction, s));
  GVPO_CUDA_TRY(token_logprobs_backward_cuda(dgrad, w.logits.ptr, dtype, (const int32_t*)w.targets.ptr,
                                             (const float*)w.lz.ptr, (const float*)w.g.ptr, R, V, tau, s));
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[2], s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(out.grad, dgrad, gb, cudaMemcpyDeviceToHost, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(out.logprobs, w.lp.ptr, R * 4, cudaMemcpyDeviceToHost, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(out.logZ, w.lz.ptr, R * 4, cudaMemcpyDeviceToHost, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(out.seq, w.seq.ptr, N * 8, cudaMemcpyDeviceToHost, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(out.grad_seq, w.gseq.ptr, N * 8, cudaMemcpyDeviceToHost, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(out.residuals, w.resid.ptr, N * 8, cudaMemcpyDeviceToHost, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(out.terms, w.terms.ptr, 5 * 8, cudaMemcpyDeviceToHost, s));
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[3], s));
  GVPO_CUDA_TRY(cudaStreamSynchronize(s));
  if (t) *t = {elapsed(w.ev[0], w.ev[1]), elapsed(w.ev[1], w.ev[2]), elapsed(w.ev[2], w.ev[3])};
  return 0;
}

}  // namespace gvpo
