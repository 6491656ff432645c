// token_logprobs_from_hidden: the fused LM head, the one engine behind tokenLogprobsFromHidden and
// gvpoFromHidden (kernels.h). The logits z = hidden * weight^T (R x V, hidden R x H, weight V x H
// vocab-major, no bias) exist only one tile (row block x vocab chunk) at a time. With x = z/tau:
//
//   forward   per row block, per vocab chunk c (W_c^T packed once for the block): Z = Hb * W_c^T
//             (GEMM, K = H) a few rows at a time; per row lse_c = logsumexp of x over the chunk
//             and, for the entropy, h_c = the entropy of softmax(x) within the chunk; then
//             logZ = logsumexp_c lse_c, l = min(0, x_y - logZ) and
//             H = sum_c P_c (logZ - lse_c + h_c), P_c = exp(lse_c - logZ) (every term >= 0)
//   backward  per row block, per vocab chunk (every thread on the chunk): recompute Z,
//             dZ = (gl ([v == y] - p) - gH p (log p + H)) / tau in the tile, dW_c (=|+=) dZ^T Hb
//             (K = rows of the block), dHb += dZ W_c (K = the chunk).
// Flops: each of the GEMM passes is 2*R*H*V (forward 1, backward 3). Extra memory: forward, the
// packed hidden rows and chunk statistics of one row block (at most V*H floats, or 512 rows);
// backward, the packed hidden rows, two chunks' dZ and the block's dH (at most V*H floats, or SB
// rows); plus per-thread tiles; no array of R*V.
// Ownership (no atomic adds, no order that depends on the thread count): in the forward a vocab
// chunk's statistics belong to the thread that takes the chunk; in the backward one thread at a
// time owns a sub-block of the block's rows (its Z, dZ, dH) or a group of dW_c rows; row blocks
// and chunks run in order; every sum runs over k in one fixed order. Threads take work from
// atomic counters, so which thread does what varies, never what is computed.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "../kernels.h"
#include "gemm.h"
#include "parallel.h"
#include "pow2.h"

namespace gvpo {

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

constexpr int64_t KC = 256;  // k block of the H-deep GEMMs
constexpr int64_t SB = 256;  // rows of a backward sub-block: the K of one dW_c product
constexpr int64_t VC = 256;  // vocab chunk: the width of a logits tile

int64_t chunks(int64_t V) { return (V + VC - 1) / VC; }

// Every row block packs (transposes) the whole weight for the H-deep GEMM, so blocks are as tall
// as the memory bound allows, and the live rows are split into blocks of equal height (a short
// last block would pay a whole weight pack for a few rows).
//   forward: the packed hidden rows (m x H floats) and the chunk statistics (m x V/VC doubles,
//            twice with the entropy) within V*H floats, at least 512 rows;
//   backward: the packed hidden rows, dZ of two chunks and dH (m * (3H + 4 VC) floats) within
//            V*H floats, at least SB rows.
int64_t block_rows(int64_t live, int64_t cap, int64_t mr) {
  const int64_t blocks = std::max<int64_t>(1, (live + cap - 1) / cap);
  return std::min(cap, round_up((live + blocks - 1) / blocks, mr));  // whole A panels if it can
}
int64_t forward_rows(int64_t live, int64_t H, int64_t V, int64_t mr, bool entropy) {
  return block_rows(live, std::max<int64_t>(512, V * H * 4 / (4 * H + (entropy ? 16 : 8) * chunks(V))), mr);
}
int64_t backward_rows(int64_t live, int64_t H, int64_t V, int64_t mr) {
  return block_rows(live, std::max<int64_t>(SB, V * H / (3 * H + 4 * VC)), mr);
}

// The head's operands and how its tiles are made: packing hidden rows and weight chunks for the
// GEMM, and the logits tile of some rows x one vocab chunk.
struct HeadTiles {
  const void* hidden;
  const void* weight;
  DType d;
  int64_t H, V;
  float inv_tau;
  const GemmKernels& k;
  explicit HeadTiles(const HeadInputs& in)
      : hidden(in.hidden),
        weight(in.weight),
        d(in.dtype),
        H(in.hidden_size),
        V(in.vocab),
        inv_tau(1.0f / in.temperature),
        k(gemm_kernels(in.dtype)) {}

