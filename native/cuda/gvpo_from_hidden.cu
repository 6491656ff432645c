// gvpo_from_hidden on CUDA over host arrays: the twin of native/cpu/gvpo_from_hidden.cc.
//
// hidden (R x H) and weight (V x H) are copied to the device once per call; the rows that take
// part (mask != 0 in phase 1, a non-zero weight m * dL/dS in phase 2: the CPU twin's rows) are
// processed in chunks of c rows, gathered into a c x H buffer (row_copy.cu; a masked row's values,
// NaN included, never reach a product):
//   phase 1  Z = Hc W^T (gemm.cu, float32, c x V) -> token_logprobs_forward_cuda -> l, logZ
//   phase 2  Z = Hc W^T again -> token_logprobs_backward_cuda turns Z into dZ in place ->
//            dHc = dZ W (scattered to the chunk's rows of dH), dW += dZ^T Hc
// The group loss runs on the host between the phases (N values; gvpo_loss_cpu). The only buffer
// that grows with V per row is Z: c x V floats with c chosen so that it holds at most 1/8 of the
// float32 logits of the batch (at least 4 MiB, at most 256 MiB); nothing of size N*T*V exists.
// Host code only (the kernels are in gemm.cu, row_copy.cu, token_logprobs.cu), so that
// native/tests/test_cuda_host.cc can also run it on the CPU over a stand-in runtime.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "../kernels.h"
#include "workspace.h"

namespace gvpo {

namespace {

using namespace cuda_host;

// Rows per chunk: c x V floats of logits within 1/8 of the batch's (>= 4 MiB, <= 256 MiB), and
// at most 65535 row tiles of the GEMM (its grid's y extent; reached only when V <= 8).
int64_t chunk_rows(int64_t rows, int64_t live, int64_t V) {
  const double logits = (double)rows * V * 4;
  const double cap = std::min(256.0 * (1 << 20), std::max(4.0 * (1 << 20), logits / 8));
  const int64_t c = std::min<int64_t>(live, (int64_t)(cap / ((double)V * 4)));
  return std::max<int64_t>(1, std::min<int64_t>(c, 65535 * 128));
}

// One call's device state: the copies of hidden and weight and the chunk buffers.
struct Head {
  const GvpoHiddenBatch& in;
  Workspace& w;
  int64_t R, H, V;
  size_t esz;
  Head(const GvpoHiddenBatch& b, Workspace& ws_) : in(b), w(ws_), R(b.sequences * b.tokens), H(b.hidden_size),
                                                     V(b.vocab), esz(dtype_bytes(b.dtype)) {}
  const void* hidden() const { return w.hidden.ptr; }
  const void* weight() const { return w.weight.ptr; }
};

int upload(Head& h, CudaTimings& t, char* err, int err_len) {
  Workspace& w = h.w;
  const size_t hb = (size_t)(h.R * h.H) * h.esz, wb = (size_t)(h.V * h.H) * h.esz;
  GVPO_CUDA_TRY(w.hidden.reserve(hb));
  GVPO_CUDA_TRY(w.weight.reserve(wb));
  Pin ph(h.in.hidden, hb), pw(h.in.weight, wb);
  Drain drain{w.stream};  // before the pins end, even on an error return
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[0], w.stream));
  GVPO_CUDA_TRY(cudaMemcpyAsync(w.hidden.ptr, h.in.hidden, hb, cudaMemcpyHostToDevice, w.stream));
  GVPO_CUDA_TRY(cudaMemcpyAsync(w.weight.ptr, h.in.weight, wb, cudaMemcpyHostToDevice, w.stream));
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[1], w.stream));
  GVPO_CUDA_TRY(cudaEventSynchronize(w.ev[1]));  // the pins end here
  t.h2d_ms += elapsed(w.ev[0], w.ev[1]);
  return 0;
}

// Per-row arrays of the rows idx[0..n) to the device: idx, their targets, and `a`, `b` (floats).
int upload_rows(Head& h, const std::vector<int32_t>& idx, const std::vector<int32_t>& y,
                const std::vector<float>& a, const std::vector<float>& b, char* err, int err_len) {
  Workspace& w = h.w;
  const size_t n = idx.size();
  GVPO_CUDA_TRY(w.offsets.reserve(n * 4 + 4));  // the live rows' indices
  GVPO_CUDA_TRY(w.targets.reserve(n * 4 + 4));
  GVPO_CUDA_TRY(w.lp.reserve(n * 4 + 4));
  GVPO_CUDA_TRY(w.lz.reserve(n * 4 + 4));
  if (n == 0) return 0;
  GVPO_CUDA_TRY(cudaMemcpyAsync(w.offsets.ptr, idx.data(), n * 4, cudaMemcpyHostToDevice, w.stream));
  GVPO_CUDA_TRY(cudaMemcpyAsync(w.targets.ptr, y.data(), n * 4, cudaMemcpyHostToDevice, w.stream));
  if (!a.empty()) GVPO_CUDA_TRY(cudaMemcpyAsync(w.lp.ptr, a.data(), n * 4, cudaMemcpyHostToDevice, w.stream));
  if (!b.empty()) GVPO_CUDA_TRY(cudaMemcpyAsync(w.lz.ptr, b.data(), n * 4, cudaMemcpyHostToDevice, w.stream));
  return 0;
}

