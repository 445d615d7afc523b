// Host bandwidth probes (bandwidth.h): the copy and the read a memory-bound CPU kernel is measured
// against, on the kernels' thread pool.
#include "bandwidth.h"

#include <cstring>
#include <mutex>
#include <vector>

#include "errors.h"
#include "parallel.h"
#include "simd.h"

namespace osp {

namespace {

constexpr int64_t kGrain = int64_t(1) << 16;  // floats per share at least (256 KiB)

void checkHostF32(const Tensor& t, const char* op, const char* name) {
  if (t.device != Device::CPU || t.dtype != DType::F32 || !t.isContiguous())
    typeError(std::string(op) + ": " + name + " is " + t.describe() + "; expected a contiguous f32 tensor on cpu");
}

// Four independent accumulators hide the add latency, so the loop runs at the memory's pace.
OSP_SIMD_CLONES
double readSum(const float* x, int64_t n) {
  using namespace simd;
  f8 a0 = splat(0.f), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    a0 += load(x + i);
    a1 += load(x + i + W);
    a2 += load(x + i + 2 * W);
    a3 += load(x + i + 3 * W);
  }
  double s = hsum((a0 + a1) + (a2 + a3));
  for (; i < n; i++) s += x[i];
  return s;
}

}  // namespace

void hostParallelCopy(const Tensor& dst, const Tensor& src, const char* op) {
  checkHostF32(dst, op, "dst");
  checkHostF32(src, op, "src");
  if (dst.numel() != src.numel())
    typeError(std::string(op) + ": dst " + dst.describe() + " and src " + src.describe() + " differ in size; expected equal element counts");
  const float* s = src.data<float>();
  float* d = dst.data<float>();
  parallelFor(src.numel(), kGrain, [&](int64_t b, int64_t e) { std::memcpy(d + b, s + b, static_cast<size_t>(e - b) * 4); });
}

double hostParallelReadSum(const Tensor& x, const char* op) {
  checkHostF32(x, op, "x");
  const float* p = x.data<float>();
  std::mutex mu;
  double total = 0;
  parallelFor(x.numel(), kGrain, [&](int64_t b, int64_t e) {
    const double part = readSum(p + b, e - b);
    std::lock_guard<std::mutex> lk(mu);
    total += part;
  });
  return total;
}

}  // namespace osp
