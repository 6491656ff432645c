// N-API glue for the fused LM head (tokenLogprobsFromHidden and its backward; gvpoFromHidden and
// its two phases) and the FMA peak probe: read the options src/ops/normalize.ts has checked and
// normalized, re-check what addresses memory (args.h), allocate the outputs, hand a Baton to the
// sync or async runner. No math here. prepare_head and prepare_hidden serve both backends: the CPU
// ops below and their CUDA twins in cuda_ops.cc.
#include <chrono>
#include <memory>

#include "../kernels.h"
#include "args.h"
#include "baton.h"
#include "ops.h"
#include "parse.h"

namespace gvpo {

namespace {

// hidden (N*T x H) and weight (V x H) share `dtype`; then the per-token arrays, the reference and,
// with `loss`, the group loss's inputs.
HiddenIn parse_hidden(const Args& a, bool loss) {
  HiddenIn x{};
  GvpoHiddenBatch& b = x.batch;
  b.dtype = a.dtype("dtype");
  b.sequences = a.dim("sequences");
  b.tokens = a.dim("tokens");
  x.rows = (int64_t)a.product({b.sequences, b.tokens}, "sequences*tokens");
  b.hidden_size = a.dim("hiddenSize");
  b.vocab = a.dim("vocab");
  View<void> hidden = a.logits("hidden", b.dtype), weight = a.logits("weight", b.dtype);
  a.expect_length("hidden", hidden.length, a.product({x.rows, b.hidden_size}, "hidden"));
  a.expect_length("weight", weight.length, a.product({b.vocab, b.hidden_size}, "weight"));
  b.hidden = hidden.data;
  b.weight = weight.data;
  View<int32_t> targets = a.i32("targets");
  a.expect_length("targets", targets.length, (size_t)x.rows);
  View<float> mask = a.f32("mask");
  a.expect_length("mask", mask.length, (size_t)x.rows);
  a.check_targets(targets.data, mask.data, (size_t)x.rows, b.vocab);
  b.targets = targets.data;
  b.mask = mask.data;
  b.temperature = (float)a.number("temperature", 1.0);
  x.threads = a.threads();
  parse_sequence_inputs(a, b, x.rows, loss);
  return x;
}

// The gradients go into the caller's gradHidden / gradWeight (TypeScript allocates them, so an
// impossible size is a RangeError there) or into new arrays.
float* grad_out(const Args& a, Napi::Object r, const char* name, size_t n) {
  View<float> out = a.f32(name, true);
  if (!out.data) return new_f32(r, name, n).Data();
  a.expect_length(name, out.length, n);
  r.Set(name, a.read_array(name));
  return out.data;
}

GvpoFromHiddenOut allocate_hidden(const Args& a, const HiddenIn& x, Napi::Object r, bool loss) {
  GvpoFromHiddenOut o{};
  o.token_logprobs = new_f32(r, "tokenLogprobs", x.rows).Data();
  o.logZ = new_f32(r, "logZ", x.rows).Data();
  o.seq = new_f64(r, "policyLogprobs", x.batch.sequences).Data();
  o.ref_seq = new_f64(r, "referenceLogprobs", x.batch.sequences).Data();
  if (loss) {
    o.grad_hidden = grad_out(a, r, "gradHidden", (size_t)x.rows * x.batch.hidden_size);
    o.grad_weight = grad_out(a, r, "gradWeight", (size_t)x.batch.vocab * x.batch.hidden_size);
    o.accumulate = a.boolean("accumulate", false);
    o.grad_seq = new_f64(r, "gradLogprobs", x.batch.sequences).Data();
    o.residuals = new_f64(r, "residuals", x.batch.sequences).Data();
  }
  return o;
}

}  // namespace

HiddenCall prepare_hidden(const Napi::CallbackInfo& info, HiddenPhase phase) {
  static const char* const names[] = {"gvpoFromHidden", "gvpoFromHiddenForward", "gvpoFromHiddenBackward"};
  Args a(info, names[(int)phase]);
  HiddenCall c;
  c.x = parse_hidden(a, phase == HiddenPhase::full);
  Napi::Object r = Napi::Object::New(a.env());
  if (phase == HiddenPhase::backward) {
    View<float> lz = a.f32("logZ");
    a.expect_length("logZ", lz.length, (size_t)c.x.rows);
    View<double> gs = a.f64("gradLogprobs");
    a.expect_length("gradLogprobs", gs.length, (size_t)c.x.batch.sequences);
    c.logZ = lz.data;
    c.grad_seq = gs.data;
    c.grad_hidden = grad_out(a, r, "gradHidden", (size_t)c.x.rows * c.x.batch.hidden_size);
    c.grad_weight = grad_out(a, r, "gradWeight", (size_t)c.x.batch.vocab * c.x.batch.hidden_size);
    c.accumulate = a.boolean("accumulate", false);
    c.split = split_inputs(a, (size_t)c.x.rows);
    c.baton = make_baton(a, r);
    return c;
  }
  const bool loss = phase == HiddenPhase::full;
  c.out = std::make_shared<GvpoFromHiddenOut>(allocate_hidden(a, c.x, r, loss));
  if (phase == HiddenPhase::forward) c.split = split_outputs(a, r, (size_t)c.x.rows);
  c.terms = std::make_shared<LossAndTerms>();
  c.baton = make_baton(a, r);
  c.baton->finish = [out = c.out, terms = c.terms, loss](Napi::Object r) {
    if (loss) set_terms(r, *terms);
    set_nonfinite(r, out->nonfinite_rows);
  };
  return c;
}

HeadCall prepare_head(const Napi::CallbackInfo& info, bool backward) {
  Args a(info, backward ? "tokenLogprobsFromHiddenBackward" : "tokenLogprobsFromHidden");
  HeadCall c;
  HeadInputs& in = c.in;
  in.dtype = a.dtype("dtype");
  in.rows = a.dim("rows");
  in.hidden_size = a.dim("hiddenSize");
  in.vocab = a.dim("vocab");
  View<void> hidden = a.logits("hidden", in.dtype), weight = a.logits("weight", in.dtype);
  a.expect_length("hidden", hidden.length, a.product({in.rows, in.hidden_size}, "hidden"));
  a.expect_length("weight", weight.length, a.product({in.vocab, in.hidden_size}, "weight"));
  in.hidden = hidden.data;
  in.weight = weight.data;
  View<int32_t> targets = a.i32("targets");
  a.expect_length("targets", targets.length, (size_t)in.rows);
  View<float> mask = a.f32("mask", true);
  if (mask.data) a.expect_length("mask", mask.length, (size_t)in.rows);
  a.check_targets(targets.data, mask.data, (size_t)in.rows, in.vocab);
  in.targets = targets.data;
  in.mask = mask.data;
  in.temperature = (float)a.number("temperature", 1.0);
  c.threads = a.threads();
  Napi::Object r = Napi::Object::New(a.env());
  const size_t rows = (size_t)in.rows;
  if (!backward) {
    c.logprobs = new_f32(r, "logprobs", rows).Data();
    c.logZ = new_f32(r, "logZ", rows).Data();
    if (a.boolean("entropy", false)) c.entropy = new_f32(r, "entropy", rows).Data();
    c.split = split_outputs(a, r, rows);
    c.nonfinite = std::make_shared<int64_t>(0);
    c.baton = make_baton(a, r);
    c.baton->finish = [bad = c.nonfinite](Napi::Object r) { set_nonfinite(r, *bad); };
    return c;
  }
  auto per_row = [&](const char* name, bool optional) {
    View<float> v = a.f32(name, optional);
    if (v.data) a.expect_length(name, v.length, rows);
    return v.data;
  };
  c.fwd_logZ = per_row("logZ", false);
  c.grad_logprobs = per_row("gradTokenLogprobs", false);
  c.grad_entropy = per_row("gradEntropy", true);
  // entropy: the forward's values, or its boolean flag (one options object for both calls)
  if (a.get("entropy").IsTypedArray()) c.fwd_entropy = per_row("entropy", false);
  c.accumulate = a.boolean("accumulate", false);
  c.split = split_inputs(a, rows);
  c.grad_hidden = grad_out(a, r, "gradHidden", rows * (size_t)in.hidden_size);
  c.grad_weight = grad_out(a, r, "gradWeight", (size_t)in.vocab * (size_t)in.hidden_size);
  c.baton = make_baton(a, r);
  return c;
}

namespace {

std::unique_ptr<Baton> prepare_token_logprobs_from_hidden(const Napi::CallbackInfo& info) {
  HeadCall c = prepare_head(info, false);
  c.baton->work = [lp = c.logprobs, lz = c.logZ, ent = c.entropy, bad = c.nonfinite, in = c.in, t = c.threads,
                   io = c.split] {
    LogZSplit split;
    *bad = token_logprobs_from_hidden_forward_cpu(lp, lz, ent, in, t, io.row_max ? &split : nullptr);
    if (io.row_max) copy_split(split, io, (size_t)in.rows);
  };
  return std::move(c.baton);
}

std::unique_ptr<Baton> prepare_token_logprobs_from_hidden_backward(const Napi::CallbackInfo& info) {
  HeadCall c = prepare_head(info, true);
  c.baton->work = [gh = c.grad_hidden, gw = c.grad_weight, in = c.in, lz = c.fwd_logZ, ent = c.fwd_entropy,
                   gl = c.grad_logprobs, ge = c.grad_entropy, acc = c.accumulate, t = c.threads, io = c.split] {
    const LogZSplit split = io.in_max ? split_of(io, (size_t)in.rows) : LogZSplit{};
    token_logprobs_from_hidden_backward_cpu(gh, gw, in, lz, ent, gl, ge, acc, t, nullptr, io.in_max ? &split : nullptr);
  };
  return std::move(c.baton);
}

std::unique_ptr<Baton> prepare_from_hidden(const Napi::CallbackInfo& info) {
  HiddenCall c = prepare_hidden(info, HiddenPhase::full);
  c.baton->work = [out = c.out, terms = c.terms, x = c.x] { *terms = gvpo_from_hidden_cpu(*out, x.batch, x.threads); };
  return std::move(c.baton);
}

std::unique_ptr<Baton> prepare_from_hidden_forward(const Napi::CallbackInfo& info) {
  HiddenCall c = prepare_hidden(info, HiddenPhase::forward);
  c.baton->work = [out = c.out, x = c.x, io = c.split] {
    LogZSplit split;
    gvpo_from_hidden_forward_cpu(*out, x.batch, x.threads, io.row_max ? &split : nullptr);
    if (io.row_max) copy_split(split, io, (size_t)x.rows);
  };
  return std::move(c.baton);
}

std::unique_ptr<Baton> prepare_from_hidden_backward(const Napi::CallbackInfo& info) {
  HiddenCall c = prepare_hidden(info, HiddenPhase::backward);
  c.baton->work = [gh = c.grad_hidden, gw = c.grad_weight, acc = c.accumulate, lz = c.logZ, gs = c.grad_seq, x = c.x,
                   io = c.split] {
    const LogZSplit split = io.in_max ? split_of(io, (size_t)x.rows) : LogZSplit{};
    gvpo_from_hidden_backward_cpu(gh, gw, lz, gs, x.batch, acc, x.threads, io.in_max ? &split : nullptr);
  };
  return std::move(c.baton);
}

// The FMA peak probe for bench/: {iterations, threads?} -> {seconds, flops}.
Napi::Value fma_probe(const Napi::CallbackInfo& info) {
  Args a(info, "fmaProbe");
  const int64_t iterations = a.dim("iterations");
  const int threads = a.threads();
  a.check_unchanged();
  auto t0 = std::chrono::steady_clock::now();
  const double flops = fma_probe_cpu(iterations, threads);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Napi::Object r = Napi::Object::New(a.env());
  r.Set("seconds", Napi::Number::New(a.env(), s));
  r.Set("flops", Napi::Number::New(a.env(), flops));
  return r;
}

}  // namespace

void register_hidden_ops(Napi::Env env, Napi::Object exports) {
  export_op<prepare_from_hidden>(env, exports, "gvpoFromHidden");
  export_op<prepare_from_hidden_forward>(env, exports, "gvpoFromHiddenForward");
  export_op<prepare_from_hidden_backward>(env, exports, "gvpoFromHiddenBackward");
  export_op<prepare_token_logprobs_from_hidden>(env, exports, "tokenLogprobsFromHidden");
  export_op<prepare_token_logprobs_from_hidden_backward>(env, exports, "tokenLogprobsFromHiddenBackward");
  exports.Set("fmaProbe", Napi::Function::New(env, fma_probe, "fmaProbe"));
}

}  // namespace gvpo
