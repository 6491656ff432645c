// Reading and re-checking an op's options: see args.h.
#include "args.h"

#include <cmath>
#include <cstring>

namespace gvpo {

static const char* typed_array_name(napi_typedarray_type t) {
  switch (t) {
    case napi_float32_array:
      return "Float32Array";
    case napi_float64_array:
      return "Float64Array";
    case napi_int32_array:
      return "Int32Array";
    case napi_uint16_array:
      return "Uint16Array";
    default:
      return "another typed array";
  }
}

static std::string describe(Napi::Value v) {
  if (v.IsTypedArray()) return typed_array_name(v.As<Napi::TypedArray>().TypedArrayType());
  if (v.IsNumber()) return std::to_string(v.As<Napi::Number>().DoubleValue());
  if (v.IsUndefined()) return "undefined";
  if (v.IsString()) return "a string";
  return v.IsNull() ? "null" : "another value";
}

Args::Args(const Napi::CallbackInfo& info, const char* fn) : env_(info.Env()), fn_(fn) {
  if (info.Length() < 1 || !info[0].IsObject() || info[0].IsArray())
    throw Napi::TypeError::New(env_, fn_ + ": options must be an object");
  opts_ = info[0].As<Napi::Object>();
}

void Args::type_error(const char* name, const std::string& expected, Napi::Value got) const {
  throw Napi::TypeError::New(env_, fn_ + ": " + name + " must be " + expected + ", got " + describe(got));
}
void Args::range_error(const char* name, const std::string& expected, const std::string& got) const {
  throw Napi::RangeError::New(env_, fn_ + ": " + name + " must be " + expected + ", got " + got);
}

// napi_get_typedarray_info gives a null data pointer for an empty array, which the callers read
// as "absent": an empty array gets this address instead, so that it is present, and refused by
// its length check like any other array of the wrong length (nothing is read or written through it).
static void* present(void* data) {
  alignas(64) static unsigned char none[64];
  return data ? data : none;
}

// Data pointer and element count through napi_get_typedarray_info, so that views over
// SharedArrayBuffers and at any aligned byte offset work; detached buffers are refused.
template <typename T>
static View<T> typed(const Args& a, const char* name, napi_typedarray_type want, bool optional) {
  Napi::Value v = a.get(name);
  if (optional && (v.IsUndefined() || v.IsNull())) return {};
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != want)
    a.type_error(name, std::string("a ") + typed_array_name(want), v);
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void* data = nullptr;
  napi_value buffer;
  bool detached = false;
  if (napi_get_typedarray_info(a.env(), v, &type, &length, &data, &buffer, &offset) != napi_ok ||
      napi_is_detached_arraybuffer(a.env(), buffer, &detached) != napi_ok || detached)
    a.type_error(name, "a typed array over a live (not detached) buffer", v);
  if (offset % sizeof(T) != 0)
    a.range_error(name, "aligned to its element size", "byte offset " + std::to_string(offset));
  data = present(data);
  a.record(name, v, data, length * sizeof(T));
  return {(T*)data, length};
}

// napi_value is a v8::Local<v8::Value> in Node's implementation; N-API itself cannot hold a
// backing store.
static v8::Local<v8::TypedArray> as_v8(Napi::Value v) {
  napi_value raw = v;
  v8::Local<v8::Value> local;
  static_assert(sizeof(raw) == sizeof(local), "napi_value is a v8::Local");
  std::memcpy(static_cast<void*>(&local), &raw, sizeof(raw));
  return local.As<v8::TypedArray>();
}

void Args::record(const char* name, Napi::Value v, void* data, size_t bytes) const {
  std::shared_ptr<v8::BackingStore> memory = as_v8(v)->Buffer()->GetBackingStore();
  // A resizable ArrayBuffer can be shrunk (its pages given back) while the kernels read it.
  if (memory->IsResizableByUserJavaScript() && !memory->IsShared())
    type_error(name, "a typed array over a fixed-length ArrayBuffer (not resizable)", v);
  reads_.push_back({name, Napi::Persistent(v.As<Napi::Object>()), std::move(memory), data, bytes});
}

Napi::Value Args::read_array(const char* name) const {
  for (const ReadArray& r : reads_)
    if (r.name == name) return r.array.Value();
  return env_.Undefined();
}

