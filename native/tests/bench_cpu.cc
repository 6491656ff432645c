// CPU kernel timings without Node, for bench/NOTES.md: ns per logit of the forward and backward
// passes, per instruction set (GVPO_SIMD), one thread and all threads, on a buffer that fits in
// cache (compute cost) and one that does not (memory cost).
//   gvpo_bench_cpu [rows vocab]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../kernels.h"

using namespace gvpo;

template <typename F>
static double best_ms(F f, int reps) {
  std::vector<double> t;
  f();
  for (int i = 0; i < reps; i++) {
    auto a = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

int main(int argc, char** argv) {
  const int64_t R = argc > 2 ? atoll(argv[1]) : 2048, V = argc > 2 ? atoll(argv[2]) : 32768;
  std::vector<float> z((size_t)(R * V)), lp(R), lz(R), g(R, 0.5f), grad((size_t)(R * V));
  std::vector<int32_t> y(R);
  for (size_t i = 0; i < z.size(); i++) z[i] = (float)((i * 2654435761u) % 1000) / 100.0f - 5.0f;
  for (int64_t r = 0; r < R; r++) y[r] = (int32_t)(r * 7 % V);
  const double n = (double)R * V;
  for (int threads : {1, cpu_default_threads()}) {
    double f = best_ms([&] { token_logprobs_forward_cpu(lp.data(), lz.data(), nullptr, nullptr, z.data(), DType::f32, y.data(), nullptr, R, V, 1.0f, threads); }, 7);
    double b = best_ms([&] { token_logprobs_backward_cpu(grad.data(), z.data(), DType::f32, y.data(), nullptr, nullptr, lz.data(), g.data(), R, V, 1.0f, threads); }, 7);
    double rd = best_ms([&] { stream_read_cpu(z.data(), (int64_t)z.size(), threads); }, 7);
    std::printf("simd=%s threads=%d R=%lld V=%lld: forward %.2f ms (%.3f ns/logit, %.1f GB/s), backward %.2f ms (%.3f ns/logit), stream read %.2f ms (%.1f GB/s)\n",
                cpu_simd_level(), threads, (long long)R, (long long)V, f, f * 1e6 / n, n * 4 / f / 1e6, b, b * 1e6 / n, rd, n * 4 / rd / 1e6);
  }
  return 0;
}
