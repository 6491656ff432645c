// group_center: centered[n] = values[n] - mean_g(values), means[g], for equal or ragged groups
// given as offsets[G+1]. Two-pass in double (the mean as the loss takes it, group_loss.h).
#include "../group_loss.h"
#include "../kernels.h"

namespace gvpo {

void group_center_cpu(double* centered, double* means, const double* values, const int32_t* offsets, int64_t groups) {
  for (int64_t g = 0; g < groups; g++) {
    int32_t b = offsets[g], e = offsets[g + 1];
    const double mean = group_mean(values, b, e);
    means[g] = mean;
    for (int32_t n = b; n < e; n++) centered[n] = values[n] - mean;
  }
}

}  // namespace gvpo
