// gvpo kernels: one declaration per kernel, outputs first, sizes explicit.
//
// Shapes (row-major, contiguous):
//   logits  z[R, V] with R = N*T rows ("tokens"), float32 / bfloat16 / float16 bits
//   targets y[R] int32, mask m[R] float (0 = skipped, else a weight)
//   groups  offsets[G+1] int32: group g holds sequences offsets[g] .. offsets[g+1]-1
//
// Math (SPEC section 1), with x = z / tau:
//   logZ[r] = logsumexp_v x[r, v]          l[r] = x[r, y[r]] - logZ[r]
//   S[n]    = sum_t m[n,t] * l[n,t]
//   c[n]    = beta*(S - Sref)[n] centred in its group - (R[n] - group mean R)
//   L       = sum_g 1/(k_g-1) * sum_{n in g} c[n]^2 / 2        (/ #groups with k>=2 for 'mean')
//   dL/dS[n] = beta * c[n] / (k_g - 1)
//   dL/dz[r, v] = m[r] * dL/dS[n(r)] / tau * ([v == y[r]] - softmax(x[r, :])[v])
//
// Nothing here knows about Node. Callers validate; kernels trust their arguments.
#pragma once
#include <cstddef>
#include <cstdint>

namespace gvpo {

enum class DType : int { f32 = 0, bf16 = 1, f16 = 2 };

inline size_t dtype_bytes(DType d) { return d == DType::f32 ? 4 : 2; }

// ---------------------------------------------------------------------------------------------
// CPU kernels (native/cpu). `threads` <= 0 means the default (GVPO_NUM_THREADS, else all cores).
// Results do not depend on the thread count: every row is computed by one thread, in one order.

// Fused log-softmax + gather, one pass over the logits with a cache-sized tile.
// Rows with mask == 0 (mask may be null: all rows live) cost no exp and get l = 0, logZ = 0.
// A row whose logZ is not finite gets l = NaN. Returns the number of such rows.
int64_t token_logprobs_forward_cpu(float* logprobs /*R*/, float* logZ /*R*/, const void* logits /*R*V*/,
                                   DType dtype, const int32_t* targets /*R*/, const float* mask /*R|null*/,
                                   int64_t rows, int64_t vocab, float temperature, int threads);

// Gradient of sum_r g[r] * l[r] with respect to the logits:
//   grad[r, v] = g[r] / tau * ([v == y[r]] - exp(x[r, v] - logZ[r]))
// Rows with g == 0 are written as zeros without any exp; a row with non-finite logZ and g != 0
// is written as NaN. `grad` may alias `logits` when dtype is f32 (in place).
void token_logprobs_backward_cpu(float* grad /*R*V*/, const void* logits /*R*V*/, DType dtype,
                                 const int32_t* targets /*R*/, const float* logZ /*R*/,
                                 const float* grad_logprobs /*R*/, int64_t rows, int64_t vocab,
                                 float temperature, int threads);

// S[n] = sum_t m[n,t] * l[n,t], accumulated in double; masked tokens are skipped (a NaN there
// does not leak into S).
void sequence_logprobs_cpu(double* seq /*N*/, const float* token_logprobs /*N*T*/,
                           const float* mask /*N*T*/, int64_t sequences, int64_t tokens);
void sequence_logprobs_f64_cpu(double* seq /*N*/, const double* token_logprobs /*N*T*/,
                               const float* mask /*N*T*/, int64_t sequences, int64_t tokens);

// centered[n] = values[n] - mean of n's group; means[g] = that mean.
void group_center_cpu(double* centered /*N*/, double* means /*G*/, const double* values /*N*/,
                      const int32_t* offsets /*G+1*/, int64_t groups);

struct GvpoTerms {
  double loss, advantage, trust_region, variance, constant;
};

// The GVPO loss over scalar sequence log-probs. grad_seq = dL/dS, residuals = c.
// Groups of size 1 contribute 0 to everything. mean_reduction divides by #groups with k >= 2.
GvpoTerms gvpo_loss_cpu(double* grad_seq /*N*/, double* residuals /*N*/, const double* seq /*N*/,
                        const double* ref_seq /*N*/, const double* rewards /*N*/,
                        const int32_t* offsets /*G+1*/, int64_t groups, double beta,
                        bool mean_reduction);

// The fused LM head (gvpo_from_hidden.cc): the logits z[r, v] = sum_h hidden[r, h] * weight[v, h]
// (hidden R x H, weight V x H vocab-major, no bias; both in `dtype`) exist one tile (row block x
// vocab chunk) at a time and are recomputed by the backward; nothing of size R*V is allocated.
// Rows with mask == 0 cost nothing: l = 0, logZ = 0, zero gradient. l = min(0, x[y] - logZ), and
// 0 for V == 1; a row whose logZ is not finite gets l = NaN (counted in the return value).
//
// Phase 1: token log-probs, logZ and S[n] = sum_t m * l. Returns the number of non-finite rows.
int64_t gvpo_from_hidden_forward_cpu(float* logprobs /*R*/, float* logZ /*R*/, double* seq /*N*/,
                                     const void* hidden /*R*H*/, const void* weight /*V*H*/,
                                     DType dtype, const int32_t* targets /*R*/,
                                     const float* mask /*R*/, int64_t sequences, int64_t tokens,
                                     int64_t hidden_size, int64_t vocab, float temperature,
                                     int threads);
// Phase 2: dL/dS (grad_seq) to dL/dhidden and dL/dweight (both overwritten), with
//   dL/dz[r, v] = m[r] * dL/dS[n(r)] / tau * ([v == y[r]] - exp(z[r, v]/tau - logZ[r])).
void gvpo_from_hidden_backward_cpu(float* grad_hidden /*R*H*/, float* grad_weight /*V*H*/,
                                   const void* hidden /*R*H*/, const void* weight /*V*H*/,
                                   DType dtype, const int32_t* targets /*R*/,
                                   const float* mask /*R*/, const float* logZ /*R*/,
                                   const double* grad_seq /*N*/, int64_t sequences,
                                   int64_t tokens, int64_t hidden_size, int64_t vocab,
                                   float temperature, int threads);

struct FromHiddenIn {
  const void* hidden;  // R*H
  const void* weight;  // V*H
  DType dtype;
  const int32_t* targets;  // R
  const float* mask;  // R
  int64_t sequences, tokens, hidden_size, vocab;
  float temperature;
  int threads;
};
struct FromHiddenOut {
  float *grad_hidden /*R*H*/, *grad_weight /*V*H*/, *logprobs /*R*/, *logZ /*R*/;
  double *seq, *ref_seq, *grad_seq, *residuals;  // N each
  int64_t* nonfinite_rows;
};
// The whole op: phase 1, Sref (summed from ref_token_logprobs /*N*T*/, else ref_seq /*N*/, else
// S itself), the loss over the groups, phase 2.
GvpoTerms gvpo_from_hidden_cpu(const FromHiddenOut& out, const FromHiddenIn& in,
                               const double* ref_token_logprobs, const double* ref_seq,
                               const double* rewards /*N*/, const int32_t* offsets /*G+1*/,
                               int64_t groups, double beta, bool mean_reduction);

// Roofline probes (bandwidth.cc): one streaming pass over n floats, read or written.
double stream_read_cpu(const float* data, int64_t n, int threads);
void stream_write_cpu(float* data, int64_t n, float value, int threads);

// The FMA peak probe: `iterations` steps of register-resident FMAs on each of `threads` threads
// with the GEMM's instruction set. Returns the flops performed (time it to get the peak).
double fma_probe_cpu(int64_t iterations, int threads);

// Thread and SIMD facts, for backendInfo().
int cpu_default_threads();
const char* cpu_simd_level();  // "avx512" | "avx2" | "sse2" | "generic"

// ---------------------------------------------------------------------------------------------
// CUDA kernels (native/cuda), compiled when GVPO_WITH_CUDA is defined. Device pointers; every
// function returns a cudaError_t as int (0 = success) and runs on `stream`.
#ifdef GVPO_WITH_CUDA
int token_logprobs_forward_cuda(float* logprobs, float* logZ, const void* logits, DType dtype,
                                const int32_t* targets, const float* mask, int64_t rows,
                                int64_t vocab, float temperature, void* stream);
int token_logprobs_backward_cuda(float* grad, const void* logits, DType dtype,
                                 const int32_t* targets, const float* logZ,
                                 const float* grad_logprobs, int64_t rows, int64_t vocab,
                                 float temperature, void* stream);
// Per-sequence sums, group centring, residuals and dL/dS in one small kernel (one block per
// group). grad_logprobs[r] = m[r] * dL/dS[n(r)] is written for the backward pass.
int gvpo_loss_cuda(double* seq, double* grad_seq, double* residuals, float* grad_logprobs,
                   double* terms /*5: loss, advantage, trustRegion, variance, constant*/,
                   const float* token_logprobs, const float* mask, const double* ref_seq,
                   const double* rewards, const int32_t* offsets, int64_t groups,
                   int64_t sequences, int64_t tokens, double beta, bool mean_reduction,
                   void* stream);
// Device count and the name of device 0 (or the error's text); returns a CUDA error code.
int cuda_device_info(int* count, char* name, int name_len);

// Host-array entry points (host.cu): copy in, run, copy out on one stream with reused device
// buffers; copy and kernel times reported separately. Return 0 or a CUDA error (text in err).
struct CudaTimings {
  double h2d_ms, kernel_ms, d2h_ms;
};
struct GvpoCudaOut {
  float* grad;  // R*V host; == logits (f32) for in place
  float *logprobs, *logZ;  // R
  double *seq, *grad_seq, *residuals;  // N
  double* terms;  // 5: loss, advantage, trustRegion, variance, constant
};
int token_logprobs_cuda_host(float* logprobs, float* logZ, CudaTimings* t, const void* logits,
                             DType dtype, const int32_t* targets, const float* mask, int64_t rows,
                             int64_t vocab, float temperature, char* err, int err_len);
int gvpo_from_logits_cuda_host(const GvpoCudaOut& out, CudaTimings* t, const void* logits,
                               DType dtype, const int32_t* targets, const float* mask,
                               const double* ref_seq, const double* rewards,
                               const int32_t* offsets, int64_t groups, int64_t sequences,
                               int64_t tokens, int64_t vocab, float temperature, double beta,
                               bool mean_reduction, char* err, int err_len);
#endif

}  // namespace gvpo
