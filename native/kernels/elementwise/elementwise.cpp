// Elementwise ops: checks, the CPU loops (f32 and f64) and dispatch to CUDA (maths in elementwise.h).
#include "elementwise.h"

#include "../../core/check.h"
#include "../../core/cuda_backend.h"
#include "elementwise_ops.h"
#include "../../core/bf16.h"

namespace osp {

namespace {

void checkValues(const ArgCheck& c, const Tensor& t, const char* arg, bool bf16OnCuda = true) {
  c.contiguous(t, arg);
  c.floating(t, arg, bf16OnCuda);
}

double loadAsDouble(const Tensor& t, int64_t i) {
  switch (t.dtype) {
    case DType::F64: return t.data<double>()[i];
    case DType::BF16: return bf16ToFloat(t.data<uint16_t>()[i]);
    default: return t.data<float>()[i];
  }
}

}  // namespace

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  ArgCheck c{op == BinaryOp::Add ? "add" : op == BinaryOp::Sub ? "sub" : "mul"};
  checkValues(c, a, "a");
  checkValues(c, b, "b");
  c.sameDevice(a, "a", b, "b");
  c.sameDtype(a, "a", b, "b");
  if (a.shape != b.shape)
    typeError(c.prefix("a") + " has shape " + shapeString(a.shape) + " but b has shape " + shapeString(b.shape) + "; expected equal shapes");
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
    elementwise::binaryCuda(k, a.raw(), b.raw(), out.raw(), a.dtype == DType::BF16, n);
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
    elementwise::unaryCuda(k, x.raw(), out.raw(), x.dtype == DType::BF16, n);
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
    elementwise::affineCuda(x.raw(), out.raw(), x.dtype == DType::BF16, static_cast<float>(scale), static_cast<float>(shift), n);
    cuda::checkLaunch("affine");
#endif
  }
  return out;
}

Tensor sum(const Tensor& x) {
  ArgCheck c{"sum"};
  checkValues(c, x, "x", false);
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

void copyInto(const Tensor& dst, const Tensor& src) {
  ArgCheck c{"copyInto"};
  c.contiguous(dst, "dst");
  c.contiguous(src, "src");
  c.sameDevice(dst, "dst", src, "src");
  if (dst.dtype == DType::I32 || src.dtype == DType::I32 || (dst.device == Device::CUDA && (dst.dtype == DType::F64 || src.dtype == DType::F64)))
    typeError("copyInto: dst is " + dst.describe() + " and src is " + src.describe() +
              "; expected floating tensors (cpu: f32, f64, bf16; cuda: f32, bf16)");
  if (dst.shape != src.shape)
    typeError("copyInto: dst has shape " + shapeString(dst.shape) + " but src has shape " + shapeString(src.shape) + "; expected equal shapes");
  const int64_t n = src.numel();
  if (n == 0) return;
  if (dst.device == Device::CPU) {
    // Every conversion goes through double, which holds f32, bf16 and f64 exactly; f64 -> f32 and
    // f32 -> bf16 round to nearest (even), as torch's .to() does.
    for (int64_t i = 0; i < n; i++) {
      const double v = loadAsDouble(src, i);
      switch (dst.dtype) {
        case DType::F64: dst.data<double>()[i] = v; break;
        case DType::BF16: dst.data<uint16_t>()[i] = floatToBf16(static_cast<float>(v)); break;
        default: dst.data<float>()[i] = static_cast<float>(v);
      }
    }
  } else {
#ifdef OSP_WITH_CUDA
    elementwise::castCuda(src.raw(), src.dtype == DType::BF16, dst.raw(), dst.dtype == DType::BF16, n);
    cuda::checkLaunch("copyInto");
#endif
  }
}

}  // namespace osp
