// Sequence log-probs: out[s] = sum of tokenLogprobs[n] over the tokens n with sequenceIds[n] == s.
// Tokens with id -1 or ignoreIndex (prompt tokens, padding) count nowhere. Backward broadcasts:
// dTokens[n] = g[sequenceIds[n]] (0 for uncounted tokens).
// Summation order is fixed (token order within a sequence), so results are bit-reproducible on
// every backend; the CUDA kernel gives each sequence one block that scans the ids (N x count reads
// of 4 bytes: small next to the model, and no atomics). Pinned by test/sequenceLogprobs.test.ts.
#pragma once
#include <cstdint>

#include "../../core/errors.h"
#include "../../core/tensor.h"

namespace osp {

Tensor sequenceLogprobs(const Tensor& tokenLogprobs, const Tensor& sequenceIds, int64_t count, int32_t ignoreIndex);
Tensor sequenceLogprobsBackward(const Tensor& gradSequences, const Tensor& sequenceIds, int32_t ignoreIndex);

namespace sequence_logprobs {

template <typename T>
void forwardCpu(const T* lp, const int32_t* ids, T* out, int64_t N, int64_t count, int32_t ignoreIndex, KernelStatus* st);
template <typename T>
void backwardCpu(const T* g, const int32_t* ids, T* d, int64_t N, int64_t count, int32_t ignoreIndex, KernelStatus* st);
void forwardCuda(const float* lp, const int32_t* ids, float* out, int64_t N, int64_t count, int32_t ignoreIndex, KernelStatus* st);
void backwardCuda(const float* g, const int32_t* ids, float* d, int64_t N, int64_t count, int32_t ignoreIndex, KernelStatus* st);

}  // namespace sequence_logprobs
}  // namespace osp
