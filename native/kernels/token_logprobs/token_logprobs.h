// token log-probs: out[n] = logits[n, t_n] - logsumexp(logits[n, :]), 0 where t_n == ignoreIndex.
// backward:        dlogits[n, v] = g[n] * (onehot(t_n)[v] - softmax(logits[n])[v]), 0 on ignored rows.
//
// Why fused: the unfused path (log_softmax, then gather) writes and re-reads an [N, V] tensor, the
// largest activation of LM training (N = 16k tokens x V = 128k vocab is 8 GiB in f32). Here each row
// is read once with an online max/sum (m' = max(m, x), s' = s e^(m - m') + e^(x - m')), so the
// forward moves N*V*sizeof(T) bytes and stores nothing; the backward reads each row twice (once for
// logsumexp, once to write) and writes N*V. Arithmetic: about 3 flops + 1 exp per element.
//
// Values: NaN or +Inf anywhere in a row, or a row with no finite logit, is a RangeError naming the
// row; -Inf logits are allowed (masked vocabulary). A target outside [0, V) that is not ignoreIndex
// is a RangeError. Pinned by test/tokenLogprobs.test.ts (finite differences in f64) and
// test/gpu.test.ts (CUDA against the f64 CPU reference).
#pragma once
#include <cstdint>

#include "../../core/errors.h"
#include "../../core/tensor.h"

namespace osp {

// Tensor-level ops: validate, allocate, dispatch to CPU or CUDA.
Tensor tokenLogprobs(const Tensor& logits, const Tensor& targets, int32_t ignoreIndex);
Tensor tokenLogprobsBackward(const Tensor& logits, const Tensor& targets, const Tensor& gradLogprobs,
                             int32_t ignoreIndex, bool inPlace);

namespace token_logprobs {

// CPU reference: one scalar online pass per row, any float type (f64 is the ground truth).
template <typename T>
void forwardReference(const T* logits, const int32_t* targets, T* out, int64_t N, int64_t V, int32_t ignoreIndex,
                      KernelStatus* status);
template <typename T>
void backwardReference(const T* logits, const int32_t* targets, const T* g, T* dlogits, int64_t N, int64_t V,
                       int32_t ignoreIndex, KernelStatus* status);

// CPU fast path for f32: vectorised exp, rows split over the thread pool.
void forwardCpuF32(const float* logits, const int32_t* targets, float* out, int64_t N, int64_t V, int32_t ignoreIndex,
                   KernelStatus* status);
void backwardCpuF32(const float* logits, const int32_t* targets, const float* g, float* dlogits, int64_t N, int64_t V,
                    int32_t ignoreIndex, KernelStatus* status);

// CUDA: logits f32 or bf16 (isBf16), out/g f32, dlogits in the logits' dtype. Queued on the osp stream.
void forwardCuda(const void* logits, bool isBf16, const int32_t* targets, float* out, int64_t N, int64_t V,
                 int32_t ignoreIndex, KernelStatus* status);
void backwardCuda(const void* logits, bool isBf16, const int32_t* targets, const float* g, void* dlogits, int64_t N,
                  int64_t V, int32_t ignoreIndex, KernelStatus* status);

}  // namespace token_logprobs
}  // namespace osp
