// Float64 references for the C++ harnesses (independent of the kernels: plain loops, std::exp).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "../kernels.h"

namespace gvpo {

// Random logits stored in dtype d, with the exact float64 value of every stored element.
struct Logits {
  DType dtype;
  std::vector<float> f32;
  std::vector<uint16_t> h16;
  std::vector<double> f64;
  const void* data() const { return dtype == DType::f32 ? (const void*)f32.data() : h16.data(); }
};

inline uint16_t f32_to_bf16(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  b += 0x7fff + ((b >> 16) & 1);  // round to nearest even
  return (uint16_t)(b >> 16);
}
inline float bf16_to_f32(uint16_t h) {
  uint32_t b = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
// float16 for |f| in the normal range (the harness draws values in [-8, 8]).
inline uint16_t f32_to_f16(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  uint32_t sign = (b >> 16) & 0x8000;
  int32_t e = (int32_t)((b >> 23) & 0xff) - 127 + 15;
  uint32_t m = b & 0x7fffff;
  if (e <= 0) return (uint16_t)sign;  // flush tiny values (not drawn)
  uint32_t h = ((uint32_t)e << 10) | (m >> 13);
  uint32_t rest = m & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
  return (uint16_t)(sign | h);
}
inline double f16_to_f64(uint16_t h) {
  int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  double v = e == 0    ? std::ldexp((double)m, -24)
             : e == 31 ? (m ? NAN : INFINITY)
                       : std::ldexp(1.0 + m / 1024.0, e - 15);
  return (h & 0x8000) ? -v : v;
}

inline Logits random_logits(std::mt19937& rng, int64_t R, int64_t V, DType d, float scale) {
  std::normal_distribution<float> nd(0.f, scale);
  Logits L{d, {}, {}, {}};
  size_t n = (size_t)(R * V);
  L.f64.resize(n);
  if (d == DType::f32)
    L.f32.resize(n);
  else
    L.h16.resize(n);
  for (size_t i = 0; i < n; i++) {
    float x = nd(rng);
    if (d == DType::f32) {
      L.f32[i] = x;
      L.f64[i] = x;
    } else if (d == DType::bf16) {
      L.h16[i] = f32_to_bf16(x);
      L.f64[i] = bf16_to_f32(L.h16[i]);
    } else {
      L.h16[i] = f32_to_f16(x);
      L.f64[i] = f16_to_f64(L.h16[i]);
    }
  }
  return L;
}

inline void ref_token_logprobs(double* lp, double* lz, const double* z, const int32_t* y, const float* mask, int64_t R,
                               int64_t V, double tau) {
  for (int64_t r = 0; r < R; r++) {
    if (mask && mask[r] == 0.0f) {
      lp[r] = lz[r] = 0;
      continue;
    }
    const double* row = z + r * V;
    double m = -INFINITY;
    for (int64_t v = 0; v < V; v++) m = std::fmax(m, row[v] / tau);
    double s = 0;
    for (int64_t v = 0; v < V; v++) s += std::exp(row[v] / tau - m);
    lz[r] = m + std::log(s);
    lp[r] = row[y[r]] / tau - lz[r];
  }
}

inline void ref_token_logprobs_backward(double* grad, const double* z, const int32_t* y, const float* g, int64_t R,
                                        int64_t V, double tau) {
  std::vector<double> lp(R), lz(R);
  ref_token_logprobs(lp.data(), lz.data(), z, y, nullptr, R, V, tau);
  for (int64_t r = 0; r < R; r++)
    for (int64_t v = 0; v < V; v++)
      grad[r * V + v] = g[r] / tau * ((v == y[r] ? 1.0 : 0.0) - std::exp(z[r * V + v] / tau - lz[r]));
}

// The fused LM head from its definition, in float64: z = hidden W^T, x = z / tau, p = softmax(x),
// per live row (mask null or non-zero) l = x_y - logZ and H = -sum p log p; with upstream gl, gH
// (either may be null), dz = (gl ([v == y] - p) - gH p (log p + H)) / tau, dH = dz W, dW = dz^T
// hidden. Masked rows: l = logZ = H = 0 and no gradient. loss = sum over live rows of gl l + gH H
// (what the gradients differentiate, for finite differences).
struct RefHead {
  std::vector<double> lp, lz, ent, dH, dW;
  std::vector<double> aH, aW;  // the sums of |products| behind each gradient element
  double loss = 0;
};
inline RefHead ref_head(const double* hid, const double* W, const int32_t* y, const float* mask, const float* gl,
                        const float* gh, int64_t R, int64_t H, int64_t V, double tau, bool grads = true) {
  RefHead o;
  o.lp.assign(R, 0.0), o.lz.assign(R, 0.0), o.ent.assign(R, 0.0);
  if (grads) o.dH.assign(R * H, 0.0), o.dW.assign(V * H, 0.0), o.aH.assign(R * H, 0.0), o.aW.assign(V * H, 0.0);
  std::vector<double> x(V), dz(V);
  for (int64_t r = 0; r < R; r++) {
    if (mask && mask[r] == 0.0f) continue;
    double m = -INFINITY;
    for (int64_t v = 0; v < V; v++) {
      double s = 0;
      for (int64_t h = 0; h < H; h++) s += hid[r * H + h] * W[v * H + h];
      x[v] = s / tau;
      m = std::fmax(m, x[v]);
    }
    double s = 0;
    for (int64_t v = 0; v < V; v++) s += std::exp(x[v] - m);
    const double lz = m + std::log(s);
    double ent = 0;
    for (int64_t v = 0; v < V; v++) ent -= std::exp(x[v] - lz) * (x[v] - lz);
    o.lz[r] = lz, o.ent[r] = ent, o.lp[r] = x[y[r]] - lz;
    const double a = gl ? gl[r] : 0.0, b = gh ? gh[r] : 0.0;
    o.loss += a * o.lp[r] + b * ent;
    if (!grads || (a == 0 && b == 0)) continue;
    for (int64_t v = 0; v < V; v++) {
      const double lp = x[v] - lz, p = std::exp(lp);
      dz[v] = (a * ((v == y[r] ? 1.0 : 0.0) - p) - b * p * (lp + ent)) / tau;
    }
    for (int64_t v = 0; v < V; v++)
      for (int64_t h = 0; h < H; h++) {
        o.dH[r * H + h] += dz[v] * W[v * H + h];
        o.dW[v * H + h] += dz[v] * hid[r * H + h];
        o.aH[r * H + h] += std::fabs(dz[v] * W[v * H + h]);
        o.aW[v * H + h] += std::fabs(dz[v] * hid[r * H + h]);
      }
  }
  return o;
}

// Straight from the definition: L = sum_g 1/(k-1) sum c^2 / 2.
inline double ref_gvpo_loss(double* grad_seq, double* c, const double* S, const double* Q, const double* R,
                            const int32_t* off, int64_t G, double beta, bool mean) {
  double L = 0;
  int live = 0;
  int64_t N = off[G];
  std::vector<double> r(N);
  for (int64_t n = 0; n < N; n++) r[n] = beta * (S[n] - Q[n]);
  for (int64_t g = 0; g < G; g++) {
    int k = off[g + 1] - off[g];
    double mr = 0, mR = 0;
    for (int n = off[g]; n < off[g + 1]; n++) mr += r[n] / k, mR += R[n] / k;
    for (int n = off[g]; n < off[g + 1]; n++) {
      c[n] = k < 2 ? 0 : (r[n] - mr) - (R[n] - mR);
      grad_seq[n] = k < 2 ? 0 : beta * c[n] / (k - 1);
      if (k >= 2) L += c[n] * c[n] / 2 / (k - 1);
    }
    live += k >= 2;
  }
  if (mean && live) {
    L /= live;
    for (int64_t n = 0; n < N; n++) grad_seq[n] /= live;
  }
  return L;
}

}  // namespace gvpo
