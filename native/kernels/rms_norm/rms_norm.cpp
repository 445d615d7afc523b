// RMS norm: argument checks, allocation and dispatch to the CPU or CUDA kernels (maths in rms_norm.h).
#include "rms_norm.h"

#include "../../core/check.h"
#include "../../core/cuda_backend.h"

namespace osp {

namespace {

std::pair<int64_t, int64_t> checkArgs(const ArgCheck& c, const Tensor& x, const Tensor& w, double eps) {
  c.dims(x, "x", 2);
  c.contiguous(x, "x");
  c.floating(x, "x");
  c.companion(w, "weight", 1, x, "x");
  c.size(w, "weight", 0, x.shape[1], "one weight per column of x");
  c.finite(eps, "eps");
  if (!(eps >= 0)) rangeError(c.prefix("eps") + " is " + formatNumber(eps) + "; expected a number >= 0");
  return {x.shape[0], x.shape[1]};
}

}  // namespace

Tensor rmsNorm(const Tensor& x, const Tensor& weight, double eps) {
  ArgCheck c{"rmsNorm"};
  auto [T, D] = checkArgs(c, x, weight, eps);
  Tensor y = Tensor::empty({T, D}, x.dtype, x.device);
  if (T == 0 || D == 0) return y;
  if (x.device == Device::CPU) {
    if (x.dtype == DType::F64)
      rms_norm::forwardCpu(x.data<double>(), weight.data<double>(), y.data<double>(), T, D, eps, false);
    else rms_norm::forwardCpu(x.data<float>(), weight.data<float>(), y.data<float>(), T, D, eps, true);
  } else {
#ifdef OSP_WITH_CUDA
    rms_norm::forwardCuda(x.raw(), weight.raw(), y.raw(), x.dtype == DType::BF16, T, D, static_cast<float>(eps));
    cuda::checkLaunch("rmsNorm");
#endif
  }
  return y;
}

RmsNormGrads rmsNormBackward(const Tensor& x, const Tensor& weight, const Tensor& gradOut, double eps) {
  ArgCheck c{"rmsNormBackward"};
  auto [T, D] = checkArgs(c, x, weight, eps);
  c.companion(gradOut, "gradOut", 2, x, "x");
  c.size(gradOut, "gradOut", 0, T, "the shape of x");
  c.size(gradOut, "gradOut", 1, D, "the shape of x");
  RmsNormGrads r{Tensor::empty({T, D}, x.dtype, x.device), Tensor::zeros({D}, x.dtype, x.device)};
  if (T == 0 || D == 0) return r;
  if (x.device == Device::CPU) {
    if (x.dtype == DType::F64)
      rms_norm::backwardCpu(x.data<double>(), weight.data<double>(), gradOut.data<double>(), r.gradInput.data<double>(),
                            r.gradWeight.data<double>(), T, D, eps, false);
    else
      rms_norm::backwardCpu(x.data<float>(), weight.data<float>(), gradOut.data<float>(), r.gradInput.data<float>(),
                            r.gradWeight.data<float>(), T, D, eps, true);
  } else {
#ifdef OSP_WITH_CUDA
    Tensor rstd = Tensor::empty({T}, DType::F32, x.device);
    rms_norm::backwardCuda(x.raw(), weight.raw(), gradOut.raw(), r.gradInput.raw(), r.gradWeight.raw(), rstd.data<float>(),
                           x.dtype == DType::BF16, T, D, static_cast<float>(eps));
    cuda::checkLaunch("rmsNormBackward");
#endif
  }
  return r;
}

}  // namespace osp
