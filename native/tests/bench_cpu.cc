// The logits kernels' timings without Node, for bench/NOTES.md: tokenLogprobs' forward, its
// backward alone, and the fused gvpoFromLogits into a reused gradient buffer, per dtype, against
// probes taken in the same run right before and after each call (a shared machine's bandwidth
// and clock drift within seconds): the streaming read and write probes (the roofline) and the
// exp-throughput probe (the row kernels' own exp, register-resident). Each ratio is the call's
// against the mean of the probes around it; the table gives the median and range over rounds.
// Then the same passes, one thread, on data that stays in L2 (their compute cost, against the
// one-thread exp probe).
//   gvpo_bench_cpu [rows vocab [rounds [dtypes]]]      dtypes: f32,bf16,f16 (default all)
//   GVPO_SIMD=avx2 gvpo_bench_cpu ...                  another instruction set
//   CPU_TIME=1 gvpo_bench_cpu ...                      CPU time per thread instead of wall time
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "../kernels.h"

using namespace gvpo;

static double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
static double cpu_now_s() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}
// Wall seconds of f(); with CPU time (CPU_TIME=1 in the environment), the process's CPU seconds
// over the thread count: on a shared machine a thread that waits for a core costs wall time
// but no CPU time, so the ratios then tell what the code does when it runs.
static int g_threads = 1;
static bool g_cpu = false;
template <typename F>
static double time_s(F f, int threads = g_threads) {
  const double a = now_s(), c = cpu_now_s();
  f();
  return g_cpu ? (cpu_now_s() - c) / threads : now_s() - a;
}

struct Stat {
  std::vector<double> x;
  void add(double v) { x.push_back(v); }
  double med() const {
    std::vector<double> s = x;
    std::sort(s.begin(), s.end());
    return s[s.size() / 2];
  }
  double lo() const { return *std::min_element(x.begin(), x.end()); }
  double hi() const { return *std::max_element(x.begin(), x.end()); }
};

static void print_pct(const char* what, const Stat& s) {
  std::printf("    %-44s %4.0f%% [%.0f-%.0f]\n", what, 100 * s.med(), 100 * s.lo(), 100 * s.hi());
}

// Bench logits as bench/lib.ts draws them: 3 * (u + u + u - 1.5), u uniform in [0, 1).
static float draw(uint32_t& s) {
  float a = 0;
  for (int i = 0; i < 3; i++) a += (float)((s = s * 1664525u + 1013904223u) / 4294967296.0);
  return (a - 1.5f) * 3.0f;
}
static uint16_t to_half(float f, DType d) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  if (d == DType::bf16) return (uint16_t)((b + 0x7fff + ((b >> 16) & 1)) >> 16);
  uint32_t sign = (b >> 16) & 0x8000, m = b & 0x7fffff;
  int32_t e = (int32_t)((b >> 23) & 0xff) - 112;  // |f| < 10: normal or flushed
  if (e <= 0) return (uint16_t)sign;
  uint32_t h = ((uint32_t)e << 10) | (m >> 13), rest = m & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
  return (uint16_t)(sign | h);
}

