// The AVX2 forward sweep's inner loop taken apart on the machine at hand, for bench/NOTES.md
// ("Where the AVX2 sweep's time goes on Zen 3"), with the variants tried in its place kept as
// code so that the comparison can be re-run on another CPU:
//   1. Which vector instructions compete with the FMAs (and which with the adds): a loop of 12
//      independent FMAs (or adds) with 4 independent copies of one other instruction added, its
//      time over the loop without them. 1.33 on the FMA base means the 4 took an FMA pipe for 2
//      cycles: one FMA's slot each.
//   2. The sweep's loop (rows.h's block_sum under AVX2) over one 4 KiB block in L1, one thread, with
//      the term replaced: the variants that compute it another way (each with its max relative
//      error against float64 on d in [-87, 0]) and timing-only cuts whose results are wrong, to
//      show what each part costs. Cycles per vector of 8 logits from a dependent integer-add chain
//      timed in the same round; the variants alternate within each round, the minimum over rounds
//      is kept (a shared machine only ever adds time), and the ratio is the current loop's time
//      over the variant's (above 1: faster).
//   gvpo_bench_avx2_sweep [sweeps [rounds]]     default 100000 sweeps of the block, 25 rounds
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#if defined(__x86_64__)
#pragma GCC target("avx2,fma,f16c")
#define GVPO_VW 8
#define GVPO_ISA sweep_bench
#include "../cpu/rows.h"

using namespace gvpo::sweep_bench;

static double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// ---- 1. Which instructions compete with the FMAs ----

#define FMA12                                                                 \
  "vfmadd231ps %%ymm15,%%ymm14,%%ymm0\n vfmadd231ps %%ymm15,%%ymm14,%%ymm1\n" \
  "vfmadd231ps %%ymm15,%%ymm14,%%ymm2\n vfmadd231ps %%ymm15,%%ymm14,%%ymm3\n" \
  "vfmadd231ps %%ymm15,%%ymm14,%%ymm4\n vfmadd231ps %%ymm15,%%ymm14,%%ymm5\n" \
  "vfmadd231ps %%ymm15,%%ymm14,%%ymm6\n vfmadd231ps %%ymm15,%%ymm14,%%ymm7\n" \
  "vfmadd231ps %%ymm15,%%ymm14,%%ymm8\n vfmadd231ps %%ymm15,%%ymm14,%%ymm9\n" \
  "vfmadd231ps %%ymm15,%%ymm14,%%ymm10\n vfmadd231ps %%ymm15,%%ymm14,%%ymm11\n"
#define ADD12                                                                                    \
  "vaddps %%ymm15,%%ymm0,%%ymm0\n vaddps %%ymm15,%%ymm1,%%ymm1\n vaddps %%ymm15,%%ymm2,%%ymm2\n" \
  "vaddps %%ymm15,%%ymm3,%%ymm3\n vaddps %%ymm15,%%ymm4,%%ymm4\n vaddps %%ymm15,%%ymm5,%%ymm5\n" \
  "vaddps %%ymm15,%%ymm6,%%ymm6\n vaddps %%ymm15,%%ymm7,%%ymm7\n vaddps %%ymm15,%%ymm8,%%ymm8\n" \
  "vaddps %%ymm15,%%ymm9,%%ymm9\n vaddps %%ymm15,%%ymm10,%%ymm10\n vaddps %%ymm15,%%ymm11,%%ymm11\n"
// Four copies of an instruction that write ymm12/13 and read nothing the base loop writes.
#define X4(ins) ins ",%%ymm12\n " ins ",%%ymm13\n " ins ",%%ymm12\n " ins ",%%ymm13\n"
#define CLOBBER \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13"
#define PORT_LOOP(name, base, extra)                                   \
  static double name(long n) {                                         \
    const double t = now_s();                                          \
    for (long i = 0; i < n; i++) asm volatile(base extra ::: CLOBBER); \
    return now_s() - t;                                                \
  }
