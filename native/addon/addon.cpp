// The module: registers the NativeTensor class (handle.h) and every binding of ops.h from one
// table. A registered binding runs under guarded() (args.h), so each C++ exception reaches
// JavaScript as a TypeError, RangeError or Error and no input can abort the process.
#include <napi.h>

#include "args.h"
#include "handle.h"
#include "ops.h"

namespace osp::addon {
namespace {

struct Entry {
  const char* name;
  Binding fn;
};

// The JavaScript exports, by name; src/native.ts declares their types.
constexpr Entry kBindings[] = {
    // tensors and the runtime
    {"isTensor", isTensor},
    {"fromArray", fromArray},
    {"zeros", zeros},
    {"randomFill", randomFill},
    {"backends", backends},
    {"synchronize", synchronize},
    {"memoryStats", memoryStats},
    {"resetPeakMemory", resetPeakMemory},
    {"syncStats", syncStats},
    {"resetSyncStats", resetSyncStats},
    {"hostParallelCopy", hostParallelCopy},  // bandwidth probes for the bench
    {"hostParallelReadSum", hostParallelReadSum},
    // log-probs and losses
    {"tokenLogprobs", tokenLogprobs},
    {"tokenLogprobsWithLogsumexp", tokenLogprobsWithLogsumexp},
    {"tokenLogprobsBackward", tokenLogprobsBackward},
    {"logSoftmax", logSoftmax},
    {"logSoftmaxBackward", logSoftmaxBackward},
    {"gather", gather},
    {"gatherBackward", gatherBackward},
    {"sequenceLogprobs", sequenceLogprobs},
    {"sequenceLogprobsBackward", sequenceLogprobsBackward},
    {"preferenceLoss", preferenceLoss},
    // elementwise
    {"binary", binary},
    {"unary", unary},
    {"affine", affine},
    {"sum", sum},
    {"copyInto", copyInto},
    // model ops
    {"matmul", matmul},
    {"rmsNorm", rmsNorm},
    {"rmsNormBackward", rmsNormBackward},
    {"swiglu", swiglu},
    {"swigluBackward", swigluBackward},
    {"rope", rope},
    {"ropeBackward", ropeBackward},
    {"ropeInvFreq", ropeInvFreq},
    {"embedding", embedding},
    {"embeddingBackward", embeddingBackward},
    // optimizer
    {"sumOfSquares", sumOfSquares},
    {"adamwStep", adamwStep},
    // attention, kv cache, sampling
    {"causalAttention", causalAttention},
    {"causalAttentionBackward", causalAttentionBackward},
    {"kvCacheWrite", kvCacheWrite},
    {"cachedAttention", cachedAttention},
    {"sampleTokens", sampleTokens},
};

// Calls the table entry passed as the function's data, guarded.
Napi::Value dispatch(const Napi::CallbackInfo& info) {
  const Binding fn = static_cast<const Entry*>(info.Data())->fn;
  return guarded(info, [&] { return fn(info); });
}

}  // namespace
}  // namespace osp::addon

namespace {

Napi::Object init(Napi::Env env, Napi::Object exports) {
  using namespace osp::addon;
  auto* data = new AddonData();
  Napi::Function cls = NativeTensor::define(env);
  data->tensorClass = Napi::Persistent(cls);
  env.SetInstanceData<AddonData>(data);
  exports.Set("NativeTensor", cls);
  for (const Entry& e : kBindings)
    exports.Set(e.name, Napi::Function::New<dispatch>(env, e.name, const_cast<Entry*>(&e)));
  return exports;
}

}  // namespace

NODE_API_MODULE(osp, init)
