// Registration of the ops on the module's exports (ops.cc: CPU).
#pragma once
#include <napi.h>

namespace gvpo {
void register_cpu_ops(Napi::Env env, Napi::Object exports);
}
