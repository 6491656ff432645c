// Split [0, n) into contiguous chunks, one per thread, and run fn(begin, end) on each.
// Threads are created per call: a call that is worth splitting runs for milliseconds, a thread
// start costs microseconds, and no pool means no shared state between concurrent callers
// (async workers, worker_threads). Small work runs inline on the calling thread.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <mutex>
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

// A reusable barrier for the n threads of one parallel_team call. It sleeps rather than spins:
// on a shared machine a spinning thread takes the core from the one it waits for.
class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void wait() {
    std::unique_lock<std::mutex> lock(m_);
    const uint64_t gen = gen_;
    if (++arrived_ == n_) {
      arrived_ = 0;
      gen_++;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return gen_ != gen; });
    }
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  const int n_;
  int arrived_ = 0;
  uint64_t gen_ = 0;
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
