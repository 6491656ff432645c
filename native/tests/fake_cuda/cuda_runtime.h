// A stand-in for the CUDA runtime, for native/tests/test_cuda_host.cc only: "device" memory is
// host memory (filled with 0xff bytes when allocated, as garbage: NaN floats, -1 ints), every
// copy and memset happens at once, streams and events do nothing, page-locking is refused (the
// pageable path), and a copy can be made to fail (fake_fail_copy). It lets the host code of the CUDA ops run, and run
// under AddressSanitizer, on a machine without a GPU.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorHostMemoryAlreadyRegistered = 712
};
enum cudaMemcpyKind { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2 };
typedef struct FakeStream* cudaStream_t;
typedef struct FakeEvent* cudaEvent_t;
constexpr unsigned cudaStreamNonBlocking = 1, cudaHostRegisterDefault = 0;

inline cudaError_t cudaMalloc(void** p, size_t n) {
  *p = std::malloc(n ? n : 1);
  if (!*p) return cudaErrorMemoryAllocation;
  std::memset(*p, 0xff, n);
  return cudaSuccess;
}
inline cudaError_t cudaFree(void* p) { return std::free(p), cudaSuccess; }
// Error injection: the fake_fail_copy-th copy from now on fails (0: none), for the error paths.
inline int fake_fail_copy = 0;
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind, cudaStream_t) {
  if (fake_fail_copy > 0 && --fake_fail_copy == 0) return cudaErrorInvalidValue;
  return std::memcpy(d, s, n), cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t) { return std::memset(d, v, n), cudaSuccess; }
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  static int token;
  *s = (cudaStream_t)&token;
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaEventCreate(cudaEvent_t* e) {
  static int token;
  *e = (cudaEvent_t)&token;
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t, cudaEvent_t) { return *ms = 0.0f, cudaSuccess; }
inline cudaError_t cudaHostRegister(void*, size_t, unsigned) { return cudaErrorHostMemoryAlreadyRegistered; }
inline cudaError_t cudaHostUnregister(void*) { return cudaSuccess; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline const char* cudaGetErrorString(cudaError_t e) {
  return e == cudaSuccess ? "no error" : "stand-in runtime error";
}
