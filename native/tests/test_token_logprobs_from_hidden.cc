// C++ harness for the fused LM head's engine (token_logprobs_from_hidden_*_cpu): no Node. Values
// (l, logZ, H) and gradients (dL/dhidden, dL/dweight for upstream gl and gH) against the float64
// reference of reference.h and against central finite differences of that reference; masked rows
// with garbage targets, NaN hidden states and NaN upstream; V = 1, one row, H and V off every
// vector width, every dtype, temperatures 1e-3 and 30; bitwise independence of the thread count
// and of whether the backward is given the entropy or recomputes it; gradWeight accumulation; and
// l <= 0, H >= 0 everywhere. Run once per GVPO_SIMD value (scripts/test-native.sh).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "../kernels.h"
#include "check.h"
#include "reference.h"

using namespace gvpo;

namespace {

struct Case {
  int64_t R, H, V;
  DType d;
  float tau;
};

struct Batch {
  int64_t R, H, V;
  Logits hid, w;
  std::vector<int32_t> y;
  std::vector<float> mask, gl, gh;  // an empty one is null
  HeadInputs in(float tau) const {
    return {hid.data(), w.data(), hid.dtype, y.data(), mask.empty() ? nullptr : mask.data(), R, H, V, tau};
  }
};

struct Out {
  std::vector<float> lp, lz, ent, dH, dW;
  int64_t bad = 0;
};

// The forward (with the entropy) and the backward from its logZ and H (or, given_h false, with H
// left to the backward to recompute).
Out run(const Batch& b, float tau, int threads, bool given_h = true, const float* dW0 = nullptr) {
  const HeadInputs in = b.in(tau);
  Out o;
  o.lp.assign(in.rows, NAN), o.lz.assign(in.rows, NAN), o.ent.assign(in.rows, NAN);
  o.dH.assign(in.rows * in.hidden_size, NAN);  // NaN: an element the kernel does not write fails
  o.dW.assign(in.vocab * in.hidden_size, NAN);
  if (dW0) std::memcpy(o.dW.data(), dW0, o.dW.size() * 4);
  o.bad = token_logprobs_from_hidden_forward_cpu(o.lp.data(), o.lz.data(), o.ent.data(), in, threads);
  token_logprobs_from_hidden_backward_cpu(o.dH.data(), o.dW.data(), in, o.lz.data(), given_h ? o.ent.data() : nullptr,
                                          b.gl.data(), b.gh.empty() ? nullptr : b.gh.data(), dW0 != nullptr, threads);
  return o;
}

double max_abs(const std::vector<double>& x) {
  double m = 0;
  for (double v : x) m = std::fmax(m, std::fabs(v));
  return m;
}

// Largest |got - want| (NaN in got where want is finite counts as infinite).
double max_err(const std::vector<float>& got, const std::vector<double>& want) {
  double e = 0;
  for (size_t i = 0; i < got.size(); i++) {
    const double d = std::fabs(got[i] - want[i]);
    e = d > e || d != d ? (d != d ? INFINITY : d) : e;
  }
  return e;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

// dense: every row live with a non-zero upstream (the backward then writes dH in place).
Batch make_batch(std::mt19937& rng, const Case& k, bool entropy_grad, bool dense) {
  Batch b{k.R, k.H, k.V, {}, {}, {}, {}, {}, {}};
  // x = z/tau of order 10 at tau = 1e-3 (a peaked softmax), of order 0.1 at tau = 30 (near uniform)
  const float ws = 2.0f / std::sqrt((float)k.H) * std::fmin(1.0f, 10.0f * k.tau);
  b.hid = random_logits(rng, k.R, k.H, k.d, 1.0f);
  b.w = random_logits(rng, k.V, k.H, k.d, ws);
  b.y.resize(k.R), b.mask.resize(k.R), b.gl.resize(k.R), b.gh.resize(k.R);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int64_t r = 0; r < k.R; r++) {
    b.mask[r] = !dense && k.R > 1 && rng() % 4 == 0 ? 0.0f : (rng() % 3 ? 1.0f : 0.25f);  // any non-zero: live
    b.y[r] = (int32_t)(rng() % k.V);
    b.gl[r] = !dense && rng() % 5 == 0 ? 0.0f : u(rng);
    b.gh[r] = entropy_grad && rng() % 5 ? u(rng) : 0.0f;
    if (b.mask[r] == 0.0f) {  // garbage everywhere a masked row could leak from
      b.y[r] = rng() % 2 ? -7 : (int32_t)k.V + 3;
      b.gl[r] = NAN, b.gh[r] = NAN;
      for (int64_t h = 0; h < k.H; h++) {
        if (k.d == DType::f32)
          b.hid.f32[r * k.H + h] = NAN;
        else
          b.hid.h16[r * k.H + h] = 0x7fc0;
        b.hid.f64[r * k.H + h] = 0.0;  // the reference skips the row anyway
      }
    }
  }
  return b;
}

// Whether bfloat16 inputs are multiplied in bfloat16 here (the avx512bf16 level), which rounds the
// gradient's dZ to bfloat16 where it meets the inputs.
bool bf16_products(DType d) { return d == DType::bf16 && std::strcmp(cpu_simd_level(), "avx512bf16") == 0; }

void check_case(std::mt19937& rng, const Case& k, bool entropy_grad, bool dense) {
  const Batch b = make_batch(rng, k, entropy_grad, dense);
  const int64_t R = k.R, H = k.H, V = k.V;
  const Out a = run(b, k.tau, 1);
  const RefHead ref =
      ref_head(b.hid.f64.data(), b.w.f64.data(), b.y.data(), b.mask.data(), b.gl.data(), b.gh.data(), R, H, V, k.tau);
  const char* dn[] = {"f32", "bf16", "f16"};
  char at[128];
  std::snprintf(at, sizeof at, "R=%lld H=%lld V=%lld %s tau=%g gH=%d dense=%d:", (long long)R, (long long)H,
                (long long)V, dn[(int)k.d], k.tau, entropy_grad, dense);
  CHECK(a.bad == 0, "%s %lld non-finite rows", at, (long long)a.bad);
  for (int64_t r = 0; r < R; r++) {
    const double tol = 5e-6 * (1 + std::fabs(ref.lz[r]));
    CHECK(a.lp[r] <= 0.0f && a.ent[r] >= 0.0f, "%s row %lld: l %g H %g", at, (long long)r, a.lp[r], a.ent[r]);
    CHECK(std::fabs(a.lp[r] - ref.lp[r]) <= tol, "%s l r=%lld got %.8g want %.8g", at, (long long)r, a.lp[r],
          ref.lp[r]);
    CHECK(std::fabs(a.lz[r] - ref.lz[r]) <= tol, "%s logZ r=%lld got %.8g want %.8g", at, (long long)r, a.lz[r],
          ref.lz[r]);
    CHECK(std::fabs(a.ent[r] - ref.ent[r]) <= tol, "%s H r=%lld got %.8g want %.8g", at, (long long)r, a.ent[r],
          ref.ent[r]);
    if (b.mask[r] == 0.0f) {
      CHECK(a.lp[r] == 0.0f && a.lz[r] == 0.0f && a.ent[r] == 0.0f, "%s masked row %lld has values", at, (long long)r);
      for (int64_t h = 0; h < H; h++) CHECK(a.dH[r * H + h] == 0.0f, "%s masked row %lld has dH", at, (long long)r);
    }
    if (V == 1) CHECK(a.lp[r] == 0.0f && a.ent[r] == 0.0f, "%s V=1: l %g H %g", at, a.lp[r], a.ent[r]);
  }
  // Gradients: float32 logits put an error of about |x| * 6e-8 on every exponent.
  const double xs = 1.0 + 20.0 * (k.tau < 0.1 ? 1.0 : 0.1);
  const double gH = max_abs(ref.dH), gW = max_abs(ref.dW);
  const double eH = max_err(a.dH, ref.dH), eW = max_err(a.dW, ref.dW);
  if (bf16_products(k.d)) {
    // bfloat16 products: dZ is rounded to bfloat16 (relative 2^-9) where it meets the inputs,
    // so each element may be off by 2^-8 of its sum of |products|, plus float32's share.
    double qH = 0, qW = 0;  // the worst error as a share of its allowance
    for (size_t i = 0; i < ref.dH.size(); i++)
      qH = std::fmax(qH, std::fabs(a.dH[i] - ref.dH[i]) / (0x1p-8 * ref.aH[i] + 5e-6 * xs * gH + 1e-9));
    for (size_t i = 0; i < ref.dW.size(); i++)
      qW = std::fmax(qW, std::fabs(a.dW[i] - ref.dW[i]) / (0x1p-8 * ref.aW[i] + 5e-6 * xs * gW + 1e-9));
    CHECK(qH <= 1.0 && eH == eH, "%s bfloat16 products: dH error %.3g of its allowance (max err %.3g)", at, qH, eH);
    CHECK(qW <= 1.0 && eW == eW, "%s bfloat16 products: dW error %.3g of its allowance (max err %.3g)", at, qW, eW);
  } else {
    CHECK(eH <= 5e-6 * xs * gH + 1e-9, "%s dH max err %.3g (scale %.3g)", at, eH, gH);
    CHECK(eW <= 5e-6 * xs * gW + 1e-9, "%s dW max err %.3g (scale %.3g)", at, eW, gW);
  }
  if (V == 1)
    CHECK(max_abs(std::vector<double>(a.dH.begin(), a.dH.end())) == 0 &&
              max_abs(std::vector<double>(a.dW.begin(), a.dW.end())) == 0,
          "%s V=1: non-zero gradient", at);

  // Central differences of the float64 loss sum gl l + gH H at a few elements of hidden (live and
  // masked rows) and of the weight: an independent check of the gradient's formula.
  std::vector<double> hid = b.hid.f64, w = b.w.f64;
  auto loss = [&] {
    return ref_head(hid.data(), w.data(), b.y.data(), b.mask.data(), b.gl.data(), b.gh.data(), R, H, V, k.tau, false)
        .loss;
  };
  for (int i = 0; i < 4; i++) {
    const bool on_w = i % 2;
    std::vector<double>& x = on_w ? w : hid;
    const std::vector<float>& g = on_w ? a.dW : a.dH;
    const size_t j = rng() % x.size();
    if (!on_w && b.mask[j / H] == 0.0f) continue;  // a masked row: checked to be exactly 0 above
    const double x0 = x[j], e = 1e-6 * std::fmax(1.0, std::fabs(x0));
    x[j] = x0 + e;
    const double up = loss();
    x[j] = x0 - e;
    const double down = loss();
    x[j] = x0;
    const double fd = (up - down) / (2 * e), scale = on_w ? gW : gH;
    const double products = bf16_products(k.d) ? 0x1p-8 * (on_w ? ref.aW : ref.aH)[j] : 0.0;
    CHECK(std::fabs(fd - g[j]) <= 1e-4 * xs * scale + 1e-7 * (1 + std::fabs(ref.loss)) + products,
          "%s finite difference d%s[%zu]: %.8g, kernel %.8g", at, on_w ? "W" : "H", j, fd, g[j]);
  }

  // The same bits at another thread count, and with the entropy recomputed by the backward.
  const Out c = run(b, k.tau, 3);
  CHECK(same_bits(a.lp, c.lp) && same_bits(a.ent, c.ent) && same_bits(a.dH, c.dH) && same_bits(a.dW, c.dW),
        "%s thread count changed the result", at);
  const Out d = run(b, k.tau, 2, false);
  CHECK(same_bits(a.dH, d.dH) && same_bits(a.dW, d.dW), "%s backward without the entropy differs", at);
  // l and logZ do not depend on whether the entropy was asked for.
  std::vector<float> lp(R), lz(R);
  token_logprobs_from_hidden_forward_cpu(lp.data(), lz.data(), nullptr, b.in(k.tau), 2);
  CHECK(same_bits(lp, a.lp) && same_bits(lz, a.lz), "%s l or logZ changed without the entropy", at);
  // gradWeight accumulated into a caller's buffer.
  std::vector<float> w0(V * H);
  for (auto& x : w0) x = (float)(rng() % 17) - 8.0f;
  const Out acc = run(b, k.tau, 2, true, w0.data());
  double ea = 0;
  for (size_t i = 0; i < w0.size(); i++) ea = std::fmax(ea, std::fabs(acc.dW[i] - (w0[i] + a.dW[i])));
  CHECK(ea <= 1e-6 * (8 + gW), "%s accumulate: max err %.3g", at, ea);
  CHECK(same_bits(acc.dH, a.dH), "%s accumulate changed dH", at);
}

// Rows the kernels must keep apart: a NaN hidden state on a live row (l and H NaN, counted, a NaN
// gradient row), a target out of range on a live row (the last line: l NaN, counted), a NaN
// upstream on a live row (its gradient row NaN); every other row finite and as without them.
void check_nonfinite(std::mt19937& rng) {
  const int64_t R = 7, H = 9, V = 40;
  Batch b{R, H, V, {}, {}, {}, {}, {}, {}};
  b.hid = random_logits(rng, R, H, DType::f32, 1.0f);
  b.w = random_logits(rng, V, H, DType::f32, 0.5f);
  b.y.assign(R, 3), b.mask.assign(R, 1.0f), b.gl.assign(R, 0.5f), b.gh.assign(R, -0.25f);
  b.hid.f32[4 * H + 2] = NAN;
  b.y[1] = (int32_t)V;
  b.gl[5] = NAN;
  const Out o = run(b, 1.0f, 2);
  CHECK(o.bad == 2 && std::isnan(o.lp[4]) && std::isnan(o.lz[4]) && std::isnan(o.ent[4]) && std::isnan(o.lp[1]) &&
            std::isfinite(o.ent[1]),
        "non-finite rows: %lld counted, l4 %g H4 %g l1 %g H1 %g", (long long)o.bad, o.lp[4], o.ent[4], o.lp[1],
        o.ent[1]);
  for (int64_t r : {1, 4, 5}) CHECK(std::isnan(o.dH[r * H]), "row %lld: dH %g, want NaN", (long long)r, o.dH[r * H]);
  for (int64_t r : {0, 2, 3, 6})
    CHECK(std::isfinite(o.lp[r]) && o.lp[r] <= 0.0f && std::isfinite(o.dH[r * H]), "row %lld: l %g dH %g", (long long)r,
          o.lp[r], o.dH[r * H]);
}

// No mask (every row live), no upstream for H (gH null), and a row with gl = gH = 0: it costs
// nothing and gets a zero gradient row.
void check_defaults(std::mt19937& rng) {
  const int64_t R = 5, H = 19, V = 77;
  Batch b{R, H, V, {}, {}, {}, {}, {}, {}};
  b.hid = random_logits(rng, R, H, DType::bf16, 1.0f);
  b.w = random_logits(rng, V, H, DType::bf16, 0.4f);
  b.y = {0, 76, 5, 9, 40}, b.gl = {1.0f, -0.5f, 0.0f, 2.0f, 0.125f};
  const HeadInputs in = b.in(0.9f);
  std::vector<float> lp(R), lz(R), dH(R * H, NAN), dW(V * H, NAN);
  token_logprobs_from_hidden_forward_cpu(lp.data(), lz.data(), nullptr, in, 0);
  token_logprobs_from_hidden_backward_cpu(dH.data(), dW.data(), in, lz.data(), nullptr, b.gl.data(), nullptr, false, 0);
  const RefHead ref =
      ref_head(b.hid.f64.data(), b.w.f64.data(), b.y.data(), nullptr, b.gl.data(), nullptr, R, H, V, 0.9);
  // bfloat16 products round dZ to bfloat16: each element may be off by 2^-8 of its sum of |products|
  const double q = bf16_products(DType::bf16) ? 0x1p-8 : 0.0;
  bool grads_ok = true;
  for (size_t i = 0; i < dH.size(); i++)
    grads_ok = grads_ok && std::fabs(dH[i] - ref.dH[i]) <= 1e-4 * max_abs(ref.dH) + q * ref.aH[i];
  for (size_t i = 0; i < dW.size(); i++)
    grads_ok = grads_ok && std::fabs(dW[i] - ref.dW[i]) <= 1e-4 * max_abs(ref.dW) + q * ref.aW[i];
  CHECK(max_err(lp, ref.lp) <= 1e-4 && grads_ok, "no mask, no gH: l %.3g dH %.3g dW %.3g", max_err(lp, ref.lp),
        max_err(dH, ref.dH), max_err(dW, ref.dW));
  for (int64_t h = 0; h < H; h++) CHECK(dH[2 * H + h] == 0.0f, "a row with no upstream has dH");
}

}  // namespace

int main() {
  std::mt19937 rng(2024);
  std::printf("simd=%s threads=%d\n", cpu_simd_level(), cpu_default_threads());
  // {R, H, V}: V = 1 and 2, one row, H and V off every vector width and tile edge, several vocab
  // chunks, several row blocks (forward > 512 rows, backward > 256), a team of threads over
  // several sub-blocks with H past the k block.
  const int64_t shapes[][3] = {{1, 1, 1},     {3, 17, 1},     {1, 7, 2},      {1, 33, 300},  {5, 123, 123},
                               {37, 33, 257}, {64, 130, 513}, {130, 16, 700}, {600, 20, 40}, {300, 260, 520}};
  const float taus[] = {1.0f, 1e-3f, 30.0f, 0.7f};
  int i = 0;
  for (auto& s : shapes)
    for (int d = 0; d < 3; d++, i++)
      check_case(rng, Case{s[0], s[1], s[2], (DType)d, taus[i % 4]}, i % 5 != 2, i % 4 == 1);
  check_nonfinite(rng);
  check_defaults(rng);
  std::printf("%d checks, %d failures\n", checks, failures);
  return failures ? 1 : 0;
}
