// The fused LM head on CUDA, host side: one call's device state and the head's two passes, shared
// by token_logprobs_from_hidden.cu (which defines them and the op's entry points) and
// gvpo_from_hidden.cu (GVPO through the same head, hidden and weight uploaded once for both
// passes). Host code only, so that native/tests/test_cuda_host.cc runs it over a stand-in runtime.
#pragma once
#include <cstdint>

#include "../kernels.h"
#include "workspace.h"

namespace gvpo {
namespace cuda_host {

// One call's device state: the inputs, and the device copies of hidden and weight (upload).
struct DeviceHead {
  const HeadInputs& in;
  Workspace& w;
  int64_t R, H, V;
  size_t esz;
  DeviceHead(const HeadInputs& b, Workspace& ws_)
      : in(b), w(ws_), R(b.rows), H(b.hidden_size), V(b.vocab), esz(dtype_bytes(b.dtype)) {}
  const void* hidden() const { return w.hidden.ptr; }
  const void* weight() const { return w.weight.ptr; }
};

// hidden and weight to the device (once per call).
int head_upload(DeviceHead& h, CudaTimings& t, char* err, int err_len);
// The forward over the rows with mask != 0: l, logZ and (entropy not null) H of every row (0 on
// masked rows), *nonfinite the live rows whose l is NaN: as token_logprobs_from_hidden_forward_cpu,
// with l before its float32 rounding (logprobs64) and each row's split of logZ (its max logit and
// the rest) where those are not null.
int head_forward(DeviceHead& h, float* logprobs, float* logZ, float* entropy, int64_t* nonfinite, CudaTimings& t,
                 char* err, int err_len, double* logprobs64 = nullptr, LogZSplit* split = nullptr);
// The backward: as token_logprobs_from_hidden_backward_cpu (row r's gl and gH given times
// 2^-grad_exp[r], null: 0; with split, the forward's, logZ is read from it).
int head_backward(DeviceHead& h, float* grad_hidden, float* grad_weight, const float* logZ, const float* entropy,
                  const float* grad_logprobs, const float* grad_entropy, bool accumulate, CudaTimings& t, char* err,
                  int err_len, const int* grad_exp = nullptr, const LogZSplit* split = nullptr);

}  // namespace cuda_host
}  // namespace gvpo
