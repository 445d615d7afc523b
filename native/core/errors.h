// Errors raised by the native core. The N-API layer maps them to JavaScript: TypeError for a wrong
// kind of argument (dtype, device, shape), RangeError for a value out of range (index, NaN, beta),
// Error for everything else (CUDA failures, out of memory). Messages name the argument and what was
// expected, because they are read by people who passed the argument from TypeScript.
#pragma once
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>

namespace osp {

struct OspError : std::runtime_error {
  enum class Kind { Type, Range, Runtime };
  Kind kind;
  OspError(Kind k, const std::string& msg) : std::runtime_error(msg), kind(k) {}
};

// A number for a message: 6 significant digits ("0.1", "1e+300", "nan"), not std::to_string's
// fixed six decimals ("0.000000" for 1e-9).
inline std::string formatNumber(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

[[noreturn]] inline void typeError(const std::string& msg) { throw OspError(OspError::Kind::Type, msg); }
[[noreturn]] inline void rangeError(const std::string& msg) { throw OspError(OspError::Kind::Range, msg); }
[[noreturn]] inline void runtimeError(const std::string& msg) { throw OspError(OspError::Kind::Runtime, msg); }

// What a kernel found wrong with the *values* it was given. Kernels cannot throw (CUDA kernels
// least of all), so they record the first problem here and the dispatcher turns it into an error.
// `code` is written first-wins (atomicCAS on the GPU); `index` is the offending row or element.
struct KernelStatus {
  int code;   // 0 = ok, else one of the Status* values below
  int pad;
  long long index;
};
enum : int {
  StatusOk = 0,
  StatusTargetOutOfRange = 1,  // a target index outside [0, V) that is not ignoreIndex
  StatusNonFiniteRow = 2,      // a logits row with NaN, +Inf, or no finite value
  StatusNonFiniteValue = 3,    // a NaN or Inf in a vector input
  StatusProbabilityRange = 4,  // a preference target outside [0, 1] (or NaN)
  StatusSequenceId = 5,        // a sequence id outside [0, count) that is not -1 / ignoreIndex
  StatusIndexOutOfRange = 6,   // an embedding id outside [0, V), or a negative rope position
  StatusSequenceSpan = 7,      // an attention spans column that is not a valid sequence span
};

// CPU kernels report from several threads: keep the problem at the lowest index, so the message
// is the same whatever the thread count.
inline void reportStatus(KernelStatus* st, int code, long long index) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lk(mu);
  if (st->code == 0 || index < st->index) {
    st->code = code;
    st->index = index;
  }
}

}  // namespace osp
