// Argument checks: see args.h. Messages: "<fn>: <field> must be <expected>, got <what came>".
#include "args.h"

#include <cmath>
#include <charconv>

namespace gvpo {

static const char* typed_array_name(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
  }
  return "TypedArray";
}

static std::string num(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[64];  // shortest round-trip form, as JavaScript's String(v) writes it
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, res.ptr);
}

std::string describe(Napi::Value v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsNumber()) return num(v.As<Napi::Number>().DoubleValue());
  if (v.IsString()) return "'" + v.As<Napi::String>().Utf8Value() + "'";
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  if (v.IsTypedArray()) return typed_array_name(v.As<Napi::TypedArray>().TypedArrayType());
  if (v.IsArray()) return "Array";
  if (v.IsFunction()) return "function";
  return "object";
}

Args::Args(const Napi::CallbackInfo& info, const char* fn) : env_(info.Env()), fn_(fn) {
  if (info.Length() < 1 || !info[0].IsObject() || info[0].IsArray())
    throw Napi::TypeError::New(env_, fn_ + ": options must be an object, got " +
                                         (info.Length() ? describe(info[0]) : "nothing"));
  opts_ = info[0].As<Napi::Object>();
}

Napi::Value Args::get(const char* name) const { return opts_.Get(name); }
bool Args::has(const char* name) const {
  Napi::Value v = get(name);
  return !v.IsUndefined() && !v.IsNull();
}

void Args::type_error(const char* name, const std::string& expected, Napi::Value got) const {
  throw Napi::TypeError::New(env_, fn_ + ": " + name + " must be " + expected + ", got " + describe(got));
}
void Args::range_error(const char* name, const std::string& expected, const std::string& got) const {
  throw Napi::RangeError::New(env_, fn_ + ": " + name + " must be " + expected + ", got " + got);
}

// A typed array's data pointer and element count, read through napi_get_typedarray_info so that
// views over SharedArrayBuffers and views at any byte offset work; detached buffers are refused.
template <typename T>
static View<T> typed(const Args& a, Napi::Value v, const char* name, napi_typedarray_type want,
                     bool optional) {
  if (optional && (v.IsUndefined() || v.IsNull())) return {};
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != want)
    a.type_error(name, std::string("a ") + typed_array_name(want), v);
  napi_env env = a.env();
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void* data = nullptr;
  napi_value buffer;
  bool detached = false;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, &buffer, &offset) != napi_ok ||
      napi_is_detached_arraybuffer(env, buffer, &detached) != napi_ok || detached)
    a.type_error(name, "a typed array over a live (not detached) buffer", v);
  if (offset % sizeof(T) != 0)
    a.range_error(name, "aligned to its element size", "byte offset " + std::to_string(offset));
  return {(T*)data, length};
}

View<float> Args::f32(const char* name, bool optional) const {
  return typed<float>(*this, get(name), name, napi_float32_array, optional);
}
View<double> Args::f64(const char* name, bool optional) const {
  return typed<double>(*this, get(name), name, napi_float64_array, optional);
}
View<int32_t> Args::i32(const char* name, bool optional) const {
  return typed<int32_t>(*this, get(name), name, napi_int32_array, optional);
}

DType Args::dtype(const char* name) const {
  Napi::Value v = get(name);
  if (v.IsUndefined()) return DType::f32;
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "float32") return DType::f32;
  if (s == "bfloat16") return DType::bf16;
  if (s == "float16") return DType::f16;
  if (!v.IsString()) type_error(name, "'float32' | 'bfloat16' | 'float16'", v);
  range_error(name, "'float32' | 'bfloat16' | 'float16'", describe(v));
}

View<void> Args::logits(const char* name, DType d) const {
  if (d == DType::f32) {
    View<float> v = f32(name);
    return {v.data, v.length};
  }
  View<uint16_t> v = typed<uint16_t>(*this, get(name), name, napi_uint16_array, false);
  return {v.data, v.length};
}

int64_t Args::dim(const char* name) const {
  Napi::Value v = get(name);
  if (!v.IsNumber()) type_error(name, "an integer >= 1", v);
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 1) || d != std::floor(d) || d > 2147483647.0)
    range_error(name, "an integer in [1, 2147483647]", num(d));
  return (int64_t)d;
}

double Args::positive(const char* name, double fallback, bool optional) const {
  Napi::Value v = get(name);
  if (optional && v.IsUndefined()) return fallback;
  if (!v.IsNumber()) type_error(name, "a finite number > 0", v);
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d > 0) || !std::isfinite(d)) range_error(name, "a finite number > 0", num(d));
  return d;
}

bool Args::boolean(const char* name, bool fallback) const {
  Napi::Value v = get(name);
  if (v.IsUndefined()) return fallback;
  if (!v.IsBoolean()) type_error(name, "a boolean", v);
  return v.As<Napi::Boolean>().Value();
}

int Args::threads() const {
  Napi::Value v = get("threads");
  if (v.IsUndefined()) return 0;
  if (!v.IsNumber()) type_error("threads", "an integer >= 0", v);
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != std::floor(d) || d > 1024) range_error("threads", "an integer in [0, 1024]", num(d));
  return (int)d;
}

std::string Args::reduction() const {
  Napi::Value v = get("reduction");
  if (v.IsUndefined()) return "mean";
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "mean" || s == "sum") return s;
  if (!v.IsString()) type_error("reduction", "'mean' | 'sum'", v);
  range_error("reduction", "'mean' | 'sum'", describe(v));
}

void Args::expect_length(const char* name, size_t got, size_t want, const char* what) const {
  if (got != want)
    range_error(name, std::string("of length ") + what + " = " + std::to_string(want),
                "length " + std::to_string(got));
}

size_t Args::product(std::initializer_list<int64_t> dims, const char* what) const {
  uint64_t p = 1;
  for (int64_t d : dims)
    if (__builtin_mul_overflow(p, (uint64_t)d, &p) || p > (1ull << 53))
      range_error(what, "a product of sizes below 2^53", "an overflowing product");
  return (size_t)p;
}

void Args::check_targets(const char* name, const int32_t* y, const float* mask, size_t rows,
                         int64_t vocab) const {
  for (size_t r = 0; r < rows; r++)
    if ((!mask || mask[r] != 0.0f) && (y[r] < 0 || y[r] >= vocab))
      range_error(name, "token ids in [0, " + std::to_string(vocab) + ") where the mask is non-zero",
                  std::to_string(y[r]) + " at index " + std::to_string(r));
}

void Args::check_finite(const char* name, const double* v, size_t n) const {
  for (size_t i = 0; i < n; i++)
    if (!std::isfinite(v[i]))
      range_error(name, "finite numbers", num(v[i]) + " at index " + std::to_string(i));
}

void Args::check_offsets(const char* name, const int32_t* off, size_t len, int64_t n) const {
  if (len < 2) range_error(name, "group offsets of length G+1 >= 2", "length " + std::to_string(len));
  if (off[0] != 0) range_error(name, "offsets starting at 0", std::to_string(off[0]) + " at index 0");
  for (size_t g = 1; g < len; g++)
    if (off[g] <= off[g - 1])
      range_error(name, "strictly increasing offsets", std::to_string(off[g]) + " after " +
                                                          std::to_string(off[g - 1]) + " at index " + std::to_string(g));
  if (off[len - 1] != n)
    range_error(name, "offsets ending at the number of sequences " + std::to_string(n),
                std::to_string(off[len - 1]));
}

}  // namespace gvpo
