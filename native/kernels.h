// gvpo kernels: one declaration per kernel, outputs first, sizes explicit.
//
// Shapes (row-major, contiguous):
//   logits  z[R, V] with R = N*T rows ("tokens"), float32 / bfloat16 / float16 bits
//   targets y[R] int32, mask m[R] float (0 = skipped, else a weight)
//   groups  offsets[G+1] int32: group g holds sequences offsets[g] .. offsets[g+1]-1
//
// Math (docs/DESIGN.md, "The math"), with x = z / tau:
//   logZ[r] = logsumexp_v x[r, v]          l[r] = x[r, y[r]] - logZ[r]
//   S[n]    = sum_t m[n,t] * l[n,t]
//   c[n]    = beta*(S - Sref)[n] centered in its group - (R[n] - group mean R)
//   L       = sum_g 1/(k_g-1) * sum_{n in g} c[n]^2 / 2        (/ #groups with k>=2 for 'mean')
//   dL/dS[n] = beta * c[n] / (k_g - 1)
//   dL/dz[r, v] = m[r] * dL/dS[n(r)] / tau * ([v == y[r]] - softmax(x[r, :])[v])
//
// Nothing here knows about Node. Callers validate; kernels trust sizes and offsets, and guard
// only the one index that comes per row from data (targets): out of range, the row is NaN.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace gvpo {

enum class DType : int { f32 = 0, bf16 = 1, f16 = 2 };

inline size_t dtype_bytes(DType d) { return d == DType::f32 ? 4 : 2; }

// ---------------------------------------------------------------------------------------------
// CPU kernels (native/cpu). `threads` <= 0 means the default (GVPO_NUM_THREADS, else all cores).
// Results do not depend on the thread count: every row is computed by one thread, in one order.

// Fused log-softmax + gather, one pass over the logits with a cache-sized tile.
// Rows with mask == 0 (mask may be null: all rows live) cost no exp and get l = 0, logZ = 0.
// l <= 0 always, and l = 0 when V = 1. A row whose logZ is not finite, or whose target lies
// outside [0, V) (callers refuse that first; this is the last line), gets l = NaN; returns the
// number of such rows. row_max / row_lse (each R, or null) receive the row's max logit and
// log sum exp((z - max)/tau): the backward's exponent at full precision (logZ = max/tau + lse).
// logprobs64 (R, or null) receives l before its rounding to float32 (what S sums: at a temperature
// near 1e-38 an l of -4e38 is finite in double and -inf in float32).
int64_t token_logprobs_forward_cpu(float* logprobs /*R*/, float* logZ /*R*/, float* row_max /*R|null*/,
                                   float* row_lse /*R|null*/, const void* logits /*R*V*/, DType dtype,
                                   const int32_t* targets /*R*/, const float* mask /*R|null*/, int64_t rows,
                                   int64_t vocab, float temperature, int threads, double* logprobs64 = nullptr);

// Gradient of sum_r w[r] * l[r] with respect to the logits (w: per-token weights dL/dl):
//   grad[r, v] = w[r] / tau * ([v == y[r]] - exp((z[r, v] - m[r])/tau - lse[r]))
// with (m, lse) from the forward, or m = null and lse = logZ. Rows with w == 0, mask == 0 or
// V == 1 are written as zeros without any exp; a row with non-finite statistics or weight, or
// a target outside [0, V), is written as NaN. `grad` may alias `logits` when dtype is f32.
void token_logprobs_backward_cpu(float* grad /*R*V*/, const void* logits /*R*V*/, DType dtype,
                                 const int32_t* targets /*R*/, const float* mask /*R|null*/,
                                 const float* row_max /*R|null*/, const float* row_lse /*R*/,
                                 const float* token_weights /*R*/, int64_t rows, int64_t vocab, float temperature,
                                 int threads);
// The same with double weights (gvpoFromLogits' dL/dS can pass float32's range where the
// gradient's elements do not).
void token_logprobs_backward_cpu(float* grad /*R*V*/, const void* logits /*R*V*/, DType dtype,
                                 const int32_t* targets /*R*/, const float* mask /*R|null*/,
                                 const float* row_max /*R|null*/, const float* row_lse /*R*/,
                                 const double* token_weights /*R*/, int64_t rows, int64_t vocab, float temperature,
                                 int threads);

