// Argument checks shared by every op. Each throws an OspError whose message starts with the op and
// the argument, says what was received and what was expected.
#pragma once
#include <initializer_list>
#include <string>
#include <vector>

#include "errors.h"
#include "tensor.h"

namespace osp {

struct ArgCheck {
  const char* op;
  void dtype(const Tensor& t, const char* arg, std::initializer_list<DType> allowed) const;
  // The floating-point dtypes of the backend t lives on: f32 or f64 on the CPU; f32 on the GPU,
  // and bf16 too where the CUDA kernel reads it (bf16OnCuda).
  void floating(const Tensor& t, const char* arg, bool bf16OnCuda = true) const;
  void dims(const Tensor& t, const char* arg, int64_t rank) const;
  void contiguous(const Tensor& t, const char* arg) const;
  void sameDevice(const Tensor& a, const char* argA, const Tensor& b, const char* argB) const;
  void sameDtype(const Tensor& a, const char* argA, const Tensor& b, const char* argB) const;
  // t is a contiguous rank-`rank` tensor on ref's device with ref's dtype (checked in that order).
  void companion(const Tensor& t, const char* arg, int64_t rank, const Tensor& ref, const char* refArg) const;
  void size(const Tensor& t, const char* arg, int64_t dim, int64_t expected, const std::string& why) const;
  void finite(double v, const char* arg) const;
  // Kernels' value problems: turns a KernelStatus into a RangeError; `detail` describes status.index.
  void status(const KernelStatus& st, const std::string& detail) const;
  std::string prefix(const char* arg) const { return std::string(op) + ": " + arg; }
};

// Read one element of an i32 tensor (host or device) for an error message.
int32_t readInt(const Tensor& t, int64_t index);
double readFloat(const Tensor& t, int64_t index);

}  // namespace osp
