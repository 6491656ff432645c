// What the host-array CUDA entry points share: one stream, events, device buffers reused across
// calls (grown, never shrunk), the caller's large arrays page-locked in place for the copies
// (cudaHostRegister; pageable copies if that is refused). One call at a time per process (a
// mutex): the workspace and stream are shared. Copy and kernel times are measured with events.
#pragma once
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <mutex>

#include "../kernels.h"

namespace gvpo {
namespace cuda_host {

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
  Buffer logits, targets, mask, lp, lz, lp64, rmax, rlse, seq, gseq, resid, g, ref, rewards, offsets, terms, grad;
  Buffer hidden, weight, hchunk, dhidden, dweight, ent, dwshift;  // the fused LM head (head.h)
};

inline Workspace& ws() {
  static Workspace w;
  return w;
}

// Page-locks a host range for the duration of a call, if the driver agrees.
struct Pin {
  void* p = nullptr;
  Pin(const void* ptr, size_t bytes) {
    if (bytes == 0) return;  // nothing to copy (the runtime refuses an empty range)
    if (cudaHostRegister(const_cast<void*>(ptr), bytes, cudaHostRegisterDefault) == cudaSuccess)
      p = const_cast<void*>(ptr);
    else
      cudaGetLastError();  // clear: pageable copies work too, only slower
  }
  ~Pin() {
    if (p) cudaHostUnregister(p);
  }
};

// Waits for the stream when it goes out of scope, an error return included: declared after the
// Pins of a function, it runs first, so no copy still uses a range when its Pin unregisters it
// (nor after the caller has been told the call failed and may free the array).
struct Drain {
  cudaStream_t s;
  ~Drain() { cudaStreamSynchronize(s); }
};

#define GVPO_CUDA_TRY(call)                                                                               \
  do {                                                                                                    \
    cudaError_t e_ = (cudaError_t)(call);                                                                 \
    if (e_ != cudaSuccess) {                                                                              \
      snprintf(err, err_len, "%s failed: %s (%s:%d)", #call, cudaGetErrorString(e_), __FILE__, __LINE__); \
      return (int)e_;                                                                                     \
    }                                                                                                     \
  } while (0)

inline int prepare(Workspace& w, char* err, int err_len) {
  if (w.stream) return 0;
  GVPO_CUDA_TRY(cudaStreamCreateWithFlags(&w.stream, cudaStreamNonBlocking));
  for (auto& e : w.ev) GVPO_CUDA_TRY(cudaEventCreate(&e));
  return 0;
}

inline float elapsed(cudaEvent_t a, cudaEvent_t b) {
  float ms = 0;
  cudaEventElapsedTime(&ms, a, b);
  return ms;
}

}  // namespace cuda_host
}  // namespace gvpo
