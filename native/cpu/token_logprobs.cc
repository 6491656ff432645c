// token_logprobs: fused log-softmax + gather over the vocabulary, and its gradient.
//
//   forward   logZ[r] = logsumexp_v z[r,v]/tau,  l[r] = z[r,y[r]]/tau - logZ[r] <= 0  (z: R x V)
//   backward  grad[r,v] = g[r]/tau * ([v == y[r]] - exp(z[r,v]/tau - logZ[r]))
//
// Bytes: forward reads R*V*esz once; backward reads them once more and writes R*V*4.
// The row kernels live in rows.h, compiled per instruction set; this file picks one at run time
// and splits rows across threads. Masked rows are never read. A target outside [0, V) on a live
// row is never used as an index: the row comes out NaN (the callers refuse such targets first;
// this is the last line, so that a bug above costs a wrong number, never memory).
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "parallel.h"
#include "pow2.h"
#include "row_kernels.h"

namespace gvpo {

namespace {

RowKernels pick_kernels() {
  // "avx512bf16" | "avx512" | "avx2" | "sse2": the widest at most this (for tests)
  const char* force = std::getenv("GVPO_SIMD");
  std::string f = force ? force : "";
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  bool has512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#if defined(__x86_64__)
  // The fused head's bfloat16 products (gemm_bf16.cc); the row kernels are avx512's.
  if ((f.empty() || f == "avx512bf16") && has512 && __builtin_cpu_supports("avx512bf16"))
    return {"avx512bf16", avx512::row_logsumexp, avx512::row_target, avx512::row_backward, avx512::exp_probe};
#endif
  if ((f.empty() || f == "avx512bf16" || f == "avx512") && has512)
    return {"avx512", avx512::row_logsumexp, avx512::row_target, avx512::row_backward, avx512::exp_probe};
  if ((f.empty() || f == "avx512bf16" || f == "avx512" || f == "avx2") && has2)
    return {"avx2", avx2::row_logsumexp, avx2::row_target, avx2::row_backward, avx2::exp_probe};
  return {"sse2", generic::row_logsumexp, generic::row_target, generic::row_backward, generic::exp_probe};
#else
  return {"generic", generic::row_logsumexp, generic::row_target, generic::row_backward, generic::exp_probe};
#endif
}

inline bool live(const float* mask, int64_t r) { return !mask || mask[r] != 0.0f; }

}  // namespace

const RowKernels& row_kernels() {
  static const RowKernels k = pick_kernels();
  return k;
}

const char* cpu_simd_level() { return row_kernels().name; }

// Found once per process, at the first call that takes the default: hardware_concurrency() reads
// /sys on every call (glibc's get_nprocs), about 15 us, which a small call paid in each kernel.
int cpu_default_threads() {
  static const int threads = [] {
    if (const char* env = std::getenv("GVPO_NUM_THREADS")) {
      int t = std::atoi(env);
      if (t > 0) return t < 1024 ? t : 1024;  // the threads option's bound
    }
    unsigned hc = std::thread::hardware_concurrency();
    return hc ? (int)hc : 1;
  }();
  return threads;
}

int resolve_threads(int requested) { return requested > 0 ? requested : cpu_default_threads(); }

int64_t token_logprobs_forward_cpu(float* logprobs, float* logZ, float* row_max, float* row_lse, const void* logits,
                                   DType dtype, const int32_t* targets, const float* mask, int64_t rows, int64_t vocab,
                                   float temperature, int threads, double* logprobs64) {
  const RowKernels& k = row_kernels();
  const float inv_tau = 1.0f / temperature;
  const size_t row_bytes = (size_t)vocab * dtype_bytes(dtype);
  std::atomic<int64_t> nonfinite_rows{0};
  parallel_rows(rows, vocab, threads, [&](int64_t begin, int64_t end) {
    int64_t nonfinite = 0;
    for (int64_t r = begin; r < end; r++) {
      float m = 0.0f, lse = 0.0f, lz = 0.0f;
      double l64 = 0.0;  // l before its float32 rounding (what S sums)
      if (live(mask, r)) {
        const void* row = (const char*)logits + (size_t)r * row_bytes;
        const int32_t y = targets[r];
        RowStats s = k.logsumexp(row, dtype, vocab, inv_tau);
        m = s.m;
        lse = (float)s.lse;
        lz = (float)((double)s.m * inv_tau + s.lse);
        if (y < 0 || y >= vocab || !std::isfinite(lz)) {
          l64 = NAN;
          nonfinite++;
        } else if (vocab > 1) {  // one token: l = 0 exactly
          const double x = k.target(row, dtype, y, s.m, inv_tau) - s.lse;
          l64 = x < 0.0 ? x : 0.0;  // <= 0 by construction; the clamp guards the float cast
        }
      }
      logprobs[r] = (float)l64;
      if (logprobs64) logprobs64[r] = l64;
      logZ[r] = lz;
      if (row_max) row_max[r] = m;
      if (row_lse) row_lse[r] = lse;
    }
    nonfinite_rows += nonfinite;
  });
  return nonfinite_rows.load();
}

namespace {

// A row whose coefficient c = g/tau passes float32's range (g near float32's max at tau < 1, or
// gvpoFromLogits' double dL/dS beyond it) runs on c * 2^-e and is scaled back (pow2.h).
template <class G>
void backward_rows(float* grad, const void* logits, DType dtype, const int32_t* targets, const float* mask,
                   const float* row_max, const float* row_lse, const G* weights, int64_t rows, int64_t vocab,
                   float temperature, int threads) {
  const RowKernels& k = row_kernels();
  const float inv_tau = 1.0f / temperature;
  const size_t row_bytes = (size_t)vocab * dtype_bytes(dtype);
  parallel_rows(rows, vocab, threads, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      float* out = grad + (size_t)r * vocab;
      const double g = weights[r];
      const int32_t y = targets[r];
      const float m = row_max ? row_max[r] : 0.0f, lse = row_lse[r];
      if (g == 0.0 || !live(mask, r) || vocab == 1) {  // l is constant: no gradient
        std::memset(out, 0, (size_t)vocab * sizeof(float));
      } else if (y < 0 || y >= vocab || !std::isfinite(m) || !std::isfinite(lse) || !std::isfinite(g)) {
        for (int64_t v = 0; v < vocab; v++) out[v] = NAN;
      } else {
        const void* row = (const char*)logits + (size_t)r * row_bytes;
        const double c = g * inv_tau;  // exact for float g: the float product rounded once
        if (std::fabs(c) <= FLT_MAX) {
          k.backward(out, row, dtype, vocab, inv_tau, m, lse, y, (float)c);
        } else {
          const int e = coef_exponent(g, inv_tau, 64);
          k.backward(out, row, dtype, vocab, inv_tau, m, lse, y, scaled_coef(g, inv_tau, e));
          scale_pow2(out, vocab, e);
        }
      }
    }
  });
}

}  // namespace

void token_logprobs_backward_cpu(float* grad, const void* logits, DType dtype, const int32_t* targets,
                                 const float* mask, const float* row_max, const float* row_lse,
                                 const float* grad_token_logprobs, int64_t rows, int64_t vocab, float temperature,
                                 int threads) {
  backward_rows(grad, logits, dtype, targets, mask, row_max, row_lse, grad_token_logprobs, rows, vocab, temperature,
                threads);
}

void token_logprobs_backward_cpu(float* grad, const void* logits, DType dtype, const int32_t* targets,
                                 const float* mask, const float* row_max, const float* row_lse,
                                 const double* grad_token_logprobs, int64_t rows, int64_t vocab, float temperature,
                                 int threads) {
  backward_rows(grad, logits, dtype, targets, mask, row_max, row_lse, grad_token_logprobs, rows, vocab, temperature,
                threads);
}

}  // namespace gvpo