  // Hidden rows rows[r0 .. r0+n) (r0 a whole number of panels) packed as the A of an H-deep GEMM
  // over m rows: k block k0 at offset mpad * k0, the rows' panels at r0 * kc within it.
  void pack_hidden(float* Ah, int64_t mpad, const int32_t* rows, int64_t r0, int64_t n) const {
    for (int64_t k0 = 0; k0 < H; k0 += KC) {
      const int64_t kc = std::min(KC, H - k0);
      k.pack_a(Ah + mpad * k0 + r0 * kc, Mat{hidden, d, H, 1, rows + r0}, n, k0, kc);
    }
  }

  // Z (n x vc, leading dimension VC) = rows r0 .. r0+n of the packed hidden rows (pack_hidden)
  // times the packed W_c^T (pack_weight_t): one vocab chunk's logits for those rows.
  void logits(float* z, const float* Ah, int64_t mpad, const float* wt, int64_t vcols, int64_t r0, int64_t n,
              int64_t vc) const {
    for (int64_t k0 = 0; k0 < H; k0 += KC) {
      const int64_t kc = std::min(KC, H - k0);
      k.gemm(z, VC, Ah + mpad * k0 + r0 * kc, wt + k0 * vcols, n, vc, kc, k0 > 0);
    }
  }

