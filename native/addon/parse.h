// Reading the options shared by the CPU (ops.cc) and CUDA (cuda_ops.cc) glue into the kernel
// layer's structs (kernels.h), with the memory checks of args.h, and allocating the outputs on
// the result object.
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>

#include "../kernels.h"
#include "args.h"
#include "baton.h"

namespace gvpo {

// Logits and their per-token companions, shaped rows x vocab or sequences x tokens x vocab.
struct LogitsIn {
  View<void> logits;
  DType dtype;
  View<int32_t> targets;
  View<float> mask;
  int64_t N = 1, T = 1, V = 1, rows = 1;
  float tau = 1.0f;
  int threads = 0;
};
LogitsIn parse_logits(const Args& a, bool sequences, bool mask_required);

// The per-sequence inputs shared by the logits and hidden-state ops, into b (whose sequences are
// set): the reference (referenceTokenLogprobs or referenceLogprobs, at most one used) and, with
// `loss`, rewards, offsets, beta and the reduction.
void parse_sequence_inputs(const Args& a, GvpoBatch& b, int64_t rows, bool loss);

// A whole batch for the fused op or its phases: the logits, the reference (referenceTokenLogprobs
// or referenceLogprobs, at most one) and, with `loss`, rewards, offsets, beta and the reduction.
struct BatchIn {
  LogitsIn in;
  GvpoLogitsBatch batch;
};
BatchIn parse_batch(const Args& a, bool loss);

// Phase 1's outputs (token log-probs, logZ, S, Sref) allocated on the result; with `loss` also
// dL/dS and the residuals, and the gradient's destination (see grad_destination).
GvpoFromLogitsOut allocate_outputs(const Args& a, const LogitsIn& in, Napi::Object result, bool loss);

// The gradient's destination: the float32 logits themselves (inPlace), the caller's `out`, or a
// new array; set on `result` as gradLogits.
float* grad_destination(const Args& a, const LogitsIn& in, Napi::Object result);

// The fused op's call, for either backend: the batch read and checked, every output allocated on
// the result, and a baton whose `finish` sets the loss, the terms and nonFiniteRows. The caller
// sets the baton's work.
struct FusedCall {
  BatchIn x;
  std::shared_ptr<GvpoFromLogitsOut> out;
  std::shared_ptr<LossAndTerms> terms;
  std::unique_ptr<Baton> baton;
};
FusedCall prepare_fused(const Napi::CallbackInfo& info);

// The fused LM head's calls (gvpoFromHidden and its phases), for either backend: the batch read
// and checked, the outputs allocated on the result (the gradients into the caller's gradHidden /
// gradWeight when given), and a baton whose `finish` sets the loss, the terms and nonFiniteRows
// (phase 1 and the whole op). Defined in hidden_ops.cc; the caller sets the baton's work.
struct HiddenIn {
  GvpoHiddenBatch batch;
  int64_t rows;
  int threads;
};
// Each row's exact parts of logZ = max/tau + lse, from a CPU forward to its backward: the forward
// writes them on its result as rowMax and rowLse when asked (`split: true`), the backward reads
// them when given and takes its exponent (z - max)/tau - lse from them instead of z/tau - logZ,
// whose float32 logZ keeps only |logZ| 2^-24 of lse (src/ops/split.ts keeps them beside the logZ
// the forward returned). The CUDA twins of the forwards give the same parts from the device.
struct SplitIo {
  float* row_max = nullptr;  // the forward's outputs (null: not asked for)
  float* row_lse = nullptr;
  const float* in_max = nullptr;  // the backward's inputs (null: not given; logZ alone)
  const float* in_lse = nullptr;
};
SplitIo split_outputs(const Args& a, Napi::Object result, size_t rows);
SplitIo split_inputs(const Args& a, size_t rows);
// The head's form of the same parts (LogZSplit), both ways.
void copy_split(const LogZSplit& from, const SplitIo& to, size_t rows);
LogZSplit split_of(const SplitIo& io, size_t rows);

enum class HiddenPhase { full = 0, forward = 1, backward = 2 };
struct HiddenCall {
  HiddenIn x;
  std::shared_ptr<GvpoFromHiddenOut> out;  // full and forward
  std::shared_ptr<LossAndTerms> terms;     // full
  float* grad_hidden = nullptr;            // backward (the full op's are in `out`)
  float* grad_weight = nullptr;
  bool accumulate = false;      // dL/dweight added to the caller's gradWeight
  const float* logZ = nullptr;  // backward's inputs
  const double* grad_seq = nullptr;
  SplitIo split;  // the two phases' parts of logZ (parse.h, SplitIo)
  std::unique_ptr<Baton> baton;
};
HiddenCall prepare_hidden(const Napi::CallbackInfo& info, HiddenPhase phase);

// The fused head's rows (tokenLogprobsFromHidden and its backward), for either backend: the inputs
// read and checked, the outputs allocated on the result (the gradients into the caller's
// gradHidden / gradWeight when given), and a baton whose `finish` sets nonFiniteRows (forward).
// Defined in hidden_ops.cc; the caller sets the baton's work.
struct HeadCall {
  HeadInputs in;
  int threads;
  float* logprobs = nullptr;  // forward
  float* logZ = nullptr;
  float* entropy = nullptr;  // null: not asked for
  std::shared_ptr<int64_t> nonfinite;
  const float* fwd_logZ = nullptr;  // backward's inputs
  const float* fwd_entropy = nullptr;
  const float* grad_logprobs = nullptr;
  const float* grad_entropy = nullptr;
  float* grad_hidden = nullptr;  // backward's outputs
  float* grad_weight = nullptr;
  bool accumulate = false;
  SplitIo split;  // the two phases' parts of logZ (parse.h, SplitIo)
  std::unique_ptr<Baton> baton;
};
HeadCall prepare_head(const Napi::CallbackInfo& info, bool backward);

Napi::Float32Array new_f32(Napi::Object result, const char* name, size_t n);
Napi::Float64Array new_f64(Napi::Object result, const char* name, size_t n);
void set_terms(Napi::Object r, const LossAndTerms& t);
void set_nonfinite(Napi::Object r, int64_t rows);

}  // namespace gvpo
