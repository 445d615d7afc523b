// token log-probs: out[n] = logits[n, t_n] - logsumexp(logits[n, :]), 0 where t_n == ignoreIndex.
// backward:        dlogits[n, v] = g[n] * (onehot(t_n)[v] - softmax(logits[n])[v]), 0 on ignored rows,
//                  with softmax(logits[n])[v] = exp(logits[n, v] - logsumexp(logits[n, :])).
//
// Why fused: the unfused path (log_softmax, then gather) writes and re-reads an [N, V] tensor, the
// largest activation of LM training (N = 16k tokens x V = 128k vocab is 8 GiB in f32). Here each row
// is read once with an online max/sum (m' = max(m, x), s' = s e^(m - m') + e^(x - m')), so the
// forward moves N*V*sizeof(T) bytes and stores nothing but, on request, the row logsumexp (N
// floats). The backward given that logsumexp reads each row once and writes it once (2*N*V*sizeof(T)
// bytes, in place allowed); without it, it recomputes the logsumexp first: a second read of every
// row (3*N*V*sizeof(T) bytes; at a real vocabulary the rows in flight do not fit in cache, so both
// reads come from memory). Arithmetic: about 3 flops + 1 exp per element (the recomputing backward:
// 2 exps).
//
// Values: NaN or +Inf anywhere in a row, or a row with no finite logit, is a RangeError naming the
// row; -Inf logits are allowed (masked vocabulary). A target outside [0, V) that is not ignoreIndex
// is a RangeError. A given logsumexp that is not finite on a row that is not ignored is a RangeError
// naming the row (the ignored rows' entries are not read; the forward writes 0 there); a row with no
// finite logit has none, so with a logsumexp given it is reported that way. Pinned by
// test/tokenLogprobs.test.ts (finite differences in f64) and test/gpu.test.ts (CUDA against the f64
// CPU reference).
#pragma once
#include <cstdint>

#include "../../core/errors.h"
#include "../../core/tensor.h"

namespace osp {

// Tensor-level ops: validate, allocate, dispatch to CPU or CUDA.
struct TokenLogprobsResult {
  Tensor logprobs;   // [N]: f64 for f64 logits, else f32
  Tensor logsumexp;  // [N], same dtype: logsumexp(logits[n, :]), 0 on ignored rows
};
Tensor tokenLogprobs(const Tensor& logits, const Tensor& targets, int32_t ignoreIndex);
TokenLogprobsResult tokenLogprobsWithLogsumexp(const Tensor& logits, const Tensor& targets, int32_t ignoreIndex);
// logsumexp: null to recompute it (two reads of each row), else the forward's [N] (one read).
Tensor tokenLogprobsBackward(const Tensor& logits, const Tensor& targets, const Tensor& gradLogprobs,
                             int32_t ignoreIndex, bool inPlace, const Tensor* logsumexp = nullptr);

namespace token_logprobs {

// Every kernel below takes an optional row logsumexp `lse` [N] (null: not wanted / not given).
// Forward: written when non-null (0 on ignored rows). Backward: when non-null it is used instead of
// recomputing, so each row is read once; a non-finite entry on a row that is not ignored reports
// StatusNonFiniteValue with the row. Either way a row with NaN or +Inf reports StatusNonFiniteRow.

// CPU reference: one scalar online pass per row, any float type (f64 is the ground truth).
template <typename T>
void forwardReference(const T* logits, const int32_t* targets, T* out, T* lse, int64_t N, int64_t V,
                      int32_t ignoreIndex, KernelStatus* status);
template <typename T>
void backwardReference(const T* logits, const int32_t* targets, const T* g, const T* lse, T* dlogits, int64_t N,
                       int64_t V, int32_t ignoreIndex, KernelStatus* status);

// CPU fast path for f32: vectorised exp, rows split over the thread pool. With the same lse (the
// forward's, from the same logits) the backward is bitwise the one that recomputes it.
void forwardCpuF32(const float* logits, const int32_t* targets, float* out, float* lse, int64_t N, int64_t V,
                   int32_t ignoreIndex, KernelStatus* status);
void backwardCpuF32(const float* logits, const int32_t* targets, const float* g, const float* lse, float* dlogits,
                    int64_t N, int64_t V, int32_t ignoreIndex, KernelStatus* status);

// CUDA: logits f32 or bf16 (isBf16), out/g/lse f32, dlogits in the logits' dtype. Queued on the osp stream.
void forwardCuda(const void* logits, bool isBf16, const int32_t* targets, float* out, float* lse, int64_t N, int64_t V,
                 int32_t ignoreIndex, KernelStatus* status);
void backwardCuda(const void* logits, bool isBf16, const int32_t* targets, const float* g, const float* lse,
                  void* dlogits, int64_t N, int64_t V, int32_t ignoreIndex, KernelStatus* status);

}  // namespace token_logprobs
}  // namespace osp
