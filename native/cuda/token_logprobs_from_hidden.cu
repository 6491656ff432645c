// token_logprobs_from_hidden on CUDA over host arrays: the twin of
// native/cpu/token_logprobs_from_hidden.cc, and the head gvpo_from_hidden.cu runs GVPO through.
//
// hidden (R x H) and weight (V x H) are copied to the device once per call; the rows that take
// part (the CPU twin's rows: head_forward_rows, head_backward_rows) are processed in chunks of c
// rows, gathered into a dense c x H buffer (row_copy.cu; a masked row's values, NaN included,
// never reach a product):
//   forward   Z = Hc W^T (gemm.cu, float32, c x V) -> token_logprobs_forward_cuda -> l (in double
//             too), logZ and its split (the row's max, the rest); head_entropy_cuda -> H (on request)
//   backward  Z = Hc W^T again -> dZ in place (token_logprobs_backward_cuda, or head_softmax_grad_cuda
//             when an entropy gradient is given) -> dHc = dZ W (scattered to the chunk's rows of
//             dH), dW += dZ^T Hc
// The only buffer that grows with V per row is Z: c x V floats with c chosen so that it holds at
// most 1/8 of the float32 logits of the batch (at least 4 MiB, at most 256 MiB); nothing of size
// R*V exists. Host code only (the kernels are in gemm.cu, row_copy.cu, token_logprobs.cu,
// head_rows.cu), so that native/tests/test_cuda_host.cc can also run it on the CPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "../cpu/pow2.h"
#include "../kernels.h"
#include "head.h"
#include "workspace.h"

