// CPU SwiGLU (maths in swiglu.h): one template; f64 single-threaded, f32 over the thread pool.
#include <cmath>

#include "../../core/parallel.h"
#include "swiglu.h"

namespace osp::swiglu_kernels {

namespace {

constexpr int64_t kGrain = 16384;

template <typename F>
void run(int64_t n, bool threaded, const F& fn) {
  if (threaded) parallelFor(n, kGrain, fn);
  else if (n > 0) fn(0, n);
}

template <typename T>
T sigmoid(T g) {
  return g >= 0 ? T(1) / (T(1) + std::exp(-g)) : std::exp(g) / (T(1) + std::exp(g));
}

}  // namespace

template <typename T>
void forwardCpu(const T* gate, const T* up, T* out, int64_t n, bool threaded) {
  run(n, threaded, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
  });
}

template <typename T>
void backwardCpu(const T* gate, const T* up, const T* g, T* dgate, T* dup, int64_t n, bool threaded) {
  run(n, threaded, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      const T x = gate[i], s = sigmoid(x);
      dgate[i] = g[i] * up[i] * s * (T(1) + x * (T(1) - s));
      dup[i] = g[i] * x * s;
    }
  });
}

template void forwardCpu<float>(const float*, const float*, float*, int64_t, bool);
template void forwardCpu<double>(const double*, const double*, double*, int64_t, bool);
template void backwardCpu<float>(const float*, const float*, const float*, float*, float*, int64_t, bool);
template void backwardCpu<double>(const double*, const double*, const double*, double*, double*, int64_t, bool);

}  // namespace osp::swiglu_kernels
