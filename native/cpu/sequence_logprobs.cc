// sequence_logprobs: S[n] = sum_t m[n,t] * l[n,t] over a sequence's T tokens, in double.
// Masked tokens (m == 0) are skipped, so a NaN log-prob at a prompt or padding position never
// reaches S. O(N*T): no threads.
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

void sequence_logprobs_cpu(double* seq, const float* token_logprobs, const float* mask,
                           int64_t sequences, int64_t tokens) {
  sum_rows(seq, token_logprobs, mask, sequences, tokens);
}

void sequence_logprobs_f64_cpu(double* seq, const double* token_logprobs, const float* mask,
                               int64_t sequences, int64_t tokens) {
  sum_rows(seq, token_logprobs, mask, sequences, tokens);
}

}  // namespace gvpo
