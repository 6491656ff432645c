// gvpo_from_hidden on CUDA over host arrays: the twin of native/cpu/gvpo_from_hidden.cc, composed
// from the CUDA head (head.h, token_logprobs_from_hidden.cu) with hidden and weight copied to the
// device once per call:
//   phase 1  the head's forward (live rows: mask != 0) -> l, logZ; S (of l in double) and Sref on
//            the host
//   loss     on the host (N values; gvpo_loss_cpu)
//   phase 2  gl[r] = m[r] * dL/dS[n(r)] (times 2^-e[r] where that passes float32's range) -> the
//            head's backward (with the forward's split of logZ in the one call) -> dL/dhidden,
//            dL/dweight
// Host code only, so that native/tests/test_cuda_host.cc can also run it on the CPU.
#include <cuda_runtime.h>

#include <vector>

#include "../cpu/pow2.h"
#include "../kernels.h"
#include "head.h"
#include "workspace.h"

namespace gvpo {

namespace {

// Runs phase 1, the group loss and/or phase 2 on one upload, under the workspace's lock.
// given (the two phases): the split phase 1 hands over (null: logZ alone); kept (phase 1, not null):
// where phase 1 writes it.
int run_gvpo_head(GvpoOut* out, LossAndTerms* terms, float* grad_hidden, float* grad_weight, bool accumulate,
                  const float* logZ, const double* grad_seq, CudaTimings* timings, const GvpoHiddenBatch& in, char* err,
                  int err_len, const LogZSplit* given = nullptr, LogZSplit* kept = nullptr) {
  using namespace cuda_host;
  Workspace& w = ws();
  std::lock_guard<std::mutex> guard(w.lock);
  if (int e = prepare(w, err, err_len)) return e;
  const HeadInputs head = in.head();
  DeviceHead h(head, w);
  CudaTimings t{0, 0, 0};
  if (int e = head_upload(h, t, err, err_len)) return e;
  LogZSplit split;
  if (out) {
    std::vector<double> l64((size_t)head.rows);
    if (int e = head_forward(h, out->token_logprobs, out->logZ, nullptr, &out->nonfinite_rows, t, err, err_len,
                             l64.data(), &split))
      return e;
    if (kept) *kept = split;
    gvpo_sequence_sums_cpu(*out, in, l64.data());
    if (terms) {
      *terms = gvpo_loss_cpu(out->grad_seq, out->residuals, out->seq, out->ref_seq, in.rewards, in.offsets, in.groups,
                             in.beta, in.mean_reduction);
      logZ = out->logZ;
      grad_seq = out->grad_seq;
    }
  }
  if (grad_hidden) {
    // each row at an exponent of its own, as the CPU twin: one sequence's huge dL/dS leaves the
    // others' gl as they are
    const std::vector<double> w = gvpo_token_weights_f64(in, grad_seq);
    std::vector<int> ge(w.size());
    std::vector<float> gl(w.size());
    bool scaled = false;
    for (size_t i = 0; i < w.size(); i++) {
      ge[i] = range_exponent(&w[i], 1, 1.0, 100);
      gl[i] = (float)std::ldexp(w[i], -ge[i]);
      scaled = scaled || ge[i] != 0;
    }
    if (int e = head_backward(h, grad_hidden, grad_weight, logZ, nullptr, gl.data(), nullptr, accumulate, t, err,
                              err_len, scaled ? ge.data() : nullptr, out && terms ? &split : given))
      return e;
  }
  if (timings) *timings = t;
  return 0;
}

}  // namespace

int gvpo_from_hidden_cuda_host(GvpoFromHiddenOut& out, LossAndTerms* terms, CudaTimings* t, const GvpoHiddenBatch& in,
                               char* err, int err_len) {
  return run_gvpo_head(&out, terms, out.grad_hidden, out.grad_weight, out.accumulate, nullptr, nullptr, t, in, err,
                       err_len);
}

int gvpo_from_hidden_forward_cuda_host(GvpoOut& out, CudaTimings* t, const GvpoHiddenBatch& in, char* err, int err_len,
                                       LogZSplit* split) {
  return run_gvpo_head(&out, nullptr, nullptr, nullptr, false, nullptr, nullptr, t, in, err, err_len, nullptr, split);
}

int gvpo_from_hidden_backward_cuda_host(float* grad_hidden, float* grad_weight, CudaTimings* t, const float* logZ,
                                        const double* grad_seq, const GvpoHiddenBatch& in, bool accumulate, char* err,
                                        int err_len, const LogZSplit* split) {
  return run_gvpo_head(nullptr, nullptr, grad_hidden, grad_weight, accumulate, logZ, grad_seq, t, in, err, err_len,
                       split);
}

}  // namespace gvpo
