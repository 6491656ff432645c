// The fused LM head's timings without Node, for bench/NOTES.md: the forward (1 GEMM pass) and the
// backward (recompute, dW, dH: 3 passes) of token_logprobs_from_hidden, the engine gvpoFromHidden
// runs too, each pass 2*R*H*V flops, against the same-run FMA peak probe (fma_probe_cpu) with the
// same threads and instruction set (GVPO_SIMD); bfloat16 inputs on the avx512bf16 level (vdpbf16ps
// products) against the bfloat16 dot-product probe. With entropy = 1 the forward also gives H and
// the backward takes an upstream gradient for it.
//   gvpo_bench_hidden [rows hidden vocab [dtype 0|1|2 [threads [part [rounds [entropy 0|1]]]]]]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

#include "../kernels.h"

using namespace gvpo;

static double cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// Median wall seconds; *cpu gets the median process CPU seconds (all threads), which other
// tenants of a shared machine disturb less than the wall time.
template <typename F>
static double median_s(F f, int reps, double* cpu) {
  std::vector<double> t, c;
  for (int i = 0; i < reps; i++) {
    auto a = std::chrono::steady_clock::now();
    double c0 = cpu_s();
    f();
    c.push_back(cpu_s() - c0);
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  std::sort(c.begin(), c.end());
  *cpu = c[c.size() / 2];
  return t[t.size() / 2];
}

int main(int argc, char** argv) {
  const int64_t R = argc > 3 ? atoll(argv[1]) : 4096, H = argc > 3 ? atoll(argv[2]) : 512,
                V = argc > 3 ? atoll(argv[3]) : 32768;
  const DType d = (DType)(argc > 4 ? atoi(argv[4]) : 0);
  const int threads = argc > 5 ? atoi(argv[5]) : cpu_default_threads();
  const size_t esz = dtype_bytes(d);
  std::vector<uint8_t> hid((size_t)(R * H) * esz), w((size_t)(V * H) * esz);
  for (size_t i = 0; i < hid.size() / esz; i++) {
    float x = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    if (d == DType::f32)
      ((float*)hid.data())[i] = x;
    else
      ((uint16_t*)hid.data())[i] = d == DType::bf16 ? 0x3f00 + (uint16_t)(i % 97) : 0x3800 + (uint16_t)(i % 97);
  }
  for (size_t i = 0; i < w.size() / esz; i++) {
    float x = (float)((i * 40503u) % 1000) / 5000.0f - 0.1f;
    if (d == DType::f32)
      ((float*)w.data())[i] = x;
    else
      ((uint16_t*)w.data())[i] = d == DType::bf16 ? 0x3c00 + (uint16_t)(i % 89) : 0x2c00 + (uint16_t)(i % 89);
  }
  std::vector<int32_t> y(R);
  std::vector<float> lp(R), lz(R), ent(R), gl(R, 0.01f), gh(R, -0.002f), dH((size_t)(R * H)), dW((size_t)(V * H));
  const bool entropy = argc > 8 && atoi(argv[8]) != 0;
  const HeadInputs in{hid.data(), w.data(), d, y.data(), nullptr, R, H, V, 1.0f};
  auto fwd = [&] {
    token_logprobs_from_hidden_forward_cpu(lp.data(), lz.data(), entropy ? ent.data() : nullptr, in, threads);
  };
  auto bwd = [&] {
    token_logprobs_from_hidden_backward_cpu(dH.data(), dW.data(), in, lz.data(), entropy ? ent.data() : nullptr,
                                            gl.data(), entropy ? gh.data() : nullptr, false, threads);
  };
  for (int64_t r = 0; r < R; r++) y[r] = (int32_t)(r * 7919 % V);
  const char* only = argc > 6 ? argv[6] : "";  // "f", "b" or "p": one part alone (for perf stat)
  const int reps = only[0] ? 1 : 3;
  const double pass = 2.0 * R * H * V;
  if (only[0] == 'f') return fwd(), 0;
  if (only[0] == 'b') return bwd(), 0;
  // The peak the GEMM's instructions allow: vdpbf16ps for bfloat16 inputs where they are used.
  const bool dot = d == DType::bf16 && bf16_dot_probe_cpu(1000, 1) > 0;
  auto peak_probe = [&](int64_t iterations) {
    return dot ? bf16_dot_probe_cpu(iterations, threads) : fma_probe_cpu(iterations, threads);
  };
  if (only[0] == 'p') return peak_probe(20000000) < 0;
  const int64_t it = 20000000;
  const bool interleaved_only = only[0] == 'i';  // "i": the interleaved rounds alone
  double fc = 0, bc = 0, pc = 1, f = 1, b = 1, flops = 0, p = 1;
  if (!interleaved_only) {
    f = median_s(fwd, reps, &fc);
    b = median_s(bwd, reps, &bc);
    p = median_s([&] { flops = peak_probe(it); }, 5, &pc);
    const double peak = flops / p / 1e9, total = 4 * pass / (f + b) / 1e9;
    std::printf(
        "simd=%s threads=%d R=%lld H=%lld V=%lld dtype=%d entropy=%d: forward %.1f ms (%.1f GFLOP/s), backward %.1f ms "
        "(%.1f GFLOP/s), 4 passes %.1f ms = %.1f GFLOP/s; %s probe %.1f GFLOP/s -> %.0f%% of peak\n",
        cpu_simd_level(), threads, (long long)R, (long long)H, (long long)V, (int)d, (int)entropy, f * 1e3,
        pass / f / 1e9, b * 1e3, 3 * pass / b / 1e9, (f + b) * 1e3, total, dot ? "bf16 dot" : "FMA", peak,
        100 * total / peak);
  }
  // Interleaved: probe, forward, probe, backward, probe, ... Each part against the mean of the
  // probes on either side of it, median of the rounds: on a shared machine the FMA rate drifts
  // within seconds, and a probe taken apart from the work it is compared with follows the drift
  // only by chance.
  const int rounds = argc > 7 ? atoi(argv[7]) : 5;
  std::vector<double> ef, eb, e4;
  auto probe = [&] {
    auto a = std::chrono::steady_clock::now();
    double fl = peak_probe(it / 4);
    return fl / std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
  };
  for (int i = 0; i < rounds; i++) {
    const double p0 = probe();
    auto a = std::chrono::steady_clock::now();
    fwd();
    const double tf = std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
    const double p1 = probe();
    a = std::chrono::steady_clock::now();
    bwd();
    const double tb = std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
    const double p2 = probe();
    ef.push_back(pass / tf / ((p0 + p1) / 2));
    eb.push_back(3 * pass / tb / ((p1 + p2) / 2));
    e4.push_back(4 * pass / (tf + tb) / ((p0 * tf + p1 * (tf + tb) + p2 * tb) / (2 * (tf + tb))));
  }
  auto med = [](std::vector<double> x) {
    std::sort(x.begin(), x.end());
    return x[x.size() / 2];
  };
  std::printf(
      "  interleaved (%d rounds, medians): forward %.0f%%, backward %.0f%%, 4 passes %.0f%% of the probes around "
      "them\n",
      rounds, 100 * med(ef), 100 * med(eb), 100 * med(e4));
  if (interleaved_only) return 0;
  std::printf("  by CPU time: 4 passes %.1f GFLOP/s per thread, probe %.1f GFLOP/s per thread -> %.0f%%\n",
              4 * pass / ((fc + bc) / threads) / 1e9, flops / (pc / threads) / 1e9,
              100 * (4 * pass / (fc + bc)) / (flops / pc));
  return 0;
}