  // Panels q0 .. q1 of W_c^T, B(h, v) = W[v0 + v, h] for v < vc, as the B of an H-deep GEMM:
  // k block k0 at offset k0 * vcols, panel q at q * nr * kc within it.
  void pack_weight_t(float* wt, int64_t vcols, int64_t v0, int64_t vc, int64_t q0, int64_t q1) const {
    for (int64_t q = q0; q < q1 && q * k.nr < vc; q++) {
      const void* w = (const char*)weight + (size_t)((v0 + q * k.nr) * H) * dtype_bytes(d);
      for (int64_t k0 = 0; k0 < H; k0 += KC) {
        const int64_t kc = std::min(KC, H - k0);
        k.pack_b(wt + k0 * vcols + q * k.nr * kc, Mat{w, d, 1, H, nullptr}, k0, kc,
                 std::min<int64_t>(k.nr, vc - q * k.nr));
      }
    }
  }
};

// Threads for a pass of `macs` multiply-adds: one per 2^20 at least (a thread start costs
// microseconds), at most `items` (the pieces of work there are to share) and the request.
int team_size(int64_t macs, int64_t items, int threads) {
  return (int)std::max<int64_t>(1, std::min({(int64_t)resolve_threads(threads), macs >> 20, items}));
}

// A row's log-normalizer as the forward keeps it, for rows i of a block: logZ = max / tau + lse
// (both parts in double), max the row's largest logit (-inf for a row of -inf, NaN with a NaN)
// and lse = log sum_v exp((z_v - max) / tau) (-inf for a row of -inf, NaN with a NaN).
struct RowSplit {
  double* logZ;
  float* max;
  double* lse;
};

// The split, z_target = z[y] and (ent not null) H for the rows rows[0..m). A thread packs the
// weight of its vocab chunk (all of H: B(h, v) = W[v, h], H x VC floats, 512 KiB at H = 512, in
// L2) once and runs every row of the block past it, MS rows at a time (a Z tile of MS x VC stays
// in L2 for the log-sum-exp); the hidden rows are packed once per block.
void forward_block(const HeadTiles& h, RowSplit out, float* z_target, double* ent, const int32_t* rows,
                   const int32_t* targets, int64_t m, int threads) {
  const GemmKernels& k = h.k;
  const int64_t mpad = round_up(m, k.mr), H = h.H, nc = chunks(h.V), ms = round_up(96, k.mr);
  const int64_t vcols = round_up(VC, k.nr), panels = mpad / k.mr;
  const int t = team_size(m * h.V * H, std::min(nc, panels), threads);
  Floats Ah((size_t)(mpad * H));  // A: k block k0 at offset mpad * k0
  std::vector<double> lse((size_t)(nc * m)), hc(ent ? lse.size() : 0);
  std::vector<float> cmax(lse.size());                               // each chunk's max and lse, c * m + i
  std::vector<std::unique_ptr<Floats>> Bw((size_t)t), Z((size_t)t);  // each thread's W^T, tile
  for (int i = 0; i < t; i++) {
    Bw[(size_t)i] = std::make_unique<Floats>((size_t)(H * vcols));
    Z[(size_t)i] = std::make_unique<Floats>((size_t)(ms * VC));
  }
  std::atomic<int64_t> next{0};
  parallel_team(t, [&](int i, int t, Barrier& barrier) {
    const int64_t r0 = part_begin(panels, i, t) * k.mr, r1 = std::min(m, part_begin(panels, i + 1, t) * k.mr);
    if (r1 > r0) h.pack_hidden(Ah.data(), mpad, rows, r0, r1 - r0);
    barrier.wait();
    float *wt = Bw[(size_t)i]->data(), *z = Z[(size_t)i]->data();
    for (int64_t c; (c = next++) < nc;) {  // chunks as threads come free
      const int64_t v0 = c * VC, vc = std::min(VC, h.V - v0);
      h.pack_weight_t(wt, vcols, v0, vc, 0, vcols / k.nr);
      for (int64_t s = 0; s < m; s += ms) {  // rows s .. s+n
        const int64_t n = std::min(ms, m - s);
        h.logits(z, Ah.data(), mpad, wt, vcols, s, n, vc);
        k.tile_logsumexp(cmax.data() + c * m + s, lse.data() + c * m + s, ent ? hc.data() + c * m + s : nullptr, z, VC,
                         n, vc, h.inv_tau);
        for (int64_t r = 0; r < n; r++) {
          const int64_t y = targets[rows[s + r]] - v0;
          if (y >= 0 && y < vc) z_target[s + r] = z[r * VC + y];
        }
      }
    }
  });
  for (int64_t i = 0; i < m; i++) {  // chunk order: the same whatever the thread count
    float mx = -INFINITY;
    bool nan = false;  // a NaN logit: logZ is NaN, as in the logits ops (max() alone would skip it)
    for (int64_t c = 0; c < nc; c++) {
      mx = cmax[c * m + i] > mx ? cmax[c * m + i] : mx;
      nan = nan || std::isnan(lse[c * m + i]);
    }
    // a[c]: chunk c's log-mass against the row's max, ((max_c - max) * inv_tau + lse_c <= lse_c)
    const auto a = [&](int64_t c) { return ((double)cmax[c * m + i] - mx) * h.inv_tau + lse[c * m + i]; };
    // ls = log(sum_c exp(a[c])) as log1p(expm1(a[c*]) + the others), c* the first chunk that holds
    // the max (a[c*] = lse_c* >= 0): the mass outside the max keeps its relative precision.
    double s = 0;
    int64_t cm = -1;
    for (int64_t c = 0; c < nc && mx > -INFINITY; c++) {
      if (cm < 0 && cmax[c * m + i] == mx)
        cm = c, s += std::expm1(a(c));
      else if (cmax[c * m + i] > -INFINITY)
        s += std::exp(a(c));
    }
    const double ls = nan ? NAN : mx > -INFINITY ? std::log1p(s) : (double)mx;  // a row of -inf: -inf
    out.max[i] = nan ? NAN : mx;
    out.lse[i] = ls;
    out.logZ[i] = nan || !(mx > -INFINITY) ? ls : (double)mx * h.inv_tau + ls;
    if (!ent) continue;
    double e = 0;  // entropy across the chunks plus the chunks' own, weighted by their mass
    for (int64_t c = 0; c < nc && mx > -INFINITY; c++)
      if (cmax[c * m + i] > -INFINITY) e += std::exp(a(c) - ls) * (ls - a(c) + hc[c * m + i]);
    ent[i] = std::isfinite(out.logZ[i]) ? e : NAN;
  }
}

// dH rows (into dH, m x H) and dW += for the rows rows[0..m) with coefficients coef = gl/tau
// and (coef_h not null) coef_h = gH/tau with the rows' entropies ent. With first = true the
// block writes dW instead of adding to it: no pass to zero it first.
//
// One vocab chunk at a time, every thread on it, so the chunk's weight is read from memory once
// per block and dW_c is written once per block:
//   1. pack the chunk's W^T (B of the recompute) and W (B of dH), split by panels;
//   2. per sub-block of the block's rows (fixed heights, so the sums do not depend on the
//      thread count): Z = Hs W_c^T, dZ in the tile, dZ packed for dH (A, K = vc) and dZ^T
//      packed for dW (A, one k block per sub-block);
//   3. dW_c (=|+=) the sum over sub-blocks, in order, of dZ_s^T Hs, in a few groups of rows;
//      dHs += dZ_s W_c per sub-block.
// Steps 2 and 3 are lists of items that threads take as they come free (the cores of a shared
// machine do not run at one speed); which thread runs an item does not change its arithmetic.
// Two barriers per chunk: the chunk's buffers are double (chunk c in set c % 2), so step 1 of
// chunk c+1 may start while another thread finishes step 3 of chunk c.
// Memory: the packed hidden rows twice (A of the recompute, B of dW), two chunks' dZ and dZ^T
// and the block's dH: about m * (3H + 4 VC) floats, which backward_rows bounds.
// dw_shift (null: none): rows whose coefficients run at a smaller scale than the block's dW
// (their own, so that their dH keeps its precision) enter dW's product scaled by 2^-dw_shift[r].
void backward_block(const HeadTiles& h, float* dW, float* dH, const int32_t* rows, const float* shift,
                    const float* logZ, const float* coef, const float* coef_h, const float* ent, const int32_t* targets,
                    int64_t m, bool first, int threads, const int* dw_shift) {
  const GemmKernels& k = h.k;
  const int64_t mr = k.mr, nr = k.nr, H = h.H, V = h.V, nc = chunks(V);
  const int64_t mpad = round_up(m, mr), hpad = round_up(H, nr), vrows = round_up(VC, mr);
  const int64_t vcols = round_up(VC, nr);
  // Sub-blocks of at most SB rows, equal heights in whole A panels (s-th starts at s * sb); up
  // to 4 of them in a short block, so that its threads have dZ tiles to share. Their number
  // depends on m alone: it sets how dW's sums are split.
  const int64_t want = std::max((m + SB - 1) / SB, std::min<int64_t>(4, m / (2 * mr)));
  const int64_t sb = round_up((m + want - 1) / want, mr), ns = (m + sb - 1) / sb;
  const int64_t vpanels = (std::min(VC, V) + mr - 1) / mr;
  const int t = team_size(m * V * H, vpanels, threads);
  // dW_c in groups of vocab panels: each group streams all of the packed hidden rows once, so
  // few groups; two per thread let a fast thread take over from a slow one.
  const int64_t groups = std::min<int64_t>(2 * t, vpanels);
  Floats Ah((size_t)(mpad * H));     // A of the recompute: k block k0 at offset mpad * k0
  Floats Bh((size_t)(mpad * hpad));  // B of dW: sub-block s (K = its rows) at offset s*sb * hpad
  Floats WT[2] = {Floats((size_t)(H * vcols)), Floats((size_t)(H * vcols))};         // B of the recompute
  Floats Wc[2] = {Floats((size_t)(VC * hpad)), Floats((size_t)(VC * hpad))};         // B of dH (K = vc)
  Floats DZ[2] = {Floats((size_t)(mpad * VC)), Floats((size_t)(mpad * VC))};         // A of dH, K = vc
  Floats DZT[2] = {Floats((size_t)(vrows * mpad)), Floats((size_t)(vrows * mpad))};  // A of dW
  std::vector<std::unique_ptr<Floats>> Z((size_t)t);                                 // each thread's logits tile
  for (auto& z : Z) z = std::make_unique<Floats>((size_t)(sb * VC));
  std::vector<int32_t> y((size_t)m);
  std::unique_ptr<std::atomic<int64_t>[]> next(new std::atomic<int64_t>[2 * nc]);  // steps 2, 3
  for (int64_t i = 0; i < 2 * nc; i++) next[i] = 0;
  parallel_team(t, [&](int i, int t, Barrier& barrier) {
    for (int64_t s = part_begin(ns, i, t); s < part_begin(ns, i + 1, t); s++) {
      const int64_t r0 = s * sb, n = std::min(sb, m - r0);
      h.pack_hidden(Ah.data(), mpad, rows, r0, n);
      k.pack_b(Bh.data() + r0 * hpad, Mat{h.hidden, h.d, H, 1, rows}, r0, n, H);  // B(r, h)
    }
    float* z = Z[(size_t)i]->data();
    const int64_t wp = (VC + nr - 1) / nr, hp = hpad / nr;  // panels of W^T and of W
    for (int64_t c = 0; c < nc; c++) {
      const int64_t v0 = c * VC, vc = std::min(VC, V - v0);
      const char* w = (const char*)h.weight + (size_t)(v0 * H) * dtype_bytes(h.d);
      float *wt = WT[c % 2].data(), *wc = Wc[c % 2].data(), *dz = DZ[c % 2].data(), *dzt = DZT[c % 2].data();
      // 1. This thread's panels of W_c^T (B(h, v) = W[v0 + v, h]) and of W_c (B(v, h)).
      h.pack_weight_t(wt, vcols, v0, vc, part_begin(wp, i, t), part_begin(wp, i + 1, t));
      for (int64_t q = part_begin(hp, i, t), q1 = part_begin(hp, i + 1, t); q < q1; q++)
        k.pack_b(wc + q * nr * vc, Mat{w + (size_t)(q * nr) * dtype_bytes(h.d), h.d, H, 1, nullptr}, 0, vc,
                 std::min(nr, H - q * nr));
      barrier.wait();
      // 2. dZ of the sub-blocks.
      for (int64_t s; (s = next[2 * c]++) < ns;) {
        const int64_t r0 = s * sb, n = std::min(sb, m - r0);
        h.logits(z, Ah.data(), mpad, wt, vcols, r0, n, vc);
        for (int64_t r = r0; r < r0 + n; r++) y[r] = (int32_t)(targets[rows[r]] - v0);
        k.tile_softmax_grad(z, VC, n, vc, h.inv_tau, shift + r0, logZ + r0, coef + r0, coef_h ? coef_h + r0 : nullptr,
                            ent ? ent + r0 : nullptr, y.data() + r0);
        k.pack_a(dz + r0 * vc, Mat{z, DType::f32, VC, 1, nullptr}, n, 0, vc);
        for (int64_t r = r0; dw_shift && r < r0 + n; r++)
          if (dw_shift[r])
            for (int64_t v = 0; v < vc; v++) z[(r - r0) * VC + v] = std::ldexp(z[(r - r0) * VC + v], -dw_shift[r]);
        k.pack_a(dzt + vrows * r0, Mat{z, DType::f32, 1, VC, nullptr}, vc, 0, n);
      }
      barrier.wait();
      // 3. dW_c by groups of vocab panels, over every sub-block in order; dH by sub-blocks.
      const int64_t vp = (vc + mr - 1) / mr;
      for (int64_t j; (j = next[2 * c + 1]++) < groups + ns;) {
        if (j < groups) {
          const int64_t p0 = part_begin(vp, (int)j, (int)groups), p1 = part_begin(vp, (int)j + 1, (int)groups);
          for (int64_t s = 0; s < ns && p1 > p0; s++) {
            const int64_t r0 = s * sb, n = std::min(sb, m - r0);
            k.gemm(dW + (v0 + p0 * mr) * H, H, dzt + vrows * r0 + p0 * mr * n, Bh.data() + r0 * hpad,
                   std::min(vc, p1 * mr) - p0 * mr, H, n, !first || s > 0);
          }
        } else {
          const int64_t r0 = (j - groups) * sb, n = std::min(sb, m - r0);
          k.gemm(dH + r0 * H, H, dz + r0 * vc, wc, n, H, vc, c > 0);
        }
      }
    }
  });
}

// The forward over the rows idx (in blocks): each row's split, z_target (NaN for a target outside
// [0, V)) and, with ent, H, each indexed like idx.
void forward_rows_of(const HeadTiles& h, const std::vector<int32_t>& idx, const int32_t* targets, RowSplit out,
                     float* zt, double* ent, int threads) {
  const int64_t live = (int64_t)idx.size();
  const int64_t rb = forward_rows(live, h.H, h.V, h.k.mr, ent != nullptr);
  std::fill(zt, zt + live, NAN);
  for (int64_t b = 0; b < live; b += rb)
    forward_block(h, {out.logZ + b, out.max + b, out.lse + b}, zt + b, ent ? ent + b : nullptr, idx.data() + b, targets,
                  std::min(rb, live - b), threads);
}

// H as stored: in [0, log V] whatever the rounding, 0 when V = 1, NaN where logZ is not finite.
float entropy_value(double h, float lz, int64_t vocab) {
  if (!std::isfinite(lz)) return NAN;
  if (vocab == 1) return 0.0f;
  // H <= log V in float32 too: the bound rounded down, not to nearest
  const double log_v = std::log((double)vocab);
  float most = (float)log_v;
  if ((double)most > log_v) most = std::nextafter(most, 0.0f);
  return std::min((float)std::max(h, 0.0), most);
}

}  // namespace

