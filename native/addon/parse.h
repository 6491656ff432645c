// Argument parsing shared by the CPU and CUDA glue (parse.cc).
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>

#include "../kernels.h"
#include "args.h"

namespace gvpo {

// Logits and their per-token companions, shaped either rows x vocab or sequences x tokens x vocab.
struct LogitsIn {
  View<void> logits;
  DType dtype;
  View<int32_t> targets;
  View<float> mask;
  int64_t N = 1, T = 1, V = 1, rows = 1;
  float tau = 1.0f;
  int threads = 0;
};

// Sequence-level GVPO inputs: rewards, groups (offsets), beta, reduction.
struct LossIn {
  View<double> rewards;
  View<int32_t> offsets;
  double beta;
  bool mean;
};

// Phase 1 inputs and outputs shared by gvpoForward and gvpoFromLogits.
struct Forward {
  LogitsIn in;
  View<double> ref_tokens, ref_seq;
  float *lp, *lz;
  double *seq, *ref;
  std::shared_ptr<int64_t> nonfinite = std::make_shared<int64_t>(0);
};

// Everything gvpoFromLogits (CPU or CUDA) needs: phase-1 outputs, loss inputs, the gradient's
// destination and the sequence-level outputs, all allocated on `result`.
struct FromLogits {
  Forward f;
  LossIn l;
  float* grad;
  double *grad_seq, *residuals;
  std::shared_ptr<GvpoTerms> terms = std::make_shared<GvpoTerms>();
};
FromLogits parse_from_logits(const Args& a, Napi::Object result);

LogitsIn parse_logits(const Args& a, bool sequences, bool mask_required);
LossIn parse_loss(const Args& a, int64_t N);
// Checks the reference inputs and allocates phase 1's outputs on `r`.
Forward parse_forward(const Args& a, Napi::Object r);
// The gradient's destination (logits for inPlace, `out`, or a new array), set on `result`.
float* grad_destination(const Args& a, const LogitsIn& in, Napi::Object result);
Napi::Float32Array new_large_f32(const Args& a, size_t n);
Napi::Float32Array new_f32(Napi::Object result, const char* name, size_t n);
Napi::Float64Array new_f64(Napi::Object result, const char* name, size_t n);
void set_terms(Napi::Object r, const GvpoTerms& t);
void set_nonfinite(Napi::Object r, const Forward& f);

}  // namespace gvpo