// Z (c x V) = logits of the chunk's rows: Hc gathered from hidden, then Hc W^T.
int chunk_logits(Head& h, const int32_t* d_idx, int64_t c, char* err, int err_len) {
  Workspace& w = h.w;
  GVPO_CUDA_TRY(gather_rows_cuda(w.hchunk.ptr, h.hidden(), h.in.dtype, d_idx, c, h.H, w.stream));
  GVPO_CUDA_TRY(gemm_cuda((float*)w.logits.ptr, h.V, w.hchunk.ptr, h.in.dtype, h.H, 1, h.weight(), h.in.dtype, 1,
                          h.H, c, h.V, h.H, false, w.stream));
  return 0;
}

int reserve_chunks(Head& h, int64_t c, bool backward, char* err, int err_len) {
  Workspace& w = h.w;
  GVPO_CUDA_TRY(w.logits.reserve((size_t)(c * h.V) * 4));
  GVPO_CUDA_TRY(w.hchunk.reserve((size_t)(c * h.H) * h.esz));
  if (backward) GVPO_CUDA_TRY(w.grad.reserve((size_t)(c * h.H) * 4));
  return 0;
}

// Phase 1 over the rows with mask != 0: token log-probs and logZ (0 on masked rows), then S,
// Sref and the count of non-finite rows on the host, as the CPU twin does.
int forward(Head& h, GvpoFromHiddenOut& out, CudaTimings& t, char* err, int err_len) {
  Workspace& w = h.w;
  const std::vector<int32_t> idx = gvpo_from_hidden_forward_rows(h.in);
  std::vector<int32_t> y;
  for (int32_t r : idx) y.push_back(h.in.targets[r]);
  const int64_t live = (int64_t)idx.size(), c = chunk_rows(h.R, live, h.V);
  if (int e = upload_rows(h, idx, y, {}, {}, err, err_len)) return e;
  if (int e = reserve_chunks(h, c, false, err, err_len)) return e;
  std::vector<float> lp((size_t)live), lz((size_t)live);
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[1], w.stream));
  for (int64_t b = 0; b < live; b += c) {
    const int64_t m = std::min(c, live - b);
    if (int e = chunk_logits(h, (const int32_t*)w.offsets.ptr + b, m, err, err_len)) return e;
    GVPO_CUDA_TRY(token_logprobs_forward_cuda((float*)w.lp.ptr + b, (float*)w.lz.ptr + b, w.logits.ptr, DType::f32,
                                              (const int32_t*)w.targets.ptr + b, nullptr, m, h.V,
                                              h.in.temperature, w.stream));
  }
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[2], w.stream));
  if (live) {
    GVPO_CUDA_TRY(cudaMemcpyAsync(lp.data(), w.lp.ptr, live * 4, cudaMemcpyDeviceToHost, w.stream));
    GVPO_CUDA_TRY(cudaMemcpyAsync(lz.data(), w.lz.ptr, live * 4, cudaMemcpyDeviceToHost, w.stream));
  }
  GVPO_CUDA_TRY(cudaStreamSynchronize(w.stream));
  t.kernel_ms += elapsed(w.ev[1], w.ev[2]);
  for (int64_t r = 0; r < h.R; r++) out.token_logprobs[r] = out.logZ[r] = 0.0f;  // masked rows
  out.nonfinite_rows = 0;
  for (int64_t i = 0; i < live; i++) gvpo_from_hidden_store_logprob(out, idx[i], lp[i], lz[i], h.V);
  gvpo_from_hidden_sequence_sums(out, h.in);
  return 0;
}

