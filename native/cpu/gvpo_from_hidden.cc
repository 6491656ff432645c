// gvpo_from_hidden: the GVPO loss through the fused LM head (docs/DESIGN.md, "The fused LM
// head"). The head is the engine of token_logprobs_from_hidden.cc; this file composes it:
//
//   phase 1  l, logZ = the head's forward (live rows: mask != 0)   S = sum_t m l   Sref
//   loss     c, dL/dS and the terms per group
//   phase 2  gl[r] = m[r] * dL/dS[n(r)];  dL/dhidden, dL/dweight = the head's backward
//
// Also here: the pick of the GEMM's instruction set for the head, and the FMA peak probe.
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "../kernels.h"
#include "gemm.h"
#include "parallel.h"
#include "pow2.h"

namespace gvpo {

const GemmKernels& gemm_kernels(DType d) {
  static const GemmKernels* k = [] {
    const std::string s = cpu_simd_level();
#if defined(__x86_64__) || defined(__i386__)
    if (s == "avx512" || s == "avx512bf16") return &avx512::gemm_kernels;
    if (s == "avx2") return &avx2::gemm_kernels;
#endif
    return &generic::gemm_kernels;
  }();
#if defined(__x86_64__)
  static const GemmKernels* bf16 = std::string(cpu_simd_level()) == "avx512bf16" ? avx512bf16::gemm_kernels() : k;
  if (d == DType::bf16) return *bf16;
#endif
  return *k;
}

double fma_probe_cpu(int64_t iterations, int threads) {
  const GemmKernels& k = gemm_kernels(DType::f32);
  const int t = resolve_threads(threads);
  std::vector<double> flops((size_t)t);
  parallel_each(t, [&](int i) { flops[i] = k.fma_probe(iterations, (float)i + 1.0f); });
  double sum = 0;
  for (double f : flops) sum += f;
  return sum;
}

// One call: logZ goes from the forward to the backward in its two parts (LogZSplit), as precise as
// the logits op's; the two phases hand it over in float32.
LossAndTerms gvpo_from_hidden_cpu(GvpoFromHiddenOut& out, const GvpoHiddenBatch& in, int threads) {
  LogZSplit split;
  gvpo_from_hidden_forward_cpu(out, in, threads, &split);
  LossAndTerms t = gvpo_loss_cpu(out.grad_seq, out.residuals, out.seq, out.ref_seq, in.rewards, in.offsets, in.groups,
                                 in.beta, in.mean_reduction);
  gvpo_from_hidden_backward_cpu(out.grad_hidden, out.grad_weight, out.logZ, out.grad_seq, in, out.accumulate, threads,
                                &split);
  return t;
}

void gvpo_from_hidden_forward_cpu(GvpoOut& out, const GvpoHiddenBatch& in, int threads, LogZSplit* split) {
  std::vector<double> l64((size_t)(in.sequences * in.tokens));  // S sums l before its float32 rounding
  out.nonfinite_rows = token_logprobs_from_hidden_forward_cpu(out.token_logprobs, out.logZ, nullptr, in.head(), threads,
                                                              split, l64.data());
  gvpo_sequence_sums_cpu(out, in, l64.data());
}

void gvpo_from_hidden_backward_cpu(float* grad_hidden, float* grad_weight, const float* logZ, const double* grad_seq,
                                   const GvpoHiddenBatch& in, bool accumulate, int threads, const LogZSplit* split) {
  // A dL/dS beyond float32's range (beta near 1e20) reaches the head as gl * 2^-e, each row at an
  // e of its own: one sequence's huge dL/dS leaves the others' gl as they are.
  const std::vector<double> w = gvpo_token_weights_f64(in, grad_seq);
  std::vector<int> e(w.size());
  std::vector<float> gl(w.size());
  bool scaled = false;
  for (size_t i = 0; i < w.size(); i++) {
    e[i] = range_exponent(&w[i], 1, 1.0, 100);
    gl[i] = (float)std::ldexp(w[i], -e[i]);
    scaled = scaled || e[i] != 0;
  }
  token_logprobs_from_hidden_backward_cpu(grad_hidden, grad_weight, in.head(), logZ, nullptr, gl.data(), nullptr,
                                          accumulate, threads, scaled ? e.data() : nullptr, split);
}

}  // namespace gvpo
