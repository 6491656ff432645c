// gvpo_from_hidden: the fused LM head. The logits z = hidden * weight^T (R x V, R = N*T rows,
// hidden R x H, weight V x H vocab-major, no bias) exist only one tile (row block x vocab chunk)
// at a time; then everything of gvpo_from_logits (kernels.h).
//
//   phase 1  per row block, per vocab chunk c (W_c^T packed once for the block): Z = Hb * W_c^T
//            (GEMM, K = H) a few rows at a time, lse_c = logsumexp of Z/tau per row;
//            logZ = logsumexp_c lse_c, l = min(0, x_target - logZ), S = sum m*l
//   phase 2  per row block: recompute Z, dZ = g/tau * (onehot - exp(Z/tau - logZ)) in the tile,
//            dW_c += dZ^T * Hb (K = rows of the block), and dZ is kept packed for
//            dHb = dZ * W (K = V) once every chunk of the block is done.
// Flops: each of the 4 GEMM passes is 2*R*H*V. Extra memory: phase 1, the packed hidden rows and
// chunk log-sum-exps of one row block (at most V*H floats, or 512 rows); phase 2, the packed dZ
// of one row block (rb x V floats, rb <= H/2, so at most V*H/2); plus per-thread tiles; no
// array of R*V.
// Ownership (no atomics, no order that depends on the thread count): a vocab chunk's lse and dW
// rows belong to one thread per row block and row blocks run in order; dH columns belong to one
// thread; every sum runs over k in one fixed order.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>
#include <string>
#include <vector>

#include "../kernels.h"
#include "gemm.h"
#include "parallel.h"

namespace gvpo {

const GemmKernels& gemm_kernels() {
  static const GemmKernels* k = [] {
    const std::string s = cpu_simd_level();
#if defined(__x86_64__) || defined(__i386__)
    if (s == "avx512") return &avx512::gemm_kernels;
    if (s == "avx2") return &avx2::gemm_kernels;
#endif
    return &generic::gemm_kernels;
  }();
  return *k;
}

double fma_probe_cpu(int64_t iterations, int threads) {
  const GemmKernels& k = gemm_kernels();
  const int t = resolve_threads(threads);
  std::vector<double> flops((size_t)t);
  std::vector<std::thread> pool;
  for (int i = 1; i < t; i++)
    pool.emplace_back([&, i] { flops[i] = k.fma_probe(iterations, (float)i + 1.0f); });
  flops[0] = k.fma_probe(iterations, 1.0f);
  for (auto& th : pool) th.join();
  double sum = 0;
  for (double f : flops) sum += f;
  return sum;
}

namespace {

// float32 scratch aligned to 64 bytes: packed panels are read with whole-vector loads, and a
// load that straddles two cache lines costs two.
class Floats {
 public:
  explicit Floats(size_t n) : p_((float*)std::aligned_alloc(64, (size_t)round_up((int64_t)(n ? n : 1) * 4, 64))) {
    if (!p_) throw std::bad_alloc();
  }
  ~Floats() { std::free(p_); }
  Floats(const Floats&) = delete;
  Floats& operator=(const Floats&) = delete;
  float* data() const { return p_; }

 private:
  float* p_;
};

constexpr int64_t KC = 256;  // k block of the H-deep GEMMs: a B micro-panel KC x NR stays in L1
constexpr int64_t VC = 256;  // vocab chunk: the width of a logits tile

// Every row block packs (transposes) the whole weight for the H-deep GEMM, so blocks are as tall
// as the memory bound allows, and the live rows are split into blocks of equal height (a short
// last block would pay a whole weight pack for a few rows).
//   forward: the packed hidden rows (m x H floats) and the chunk log-sum-exps (m x V/VC doubles)
//            within V*H floats, at least 512 rows;
//   backward: the packed dZ (m x V floats) within V*H/2 floats, so m <= H/2, at least 48 rows.
int64_t block_rows(int64_t live, int64_t cap, int64_t mr) {
  const int64_t blocks = std::max<int64_t>(1, (live + cap - 1) / cap);
  return std::min(cap, round_up((live + blocks - 1) / blocks, mr));  // whole A panels if it can
}
int64_t forward_rows(int64_t live, int64_t H, int64_t V, int64_t mr) {
  const int64_t nc = (V + VC - 1) / VC;
  return block_rows(live, std::max<int64_t>(512, V * H * 4 / (4 * H + 8 * nc)), mr);
}
int64_t backward_rows(int64_t live, int64_t H, int64_t mr) {
  return block_rows(live, std::max<int64_t>(48, H / 2), mr);
}

struct Head {
  const void* hidden;
  const void* weight;
  DType d;
  int64_t H, V;
  float inv_tau;
  const GemmKernels& k;
  Head(const void* h, const void* w, DType d_, int64_t H_, int64_t V_, float tau)
      : hidden(h), weight(w), d(d_), H(H_), V(V_), inv_tau(1.0f / tau), k(gemm_kernels()) {}

