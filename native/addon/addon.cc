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

// The address of a typed array's first byte, as a Number (x64 and arm64 user addresses fit in
// 53 bits): the TypeScript checks compare two views over SharedArrayBuffer objects that may hold
// the same memory, which JavaScript cannot tell.
static Napi::Value view_address(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray()) {
    Napi::TypeError::New(env, "viewAddress: a typed array expected").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void* data = nullptr;
  napi_value buffer;
  if (napi_get_typedarray_info(env, info[0], &type, &length, &data, &buffer, &offset) != napi_ok) {
    Napi::TypeError::New(env, "viewAddress: a typed array expected").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, (double)(uintptr_t)data);
}

static Napi::Object init(Napi::Env env, Napi::Object exports) {
  exports.Set("nativeInfo", Napi::Function::New(env, native_info, "nativeInfo"));
  exports.Set("viewAddress", Napi::Function::New(env, view_address, "viewAddress"));
  register_cpu_ops(env, exports);
  register_hidden_ops(env, exports);
#ifdef GVPO_WITH_CUDA
  register_cuda_ops(env, exports);
#endif
  return exports;
}

NODE_API_MODULE(gvpo, init)

}  // namespace gvpo
