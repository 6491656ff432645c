// Split [0, n) into contiguous chunks, one per thread, and run fn(begin, end) on each.
// Threads are created per call: a call that is worth splitting runs for milliseconds, a thread
// start costs microseconds, and no pool means no shared state between concurrent callers
// (async workers, worker_threads). Small work runs inline on the calling thread.
#pragma once
#include <atomic>
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

// A reusable barrier for the n threads of one parallel_team call. Waiting threads yield the
// core rather than spin on it (on a shared machine a spinning thread can take the core from the
// one it waits for). Atomics, not std::condition_variable: GCC 12's libstdc++ versions
// condition_variable::wait anew (GLIBCXX_3.4.30), which the prebuilt binary must not need.
class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void wait() {
    const uint64_t gen = gen_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_) {
      arrived_.store(0, std::memory_order_relaxed);
      gen_.fetch_add(1, std::memory_order_release);
    } else {
      while (gen_.load(std::memory_order_acquire) == gen) std::this_thread::yield();
    }
  }

 private:
  const int n_;
  std::atomic<int> arrived_{0};
  std::atomic<uint64_t> gen_{0};
};

// Runs fn(i, t, barrier) on t threads (i = 0 on the calling thread) that meet at the barrier
// between the steps of work they share. Every thread must call barrier.wait() equally often.
template <typename Fn>
void parallel_team(int t, Fn fn) {
  if (t < 1) t = 1;
  Barrier barrier(t);
  std::vector<std::thread> pool;
  pool.reserve(t - 1);
  for (int i = 1; i < t; i++) pool.emplace_back([&, i] { fn(i, t, barrier); });
  fn(0, t, barrier);
  for (auto& th : pool) th.join();
}

// The i-th of t contiguous, nearly equal parts of [0, n).
inline int64_t part_begin(int64_t n, int i, int t) { return n * i / t; }

}  // namespace gvpo
