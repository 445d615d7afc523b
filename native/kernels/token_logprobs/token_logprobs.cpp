// token log-probs: argument checks and dispatch to the CPU or CUDA kernels (maths in the header).
#include "token_logprobs.h"

#include "../../core/check.h"
#include "../../core/cuda_backend.h"
#include "../../core/sync.h"

#include <optional>

namespace osp {

namespace {

// Shared checks for logits [N, V] and targets [N]; returns {N, V}.
std::pair<int64_t, int64_t> checkRows(const ArgCheck& c, const Tensor& logits, const Tensor& targets) {
  c.dims(logits, "logits", 2);
  c.contiguous(logits, "logits");
  c.floating(logits, "logits");
  c.dims(targets, "targets", 1);
  c.contiguous(targets, "targets");
  c.dtype(targets, "targets", {DType::I32});
  c.sameDevice(logits, "logits", targets, "targets");
  c.size(targets, "targets", 0, logits.shape[0], "one target per row of logits");
  if (logits.shape[1] < 1) typeError(c.prefix("logits") + " has shape " + shapeString(logits.shape) + "; expected at least one column");
  return {logits.shape[0], logits.shape[1]};
}

// lse: the backward's given logsumexp (null in the forward), for the message naming a bad entry.
void raise(const ArgCheck& c, const KernelStatus& st, const Tensor& targets, int64_t V, int32_t ignoreIndex,
           const Tensor* lse = nullptr) {
  if (st.code == StatusTargetOutOfRange)
    c.status(st, "targets[" + std::to_string(st.index) + "] = " + std::to_string(readInt(targets, st.index)) +
                     " is outside [0, " + std::to_string(V) + ") (the columns of logits) and is not ignoreIndex (" +
                     std::to_string(ignoreIndex) + ")");
  if (st.code == StatusNonFiniteRow)
    c.status(st, "logits row " + std::to_string(st.index) +
                     " contains NaN or +Inf (or no finite value); expected finite logits (-Inf is allowed for masked entries)");
  if (st.code == StatusNonFiniteValue && lse)
    c.status(st, "logsumexp[" + std::to_string(st.index) + "] = " + formatNumber(readFloat(*lse, st.index)) +
                     " is not finite; expected the forward's logsumexp of logits row " + std::to_string(st.index) +
                     " (tokenLogprobs with logsumexp)");
  c.status(st, "kernel reported status " + std::to_string(st.code));
}

// The forward, writing the row logsumexp into lse when it is non-null.
Tensor forward(const ArgCheck& c, const Tensor& logits, const Tensor& targets, int32_t ignoreIndex, Tensor* lse) {
  auto [N, V] = checkRows(c, logits, targets);
  const DType outType = logits.dtype == DType::F64 ? DType::F64 : DType::F32;
  Tensor out = Tensor::empty({N}, outType, logits.device);
  if (lse) *lse = Tensor::empty({N}, outType, logits.device);
  if (N == 0) return out;
  KernelStatus st{};
  if (logits.device == Device::CPU) {
    if (logits.dtype == DType::F64)
      token_logprobs::forwardReference(logits.data<double>(), targets.data<int32_t>(), out.data<double>(),
                                       lse ? lse->data<double>() : nullptr, N, V, ignoreIndex, &st);
    else
      token_logprobs::forwardCpuF32(logits.data<float>(), targets.data<int32_t>(), out.data<float>(),
                                    lse ? lse->data<float>() : nullptr, N, V, ignoreIndex, &st);
  } else {
#ifdef OSP_WITH_CUDA
    const int64_t n = N, v = V;  // C++17 lambdas cannot capture structured bindings
    cuda::runCudaOp(
        c.op,
        [&](KernelStatus* s) {
          token_logprobs::forwardCuda(logits.raw(), logits.dtype == DType::BF16, targets.data<int32_t>(),
                                      out.data<float>(), lse ? lse->data<float>() : nullptr, n, v, ignoreIndex, s);
        },
        [c, targets, V = v, ignoreIndex](const KernelStatus& s) { raise(c, s, targets, V, ignoreIndex); });
#endif
  }
  raise(c, st, targets, V, ignoreIndex);
  return out;
}

}  // namespace

Tensor tokenLogprobs(const Tensor& logits, const Tensor& targets, int32_t ignoreIndex) {
  return forward(ArgCheck{"tokenLogprobs"}, logits, targets, ignoreIndex, nullptr);
}

TokenLogprobsResult tokenLogprobsWithLogsumexp(const Tensor& logits, const Tensor& targets, int32_t ignoreIndex) {
  TokenLogprobsResult r;
  r.logprobs = forward(ArgCheck{"tokenLogprobs"}, logits, targets, ignoreIndex, &r.logsumexp);
  return r;
}

Tensor tokenLogprobsBackward(const Tensor& logits, const Tensor& targets, const Tensor& gradLogprobs,
                             int32_t ignoreIndex, bool inPlace, const Tensor* logsumexp) {
  ArgCheck c{"tokenLogprobsBackward"};
  auto [N, V] = checkRows(c, logits, targets);
  c.dims(gradLogprobs, "gradLogprobs", 1);
  c.contiguous(gradLogprobs, "gradLogprobs");
  c.sameDevice(logits, "logits", gradLogprobs, "gradLogprobs");
  c.size(gradLogprobs, "gradLogprobs", 0, N, "one gradient per row of logits");
  const DType gradType = logits.dtype == DType::F64 ? DType::F64 : DType::F32;
  if (gradLogprobs.dtype != gradType)
    typeError(c.prefix("gradLogprobs") + " has dtype " + dtypeName(gradLogprobs.dtype) + "; expected " + dtypeName(gradType) +
              " for logits of dtype " + dtypeName(logits.dtype));
  if (logsumexp) {
    c.dims(*logsumexp, "logsumexp", 1);
    c.contiguous(*logsumexp, "logsumexp");
    c.sameDevice(logits, "logits", *logsumexp, "logsumexp");
    c.size(*logsumexp, "logsumexp", 0, N, "one per row of logits (the forward's)");
    if (logsumexp->dtype != gradType)
      typeError(c.prefix("logsumexp") + " has dtype " + dtypeName(logsumexp->dtype) + "; expected " + dtypeName(gradType) +
                " for logits of dtype " + dtypeName(logits.dtype));
  }
  Tensor d = inPlace ? logits : Tensor::empty(logits.shape, logits.dtype, logits.device);
  if (N == 0) return d;
  KernelStatus st{};
  if (logits.device == Device::CPU) {
    if (logits.dtype == DType::F64)
      token_logprobs::backwardReference(logits.data<double>(), targets.data<int32_t>(), gradLogprobs.data<double>(),
                                        logsumexp ? logsumexp->data<double>() : nullptr, d.data<double>(), N, V,
                                        ignoreIndex, &st);
    else
      token_logprobs::backwardCpuF32(logits.data<float>(), targets.data<int32_t>(), gradLogprobs.data<float>(),
                                     logsumexp ? logsumexp->data<float>() : nullptr, d.data<float>(), N, V, ignoreIndex,
                                     &st);
  } else {
#ifdef OSP_WITH_CUDA
    const int64_t n = N, v = V;
    cuda::runCudaOp(
        c.op,
        [&](KernelStatus* s) {
          token_logprobs::backwardCuda(logits.raw(), logits.dtype == DType::BF16, targets.data<int32_t>(),
                                       gradLogprobs.data<float>(), logsumexp ? logsumexp->data<float>() : nullptr,
                                       d.raw(), n, v, ignoreIndex, s);
        },
        [c, targets, V = v, ignoreIndex, lse = logsumexp ? std::optional<Tensor>(*logsumexp) : std::nullopt](
            const KernelStatus& s) { raise(c, s, targets, V, ignoreIndex, lse ? &*lse : nullptr); });
#endif
  }
  raise(c, st, targets, V, ignoreIndex, logsumexp);
  return d;
}

}  // namespace osp