// S[n] = sum_t m[n,t] * l[n,t], accumulated in double; masked tokens are skipped (a NaN there
// does not leak into S).
void sequence_logprobs_cpu(double* seq /*N*/, const float* token_logprobs /*N*T*/, const float* mask /*N*T*/,
                           int64_t sequences, int64_t tokens);
void sequence_logprobs_f64_cpu(double* seq /*N*/, const double* token_logprobs /*N*T*/, const float* mask /*N*T*/,
                               int64_t sequences, int64_t tokens);

// centered[n] = values[n] - mean of n's group; means[g] = that mean.
void group_center_cpu(double* centered /*N*/, double* means /*G*/, const double* values /*N*/,
                      const int32_t* offsets /*G+1*/, int64_t groups);

struct LossAndTerms {
  double loss, advantage, trust_region, variance, constant;
};

// The GVPO loss over scalar sequence log-probs. grad_seq = dL/dS, residuals = c.
// Groups of size 1 contribute 0 to everything. mean_reduction divides by #groups with k >= 2.
LossAndTerms gvpo_loss_cpu(double* grad_seq /*N*/, double* residuals /*N*/, const double* seq /*N*/,
                           const double* ref_seq /*N*/, const double* rewards /*N*/, const int32_t* offsets /*G+1*/,
                           int64_t groups, double beta, bool mean_reduction);

// ---------------------------------------------------------------------------------------------
// The fused LM head (token_logprobs_from_hidden.cc): the logits z[r, v] = sum_h hidden[r, h] *
// weight[v, h] (an lm_head without bias, weight vocab-major) exist one tile (row block x vocab
// chunk) at a time and are recomputed by the backward; nothing of size R*V is allocated (extra
// memory: at most about V*H floats of packed operands and gradient tiles, plus per-thread tiles).
// With x = z / tau and p = softmax(x[r, :]):
//   l[r] = x[r, y[r]] - logZ[r]        H[r] = -sum_v p_v log p_v  (the entropy, on request)
//   dL/dz[r, v] = (gl[r] ([v == y[r]] - p_v) - gH[r] p_v (log p_v + H[r])) / tau
// for the upstream gradients gl = dL/dl and gH = dL/dH of any loss; dL/dhidden = dL/dz weight,
// dL/dweight = dL/dz^T hidden. The mask marks live rows (non-zero = live; its values are not
// weights here): a masked row costs nothing, gets l = 0, logZ = 0, H = 0 and a zero gradient
// whatever its upstream, and its target may hold anything. l <= 0 and H >= 0 always; V = 1 gives
// l = 0, H = 0 and no gradient. A live row whose logZ is not finite gets l = NaN (counted) and H =
// NaN; one whose target lies outside [0, V) (callers refuse that first) gets l = NaN and a NaN
// gradient. Results do not depend on the thread count, bit for bit.
struct HeadInputs {
  const void* hidden;  // R*H, in dtype
  const void* weight;  // V*H, in dtype
  DType dtype;
  const int32_t* targets;  // R
  const float* mask;       // R, or null: every row live
  int64_t rows, hidden_size, vocab;
  float temperature;
};
// A row's log-normalizer in two float32 parts, logZ = shift / tau + rel, shift in the logits' units
// (about logZ * tau) and |rel| small: the backward's exponent (z - shift) / tau - rel then keeps the
// precision that z / tau - logZ loses where |z / tau| is large (a float32 logZ of 1e5 is 0.004 off,
// p then 0.4 %, and dL/dhidden = dL/dz W amplifies that where W's rows nearly cancel). The fused
// GVPO op hands it from its forward to its backward; callers of the two phases have logZ alone.
struct LogZSplit {
  std::vector<float> shift, rel;  // R each (0 on masked rows)
};
// l, logZ and (entropy not null) H of every row; returns the number of live rows whose l is NaN.
// With split, also each row's LogZSplit.
int64_t token_logprobs_from_hidden_forward_cpu(float* logprobs /*R*/, float* logZ /*R*/, float* entropy /*R|null*/,
                                               const HeadInputs& in, int threads, LogZSplit* split = nullptr,
                                               double* logprobs64 = nullptr);
