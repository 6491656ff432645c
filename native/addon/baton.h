// The baton: an op's prepare step runs on the main thread (checks, output allocation) and
// returns a Baton; `work` then runs either inline (sync form) or in an AsyncWorker (async form,
// on the libuv pool, touching no N-API), and `finish` copies scalars into the result object
// back on the main thread. The Baton holds the typed arrays the prepare step read (their memory
// pinned, see args.h) and the result, so none can be collected while the work runs.
#pragma once
#include <napi.h>
#include <v8.h>

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <cstring>
#include <vector>

#include "args.h"

namespace gvpo {

struct Baton {
  std::function<void()> work;                // no N-API in here
  std::function<void(Napi::Object)> finish;  // main thread; may be empty
  Napi::ObjectReference result;
  // Every typed array the prepare step read, with its memory owned until the work is done: a
  // buffer the caller transfers (detaches) mid-call keeps its bytes alive here even if its new
  // owner is collected, and so does an array a getter made that nothing else holds.
  std::vector<ReadArray> inputs;
  std::vector<std::shared_ptr<std::vector<int32_t>>> owned;  // copies the call made (Args::offsets)
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
      error_ = e.what();  // not SetError: node-addon-api would make the Error before OnError runs
      failed_ = true;
    }
  }
  // OnOK runs where JavaScript can run, except while a worker thread is being torn down with the
  // job still queued: there every N-API call fails and node-addon-api throws, and a C++ exception
  // escaping here would abort the process. The promise can no longer be observed then, so the
  // failure is dropped.
  void OnOK() override {
    try {
      if (failed_)
        deferred_.Reject(Napi::Error::New(Env(), error_).Value());
      else
        settle();
    } catch (...) {
    }
  }

 private:
  void settle() {
    // An input detached (transferred) while the work ran changed owner mid-read: the result is
    // not trusted.
    for (const ReadArray& in : task_->inputs) {
      napi_value ab;
      bool detached = false;
      napi_get_typedarray_info(Env(), in.array.Value(), nullptr, nullptr, nullptr, &ab, nullptr);
      napi_is_detached_arraybuffer(Env(), ab, &detached);
      if (detached) {
        deferred_.Reject(Napi::Error::New(Env(), in.name + " was detached (transferred) while the call was running; "
                                                           "the result is discarded")
                             .Value());
        return;
      }
    }
    Napi::Object r = task_->result.Value();
    if (task_->finish) task_->finish(r);
    deferred_.Resolve(r);
  }

  std::unique_ptr<Baton> task_;
  Napi::Promise::Deferred deferred_;
  std::string error_;
  bool failed_ = false;
};

using Prepare = std::unique_ptr<Baton> (*)(const Napi::CallbackInfo&);

template <Prepare P>
Napi::Value run_sync(const Napi::CallbackInfo& info) {
  std::unique_ptr<Baton> t = P(info);
  try {  // a kernel's failure (a CUDA error, an allocation) becomes a JavaScript Error, never an abort
    t->work();
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
  Napi::Object r = t->result.Value();
  if (t->finish) t->finish(r);
  return r;
}

template <Prepare P>
Napi::Value run_async(const Napi::CallbackInfo& info) {
  std::unique_ptr<Baton> t = P(info);  // argument errors throw here (the TypeScript layer turns them into rejections)
  Job* job = new Job(info.Env(), std::move(t));
  Napi::Promise p = job->promise();
  job->Queue();
  return p;
}

// After the last read of the options (getters run JavaScript, which may detach or resize what
// was read before): every array read is checked unchanged and handed to the baton.
// Exports an op under `name` (sync) and `name`Async (a Promise), both from one prepare step.
template <Prepare P>
void export_op(Napi::Env env, Napi::Object exports, const std::string& name) {
  exports.Set(name, Napi::Function::New(env, run_sync<P>, name));
  exports.Set(name + "Async", Napi::Function::New(env, run_async<P>, name + "Async"));
}

inline std::unique_ptr<Baton> make_baton(const Args& a, Napi::Object result) {
  a.check_unchanged();
  auto t = std::make_unique<Baton>();
  t->inputs = a.take_reads();
  t->owned = a.take_owned();
  t->result = Napi::Persistent(result);
  return t;
}

}  // namespace gvpo
