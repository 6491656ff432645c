// Gradient coefficients beyond float32's range. A backward's coefficient c = g/tau (g a weight
// such as dL/dS) can pass float32's range, or double's, where most of the gradient's elements
// c * (onehot - p) do not; in float32, inf * a p that underflowed to 0 would give NaN. The
// kernels then run on c * 2^-e and the elements are scaled back by 2^e, each rounded once.
#pragma once
#include <cmath>
#include <cstdint>

namespace gvpo {

// The e for which |g / tau| * 2^-e lies in [2^top, 2^(top+2)), taken from the exponents alone
// (no product that could overflow); g and inv_tau finite and nonzero.
inline int coef_exponent(double g, double inv_tau, int top) { return std::ilogb(g) + std::ilogb(inv_tau) - top; }

// g * inv_tau * 2^-e as a float, without an intermediate that could overflow or underflow.
inline float scaled_coef(double g, double inv_tau, int e) {
  const int eb = std::ilogb(inv_tau);
  return (float)(std::ldexp(g, eb - e) * std::ldexp(inv_tau, -eb));
}

// The e >= 0 that brings every finite |x[i]| * inv_tau to at most 2^(top+2): 0 where they are
// already below 2^top (the common case, computed as before).
template <class T>
int range_exponent(const T* x, int64_t n, double inv_tau, int top) {
  double m = 0;
  for (int64_t i = 0; i < n; i++)
    if (std::isfinite((double)x[i])) m = std::fmax(m, std::fabs((double)x[i]));
  return m > 0 && coef_exponent(m, inv_tau, top) > 0 ? coef_exponent(m, inv_tau, top) : 0;
}

// x[i] * 2^e, each rounded once to float32: +-inf past its range, 0 and NaN kept.
inline void scale_pow2(float* x, int64_t n, int e) {
  for (int64_t i = 0; i < n; i++) x[i] = (float)std::ldexp((double)x[i], e);
}

}  // namespace gvpo
