// See parse.h. The order of reads follows src/ops/normalize.ts, which has refused everything
// wrong before the addon is called.
#include "parse.h"

#include <algorithm>

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
  const size_t total = a.product({in.rows, in.V}, "logits");
  in.logits = a.logits("logits", in.dtype);
  a.expect_length("logits", in.logits.length, total);
  in.targets = a.i32("targets");
  a.expect_length("targets", in.targets.length, (size_t)in.rows);
  in.mask = a.f32("mask", !mask_required);
  if (in.mask.data) a.expect_length("mask", in.mask.length, (size_t)in.rows);
  in.tau = (float)a.number("temperature", 1.0);
  in.threads = a.threads();
  a.check_targets(in.targets.data, in.mask.data, (size_t)in.rows, in.V);
  return in;
}

void parse_sequence_inputs(const Args& a, GvpoBatch& b, int64_t rows, bool loss) {
  View<double> ref_tokens = a.f64("referenceTokenLogprobs", true), ref_seq = a.f64("referenceLogprobs", true);
  if (ref_tokens.data) a.expect_length("referenceTokenLogprobs", ref_tokens.length, (size_t)rows);
  if (ref_seq.data) a.expect_length("referenceLogprobs", ref_seq.length, (size_t)b.sequences);
  b.ref_token_logprobs = ref_tokens.data;
  b.ref_seq = ref_tokens.data ? nullptr : ref_seq.data;
  b.rewards = nullptr;
  b.offsets = nullptr;
  b.groups = 0;
  b.beta = 0.0;
  b.mean_reduction = true;
  if (loss) {
    View<double> rewards = a.f64("rewards");
    a.expect_length("rewards", rewards.length, (size_t)b.sequences);
    View<int32_t> offsets = a.offsets("offsets", b.sequences);
    b.rewards = rewards.data;
    b.offsets = offsets.data;
    b.groups = (int64_t)offsets.length - 1;
    b.beta = a.number("beta", 0.0);
    b.mean_reduction = a.mean_reduction();
  }
}

BatchIn parse_batch(const Args& a, bool loss) {
  BatchIn x;
  x.in = parse_logits(a, true, true);
  const LogitsIn& in = x.in;
  GvpoLogitsBatch& b = x.batch;
  b.logits = in.logits.data;
  b.dtype = in.dtype;
  b.targets = in.targets.data;
  b.mask = in.mask.data;
  b.sequences = in.N;
  b.tokens = in.T;
  b.vocab = in.V;
  b.temperature = in.tau;
  parse_sequence_inputs(a, b, in.rows, loss);
  return x;
}

GvpoFromLogitsOut allocate_outputs(const Args& a, const LogitsIn& in, Napi::Object r, bool loss) {
  GvpoFromLogitsOut o{};
  o.token_logprobs = new_f32(r, "tokenLogprobs", in.rows).Data();
  o.logZ = new_f32(r, "logZ", in.rows).Data();
  o.seq = new_f64(r, "policyLogprobs", in.N).Data();
  o.ref_seq = new_f64(r, "referenceLogprobs", in.N).Data();
  if (loss) {
    o.grad = grad_destination(a, in, r);
    o.grad_seq = new_f64(r, "gradLogprobs", in.N).Data();
    o.residuals = new_f64(r, "residuals", in.N).Data();
  }
  return o;
}

FusedCall prepare_fused(const Napi::CallbackInfo& info) {
  Args a(info, "gvpoFromLogits");
  FusedCall c;
  c.x = parse_batch(a, true);
  Napi::Object r = Napi::Object::New(a.env());
  c.out = std::make_shared<GvpoFromLogitsOut>(allocate_outputs(a, c.x.in, r, true));
  c.terms = std::make_shared<LossAndTerms>();
  c.baton = make_baton(a, r);
  c.baton->finish = [out = c.out, terms = c.terms](Napi::Object r) {
    set_terms(r, *terms);
    set_nonfinite(r, out->nonfinite_rows);
  };
  return c;
}

float* grad_destination(const Args& a, const LogitsIn& in, Napi::Object result) {
  const size_t total = (size_t)in.rows * (size_t)in.V;
  if (a.boolean("inPlace", false)) {
    if (in.dtype != DType::f32) a.range_error("inPlace", "false for 16-bit logits", "true");
    result.Set("gradLogits", a.read_array("logits"));
    return (float*)in.logits.data;
  }
  View<float> out = a.f32("out", true);
  if (out.data) {
    a.expect_length("out", out.length, total);
    result.Set("gradLogits", a.read_array("out"));
    return out.data;
  }
  // The TypeScript layer always passes `out` (its allocation turns an impossible size into a
  // RangeError); a direct call gets a new array.
  Napi::Float32Array g = Napi::Float32Array::New(a.env(), total);
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

void set_terms(Napi::Object r, const LossAndTerms& t) {
  Napi::Env env = r.Env();
  r.Set("loss", Napi::Number::New(env, t.loss));
  Napi::Object terms = Napi::Object::New(env);
  terms.Set("advantage", Napi::Number::New(env, t.advantage));
  terms.Set("trustRegion", Napi::Number::New(env, t.trust_region));
  terms.Set("variance", Napi::Number::New(env, t.variance));
  terms.Set("constant", Napi::Number::New(env, t.constant));
  r.Set("terms", terms);
}

void set_nonfinite(Napi::Object r, int64_t rows) { r.Set("nonFiniteRows", Napi::Number::New(r.Env(), (double)rows)); }

SplitIo split_outputs(const Args& a, Napi::Object result, size_t rows) {
  SplitIo io;
  if (!a.boolean("split", false)) return io;
  io.row_max = new_f32(result, "rowMax", rows).Data();
  io.row_lse = new_f32(result, "rowLse", rows).Data();
  return io;
}

SplitIo split_inputs(const Args& a, size_t rows) {
  SplitIo io;
  View<float> m = a.f32("rowMax", true);
  if (!m.data) return io;
  View<float> l = a.f32("rowLse");
  a.expect_length("rowMax", m.length, rows);
  a.expect_length("rowLse", l.length, rows);
  io.in_max = m.data;
  io.in_lse = l.data;
  return io;
}

void copy_split(const LogZSplit& from, const SplitIo& to, size_t rows) {
  if (!to.row_max) return;
  std::copy(from.shift.begin(), from.shift.begin() + (std::ptrdiff_t)rows, to.row_max);
  std::copy(from.rel.begin(), from.rel.begin() + (std::ptrdiff_t)rows, to.row_lse);
}

LogZSplit split_of(const SplitIo& io, size_t rows) {
  LogZSplit s;
  s.shift.assign(io.in_max, io.in_max + rows);
  s.rel.assign(io.in_lse, io.in_lse + rows);
  return s;
}

}  // namespace gvpo
