// Row gathers and scatters for the fused LM head (gvpo_from_hidden.cu): the rows that take part
// in a chunk are copied into a dense buffer (so a masked row's values never reach a product) and
// the chunk's gradient rows are copied back to their places; and the per-row power-of-two scaling
// that brings rows whose coefficients run at different scales to one before dW's product.
// Grid-stride loops, one element per thread step.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "../kernels.h"

namespace gvpo {

namespace {

// dst[i, :] = src[idx[i], :] over rows of `width` elements of T (a bit copy).
template <typename T>
__global__ void gather_kernel(T* dst, const T* src, const int32_t* idx, int64_t rows, int64_t width) {
  const int64_t n = rows * width;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = src[(int64_t)idx[i / width] * width + i % width];
}

// dst[idx[i], :] = src[i, :] (rows of floats).
__global__ void scatter_kernel(float* dst, const float* src, const int32_t* idx, int64_t rows, int64_t width) {
  const int64_t n = rows * width;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[(int64_t)idx[i / width] * width + i % width] = src[i];
}

// x[i, :] *= 2^-shift[i] (rows of floats), through double so that each element is rounded once,
// as the CPU's ldexp: +-0 or a subnormal where it underflows, NaN kept.
__global__ void scale_rows_kernel(float* x, const int32_t* shift, int64_t rows, int64_t width) {
  const int64_t n = rows * width;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int s = shift[i / width];
    if (s) x[i] = (float)ldexp((double)x[i], -s);
  }
}

unsigned blocks_for(int64_t n) { return (unsigned)std::min<int64_t>((n + 255) / 256, 4096); }

}  // namespace

int gather_rows_cuda(void* dst, const void* src, DType dtype, const int32_t* idx, int64_t rows, int64_t width,
                     void* stream) {
  if (rows * width == 0) return 0;
  cudaStream_t s = (cudaStream_t)stream;
  if (dtype == DType::f32)
    gather_kernel<float><<<blocks_for(rows * width), 256, 0, s>>>((float*)dst, (const float*)src, idx, rows, width);
  else
    gather_kernel<uint16_t>
        <<<blocks_for(rows * width), 256, 0, s>>>((uint16_t*)dst, (const uint16_t*)src, idx, rows, width);
  return (int)cudaGetLastError();
}

int scatter_rows_cuda(float* dst, const float* src, const int32_t* idx, int64_t rows, int64_t width, void* stream) {
  if (rows * width == 0) return 0;
  scatter_kernel<<<blocks_for(rows * width), 256, 0, (cudaStream_t)stream>>>(dst, src, idx, rows, width);
  return (int)cudaGetLastError();
}

int scale_rows_pow2_cuda(float* x, const int32_t* shift, int64_t rows, int64_t width, void* stream) {
  if (rows * width == 0) return 0;
  scale_rows_kernel<<<blocks_for(rows * width), 256, 0, (cudaStream_t)stream>>>(x, shift, rows, width);
  return (int)cudaGetLastError();
}

}  // namespace gvpo
