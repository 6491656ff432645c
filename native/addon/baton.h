// The baton: an op's prepare step runs on the main thread (checks, output allocation) and
// returns a Baton; `work` then runs either inline (sync form) or in an AsyncWorker (async form,
// on the libuv pool, touching no N-API), and `finish` copies scalars into the result object
// back on the main thread. The Baton holds references to the caller's options object and to the
// result, so neither can be collected while the work runs.
#pragma once
#include <napi.h>
#include <v8.h>

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <cstring>
#include <vector>

namespace gvpo {

struct Baton {
  std::function<void()> work;                   // no N-API in here
  std::function<void(Napi::Object)> finish;     // main thread; may be empty
  Napi::ObjectReference inputs;
  Napi::ObjectReference result;
  // The memory of every typed array in the inputs, owned until the work is done: a buffer the
  // caller transfers (detaches) mid-call keeps its bytes alive here even if its new owner is
  // collected. N-API cannot hold a backing store, so this one reaches into V8 (napi_value is a
  // v8::Local<v8::Value> in Node's implementation).
  std::vector<std::shared_ptr<v8::BackingStore>> pinned;

  void pin_inputs(Napi::Env env) {
    Napi::Object in = inputs.Value();
    Napi::Array keys = in.GetPropertyNames();
    for (uint32_t i = 0; i < keys.Length(); i++) {
      Napi::Value v = in.Get(keys.Get(i));
      if (!v.IsTypedArray()) continue;
      napi_value raw = v;
      v8::Local<v8::Value> local;
      static_assert(sizeof(raw) == sizeof(local), "napi_value is a v8::Local");
      std::memcpy(static_cast<void*>(&local), &raw, sizeof(raw));
      pinned.push_back(local.As<v8::TypedArray>()->Buffer()->GetBackingStore());
    }
    (void)env;
  }
};

class Job : public Napi::AsyncWorker {
 public:
  Job(Napi::Env env, std::unique_ptr<Baton> task)
      : Napi::AsyncWorker(env, "gvpo"), task_(std::move(task)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      task_->work();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    // The inputs were read in place (their memory pinned). One that was detached (transferred)
    // while the work ran changed owner mid-read: the result is not trusted.
    Napi::Object in = task_->inputs.Value();
    Napi::Array keys = in.GetPropertyNames();
    for (uint32_t i = 0; i < keys.Length(); i++) {
      Napi::Value v = in.Get(keys.Get(i));
      if (!v.IsTypedArray()) continue;
      napi_value ab;
      bool detached = false;
      napi_get_typedarray_info(Env(), v, nullptr, nullptr, nullptr, &ab, nullptr);
      napi_is_detached_arraybuffer(Env(), ab, &detached);
      if (detached) {
        std::string name = keys.Get(i).As<Napi::String>().Utf8Value();
        deferred_.Reject(Napi::Error::New(Env(), name + " was detached (transferred) while the call was running; "
                                                         "the result is discarded").Value());
        return;
      }
    }
    Napi::Object r = task_->result.Value();
    if (task_->finish) task_->finish(r);
    deferred_.Resolve(r);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  std::unique_ptr<Baton> task_;
  Napi::Promise::Deferred deferred_;
};

using Prepare = std::unique_ptr<Baton> (*)(const Napi::CallbackInfo&);

template <Prepare P>
Napi::Value run_sync(const Napi::CallbackInfo& info) {
  std::unique_ptr<Baton> t = P(info);
  t->work();
  Napi::Object r = t->result.Value();
  if (t->finish) t->finish(r);
  return r;
}

template <Prepare P>
Napi::Value run_async(const Napi::CallbackInfo& info) {
  std::unique_ptr<Baton> t = P(info);  // argument errors throw here (the TypeScript layer turns them into rejections)
  t->pin_inputs(info.Env());
  Job* job = new Job(info.Env(), std::move(t));
  Napi::Promise p = job->promise();
  job->Queue();
  return p;
}

inline std::unique_ptr<Baton> make_baton(Napi::Object inputs, Napi::Object result) {
  auto t = std::make_unique<Baton>();
  t->inputs = Napi::Persistent(inputs);
  t->result = Napi::Persistent(result);
  return t;
}

}  // namespace gvpo