namespace gvpo {

namespace cuda_host {

namespace {

// Rows per chunk: c x V floats of logits within 1/8 of the batch's (>= 4 MiB, <= 256 MiB), and
// at most 65535 row tiles of the GEMM (its grid's y extent; reached only when V <= 8).
int64_t chunk_rows(int64_t rows, int64_t live, int64_t V) {
  const double logits = (double)rows * V * 4;
  const double cap = std::min(256.0 * (1 << 20), std::max(4.0 * (1 << 20), logits / 8));
  const int64_t c = std::min<int64_t>(live, (int64_t)(cap / ((double)V * 4)));
  return std::max<int64_t>(1, std::min<int64_t>(c, 65535 * 128));
}

// The rows idx[0..n) to the device: their indices (w.offsets), targets (w.targets) and per-row
// float arrays into the given buffers (an empty array is skipped).
int upload_rows(DeviceHead& h, const std::vector<int32_t>& idx,
                std::initializer_list<std::pair<Buffer*, const std::vector<float>*>> arrays, char* err, int err_len) {
  Workspace& w = h.w;
  const size_t n = idx.size();
  std::vector<int32_t> y;
  for (int32_t r : idx) y.push_back(h.in.targets[r]);
  GVPO_CUDA_TRY(w.offsets.reserve(n * 4 + 4));  // the live rows' indices
  GVPO_CUDA_TRY(w.targets.reserve(n * 4 + 4));
  for (auto& a : arrays) GVPO_CUDA_TRY(a.first->reserve(n * 4 + 4));
  if (n == 0) return 0;
  GVPO_CUDA_TRY(cudaMemcpyAsync(w.offsets.ptr, idx.data(), n * 4, cudaMemcpyHostToDevice, w.stream));
  GVPO_CUDA_TRY(cudaMemcpyAsync(w.targets.ptr, y.data(), n * 4, cudaMemcpyHostToDevice, w.stream));
  for (auto& a : arrays)
    if (!a.second->empty())
      GVPO_CUDA_TRY(cudaMemcpyAsync(a.first->ptr, a.second->data(), n * 4, cudaMemcpyHostToDevice, w.stream));
  GVPO_CUDA_TRY(cudaStreamSynchronize(w.stream));  // the host arrays end with the caller
  return 0;
}

// Z (c x V) = logits of the chunk's rows: Hc gathered from hidden, then Hc W^T.
int chunk_logits(DeviceHead& h, const int32_t* d_idx, int64_t c, char* err, int err_len) {
  Workspace& w = h.w;
  GVPO_CUDA_TRY(gather_rows_cuda(w.hchunk.ptr, h.hidden(), h.in.dtype, d_idx, c, h.H, w.stream));
  GVPO_CUDA_TRY(gemm_cuda((float*)w.logits.ptr, h.V, w.hchunk.ptr, h.in.dtype, h.H, 1, h.weight(), h.in.dtype, 1, h.H,
                          c, h.V, h.H, false, w.stream));
  return 0;
}

int reserve_chunks(DeviceHead& h, int64_t c, bool backward, char* err, int err_len) {
  Workspace& w = h.w;
  GVPO_CUDA_TRY(w.logits.reserve((size_t)(c * h.V) * 4));
  GVPO_CUDA_TRY(w.hchunk.reserve((size_t)(c * h.H) * h.esz));
  if (backward) GVPO_CUDA_TRY(w.grad.reserve((size_t)(c * h.H) * 4));
  return 0;
}

// What the forward gives for the rows it ran on, each indexed like them: l in double, logZ, the
// split of logZ (row max, rest) and H (when asked for).
struct RowsOut {
  std::vector<double> l;
  std::vector<float> lz, shift, rel, ent;
};

// The forward over the rows idx (ent: with H).
int forward_rows_of(DeviceHead& h, const std::vector<int32_t>& idx, RowsOut& o, bool ent, CudaTimings& t, char* err,
                    int err_len) {
  Workspace& w = h.w;
  const int64_t live = (int64_t)idx.size(), c = chunk_rows(h.R, live, h.V);
  const std::vector<float> none;
  if (int e = upload_rows(h, idx, {{&w.lp, &none}, {&w.lz, &none}, {&w.ent, &none}, {&w.rmax, &none}, {&w.rlse, &none}},
                          err, err_len))
    return e;
  GVPO_CUDA_TRY(w.lp64.reserve((size_t)live * 8 + 8));
  if (int e = reserve_chunks(h, c, false, err, err_len)) return e;
  o.l.resize((size_t)live);
  o.lz.resize((size_t)live);
  o.shift.resize((size_t)live);
  o.rel.resize((size_t)live);
  if (ent) o.ent.resize((size_t)live);
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[1], w.stream));
  for (int64_t b = 0; b < live; b += c) {
    const int64_t m = std::min(c, live - b);
    if (int e = chunk_logits(h, (const int32_t*)w.offsets.ptr + b, m, err, err_len)) return e;
    GVPO_CUDA_TRY(token_logprobs_forward_cuda((float*)w.lp.ptr + b, (float*)w.lz.ptr + b, (double*)w.lp64.ptr + b,
                                              (float*)w.rmax.ptr + b, (float*)w.rlse.ptr + b, w.logits.ptr, DType::f32,
                                              (const int32_t*)w.targets.ptr + b, nullptr, m, h.V, h.in.temperature,
                                              w.stream));
    if (ent)
      GVPO_CUDA_TRY(
          head_entropy_cuda((float*)w.ent.ptr + b, (const float*)w.logits.ptr, m, h.V, h.in.temperature, w.stream));
  }
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[2], w.stream));
  if (live) {
    GVPO_CUDA_TRY(cudaMemcpyAsync(o.l.data(), w.lp64.ptr, live * 8, cudaMemcpyDeviceToHost, w.stream));
    GVPO_CUDA_TRY(cudaMemcpyAsync(o.lz.data(), w.lz.ptr, live * 4, cudaMemcpyDeviceToHost, w.stream));
    GVPO_CUDA_TRY(cudaMemcpyAsync(o.shift.data(), w.rmax.ptr, live * 4, cudaMemcpyDeviceToHost, w.stream));
    GVPO_CUDA_TRY(cudaMemcpyAsync(o.rel.data(), w.rlse.ptr, live * 4, cudaMemcpyDeviceToHost, w.stream));
    if (ent) GVPO_CUDA_TRY(cudaMemcpyAsync(o.ent.data(), w.ent.ptr, live * 4, cudaMemcpyDeviceToHost, w.stream));
  }
  GVPO_CUDA_TRY(cudaStreamSynchronize(w.stream));
  t.kernel_ms += elapsed(w.ev[1], w.ev[2]);
  return 0;
}

}  // namespace

