// The library candidate for the fused head's GEMMs: OpenBLAS (Debian's libopenblas-dev) on the
// same tile sequence gvpo_from_hidden.cc runs, softmax left out (GEMM time only), so its GFLOP/s
// compare directly with native/tests/bench_hidden.cc's. Not part of any build: OpenBLAS would have
// to be linked statically into the addon and built from what npm can fetch (bench/NOTES.md).
//   g++ -O2 bench/openblas_head.cc -lopenblas -o /tmp/ob && OPENBLAS_NUM_THREADS=2 /tmp/ob
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

int main() {
  const int R = 4096, H = 512, V = 32768, VC = 256, RBF = 504, RBB = 252;
  std::vector<float> hid((size_t)R * H, 0.01f), w((size_t)V * H, 0.02f), Z((size_t)RBF * VC), dW((size_t)V * H),
      dZ((size_t)RBB * V), dH((size_t)RBB * H);
  auto now = [] { return std::chrono::steady_clock::now(); };
  auto t0 = now();
  for (int b = 0; b < R; b += RBF)  // phase 1: Z = Hb W_c^T per chunk
    for (int v = 0; v < V; v += VC)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, std::min(RBF, R - b), VC, H, 1.f, &hid[(size_t)b * H], H, &w[(size_t)v * H], H, 0.f, Z.data(), VC);
  auto t1 = now();
  for (int b = 0; b < R; b += RBB) {  // phase 2: recompute, dW_c += dZ^T Hb, then dHb = dZ W
    const int m = std::min(RBB, R - b);
    for (int v = 0; v < V; v += VC) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, VC, H, 1.f, &hid[(size_t)b * H], H, &w[(size_t)v * H], H, 0.f, &dZ[v], V);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, VC, H, m, 1.f, &dZ[v], V, &hid[(size_t)b * H], H, 1.f, &dW[(size_t)v * H], H);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, H, V, 1.f, dZ.data(), V, w.data(), H, 0.f, dH.data(), H);
  }
  auto t2 = now();
  const double pass = 2.0 * R * H * V, f = std::chrono::duration<double>(t1 - t0).count(), b = std::chrono::duration<double>(t2 - t1).count();
  std::printf("OpenBLAS %s: forward %.1f ms (%.1f GFLOP/s), backward %.1f ms (%.1f GFLOP/s), 4 passes %.1f GFLOP/s\n",
              openblas_get_config(), f * 1e3, pass / f / 1e9, b * 1e3, 3 * pass / b / 1e9, 4 * pass / (f + b) / 1e9);
  return 0;
}
