// gvpo_from_logits: the fused op on the CPU, composed from the kernels of token_logprobs.cc,
// sequence_logprobs.cc and gvpo_loss.cc (docs/DESIGN.md, "The fused op"):
//
//   phase 1  l, logZ = token log-probs of the logits (read 1)   S = sum_t m l   Sref (given,
//            from reference token log-probs, or S itself)
//   loss     c, dL/dS and the terms per group
//   phase 2  w[r] = m[r] * dL/dS[n(r)];  dL/dz = token_logprobs backward (read 2, write 1)
//
// The fused call keeps each row's (max, lse) between the phases, so the backward's exponent
// (z - max)/tau - lse stays exact however large |z/tau| is; the two phases pass them through the
// addon (rowMax, rowLse) when the TypeScript layer has them, else logZ alone.
// Scratch: 2 floats and 1 double per row; nothing of size N*T*V besides the gradient.
#include <vector>

#include "../kernels.h"

namespace gvpo {

namespace {

// S sums the token log-probs in double, before their rounding to float32.
void forward(GvpoFromLogitsOut& out, float* row_max, float* row_lse, const GvpoLogitsBatch& in, int threads) {
  const int64_t rows = in.sequences * in.tokens;
  std::vector<double> l64((size_t)rows);
  out.nonfinite_rows =
      token_logprobs_forward_cpu(out.token_logprobs, out.logZ, row_max, row_lse, in.logits, in.dtype, in.targets,
                                 in.mask, rows, in.vocab, in.temperature, threads, l64.data());
  gvpo_sequence_sums_cpu(out, in, l64.data());
}

void backward(float* grad, const float* row_max, const float* row_lse, const double* grad_seq,
              const GvpoLogitsBatch& in, int threads) {
  const std::vector<double> w = gvpo_token_weights_f64(in, grad_seq);
  token_logprobs_backward_cpu(grad, in.logits, in.dtype, in.targets, in.mask, row_max, row_lse, w.data(),
                              in.sequences * in.tokens, in.vocab, in.temperature, threads);
}

}  // namespace

LossAndTerms gvpo_from_logits_cpu(GvpoFromLogitsOut& out, const GvpoLogitsBatch& in, int threads) {
  const size_t rows = (size_t)(in.sequences * in.tokens);
  std::vector<float> row_max(rows), row_lse(rows);
  forward(out, row_max.data(), row_lse.data(), in, threads);
  LossAndTerms t = gvpo_loss_cpu(out.grad_seq, out.residuals, out.seq, out.ref_seq, in.rewards, in.offsets, in.groups,
                                 in.beta, in.mean_reduction);
  backward(out.grad, row_max.data(), row_lse.data(), out.grad_seq, in, threads);
  return t;
}

void gvpo_forward_cpu(GvpoFromLogitsOut& out, const GvpoLogitsBatch& in, int threads, float* row_max, float* row_lse) {
  forward(out, row_max, row_lse, in, threads);
}

void gvpo_backward_cpu(float* grad, const float* logZ, const double* grad_seq, const GvpoLogitsBatch& in, int threads,
                       const float* row_max, const float* row_lse) {
  if (row_max)
    backward(grad, row_max, row_lse, grad_seq, in, threads);
  else
    backward(grad, nullptr, logZ, grad_seq, in, threads);
}

}  // namespace gvpo