  // Hidden rows rows[0..m) packed as GEMM A for every k block (block k0 at offset mpad * k0).
  void pack_hidden(float* Ap, const int32_t* rows, int64_t m) const {
    const int64_t mpad = round_up(m, k.mr);
    for (int64_t k0 = 0; k0 < H; k0 += KC)
      k.pack_a(Ap + mpad * k0, Mat{hidden, d, H, 1, rows}, m, k0, std::min(KC, H - k0));
  }

  // Z (m x vc, leading dimension VC) = logits of the block's rows for vocab v0 .. v0+vc.
  void logits_tile(float* Z, float* Bw, const float* Ah, int64_t m, int64_t v0, int64_t vc) const {
    const int64_t mpad = round_up(m, k.mr);
    const void* w = (const char*)weight + (size_t)(v0 * H) * dtype_bytes(d);
    for (int64_t k0 = 0; k0 < H; k0 += KC) {
      const int64_t kc = std::min(KC, H - k0);
      k.pack_b(Bw, Mat{w, d, 1, H, nullptr}, k0, kc, vc);  // B(h, v) = W[v, h]
      k.gemm(Z, VC, Ah + mpad * k0, Bw, m, vc, kc, k0 > 0);
    }
  }

  size_t bw_size() const { return (size_t)(KC * round_up(VC, k.nr)); }
};

int64_t chunks(int64_t V) { return (V + VC - 1) / VC; }

// logZ and x_target = z[y]/tau for the rows rows[0..m). A thread packs the weight of its vocab
// chunk (all of H: B(h, v) = W[v, h], H x VC floats, 512 KiB at H = 512, in L2) once and runs
// every row of the block past it, MS rows at a time (a Z tile of MS x VC stays in L2 for the
// log-sum-exp); the hidden rows are packed once per block.
void forward_block(const Head& h, float* logZ, float* x_target, const int32_t* rows,
                   const int32_t* targets, int64_t m, int threads) {
  const GemmKernels& k = h.k;
  const int64_t mpad = round_up(m, k.mr), H = h.H, nc = chunks(h.V), ms = 16 * k.mr;
  Floats Ah((size_t)(mpad * H));
  h.pack_hidden(Ah.data(), rows, m);
  std::vector<double> lse((size_t)(nc * m));
  parallel_rows(nc, m * VC * H / 64, threads, [&](int64_t c0, int64_t c1) {
    const int64_t bw = round_up(VC, k.nr);
    Floats Bw((size_t)(H * bw)), Z((size_t)(ms * VC));
    for (int64_t c = c0; c < c1; c++) {
      const int64_t v0 = c * VC, vc = std::min(VC, h.V - v0);
      const void* w = (const char*)h.weight + (size_t)(v0 * H) * dtype_bytes(h.d);
      for (int64_t k0 = 0; k0 < H; k0 += KC)  // k block k0 at offset k0 * bw
        k.pack_b(Bw.data() + k0 * bw, Mat{w, h.d, 1, H, nullptr}, k0, std::min(KC, H - k0), vc);
      for (int64_t s = 0; s < m; s += ms) {  // rows s .. s+n: A panels at offset s * kc per k block
        const int64_t n = std::min(ms, m - s);
        for (int64_t k0 = 0; k0 < H; k0 += KC)
          k.gemm(Z.data(), VC, Ah.data() + mpad * k0 + s * std::min(KC, H - k0), Bw.data() + k0 * bw,
                 n, vc, std::min(KC, H - k0), k0 > 0);
        k.tile_logsumexp(lse.data() + c * m + s, Z.data(), VC, n, vc, h.inv_tau);
        for (int64_t i = 0; i < n; i++) {
          const int64_t y = targets[rows[s + i]] - v0;
          if (y >= 0 && y < vc) x_target[s + i] = Z.data()[i * VC + y] * h.inv_tau;
        }
      }
    }
  });
  for (int64_t i = 0; i < m; i++) {  // chunk order: the same whatever the thread count
    double mx = -INFINITY;
    bool nan = false;  // a NaN logit: logZ is NaN, as in the logits ops (max() alone would skip it)
    for (int64_t c = 0; c < nc; c++) {
      mx = lse[c * m + i] > mx ? lse[c * m + i] : mx;
      nan = nan || std::isnan(lse[c * m + i]);
    }
    double s = 0;
    for (int64_t c = 0; c < nc; c++) s += std::exp(lse[c * m + i] - mx);
    logZ[i] = nan ? NAN : (float)(mx > -INFINITY ? mx + std::log(s) : mx);
  }
}

// dH rows (into dH, m x H) and dW += for the rows rows[0..m) with coefficients coef = g/tau.
// The first block (first = true) writes dW instead of adding to it: no pass to zero it first.
void backward_block(const Head& h, float* dW, float* dH, const int32_t* rows, const float* logZ,
                    const float* coef, const int32_t* targets, int64_t m, bool first,
                    int threads) {
  const GemmKernels& k = h.k;
  const int64_t mpad = round_up(m, k.mr), H = h.H, V = h.V, nc = chunks(V);
  Floats Ah((size_t)(mpad * H));
  h.pack_hidden(Ah.data(), rows, m);
  Floats Bh((size_t)(m * round_up(H, k.nr)));
  k.pack_b(Bh.data(), Mat{h.hidden, h.d, H, 1, rows}, 0, m, H);  // B(r, h) = hidden[row r, h]
  Floats Adz((size_t)(mpad * V));  // dZ as GEMM A, chunk c at offset mpad * c*VC
  parallel_rows(nc, m * VC * H / 32, threads, [&](int64_t c0, int64_t c1) {
    Floats Bw(h.bw_size()), Z((size_t)(m * VC)), AdzT((size_t)(round_up(VC, k.mr) * m));
    std::vector<int32_t> y((size_t)m);
    for (int64_t c = c0; c < c1; c++) {
      const int64_t v0 = c * VC, vc = std::min(VC, V - v0);
      h.logits_tile(Z.data(), Bw.data(), Ah.data(), m, v0, vc);
      for (int64_t i = 0; i < m; i++) y[i] = (int32_t)(targets[rows[i]] - v0);
      k.tile_softmax_grad(Z.data(), VC, m, vc, h.inv_tau, logZ, coef, y.data());
      k.pack_a(Adz.data() + mpad * v0, Mat{Z.data(), DType::f32, VC, 1, nullptr}, m, 0, vc);
      k.pack_a(AdzT.data(), Mat{Z.data(), DType::f32, 1, VC, nullptr}, vc, 0, m);
      k.gemm(dW + v0 * H, H, AdzT.data(), Bh.data(), vc, H, m, !first);
    }
  });
  const int64_t panels = (H + k.nr - 1) / k.nr;
  parallel_rows(panels, m * V * k.nr / 32, threads, [&](int64_t p0, int64_t p1) {
    const int64_t h0 = p0 * k.nr, hn = std::min(H, p1 * k.nr) - h0;
    Floats Bw((size_t)(VC * round_up(hn, k.nr)));
    const void* w = (const char*)h.weight + (size_t)h0 * dtype_bytes(h.d);
    for (int64_t c = 0; c < nc; c++) {
      const int64_t v0 = c * VC, vc = std::min(VC, V - v0);
      k.pack_b(Bw.data(), Mat{w, h.d, H, 1, nullptr}, v0, vc, hn);  // B(v, h) = W[v, h0 + h]
      k.gemm(dH + h0, H, Adz.data() + mpad * v0, Bw.data(), m, hn, vc, c > 0);
    }
  });
}

}  // namespace

std::vector<int32_t> gvpo_from_hidden_forward_rows(const GvpoHiddenBatch& in) {
  std::vector<int32_t> idx;
  for (int64_t r = 0; r < in.sequences * in.tokens; r++)
    if (in.mask[r] != 0.0f) idx.push_back((int32_t)r);
  return idx;
}

void gvpo_from_hidden_store_logprob(GvpoFromHiddenOut& out, int32_t row, float l, float logZ, int64_t vocab) {
  out.logZ[row] = logZ;
  if (!std::isfinite(l)) {  // a bad target, a non-finite logZ or a -inf target logit
    out.token_logprobs[row] = NAN;
    out.nonfinite_rows++;
  } else {  // never positive, whatever the rounding
    out.token_logprobs[row] = vocab == 1 || l > 0.0f ? 0.0f : l;
  }
}

HeadRows gvpo_from_hidden_backward_rows(const GvpoHiddenBatch& in, const float* logZ, const double* grad_seq) {
  HeadRows h;
  for (int64_t r = 0; r < in.sequences * in.tokens && in.vocab > 1; r++) {
    const float w = in.mask[r] == 0.0f ? 0.0f : (float)(in.mask[r] * grad_seq[r / in.tokens]);
    if (w == 0.0f) continue;
    const bool bad_target = in.targets[r] < 0 || in.targets[r] >= in.vocab;
    h.idx.push_back((int32_t)r);
    h.weight.push_back(w);
    h.logZ.push_back(bad_target ? NAN : logZ[r]);
  }
  return h;
}

namespace {

// Phase 1 over the live rows: logZ, l = min(0, x_target - logZ) (0 for V = 1), S and Sref.
void forward(GvpoFromHiddenOut& out, const GvpoHiddenBatch& in, int threads) {
  const int64_t R = in.sequences * in.tokens, V = in.vocab;
  const Head h(in.hidden, in.weight, in.dtype, in.hidden_size, V, in.temperature);
  for (int64_t r = 0; r < R; r++) out.token_logprobs[r] = out.logZ[r] = 0.0f;  // masked rows
  const std::vector<int32_t> idx = gvpo_from_hidden_forward_rows(in);
  const int64_t live = (int64_t)idx.size();
  const int64_t rb = forward_rows(live, in.hidden_size, V, h.k.mr);
  std::vector<float> lz((size_t)std::min(live, rb)), xt(lz.size());
  out.nonfinite_rows = 0;
  for (int64_t b = 0; b < live; b += rb) {
    const int64_t m = std::min(rb, live - b);
    std::fill(xt.begin(), xt.end(), NAN);  // stays NaN for a target outside [0, V)
    forward_block(h, lz.data(), xt.data(), idx.data() + b, in.targets, m, threads);
    for (int64_t i = 0; i < m; i++) gvpo_from_hidden_store_logprob(out, idx[b + i], xt[i] - lz[i], lz[i], V);
  }
  gvpo_from_hidden_sequence_sums(out, in);
}

}  // namespace

void gvpo_from_hidden_sequence_sums(GvpoFromHiddenOut& out, const GvpoHiddenBatch& in) {
  sequence_logprobs_cpu(out.seq, out.token_logprobs, in.mask, in.sequences, in.tokens);
  if (in.ref_token_logprobs)
    sequence_logprobs_f64_cpu(out.ref_seq, in.ref_token_logprobs, in.mask, in.sequences, in.tokens);
  else if (in.ref_seq)
    std::memcpy(out.ref_seq, in.ref_seq, (size_t)in.sequences * sizeof(double));
  else  // no reference given: pi_theta' is the current policy (on-policy, first epoch)
    std::memcpy(out.ref_seq, out.seq, (size_t)in.sequences * sizeof(double));
}

void gvpo_from_hidden_forward_cpu(GvpoFromHiddenOut& out, const GvpoHiddenBatch& in, int threads) {
  forward(out, in, threads);
}

// Phase 2 over the rows with a non-zero weight w = m * dL/dS[n(r)], in blocks of rb rows.
void gvpo_from_hidden_backward_cpu(float* grad_hidden, float* grad_weight, const float* logZ,
                                   const double* grad_seq, const GvpoHiddenBatch& in,
                                   int threads) {
  const int64_t R = in.sequences * in.tokens, H = in.hidden_size, V = in.vocab;
  const HeadRows rows = gvpo_from_hidden_backward_rows(in, logZ, grad_seq);
  const std::vector<int32_t>& idx = rows.idx;
  const int64_t live = (int64_t)idx.size();
  // Zeros where no block writes: the rows of dH that are not live, all of dW when none is.
  for (int64_t r = 0, i = 0; r < R; r++) {
    if (i < live && idx[i] == r) i++;
    else std::memset(grad_hidden + r * H, 0, (size_t)H * sizeof(float));
  }
  if (live == 0) {
    std::memset(grad_weight, 0, (size_t)(V * H) * sizeof(float));
    return;
  }
  const Head h(in.hidden, in.weight, in.dtype, H, V, in.temperature);
  const int64_t rb = backward_rows(live, H, h.k.mr);
  const int64_t n = std::min(live, rb);
  std::vector<float> coef((size_t)n), dH((size_t)(n * H));
  for (int64_t b = 0; b < live; b += rb) {
    const int64_t m = std::min(rb, live - b);
    for (int64_t i = 0; i < m; i++) coef[i] = rows.weight[b + i] * h.inv_tau;
    backward_block(h, grad_weight, dH.data(), idx.data() + b, rows.logZ.data() + b, coef.data(), in.targets,
                   m, b == 0, threads);
    for (int64_t i = 0; i < m; i++)
      std::memcpy(grad_hidden + (size_t)idx[b + i] * H, dH.data() + i * H, (size_t)H * sizeof(float));
  }
}

GvpoTerms gvpo_from_hidden_cpu(GvpoFromHiddenOut& out, const GvpoHiddenBatch& in, int threads) {
  forward(out, in, threads);
  GvpoTerms t = gvpo_loss_cpu(out.grad_seq, out.residuals, out.seq, out.ref_seq, in.rewards,
                              in.offsets, in.groups, in.beta, in.mean_reduction);
  gvpo_from_hidden_backward_cpu(out.grad_hidden, out.grad_weight, out.logZ, out.grad_seq, in,
                                threads);
  return t;
}

}  // namespace gvpo
