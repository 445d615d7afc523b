// rope: argument checks, the inverse-frequency table, allocation and dispatch to the CPU or CUDA
// kernels (maths in rope.h).
#include "rope.h"

#include <cmath>

#include "../../core/check.h"
#include "../../core/cuda_backend.h"
#include "../../core/sync.h"

namespace osp {

namespace {

const char* inputName(int direction) { return direction > 0 ? "x" : "gradOut"; }

void checkInputs(const ArgCheck& c, const Tensor& x, const Tensor& positions, int direction) {
  const char* xn = inputName(direction);
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
}

std::vector<double> invFreqTable(const ArgCheck& c, double theta, double scalingFactor, int64_t Dh) {
  c.finite(theta, "theta");
  if (!(theta > 0)) rangeError(c.prefix("theta") + " is " + formatNumber(theta) + "; expected a number > 0");
  c.finite(scalingFactor, "scalingFactor");
  if (!(scalingFactor > 0))
    rangeError(c.prefix("scalingFactor") + " is " + formatNumber(scalingFactor) + "; expected a number > 0");
  if (Dh < 0 || Dh % 2 != 0)
    rangeError(c.prefix("headDim") + " is " + std::to_string(Dh) + "; expected an even number >= 0");
  std::vector<double> inv(static_cast<size_t>(Dh / 2));
  for (int64_t i = 0; i < Dh / 2; i++) inv[i] = std::pow(theta, -2.0 * double(i) / double(Dh)) / scalingFactor;
  return inv;
}

void raisePositions(const ArgCheck& c, const KernelStatus& st, const Tensor& positions) {
  if (st.code == StatusIndexOutOfRange)
    c.status(st, "positions[" + std::to_string(st.index) + "] = " + std::to_string(readInt(positions, st.index)) +
                     " is negative; expected positions >= 0");
  c.status(st, "kernel reported status " + std::to_string(st.code));
}

Tensor apply(const ArgCheck& c, const Tensor& x, const Tensor& positions, const std::vector<double>& invFreq,
             int direction) {
  const int64_t T = x.shape[0], H = x.shape[1], Dh = x.shape[2];
  if (static_cast<int64_t>(invFreq.size()) != Dh / 2)
    rangeError(c.prefix("invFreq") + " has length " + std::to_string(invFreq.size()) + "; expected " +
               std::to_string(Dh / 2) + " (half the head dimension of " + inputName(direction) + " " +
               shapeString(x.shape) + ")");
  for (size_t i = 0; i < invFreq.size(); i++)
    if (!std::isfinite(invFreq[i]) || !(invFreq[i] > 0))
      rangeError(c.prefix("invFreq") + "[" + std::to_string(i) + "] is " + formatNumber(invFreq[i]) +
                 "; expected a finite number > 0");
  Tensor out = Tensor::empty(x.shape, x.dtype, x.device);
  if (T == 0 || H == 0 || Dh == 0) return out;  // nothing to rotate (and no row length to divide by)
  KernelStatus st{};
  const double sign = direction > 0 ? 1.0 : -1.0;
  if (x.device == Device::CPU) {
    if (x.dtype == DType::F64)
      rope_kernels::applyCpu(x.data<double>(), positions.data<int32_t>(), out.data<double>(), T, H, Dh, invFreq.data(), sign,
                             false, &st);
    else
      rope_kernels::applyCpu(x.data<float>(), positions.data<int32_t>(), out.data<float>(), T, H, Dh, invFreq.data(), sign,
                             true, &st);
  } else {
#ifdef OSP_WITH_CUDA
    if (Dh / 2 > kRopeMaxHalf)
      typeError(c.prefix(inputName(direction)) + " has shape " + shapeString(x.shape) + "; expected a head dimension <= " +
                std::to_string(2 * kRopeMaxHalf) + " on cuda");
    std::vector<float> inv32(invFreq.begin(), invFreq.end());
    // The table travels by value as a kernel argument (rope.cu), so inv32 may go away after launch.
    cuda::runCudaOp(
        c.op,
        [&](KernelStatus* s) {
          rope_kernels::applyCuda(x.raw(), positions.data<int32_t>(), out.raw(), x.dtype == DType::BF16, T, H, Dh,
                                  inv32.data(), static_cast<float>(sign), s);
        },
        [c, positions](const KernelStatus& s) { raisePositions(c, s, positions); });
#endif
  }
  raisePositions(c, st, positions);
  return out;
}

}  // namespace

std::vector<double> ropeInvFreq(double theta, double scalingFactor, int64_t Dh, const char* op) {
  return invFreqTable(ArgCheck{op}, theta, scalingFactor, Dh);
}

Tensor rope(const Tensor& x, const Tensor& positions, const std::vector<double>& invFreq, int direction) {
  ArgCheck c{direction > 0 ? "rope" : "ropeBackward"};
  checkInputs(c, x, positions, direction);
  return apply(c, x, positions, invFreq, direction);
}

Tensor rope(const Tensor& x, const Tensor& positions, double theta, double scalingFactor, int direction) {
  ArgCheck c{direction > 0 ? "rope" : "ropeBackward"};
  checkInputs(c, x, positions, direction);
  return apply(c, x, positions, invFreqTable(c, theta, scalingFactor, x.shape[2]), direction);
}

}  // namespace osp
