// Row kernels of token_logprobs and the fused head's GEMM for the avx2 instruction set (see rows.h,
// gemm_impl.h).
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#pragma GCC target("avx2,fma,f16c")
#define GVPO_VW 8
#define GVPO_ISA avx2
#include "rows.h"
#include "gemm_impl.h"
#endif