int head_upload(DeviceHead& h, CudaTimings& t, char* err, int err_len) {
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

int head_forward(DeviceHead& h, float* logprobs, float* logZ, float* entropy, int64_t* nonfinite, CudaTimings& t,
                 char* err, int err_len, double* logprobs64, LogZSplit* split) {
  const std::vector<int32_t> idx = head_forward_rows(h.in);
  RowsOut o;
  if (int e = forward_rows_of(h, idx, o, entropy != nullptr, t, err, err_len)) return e;
  for (int64_t r = 0; r < h.R; r++) {  // masked rows
    logprobs[r] = logZ[r] = 0.0f;
    if (entropy) entropy[r] = 0.0f;
    if (logprobs64) logprobs64[r] = 0.0;
  }
  if (split) {
    split->shift.assign((size_t)h.R, 0.0f);
    split->rel.assign((size_t)h.R, 0.0f);
  }
  int64_t bad = 0;
  for (size_t i = 0; i < idx.size(); i++) {
    bad += head_store_row(logprobs, logZ, entropy, idx[i], o.l[i], o.lz[i], entropy ? o.ent[i] : 0.0, h.V, logprobs64);
    if (split) split->shift[idx[i]] = o.shift[i], split->rel[idx[i]] = o.rel[i];
  }
  *nonfinite = bad;
  return 0;
}

int head_backward(DeviceHead& h, float* grad_hidden, float* grad_weight, const float* logZ, const float* entropy,
                  const float* grad_logprobs, const float* grad_entropy, bool accumulate, CudaTimings& t, char* err,
                  int err_len, const int* grad_exp, const LogZSplit* split) {
  Workspace& w = h.w;
  const size_t dhb = (size_t)(h.R * h.H) * 4, dwb = (size_t)(h.V * h.H) * 4;
  HeadRows rows = head_backward_rows(h.in, logZ, entropy, grad_logprobs, grad_entropy, split);
  const std::vector<int32_t>& idx = rows.idx;
  const int64_t live = (int64_t)idx.size(), c = chunk_rows(h.R, live, h.V);
  if (live == 0) {
    std::memset(grad_hidden, 0, dhb);
    if (!accumulate) std::memset(grad_weight, 0, dwb);
    return 0;
  }
  if (!rows.needs_entropy.empty()) {  // H of the rows with gH != 0, from one more forward pass
    std::vector<int32_t> sub;
    for (int32_t i : rows.needs_entropy) sub.push_back(idx[i]);
    RowsOut o;
    if (int e = forward_rows_of(h, sub, o, true, t, err, err_len)) return e;
    for (size_t j = 0; j < sub.size(); j++) {
      float l = 0.0f, z = 0.0f, hj = 0.0f;  // head_store_row's clamps, on one value
      head_store_row(&l, &z, &hj, 0, o.l[j], o.lz[j], o.ent[j], h.V);
      rows.entropy[rows.needs_entropy[j]] = hj;
    }
  }
  bool any_h = false;
  for (float g : rows.grad_entropy) any_h = any_h || g != 0.0f;
  // Coefficients g/tau past 2^100 run scaled by 2^-local[i] (pow2.h), an exponent per row as in
  // the CPU twin, so that one row's huge upstream leaves the others' dH exact; row i's dH is scaled
  // back by 2^(grad_exp + local[i]) = 2^re[i] at the end. dW sums over rows: they enter it at the
  // largest, e (row i's dZ times 2^-(e - re[i]), scale_rows_pow2_cuda between the two products),
  // and dW is scaled back by 2^e.
  const float inv_tau = 1.0f / h.in.temperature;
  std::vector<int> local((size_t)live), re((size_t)live);
  int e2 = 0;
  for (int64_t i = 0; i < live; i++) {
    local[i] = std::max(range_exponent(&rows.grad_logprob[i], 1, inv_tau, 100),
                        range_exponent(&rows.grad_entropy[i], 1, inv_tau, 100));
    re[i] = (grad_exp ? grad_exp[idx[i]] : 0) + local[i];
    e2 = std::max(e2, re[i]);
  }
  std::vector<int32_t> dw_shift;  // only where the rows' exponents differ
  if (std::any_of(re.begin(), re.end(), [e2](int x) { return x != e2; }))
    for (int x : re) dw_shift.push_back(e2 - x);
  // gl 2^-local in double for the tokenLogprobs backward kernel (g/tau then rounded once, as the
  // CPU's scaled_coef: a float32 gl 2^-local could be subnormal, or 0); in float32 for the entropy
  // path's kernel
  std::vector<double> gl64((size_t)live);
  for (int64_t i = 0; i < live; i++) {
    gl64[i] = std::ldexp((double)rows.grad_logprob[i], -local[i]);
    if (local[i]) {
      rows.grad_logprob[i] = (float)gl64[i];
      rows.grad_entropy[i] = (float)std::ldexp((double)rows.grad_entropy[i], -local[i]);
    }
  }
  // Under accumulate at a scale 2^-e2, the caller's dW is set aside and added back once the
  // batch's own dW is scaled to its true size, as the CPU twin does (scaling the caller's values
  // down by 2^-e2 and back would flush those below about 2^(e2 - 149) to 0); at e2 = 0 it joins
  // the sum on the device.
  std::vector<float> prior;
  if (accumulate && e2) prior.assign(grad_weight, grad_weight + h.V * h.H);
  const std::vector<float> none;
  if (int e = upload_rows(h, idx,
                          {{&w.lp, &rows.grad_logprob},
                           {&w.lz, &rows.logZ},
                           {&w.rmax, &rows.shift},
                           {&w.g, any_h ? &rows.grad_entropy : &none},
                           {&w.ent, any_h ? &rows.entropy : &none}},
                          err, err_len))
    return e;
  if (int e = reserve_chunks(h, c, true, err, err_len)) return e;
  GVPO_CUDA_TRY(w.lp64.reserve((size_t)live * 8));
  if (!dw_shift.empty()) GVPO_CUDA_TRY(w.dwshift.reserve((size_t)live * 4));
  GVPO_CUDA_TRY(w.dhidden.reserve(dhb));
  GVPO_CUDA_TRY(w.dweight.reserve(dwb));
  Pin ph(grad_hidden, dhb), pw(grad_weight, dwb);
  Drain drain{w.stream};  // before the pins and host arrays end, even on an error return
  GVPO_CUDA_TRY(cudaMemcpyAsync(w.lp64.ptr, gl64.data(), (size_t)live * 8, cudaMemcpyHostToDevice, w.stream));
  if (!dw_shift.empty())
    GVPO_CUDA_TRY(cudaMemcpyAsync(w.dwshift.ptr, dw_shift.data(), (size_t)live * 4, cudaMemcpyHostToDevice, w.stream));
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[1], w.stream));
  GVPO_CUDA_TRY(cudaMemsetAsync(w.dhidden.ptr, 0, dhb, w.stream));
  if (accumulate && !e2) {
    GVPO_CUDA_TRY(cudaMemcpyAsync(w.dweight.ptr, grad_weight, dwb, cudaMemcpyHostToDevice, w.stream));
  } else
    GVPO_CUDA_TRY(cudaMemsetAsync(w.dweight.ptr, 0, dwb, w.stream));
  float* Z = (float*)w.logits.ptr;
  for (int64_t b = 0; b < live; b += c) {
    const int64_t m = std::min(c, live - b);
    const int32_t* d_idx = (const int32_t*)w.offsets.ptr + b;
    const int32_t* d_y = (const int32_t*)w.targets.ptr + b;
    if (int e = chunk_logits(h, d_idx, m, err, err_len)) return e;
    if (any_h)
      GVPO_CUDA_TRY(head_softmax_grad_cuda(Z, d_y, (const float*)w.rmax.ptr + b, (const float*)w.lz.ptr + b,
                                           (const float*)w.ent.ptr + b, (const float*)w.lp.ptr + b,
                                           (const float*)w.g.ptr + b, m, h.V, h.in.temperature, w.stream));
    else
      GVPO_CUDA_TRY(token_logprobs_backward_cuda(Z, Z, DType::f32, d_y, nullptr, (const float*)w.rmax.ptr + b,
                                                 (const float*)w.lz.ptr + b, (const double*)w.lp64.ptr + b, m, h.V,
                                                 h.in.temperature, w.stream));
    // dHc (m x H) = dZ W: A(r, v) = Z[r*V + v], B(v, h) = W[v*H + h]
    GVPO_CUDA_TRY(gemm_cuda((float*)w.grad.ptr, h.H, Z, DType::f32, h.V, 1, h.weight(), h.in.dtype, h.H, 1, m, h.H, h.V,
                            false, w.stream));
    GVPO_CUDA_TRY(scatter_rows_cuda((float*)w.dhidden.ptr, (const float*)w.grad.ptr, d_idx, m, h.H, w.stream));
    // the rows of smaller exponents brought to dW's (the batch's largest), in place: dZ is not read again
    if (!dw_shift.empty()) GVPO_CUDA_TRY(scale_rows_pow2_cuda(Z, (const int32_t*)w.dwshift.ptr + b, m, h.V, w.stream));
    // dW (V x H) += dZ^T Hc: A(v, r) = Z[r*V + v], B(r, h) = Hc[r*H + h]
    GVPO_CUDA_TRY(gemm_cuda((float*)w.dweight.ptr, h.H, Z, DType::f32, 1, h.V, w.hchunk.ptr, h.in.dtype, h.H, 1, h.V,
                            h.H, m, true, w.stream));
  }
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[2], w.stream));
  GVPO_CUDA_TRY(cudaMemcpyAsync(grad_hidden, w.dhidden.ptr, dhb, cudaMemcpyDeviceToHost, w.stream));
  GVPO_CUDA_TRY(cudaMemcpyAsync(grad_weight, w.dweight.ptr, dwb, cudaMemcpyDeviceToHost, w.stream));
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[3], w.stream));
  GVPO_CUDA_TRY(cudaStreamSynchronize(w.stream));
  t.kernel_ms += elapsed(w.ev[1], w.ev[2]);
  t.d2h_ms += elapsed(w.ev[2], w.ev[3]);
  for (int64_t i = 0; i < live; i++)
    if (re[i] != 0) scale_pow2(grad_hidden + (size_t)idx[i] * h.H, h.H, re[i]);
  if (e2) scale_pow2(grad_weight, h.V * h.H, e2);
  for (size_t i = 0; i < prior.size(); i++) grad_weight[i] += prior[i];
  return 0;
}

}  // namespace cuda_host