std::vector<int32_t> head_forward_rows(const HeadInputs& in) {
  std::vector<int32_t> idx;
  for (int64_t r = 0; r < in.rows; r++)
    if (!in.mask || in.mask[r] != 0.0f) idx.push_back((int32_t)r);
  return idx;
}

bool head_store_row(float* logprobs, float* logZ, float* entropy, int32_t row, double l, float lz, double h,
                    int64_t vocab, double* logprobs64) {
  logZ[row] = lz;
  if (entropy) entropy[row] = entropy_value(h, lz, vocab);
  const bool bad = std::isnan(l) || !std::isfinite(lz);  // a bad target (z_target NaN) or a non-finite logZ
  // l = -inf where the target sits on a -inf logit (as tokenLogprobs gives); never positive,
  // whatever the rounding
  const double stored = bad ? NAN : vocab == 1 || l > 0.0 ? 0.0 : l;
  logprobs[row] = (float)stored;
  if (logprobs64) logprobs64[row] = stored;
  return bad;
}

HeadRows head_backward_rows(const HeadInputs& in, const float* logZ, const float* entropy, const float* grad_logprobs,
                            const float* grad_entropy, const LogZSplit* split) {
  HeadRows h;
  for (int64_t r = 0; r < in.rows && in.vocab > 1; r++) {
    if (in.mask && in.mask[r] == 0.0f) continue;
    const float gl = grad_logprobs ? grad_logprobs[r] : 0.0f, gh = grad_entropy ? grad_entropy[r] : 0.0f;
    if (gl == 0.0f && gh == 0.0f) continue;
    const bool bad_target = in.targets[r] < 0 || in.targets[r] >= in.vocab;
    if (gh != 0.0f && !entropy) h.needs_entropy.push_back((int32_t)h.idx.size());
    h.idx.push_back((int32_t)r);
    h.grad_logprob.push_back(gl);
    h.grad_entropy.push_back(gh);
    h.logZ.push_back(bad_target ? NAN : split ? split->rel[r] : logZ[r]);
    h.shift.push_back(split ? split->shift[r] : 0.0f);
    h.entropy.push_back(gh == 0.0f ? 0.0f : entropy ? entropy[r] : NAN);
  }
  return h;
}

