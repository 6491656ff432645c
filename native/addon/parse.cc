// Argument parsing shared by the CPU (ops.cc) and CUDA (cuda_ops.cc) glue: the logits batch,
// the GVPO loss inputs, phase-1 outputs and the gradient's destination, all checked (args.h)
// before anything is allocated or written.
#include "parse.h"

#include <cmath>
#include <cstdlib>
#include <string>

namespace gvpo {


LogitsIn parse_logits(const Args& a, bool sequences, bool mask_required) {
  LogitsIn in;
  in.dtype = a.dtype("dtype");
  if (sequences) {
    in.N = a.dim("sequences");
    in.T = a.dim("tokens");
    in.rows = (int64_t)a.product({in.N, in.T}, "sequences*tokens");
  } else {
    in.rows = a.dim("rows");
  }
  in.V = a.dim("vocab");
  size_t total = a.product({in.rows, in.V}, "logits");
  in.logits = a.logits("logits", in.dtype);
  a.expect_length("logits", in.logits.length, total, sequences ? "sequences*tokens*vocab" : "rows*vocab");
  in.targets = a.i32("targets");
  a.expect_length("targets", in.targets.length, (size_t)in.rows, sequences ? "sequences*tokens" : "rows");
  in.mask = a.f32("mask", !mask_required);
  if (in.mask.data) a.expect_length("mask", in.mask.length, (size_t)in.rows, sequences ? "sequences*tokens" : "rows");
  in.tau = (float)a.positive("temperature", 1.0, true);
  in.threads = a.threads();
  a.check_targets("targets", in.targets.data, in.mask.data, (size_t)in.rows, in.V);
  return in;
}

// A float32 array of N*T*V elements when the caller gave no `out` (the TypeScript layer always
// does: its own allocation turns an impossible size into a RangeError).
Napi::Float32Array new_large_f32(const Args& a, size_t n) { return Napi::Float32Array::New(a.env(), n); }

// The gradient's destination: the logits themselves (inPlace), a caller's buffer, or a new one.
float* grad_destination(const Args& a, const LogitsIn& in, Napi::Object result) {
  bool in_place = a.boolean("inPlace", false);
  size_t total = (size_t)in.rows * (size_t)in.V;
  if (in_place) {
    if (in.dtype != DType::f32)
      a.range_error("inPlace", "false for 16-bit logits (the gradient is float32)", "true");
    result.Set("gradLogits", a.object().Get("logits"));
    return (float*)in.logits.data;
  }
  View<float> out = a.f32("out", true);
  if (out.data) {
    a.expect_length("out", out.length, total, "the logits' length");
    result.Set("gradLogits", a.object().Get("out"));
    return out.data;
  }
  Napi::Float32Array g = new_large_f32(a, total);
  result.Set("gradLogits", g);
  return g.Data();
}

Napi::Float32Array new_f32(Napi::Object result, const char* name, size_t n) {
  Napi::Float32Array a = Napi::Float32Array::New(result.Env(), n);
  result.Set(name, a);
  return a;
}
Napi::Float64Array new_f64(Napi::Object result, const char* name, size_t n) {
  Napi::Float64Array a = Napi::Float64Array::New(result.Env(), n);
  result.Set(name, a);
  return a;
}

void set_terms(Napi::Object r, const GvpoTerms& t) {
  Napi::Env env = r.Env();
  r.Set("loss", Napi::Number::New(env, t.loss));
  Napi::Object terms = Napi::Object::New(env);
  terms.Set("advantage", Napi::Number::New(env, t.advantage));
  terms.Set("trustRegion", Napi::Number::New(env, t.trust_region));
  terms.Set("variance", Napi::Number::New(env, t.variance));
  terms.Set("constant", Napi::Number::New(env, t.constant));
  r.Set("terms", terms);
}


LossIn parse_loss(const Args& a, int64_t N) {
  LossIn l;
  l.rewards = a.f64("rewards");
  a.expect_length("rewards", l.rewards.length, (size_t)N, "sequences");
  a.check_finite("rewards", l.rewards.data, l.rewards.length);
  l.offsets = a.i32("offsets");
  a.check_offsets("offsets", l.offsets.data, l.offsets.length, N);
  l.beta = a.positive("beta", 0, false);
  l.mean = a.reduction() == "mean";
  return l;
}


Forward parse_forward(const Args& a, Napi::Object r) {
  Forward f;
  f.in = parse_logits(a, true, true);
  f.ref_tokens = a.f64("referenceTokenLogprobs", true);
  f.ref_seq = a.f64("referenceLogprobs", true);
  if (f.ref_tokens.data && f.ref_seq.data)
    a.range_error("referenceLogprobs", "absent when referenceTokenLogprobs is given", "both");
  if (f.ref_tokens.data) {
    a.expect_length("referenceTokenLogprobs", f.ref_tokens.length, (size_t)f.in.rows, "sequences*tokens");
    for (int64_t i = 0; i < f.in.rows; i++)  // only positions under the mask must be finite
      if (f.in.mask.data[i] != 0.0f && !std::isfinite(f.ref_tokens.data[i]))
        a.range_error("referenceTokenLogprobs", "finite numbers where the mask is non-zero",
                      "a non-finite value at index " + std::to_string(i));
  }
  if (f.ref_seq.data) {
    a.expect_length("referenceLogprobs", f.ref_seq.length, (size_t)f.in.N, "sequences");
    a.check_finite("referenceLogprobs", f.ref_seq.data, f.ref_seq.length);
  }
  f.lp = new_f32(r, "tokenLogprobs", f.in.rows).Data();
  f.lz = new_f32(r, "logZ", f.in.rows).Data();
  f.seq = new_f64(r, "policyLogprobs", f.in.N).Data();
  f.ref = new_f64(r, "referenceLogprobs", f.in.N).Data();
  return f;
}

FromLogits parse_from_logits(const Args& a, Napi::Object r) {
  FromLogits x;
  x.f = parse_forward(a, r);
  x.l = parse_loss(a, x.f.in.N);
  x.grad = grad_destination(a, x.f.in, r);
  x.grad_seq = new_f64(r, "gradLogprobs", x.f.in.N).Data();
  x.residuals = new_f64(r, "residuals", x.f.in.N).Data();
  return x;
}

void set_nonfinite(Napi::Object r, const Forward& f) {
  r.Set("nonFiniteRows", Napi::Number::New(r.Env(), (double)*f.nonfinite));
}

}  // namespace gvpo
