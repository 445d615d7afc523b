// Elementwise ops: checks, the CPU loops (f32 and f64) and dispatch to CUDA (maths in elementwise.h).
#include "elementwise.h"

#include "../../core/check.h"
#include "../../core/cuda_backend.h"
#include "elementwise_ops.h"

namespace osp {

namespace {

void checkValues(const ArgCheck& c, const Tensor& t, const char* arg) {
  c.contiguous(t, arg);
  c.floating(t, arg, false);
}

}  // namespace

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  ArgCheck c{"binary"};
  checkValues(c, a, "a");
  checkValues(c, b, "b");
  c.sameDevice(a, "a", b, "b");
  c.sameDtype(a, "a", b, "b");
  if (a.shape != b.shape)
    typeError("binary: a has shape " + shapeString(a.shape) + " but b has shape " + shapeString(b.shape) + "; expected equal shapes");
  Tensor out = Tensor::empty(a.shape, a.dtype, a.device);
  const int64_t n = a.numel();
  const int k = static_cast<int>(op);
  if (n == 0) return out;
  if (a.device == Device::CPU) {
    if (a.dtype == DType::F64) {
      const double *x = a.data<double>(), *y = b.data<double>();
      double* o = out.data<double>();
      for (int64_t i = 0; i < n; i++) o[i] = elementwise::applyBinary(k, x[i], y[i]);
    } else {
      const float *x = a.data<float>(), *y = b.data<float>();
      float* o = out.data<float>();
      for (int64_t i = 0; i < n; i++) o[i] = elementwise::applyBinary(k, x[i], y[i]);
    }
  } else {
#ifdef OSP_WITH_CUDA
    elementwise::binaryCuda(k, a.data<float>(), b.data<float>(), out.data<float>(), n);
    cuda::checkLaunch("binary");
#endif
  }
  return out;
}

Tensor unary(UnaryOp op, const Tensor& x) {
  ArgCheck c{"unary"};
  checkValues(c, x, "x");
  Tensor out = Tensor::empty(x.shape, x.dtype, x.device);
  const int64_t n = x.numel();
  const int k = static_cast<int>(op);
  if (n == 0) return out;
  if (x.device == Device::CPU) {
    if (x.dtype == DType::F64) {
      const double* xi = x.data<double>();
      double* o = out.data<double>();
      for (int64_t i = 0; i < n; i++) o[i] = elementwise::applyUnary(k, xi[i]);
    } else {
      const float* xi = x.data<float>();
      float* o = out.data<float>();
      for (int64_t i = 0; i < n; i++) o[i] = elementwise::applyUnary(k, xi[i]);
    }
  } else {
#ifdef OSP_WITH_CUDA
    elementwise::unaryCuda(k, x.data<float>(), out.data<float>(), n);
    cuda::checkLaunch("unary");
#endif
  }
  return out;
}

Tensor affine(const Tensor& x, double scale, double shift) {
  ArgCheck c{"affine"};
  checkValues(c, x, "x");
  c.finite(scale, "scale");
  c.finite(shift, "shift");
  Tensor out = Tensor::empty(x.shape, x.dtype, x.device);
  const int64_t n = x.numel();
  if (n == 0) return out;
  if (x.device == Device::CPU) {
    if (x.dtype == DType::F64) {
      const double* xi = x.data<double>();
      double* o = out.data<double>();
      for (int64_t i = 0; i < n; i++) o[i] = scale * xi[i] + shift;
    } else {
      const float* xi = x.data<float>();
      float* o = out.data<float>();
      const float s = static_cast<float>(scale), t = static_cast<float>(shift);
      for (int64_t i = 0; i < n; i++) o[i] = s * xi[i] + t;
    }
  } else {
#ifdef OSP_WITH_CUDA
    elementwise::affineCuda(x.data<float>(), out.data<float>(), static_cast<float>(scale), static_cast<float>(shift), n);
    cuda::checkLaunch("affine");
#endif
  }
  return out;
}

Tensor sum(const Tensor& x) {
  ArgCheck c{"sum"};
  checkValues(c, x, "x");
  Tensor out = Tensor::empty({1}, x.dtype, x.device);
  const int64_t n = x.numel();
  if (x.device == Device::CPU) {
    double acc = 0;
    if (x.dtype == DType::F64)
      for (int64_t i = 0; i < n; i++) acc += x.data<double>()[i];
    else
      for (int64_t i = 0; i < n; i++) acc += x.data<float>()[i];
    if (x.dtype == DType::F64) out.data<double>()[0] = acc;
    else out.data<float>()[0] = static_cast<float>(acc);
  } else {
#ifdef OSP_WITH_CUDA
    elementwise::sumCuda(x.data<float>(), out.data<float>(), n);
    cuda::checkLaunch("sum");
#endif
  }
  return out;
}

}  // namespace osp
