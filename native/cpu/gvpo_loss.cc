// gvpo_loss: the GVPO loss over sequence log-probs, group by group (native/group_loss.h holds
// the per-group math, shared with the CUDA kernel). Offsets must be strictly increasing from 0
// to N: the callers check them.
#include "../group_loss.h"
#include "../kernels.h"

namespace gvpo {

LossAndTerms gvpo_loss_cpu(double* grad_seq, double* residuals, const double* seq, const double* ref_seq,
                           const double* rewards, const int32_t* offsets, int64_t groups, double beta,
                           bool mean_reduction) {
  double t[kTerms] = {0, 0, 0, 0, 0};
  const double scale = reduction_scale(offsets, groups, mean_reduction);
  for (int64_t g = 0; g < groups; g++)
    group_loss(grad_seq, residuals, t, seq, ref_seq, rewards, offsets[g], offsets[g + 1], beta, scale);
  return {t[kLoss], t[kAdvantage], t[kTrustRegion], t[kVariance], t[kConstant]};
}

}  // namespace gvpo
