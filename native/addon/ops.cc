// N-API glue for the CPU ops: read the options (args.h, parse.h), allocate the outputs, and hand
// a Baton (baton.h) to the sync or async runner. The math lives in native/cpu.
#include <chrono>
#include <memory>

#include "../kernels.h"
#include "args.h"
#include "baton.h"
#include "ops.h"
#include "parse.h"

namespace gvpo {

namespace {

std::unique_ptr<Baton> prepare_token_logprobs(const Napi::CallbackInfo& info) {
  Args a(info, "tokenLogprobs");
  LogitsIn in = parse_logits(a, false, false);
  Napi::Object r = Napi::Object::New(a.env());
  float* lp = new_f32(r, "logprobs", in.rows).Data();
  float* lz = new_f32(r, "logZ", in.rows).Data();
  const SplitIo split = split_outputs(a, r, (size_t)in.rows);
  auto t = make_baton(a, r);
  auto bad = std::make_shared<int64_t>(0);
  t->work = [=] {
    *bad = token_logprobs_forward_cpu(lp, lz, split.row_max, split.row_lse, in.logits.data, in.dtype, in.targets.data,
                                      in.mask.data, in.rows, in.V, in.tau, in.threads);
  };
  t->finish = [bad](Napi::Object r) { set_nonfinite(r, *bad); };
  return t;
}

std::unique_ptr<Baton> prepare_token_logprobs_backward(const Napi::CallbackInfo& info) {
  Args a(info, "tokenLogprobsBackward");
  LogitsIn in = parse_logits(a, false, false);
  View<float> lz = a.f32("logZ"), w = a.f32("gradTokenLogprobs");
  a.expect_length("logZ", lz.length, (size_t)in.rows);
  a.expect_length("gradTokenLogprobs", w.length, (size_t)in.rows);
  const SplitIo split = split_inputs(a, (size_t)in.rows);
  Napi::Object r = Napi::Object::New(a.env());
  float* grad = grad_destination(a, in, r);
  auto t = make_baton(a, r);
  t->work = [=] {
    token_logprobs_backward_cpu(grad, in.logits.data, in.dtype, in.targets.data, in.mask.data, split.in_max,
                                split.in_max ? split.in_lse : lz.data, w.data, in.rows, in.V, in.tau, in.threads);
  };
  return t;
}

std::unique_ptr<Baton> prepare_sequence_logprobs(const Napi::CallbackInfo& info) {
  Args a(info, "sequenceLogprobs");
  int64_t N = a.dim("sequences"), T = a.dim("tokens");
  size_t rows = a.product({N, T}, "sequences*tokens");
  View<float> mask = a.f32("mask");
  a.expect_length("mask", mask.length, rows);
  Napi::Value lpv = a.get("tokenLogprobs");
  bool f64 = lpv.IsTypedArray() && lpv.As<Napi::TypedArray>().TypedArrayType() == napi_float64_array;
  View<float> lp32;
  View<double> lp64;
  if (f64)
    lp64 = a.f64("tokenLogprobs");
  else
    lp32 = a.f32("tokenLogprobs");
  a.expect_length("tokenLogprobs", f64 ? lp64.length : lp32.length, rows);
  Napi::Object r = Napi::Object::New(a.env());
  double* out = new_f64(r, "values", N).Data();
  auto t = make_baton(a, r);
  t->work = [=] {
    if (f64)
      sequence_logprobs_f64_cpu(out, lp64.data, mask.data, N, T);
    else
      sequence_logprobs_cpu(out, lp32.data, mask.data, N, T);
  };
  return t;
}

std::unique_ptr<Baton> prepare_group_center(const Napi::CallbackInfo& info) {
  Args a(info, "groupCenter");
  View<double> v = a.f64("values");
  View<int32_t> off = a.offsets("offsets", (int64_t)v.length);
  Napi::Object r = Napi::Object::New(a.env());
  double* c = new_f64(r, "centered", v.length).Data();
  double* m = new_f64(r, "means", off.length - 1).Data();
  auto t = make_baton(a, r);
  t->work = [=] { group_center_cpu(c, m, v.data, off.data, (int64_t)off.length - 1); };
  return t;
}

std::unique_ptr<Baton> prepare_gvpo_loss(const Napi::CallbackInfo& info) {
  Args a(info, "gvpoLoss");
  View<double> S = a.f64("policyLogprobs"), Q = a.f64("referenceLogprobs"), R = a.f64("rewards");
  a.expect_length("referenceLogprobs", Q.length, S.length);
  a.expect_length("rewards", R.length, S.length);
  View<int32_t> off = a.offsets("offsets", (int64_t)S.length);
  const double beta = a.number("beta", 0.0);
  const bool mean = a.mean_reduction();
  Napi::Object r = Napi::Object::New(a.env());
  double* gs = new_f64(r, "gradLogprobs", S.length).Data();
  double* c = new_f64(r, "residuals", S.length).Data();
  auto t = make_baton(a, r);
  auto terms = std::make_shared<LossAndTerms>();
  t->work = [=] {
    *terms = gvpo_loss_cpu(gs, c, S.data, Q.data, R.data, off.data, (int64_t)off.length - 1, beta, mean);
  };
  t->finish = [terms](Napi::Object r) { set_terms(r, *terms); };
  return t;
}

std::unique_ptr<Baton> prepare_gvpo_forward(const Napi::CallbackInfo& info) {
  Args a(info, "gvpoForward");
  BatchIn x = parse_batch(a, false);
  Napi::Object r = Napi::Object::New(a.env());
  auto out = std::make_shared<GvpoFromLogitsOut>(allocate_outputs(a, x.in, r, false));
  const SplitIo split = split_outputs(a, r, (size_t)x.in.rows);
  auto t = make_baton(a, r);
  t->work = [out, x, split] { gvpo_forward_cpu(*out, x.batch, x.in.threads, split.row_max, split.row_lse); };
  t->finish = [out](Napi::Object r) { set_nonfinite(r, out->nonfinite_rows); };
  return t;
}

std::unique_ptr<Baton> prepare_gvpo_backward(const Napi::CallbackInfo& info) {
  Args a(info, "gvpoBackward");
  BatchIn x = parse_batch(a, false);
  View<float> lz = a.f32("logZ");
  a.expect_length("logZ", lz.length, (size_t)x.in.rows);
  View<double> gs = a.f64("gradLogprobs");
  a.expect_length("gradLogprobs", gs.length, (size_t)x.in.N);
  const SplitIo split = split_inputs(a, (size_t)x.in.rows);
  Napi::Object r = Napi::Object::New(a.env());
  float* grad = grad_destination(a, x.in, r);
  auto t = make_baton(a, r);
  t->work = [=] { gvpo_backward_cpu(grad, lz.data, gs.data, x.batch, x.in.threads, split.in_max, split.in_lse); };
  return t;
}

std::unique_ptr<Baton> prepare_gvpo_from_logits(const Napi::CallbackInfo& info) {
  FusedCall c = prepare_fused(info);
  c.baton->work = [out = c.out, terms = c.terms, x = c.x] {
    *terms = gvpo_from_logits_cpu(*out, x.batch, x.in.threads);
  };
  return std::move(c.baton);
}

// Roofline probes for bench/: {data: Float32Array, threads?, write?: boolean} -> seconds taken.
Napi::Value stream_probe(const Napi::CallbackInfo& info) {
  Args a(info, "streamProbe");
  View<float> d = a.f32("data");
  int threads = a.threads();
  bool write = a.boolean("write", false);
  a.check_unchanged();  // a getter of threads or write may have detached data
  auto t0 = std::chrono::steady_clock::now();
  double sink = 0;
  if (write)
    stream_write_cpu(d.data, (int64_t)d.length, 1.0f, threads);
  else
    sink = stream_read_cpu(d.data, (int64_t)d.length, threads);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Napi::Object r = Napi::Object::New(a.env());
  r.Set("seconds", Napi::Number::New(a.env(), s));
  r.Set("checksum", Napi::Number::New(a.env(), sink));
  return r;
}

// The exp-throughput probe for bench/: {iterations, threads?} -> {seconds, elements}.
Napi::Value exp_probe(const Napi::CallbackInfo& info) {
  Args a(info, "expProbe");
  const int64_t iterations = a.dim("iterations");
  const int threads = a.threads();
  a.check_unchanged();
  auto t0 = std::chrono::steady_clock::now();
  const double elements = exp_probe_cpu(iterations, threads);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Napi::Object r = Napi::Object::New(a.env());
  r.Set("seconds", Napi::Number::New(a.env(), s));
  r.Set("elements", Napi::Number::New(a.env(), elements));
  return r;
}

// The bfloat16 dot-product peak probe for bench/: {iterations, threads?} -> {seconds, flops}
// (flops 0 where the CPU has no AVX512_BF16 or GVPO_SIMD turned it off).
Napi::Value bf16_dot_probe(const Napi::CallbackInfo& info) {
  Args a(info, "bf16DotProbe");
  const int64_t iterations = a.dim("iterations");
  const int threads = a.threads();
  a.check_unchanged();
  auto t0 = std::chrono::steady_clock::now();
  const double flops = bf16_dot_probe_cpu(iterations, threads);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Napi::Object r = Napi::Object::New(a.env());
  r.Set("seconds", Napi::Number::New(a.env(), s));
  r.Set("flops", Napi::Number::New(a.env(), flops));
  return r;
}

}  // namespace

void register_cpu_ops(Napi::Env env, Napi::Object exports) {
  export_op<prepare_token_logprobs>(env, exports, "tokenLogprobs");
  export_op<prepare_token_logprobs_backward>(env, exports, "tokenLogprobsBackward");
  export_op<prepare_sequence_logprobs>(env, exports, "sequenceLogprobs");
  export_op<prepare_group_center>(env, exports, "groupCenter");
  export_op<prepare_gvpo_loss>(env, exports, "gvpoLoss");
  export_op<prepare_gvpo_forward>(env, exports, "gvpoForward");
  export_op<prepare_gvpo_backward>(env, exports, "gvpoBackward");
  export_op<prepare_gvpo_from_logits>(env, exports, "gvpoFromLogits");
  exports.Set("streamProbe", Napi::Function::New(env, stream_probe, "streamProbe"));
  exports.Set("expProbe", Napi::Function::New(env, exp_probe, "expProbe"));
  exports.Set("bf16DotProbe", Napi::Function::New(env, bf16_dot_probe, "bf16DotProbe"));
}

}  // namespace gvpo