// Phase 2 over the rows with a non-zero weight w = m * dL/dS[n(r)]: dL/dhidden and dL/dweight.
int backward(Head& h, float* grad_hidden, float* grad_weight, const float* logZ, const double* grad_seq,
             CudaTimings& t, char* err, int err_len) {
  Workspace& w = h.w;
  const size_t dhb = (size_t)(h.R * h.H) * 4, dwb = (size_t)(h.V * h.H) * 4;
  const HeadRows rows = gvpo_from_hidden_backward_rows(h.in, logZ, grad_seq);
  const std::vector<int32_t>& idx = rows.idx;
  std::vector<int32_t> y;
  for (int32_t r : idx) y.push_back(h.in.targets[r]);
  const int64_t live = (int64_t)idx.size(), c = chunk_rows(h.R, live, h.V);
  if (live == 0) {
    std::memset(grad_hidden, 0, dhb);
    std::memset(grad_weight, 0, dwb);
    return 0;
  }
  if (int e = upload_rows(h, idx, y, rows.weight, rows.logZ, err, err_len)) return e;
  if (int e = reserve_chunks(h, c, true, err, err_len)) return e;
  GVPO_CUDA_TRY(w.dhidden.reserve(dhb));
  GVPO_CUDA_TRY(w.dweight.reserve(dwb));
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[1], w.stream));
  GVPO_CUDA_TRY(cudaMemsetAsync(w.dhidden.ptr, 0, dhb, w.stream));
  GVPO_CUDA_TRY(cudaMemsetAsync(w.dweight.ptr, 0, dwb, w.stream));
  float* Z = (float*)w.logits.ptr;
  for (int64_t b = 0; b < live; b += c) {
    const int64_t m = std::min(c, live - b);
    const int32_t* d_idx = (const int32_t*)w.offsets.ptr + b;
    if (int e = chunk_logits(h, d_idx, m, err, err_len)) return e;
    GVPO_CUDA_TRY(token_logprobs_backward_cuda(Z, Z, DType::f32, (const int32_t*)w.targets.ptr + b, nullptr,
                                               (const float*)w.lz.ptr + b, (const float*)w.lp.ptr + b, m, h.V,
                                               h.in.temperature, w.stream));
    // dHc (m x H) = dZ W: A(r, v) = Z[r*V + v], B(v, h) = W[v*H + h]
    GVPO_CUDA_TRY(gemm_cuda((float*)w.grad.ptr, h.H, Z, DType::f32, h.V, 1, h.weight(), h.in.dtype, h.H, 1, m, h.H,
                            h.V, false, w.stream));
    GVPO_CUDA_TRY(scatter_rows_cuda((float*)w.dhidden.ptr, (const float*)w.grad.ptr, d_idx, m, h.H, w.stream));
    // dW (V x H) += dZ^T Hc: A(v, r) = Z[r*V + v], B(r, h) = Hc[r*H + h]
    GVPO_CUDA_TRY(gemm_cuda((float*)w.dweight.ptr, h.H, Z, DType::f32, 1, h.V, w.hchunk.ptr, h.in.dtype, h.H, 1, h.V,
                            h.H, m, true, w.stream));
  }
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[2], w.stream));
  Pin ph(grad_hidden, dhb), pw(grad_weight, dwb);
  Drain drain{w.stream};
  GVPO_CUDA_TRY(cudaMemcpyAsync(grad_hidden, w.dhidden.ptr, dhb, cudaMemcpyDeviceToHost, w.stream));
  GVPO_CUDA_TRY(cudaMemcpyAsync(grad_weight, w.dweight.ptr, dwb, cudaMemcpyDeviceToHost, w.stream));
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[3], w.stream));
  GVPO_CUDA_TRY(cudaStreamSynchronize(w.stream));
  t.kernel_ms += elapsed(w.ev[1], w.ev[2]);
  t.d2h_ms += elapsed(w.ev[2], w.ev[3]);
  return 0;
}

// Runs phase 1, the group loss and/or phase 2 on one upload, under the workspace's lock.
int run(GvpoFromHiddenOut* out, GvpoTerms* terms, float* grad_hidden, float* grad_weight, const float* logZ,
        const double* grad_seq, CudaTimings* timings, const GvpoHiddenBatch& in, char* err, int err_len) {
  Workspace& w = ws();
  std::lock_guard<std::mutex> guard(w.lock);
  if (int e = prepare(w, err, err_len)) return e;
  Head h(in, w);
  CudaTimings t{0, 0, 0};
  if (int e = upload(h, t, err, err_len)) return e;
  if (out) {
    if (int e = forward(h, *out, t, err, err_len)) return e;
    if (terms) {
      *terms = gvpo_loss_cpu(out->grad_seq, out->residuals, out->seq, out->ref_seq, in.rewards, in.offsets,
                             in.groups, in.beta, in.mean_reduction);
      logZ = out->logZ;
      grad_seq = out->grad_seq;
    }
  }
  if (grad_hidden)
    if (int e = backward(h, grad_hidden, grad_weight, logZ, grad_seq, t, err, err_len)) return e;
  if (timings) *timings = t;
  return 0;
}

}  // namespace

int gvpo_from_hidden_cuda_host(GvpoFromHiddenOut& out, GvpoTerms* terms, CudaTimings* t,
                               const GvpoHiddenBatch& in, char* err, int err_len) {
  return run(&out, terms, out.grad_hidden, out.grad_weight, nullptr, nullptr, t, in, err, err_len);
}

int gvpo_from_hidden_forward_cuda_host(GvpoFromHiddenOut& out, CudaTimings* t, const GvpoHiddenBatch& in,
                                       char* err, int err_len) {
  return run(&out, nullptr, nullptr, nullptr, nullptr, nullptr, t, in, err, err_len);
}

int gvpo_from_hidden_backward_cuda_host(float* grad_hidden, float* grad_weight, CudaTimings* t,
                                        const float* logZ, const double* grad_seq, const GvpoHiddenBatch& in,
                                        char* err, int err_len) {
  return run(nullptr, nullptr, grad_hidden, grad_weight, logZ, grad_seq, t, in, err, err_len);
}

}  // namespace gvpo
