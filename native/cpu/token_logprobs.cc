// token_logprobs: fused log-softmax + gather over the vocabulary, and its gradient.
//
//   forward   logZ[r] = logsumexp_v z[r,v]/tau,  l[r] = z[r,y[r]]/tau - logZ[r]   (z: R x V)
//   backward  grad[r,v] = g[r]/tau * ([v == y[r]] - exp(z[r,v]/tau - logZ[r]))
//
// Bytes: forward reads R*V*esz once; backward reads them once more and writes R*V*4.
// The row kernels live in rows.h, compiled per instruction set; this file picks one at run time
// and splits rows across threads.
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../kernels.h"
#include "parallel.h"

namespace gvpo {

#define GVPO_DECLARE_ROWS(isa)                                                                 \
  namespace isa {                                                                              \
  double row_logsumexp(const void* row, DType d, int64_t V, float inv_tau, int32_t y,          \
                       float* x_target);                                                       \
  void row_backward(float* grad, const void* row, DType d, int64_t V, float inv_tau,           \
                    float logZ, int32_t y, float coef);                                        \
  }
GVPO_DECLARE_ROWS(generic)
#if defined(__x86_64__) || defined(__i386__)
GVPO_DECLARE_ROWS(avx2)
GVPO_DECLARE_ROWS(avx512)
#endif

namespace {

struct RowKernels {
  const char* name;
  double (*logsumexp)(const void*, DType, int64_t, float, int32_t, float*);
  void (*backward)(float*, const void*, DType, int64_t, float, float, int32_t, float);
};

RowKernels pick_kernels() {
  const char* force = std::getenv("GVPO_SIMD");  // "avx512" | "avx2" | "generic": for tests
  std::string f = force ? force : "";
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  bool has512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if ((f.empty() || f == "avx512") && has512)
    return {"avx512", avx512::row_logsumexp, avx512::row_backward};
  if ((f.empty() || f == "avx512" || f == "avx2") && has2)
    return {"avx2", avx2::row_logsumexp, avx2::row_backward};
  return {"sse2", generic::row_logsumexp, generic::row_backward};
#else
  return {"generic", generic::row_logsumexp, generic::row_backward};
#endif
}

const RowKernels& kernels() {
  static const RowKernels k = pick_kernels();
  return k;
}

}  // namespace

const char* cpu_simd_level() { return kernels().name; }

int cpu_default_threads() {
  if (const char* env = std::getenv("GVPO_NUM_THREADS")) {
    int t = std::atoi(env);
    if (t > 0) return t;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc ? (int)hc : 1;
}

int resolve_threads(int requested) { return requested > 0 ? requested : cpu_default_threads(); }

int64_t token_logprobs_forward_cpu(float* logprobs, float* logZ, const void* logits, DType dtype,
                                   const int32_t* targets, const float* mask, int64_t rows,
                                   int64_t vocab, float temperature, int threads) {
  const RowKernels& k = kernels();
  const float inv_tau = 1.0f / temperature;
  const size_t row_bytes = (size_t)vocab * dtype_bytes(dtype);
  std::atomic<int64_t> nonfinite_rows{0};
  parallel_rows(rows, vocab, threads, [&](int64_t begin, int64_t end) {
    int64_t nonfinite = 0;
    for (int64_t r = begin; r < end; r++) {
      if (mask && mask[r] == 0.0f) {
        logprobs[r] = 0.0f;
        logZ[r] = 0.0f;
        continue;
      }
      const void* row = (const char*)logits + (size_t)r * row_bytes;
      float x_target;
      double lz = k.logsumexp(row, dtype, vocab, inv_tau, targets[r], &x_target);
      logZ[r] = (float)lz;
      if (std::isfinite(lz)) {
        logprobs[r] = (float)((double)x_target - lz);
      } else {
        logprobs[r] = NAN;
        nonfinite++;
      }
    }
    nonfinite_rows += nonfinite;
  });
  return nonfinite_rows.load();
}

void token_logprobs_backward_cpu(float* grad, const void* logits, DType dtype,
                                 const int32_t* targets, const float* logZ,
                                 const float* grad_logprobs, int64_t rows, int64_t vocab,
                                 float temperature, int threads) {
  const RowKernels& k = kernels();
  const float inv_tau = 1.0f / temperature;
  const size_t row_bytes = (size_t)vocab * dtype_bytes(dtype);
  parallel_rows(rows, vocab, threads, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      float* out = grad + (size_t)r * vocab;
      float g = grad_logprobs[r];
      if (g == 0.0f) {
        std::memset(out, 0, (size_t)vocab * sizeof(float));
        continue;
      }
      if (!std::isfinite(logZ[r])) {
        for (int64_t v = 0; v < vocab; v++) out[v] = NAN;
        continue;
      }
      const void* row = (const char*)logits + (size_t)r * row_bytes;
      k.backward(out, row, dtype, vocab, inv_tau, logZ[r], targets[r], g * inv_tau);
    }
  });
}

}  // namespace gvpo
