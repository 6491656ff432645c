// N-API glue for the CPU ops: check every argument (again: src/validate.ts checks first),
// allocate the outputs, and hand a Task (task.h) to the sync or async runner. No math here.
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <memory>
#include <stdexcept>
#include <vector>

#include "../kernels.h"
#include "args.h"
#include "parse.h"
#include "ops.h"
#include "task.h"

namespace gvpo {

namespace {

void run_forward(const Forward& f) {
  const LogitsIn& in = f.in;
  *f.nonfinite = token_logprobs_forward_cpu(f.lp, f.lz, in.logits.data, in.dtype, in.targets.data,
                                            in.mask.data, in.rows, in.V, in.tau, in.threads);
  sequence_logprobs_cpu(f.seq, f.lp, in.mask.data, in.N, in.T);
  if (f.ref_tokens.data)
    sequence_logprobs_f64_cpu(f.ref, f.ref_tokens.data, in.mask.data, in.N, in.T);
  else if (f.ref_seq.data)
    std::memcpy(f.ref, f.ref_seq.data, in.N * sizeof(double));
  else  // no reference given: pi_theta' is the current policy (on-policy, first epoch)
    std::memcpy(f.ref, f.seq, in.N * sizeof(double));
}

// Phase 2: g[r] = m[r] * dL/dS[n(r)], then the gradient pass.
void run_backward(float* grad, const LogitsIn& in, const float* lz, const double* grad_seq) {
  std::vector<float> g((size_t)in.rows);
  for (int64_t r = 0; r < in.rows; r++) g[r] = (float)(in.mask.data[r] * grad_seq[r / in.T]);
  token_logprobs_backward_cpu(grad, in.logits.data, in.dtype, in.targets.data, lz, g.data(),
                              in.rows, in.V, in.tau, in.threads);
}

std::unique_ptr<Task> prepare_token_logprobs(const Napi::CallbackInfo& info) {
  Args a(info, "tokenLogprobs");
  LogitsIn in = parse_logits(a, false, false);
  Napi::Object r = Napi::Object::New(a.env());
  float* lp = new_f32(r, "logprobs", in.rows).Data();
  float* lz = new_f32(r, "logZ", in.rows).Data();
  auto t = make_task(a.object(), r);
  auto bad = std::make_shared<int64_t>(0);
  t->work = [=] {
    *bad = token_logprobs_forward_cpu(lp, lz, in.logits.data, in.dtype, in.targets.data,
                                      in.mask.data, in.rows, in.V, in.tau, in.threads);
  };
  t->finish = [bad](Napi::Object r) { r.Set("nonFiniteRows", Napi::Number::New(r.Env(), (double)*bad)); };
  return t;
}

std::unique_ptr<Task> prepare_token_logprobs_backward(const Napi::CallbackInfo& info) {
  Args a(info, "tokenLogprobsBackward");
  LogitsIn in = parse_logits(a, false, false);
  View<float> lz = a.f32("logZ"), g = a.f32("gradLogprobs");
  a.expect_length("logZ", lz.length, (size_t)in.rows, "rows");
  a.expect_length("gradLogprobs", g.length, (size_t)in.rows, "rows");
  Napi::Object r = Napi::Object::New(a.env());
  float* grad = grad_destination(a, in, r);
  auto t = make_task(a.object(), r);
  t->work = [=] {
    token_logprobs_backward_cpu(grad, in.logits.data, in.dtype, in.targets.data, lz.data, g.data,
                                in.rows, in.V, in.tau, in.threads);
  };
  return t;
}

std::unique_ptr<Task> prepare_sequence_logprobs(const Napi::CallbackInfo& info) {
  Args a(info, "sequenceLogprobs");
  int64_t N = a.dim("sequences"), T = a.dim("tokens");
  size_t rows = a.product({N, T}, "sequences*tokens");
  View<float> mask = a.f32("mask");
  a.expect_length("mask", mask.length, rows, "sequences*tokens");
  Napi::Value lpv = a.object().Get("tokenLogprobs");
  bool f64 = lpv.IsTypedArray() && lpv.As<Napi::TypedArray>().TypedArrayType() == napi_float64_array;
  View<float> lp32;
  View<double> lp64;
  if (f64) lp64 = a.f64("tokenLogprobs"); else lp32 = a.f32("tokenLogprobs");
  a.expect_length("tokenLogprobs", f64 ? lp64.length : lp32.length, rows, "sequences*tokens");
  Napi::Object r = Napi::Object::New(a.env());
  double* out = new_f64(r, "values", N).Data();
  auto t = make_task(a.object(), r);
  t->work = [=] {
    if (f64) sequence_logprobs_f64_cpu(out, lp64.data, mask.data, N, T);
    else sequence_logprobs_cpu(out, lp32.data, mask.data, N, T);
  };
  return t;
}

std::unique_ptr<Task> prepare_group_center(const Napi::CallbackInfo& info) {
  Args a(info, "groupCenter");
  View<double> v = a.f64("values");
  if (v.length == 0) a.range_error("values", "a non-empty Float64Array", "length 0");
  a.check_finite("values", v.data, v.length);
  View<int32_t> off = a.i32("offsets");
  a.check_offsets("offsets", off.data, off.length, (int64_t)v.length);
  Napi::Object r = Napi::Object::New(a.env());
  double* c = new_f64(r, "centered", v.length).Data();
  double* m = new_f64(r, "means", off.length - 1).Data();
  auto t = make_task(a.object(), r);
  t->work = [=] { group_center_cpu(c, m, v.data, off.data, (int64_t)off.length - 1); };
  return t;
}

std::unique_ptr<Task> prepare_gvpo_loss(const Napi::CallbackInfo& info) {
  Args a(info, "gvpoLoss");
  View<double> S = a.f64("policyLogprobs");
  if (S.length == 0) a.range_error("policyLogprobs", "a non-empty Float64Array", "length 0");
  int64_t N = (int64_t)S.length;
  a.check_finite("policyLogprobs", S.data, S.length);
  View<double> Q = a.f64("referenceLogprobs");
  a.expect_length("referenceLogprobs", Q.length, S.length, "policyLogprobs.length");
  a.check_finite("referenceLogprobs", Q.data, Q.length);
  LossIn l = parse_loss(a, N);
  Napi::Object r = Napi::Object::New(a.env());
  double* gs = new_f64(r, "gradLogprobs", N).Data();
  double* c = new_f64(r, "residuals", N).Data();
  auto t = make_task(a.object(), r);
  auto terms = std::make_shared<GvpoTerms>();
  t->work = [=] {
    *terms = gvpo_loss_cpu(gs, c, S.data, Q.data, l.rewards.data, l.offsets.data,
                           (int64_t)l.offsets.length - 1, l.beta, l.mean);
  };
  t->finish = [terms](Napi::Object r) { set_terms(r, *terms); };
  return t;
}


std::unique_ptr<Task> prepare_gvpo_forward(const Napi::CallbackInfo& info) {
  Args a(info, "gvpoForward");
  Napi::Object r = Napi::Object::New(a.env());
  Forward f = parse_forward(a, r);
  auto t = make_task(a.object(), r);
  t->work = [f] { run_forward(f); };
  t->finish = [f](Napi::Object r) { set_nonfinite(r, f); };
  return t;
}

std::unique_ptr<Task> prepare_gvpo_backward(const Napi::CallbackInfo& info) {
  Args a(info, "gvpoBackward");
  LogitsIn in = parse_logits(a, true, true);
  View<float> lz = a.f32("logZ");
  a.expect_length("logZ", lz.length, (size_t)in.rows, "sequences*tokens");
  View<double> gs = a.f64("gradLogprobs");
  a.expect_length("gradLogprobs", gs.length, (size_t)in.N, "sequences");
  Napi::Object r = Napi::Object::New(a.env());
  float* grad = grad_destination(a, in, r);
  auto t = make_task(a.object(), r);
  t->work = [=] { run_backward(grad, in, lz.data, gs.data); };
  return t;
}

std::unique_ptr<Task> prepare_gvpo_from_logits(const Napi::CallbackInfo& info) {
  Args a(info, "gvpoFromLogits");
  Napi::Object r = Napi::Object::New(a.env());
  FromLogits x = parse_from_logits(a, r);
  auto t = make_task(a.object(), r);
  t->work = [x] {
    run_forward(x.f);
    *x.terms = gvpo_loss_cpu(x.grad_seq, x.residuals, x.f.seq, x.f.ref, x.l.rewards.data, x.l.offsets.data,
                             (int64_t)x.l.offsets.length - 1, x.l.beta, x.l.mean);
    run_backward(x.grad, x.f.in, x.f.lz, x.grad_seq);
  };
  t->finish = [x](Napi::Object r) {
    set_terms(r, *x.terms);
    set_nonfinite(r, x.f);
  };
  return t;
}

// Roofline probes for bench/: {data: Float32Array, threads?, write?: boolean} -> seconds taken.
Napi::Value stream_probe(const Napi::CallbackInfo& info) {
  Args a(info, "streamProbe");
  View<float> d = a.f32("data");
  int threads = a.threads();
  bool write = a.boolean("write", false);
  auto t0 = std::chrono::steady_clock::now();
  double sink = 0;
  if (write) stream_write_cpu(d.data, (int64_t)d.length, 1.0f, threads);
  else sink = stream_read_cpu(d.data, (int64_t)d.length, threads);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Napi::Object r = Napi::Object::New(a.env());
  r.Set("seconds", Napi::Number::New(a.env(), s));
  r.Set("checksum", Napi::Number::New(a.env(), sink));
  return r;
}


}  // namespace

void register_cpu_ops(Napi::Env env, Napi::Object exports) {
#define GVPO_EXPORT(name, prepare)                                         \
  exports.Set(name, Napi::Function::New(env, run_sync<prepare>, name));    \
  exports.Set(name "Async", Napi::Function::New(env, run_async<prepare>, name "Async"));
  GVPO_EXPORT("tokenLogprobs", prepare_token_logprobs)
  GVPO_EXPORT("tokenLogprobsBackward", prepare_token_logprobs_backward)
  GVPO_EXPORT("sequenceLogprobs", prepare_sequence_logprobs)
  GVPO_EXPORT("groupCenter", prepare_group_center)
  GVPO_EXPORT("gvpoLoss", prepare_gvpo_loss)
  GVPO_EXPORT("gvpoForward", prepare_gvpo_forward)
  GVPO_EXPORT("gvpoBackward", prepare_gvpo_backward)
  GVPO_EXPORT("gvpoFromLogits", prepare_gvpo_from_logits)
#undef GVPO_EXPORT
  exports.Set("streamProbe", Napi::Function::New(env, stream_probe, "streamProbe"));
}

}  // namespace gvpo
