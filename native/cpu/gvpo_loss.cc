// gvpo_loss: the GVPO loss over sequence log-probs (SPEC section 1).
//
//   a = R - mean_g R,  p = S - mean_g S,  q = Sref - mean_g Sref
//   c = beta*(p - q) - a                         (the residual; the paper's weight is -c)
//   L_g = 1/(2(k-1)) sum c^2
//       = -beta/(k-1) sum a p  -beta^2/(k-1) sum p q  +beta^2/(2(k-1)) sum p^2
//         + 1/(2(k-1)) sum (a + beta q)^2        (advantage, trustRegion, variance, constant)
//   dL/dS = beta c / (k-1)
// Groups of size 1: c = 0 and every term 0. 'mean' divides by the number of groups with k >= 2.
#include "../kernels.h"

namespace gvpo {

GvpoTerms gvpo_loss_cpu(double* grad_seq, double* residuals, const double* seq,
                        const double* ref_seq, const double* rewards, const int32_t* offsets,
                        int64_t groups, double beta, bool mean_reduction) {
  GvpoTerms t{0, 0, 0, 0, 0};
  int64_t live = 0;
  for (int64_t g = 0; g < groups; g++) {
    const int32_t b = offsets[g], e = offsets[g + 1], k = e - b;
    if (k < 2) {
      for (int32_t n = b; n < e; n++) grad_seq[n] = residuals[n] = 0.0;
      continue;
    }
    live++;
    double mR = 0, mS = 0, mQ = 0;
    for (int32_t n = b; n < e; n++) {
      mR += rewards[n];
      mS += seq[n];
      mQ += ref_seq[n];
    }
    mR /= k;
    mS /= k;
    mQ /= k;
    const double inv = 1.0 / (double)(k - 1);
    double sc2 = 0, sap = 0, spq = 0, spp = 0, sc0 = 0;
    for (int32_t n = b; n < e; n++) {
      double a = rewards[n] - mR, p = seq[n] - mS, q = ref_seq[n] - mQ;
      double c = beta * (p - q) - a;
      residuals[n] = c;
      grad_seq[n] = beta * c * inv;
      sc2 += c * c;
      sap += a * p;
      spq += p * q;
      spp += p * p;
      sc0 += (a + beta * q) * (a + beta * q);
    }
    t.loss += 0.5 * inv * sc2;
    t.advantage += -beta * inv * sap;
    t.trust_region += -beta * beta * inv * spq;
    t.variance += 0.5 * beta * beta * inv * spp;
    t.constant += 0.5 * inv * sc0;
  }
  if (mean_reduction && live > 0) {
    const double s = 1.0 / (double)live;
    t.loss *= s;
    t.advantage *= s;
    t.trust_region *= s;
    t.variance *= s;
    t.constant *= s;
    for (int64_t n = 0; n < offsets[groups]; n++) grad_seq[n] *= s;
  }
  return t;
}

}  // namespace gvpo
