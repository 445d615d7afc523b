// SwiGLU: argument checks, allocation and dispatch to the CPU or CUDA kernels (maths in swiglu.h).
#include "swiglu.h"

#include "../../core/check.h"
#include "../../core/cuda_backend.h"

namespace osp {

namespace {

void checkPair(const ArgCheck& c, const Tensor& a, const char* an, const Tensor& b, const char* bn) {
  c.dims(b, bn, 2);
  c.contiguous(b, bn);
  c.sameDevice(a, an, b, bn);
  c.sameDtype(a, an, b, bn);
  c.size(b, bn, 0, a.shape[0], std::string("the shape of ") + an);
  c.size(b, bn, 1, a.shape[1], std::string("the shape of ") + an);
}

void checkGate(const ArgCheck& c, const Tensor& gate) {
  c.dims(gate, "gate", 2);
  c.contiguous(gate, "gate");
  c.floating(gate, "gate");
}

}  // namespace

Tensor swiglu(const Tensor& gate, const Tensor& up) {
  ArgCheck c{"swiglu"};
  checkGate(c, gate);
  checkPair(c, gate, "gate", up, "up");
  Tensor out = Tensor::empty(gate.shape, gate.dtype, gate.device);
  const int64_t n = gate.numel();
  if (n == 0) return out;
  if (gate.device == Device::CPU) {
    if (gate.dtype == DType::F64) swiglu_kernels::forwardCpu(gate.data<double>(), up.data<double>(), out.data<double>(), n, false);
    else swiglu_kernels::forwardCpu(gate.data<float>(), up.data<float>(), out.data<float>(), n, true);
  } else {
#ifdef OSP_WITH_CUDA
    swiglu_kernels::forwardCuda(gate.raw(), up.raw(), out.raw(), gate.dtype == DType::BF16, n);
    cuda::checkLaunch("swiglu");
#endif
  }
  return out;
}

SwigluGrads swigluBackward(const Tensor& gate, const Tensor& up, const Tensor& gradOut) {
  ArgCheck c{"swigluBackward"};
  checkGate(c, gate);
  checkPair(c, gate, "gate", up, "up");
  checkPair(c, gate, "gate", gradOut, "gradOut");
  SwigluGrads r{Tensor::empty(gate.shape, gate.dtype, gate.device), Tensor::empty(gate.shape, gate.dtype, gate.device)};
  const int64_t n = gate.numel();
  if (n == 0) return r;
  if (gate.device == Device::CPU) {
    if (gate.dtype == DType::F64)
      swiglu_kernels::backwardCpu(gate.data<double>(), up.data<double>(), gradOut.data<double>(), r.gradGate.data<double>(),
                                  r.gradUp.data<double>(), n, false);
    else
      swiglu_kernels::backwardCpu(gate.data<float>(), up.data<float>(), gradOut.data<float>(), r.gradGate.data<float>(),
                                  r.gradUp.data<float>(), n, true);
  } else {
#ifdef OSP_WITH_CUDA
    swiglu_kernels::backwardCuda(gate.raw(), up.raw(), gradOut.raw(), r.gradGate.raw(), r.gradUp.raw(),
                                 gate.dtype == DType::BF16, n);
    cuda::checkLaunch("swigluBackward");
#endif
  }
  return r;
}

}  // namespace osp
