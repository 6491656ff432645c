// N-API glue for the CUDA twins of tokenLogprobs and gvpoFromLogits over host arrays
// (native/cuda): the same checks and outputs as the CPU ops, plus cudaTimings
// {h2dMs, kernelMs, d2hMs}. Compiled only when GVPO_WITH_CUDA is defined.
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
  auto t = make_baton(a, r);
  auto timings = std::make_shared<CudaTimings>();
  auto bad = std::make_shared<int64_t>(0);
  t->work = [=] {
    char err[512] = {0};
    if (token_logprobs_cuda_host(lp, lz, timings.get(), in.logits.data, in.dtype, in.targets.data, in.mask.data,
                                 in.rows, in.V, in.tau, err, sizeof(err)))
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

}  // namespace

void register_cuda_ops(Napi::Env env, Napi::Object exports) {
  export_op<prepare_cuda_token_logprobs>(env, exports, "cudaTokenLogprobs");
  export_op<prepare_cuda_gvpo_from_logits>(env, exports, "cudaGvpoFromLogits");
}

}  // namespace gvpo
#endif
