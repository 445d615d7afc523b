// AdamW and sum of squares: argument checks and dispatch to the CPU or CUDA kernels (maths in adamw.h).
#include "adamw.h"

#include <algorithm>
#include <cmath>

#include "../../core/check.h"
#include "../../core/cuda_backend.h"

namespace osp {

namespace {

void sameShape(const ArgCheck& c, const Tensor& t, const char* arg, const Tensor& param) {
  if (t.shape != param.shape)
    typeError(c.prefix(arg) + " has shape " + shapeString(t.shape) + "; expected the shape of param, " + shapeString(param.shape));
}

void distinct(const ArgCheck& c, const Tensor& a, const char* argA, const Tensor& b, const char* argB) {
  const char* a0 = static_cast<const char*>(a.raw());
  const char* b0 = static_cast<const char*>(b.raw());
  if (a.storage == b.storage && a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes())
    typeError(c.prefix(argA) + " and " + argB + " overlap in memory; expected separate tensors (both are updated in place)");
}

adamw::StepScalars checkOptions(const ArgCheck& c, const AdamWOptions& o) {
  const std::pair<const char*, double> all[] = {{"lr", o.lr},   {"beta1", o.beta1},           {"beta2", o.beta2},
                                                {"eps", o.eps}, {"weightDecay", o.weightDecay}, {"step", o.step},
                                                {"gradScale", o.gradScale}};
  for (auto& [name, value] : all) c.finite(value, name);
  auto bad = [&](const char* name, double v, const char* want) {
    rangeError(c.prefix(name) + " is " + formatNumber(v) + "; expected " + want);
  };
  if (!(o.step >= 1) || o.step != std::floor(o.step)) bad("step", o.step, "an integer >= 1 (the 1-based step count)");
  if (!(o.beta1 >= 0 && o.beta1 < 1)) bad("beta1", o.beta1, "a number in [0, 1)");
  if (!(o.beta2 >= 0 && o.beta2 < 1)) bad("beta2", o.beta2, "a number in [0, 1)");
  if (!(o.lr >= 0)) bad("lr", o.lr, "a number >= 0");
  if (!(o.eps > 0)) bad("eps", o.eps, "a number > 0");
  if (!(o.weightDecay >= 0)) bad("weightDecay", o.weightDecay, "a number >= 0");
  if (!(o.gradScale >= 0)) bad("gradScale", o.gradScale, "a number >= 0");
  const double bc1 = 1 - std::pow(o.beta1, o.step);
  const double bc2 = 1 - std::pow(o.beta2, o.step);
  return {o.lr, o.beta1, o.beta2, o.eps, 1 - o.lr * o.weightDecay, o.gradScale, o.lr / bc1, std::sqrt(bc2)};
}

}  // namespace

Tensor sumOfSquares(const Tensor& x) {
  ArgCheck c{"sumOfSquares"};
  c.contiguous(x, "x");
  c.floating(x, "x");
  const int64_t n = x.numel();
  if (x.device == Device::CPU) {
    const double s = n == 0 ? 0.0 : x.dtype == DType::F64 ? adamw::sumOfSquaresCpu(x.data<double>(), n)
                                                          : adamw::sumOfSquaresCpu(x.data<float>(), n);
    if (x.dtype == DType::F64) return fromHost(&s, {1}, DType::F64, Device::CPU);
    const float f = static_cast<float>(s);
    return fromHost(&f, {1}, DType::F32, Device::CPU);
  }
  Tensor out = Tensor::zeros({1}, DType::F32, x.device);
#ifdef OSP_WITH_CUDA
  if (n > 0) {
    adamw::sumOfSquaresCuda(x.raw(), x.dtype == DType::BF16, out.data<float>(), n);
    cuda::checkLaunch("sumOfSquares");
  }
#endif
  return out;
}

void adamwStep(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const AdamWOptions& o) {
  ArgCheck c{"adamwStep"};
  const bool cpu = param.device == Device::CPU;
  if (cpu) c.dtype(param, "param", {DType::F32, DType::F64});
  else c.dtype(param, "param", {DType::F32});
  for (auto [t, name] : {std::pair<const Tensor*, const char*>{&grad, "grad"}, {&m, "m"}, {&v, "v"}}) {
    c.sameDevice(param, "param", *t, name);
    sameShape(c, *t, name, param);
  }
  if (cpu) c.sameDtype(param, "param", grad, "grad");
  else c.dtype(grad, "grad", {DType::F32, DType::BF16});
  c.sameDtype(param, "param", m, "m");
  c.sameDtype(param, "param", v, "v");
  c.contiguous(param, "param");
  c.contiguous(grad, "grad");
  c.contiguous(m, "m");
  c.contiguous(v, "v");
  distinct(c, param, "param", m, "m");
  distinct(c, param, "param", v, "v");
  distinct(c, m, "m", v, "v");
  adamw::StepScalars s = checkOptions(c, o);
  const Tensor* total = o.gradSumOfSquares;
  if (total) {
    c.sameDevice(param, "param", *total, "gradSumOfSquares");
    c.dtype(*total, "gradSumOfSquares", {cpu && param.dtype == DType::F64 ? DType::F64 : DType::F32});
    c.contiguous(*total, "gradSumOfSquares");
    if (total->numel() != 1) typeError(c.prefix("gradSumOfSquares") + " has shape " + shapeString(total->shape) + "; expected one element");
  }
  if (!(o.maxGradNorm >= 0) || !std::isfinite(o.maxGradNorm))
    rangeError(c.prefix("maxGradNorm") + " is " + formatNumber(o.maxGradNorm) + "; expected a finite number >= 0 (0: no clipping)");
  const int64_t n = param.numel();
  if (n == 0) return;
  if (total && cpu) {
    // The total is in host memory: the clip factor is formed here once, as the CUDA kernel forms it.
    const double t = total->dtype == DType::F64 ? *total->data<double>() : double(*total->data<float>());
    if (!std::isfinite(t)) return;  // a non-finite norm skips the update (see AdamWOptions)
    if (o.maxGradNorm > 0) s.gradScale *= std::min(1.0, o.maxGradNorm / (std::sqrt(t) + 1e-6));
  }
  KernelStatus st{};
  if (!o.checkFinite) {
    // skipped: the caller vouches for finite gradients
  } else if (cpu) {
    if (param.dtype == DType::F64) adamw::findNonFiniteCpu(grad.data<double>(), n, &st);
    else adamw::findNonFiniteCpu(grad.data<float>(), n, &st);
  } else {
#ifdef OSP_WITH_CUDA
    adamw::findNonFiniteCuda(grad.raw(), grad.dtype == DType::BF16, n, cuda::statusReset());
    cuda::checkLaunch("adamwStep");
    st = cuda::statusRead();
#endif
  }
  if (st.code == StatusNonFiniteValue)
    c.status(st, "grad[" + std::to_string(st.index) + "] = " + formatNumber(readFloat(grad, st.index)) +
                     " is not finite; expected finite gradients (param, m and v were left unchanged)");
  c.status(st, "kernel reported status " + std::to_string(st.code));
  if (cpu) {
    if (param.dtype == DType::F64)
      adamw::stepCpu(param.data<double>(), grad.data<double>(), m.data<double>(), v.data<double>(), n, s);
    else adamw::stepCpu(param.data<float>(), grad.data<float>(), m.data<float>(), v.data<float>(), n, s);
  } else {
#ifdef OSP_WITH_CUDA
    adamw::stepCuda(param.data<float>(), grad.raw(), grad.dtype == DType::BF16, m.data<float>(), v.data<float>(), n, s,
                    total ? total->data<float>() : nullptr, static_cast<float>(o.maxGradNorm));
    cuda::checkLaunch("adamwStep");
#endif
  }
}

}  // namespace osp
