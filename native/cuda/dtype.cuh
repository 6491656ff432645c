// Element loads as float32 for the three dtypes the kernels take (float32, bfloat16, float16).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace gvpo {

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }

}  // namespace gvpo
