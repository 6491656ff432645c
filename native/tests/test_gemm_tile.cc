// The CUDA GEMM's tile (native/cuda/gemm_tile.h) run on the CPU: each block's 256 threads are
// real threads sharing the block's slices and meeting at a barrier where the GPU has
// __syncthreads, so the index arithmetic, the bounds, the layouts and the accumulation are
// checked here without a GPU, against a float64 product. The layouts are the three the fused LM
// head uses (gemm.cu) plus a general strided one; sizes straddle the tile edges (1, 7, 128, 129,
// 200) and K runs over 0, 1, 8, 9 and hundreds. Prints "N passed, M failed"; exit 0 when all
// passed.
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace gvpo {
struct Bf16 {  // bfloat16 bits, as the kernels read them
  uint16_t bits;
};
inline float to_f32(float x) { return x; }
inline float to_f32(Bf16 x) {
  uint32_t u = (uint32_t)x.bits << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
}  // namespace gvpo

#include "../cuda/gemm_tile.h"
#include "check.h"

using namespace gvpo;
using namespace gvpo::gemm_tile;

namespace {

// What __syncthreads() is to a block: every one of the block's threads waits for the others.
class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void wait() {
    std::unique_lock<std::mutex> l(m_);
    const int gen = gen_;
    if (++waiting_ == n_) {
      waiting_ = 0;
      gen_++;
      cv_.notify_all();
    } else {
      cv_.wait(l, [&] { return gen_ != gen; });
    }
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int n_, waiting_ = 0, gen_ = 0;
};

// The launch gemm.cu makes, block by block.
template <typename TA, typename TB>
void run_grid(const Args<TA, TB>& g) {
  const int64_t bm = (g.M + BM - 1) / BM, bn = (g.N + BN - 1) / BN;
  for (int64_t by = 0; by < bm; by++)
    for (int64_t bx = 0; bx < bn; bx++) {
      std::vector<float> as(BK * (BM + PAD), NAN), bs(BK * (BN + PAD), NAN);  // garbage, as on a GPU
      auto* As = reinterpret_cast<float(*)[BM + PAD]>(as.data());
      auto* Bs = reinterpret_cast<float(*)[BN + PAD]>(bs.data());
      Barrier bar(TPB);
      std::vector<std::thread> threads;
      for (int t = 0; t < TPB; t++) threads.emplace_back([&, t] { tile(g, by, bx, t, As, Bs, [&] { bar.wait(); }); });
      for (auto& th : threads) th.join();
    }
}

float bf16_round(float x) {  // round to nearest even, as the inputs would be stored
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u += 0x7fff + ((u >> 16) & 1);
  u &= 0xffff0000u;
  std::memcpy(&x, &u, 4);
  return x;
}

// C (M x N, ldc = N + 3) against float64 for A, B laid out by `a_kmajor` / `b_nmajor`.
template <typename TB>
void check(std::mt19937& rng, int64_t M, int64_t N, int64_t K, bool a_kmajor, bool b_nmajor, bool accumulate) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> a((size_t)(M * K));
  std::vector<float> bval((size_t)(K * N));
  std::vector<TB> b((size_t)(K * N));
  for (auto& x : a) x = u(rng);
  for (size_t i = 0; i < b.size(); i++) {
    const float x = u(rng);
    if constexpr (std::is_same<TB, Bf16>::value) {
      const float r = bf16_round(x);
      uint32_t bits;
      std::memcpy(&bits, &r, 4);
      b[i] = Bf16{(uint16_t)(bits >> 16)};
      bval[i] = r;
    } else {
      b[i] = x;
      bval[i] = x;
    }
  }
  const int64_t a_m = a_kmajor ? K : 1, a_k = a_kmajor ? 1 : M;
  const int64_t b_k = b_nmajor ? N : 1, b_n = b_nmajor ? 1 : K;
  const int64_t ldc = N + 3;
  std::vector<float> c((size_t)(M * ldc), 7.0f);  // 7: the old C that accumulate adds to
  run_grid(Args<float, TB>{c.data(), ldc, a.data(), a_m, a_k, b.data(), b_k, b_n, M, N, K, accumulate});
  double worst = 0;
  bool pad_ok = true;
  for (int64_t m = 0; m < M; m++) {
    for (int64_t n = 0; n < N; n++) {
      double want = accumulate ? 7.0 : 0.0, scale = 1.0;
      for (int64_t k = 0; k < K; k++) {
        const double p = (double)a[m * a_m + k * a_k] * bval[k * b_k + n * b_n];
        want += p;
        scale += std::fabs(p);
      }
      const double e = std::fabs(c[m * ldc + n] - want) / scale;
      worst = std::isnan(e) ? INFINITY : std::max(worst, e);  // a NaN must not hide in max()
    }
    for (int64_t n = N; n < ldc; n++) pad_ok = pad_ok && c[m * ldc + n] == 7.0f;  // outside C: untouched
  }
  CHECK(worst <= 4e-7 * std::sqrt((double)K + 1), "M=%lld N=%lld K=%lld a_kmajor=%d b_nmajor=%d acc=%d: error %.3g",
        (long long)M, (long long)N, (long long)K, a_kmajor, b_nmajor, accumulate, worst);
  CHECK(pad_ok, "M=%lld N=%lld K=%lld: wrote outside the ldc padding", (long long)M, (long long)N, (long long)K);
}

}  // namespace

int main() {
  std::mt19937 rng(2026);
  const int64_t sizes[][3] = {{1, 1, 1},     {7, 5, 9},    {128, 128, 8}, {129, 130, 17},
                              {200, 7, 300}, {3, 257, 64}, {130, 1, 1},   {5, 9, 0}};
  for (auto& s : sizes) {
    // the head's three layouts: logits (A, B k-major), dH (A k-major, B n-major), dW (A m-major, B n-major)
    check<float>(rng, s[0], s[1], s[2], true, false, false);
    check<float>(rng, s[0], s[1], s[2], true, true, false);
    check<float>(rng, s[0], s[1], s[2], false, true, true);
    check<float>(rng, s[0], s[1], s[2], false, false, true);
    check<Bf16>(rng, s[0], s[1], s[2], true, false, false);
    check<Bf16>(rng, s[0], s[1], s[2], false, true, true);
  }
  std::printf("gemm tile: %d checks, %d failures\n%d passed, %d failed\n", checks, failures, checks - failures,
              failures);
  return failures ? 1 : 0;
}
