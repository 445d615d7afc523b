// The unfused reference path for token log-probs, kept for tests and `npm run bench`:
//   logSoftmax:          y[n, v] = x[n, v] - logsumexp(x[n, :])          writes [N, V]
//   gather:              out[n] = y[n, t_n] (0 where t_n == ignoreIndex)
//   gatherBackward:      dy[n, v] = g[n] * onehot(t_n)[v]                   writes [N, V]
//   logSoftmaxBackward:  dx[n, v] = dy[n, v] - exp(y[n, v]) * sum_v' dy[n, v']
// Memory: the forward reads x and writes y (2 N V elements) then gathers; the backward writes dy
// and reads dy and y to write dx (4 N V). The fused op (token_logprobs) moves N V and 3 N V.
// Pinned by test/unfused.test.ts (against the fused op and finite differences).
#pragma once
#include <cstdint>

#include "../../core/errors.h"
#include "../../core/tensor.h"

namespace osp {

Tensor logSoftmax(const Tensor& logits);
Tensor logSoftmaxBackward(const Tensor& gradOut, const Tensor& logSoftmaxOut);
Tensor gather(const Tensor& values, const Tensor& targets, int32_t ignoreIndex);
// outType: the gradient's dtype (grad's own by default; bf16 on CUDA to feed a bf16 logSoftmaxBackward).
Tensor gatherBackward(const Tensor& grad, const Tensor& targets, int64_t vocab, int32_t ignoreIndex, DType outType);

namespace log_softmax {

template <typename T> void forwardCpu(const T* x, T* y, int64_t N, int64_t V, KernelStatus* st);
template <typename T> void backwardCpu(const T* dy, const T* y, T* dx, int64_t N, int64_t V);
template <typename T>
void gatherCpu(const T* y, const int32_t* t, T* out, int64_t N, int64_t V, int32_t ignoreIndex, KernelStatus* st);
template <typename T>
void gatherBackwardCpu(const T* g, const int32_t* t, T* dy, int64_t N, int64_t V, int32_t ignoreIndex, KernelStatus* st);

// CUDA: values f32 or bf16 (isBf16) in and out; gather output and its gradient are f32.
void forwardCuda(const void* x, void* y, bool isBf16, int64_t N, int64_t V, KernelStatus* st);
void backwardCuda(const void* dy, const void* y, void* dx, bool isBf16, int64_t N, int64_t V);
void gatherCuda(const void* y, bool isBf16, const int32_t* t, float* out, int64_t N, int64_t V, int32_t ignoreIndex,
                KernelStatus* st);
void gatherBackwardCuda(const float* g, const int32_t* t, void* dy, bool isBf16, int64_t N, int64_t V, int32_t ignoreIndex,
                        KernelStatus* st);

}  // namespace log_softmax
}  // namespace osp
