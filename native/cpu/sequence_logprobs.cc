// sequence_logprobs: S[n] = sum_t m[n,t] * l[n,t] over a sequence's T tokens, in double.
// Masked tokens (m == 0) are skipped, so a NaN log-prob at a prompt or padding position never
// reaches S. O(N*T): no threads. Also the per-sequence pieces both fused GVPO ops share: Sref
// and the per-token weights of phase 2.
#include <cstring>

#include "../kernels.h"

namespace gvpo {

template <typename T>
static void sum_rows(double* seq, const T* lp, const float* mask, int64_t N, int64_t T_) {
  for (int64_t n = 0; n < N; n++) {
    double s = 0.0;
    const T* l = lp + n * T_;
    const float* m = mask + n * T_;
    for (int64_t t = 0; t < T_; t++)
      if (m[t] != 0.0f) s += (double)m[t] * (double)l[t];
    seq[n] = s;
  }
}

void sequence_logprobs_cpu(double* seq, const float* token_logprobs, const float* mask, int64_t sequences,
                           int64_t tokens) {
  sum_rows(seq, token_logprobs, mask, sequences, tokens);
}

void sequence_logprobs_f64_cpu(double* seq, const double* token_logprobs, const float* mask, int64_t sequences,
                               int64_t tokens) {
  sum_rows(seq, token_logprobs, mask, sequences, tokens);
}

bool gvpo_reference_cpu(double* ref_seq, const double* seq, const GvpoBatch& in) {
  if (in.ref_token_logprobs)
    sequence_logprobs_f64_cpu(ref_seq, in.ref_token_logprobs, in.mask, in.sequences, in.tokens);
  else if (in.ref_seq)
    std::memcpy(ref_seq, in.ref_seq, (size_t)in.sequences * sizeof(double));
  else if (seq)  // no reference given: pi_theta' is the current policy (on-policy, first epoch)
    std::memcpy(ref_seq, seq, (size_t)in.sequences * sizeof(double));
  else
    return false;
  return true;
}

void gvpo_sequence_sums_cpu(GvpoOut& out, const GvpoBatch& in, const double* logprobs64) {
  if (logprobs64)
    sequence_logprobs_f64_cpu(out.seq, logprobs64, in.mask, in.sequences, in.tokens);
  else
    sequence_logprobs_cpu(out.seq, out.token_logprobs, in.mask, in.sequences, in.tokens);
  gvpo_reference_cpu(out.ref_seq, out.seq, in);
}

std::vector<double> gvpo_token_weights_f64(const GvpoBatch& in, const double* grad_seq) {
  std::vector<double> w((size_t)(in.sequences * in.tokens));
  for (size_t r = 0; r < w.size(); r++) w[r] = in.mask[r] == 0.0f ? 0.0 : in.mask[r] * grad_seq[(int64_t)r / in.tokens];
  return w;
}

std::vector<float> gvpo_token_weights(const GvpoBatch& in, const double* grad_seq) {
  const std::vector<double> w = gvpo_token_weights_f64(in, grad_seq);
  return std::vector<float>(w.begin(), w.end());
}

}  // namespace gvpo