int64_t token_logprobs_from_hidden_forward_cpu(float* logprobs, float* logZ, float* entropy, const HeadInputs& in,
                                               int threads, LogZSplit* split, double* logprobs64) {
  for (int64_t r = 0; r < in.rows; r++) {  // masked rows
    logprobs[r] = logZ[r] = 0.0f;
    if (entropy) entropy[r] = 0.0f;
    if (logprobs64) logprobs64[r] = 0.0;
  }
  if (split) {
    split->shift.assign((size_t)in.rows, 0.0f);
    split->rel.assign((size_t)in.rows, 0.0f);
  }
  const std::vector<int32_t> idx = head_forward_rows(in);
  const size_t live = idx.size();
  std::vector<double> lz(live), ls(live);
  std::vector<float> mx(live), zt(live);
  std::vector<double> ent(entropy ? live : 0);
  const HeadTiles h(in);
  forward_rows_of(h, idx, in.targets, {lz.data(), mx.data(), ls.data()}, zt.data(), entropy ? ent.data() : nullptr,
                  threads);
  int64_t bad = 0;
  for (size_t i = 0; i < live; i++) {
    // l = (z_y - max) / tau - lse in double: z_y / tau - logZ would lose lse next to a huge
    // max / tau, and float32 |z_y / tau| * 6e-8 of it
    const double ld = ((double)zt[i] - mx[i]) * h.inv_tau - ls[i];
    bad +=
        head_store_row(logprobs, logZ, entropy, idx[i], ld, (float)lz[i], entropy ? ent[i] : 0.0, in.vocab, logprobs64);
    // the backward's exponent (z - shift) / tau - rel: the row's max and lse where they are finite
    if (split && std::isfinite(lz[i])) split->shift[idx[i]] = mx[i], split->rel[idx[i]] = (float)ls[i];
    if (split && !std::isfinite(lz[i])) split->shift[idx[i]] = 0.0f, split->rel[idx[i]] = (float)lz[i];
  }
  return bad;
}

