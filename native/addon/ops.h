// Registration of the ops on the module's exports (ops.cc, hidden_ops.cc: CPU; cuda_ops.cc: CUDA).
#pragma once
#include <napi.h>

namespace gvpo {
void register_cpu_ops(Napi::Env env, Napi::Object exports);
void register_hidden_ops(Napi::Env env, Napi::Object exports);  // hidden_ops.cc
#ifdef GVPO_WITH_CUDA
void register_cuda_ops(Napi::Env env, Napi::Object exports);
#endif
}  // namespace gvpo
