// Row kernels of token_logprobs and the fused head's GEMM for the generic instruction set (see rows.h,
// gemm_impl.h).
#include <cmath>
#include <cstdint>
#include <cstring>

#if 1

#define GVPO_VW 4
#define GVPO_ISA generic
#include "rows.h"
#include "gemm_impl.h"
#endif