int token_logprobs_from_hidden_forward_cuda_host(float* logprobs, float* logZ, float* entropy, int64_t* nonfinite_rows,
                                                 CudaTimings* timings, const HeadInputs& in, char* err, int err_len,
                                                 LogZSplit* split) {
  using namespace cuda_host;
  Workspace& w = ws();
  std::lock_guard<std::mutex> guard(w.lock);
  if (int e = prepare(w, err, err_len)) return e;
  DeviceHead h(in, w);
  CudaTimings t{0, 0, 0};
  if (int e = head_upload(h, t, err, err_len)) return e;
  if (int e = head_forward(h, logprobs, logZ, entropy, nonfinite_rows, t, err, err_len, nullptr, split)) return e;
  if (timings) *timings = t;
  return 0;
}

int token_logprobs_from_hidden_backward_cuda_host(float* grad_hidden, float* grad_weight, CudaTimings* timings,
                                                  const HeadInputs& in, const float* logZ, const float* entropy,
                                                  const float* grad_logprobs, const float* grad_entropy,
                                                  bool accumulate, char* err, int err_len, const LogZSplit* split) {
  using namespace cuda_host;
  Workspace& w = ws();
  std::lock_guard<std::mutex> guard(w.lock);
  if (int e = prepare(w, err, err_len)) return e;
  DeviceHead h(in, w);
  CudaTimings t{0, 0, 0};
  if (int e = head_upload(h, t, err, err_len)) return e;
  if (int e = head_backward(h, grad_hidden, grad_weight, logZ, entropy, grad_logprobs, grad_entropy, accumulate, t, err,
                            err_len, nullptr, split))
    return e;
  if (timings) *timings = t;
  return 0;
}

}  // namespace gvpo