// dL/dhidden (overwritten) and dL/dweight (overwritten, or added to with accumulate) from the
// forward's logZ, the upstream gl (null: 0) and gH (null: 0). H is the forward's entropy; when it
// is null and grad_entropy is not, the rows that need it get it from one more forward pass.
// Row r's gl and gH are its upstream times 2^-grad_exp[r] (null: 0; an upstream beyond float32's
// range, as GVPO's dL/dS can be). With split (the forward's), logZ is read from it instead.
void token_logprobs_from_hidden_backward_cpu(float* grad_hidden /*R*H*/, float* grad_weight /*V*H*/,
                                             const HeadInputs& in, const float* logZ /*R*/,
                                             const float* entropy /*R|null*/, const float* grad_logprobs /*R|null*/,
                                             const float* grad_entropy /*R|null*/, bool accumulate, int threads,
                                             const int* grad_exp /*R|null*/ = nullptr,
                                             const LogZSplit* split = nullptr);

// Shared by the CPU and CUDA twins of the head, so both work on the same rows with the same rules.
// The forward works on the rows with mask != 0, in order; head_store_row writes one of them (l
// NaN for a target outside [0, V) or a non-finite logZ, -inf for a target on a -inf logit, 0 when
// V = 1, never positive; H in [0, log V], NaN when logZ is not finite) and returns whether l is NaN;
// logprobs64 (not null) gets the same l before its rounding to float32.
std::vector<int32_t> head_forward_rows(const HeadInputs& in);
bool head_store_row(float* logprobs, float* logZ, float* entropy, int32_t row, double l, float lz, double h,
                    int64_t vocab, double* logprobs64 = nullptr);
// The backward works on the live rows with gl != 0 or gH != 0 (NaN counts as non-zero; none
// when V = 1), each with gl, gH, its logZ (NaN for a target outside [0, V): a NaN row) and H (0
// where gH is 0, so that a NaN entropy there stays out). needs_entropy lists the positions in idx
// whose H must still be computed (entropy not given, gH != 0). With split, logZ holds its rel
// parts and shift its shifts; without, shift is 0.
struct HeadRows {
  std::vector<int32_t> idx, needs_entropy;
  std::vector<float> grad_logprob, grad_entropy, logZ, shift, entropy;
};
HeadRows head_backward_rows(const HeadInputs& in, const float* logZ, const float* entropy, const float* grad_logprobs,
                            const float* grad_entropy, const LogZSplit* split = nullptr);

// ---------------------------------------------------------------------------------------------
// The fused GVPO ops. What both share: a batch of N sequences x T tokens (row r = n*T + t), the
// reference and the group loss's inputs, and phase 1's and the loss's outputs.
struct GvpoBatch {
  DType dtype;                       // of the logits, or of hidden and weight
  const int32_t* targets;            // N*T, in [0, V) where mask != 0
  const float* mask;                 // N*T, 0 or a weight
  const double* ref_token_logprobs;  // N*T or null: Sref[n] = sum_t m * ref
  const double* ref_seq;             // N or null: Sref given; with neither, Sref = S
  const double* rewards;             // N (unused by phase 1)
  const int32_t* offsets;            // G+1, strictly increasing from 0 to N (unused by phase 1)
  int64_t groups, sequences, tokens, vocab;
  float temperature;
  double beta;
  bool mean_reduction;
};
struct GvpoOut {
  float* token_logprobs;   // N*T
  float* logZ;             // N*T
  double* seq;             // N: S
  double* ref_seq;         // N: the Sref used
  double* grad_seq;        // N: dL/dS
  double* residuals;       // N: c
  int64_t nonfinite_rows;  // written: live rows whose logZ is not finite
};
// Sref (the rule of docs/DESIGN.md, "The math"): the reference token log-probs summed under the
// mask, or the given per-sequence values, or, with neither, S itself (seq; when seq is null that
// case writes nothing and returns false).
bool gvpo_reference_cpu(double* ref_seq /*N*/, const double* seq /*N|null*/, const GvpoBatch& in);
// Phase 1's tail of both ops: S = sum_t m l from logprobs64 (the forward's l in double) or, when it
// is null, from out.token_logprobs; then Sref.
void gvpo_sequence_sums_cpu(GvpoOut& out, const GvpoBatch& in, const double* logprobs64 = nullptr);

