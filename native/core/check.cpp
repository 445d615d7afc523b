#include "check.h"

#include <cmath>

#include "bf16.h"

namespace osp {

static std::string dtypeList(std::initializer_list<DType> allowed) {
  std::string s;
  size_t i = 0;
  for (DType d : allowed) s += std::string(i++ ? (i == allowed.size() ? " or " : ", ") : "") + dtypeName(d);
  return s;
}

void ArgCheck::dtype(const Tensor& t, const char* arg, std::initializer_list<DType> allowed) const {
  for (DType d : allowed)
    if (t.dtype == d) return;
  typeError(prefix(arg) + " has dtype " + dtypeName(t.dtype) + " on " + deviceName(t.device) + "; expected " +
            dtypeList(allowed));
}

void ArgCheck::floating(const Tensor& t, const char* arg, bool bf16OnCuda) const {
  if (t.device == Device::CPU) dtype(t, arg, {DType::F32, DType::F64});
  else if (bf16OnCuda) dtype(t, arg, {DType::F32, DType::BF16});
  else dtype(t, arg, {DType::F32});
}

void ArgCheck::dims(const Tensor& t, const char* arg, int64_t rank) const {
  if (t.dim() != rank)
    typeError(prefix(arg) + " has shape " + shapeString(t.shape) + "; expected " + std::to_string(rank) +
              " dimension" + (rank == 1 ? "" : "s"));
}

void ArgCheck::contiguous(const Tensor& t, const char* arg) const {
  if (!t.isContiguous())
    typeError(prefix(arg) + " is a non-contiguous view (" + t.describe() + "); expected contiguous memory (call .contiguous())");
}

void ArgCheck::sameDevice(const Tensor& a, const char* argA, const Tensor& b, const char* argB) const {
  if (a.device != b.device)
    typeError(std::string(op) + ": " + argA + " is on " + deviceName(a.device) + " but " + argB + " is on " +
              deviceName(b.device) + "; expected both on the same device");
}

void ArgCheck::sameDtype(const Tensor& a, const char* argA, const Tensor& b, const char* argB) const {
  if (a.dtype != b.dtype)
    typeError(std::string(op) + ": " + argA + " has dtype " + dtypeName(a.dtype) + " but " + argB + " has dtype " +
              dtypeName(b.dtype) + "; expected the same dtype");
}

void ArgCheck::companion(const Tensor& t, const char* arg, int64_t rank, const Tensor& ref, const char* refArg) const {
  dims(t, arg, rank);
  contiguous(t, arg);
  sameDevice(ref, refArg, t, arg);
  sameDtype(ref, refArg, t, arg);
}

void ArgCheck::size(const Tensor& t, const char* arg, int64_t dim, int64_t expected, const std::string& why) const {
  if (t.shape[dim] != expected)
    typeError(prefix(arg) + " has shape " + shapeString(t.shape) + "; expected size " + std::to_string(expected) +
              " in dimension " + std::to_string(dim) + " (" + why + ")");
}

void ArgCheck::finite(double v, const char* arg) const {
  if (!std::isfinite(v)) rangeError(prefix(arg) + " is " + formatNumber(v) + "; expected a finite number");
}

void ArgCheck::status(const KernelStatus& st, const std::string& detail) const {
  if (st.code != StatusOk) rangeError(std::string(op) + ": " + detail);
}

int32_t readInt(const Tensor& t, int64_t index) {
  Tensor one = elementView(t, index);
  int32_t v = 0;
  toHost(one, &v);
  return v;
}

double readFloat(const Tensor& t, int64_t index) {
  Tensor one = elementView(t, index);
  char buf[8];
  toHost(one, buf);
  switch (t.dtype) {
    case DType::F32: return *reinterpret_cast<float*>(buf);
    case DType::F64: return *reinterpret_cast<double*>(buf);
    case DType::BF16: return bf16ToFloat(*reinterpret_cast<uint16_t*>(buf));
    case DType::I32: return *reinterpret_cast<int32_t*>(buf);
  }
  return 0;
}

}  // namespace osp
