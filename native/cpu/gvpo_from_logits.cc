// gvpo_from_logits: the fused op on the CPU, composed from the kernels of token_logprobs.cc,
// sequence_logprobs.cc and gvpo_loss.cc (docs/DESIGN.md, "The fused op"):
//
//   phase 1  l, logZ = token log-probs of the logits (read 1)   S = sum_t m l   Sref (given,
//            from reference token log-probs, or S itself)
//   loss     c, dL/dS and the terms per group
//   phase 2  w[r] = m[r] * dL/dS[n(r)];  dL/dz = token_logprobs backward (read 2, write 1)
//
// The fused call keeps each row's (max, lse) between the phases, so the backward's exponent
// (z - max)/tau - lse stays exact however large |z/tau| is; the two-phase API passes logZ only.
// Scratch: 3 floats per row; nothing of size N*T*V besides the gradient.
#include <cstring>
#include <vector>

#include "../kernels.h"

namespace gvpo {

namespace {

void reference_sequences(double* ref_seq, const double* seq, const GvpoBatch& in) {
  if (in.ref_token_logprobs)
    sequence_logprobs_f64_cpu(ref_seq, in.ref_token_logprobs, in.mask, in.sequences, in.tokens);
  else if (in.ref_seq)
    std::memcpy(ref_seq, in.ref_seq, (size_t)in.sequences * sizeof(double));
  else  // no reference given: pi_theta' is the current policy (on-policy, first epoch)
    std::memcpy(ref_seq, seq, (size_t)in.sequences * sizeof(double));
}

void forward(GvpoFromLogitsOut& out, float* row_max, float* row_lse, const GvpoBatch& in, int threads) {
  const int64_t rows = in.sequences * in.tokens;
  out.nonfinite_rows = token_logprobs_forward_cpu(out.token_logprobs, out.logZ, row_max, row_lse,
                                                  in.logits, in.dtype, in.targets, in.mask, rows,
                                                  in.vocab, in.temperature, threads);
  sequence_logprobs_cpu(out.seq, out.token_logprobs, in.mask, in.sequences, in.tokens);
  reference_sequences(out.ref_seq, out.seq, in);
}

void backward(float* grad, const float* row_max, const float* row_lse, const double* grad_seq,
              const GvpoBatch& in, int threads) {
  const int64_t rows = in.sequences * in.tokens;
  std::vector<float> w((size_t)rows);
  for (int64_t r = 0; r < rows; r++) w[r] = (float)(in.mask[r] * grad_seq[r / in.tokens]);
  token_logprobs_backward_cpu(grad, in.logits, in.dtype, in.targets, in.mask, row_max, row_lse,
                              w.data(), rows, in.vocab, in.temperature, threads);
}

}  // namespace

GvpoTerms gvpo_from_logits_cpu(GvpoFromLogitsOut& out, const GvpoBatch& in, int threads) {
  const size_t rows = (size_t)(in.sequences * in.tokens);
  std::vector<float> row_max(rows), row_lse(rows);
  forward(out, row_max.data(), row_lse.data(), in, threads);
  GvpoTerms t = gvpo_loss_cpu(out.grad_seq, out.residuals, out.seq, out.ref_seq, in.rewards,
                              in.offsets, in.groups, in.beta, in.mean_reduction);
  backward(out.grad, row_max.data(), row_lse.data(), out.grad_seq, in, threads);
  return t;
}

void gvpo_forward_cpu(GvpoFromLogitsOut& out, const GvpoBatch& in, int threads) {
  forward(out, nullptr, nullptr, in, threads);
}

void gvpo_backward_cpu(float* grad, const float* logZ, const double* grad_seq, const GvpoBatch& in,
                       int threads) {
  backward(grad, nullptr, logZ, grad_seq, in, threads);
}

}  // namespace gvpo