// The fused op on logits (gvpo_from_logits.cc): token log-probs, S, Sref, the group loss and
// dL/dz, the logits read twice and the gradient written once.
struct GvpoLogitsBatch : GvpoBatch {
  const void* logits;  // N*T*V
};
struct GvpoFromLogitsOut : GvpoOut {
  float* grad;  // N*T*V; may be the float32 logits themselves (in place)
};
LossAndTerms gvpo_from_logits_cpu(GvpoFromLogitsOut& out, const GvpoLogitsBatch& in, int threads);

// Its two phases, for batches whose groups span shards: phase 1 (rewards, offsets, beta unused)
// fills token_logprobs, logZ, seq, ref_seq and nonfinite_rows; phase 2 turns dL/dS into dL/dz
// from the logits and the logZ of phase 1.
// row_max / row_lse (each N*T, or null): the forward's split of logZ, written by the forward and,
// given to the backward, read instead of logZ (as the fused call does between its phases).
void gvpo_forward_cpu(GvpoFromLogitsOut& out, const GvpoLogitsBatch& in, int threads, float* row_max = nullptr,
                      float* row_lse = nullptr);
void gvpo_backward_cpu(float* grad /*N*T*V*/, const float* logZ /*N*T*/, const double* grad_seq /*N*/,
                       const GvpoLogitsBatch& in, int threads, const float* row_max = nullptr,
                       const float* row_lse = nullptr);

// The fused op on the LM head (gvpo_from_hidden.cc): the head above (its forward, then its
// backward with gl[r] = m[r] * dL/dS[n(r)] and no entropy) with the group loss between them.
struct GvpoHiddenBatch : GvpoBatch {
  const void* hidden;   // N*T*H, in dtype
  const void* weight;   // V*H, in dtype
  int64_t hidden_size;  // H
  HeadInputs head() const {
    return {hidden, weight, dtype, targets, mask, sequences * tokens, hidden_size, vocab, temperature};
  }
};
struct GvpoFromHiddenOut : GvpoOut {
  float* grad_hidden;  // N*T*H
  float* grad_weight;  // V*H
  bool accumulate;     // dL/dweight added to grad_weight, not written over it
};
LossAndTerms gvpo_from_hidden_cpu(GvpoFromHiddenOut& out, const GvpoHiddenBatch& in, int threads);
// Its two phases: phase 1 fills token_logprobs, logZ, seq, ref_seq and nonfinite_rows (rewards,
// offsets, beta unused); phase 2 turns dL/dS into dL/dhidden (overwritten) and dL/dweight
// (overwritten, or added to with accumulate). The one call passes the forward's LogZSplit on.
void gvpo_from_hidden_forward_cpu(GvpoOut& out, const GvpoHiddenBatch& in, int threads, LogZSplit* split = nullptr);
void gvpo_from_hidden_backward_cpu(float* grad_hidden /*N*T*H*/, float* grad_weight /*V*H*/, const float* logZ /*N*T*/,
                                   const double* grad_seq /*N*/, const GvpoHiddenBatch& in, bool accumulate,
                                   int threads, const LogZSplit* split = nullptr);
// gl[r] = m[r] * dL/dS[n(r)], 0 on masked rows (even where dL/dS is NaN): phase 2's upstream.
std::vector<float> gvpo_token_weights(const GvpoBatch& in, const double* grad_seq);
std::vector<double> gvpo_token_weights_f64(const GvpoBatch& in, const double* grad_seq);

// The FMA peak probe: `iterations` steps of register-resident FMAs on each of `threads` threads
// with the GEMM's instruction set. Returns the flops performed (time it to get the peak).
double fma_probe_cpu(int64_t iterations, int threads);

// Roofline probes (bandwidth.cc): one streaming pass over n floats, read or written.
double stream_read_cpu(const float* data, int64_t n, int threads);
void stream_write_cpu(float* data, int64_t n, float value, int threads);
// The exp-throughput probe (bandwidth.cc): `iterations` steps of the row kernels' exp (the
// instruction set cpu_simd_level() names) on register-resident vectors, on each of `threads`
// threads. Returns the elements exponentiated (time it to get the rate).
double exp_probe_cpu(int64_t iterations, int threads);

