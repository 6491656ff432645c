// gvpo_from_logits on CUDA over host arrays: the twin of native/cpu/gvpo_from_logits.cc.
// Copy in, then on one stream: token log-probs (read 1; l in double for S, and each row's (max,
// lse) for the backward), the group loss (gvpo_loss.cu, one block per group, writing per-token
// weights in double), the gradient (read 2, write 1), then copy out. Sref is composed on the host
// first (from reference token log-probs, given, or S itself on the device).
#include <cuda_runtime.h>

#include "../kernels.h"
#include "workspace.h"

namespace gvpo {

int gvpo_from_logits_cuda_host(GvpoFromLogitsOut& out, LossAndTerms* terms, CudaTimings* t, const GvpoLogitsBatch& in,
                               char* err, int err_len) {
  using namespace cuda_host;
  const int64_t N = in.sequences, T = in.tokens, V = in.vocab, G = in.groups, R = N * T;
  // Sref on the host when it is given; otherwise null: S itself, on the device (filled in below)
  const double* ref_seq = gvpo_reference_cpu(out.ref_seq, nullptr, in) ? out.ref_seq : nullptr;
  Workspace& w = ws();
  std::lock_guard<std::mutex> guard(w.lock);
  if (int e = prepare(w, err, err_len)) return e;
  const size_t zb = (size_t)R * V * dtype_bytes(in.dtype), gb = (size_t)R * V * 4;
  // In place (float32 only) the gradient is written over the device copy of the logits.
  const bool in_place = out.grad == in.logits;
  GVPO_CUDA_TRY(w.logits.reserve(zb));
  if (!in_place) GVPO_CUDA_TRY(w.grad.reserve(gb));
  GVPO_CUDA_TRY(w.targets.reserve(R * 4));
  GVPO_CUDA_TRY(w.mask.reserve(R * 4));
  GVPO_CUDA_TRY(w.lp.reserve(R * 4));
  GVPO_CUDA_TRY(w.lz.reserve(R * 4));
  GVPO_CUDA_TRY(w.lp64.reserve(R * 8));
  GVPO_CUDA_TRY(w.rmax.reserve(R * 4));
  GVPO_CUDA_TRY(w.rlse.reserve(R * 4));
  GVPO_CUDA_TRY(w.g.reserve(R * 8));
  GVPO_CUDA_TRY(w.seq.reserve(N * 8));
  GVPO_CUDA_TRY(w.gseq.reserve(N * 8));
  GVPO_CUDA_TRY(w.resid.reserve(N * 8));
  GVPO_CUDA_TRY(w.ref.reserve(N * 8));
  GVPO_CUDA_TRY(w.rewards.reserve(N * 8));
  GVPO_CUDA_TRY(w.offsets.reserve((G + 1) * 4));
  GVPO_CUDA_TRY(w.terms.reserve(5 * 8));
  float* dgrad = in_place ? (float*)w.logits.ptr : (float*)w.grad.ptr;
  Pin pin_in(in.logits, zb);
  Pin pin_out(out.grad, in_place ? 0 : gb);
  Drain drain{w.stream};  // before the pins end, even on an error return
  cudaStream_t s = w.stream;
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[0], s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(w.logits.ptr, in.logits, zb, cudaMemcpyHostToDevice, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(w.targets.ptr, in.targets, R * 4, cudaMemcpyHostToDevice, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(w.mask.ptr, in.mask, R * 4, cudaMemcpyHostToDevice, s));
  if (ref_seq) GVPO_CUDA_TRY(cudaMemcpyAsync(w.ref.ptr, ref_seq, N * 8, cudaMemcpyHostToDevice, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(w.rewards.ptr, in.rewards, N * 8, cudaMemcpyHostToDevice, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(w.offsets.ptr, in.offsets, (G + 1) * 4, cudaMemcpyHostToDevice, s));
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[1], s));
  GVPO_CUDA_TRY(token_logprobs_forward_cuda((float*)w.lp.ptr, (float*)w.lz.ptr, (double*)w.lp64.ptr, (float*)w.rmax.ptr,
                                            (float*)w.rlse.ptr, w.logits.ptr, in.dtype, (const int32_t*)w.targets.ptr,
                                            (const float*)w.mask.ptr, R, V, in.temperature, s));
  GVPO_CUDA_TRY(gvpo_loss_cuda((double*)w.seq.ptr, (double*)w.gseq.ptr, (double*)w.resid.ptr, (double*)w.g.ptr,
                               (double*)w.terms.ptr, (const double*)w.lp64.ptr, (const float*)w.mask.ptr,
                               ref_seq ? (const double*)w.ref.ptr : nullptr, (const double*)w.rewards.ptr,
                               (const int32_t*)w.offsets.ptr, G, N, T, in.beta, in.mean_reduction, s));
  GVPO_CUDA_TRY(token_logprobs_backward_cuda(
      dgrad, w.logits.ptr, in.dtype, (const int32_t*)w.targets.ptr, (const float*)w.mask.ptr, (const float*)w.rmax.ptr,
      (const float*)w.rlse.ptr, (const double*)w.g.ptr, R, V, in.temperature, s));
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[2], s));
  double t5[5];
  GVPO_CUDA_TRY(cudaMemcpyAsync(out.grad, dgrad, gb, cudaMemcpyDeviceToHost, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(out.token_logprobs, w.lp.ptr, R * 4, cudaMemcpyDeviceToHost, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(out.logZ, w.lz.ptr, R * 4, cudaMemcpyDeviceToHost, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(out.seq, w.seq.ptr, N * 8, cudaMemcpyDeviceToHost, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(out.grad_seq, w.gseq.ptr, N * 8, cudaMemcpyDeviceToHost, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(out.residuals, w.resid.ptr, N * 8, cudaMemcpyDeviceToHost, s));
  GVPO_CUDA_TRY(cudaMemcpyAsync(t5, w.terms.ptr, 5 * 8, cudaMemcpyDeviceToHost, s));
  GVPO_CUDA_TRY(cudaEventRecord(w.ev[3], s));
  GVPO_CUDA_TRY(cudaStreamSynchronize(s));
  if (!ref_seq) gvpo_reference_cpu(out.ref_seq, out.seq, in);
  *terms = {t5[0], t5[1], t5[2], t5[3], t5[4]};
  out.nonfinite_rows = 0;
  for (int64_t r = 0; r < R; r++)
    out.nonfinite_rows += in.mask[r] != 0.0f && out.token_logprobs[r] != out.token_logprobs[r];
  if (t) *t = {elapsed(w.ev[0], w.ev[1]), elapsed(w.ev[1], w.ev[2]), elapsed(w.ev[2], w.ev[3])};
  return 0;
}

}  // namespace gvpo
