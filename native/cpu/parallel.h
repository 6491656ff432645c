// Split [0, n) into contiguous chunks, one per thread, and run fn(begin, end) on each.
// Threads are created per call: a call that is worth splitting runs for milliseconds, a thread
// start costs microseconds, and no pool means no shared state between concurrent callers
// (async workers, worker_threads). Small work runs inline on the calling thread.
#pragma once
#include <cstdint>
#include <thread>
#include <vector>

namespace gvpo {

int resolve_threads(int requested);

template <typename Fn>
void parallel_rows(int64_t n, int64_t cost_per_row, int threads, Fn fn) {
  int t = resolve_threads(threads);
  const int64_t min_work = 1 << 18;  // elements; below this a thread start is not worth it
  int64_t by_work = (n * cost_per_row) / min_work;
  if (by_work < t) t = (int)(by_work < 1 ? 1 : by_work);
  if (t > n) t = (int)(n < 1 ? 1 : n);
  if (t <= 1) {
    fn((int64_t)0, n);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(t - 1);
  for (int i = 1; i < t; i++) pool.emplace_back(fn, n * i / t, n * (i + 1) / t);
  fn((int64_t)0, n / t);
  for (auto& th : pool) th.join();
}

}  // namespace gvpo