#define PORT_PAIR(id, ins)            \
  PORT_LOOP(fma_##id, FMA12, X4(ins)) \
  PORT_LOOP(add_##id, ADD12, X4(ins))
PORT_LOOP(fma_base, FMA12, "")
PORT_LOOP(add_base, ADD12, "")
PORT_PAIR(vpermd, "vpermd %%ymm15,%%ymm14")
PORT_PAIR(vpermps, "vpermps %%ymm15,%%ymm14")
PORT_PAIR(vpermilps, "vpermilps %%ymm15,%%ymm14")
PORT_PAIR(vpshufb, "vpshufb %%ymm15,%%ymm14")
PORT_PAIR(vmulps, "vmulps %%ymm15,%%ymm14")
PORT_PAIR(vaddps, "vaddps %%ymm15,%%ymm14")
PORT_PAIR(vmaxps, "vmaxps %%ymm15,%%ymm14")
PORT_PAIR(vcmpps, "vcmpltps %%ymm15,%%ymm14")
PORT_PAIR(vblendvps, "vblendvps %%ymm15,%%ymm15,%%ymm14")
PORT_PAIR(vroundps, "vroundps $1,%%ymm14")
PORT_PAIR(vcvtph2ps, "vcvtph2ps %%xmm14")
PORT_PAIR(vcvtdq2ps, "vcvtdq2ps %%ymm14")
PORT_PAIR(vpslld, "vpslld $20,%%ymm14")
PORT_PAIR(vpsrad, "vpsrad $20,%%ymm14")
PORT_PAIR(vpaddd, "vpaddd %%ymm15,%%ymm14")
PORT_PAIR(vpand, "vpand %%ymm15,%%ymm14")
PORT_PAIR(vpmaxsd, "vpmaxsd %%ymm15,%%ymm14")
PORT_PAIR(vpblendw, "vpblendw $0x55,%%ymm15,%%ymm14")

struct PortCase {
  const char* name;
  double (*fma)(long);
  double (*add)(long);
};
#define PC(id)              \
  {                         \
#id, fma_##id, add_##id \
  }
static const PortCase kPorts[] = {PC(vpermd), PC(vpermps), PC(vpermilps), PC(vpshufb),  PC(vmulps),    PC(vaddps),
                                  PC(vmaxps), PC(vcmpps),  PC(vblendvps), PC(vroundps), PC(vcvtph2ps), PC(vcvtdq2ps),
                                  PC(vpslld), PC(vpsrad),  PC(vpaddd),    PC(vpand),    PC(vpmaxsd),   PC(vpblendw)};

static void ports(int rounds) {
  const long n = 20000000;
  const int K = sizeof(kPorts) / sizeof(kPorts[0]);
  std::vector<double> fb(rounds), ab(rounds), f(K, 1e300), a(K, 1e300);
  for (int r = 0; r < rounds; r++) {
    fb[r] = fma_base(n);
    ab[r] = add_base(n);
    for (int k = 0; k < K; k++) {
      f[k] = std::min(f[k], kPorts[k].fma(n));
      a[k] = std::min(a[k], kPorts[k].add(n));
    }
  }
  const double f0 = *std::min_element(fb.begin(), fb.end()), a0 = *std::min_element(ab.begin(), ab.end());
  std::printf("1. 4 copies added to 12 independent FMAs / adds: time over the loop without them (min of %d)\n", rounds);
  std::printf("   %-10s %9s %9s\n", "", "FMA base", "add base");
  for (int k = 0; k < K; k++) std::printf("   %-10s %9.2f %9.2f\n", kPorts[k].name, f[k] / f0, a[k] / a0);
}

// ---- 2. The sweep's loop with its term replaced ----

// Everything a variant needs of the row's reference m and c = log2(e)/tau.
struct Ref {
  Terms r;
  vf c2, nmc8, nmc;
  double bias8, bias1;  // log2 of the factor by which the fused products' terms exceed 2^((x-m)c)
  Ref(float m, float c) : r(m, c), c2(splat(2.0f * c)), nmc8(splat(-(m * (8.0f * c)))), nmc(splat(-(m * c))) {
    bias8 = ((double)m * (8.0f * c) - (double)(m * (8.0f * c))) / 8.0;
    bias1 = (double)m * c - (double)(m * c);
  }
};

// exp2_eighths (rows.h) with one part changed: the table read by vpermps instead of vpermd, or
// the polynomial by Estrin's scheme; J from an already formed product t8 = d 8c; or no table.
enum class Eighths { vpermps, estrin, from_t8, no_table };
template <Eighths E>
static inline vf eighths(vf d, vf c8) {
  const vf S = splat(12582912.0f + 1016.0f);
  vf k, f;
  if (E == Eighths::from_t8) {  // d is t8 here
    k = d + S;
    f = d - (k - S);
  } else {
    k = mla(d, c8, S);
    f = mla(d, c8, S - k);
  }
  vf p;
  if (E == Eighths::estrin) {
    p = mla(f * f, mla(splat(1.0839106108e-04f), f, splat(3.7540255580e-03f)),
            mla(splat(8.6643405259e-02f), f, splat(1.0f)));
  } else {
    p = mla(splat(1.0839106108e-04f), f, splat(3.7540255580e-03f));
    p = mla(p, f, splat(8.6643405259e-02f));
    p = mla(p, f, splat(1.0f));
  }
  const __m256i tab = _mm256_setr_epi32(0, -289342, -509968, -655657, -719629, -694486, -572163, -343865);
  const __m256i ki = (__m256i)k, e = _mm256_slli_epi32(ki, 20);
  if (E == Eighths::no_table) return p * (vf)e;
  const __m256i t =
      E == Eighths::vpermps ? (__m256i)_mm256_permutevar8x32_ps((__m256)tab, ki) : _mm256_permutevar8x32_epi32(tab, ki);
  return p * (vf)_mm256_add_epi32(e, t);
}

// 2^(d c2 / 2) for d c2 >= -254.4: halves instead of eighths, 2^(j/2) for j = J mod 2 chosen by
// shifts and an and (no table), 2^(f/2) on [-0.5, 0.5] by a degree-4 polynomial (relative error
// 8.5e-8, fitted as the eighths' was). Right for J up to 257.
static inline vf halves(vf d, vf c2) {
  const vf S = splat(12582912.0f + 254.0f);
  const vf k = mla(d, c2, S);
  const vf f = mla(d, c2, S - k);
  vf p = mla(splat(6.0062475250e-04f), f, splat(6.9508290880e-03f));
  p = mla(p, f, splat(6.0056845192e-02f));
  p = mla(p, f, splat(3.4657282015e-01f));
  p = mla(p, f, splat(1.0f));
  const vi ki = (vi)k;
  const vi odd = (ki << 31) >> 31;                              // all ones where J is odd
  return p * (vf)((ki << 22) + (odd & (0x3504F3 - 0x400000)));  // mantissa 1.0 -> sqrt(2)
}

enum class V {
  current,    // rows.h's term(x - m)
  vpermps,    // the table read with vpermps
  estrin,     // the polynomial by Estrin's scheme
  halves,     // halves: no table, one more polynomial FMA
  fused8,     // t8 = x 8c - m 8c in one FMA, then J and f by three adds, eighths
  fused5,     // t = x c - m c in one FMA, then vexp2's rounding by adds and its degree-5 polynomial
  cut_table,  // timing only: the eighths without the table's vpermd (wrong results)
  cut_clamp,  // timing only: no clamp (wrong for d c below -127)
  cut_max,    // timing only: no block max
};
// The variants that compute the term (their error is measured), and all of them (timed).
#define COMPUTING_VARIANTS(X) X(current) X(vpermps) X(estrin) X(halves) X(fused8) X(fused5)
#define ALL_VARIANTS(X) COMPUTING_VARIANTS(X) X(cut_table) X(cut_clamp) X(cut_max)
struct Variant {
  V v;
  const char* name;
};
static const Variant kVariants[] = {
    {V::current, "current (rows.h)"},      {V::vpermps, "vpermps for vpermd"},
    {V::estrin, "Estrin's scheme"},        {V::halves, "halves, degree 4, no table"},
    {V::fused8, "fused product, eighths"}, {V::fused5, "fused product, degree 5, no table"},
    {V::cut_table, "cut: no vpermd"},      {V::cut_clamp, "cut: no clamp"},
    {V::cut_max, "cut: no block max"},
};

template <V v>
static inline vf term_of(vf x, const Ref& q) {
  const vf d = x - q.r.m;
  const vf dc = (vf)_mm256_max_ps((__m256)q.r.dmin, (__m256)d);
  switch (v) {
    case V::vpermps:
      return eighths<Eighths::vpermps>(dc, q.r.c8);
    case V::estrin:
      return eighths<Eighths::estrin>(dc, q.r.c8);
    case V::halves:
      return halves(dc, q.c2);
    case V::fused8:
      return eighths<Eighths::from_t8>(max_keep_nan(mla(x, q.r.c8, q.nmc8), -1016.0f), q.r.c8);
    case V::fused5: {
      const vf t = max_keep_nan(mla(x, q.r.c, q.nmc), -127.0f);
      const vf S = splat(12582912.0f + 127.0f);
      const vf k = t + S;
      return exp2_half(t - (k - S)) * (vf)((vi)k << 23);
    }
    case V::cut_table:
      return eighths<Eighths::no_table>(dc, q.r.c8);
    case V::cut_clamp:
      return exp2_eighths(d, q.r.c8);
    default:
      return term(d, q.r);
  }
}

// block_sum's AVX2 loop (one step of 2 vectors per iteration, two accumulators, the block max)
// with the term replaced.
template <V v, int D>
static vf sweep(const Src<D>& src, int64_t steps, const Ref& q, vf& mx) {
  vf a0 = splat(0.0f), a1 = a0, x0, x1;
  for (int64_t s = 0; s < steps; s++) {
    src.prefetch(s * STEP);
    src.load2(s * STEP, x0, x1);
    if (v != V::cut_max) mx = vmax(vmax(x0, x1), mx);
    a0 += term_of<v>(x0, q);
    a1 += term_of<v>(x1, q);
  }
  return a0 + a1;
}

template <V v, int D>
static double time_sweeps(const void* block, int64_t n, long sweeps, const Ref& q, float& sink) {
  const Src<D> src{block, 0};
  vf mx = splat(-INFINITY), s = splat(0.0f);
  const double t = now_s();
  for (long i = 0; i < sweeps; i++) {
    s += sweep<v, D>(src, n / STEP, q, mx);
    asm volatile("" : "+x"(s));
  }
  const double dt = now_s() - t;
  sink += s[0] + mx[0];
  return dt;
}

template <int D>
static double time_variant(V v, const void* block, int64_t n, long sweeps, const Ref& q, float& sink) {
  switch (v) {
#define CASE(x) \
  case V::x:    \
    return time_sweeps<V::x, D>(block, n, sweeps, q, sink);
    ALL_VARIANTS(CASE)
#undef CASE
  }
  return 0;
}

// Max relative error of a variant's term against 2^((x - m) c) in float64 over x in [lo, 0]
// with m = 0 (so that d = x - m is exact and only the exp's own error shows).
static double term_error(V v, float lo) {
  const float m = 0.0f, c = 1.44269504f;
  const Ref q(m, c);
  double worst = 0;
  float x[W];
  for (int i = 0; i < 1 << 21; i++) {
    for (int j = 0; j < W; j++) x[j] = m + lo * (float)((i * W + j) % 1000003) / 1000003.0f;
    const vf xv = load(x);
    vf t;
    switch (v) {
#define CASE(x)               \
  case V::x:                  \
    t = term_of<V::x>(xv, q); \
    break;
      COMPUTING_VARIANTS(CASE)
#undef CASE
      default:
        return NAN;
    }
    const double bias = v == V::fused8 ? q.bias8 : v == V::fused5 ? q.bias1 : 0.0;
    for (int j = 0; j < W; j++) {
      const double want = std::exp2(((double)x[j] - m) * c + bias);
      if (want < 1e-30) continue;  // near the clamp every form gives 0 or a subnormal
      worst = std::max(worst, std::fabs(t[j] / want - 1.0));
    }
  }
  return worst;
}

static double clock_ghz() {
  const long n = 50000000;
  uint64_t x = 1;
  const double t = now_s();
  for (long i = 0; i < n; i++)
    asm volatile(
        "add $1, %0\n add $1, %0\n add $1, %0\n add $1, %0\n add $1, %0\n"
        "add $1, %0\n add $1, %0\n add $1, %0\n add $1, %0\n add $1, %0"
        : "+r"(x));
  return 10.0 * n / (now_s() - t) / 1e9;
}

static void variants(long sweeps, int rounds) {
  const int64_t n = 1024;  // 4 KiB of float32, one block
  std::vector<float> f(n);
  std::vector<uint16_t> b(n);
  uint64_t st = 12345;
  float m = -INFINITY;
  for (int64_t i = 0; i < n; i++) {  // N(0, 3) logits by Box-Muller
    st = st * 6364136223846793005ull + 1442695040888963407ull;
    const double u1 = ((st >> 11) + 1.0) / 9007199254740993.0;
    st = st * 6364136223846793005ull + 1442695040888963407ull;
    const double u2 = (st >> 11) / 9007199254740992.0;
    float v = (float)(3.0 * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
    uint32_t u;
    std::memcpy(&u, &v, 4);
    b[i] = (uint16_t)((u + 0x8000u) >> 16);
    u = (uint32_t)b[i] << 16;
    std::memcpy(&v, &u, 4);
    f[i] = v;  // the same values in both dtypes
    m = std::max(m, v);
  }
  const Ref q(m, 1.44269504f);
  const int K = sizeof(kVariants) / sizeof(kVariants[0]);
  std::printf("\n2. The sweep's loop over one 4 KiB block in L1, one thread, %ld sweeps, min of %d rounds\n", sweeps,
              rounds);
  std::printf("   %-36s %20s %19s %19s\n", "", "rel err: d>-87  d>-2", "float32 cyc/vec", "bfloat16 cyc/vec");
  float sink = 0;
  std::vector<double> best[2];
  double ghz = 0;
  for (int d = 0; d < 2; d++) {
    best[d].assign(K, 1e300);
    for (int r = 0; r < rounds; r++) {
      ghz = std::max(ghz, clock_ghz());
      for (int k = 0; k < K; k++) {
        const double t = d == 0 ? time_variant<0>(kVariants[k].v, f.data(), n, sweeps, q, sink)
                                : time_variant<1>(kVariants[k].v, b.data(), n, sweeps, q, sink);
        best[d][k] = std::min(best[d][k], t);
      }
    }
  }
  const double vectors = (double)sweeps * n / W;
  for (int k = 0; k < K; k++) {
    const double e = term_error(kVariants[k].v, -87.0f), e2 = term_error(kVariants[k].v, -2.0f);
    char err[48];
    if (e == e)
      std::snprintf(err, sizeof err, "%.2g  %.2g", e, e2);
    else
      std::snprintf(err, sizeof err, "(wrong)");
    std::printf("   %-36s %20s", kVariants[k].name, err);
    for (int d = 0; d < 2; d++)
      std::printf("   %5.2f (x %.2f)", best[d][k] * ghz * 1e9 / vectors, best[d][0] / best[d][k]);
    std::printf("\n");
  }
  std::printf("   clock from a dependent add chain: %.2f GHz; ratios: current time over the variant's\n", ghz);
  volatile float keep = sink;
  (void)keep;
}

int main(int argc, char** argv) {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma") || !__builtin_cpu_supports("f16c")) {
    std::printf("this CPU has no AVX2 with FMA and F16C: nothing to measure\n");
    return 0;
  }
  const long sweeps = argc > 1 ? std::atol(argv[1]) : 100000;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 25;
  ports(rounds < 9 ? rounds : 9);
  variants(sweeps, rounds);
  return 0;
}
#else
#include <cstdio>
int main() {
  std::printf("x86-64 only\n");
  return 0;
}
#endif