// The bfloat16 dot-product peak probe (gemm_bf16.cc): `iterations` steps of register-resident
// vdpbf16ps on each of `threads` threads; returns the flops performed, or 0 on a CPU without
// AVX512_BF16 (or with it forced off by GVPO_SIMD).
double bf16_dot_probe_cpu(int64_t iterations, int threads);

// Thread and SIMD facts, for backendInfo().
int cpu_default_threads();
const char* cpu_simd_level();  // "avx512bf16" | "avx512" | "avx2" | "sse2" | "generic"

// ---------------------------------------------------------------------------------------------
// CUDA kernels (native/cuda), compiled when GVPO_WITH_CUDA is defined. Device pointers; every
// function returns a cudaError_t as int (0 = success) and runs on `stream`.
#ifdef GVPO_WITH_CUDA
// The forward, with the CPU's rules (token_logprobs_forward_cpu): each row's max m of z (unscaled)
// and lse = log sum_v exp((z - m)/tau) in double, logZ = m/tau + lse, l = (z_y - m)/tau - lse in
// double, never positive; 0 on masked rows, NaN for a non-finite logZ or a target outside [0, V).
// logprobs64 (l before its float32 rounding), row_max and row_lse (the split the backward takes)
// may be null.
int token_logprobs_forward_cuda(float* logprobs, float* logZ, double* logprobs64, float* row_max, float* row_lse,
                                const void* logits, DType dtype, const int32_t* targets, const float* mask,
                                int64_t rows, int64_t vocab, float temperature, void* stream);
// grad[r, v] = g[r]/tau ([v == y] - exp((z - m)/tau - lse)) from the forward's (row_max, row_lse),
// or from logZ alone (row_max null, row_lse = logZ); 0 on masked rows and where g = 0 or V = 1, a
// NaN row for a bad target, a non-finite split or g. g (the fused op's dL/dS per token, the head's
// upstream) is in double, g/tau too; past float32's range it is applied as c 2^-e and scaled back
// per element. grad may be the float32 logits (in place).
int token_logprobs_backward_cuda(float* grad, const void* logits, DType dtype, const int32_t* targets,
                                 const float* mask, const float* row_max, const float* row_lse,
                                 const double* token_weights, int64_t rows, int64_t vocab, float temperature,
                                 void* stream);
// Per-sequence sums S = sum_t m l of the forward's l in double (in t order, as the CPU), then the
// group loss (group_loss.h, the CPU's code) in one small kernel (one block per group), and the
// backward's weights token_weights[r] = m[r] dL/dS[n(r)] in double (0 on masked rows).
int gvpo_loss_cuda(double* seq, double* grad_seq, double* residuals, double* token_weights,
                   double* terms /*5: loss, advantage, trustRegion, variance, constant*/,
                   const double* token_logprobs64, const float* mask, const double* ref_seq, const double* rewards,
                   const int32_t* offsets, int64_t groups, int64_t sequences, int64_t tokens, double beta,
                   bool mean_reduction, void* stream);
// Device count and the name of device 0 (or the error's text); returns a CUDA error code.
int cuda_device_info(int* count, char* name, int name_len);

// Host-array entry points (cuda/workspace.h): copy in, run, copy out on one stream with reused device
// buffers; copy and kernel times reported separately. Return 0 or a CUDA error (text in err).
struct CudaTimings {
  double h2d_ms, kernel_ms, d2h_ms;
};
// row_max / row_lse (each R, or null): each row's split of logZ, as token_logprobs_forward_cpu's.
int token_logprobs_cuda_host(float* logprobs, float* logZ, CudaTimings* t, const void* logits, DType dtype,
                             const int32_t* targets, const float* mask, int64_t rows, int64_t vocab, float temperature,
                             char* err, int err_len, float* row_max = nullptr, float* row_lse = nullptr);
// The fused op over host arrays (gvpo_from_logits.cu), the CUDA twin of gvpo_from_logits_cpu.
int gvpo_from_logits_cuda_host(GvpoFromLogitsOut& out, LossAndTerms* terms, CudaTimings* t, const GvpoLogitsBatch& in,
                               char* err, int err_len);
