// Reading an op's options object in the N-API glue. The TypeScript layer (src/ops/) owns every
// argument rule and message and passes its checked, normalized values; this layer re-checks only
// what addresses memory -- typed-array kinds, lengths against the sizes, sizes and their
// products, target ids and group offsets -- so that a bug above, or a direct call of the addon,
// costs a TypeError or RangeError, never a read or write outside a buffer. Messages are brief:
// "<fn>: <field> must be <expected>, got <what came>".
#pragma once
#include <napi.h>
#include <v8.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../kernels.h"

namespace gvpo {

template <typename T>
struct View {
  T* data = nullptr;
  size_t length = 0;
};

// A typed array as it was read: the kernels use `data` and `bytes`, so the array must still hold
// them when the work starts (a getter read later may have detached or resized its buffer) and its
// memory must outlive the work (an async caller may transfer the buffer, or a getter may have
// returned a fresh array that nothing else keeps).
struct ReadArray {
  std::string name;
  Napi::ObjectReference array;
  std::shared_ptr<v8::BackingStore> memory;
  void* data;
  size_t bytes;
};

class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* fn);

  Napi::Env env() const { return env_; }
  // An option's value: an own property of the options object, or undefined. A name put on
  // Object.prototype (prototype pollution) is no option of any call.
  Napi::Value get(const char* name) const {
    return opts_.HasOwnProperty(name) ? opts_.Get(name) : Napi::Value(env_.Undefined());
  }

  [[noreturn]] void type_error(const char* name, const std::string& expected, Napi::Value got) const;
  [[noreturn]] void range_error(const char* name, const std::string& expected, const std::string& got) const;

  // Typed arrays of exactly this kind over a live buffer; optional ones may be absent (null data).
  View<float> f32(const char* name, bool optional = false) const;
  View<double> f64(const char* name, bool optional = false) const;
  View<int32_t> i32(const char* name, bool optional = false) const;
  // Logits: Float32Array for float32, Uint16Array (bit patterns) for bfloat16/float16.
  View<void> logits(const char* name, DType dtype) const;
  DType dtype(const char* name) const;  // optional, default float32: it sets the element size

  int64_t dim(const char* name) const;                     // integer in [1, 2^31-1]
  double number(const char* name, double fallback) const;  // any number; absent: fallback
  bool boolean(const char* name, bool fallback) const;
  int threads() const;          // optional, integer in [0, 1024]
  bool mean_reduction() const;  // reduction !== 'sum'

  void expect_length(const char* name, size_t got, size_t want) const;
  // product of dims, refused past 2^53 (and so past size_t)
  size_t product(std::initializer_list<int64_t> dims, const char* what) const;
  // y[r] in [0, vocab) on every row whose mask is non-zero (every row without a mask)
  void check_targets(const int32_t* y, const float* mask, size_t rows, int64_t vocab) const;
  // Group offsets, offsets[0] = 0 < offsets[1] < ... < offsets[G] = n, as a copy that the call
  // owns (handed to the baton by take_owned): the kernels index memory by them, so they are checked
  // once and then read from memory no caller can change (an async caller could otherwise rewrite
  // them before the work runs, a thread sharing their buffer during it).
  View<int32_t> offsets(const char* name, int64_t n) const;

  // Called by typed(): remembers the array and pins its memory.
  void record(const char* name, Napi::Value array, void* data, size_t bytes) const;
  // The typed array read under `name` (the one the kernels use), or undefined.
  Napi::Value read_array(const char* name) const;
  // After the last read: every array read still holds the memory it was read with.
  void check_unchanged() const;
  std::vector<ReadArray> take_reads() const { return std::move(reads_); }
  std::vector<std::shared_ptr<std::vector<int32_t>>> take_owned() const { return std::move(owned_); }

 private:
  mutable std::vector<ReadArray> reads_;
  mutable std::vector<std::shared_ptr<std::vector<int32_t>>> owned_;
  Napi::Env env_;
  std::string fn_;
  Napi::Object opts_;
};

}  // namespace gvpo
