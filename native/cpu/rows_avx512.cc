// Row kernels of token_logprobs and the fused head's GEMM for the avx512 instruction set (see rows.h,
// gemm_impl.h).
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")
// GCC 12 flags the undefined-on-purpose pass-through operand of _mm512_scalef_ps.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define GVPO_VW 16
#define GVPO_ISA avx512
#include "rows.h"
#include "gemm_impl.h"
#endif
