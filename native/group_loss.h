// The GVPO loss of one group, written once for the CPU loop (native/cpu/gvpo_loss.cc) and the
// CUDA kernel (native/cuda/gvpo_loss.cu). docs/DESIGN.md ("The math") derives it:
//
//   a = R - mean_g R,  p = S - mean_g S,  q = Sref - mean_g Sref,  c = beta*(p - q) - a
//   L_g = 1/(2(k-1)) sum c^2
//       = -beta/(k-1) sum a p  -beta^2/(k-1) sum p q  +beta^2/(2(k-1)) sum p^2
//         + 1/(2(k-1)) sum (a + beta q)^2        (advantage, trustRegion, variance, constant)
//   dL/dS = beta c / (k-1)
//
// Groups of size 1 get c = 0, dL/dS = 0 and add nothing. `scale` is 1 for 'sum' and
// 1/#groups with k >= 2 for 'mean'; it multiplies the loss, the terms and dL/dS.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define GVPO_HD __host__ __device__
#else
#define GVPO_HD
#endif

namespace gvpo {

// Terms in a fixed order: loss, advantage, trustRegion, variance, constant.
enum { kLoss = 0, kAdvantage, kTrustRegion, kVariance, kConstant, kTerms };

// The mean of v[b, e) (e > b). Where the plain sum overflows though every value is finite (values
// near 1e308), the sum is taken again scaled by 2^-32, exactly (the mean of finite values is
// finite); a sum made non-finite by an inf or NaN value stays so.
GVPO_HD inline double group_mean(const double* v, int32_t b, int32_t e) {
  double s = 0;
  for (int32_t n = b; n < e; n++) s += v[n];
  const double k = (double)(e - b);
  if (s - s == 0.0) return s / k;  // finite
  double t = 0;
  for (int32_t n = b; n < e; n++) t += v[n] * 0x1p-32;
  return t - t == 0.0 ? t / k * 0x1p32 : s / k;
}

// Sequences [b, e) of one group: writes residuals and grad_seq there, adds the group's terms
// (already scaled) to terms[kTerms].
GVPO_HD inline void group_loss(double* grad_seq, double* residuals, double* terms, const double* seq,
                               const double* ref_seq, const double* rewards, int32_t b, int32_t e, double beta,
                               double scale) {
  const int32_t k = e - b;
  if (k < 2) {
    for (int32_t n = b; n < e; n++) grad_seq[n] = residuals[n] = 0.0;
    return;
  }
  const double mR = group_mean(rewards, b, e), mS = group_mean(seq, b, e), mQ = group_mean(ref_seq, b, e);
  const double inv = 1.0 / (double)(k - 1);
  double sc2 = 0, sap = 0, spq = 0, spp = 0, sc0 = 0;
  for (int32_t n = b; n < e; n++) {
    const double a = rewards[n] - mR, p = seq[n] - mS, q = ref_seq[n] - mQ;
    const double c = beta * (p - q) - a;
    residuals[n] = c;
    grad_seq[n] = beta * c * inv * scale;
    sc2 += c * c;
    sap += a * p;
    spq += p * q;
    spp += p * p;
    sc0 += (a + beta * q) * (a + beta * q);
  }
  terms[kLoss] += 0.5 * inv * sc2 * scale;
  terms[kAdvantage] += -beta * inv * sap * scale;
  terms[kTrustRegion] += -beta * beta * inv * spq * scale;
  terms[kVariance] += 0.5 * beta * beta * inv * spp * scale;
  terms[kConstant] += 0.5 * inv * sc0 * scale;
}

// 1 for 'sum'; for 'mean', 1 over the number of groups with k >= 2 (1 when there are none).
GVPO_HD inline double reduction_scale(const int32_t* offsets, int64_t groups, bool mean_reduction) {
  if (!mean_reduction) return 1.0;
  int64_t live = 0;
  for (int64_t g = 0; g < groups; g++) live += offsets[g + 1] - offsets[g] >= 2;
  return live > 0 ? 1.0 / (double)live : 1.0;
}

}  // namespace gvpo
