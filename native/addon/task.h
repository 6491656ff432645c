// The baton: an op's prepare step runs on the main thread (checks, output allocation) and
// returns a Task; `work` then runs either inline (sync form) or in an AsyncWorker (async form,
// on the libuv pool, touching no N-API), and `finish` copies scalars into the result object
// back on the main thread. The Task holds references to the caller's options object and to the
// result, so neither can be collected while the work runs.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <stdexcept>

namespace gvpo {

struct Task {
  std::function<void()> work;                   // no N-API in here
  std::function<void(Napi::Object)> finish;     // main thread; may be empty
  Napi::ObjectReference inputs;
  Napi::ObjectReference result;
};

class Job : public Napi::AsyncWorker {
 public:
  Job(Napi::Env env, std::unique_ptr<Task> task)
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
    Napi::Object r = task_->result.Value();
    if (task_->finish) task_->finish(r);
    deferred_.Resolve(r);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  std::unique_ptr<Task> task_;
  Napi::Promise::Deferred deferred_;
};

using Prepare = std::unique_ptr<Task> (*)(const Napi::CallbackInfo&);

template <Prepare P>
Napi::Value run_sync(const Napi::CallbackInfo& info) {
  std::unique_ptr<Task> t = P(info);
  t->work();
  Napi::Object r = t->result.Value();
  if (t->finish) t->finish(r);
  return r;
}

template <Prepare P>
Napi::Value run_async(const Napi::CallbackInfo& info) {
  std::unique_ptr<Task> t = P(info);  // argument errors throw here, synchronously
  Job* job = new Job(info.Env(), std::move(t));
  Napi::Promise p = job->promise();
  job->Queue();
  return p;
}

inline std::unique_ptr<Task> make_task(Napi::Object inputs, Napi::Object result) {
  auto t = std::make_unique<Task>();
  t->inputs = Napi::Persistent(inputs);
  t->result = Napi::Persistent(result);
  return t;
}

}  // namespace gvpo