// Over the rows head_backward_rows picks, in blocks of rb rows.
void token_logprobs_from_hidden_backward_cpu(float* grad_hidden, float* grad_weight, const HeadInputs& in,
                                             const float* logZ, const float* entropy, const float* grad_logprobs,
                                             const float* grad_entropy, bool accumulate, int threads,
                                             const int* grad_exp, const LogZSplit* split) {
  const int64_t H = in.hidden_size, V = in.vocab;
  HeadRows rows = head_backward_rows(in, logZ, entropy, grad_logprobs, grad_entropy, split);
  const std::vector<int32_t>& idx = rows.idx;
  const int64_t live = (int64_t)idx.size();
  // Zeros where no block writes: the rows of dH that are not live, all of dW when none is.
  for (int64_t r = 0, i = 0; r < in.rows; r++) {
    if (i < live && idx[i] == r)
      i++;
    else
      std::memset(grad_hidden + r * H, 0, (size_t)H * sizeof(float));
  }
  if (live == 0) {
    if (!accumulate) std::memset(grad_weight, 0, (size_t)(V * H) * sizeof(float));
    return;
  }
  const HeadTiles h(in);
  if (!rows.needs_entropy.empty()) {  // H of the rows with gH != 0, from one more forward pass
    std::vector<int32_t> sub;
    for (int32_t i : rows.needs_entropy) sub.push_back(idx[i]);
    std::vector<double> lz(sub.size()), ls(sub.size()), ent(sub.size());
    std::vector<float> mx(sub.size()), zt(sub.size());
    forward_rows_of(h, sub, in.targets, {lz.data(), mx.data(), ls.data()}, zt.data(), ent.data(), threads);
    for (size_t j = 0; j < sub.size(); j++)
      rows.entropy[rows.needs_entropy[j]] = entropy_value(ent[j], (float)lz[j], V);
  }
  bool any_h = false;
  for (float g : rows.grad_entropy) any_h = any_h || g != 0.0f;
  // Coefficients g/tau past 2^100 run scaled by 2^-local[i] (pow2.h), an exponent per row, so
  // that one row's huge upstream leaves the others' dH exact; row i's dH is scaled back by
  // 2^(grad_exp + local[i]) = 2^re[i] at the end. dW sums over rows: they enter it at the largest,
  // e (row i's dZ times 2^-(e - re[i])), and dW is scaled back by 2^e.
  std::vector<int> local((size_t)live), re((size_t)live);
  int e = 0;
  for (int64_t i = 0; i < live; i++) {
    local[i] = std::max(range_exponent(&rows.grad_logprob[i], 1, h.inv_tau, 100),
                        range_exponent(&rows.grad_entropy[i], 1, h.inv_tau, 100));
    re[i] = (grad_exp ? grad_exp[idx[i]] : 0) + local[i];
    e = std::max(e, re[i]);
  }
  std::vector<int> dw_shift;  // only where the rows' exponents differ
  if (std::any_of(re.begin(), re.end(), [e](int x) { return x != e; }))
    for (int x : re) dw_shift.push_back(e - x);
  const auto coef_of = [&](float g, int64_t i) {
    return local[i] ? scaled_coef(g, h.inv_tau, local[i]) : g * h.inv_tau;
  };
  // Accumulating at a scale 2^-e: the caller's dW is set aside and added back once the batch's
  // own dW is scaled to its true size (scaling the caller's values down by 2^-e and back would
  // flush those below 2^(e - 149) to 0).
  std::vector<float> prior;
  if (e != 0 && accumulate) {
    prior.assign(grad_weight, grad_weight + V * H);
    accumulate = false;
  }
  const int64_t rb = backward_rows(live, H, V, h.k.mr);
  const int64_t n = std::min(live, rb);
  std::vector<float> coef((size_t)n), coef_h(any_h ? (size_t)n : 0), dH;
  for (int64_t b = 0; b < live; b += rb) {
    const int64_t m = std::min(rb, live - b);
    for (int64_t i = 0; i < m; i++) coef[i] = coef_of(rows.grad_logprob[b + i], b + i);
    for (int64_t i = 0; i < m && any_h; i++) coef_h[i] = coef_of(rows.grad_entropy[b + i], b + i);
    // A block of consecutive rows writes its dH in place; another goes through a buffer.
    const bool consecutive = idx[b + m - 1] - idx[b] == m - 1;
    if (!consecutive && dH.empty()) dH.resize((size_t)(n * H));
    float* out = consecutive ? grad_hidden + (size_t)idx[b] * H : dH.data();
    backward_block(h, grad_weight, out, idx.data() + b, rows.shift.data() + b, rows.logZ.data() + b, coef.data(),
                   any_h ? coef_h.data() : nullptr, rows.entropy.data() + b, in.targets, m, b == 0 && !accumulate,
                   threads, dw_shift.empty() ? nullptr : dw_shift.data() + b);
    for (int64_t i = 0; i < m && !consecutive; i++)
      std::memcpy(grad_hidden + (size_t)idx[b + i] * H, dH.data() + i * H, (size_t)H * sizeof(float));
  }
  for (int64_t i = 0; i < live; i++)
    if (re[i] != 0) scale_pow2(grad_hidden + (size_t)idx[i] * H, H, re[i]);
  if (e != 0) scale_pow2(grad_weight, V * H, e);
  for (size_t i = 0; i < prior.size(); i++) grad_weight[i] += prior[i];
}

}  // namespace gvpo