void Args::check_unchanged() const {
  for (const ReadArray& r : reads_) {
    Napi::Value v = r.array.Value();
    napi_value buffer;
    size_t length = 0;
    void* data = nullptr;
    bool detached = false;
    napi_typedarray_type type;
    if (napi_get_typedarray_info(env_, v, &type, &length, &data, &buffer, nullptr) != napi_ok ||
        napi_is_detached_arraybuffer(env_, buffer, &detached) != napi_ok || detached || present(data) != r.data ||
        length * v.As<Napi::TypedArray>().ElementSize() != r.bytes)
      type_error(r.name.c_str(),
                 "a typed array that stays as it was while the options are read (a getter detached or resized it)", v);
  }
}

View<float> Args::f32(const char* name, bool optional) const {
  return typed<float>(*this, name, napi_float32_array, optional);
}
View<double> Args::f64(const char* name, bool optional) const {
  return typed<double>(*this, name, napi_float64_array, optional);
}
View<int32_t> Args::i32(const char* name, bool optional) const {
  return typed<int32_t>(*this, name, napi_int32_array, optional);
}

DType Args::dtype(const char* name) const {
  Napi::Value v = get(name);
  if (v.IsUndefined()) return DType::f32;
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "float32") return DType::f32;
  if (s == "bfloat16") return DType::bf16;
  if (s == "float16") return DType::f16;
  type_error(name, "'float32' | 'bfloat16' | 'float16'", v);
}

View<void> Args::logits(const char* name, DType d) const {
  if (d == DType::f32) {
    View<float> v = f32(name);
    return {v.data, v.length};
  }
  View<uint16_t> v = typed<uint16_t>(*this, name, napi_uint16_array, false);
  return {v.data, v.length};
}

int64_t Args::dim(const char* name) const {
  Napi::Value v = get(name);
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  if (!(d >= 1) || d != std::floor(d) || d > 2147483647.0)
    range_error(name, "an integer in [1, 2147483647]", describe(v));
  return (int64_t)d;
}

double Args::number(const char* name, double fallback) const {
  Napi::Value v = get(name);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) type_error(name, "a number", v);
  return v.As<Napi::Number>().DoubleValue();
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
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  if (!(d >= 0) || d != std::floor(d) || d > 1024) range_error("threads", "an integer in [0, 1024]", describe(v));
  return (int)d;
}

bool Args::mean_reduction() const {
  Napi::Value v = get("reduction");
  return !(v.IsString() && v.As<Napi::String>().Utf8Value() == "sum");
}

void Args::expect_length(const char* name, size_t got, size_t want) const {
  if (got != want) range_error(name, "of length " + std::to_string(want), "length " + std::to_string(got));
}

size_t Args::product(std::initializer_list<int64_t> dims, const char* what) const {
  uint64_t p = 1;
  for (int64_t d : dims)
    if (__builtin_mul_overflow(p, (uint64_t)d, &p) || p > (1ull << 53))
      range_error(what, "a product of sizes below 2^53", "an overflowing product");
  return (size_t)p;
}

void Args::check_targets(const int32_t* y, const float* mask, size_t rows, int64_t vocab) const {
  for (size_t r = 0; r < rows; r++)
    if ((!mask || mask[r] != 0.0f) && (y[r] < 0 || y[r] >= vocab))
      range_error("targets", "token ids in [0, " + std::to_string(vocab) + ") where the mask is non-zero",
                  std::to_string(y[r]) + " at index " + std::to_string(r));
}

View<int32_t> Args::offsets(const char* name, int64_t n) const {
  const View<int32_t> in = i32(name);
  auto copy = std::make_shared<std::vector<int32_t>>(in.data, in.data + in.length);
  const std::vector<int32_t>& off = *copy;
  const size_t len = off.size();
  bool ok = len >= 2 && off[0] == 0 && off[len - 1] == n;
  for (size_t g = 1; ok && g < len; g++) ok = off[g] > off[g - 1];
  if (!ok) range_error(name, "strictly increasing from 0 to " + std::to_string(n), "other values");
  owned_.push_back(copy);
  return View<int32_t>{copy->data(), len};
}

}  // namespace gvpo
