// Unfused log-softmax / gather: argument checks and dispatch (maths in log_softmax.h).
#include "log_softmax.h"

#include "../../core/check.h"
#include "../../core/cuda_backend.h"
#include "../../core/sync.h"

namespace osp {

namespace {

void checkMatrix(const ArgCheck& c, const Tensor& t, const char* arg) {
  c.dims(t, arg, 2);
  c.contiguous(t, arg);
  c.floating(t, arg);
}

void checkTargets(const ArgCheck& c, const Tensor& targets, int64_t N, const Tensor& like, const char* likeName) {
  c.dims(targets, "targets", 1);
  c.contiguous(targets, "targets");
  c.dtype(targets, "targets", {DType::I32});
  c.sameDevice(like, likeName, targets, "targets");
  c.size(targets, "targets", 0, N, std::string("one target per row of ") + likeName);
}

// `range` names where V comes from, e.g. "the columns of values".
void raiseTargets(const ArgCheck& c, const KernelStatus& st, const Tensor& targets, int64_t V, int32_t ignoreIndex,
                  const char* range) {
  if (st.code == StatusTargetOutOfRange)
    c.status(st, "targets[" + std::to_string(st.index) + "] = " + std::to_string(readInt(targets, st.index)) +
                     " is outside [0, " + std::to_string(V) + ") (" + range + ") and is not ignoreIndex (" +
                     std::to_string(ignoreIndex) + ")");
  c.status(st, "kernel reported status " + std::to_string(st.code));
}

void raiseRows(const ArgCheck& c, const KernelStatus& st) {
  if (st.code == StatusNonFiniteRow)
    c.status(st, "logits row " + std::to_string(st.index) + " contains NaN or +Inf (or no finite value); expected finite logits");
  c.status(st, "kernel reported status " + std::to_string(st.code));
}

}  // namespace

Tensor logSoftmax(const Tensor& logits) {
  ArgCheck c{"logSoftmax"};
  checkMatrix(c, logits, "logits");
  const int64_t N = logits.shape[0], V = logits.shape[1];
  Tensor y = Tensor::empty(logits.shape, logits.dtype, logits.device);
  if (N == 0 || V == 0) return y;
  KernelStatus st{};
  if (logits.device == Device::CPU) {
    if (logits.dtype == DType::F64) log_softmax::forwardCpu(logits.data<double>(), y.data<double>(), N, V, &st);
    else log_softmax::forwardCpu(logits.data<float>(), y.data<float>(), N, V, &st);
  } else {
#ifdef OSP_WITH_CUDA
    cuda::runCudaOp(
        c.op, [&](KernelStatus* s) { log_softmax::forwardCuda(logits.raw(), y.raw(), logits.dtype == DType::BF16, N, V, s); },
        [c](const KernelStatus& s) { raiseRows(c, s); });
#endif
  }
  raiseRows(c, st);
  return y;
}

Tensor logSoftmaxBackward(const Tensor& gradOut, const Tensor& out) {
  ArgCheck c{"logSoftmaxBackward"};
  checkMatrix(c, gradOut, "gradOut");
  checkMatrix(c, out, "logSoftmaxOut");
  c.sameDevice(gradOut, "gradOut", out, "logSoftmaxOut");
  c.sameDtype(gradOut, "gradOut", out, "logSoftmaxOut");
  if (gradOut.shape != out.shape)
    typeError("logSoftmaxBackward: gradOut has shape " + shapeString(gradOut.shape) + " but logSoftmaxOut has shape " +
              shapeString(out.shape) + "; expected equal shapes");
  const int64_t N = out.shape[0], V = out.shape[1];
  Tensor dx = Tensor::empty(out.shape, out.dtype, out.device);
  if (N == 0 || V == 0) return dx;
  if (out.device == Device::CPU) {
    if (out.dtype == DType::F64) log_softmax::backwardCpu(gradOut.data<double>(), out.data<double>(), dx.data<double>(), N, V);
    else log_softmax::backwardCpu(gradOut.data<float>(), out.data<float>(), dx.data<float>(), N, V);
  } else {
#ifdef OSP_WITH_CUDA
    log_softmax::backwardCuda(gradOut.raw(), out.raw(), dx.raw(), out.dtype == DType::BF16, N, V);
    cuda::checkLaunch("logSoftmaxBackward");
#endif
  }
  return dx;
}

Tensor gather(const Tensor& values, const Tensor& targets, int32_t ignoreIndex) {
  ArgCheck c{"gather"};
  checkMatrix(c, values, "values");
  const int64_t N = values.shape[0], V = values.shape[1];
  checkTargets(c, targets, N, values, "values");
  Tensor out = Tensor::empty({N}, values.dtype == DType::F64 ? DType::F64 : DType::F32, values.device);
  if (N == 0) return out;
  KernelStatus st{};
  if (values.device == Device::CPU) {
    if (values.dtype == DType::F64)
      log_softmax::gatherCpu(values.data<double>(), targets.data<int32_t>(), out.data<double>(), N, V, ignoreIndex, &st);
    else log_softmax::gatherCpu(values.data<float>(), targets.data<int32_t>(), out.data<float>(), N, V, ignoreIndex, &st);
  } else {
#ifdef OSP_WITH_CUDA
    cuda::runCudaOp(
        c.op,
        [&](KernelStatus* s) {
          log_softmax::gatherCuda(values.raw(), values.dtype == DType::BF16, targets.data<int32_t>(), out.data<float>(), N,
                                  V, ignoreIndex, s);
        },
        [c, targets, V, ignoreIndex](const KernelStatus& s) { raiseTargets(c, s, targets, V, ignoreIndex, "the columns of values"); });
#endif
  }
  raiseTargets(c, st, targets, V, ignoreIndex, "the columns of values");
  return out;
}

Tensor gatherBackward(const Tensor& grad, const Tensor& targets, int64_t vocab, int32_t ignoreIndex, DType outType) {
  ArgCheck c{"gatherBackward"};
  c.dims(grad, "grad", 1);
  c.contiguous(grad, "grad");
  c.floating(grad, "grad", false);
  const int64_t N = grad.shape[0];
  checkTargets(c, targets, N, grad, "grad");
  if (vocab < 1) rangeError("gatherBackward: vocab is " + std::to_string(vocab) + "; expected at least 1");
  const bool okType = grad.device == Device::CPU ? outType == grad.dtype : (outType == DType::F32 || outType == DType::BF16);
  if (!okType)
    typeError(std::string("gatherBackward: dtype ") + dtypeName(outType) + " is not available for grad " + grad.describe() +
              "; expected " + (grad.device == Device::CPU ? dtypeName(grad.dtype) : "f32 or bf16"));
  checkedNumel({N, vocab}, outType, "gatherBackward: vocab: the result's shape");
  Tensor dy = Tensor::empty({N, vocab}, outType, grad.device);
  if (N == 0) return dy;
  KernelStatus st{};
  if (grad.device == Device::CPU) {
    if (grad.dtype == DType::F64)
      log_softmax::gatherBackwardCpu(grad.data<double>(), targets.data<int32_t>(), dy.data<double>(), N, vocab, ignoreIndex, &st);
    else log_softmax::gatherBackwardCpu(grad.data<float>(), targets.data<int32_t>(), dy.data<float>(), N, vocab, ignoreIndex, &st);
  } else {
#ifdef OSP_WITH_CUDA
    cuda::runCudaOp(
        c.op,
        [&](KernelStatus* s) {
          log_softmax::gatherBackwardCuda(grad.data<float>(), targets.data<int32_t>(), dy.raw(), outType == DType::BF16, N,
                                          vocab, ignoreIndex, s);
        },
        [c, targets, vocab, ignoreIndex](const KernelStatus& s) { raiseTargets(c, s, targets, vocab, ignoreIndex, "vocab"); });
#endif
  }
  raiseTargets(c, st, targets, vocab, ignoreIndex, "vocab");
  return dy;
}

}  // namespace osp
