// N-API glue for the CUDA twins of tokenLogprobs, gvpoFromLogits, tokenLogprobsFromHidden (and its
// backward) and gvpoFromHidden (and its phases) over host arrays (native/cuda): the same checks
// and outputs as the CPU ops, plus cudaTimings {h2dMs, kernelMs, d2hMs}. Compiled only when
// GVPO_WITH_CUDA is defined.
#ifdef GVPO_WITH_CUDA
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "../kernels.h"
#include "args.h"
#include "ops.h"
#include "parse.h"
#include "baton.h"

namespace gvpo {

namespace {

struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void set_timings(Napi::Object r, const CudaTimings& t) {
  Napi::Object o = Napi::Object::New(r.Env());
  o.Set("h2dMs", t.h2d_ms);
  o.Set("kernelMs", t.kernel_ms);
  o.Set("d2hMs", t.d2h_ms);
  r.Set("cudaTimings", o);
}

int64_t count_nonfinite(const float* lp, const float* mask, int64_t rows) {
  int64_t n = 0;
  for (int64_t r = 0; r < rows; r++) n += (!mask || mask[r] != 0.0f) && std::isnan(lp[r]);
  return n;
}

std::unique_ptr<Baton> prepare_cuda_token_logprobs(const Napi::CallbackInfo& info) {
  Args a(info, "tokenLogprobs");
  LogitsIn in = parse_logits(a, false, false);
  Napi::Object r = Napi::Object::New(a.env());
  float* lp = new_f32(r, "logprobs", in.rows).Data();
  float* lz = new_f32(r, "logZ", in.rows).Data();
  const SplitIo split = split_outputs(a, r, (size_t)in.rows);
  auto t = make_baton(a, r);
  auto timings = std::make_shared<CudaTimings>();
  auto bad = std::make_shared<int64_t>(0);
  t->work = [=] {
    char err[512] = {0};
    if (token_logprobs_cuda_host(lp, lz, timings.get(), in.logits.data, in.dtype, in.targets.data, in.mask.data,
                                 in.rows, in.V, in.tau, err, sizeof(err), split.row_max, split.row_lse))
      throw CudaError(std::string("tokenLogprobs (cuda): ") + err);
    *bad = count_nonfinite(lp, in.mask.data, in.rows);
  };
  t->finish = [timings, bad](Napi::Object r) {
    set_timings(r, *timings);
    set_nonfinite(r, *bad);
  };
  return t;
}

std::unique_ptr<Baton> prepare_cuda_gvpo_from_logits(const Napi::CallbackInfo& info) {
  FusedCall c = prepare_fused(info);
  auto timings = std::make_shared<CudaTimings>();
  c.baton->work = [out = c.out, terms = c.terms, x = c.x, timings] {
    char err[512] = {0};
    if (gvpo_from_logits_cuda_host(*out, terms.get(), timings.get(), x.batch, err, sizeof(err)))
      throw CudaError(std::string("gvpoFromLogits (cuda): ") + err);
  };
  c.baton->finish = [base = c.baton->finish, timings](Napi::Object r) {
    base(r);
    set_timings(r, *timings);
  };
  return std::move(c.baton);
}

// A head call's baton (HiddenCall or HeadCall): `run` (err, err_len) -> CUDA error code as its
// work, with the timings added to the result.
template <typename Call, typename Run>
std::unique_ptr<Baton> with_cuda_work(Call& c, const char* op, std::shared_ptr<CudaTimings> timings, Run run) {
  c.baton->work = [op, run] {
    char err[512] = {0};
    if (run(err, (int)sizeof(err))) throw CudaError(std::string(op) + " (cuda): " + err);
  };
  c.baton->finish = [base = c.baton->finish, timings](Napi::Object r) {
    if (base) base(r);
    set_timings(r, *timings);
  };
  return std::move(c.baton);
}

std::unique_ptr<Baton> prepare_cuda_gvpo_from_hidden(const Napi::CallbackInfo& info) {
  HiddenCall c = prepare_hidden(info, HiddenPhase::full);
  auto t = std::make_shared<CudaTimings>();
  return with_cuda_work(c, "gvpoFromHidden", t, [out = c.out, terms = c.terms, x = c.x, t](char* err, int n) {
    return gvpo_from_hidden_cuda_host(*out, terms.get(), t.get(), x.batch, err, n);
  });
}

std::unique_ptr<Baton> prepare_cuda_gvpo_from_hidden_forward(const Napi::CallbackInfo& info) {
  HiddenCall c = prepare_hidden(info, HiddenPhase::forward);
  auto t = std::make_shared<CudaTimings>();
  return with_cuda_work(c, "gvpoFromHiddenForward", t, [out = c.out, x = c.x, t, io = c.split](char* err, int n) {
    LogZSplit split;
    const int e = gvpo_from_hidden_forward_cuda_host(*out, t.get(), x.batch, err, n, io.row_max ? &split : nullptr);
    if (e == 0 && io.row_max) copy_split(split, io, (size_t)x.rows);
    return e;
  });
}

std::unique_ptr<Baton> prepare_cuda_gvpo_from_hidden_backward(const Napi::CallbackInfo& info) {
  HiddenCall c = prepare_hidden(info, HiddenPhase::backward);
  auto t = std::make_shared<CudaTimings>();
  return with_cuda_work(c, "gvpoFromHiddenBackward", t,
                        [gh = c.grad_hidden, gw = c.grad_weight, acc = c.accumulate, lz = c.logZ, gs = c.grad_seq,
                         x = c.x, t, io = c.split](char* err, int n) {
                          const LogZSplit split = io.in_max ? split_of(io, (size_t)x.rows) : LogZSplit{};
                          return gvpo_from_hidden_backward_cuda_host(gh, gw, t.get(), lz, gs, x.batch, acc, err, n,
                                                                     io.in_max ? &split : nullptr);
                        });
}

std::unique_ptr<Baton> prepare_cuda_token_logprobs_from_hidden(const Napi::CallbackInfo& info) {
  HeadCall c = prepare_head(info, false);
  auto t = std::make_shared<CudaTimings>();
  return with_cuda_work(
      c, "tokenLogprobsFromHidden", t,
      [lp = c.logprobs, lz = c.logZ, ent = c.entropy, bad = c.nonfinite, in = c.in, t, io = c.split](char* err, int n) {
        LogZSplit split;
        const int e = token_logprobs_from_hidden_forward_cuda_host(lp, lz, ent, bad.get(), t.get(), in, err, n,
                                                                   io.row_max ? &split : nullptr);
        if (e == 0 && io.row_max) copy_split(split, io, (size_t)in.rows);
        return e;
      });
}

std::unique_ptr<Baton> prepare_cuda_token_logprobs_from_hidden_backward(const Napi::CallbackInfo& info) {
  HeadCall c = prepare_head(info, true);
  auto t = std::make_shared<CudaTimings>();
  return with_cuda_work(
      c, "tokenLogprobsFromHiddenBackward", t,
      [gh = c.grad_hidden, gw = c.grad_weight, in = c.in, lz = c.fwd_logZ, ent = c.fwd_entropy, gl = c.grad_logprobs,
       ge = c.grad_entropy, acc = c.accumulate, t, io = c.split](char* err, int n) {
        const LogZSplit split = io.in_max ? split_of(io, (size_t)in.rows) : LogZSplit{};
        return token_logprobs_from_hidden_backward_cuda_host(gh, gw, t.get(), in, lz, ent, gl, ge, acc, err, n,
                                                             io.in_max ? &split : nullptr);
      });
}

}  // namespace

void register_cuda_ops(Napi::Env env, Napi::Object exports) {
  export_op<prepare_cuda_token_logprobs>(env, exports, "cudaTokenLogprobs");
  export_op<prepare_cuda_gvpo_from_logits>(env, exports, "cudaGvpoFromLogits");
  export_op<prepare_cuda_gvpo_from_hidden>(env, exports, "cudaGvpoFromHidden");
  export_op<prepare_cuda_gvpo_from_hidden_forward>(env, exports, "cudaGvpoFromHiddenForward");
  export_op<prepare_cuda_gvpo_from_hidden_backward>(env, exports, "cudaGvpoFromHiddenBackward");
  export_op<prepare_cuda_token_logprobs_from_hidden>(env, exports, "cudaTokenLogprobsFromHidden");
  export_op<prepare_cuda_token_logprobs_from_hidden_backward>(env, exports, "cudaTokenLogprobsFromHiddenBackward");
}

}  // namespace gvpo
#endif
