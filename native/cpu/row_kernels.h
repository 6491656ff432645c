// The per-instruction-set row kernels of rows.h, and the table picked at run time.
#pragma once
#include <cstdint>

#include "../kernels.h"

namespace gvpo {

// One row's log-sum-exp in two parts: m = max_v z[v] (unscaled) and lse = log sum_v
// exp((z[v] - m)/tau) >= 0, so that logZ = m/tau + lse with no rounding of z/tau itself.
struct RowStats {
  float m;
  double lse;
};

#define GVPO_DECLARE_ROWS(isa)                                                                                      \
  namespace isa {                                                                                                   \
  RowStats row_logsumexp(const void* row, DType d, int64_t V, float inv_tau);                                       \
  double row_target(const void* row, DType d, int32_t y, float m, float inv_tau);                                   \
  void row_backward(float* grad, const void* row, DType d, int64_t V, float inv_tau, float m, float lse, int32_t y, \
                    float coef);                                                                                    \
  double exp_probe(int64_t iterations, float seed);                                                                 \
  }
GVPO_DECLARE_ROWS(generic)
#if defined(__x86_64__) || defined(__i386__)
GVPO_DECLARE_ROWS(avx2)
GVPO_DECLARE_ROWS(avx512)
#endif
#undef GVPO_DECLARE_ROWS

struct RowKernels {
  // "avx512bf16" (avx512 with the fused head's bfloat16 products) | "avx512" | "avx2" | "sse2"
  // (x86-64's baseline) | "generic" (elsewhere)
  const char* name;
  RowStats (*logsumexp)(const void*, DType, int64_t, float);
  double (*target)(const void*, DType, int32_t, float, float);
  void (*backward)(float*, const void*, DType, int64_t, float, float, float, int32_t, float);
  double (*exp_probe)(int64_t iterations, float seed);  // the forward's exp, in registers
};

// The widest set this CPU has, or the one GVPO_SIMD names (a narrower one, for tests).
const RowKernels& row_kernels();

}  // namespace gvpo
