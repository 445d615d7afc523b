// Random fill: checks, the CPU loop and dispatch (see random.h).
#include "random.h"

#include <cmath>

#include "../../core/bf16.h"
#include "../../core/check.h"
#include "../../core/parallel.h"
#include "random_common.h"

namespace osp {

namespace random {

void normalCpu(void* out, DType dtype, int64_t n, uint64_t seed, float mean, float std) {
  parallelFor(n, 1 << 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      const float v = mean + std * normalAt(seed, static_cast<uint64_t>(i));
      if (dtype == DType::F32) static_cast<float*>(out)[i] = v;
      else if (dtype == DType::F64) static_cast<double*>(out)[i] = v;
      else static_cast<uint16_t*>(out)[i] = floatToBf16(v);
    }
  });
}

}  // namespace random

Tensor randomNormal(const std::vector<int64_t>& shape, DType dtype, Device device, uint64_t seed, double mean, double std) {
  ArgCheck c{"randn"};
  if (dtype == DType::I32) typeError("randn: dtype i32 is not a floating-point type; expected f32, f64 or bf16");
  c.finite(mean, "mean");
  c.finite(std, "std");
  if (std < 0) rangeError("randn: std is " + formatNumber(std) + "; expected >= 0");
  Tensor t = Tensor::empty(shape, dtype, device);
  const int64_t n = t.numel();
  if (n == 0) return t;
  if (device == Device::CPU) random::normalCpu(t.raw(), dtype, n, seed, float(mean), float(std));
  else {
#ifdef OSP_WITH_CUDA
    if (dtype == DType::F64) typeError("randn: dtype f64 is not supported on cuda; expected f32 or bf16");
    random::normalCuda(t.raw(), dtype == DType::BF16, n, seed, float(mean), float(std));
#endif
  }
  return t;
}

}  // namespace osp
