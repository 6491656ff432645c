// Argument checks for the N-API glue. Every op takes one options object; each getter reads a
// field by name and throws a JS TypeError (wrong kind) or RangeError (value out of bounds) whose
// message names the function, the field, what was expected and what came -- the same wording as
// src/validate.ts, which checks first.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>

#include "../kernels.h"

namespace gvpo {

template <typename T>
struct View {
  T* data = nullptr;
  size_t length = 0;
  bool present() const { return data != nullptr || length != 0; }
};

class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* fn);

  Napi::Env env() const { return env_; }
  Napi::Object object() const { return opts_; }
  bool has(const char* name) const;

  [[noreturn]] void type_error(const char* name, const std::string& expected, Napi::Value got) const;
  [[noreturn]] void range_error(const char* name, const std::string& expected, const std::string& got) const;

  View<float> f32(const char* name, bool optional = false) const;
  View<double> f64(const char* name, bool optional = false) const;
  View<int32_t> i32(const char* name, bool optional = false) const;
  // Logits: Float32Array for float32, Uint16Array (bit patterns) for bfloat16/float16.
  View<void> logits(const char* name, DType dtype) const;
  DType dtype(const char* name) const;  // optional, default float32

  int64_t dim(const char* name) const;                         // integer >= 1, <= 2^31-1
  double positive(const char* name, double fallback, bool optional) const;  // finite, > 0
  bool boolean(const char* name, bool fallback) const;
  int threads() const;                                          // optional, integer >= 0
  std::string reduction() const;                               // 'mean' | 'sum'

  void expect_length(const char* name, size_t got, size_t want, const char* what) const;
  // product of dims, checked against size_t and 2^53 overflow
  size_t product(std::initializer_list<int64_t> dims, const char* what) const;

  void check_targets(const char* name, const int32_t* y, const float* mask, size_t rows, int64_t vocab) const;
  void check_finite(const char* name, const double* v, size_t n) const;
  void check_offsets(const char* name, const int32_t* off, size_t len, int64_t n) const;

 private:
  Napi::Env env_;
  std::string fn_;
  Napi::Object opts_;
  Napi::Value get(const char* name) const;
};

std::string describe(Napi::Value v);

}  // namespace gvpo
