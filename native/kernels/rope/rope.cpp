// rope: argument checks, allocation and dispatch to the CPU or CUDA kernels (maths in rope.h).
#include "rope.h"

#include "../../core/check.h"
#include "../../core/cuda_backend.h"

namespace osp {

Tensor rope(const Tensor& x, const Tensor& positions, double theta, double scalingFactor, int direction) {
  ArgCheck c{direction > 0 ? "rope" : "ropeBackward"};
  const char* xn = direction > 0 ? "x" : "gradOut";
  c.dims(x, xn, 3);
  c.contiguous(x, xn);
  c.floating(x, xn);
  if (x.shape[2] % 2 != 0)
    typeError(c.prefix(xn) + " has shape " + shapeString(x.shape) + "; expected an even head dimension (last size)");
  c.dims(positions, "positions", 1);
  c.contiguous(positions, "positions");
  c.dtype(positions, "positions", {DType::I32});
  c.sameDevice(x, xn, positions, "positions");
  c.size(positions, "positions", 0, x.shape[0], std::string("one position per row of ") + xn);
  c.finite(theta, "theta");
  if (!(theta > 0)) rangeError(c.prefix("theta") + " is " + formatNumber(theta) + "; expected a number > 0");
  c.finite(scalingFactor, "scalingFactor");
  if (!(scalingFactor > 0))
    rangeError(c.prefix("scalingFactor") + " is " + formatNumber(scalingFactor) + "; expected a number > 0");
  const int64_t T = x.shape[0], H = x.shape[1], Dh = x.shape[2];
  Tensor out = Tensor::empty(x.shape, x.dtype, x.device);
  if (T == 0) return out;
  KernelStatus st{};
  const double sign = direction > 0 ? 1.0 : -1.0;
  if (x.device == Device::CPU) {
    if (x.dtype == DType::F64)
      rope_kernels::applyCpu(x.data<double>(), positions.data<int32_t>(), out.data<double>(), T, H, Dh, theta,
                             scalingFactor, sign, false, &st);
    else
      rope_kernels::applyCpu(x.data<float>(), positions.data<int32_t>(), out.data<float>(), T, H, Dh, theta, scalingFactor,
                             sign, true, &st);
  } else {
#ifdef OSP_WITH_CUDA
    rope_kernels::applyCuda(x.raw(), positions.data<int32_t>(), out.raw(), x.dtype == DType::BF16, T, H, Dh,
                            static_cast<float>(theta), static_cast<float>(scalingFactor), static_cast<float>(sign),
                            cuda::statusReset());
    cuda::checkLaunch(c.op);
    st = cuda::statusRead();
#endif
  }
  if (st.code == StatusIndexOutOfRange)
    c.status(st, "positions[" + std::to_string(st.index) + "] = " + std::to_string(readInt(positions, st.index)) +
                     " is negative; expected positions >= 0");
  c.status(st, "kernel reported status " + std::to_string(st.code));
  return out;
}

}  // namespace osp