// The fused LM head over host arrays (token_logprobs_from_hidden.cu), the CUDA twin of
// token_logprobs_from_hidden_*_cpu: the logits exist one chunk of rows at a time in device memory
// (at most 1/8 of the batch's float32 logits, >= 4 MiB, <= 256 MiB), nothing of size R*V.
// nonfinite_rows receives the forward's count of live rows whose l is NaN.
// With split, the forward also gives each row's LogZSplit and the backward reads logZ from it.
int token_logprobs_from_hidden_forward_cuda_host(float* logprobs /*R*/, float* logZ /*R*/, float* entropy /*R|null*/,
                                                 int64_t* nonfinite_rows, CudaTimings* t, const HeadInputs& in,
                                                 char* err, int err_len, LogZSplit* split = nullptr);
int token_logprobs_from_hidden_backward_cuda_host(float* grad_hidden /*R*H*/, float* grad_weight /*V*H*/,
                                                  CudaTimings* t, const HeadInputs& in, const float* logZ,
                                                  const float* entropy, const float* grad_logprobs,
                                                  const float* grad_entropy, bool accumulate, char* err, int err_len,
                                                  const LogZSplit* split = nullptr);
// gvpo_from_hidden over host arrays (gvpo_from_hidden.cu), the twin of gvpo_from_hidden_cpu and
// its phases: the head above, hidden and weight copied to the device once per call.
int gvpo_from_hidden_cuda_host(GvpoFromHiddenOut& out, LossAndTerms* terms, CudaTimings* t, const GvpoHiddenBatch& in,
                               char* err, int err_len);
int gvpo_from_hidden_forward_cuda_host(GvpoOut& out, CudaTimings* t, const GvpoHiddenBatch& in, char* err, int err_len,
                                       LogZSplit* split = nullptr);
int gvpo_from_hidden_backward_cuda_host(float* grad_hidden, float* grad_weight, CudaTimings* t, const float* logZ,
                                        const double* grad_seq, const GvpoHiddenBatch& in, bool accumulate, char* err,
                                        int err_len, const LogZSplit* split = nullptr);
// The head's row kernels over a chunk of float32 logits z (rows x V), the twins of the CPU head's
// tile functions (head_rows.cu); per-row arrays are the chunk's, dense.
// entropy[r] = -sum_v p log p, p = softmax(z[r, :]/tau): in [0, log V], NaN for a row with a NaN
// or of -inf only, 0 when V = 1.
int head_entropy_cuda(float* entropy, const float* z, int64_t rows, int64_t vocab, float temperature, void* stream);
// In place: z[r, v] becomes (gl[r] ([v == y[r]] - p) - gH[r] p (log p + H[r])) / tau with
// p = exp(min(0, (z - shift)/tau - logZ)) (shift null: 0); a row with a non-finite logZ or shift,
// or a target outside [0, V), is NaN.
int head_softmax_grad_cuda(float* z, const int32_t* targets, const float* shift, const float* logZ,
                           const float* entropy, const float* grad_logprobs, const float* grad_entropy, int64_t rows,
                           int64_t vocab, float temperature, void* stream);
// dst[i, :] = src[idx[i], :] and dst[idx[i], :] = src[i, :] over rows of `width` elements (row_copy.cu).
int gather_rows_cuda(void* dst, const void* src, DType dtype, const int32_t* idx, int64_t rows, int64_t width,
                     void* stream);
int scatter_rows_cuda(float* dst, const float* src, const int32_t* idx, int64_t rows, int64_t width, void* stream);
// In place: x[i, :] *= 2^-shift[i] over rows of `width` floats, each element rounded once (row_copy.cu);
// a row whose shift is 0 is left as it is.
int scale_rows_pow2_cuda(float* x, const int32_t* shift, int64_t rows, int64_t width, void* stream);
// C[m, n] (row-major, leading dimension ldc) = sum_k A(m, k) B(k, n), or C += it (accumulate),
// in float32, with A(m, k) = a[m*a_m + k*a_k] and B(k, n) = b[k*b_k + n*b_n] in their dtypes
// (gemm.cu). Device pointers.
int gemm_cuda(float* c, int64_t ldc, const void* a, DType ta, int64_t a_m, int64_t a_k, const void* b, DType tb,
              int64_t b_k, int64_t b_n, int64_t M, int64_t N, int64_t K, bool accumulate, void* stream);
#endif

}  // namespace gvpo
