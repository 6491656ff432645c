// Module entry: the ops (ops.cc) and backendInfo's native half. "Compiled with CUDA"
// (GVPO_WITH_CUDA) and "a CUDA device is present" are reported as two separate facts.
#include <napi.h>

#include "../kernels.h"
#include "ops.h"

namespace gvpo {

static Napi::Value native_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  Napi::Array compiled = Napi::Array::New(env);
  compiled.Set(0u, Napi::String::New(env, "cpu"));
  o.Set("threads", Napi::Number::New(env, cpu_default_threads()));
  o.Set("simd", Napi::String::New(env, cpu_simd_level()));
#ifdef GVPO_WITH_CUDA
  compiled.Set(1u, Napi::String::New(env, "cuda"));
  int count = 0;
  char name[256] = {0};
  int err = cuda_device_info(&count, name, sizeof(name));
  o.Set("cudaDevices", Napi::Number::New(env, err ? 0 : count));
  if (err)
    o.Set("cudaError", Napi::String::New(env, name));
  else if (count > 0)
    o.Set("device", Napi::String::New(env, name));
#endif
  o.Set("compiled", compiled);
  return o;
}

static Napi::Object init(Napi::Env env, Napi::Object exports) {
  exports.Set("nativeInfo", Napi::Function::New(env, native_info, "nativeInfo"));
  register_cpu_ops(env, exports);
  register_hidden_ops(env, exports);
#ifdef GVPO_WITH_CUDA
  register_cuda_ops(env, exports);
#endif
  return exports;
}

NODE_API_MODULE(gvpo, init)

}  // namespace gvpo
