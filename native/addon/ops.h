// The bindings addon.cpp registers: one function per JavaScript export. Each converts its
// arguments (args.h: tensors positionally, every other parameter in one options object), calls
// native/core or a kernel, and converts the result; they hold no logic of their own.
#pragma once
#include <napi.h>

namespace osp::addon {

#define OSP_BINDING(name) Napi::Value name(const Napi::CallbackInfo& info);

// tensors and the runtime
OSP_BINDING(isTensor)
OSP_BINDING(fromArray)
OSP_BINDING(zeros)
OSP_BINDING(randomFill)
OSP_BINDING(backends)
OSP_BINDING(synchronize)
OSP_BINDING(memoryStats)
OSP_BINDING(resetPeakMemory)
OSP_BINDING(syncStats)
OSP_BINDING(resetSyncStats)
OSP_BINDING(hostParallelCopy)
OSP_BINDING(hostParallelReadSum)
// log-probs and losses
OSP_BINDING(tokenLogprobs)
OSP_BINDING(tokenLogprobsWithLogsumexp)
OSP_BINDING(tokenLogprobsBackward)
OSP_BINDING(logSoftmax)
OSP_BINDING(logSoftmaxBackward)
OSP_BINDING(gather)
OSP_BINDING(gatherBackward)
OSP_BINDING(sequenceLogprobs)
OSP_BINDING(sequenceLogprobsBackward)
OSP_BINDING(preferenceLoss)
// elementwise
OSP_BINDING(binary)
OSP_BINDING(unary)
OSP_BINDING(affine)
OSP_BINDING(sum)
OSP_BINDING(copyInto)
// model ops
OSP_BINDING(matmul)
OSP_BINDING(rmsNorm)
OSP_BINDING(rmsNormBackward)
OSP_BINDING(swiglu)
OSP_BINDING(swigluBackward)
OSP_BINDING(rope)
OSP_BINDING(ropeBackward)
OSP_BINDING(ropeInvFreq)
OSP_BINDING(embedding)
OSP_BINDING(embeddingBackward)
// optimizer
OSP_BINDING(sumOfSquares)
OSP_BINDING(adamwStep)
// attention, kv cache, sampling
OSP_BINDING(causalAttention)
OSP_BINDING(causalAttentionBackward)
OSP_BINDING(kvCacheWrite)
OSP_BINDING(cachedAttention)
OSP_BINDING(sampleTokens)

#undef OSP_BINDING

}  // namespace osp::addon
