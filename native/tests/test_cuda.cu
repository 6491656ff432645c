// CUDA harness (no Node): every CUDA kernel against the CPU kernels (themselves checked against
// float64 in test_cpu.cc) on a grid of shapes with awkward sizes, all dtypes, masks, -inf/NaN
// rows and ragged groups; the host-array entry points too, in place included. Poisons outputs
// first so an unwritten element fails. Prints "N passed, M failed"; exit 0 when all passed.
// Without a CUDA device it says so and exits 0 (nothing to check).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "../kernels.h"
#include "check.h"
#include "twins.h"
#include "reference.h"

using namespace gvpo;

#define CUDA_OK(call)                                                                                 \
  do {                                                                                                \
    cudaError_t e_ = (cudaError_t)(call);                                                             \
    if (e_ != cudaSuccess) {                                                                          \
      std::printf("CUDA error %s at %s:%d: %s\n", #call, __FILE__, __LINE__, cudaGetErrorString(e_)); \
      std::exit(1);                                                                                   \
    }                                                                                                 \
  } while (0)

template <typename T>
static T* to_device(const T* h, size_t n) {
  T* d = nullptr;
  CUDA_OK(cudaMalloc(&d, n * sizeof(T) + 16));
  CUDA_OK(cudaMemcpy(d, h, n * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}
template <typename T>
static std::vector<T> to_host(const T* d, size_t n) {
  std::vector<T> h(n);
  CUDA_OK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}

static void check_token_logprobs(std::mt19937& rng, int64_t R, int64_t V, DType d, float tau) {
  Logits L = random_logits(rng, R, V, d, 3.0f);
  std::vector<int32_t> y(R);
  std::vector<float> mask(R);
  std::vector<double> g(R);
  for (int64_t r = 0; r < R; r++) {
    y[r] = (int32_t)(rng() % V);
    mask[r] = (rng() % 4) ? 1.0f : 0.0f;
    g[r] = mask[r] * ((double)(rng() % 1000) / 500.0 - 1.0);
  }
  const size_t n = (size_t)(R * V);
  std::vector<float> lp(R), lz(R), rm(R), rl(R), grad(n), grad_split(n);
  std::vector<double> lp64(R);
  token_logprobs_forward_cpu(lp.data(), lz.data(), rm.data(), rl.data(), L.data(), d, y.data(), mask.data(), R, V, tau,
                             0, lp64.data());
  token_logprobs_backward_cpu(grad.data(), L.data(), d, y.data(), mask.data(), nullptr, lz.data(), g.data(), R, V, tau,
                              0);
  token_logprobs_backward_cpu(grad_split.data(), L.data(), d, y.data(), mask.data(), rm.data(), rl.data(), g.data(), R,
                              V, tau, 0);

  void* dz = d == DType::f32 ? (void*)to_device(L.f32.data(), n) : (void*)to_device(L.h16.data(), n);
  int32_t* dy = to_device(y.data(), R);
  float* dm = to_device(mask.data(), R);
  double* dg = to_device(g.data(), R);
  float *dlp, *dlz, *drm, *drl, *dgrad;
  double* dlp64;
  CUDA_OK(cudaMalloc(&dlp, R * 4));
  CUDA_OK(cudaMalloc(&dlz, R * 4));
  CUDA_OK(cudaMalloc(&drm, R * 4));
  CUDA_OK(cudaMalloc(&drl, R * 4));
  CUDA_OK(cudaMalloc(&dlp64, R * 8));
  CUDA_OK(cudaMalloc(&dgrad, n * 4));
  CUDA_OK(cudaMemset(dlp, 0xff, R * 4));  // NaN poison
  CUDA_OK(cudaMemset(dlp64, 0xff, R * 8));
  CUDA_OK(cudaMemset(dgrad, 0xff, n * 4));
  CUDA_OK(token_logprobs_forward_cuda(dlp, dlz, dlp64, drm, drl, dz, d, dy, dm, R, V, tau, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  std::vector<float> clp = to_host(dlp, R), clz = to_host(dlz, R);
  std::vector<double> clp64 = to_host(dlp64, R);
  for (int64_t r = 0; r < R; r++) {
    CHECK(near(clz[r], lz[r], 2e-5, 2e-5), "logZ R=%lld V=%lld d=%d r=%lld cuda %.8g cpu %.8g", (long long)R,
          (long long)V, (int)d, (long long)r, clz[r], lz[r]);
    CHECK(near(clp[r], lp[r], 2e-6 * (1 + std::fabs(lz[r])), 2e-6) && !(clp[r] > 0.0f),
          "logprob r=%lld cuda %.8g cpu %.8g", (long long)r, clp[r], lp[r]);
    CHECK(near(clp64[r], lp64[r], 2e-6 * (1 + std::fabs(lz[r])), 2e-6) && (float)clp64[r] == clp[r],
          "logprob64 r=%lld cuda %.10g cpu %.10g", (long long)r, clp64[r], lp64[r]);
  }
  // backward from the CPU's logZ (so only the gradient pass is compared), then each side's split
  float* dlz_cpu = to_device(lz.data(), R);
  auto grad_close = [&](const std::vector<float>& want, const char* what) {
    std::vector<float> cg = to_host(dgrad, n);
    double err = 0, norm = 0;
    bool written = true;
    for (size_t i = 0; i < n; i++) {
      written &= !std::isnan(cg[i]);
      err += (cg[i] - want[i]) * (cg[i] - want[i]);
      norm += (double)want[i] * want[i];
    }
    CHECK(written, "gradient (%s) not fully written R=%lld V=%lld", what, (long long)R, (long long)V);
    CHECK(std::sqrt(err) <= 1e-5 * std::sqrt(norm) + 1e-6, "grad (%s) R=%lld V=%lld d=%d rel err %.3g", what,
          (long long)R, (long long)V, (int)d, std::sqrt(err / (norm + 1e-300)));
    return cg;
  };
  CUDA_OK(token_logprobs_backward_cuda(dgrad, dz, d, dy, dm, nullptr, dlz_cpu, dg, R, V, tau, nullptr));
  const std::vector<float> cg = grad_close(grad, "logZ");
  CUDA_OK(cudaMemset(dgrad, 0xff, n * 4));
  CUDA_OK(token_logprobs_backward_cuda(dgrad, dz, d, dy, dm, drm, drl, dg, R, V, tau, nullptr));
  grad_close(grad_split, "split");
  if (d == DType::f32) {  // in place over the device logits
    CUDA_OK(token_logprobs_backward_cuda((float*)dz, dz, d, dy, dm, nullptr, dlz_cpu, dg, R, V, tau, nullptr));
    std::vector<float> ip = to_host((float*)dz, n);
    CHECK(std::memcmp(ip.data(), cg.data(), n * 4) == 0, "in place differs R=%lld V=%lld", (long long)R, (long long)V);
  }
  for (void* p : {dz, (void*)dy, (void*)dm, (void*)dg, (void*)dlp, (void*)dlz, (void*)drm, (void*)drl, (void*)dlp64,
                  (void*)dgrad, (void*)dlz_cpu})
    cudaFree(p);
}

// The rows where float32 arithmetic on z/tau would fail, against the CPU (float64-checked in
// test_cpu.cc): |z| near 1e4 at tau 1e-6 (z/tau near 1e10: l keeps its precision only through the
// row's max), logits near -3e38 and +3e38 at tau 7 and 1e37, tau 1e-38 (l past float32's range:
// -inf as a float, finite in double), and weights g whose g/tau passes float32's range (1e30 at
// tau 1e-9, 1e300 from a double dL/dS): the gradient is the CPU's, inf only where an element
// itself passes the range, never NaN.
static void check_extremes(std::mt19937& rng) {
  struct Case {
    const char* name;
    float scale, offset, tau;
    double g;
  };
  const Case cases[] = {{"|z| 1e4, tau 1e-6", 1.0f, 1e4f, 1e-6f, 0.5},      {"+-3e38, tau 7", 3e38f, 0.0f, 7.0f, 0.5},
                        {"+-3e38, tau 1e37", 3e38f, 0.0f, 1e37f, 0.5},      {"tau 1e-38", 5.0f, 0.0f, 1e-38f, 1e-30},
                        {"g 1e30, tau 1e-9", 3.0f, 0.0f, 1e-9f, 1e30},      {"g 1e300", 3.0f, 0.0f, 0.7f, 1e300},
                        {"g -1e300, tau 1e-30", 3.0f, 0.0f, 1e-30f, -1e300}};
  const int64_t R = 5, V = 1031;
  for (const Case& c : cases) {
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> z((size_t)(R * V));
    for (auto& x : z) x = c.offset + c.scale * u(rng);
    std::vector<int32_t> y(R);
    std::vector<float> mask(R, 1.0f);
    std::vector<double> g(R);
    for (int64_t r = 0; r < R; r++) y[r] = (int32_t)(rng() % V), g[r] = c.g * (r % 2 ? 1.0 : -0.75);
    mask[3] = 0.0f;
    std::vector<float> lp(R), lz(R), rm(R), rl(R), grad(z.size());
    std::vector<double> lp64(R);
    token_logprobs_forward_cpu(lp.data(), lz.data(), rm.data(), rl.data(), z.data(), DType::f32, y.data(), mask.data(),
                               R, V, c.tau, 0, lp64.data());
    token_logprobs_backward_cpu(grad.data(), z.data(), DType::f32, y.data(), mask.data(), rm.data(), rl.data(),
                                g.data(), R, V, c.tau, 0);
    float* dz = to_device(z.data(), z.size());
    int32_t* dy = to_device(y.data(), R);
    float* dm = to_device(mask.data(), R);
    double* dg = to_device(g.data(), R);
    float *dlp, *dlz, *drm, *drl, *dgrad;
    double* dlp64;
    for (float** p : {&dlp, &dlz, &drm, &drl}) CUDA_OK(cudaMalloc(p, R * 4));
    CUDA_OK(cudaMalloc(&dlp64, R * 8));
    CUDA_OK(cudaMalloc(&dgrad, z.size() * 4));
    CUDA_OK(token_logprobs_forward_cuda(dlp, dlz, dlp64, drm, drl, dz, DType::f32, dy, dm, R, V, c.tau, nullptr));
    CUDA_OK(token_logprobs_backward_cuda(dgrad, dz, DType::f32, dy, dm, drm, drl, dg, R, V, c.tau, nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<double> clp64 = to_host(dlp64, R);
    std::vector<float> clz = to_host(dlz, R), cg = to_host(dgrad, z.size());
    for (int64_t r = 0; r < R; r++) {
      const double scale = 1.0 + std::fabs((double)lz[r]);
      CHECK(std::isnan(lp64[r]) == std::isnan(clp64[r]) &&
                (std::isnan(lp64[r]) || std::fabs(clp64[r] - lp64[r]) <= 2e-6 * scale),
            "%s: l row %lld cuda %.10g cpu %.10g", c.name, (long long)r, clp64[r], lp64[r]);
      CHECK(near(clz[r], lz[r], 2e-6, 1e-6) || clz[r] == lz[r], "%s: logZ row %lld cuda %.8g cpu %.8g", c.name,
            (long long)r, clz[r], lz[r]);
      double err = 0, norm = 0;
      bool pattern = true;  // NaN and inf where the CPU has them, and only there
      for (int64_t v = 0; v < V; v++) {
        const float a = cg[r * V + v], b = grad[r * V + v];
        pattern &= std::isnan(a) == std::isnan(b) && std::isinf(a) == std::isinf(b) && (!std::isinf(a) || a == b);
        if (std::isfinite(a) && std::isfinite(b)) err += ((double)a - b) * ((double)a - b), norm += (double)b * b;
      }
      CHECK(pattern, "%s: gradient row %lld has NaN or inf where the CPU's has not (or the reverse)", c.name,
            (long long)r);
      CHECK(std::sqrt(err) <= 1e-5 * std::sqrt(norm) + 1e-30, "%s: gradient row %lld rel err %.3g", c.name,
            (long long)r, std::sqrt(err / (norm + 1e-300)));
    }
    for (void* p : {(void*)dz, (void*)dy, (void*)dm, (void*)dg, (void*)dlp, (void*)dlz, (void*)drm, (void*)drl,
                    (void*)dlp64, (void*)dgrad})
      cudaFree(p);
  }
}

static void check_nonfinite() {
  const int64_t V = 37;
  std::vector<float> z(3 * V);
  for (int64_t i = 0; i < 3 * V; i++) z[i] = 0.01f * (float)(i % 13);
  z[5] = -INFINITY;
  for (int64_t v = 0; v < V; v++) z[V + v] = -INFINITY;
  z[2 * V + 3] = NAN;
  int32_t y[3] = {1, 0, 2};
  float* dz = to_device(z.data(), z.size());
  int32_t* dy = to_device(y, 3);
  float *dlp, *dlz;
  CUDA_OK(cudaMalloc(&dlp, 12));
  CUDA_OK(cudaMalloc(&dlz, 12));
  CUDA_OK(token_logprobs_forward_cuda(dlp, dlz, nullptr, nullptr, nullptr, dz, DType::f32, dy, nullptr, 3, V, 1.0f,
                                      nullptr));
  std::vector<float> lp = to_host(dlp, 3);
  CHECK(std::isfinite(lp[0]) && std::isnan(lp[1]) && std::isnan(lp[2]), "non-finite rows: %g %g %g", lp[0], lp[1],
        lp[2]);
  // row 2's one NaN (v = 3) is the only element its thread sees: it must still poison logZ
  std::vector<float> lz = to_host(dlz, 3);
  CHECK(std::isnan(lz[2]) && lz[1] == -INFINITY, "non-finite logZ: %g %g", lz[1], lz[2]);
  cudaFree(dz), cudaFree(dy), cudaFree(dlp), cudaFree(dlz);
}

static void check_loss(std::mt19937& rng) {
  std::vector<int32_t> off = {0, 3, 4, 9, 11};
  const int64_t G = 4, N = 11, T = 5;
  std::normal_distribution<float> nd;
  std::vector<double> lp(N * T), Q(N), R(N);
  std::vector<float> mask(N * T);
  for (int64_t i = 0; i < N * T; i++) lp[i] = -std::fabs(nd(rng)) * 3, mask[i] = (i % T) ? 1.0f : 0.0f;
  lp[0] = NAN;  // a masked token's NaN never reaches S
  for (int64_t n = 0; n < N; n++) Q[n] = -10 + nd(rng), R[n] = (double)(rng() % 3);
  for (int mean = 0; mean < 2; mean++) {
    std::vector<double> S(N), gs(N), c(N);
    sequence_logprobs_f64_cpu(S.data(), lp.data(), mask.data(), N, T);
    LossAndTerms t = gvpo_loss_cpu(gs.data(), c.data(), S.data(), Q.data(), R.data(), off.data(), G, 0.1, mean);
    double* dlp = to_device(lp.data(), N * T);
    float* dm = to_device(mask.data(), N * T);
    double* dQ = to_device(Q.data(), N);
    double* dR = to_device(R.data(), N);
    int32_t* doff = to_device(off.data(), G + 1);
    double *dS, *dgs, *dc, *dterms, *dg;
    CUDA_OK(cudaMalloc(&dS, N * 8));
    CUDA_OK(cudaMalloc(&dgs, N * 8));
    CUDA_OK(cudaMalloc(&dc, N * 8));
    CUDA_OK(cudaMalloc(&dterms, 40));
    CUDA_OK(cudaMalloc(&dg, N * T * 8));
    CUDA_OK(gvpo_loss_cuda(dS, dgs, dc, dg, dterms, dlp, dm, dQ, dR, doff, G, N, T, 0.1, mean, nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<double> cS = to_host(dS, N), cgs = to_host(dgs, N), terms = to_host(dterms, 5);
    std::vector<double> cg = to_host(dg, N * T);
    CHECK(near(terms[0], t.loss, 1e-12, 1e-9), "loss cuda %.12g cpu %.12g", terms[0], t.loss);
    CHECK(near(terms[1] + terms[2] + terms[3] + terms[4], terms[0], 1e-12, 1e-9), "terms do not sum to the loss");
    for (int64_t n = 0; n < N; n++) {
      CHECK(cS[n] == S[n], "S n=%lld: cuda %.17g cpu %.17g (the same sum in the same order)", (long long)n, cS[n],
            S[n]);
      CHECK(near(cgs[n], gs[n], 1e-12, 1e-9), "dL/dS n=%lld", (long long)n);
      for (int64_t t2 = 0; t2 < T; t2++)
        CHECK(cg[n * T + t2] == (mask[n * T + t2] == 0.0f ? 0.0 : mask[n * T + t2] * cgs[n]), "g n=%lld", (long long)n);
    }
    for (void* p : {(void*)dlp, (void*)dm, (void*)dQ, (void*)dR, (void*)doff, (void*)dS, (void*)dgs, (void*)dc,
                    (void*)dterms, (void*)dg})
      cudaFree(p);
  }
}

// gemm_cuda against a float64 product, for the head's three layouts and 16-bit B.
static void check_gemm(std::mt19937& rng, int64_t M, int64_t N, int64_t K, bool a_kmajor, bool b_nmajor, DType tb,
                       bool accumulate) {
  Logits A = random_logits(rng, M, K, DType::f32, 1.0f), B = random_logits(rng, K, N, tb, 1.0f);
  const int64_t a_m = a_kmajor ? K : 1, a_k = a_kmajor ? 1 : M, b_k = b_nmajor ? N : 1, b_n = b_nmajor ? 1 : K;
  const int64_t ldc = N + 1;
  std::vector<float> c0((size_t)(M * ldc));
  for (auto& x : c0) x = (float)(rng() % 7);
  float* da = to_device(A.f32.data(), A.f32.size());
  void* db =
      tb == DType::f32 ? (void*)to_device(B.f32.data(), B.f32.size()) : (void*)to_device(B.h16.data(), B.h16.size());
  float* dc = to_device(c0.data(), c0.size());
  CUDA_OK(gemm_cuda(dc, ldc, da, DType::f32, a_m, a_k, db, tb, b_k, b_n, M, N, K, accumulate, nullptr));
  std::vector<float> c = to_host(dc, c0.size());
  double worst = 0;
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < ldc; n++) {
      if (n == N) {  // the padding column: untouched
        CHECK(c[m * ldc + n] == c0[m * ldc + n], "gemm wrote outside C at (%lld, %lld)", (long long)m, (long long)n);
        continue;
      }
      double want = accumulate ? c0[m * ldc + n] : 0.0, scale = 1.0;
      for (int64_t k = 0; k < K; k++) {
        const double p = A.f64[m * a_m + k * a_k] * B.f64[k * b_k + n * b_n];
        want += p, scale += std::fabs(p);
      }
      const double e = std::fabs(c[m * ldc + n] - want) / scale;
      worst = std::isnan(e) ? INFINITY : std::max(worst, e);
    }
  CHECK(worst <= 4e-7 * std::sqrt((double)K + 1), "gemm M=%lld N=%lld K=%lld layout %d%d dtype %d acc %d: error %.3g",
        (long long)M, (long long)N, (long long)K, a_kmajor, b_nmajor, (int)tb, accumulate, worst);
  cudaFree(da), cudaFree(db), cudaFree(dc);
}

// The head's row kernels (head_rows.cu) against float64 from the same float32 logits, logZ and H:
// entropy, and the gradient for upstream gl, gH (gH null too), from logZ alone and from its split
// (the row's max logit and the rest); a target out of range and a non-finite logZ give NaN rows, a
// NaN logit a NaN entropy. V = 1 has no gradient to compare: the head's backward never runs on it
// (l is constant), and p = 1 there only up to the rounding of logZ, amplified by 1/tau.
static void check_head_rows(std::mt19937& rng, int64_t R, int64_t V, float tau) {
  Logits L = random_logits(rng, R, V, DType::f32, 10.0f * tau);
  std::vector<int32_t> y(R);
  std::vector<float> lz(R), sh(R), rel(R), ent(R), gl(R), gh(R);
  std::vector<double> want_h(R);
  for (int64_t r = 0; r < R; r++) {
    double m = -INFINITY, s = 0, h = 0;
    for (int64_t v = 0; v < V; v++) m = std::fmax(m, L.f64[r * V + v] / tau);
    for (int64_t v = 0; v < V; v++) s += std::exp(L.f64[r * V + v] / tau - m);
    for (int64_t v = 0; v < V; v++) {
      const double u = L.f64[r * V + v] / tau - m - std::log(s);
      h -= std::exp(u) * u;
    }
    lz[r] = (float)(m + std::log(s)), want_h[r] = h, ent[r] = (float)h;
    sh[r] = (float)(m * tau), rel[r] = (float)(m + std::log(s) - (double)sh[r] / tau);
    y[r] = (int32_t)(rng() % V), gl[r] = (float)(rng() % 200) / 100.0f - 1.0f,
    gh[r] = (float)(rng() % 200) / 100.0f - 1.0f;
  }
  if (R > 2) y[1] = (int32_t)V, lz[2] = rel[2] = INFINITY, L.f32[0] = NAN;  // row 0's H NaN; rows 1, 2 NaN
  float* dz = to_device(L.f32.data(), L.f32.size());
  float *dent, *dlz = to_device(lz.data(), R), *dh = to_device(ent.data(), R), *dgl = to_device(gl.data(), R),
               *dgh = to_device(gh.data(), R), *dsh = to_device(sh.data(), R), *drel = to_device(rel.data(), R);
  int32_t* dy = to_device(y.data(), R);
  CUDA_OK(cudaMalloc(&dent, R * 4));
  CUDA_OK(head_entropy_cuda(dent, dz, R, V, tau, nullptr));
  std::vector<float> h = to_host(dent, R);
  for (int64_t r = 0; r < R; r++)
    CHECK(r == 0 && R > 2 ? std::isnan(h[r]) : near(h[r], want_h[r], 2e-5, 2e-5) && h[r] >= 0.0f,
          "head entropy R=%lld V=%lld tau=%g r=%lld: cuda %.8g want %.8g", (long long)R, (long long)V, tau,
          (long long)r, h[r], want_h[r]);
  for (int with_h = 0; with_h < 4 && V > 1; with_h++) {
    const bool split = with_h >= 2;
    CUDA_OK(cudaMemcpy(dz, L.f32.data(), L.f32.size() * 4, cudaMemcpyHostToDevice));
    CUDA_OK(head_softmax_grad_cuda(dz, dy, split ? dsh : nullptr, split ? drel : dlz, dh, dgl,
                                   with_h % 2 ? dgh : nullptr, R, V, tau, nullptr));
    std::vector<float> g = to_host(dz, L.f32.size());
    double err = 0, norm = 0;
    for (int64_t r = 0; r < R; r++) {
      const bool bad = R > 2 && (r == 1 || r == 2);
      for (int64_t v = 0; v < V; v++) {
        const double x =
            split ? ((double)L.f32[r * V + v] - sh[r]) / tau - rel[r] : (double)L.f32[r * V + v] / tau - lz[r];
        const double u = std::fmin(0.0, x), p = std::exp(u);
        const double want =
            (gl[r] * ((v == y[r] ? 1.0 : 0.0) - p) - (with_h % 2 ? gh[r] : 0.0) * p * (u + ent[r])) / tau;
        if (bad) {
          CHECK(std::isnan(g[r * V + v]), "head grad: row %lld must be NaN", (long long)r);
        } else if (!(r == 0 && v == 0 && R > 2)) {
          err += (g[r * V + v] - want) * (g[r * V + v] - want), norm += want * want;
        }
      }
    }
    CHECK(std::sqrt(err) <= 1e-5 * std::sqrt(norm) + 1e-7,
          "head grad R=%lld V=%lld tau=%g gH=%d split=%d: rel err %.3g", (long long)R, (long long)V, tau, with_h % 2,
          split, std::sqrt(err / (norm + 1e-300)));
  }
  for (void* p :
       {(void*)dz, (void*)dent, (void*)dlz, (void*)dh, (void*)dgl, (void*)dgh, (void*)dy, (void*)dsh, (void*)drel})
    cudaFree(p);
}

int main() {
  int count = 0;
  char name[256];
  int err = cuda_device_info(&count, name, sizeof(name));
  if (err || count == 0) {
    std::printf("no CUDA device (%s): nothing checked\n", err ? name : "none found");
    return 0;
  }
  std::printf("device: %s\n", name);
  // The CPU twins the head is compared with take float32 products: on a CPU with AVX512_BF16 the
  // bfloat16 head's products round their other operand to bfloat16 (a looser tolerance, tested in
  // test_token_logprobs_from_hidden.cc).
  if (!std::getenv("GVPO_SIMD")) setenv("GVPO_SIMD", "avx512", 1);
  std::mt19937 rng(4321);
  const int64_t shapes[][2] = {{1, 1},    {1, 2},    {3, 7},     {5, 123},   {7, 16},    {2, 4095},
                               {4, 4097}, {9, 2048}, {64, 1000}, {3, 32768}, {2, 151936}};
  for (auto& s : shapes)
    for (int d = 0; d < 3; d++) check_token_logprobs(rng, s[0], s[1], (DType)d, d == 1 ? 0.7f : 1.0f);
  check_nonfinite();
  check_extremes(rng);
  check_loss(rng);
  for (int d = 0; d < 3; d++) check_host_entry(rng, (DType)d);
  const int64_t gemms[][3] = {{1, 1, 1},     {7, 5, 9},    {128, 128, 8},  {129, 130, 17},
                              {200, 7, 300}, {3, 257, 64}, {300, 64, 5000}};
  for (auto& g : gemms)
    for (int d = 0; d < 3; d++) {
      check_gemm(rng, g[0], g[1], g[2], true, false, (DType)d, false);  // logits
      check_gemm(rng, g[0], g[1], g[2], true, true, (DType)d, false);   // dH
      check_gemm(rng, g[0], g[1], g[2], false, true, (DType)d, true);   // dW
    }
  const int64_t rows[][2] = {{1, 1}, {2, 2}, {5, 123}, {7, 4097}, {3, 32768}, {2, 151936}};
  for (auto& k : rows)
    for (float tau : {1.0f, 0.001f, 30.0f}) check_head_rows(rng, k[0], k[1], tau);
  check_hidden_twins(rng);
  check_head_row_scales(rng);
  check_head_accumulate_scale(rng);
  std::printf("%d checks, %d failures\n%d passed, %d failed\n", checks, failures, checks - failures, failures);
  return failures ? 1 : 0;
}