int main(int argc, char** argv) {
  const int64_t R = argc > 2 ? atoll(argv[1]) : 2048, V = argc > 2 ? atoll(argv[2]) : 32768;
  const int rounds = argc > 3 ? atoi(argv[3]) : 5;
  const std::string which = std::string(",") + (argc > 4 ? argv[4] : "f32,bf16,f16") + ",";
  auto wanted = [&](const char* name) { return which.find(std::string(",") + name + ",") != std::string::npos; };
  const int threads = cpu_default_threads();
  g_threads = threads;
  g_cpu = std::getenv("CPU_TIME") && std::getenv("CPU_TIME")[0] == '1';
  const int64_t T = 128, N = R / T > 0 ? R / T : 1;  // the fused op's sequences: 1/4 prompt tokens
  const int64_t E = R * V;
  const int64_t exp_iters = 400000;

  std::vector<float> zf((size_t)E), grad((size_t)E), wbuf((size_t)E);
  uint32_t seed = 1;
  for (int64_t i = 0; i < E; i++) zf[i] = draw(seed);
  std::vector<int32_t> y((size_t)R);
  std::vector<float> mask((size_t)R), g((size_t)R), lp((size_t)R), lz((size_t)R), rm((size_t)R), rl((size_t)R);
  for (int64_t r = 0; r < R; r++) {
    y[r] = (int32_t)((r * 2654435761u) % (uint64_t)V);
    mask[r] = r % T >= T / 4 ? 1.0f : 0.0f;
    g[r] = 0.01f;
  }
  std::vector<double> rewards((size_t)N), S((size_t)N), Q((size_t)N), gs((size_t)N), res((size_t)N);
  for (int64_t n = 0; n < N; n++) rewards[n] = n % 2;
  std::vector<int32_t> offsets;
  for (int64_t n = 0; n <= N; n += 4) offsets.push_back((int32_t)n);
  if (offsets.back() != N) offsets.push_back((int32_t)N);
  std::vector<float> tlp((size_t)R), tlz((size_t)R);

  std::printf("simd=%s threads=%d R=%lld V=%lld rounds=%d, %s time\n", cpu_simd_level(), threads, (long long)R,
              (long long)V, rounds, g_cpu ? "CPU" : "wall");
  for (DType d : {DType::f32, DType::bf16, DType::f16}) {
    const char* name = d == DType::f32 ? "f32" : d == DType::bf16 ? "bf16" : "f16";
    if (!wanted(name)) continue;
    std::vector<uint16_t> zh;
    if (d != DType::f32) {
      zh.resize((size_t)E);
      for (int64_t i = 0; i < E; i++) zh[i] = to_half(zf[i], d);
    }
    const void* logits = d == DType::f32 ? (const void*)zf.data() : zh.data();
    const double bytes = (double)E * dtype_bytes(d), gbytes = (double)E * 4;
    std::vector<float> pbuf((size_t)(bytes / 4), 1.0f);  // a read probe over as many bytes
    auto read_bw = [&] { return bytes / time_s([&] { stream_read_cpu(pbuf.data(), (int64_t)pbuf.size(), threads); }); };
    auto write_bw = [&] { return gbytes / time_s([&] { stream_write_cpu(wbuf.data(), E, 1.0f, threads); }); };
    auto exp_rate = [&] {
      double n = 0;
      const double t = time_s([&] { n = exp_probe_cpu(exp_iters, threads); });
      return n / t;
    };
    auto fwd = [&] {
      token_logprobs_forward_cpu(lp.data(), lz.data(), rm.data(), rl.data(), logits, d, y.data(), nullptr, R, V, 1.0f,
                                 threads);
    };
    auto bwd = [&] {
      token_logprobs_backward_cpu(grad.data(), logits, d, y.data(), nullptr, rm.data(), rl.data(), g.data(), R, V, 1.0f,
                                  threads);
    };
    GvpoLogitsBatch in{{d, y.data(), mask.data(), nullptr, nullptr, rewards.data(), offsets.data(),
                        (int64_t)offsets.size() - 1, N, R / N, V, 1.0f, 0.1, true},
                       logits};
    GvpoFromLogitsOut out{{tlp.data(), tlz.data(), S.data(), Q.data(), gs.data(), res.data(), 0}, grad.data()};
    auto fused = [&] { gvpo_from_logits_cpu(out, in, threads); };
    fwd(), bwd(), fused(), read_bw(), write_bw(), exp_rate();  // warm: pages, code, clocks
    Stat f_roof, f_exp, b_floor, s_floor, rd, wr, ex, tf, tb, ts;
    for (int i = 0; i < rounds; i++) {
      const double r0 = read_bw(), e0 = exp_rate();
      const double t1 = time_s(fwd);
      const double r1 = read_bw(), e1 = exp_rate(), w1 = write_bw();
      const double t2 = time_s(bwd);
      const double r2 = read_bw(), w2 = write_bw();
      const double t3 = time_s(fused);
      const double r3 = read_bw(), w3 = write_bw();
      f_roof.add(bytes / ((r0 + r1) / 2) / t1);
      f_exp.add((double)E / t1 / ((e0 + e1) / 2));
      b_floor.add((bytes / ((r1 + r2) / 2) + gbytes / ((w1 + w2) / 2)) / t2);
      s_floor.add((2 * bytes / ((r2 + r3) / 2) + gbytes / ((w2 + w3) / 2)) / t3);
      rd.add(r0), rd.add(r1), rd.add(r2), rd.add(r3), wr.add(w1), wr.add(w2), wr.add(w3);
      ex.add(e0), ex.add(e1), tf.add(t1), tb.add(t2), ts.add(t3);
    }
    std::printf(
        "  %s, %.0f MiB of logits: read probe %.1f GB/s [%.1f-%.1f], write probe %.1f GB/s [%.1f-%.1f], exp probe %.2f "
        "G/s [%.2f-%.2f]\n",
        name, bytes / 1048576, rd.med() / 1e9, rd.lo() / 1e9, rd.hi() / 1e9, wr.med() / 1e9, wr.lo() / 1e9,
        wr.hi() / 1e9, ex.med() / 1e9, ex.lo() / 1e9, ex.hi() / 1e9);
    std::printf("    times (median ms): forward %.1f (%.2f G elements/s), backward %.1f, fused %.1f\n", tf.med() * 1e3,
                E / tf.med() / 1e9, tb.med() * 1e3, ts.med() * 1e3);
    print_pct("tokenLogprobs forward, of the read roofline", f_roof);
    print_pct("tokenLogprobs forward, of the exp probe", f_exp);
    print_pct("backward alone, of 1 read + 1 write", b_floor);
    print_pct("gvpoFromLogits (reused out), of 2 reads + 1 write", s_floor);
  }
  // Compute cost: the same passes over 2 rows x 32768 that stay in L2, many times, one thread,
  // against the one-thread exp probe (elements per second of each).
  {
    const int64_t r = 2, v = 32768, e = r * v, reps = 100;
    std::vector<uint16_t> zh((size_t)e);
    for (DType d : {DType::f32, DType::bf16, DType::f16}) {
      const char* name = d == DType::f32 ? "f32" : d == DType::bf16 ? "bf16" : "f16";
      if (!wanted(name)) continue;
      for (int64_t i = 0; i < e; i++) zh[i] = to_half(zf[i], d);
      const void* z = d == DType::f32 ? (const void*)zf.data() : zh.data();
      Stat f, b, ex;
      for (int i = 0; i < rounds; i++) {
        double n = 0;
        const double te = time_s([&] { n = exp_probe_cpu(exp_iters, 1); }, 1);
        const double t1 = time_s(
            [&] {
              for (int k = 0; k < reps; k++)
                token_logprobs_forward_cpu(lp.data(), lz.data(), rm.data(), rl.data(), z, d, y.data(), nullptr, r, v,
                                           1.0f, 1);
            },
            1);
        const double t2 = time_s(
            [&] {
              for (int k = 0; k < reps; k++)
                token_logprobs_backward_cpu(grad.data(), z, d, y.data(), nullptr, rm.data(), rl.data(), g.data(), r, v,
                                            1.0f, 1);
            },
            1);
        ex.add(n / te);
        f.add((double)e * reps / t1 / (n / te));
        b.add((double)e * reps / t2 / (n / te));
      }
      std::printf("  in L2 (%lld x %lld, 1 thread), %s: exp probe %.2f G/s [%.2f-%.2f]\n", (long long)r, (long long)v,
                  name, ex.med() / 1e9, ex.lo() / 1e9, ex.hi() / 1e9);
      print_pct("forward, elements/s of the exp probe", f);
      print_pct("backward, elements/s of the exp probe", b);
    }
  }
  return 0;
}
