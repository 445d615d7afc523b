// Random fill: checks, the CPU loop and dispatch (see random.h).
#include "random.h"

#include <cmath>

#include "../../core/bf16.h"
#include "../../core/check.h"
#include "../../core/parallel.h"
#include "random_common.h"

namespace osp {

namespace random {

void fillCpu(void* out, DType dtype, int64_t n, uint64_t seed, Distribution d, float a, float b) {
  parallelFor(n, 1 << 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      const float v = drawAt(d, seed, static_cast<uint64_t>(i), a, b);
      if (dtype == DType::F32) static_cast<float*>(out)[i] = v;
      else if (dtype == DType::F64) static_cast<double*>(out)[i] = v;
      else static_cast<uint16_t*>(out)[i] = floatToBf16(v);
    }
  });
}

}  // namespace random

Tensor randomFill(const std::vector<int64_t>& shape, DType dtype, Device device, uint64_t seed, const RandomFill& fill) {
  const char* op = fill.distribution == random::Distribution::Normal ? "randn" : fill.distribution == random::Distribution::Uniform ? "randu" : "dropoutMask";
  ArgCheck c{op};
  if (dtype == DType::I32) typeError(std::string(op) + ": dtype i32 is not a floating-point type; expected f32, f64 or bf16");
  double a = fill.a, b = fill.b;
  switch (fill.distribution) {
    case random::Distribution::Normal:
      c.finite(a, "mean");
      c.finite(b, "std");
      if (b < 0) rangeError("randn: std is " + formatNumber(b) + "; expected >= 0");
      break;
    case random::Distribution::Uniform:
      c.finite(a, "low");
      c.finite(b, "high");
      if (!(a <= b)) rangeError("randu: low is " + formatNumber(a) + " and high " + formatNumber(b) + "; expected low <= high");
      break;
    case random::Distribution::Dropout:
      if (!(a >= 0 && a < 1)) rangeError("dropoutMask: p is " + formatNumber(a) + "; expected a probability in [0, 1)");
      b = 1.0 / (1.0 - a);
      break;
  }
  Tensor t = Tensor::empty(shape, dtype, device);
  const int64_t n = t.numel();
  if (n == 0) return t;
  if (device == Device::CPU) random::fillCpu(t.raw(), dtype, n, seed, fill.distribution, float(a), float(b));
  else {
#ifdef OSP_WITH_CUDA
    if (dtype == DType::F64) typeError(std::string(op) + ": dtype f64 is not supported on cuda; expected f32 or bf16");
    random::fillCuda(t.raw(), dtype == DType::BF16, n, seed, fill.distribution, float(a), float(b));
#endif
  }
  return t;
}

}  // namespace osp
