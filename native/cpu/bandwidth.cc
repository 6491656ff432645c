// Probes for the benchmarks. Roofline: stream a buffer once (read: a vectorized sum; write: a
// vectorized fill) with the same thread split as the kernels; bytes moved / time is the ceiling
// the kernels are measured against in the same run. Exp throughput: the row kernels' own exp on
// register-resident arguments, one chain set per thread.
#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "../kernels.h"
#include "parallel.h"
#include "row_kernels.h"

namespace gvpo {

typedef float v16 __attribute__((vector_size(64)));
typedef float v16_u __attribute__((vector_size(64), aligned(4)));

#if defined(__x86_64__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static double
sum_range(const float* p, int64_t n) {
  v16 a0{}, a1{}, a2{}, a3{};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    a0 += *(const v16_u*)(p + i);
    a1 += *(const v16_u*)(p + i + 16);
    a2 += *(const v16_u*)(p + i + 32);
    a3 += *(const v16_u*)(p + i + 48);
  }
  v16 a = a0 + a1 + a2 + a3;
  double s = 0;
  for (int j = 0; j < 16; j++) s += a[j];
  for (; i < n; i++) s += p[i];
  return s;
}

double stream_read_cpu(const float* data, int64_t n, int threads) {
  const int64_t rows = (n + 4095) / 4096;  // split in 16 KiB rows like a kernel's rows
  std::atomic<int64_t> bits{0};
  parallel_rows(rows, 4096, threads, [&](int64_t b, int64_t e) {
    int64_t lo = b * 4096, hi = e * 4096 < n ? e * 4096 : n;
    double s = sum_range(data + lo, hi - lo);
    bits += (int64_t)s;  // keep the sum alive
  });
  return (double)bits.load();
}

void stream_write_cpu(float* data, int64_t n, float value, int threads) {
  const int64_t rows = (n + 4095) / 4096;
  parallel_rows(rows, 4096, threads, [&](int64_t b, int64_t e) {
    int64_t lo = b * 4096, hi = e * 4096 < n ? e * 4096 : n;
    for (int64_t i = lo; i < hi; i++) data[i] = value;
  });
}

double exp_probe_cpu(int64_t iterations, int threads) {
  const RowKernels& k = row_kernels();
  const int t = resolve_threads(threads);
  std::vector<double> done((size_t)t);
  parallel_each(t, [&](int i) { done[i] = k.exp_probe(iterations, (float)i + 1.0f); });
  double sum = 0;
  for (double d : done) sum += d;
  return sum;
}

}  // namespace gvpo
