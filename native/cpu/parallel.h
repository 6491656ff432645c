// Split [0, n) into contiguous chunks, one per thread, and run fn(begin, end) on each.
// Threads are created per call: a call that is worth splitting runs for milliseconds, a thread
// start costs microseconds, and no pool means no shared state between concurrent callers
// (async workers, worker_threads). Small work runs inline on the calling thread.
#pragma once
#include <atomic>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

namespace gvpo {

int resolve_threads(int requested);

// Runs fn(i) for i in [0, t), i = 0 on the calling thread and the others on threads of their
// own. Where a thread cannot be started (a process or memory limit), its share and the rest run
// on the calling thread after its own: slower, never an abort, and the same results (each share
// is fixed by i alone).
template <typename Fn>
void parallel_each(int t, Fn fn) {
  std::vector<std::thread> pool;
  pool.reserve(t > 1 ? t - 1 : 0);
  int started = 1;
  try {
    for (; started < t; started++) pool.emplace_back(fn, started);
  } catch (const std::exception&) {  // std::system_error (no thread), std::bad_alloc
  }
  fn(0);
  for (int i = started; i < t; i++) fn(i);
  for (auto& th : pool) th.join();
}

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
  parallel_each(t, [&](int i) { fn(n * i / t, n * (i + 1) / t); });
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
// The team is the threads that could be started: they wait until it is known, so where a thread
// cannot be started (a process or memory limit) the others run as a smaller team, never an abort.
template <typename Fn>
void parallel_team(int t, Fn fn) {
  if (t < 1) t = 1;
  std::atomic<int> team{0};  // 0 until the team is complete
  Barrier* shared = nullptr;
  std::vector<std::thread> pool;
  pool.reserve(t - 1);
  int started = 1;
  try {
    for (; started < t; started++) {
      pool.emplace_back([&, i = started] {
        int n;
        while ((n = team.load(std::memory_order_acquire)) == 0) std::this_thread::yield();
        fn(i, n, *shared);
      });
    }
  } catch (const std::exception&) {  // std::system_error (no thread), std::bad_alloc
  }
  Barrier barrier(started);
  shared = &barrier;
  team.store(started, std::memory_order_release);
  fn(0, started, barrier);
  for (auto& th : pool) th.join();
}

// The i-th of t contiguous, nearly equal parts of [0, n).
inline int64_t part_begin(int64_t n, int i, int t) { return n * i / t; }

}  // namespace gvpo
