// Row kernels of token_logprobs for the generic instruction set (see rows.h).
#include <cmath>
#include <cstdint>
#include <cstring>

#if 1

#define GVPO_VW 4
#define GVPO_ISA generic
#include "rows.h"
#endif
