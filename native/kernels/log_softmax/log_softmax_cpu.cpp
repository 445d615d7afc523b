// CPU log-softmax and gather (the unfused path; maths in log_softmax.h). The f32 rows use the same
// vectorised exp as the fused kernel, so the bench compares memory traffic, not exp quality.
#include <algorithm>
#include <cmath>
#include <limits>

#include "../../core/parallel.h"
#include "../../core/simd.h"
#include "log_softmax.h"

namespace osp::log_softmax {

namespace {

int64_t rowGrain(int64_t V) { return V >= 4096 ? 1 : (4096 + V - 1) / V; }

// Three passes over the row, as a framework's log_softmax does: max, sum of exp, write.
template <typename T>
bool rowForwardRef(const T* x, T* y, int64_t V) {
  T m = -std::numeric_limits<T>::infinity();
  bool good = true;
  for (int64_t v = 0; v < V; v++) {
    m = x[v] > m ? x[v] : m;
    good = good && x[v] < std::numeric_limits<T>::infinity();
  }
  T s = 0;
  for (int64_t v = 0; v < V; v++) s += std::exp(x[v] - m);
  const T lse = m + std::log(s);
  for (int64_t v = 0; v < V; v++) y[v] = x[v] - lse;
  return good && std::isfinite(m) && std::isfinite(s) && s > 0;
}

bool rowForward(const double* x, double* y, int64_t V) { return rowForwardRef(x, y, V); }

OSP_SIMD_CLONES bool rowForward(const float* x, float* y, int64_t V) {
  using namespace simd;
  const int64_t vv = V / W * W;
  f8 vm = splat(-INFINITY);
  i8 ok = i8{} - 1;
  for (int64_t v = 0; v < vv; v += W) {
    f8 xv = load(x + v);
    vm = vmax(vm, xv);
    ok &= (xv < splat(INFINITY));
  }
  float m = hmax(vm);
  bool good = true;
  for (int i = 0; i < W; i++) good = good && ok[i] != 0;
  for (int64_t v = vv; v < V; v++) {
    m = x[v] > m ? x[v] : m;
    good = good && x[v] < INFINITY;
  }
  if (!good || m == -INFINITY) return false;
  const f8 mv = splat(m);
  f8 acc = splat(0.f);
  for (int64_t v = 0; v < vv; v += W) acc += fastExp(load(x + v) - mv);
  float s = hsum(acc);
  for (int64_t v = vv; v < V; v++) s += fastExp1(x[v] - m);
  const float lse = m + std::log(s);
  const f8 lv = splat(lse);
  for (int64_t v = 0; v < vv; v += W) store(y + v, load(x + v) - lv);
  for (int64_t v = vv; v < V; v++) y[v] = x[v] - lse;
  return std::isfinite(s) && s > 0;
}

template <typename T>
void rowBackwardRef(const T* dy, const T* y, T* dx, int64_t V) {
  T s = 0;
  for (int64_t v = 0; v < V; v++) s += dy[v];
  for (int64_t v = 0; v < V; v++) dx[v] = dy[v] - std::exp(y[v]) * s;
}

void rowBackward(const double* dy, const double* y, double* dx, int64_t V) { rowBackwardRef(dy, y, dx, V); }

OSP_SIMD_CLONES void rowBackward(const float* dy, const float* y, float* dx, int64_t V) {
  using namespace simd;
  const int64_t vv = V / W * W;
  f8 acc = splat(0.f);
  for (int64_t v = 0; v < vv; v += W) acc += load(dy + v);
  float s = hsum(acc);
  for (int64_t v = vv; v < V; v++) s += dy[v];
  const f8 sv = splat(s);
  for (int64_t v = 0; v < vv; v += W) store(dx + v, load(dy + v) - fastExp(load(y + v)) * sv);
  for (int64_t v = vv; v < V; v++) dx[v] = dy[v] - fastExp1(y[v]) * s;
}

}  // namespace

template <typename T>
void forwardCpu(const T* x, T* y, int64_t N, int64_t V, KernelStatus* st) {
  parallelFor(N, rowGrain(V), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++)
      if (!rowForward(x + n * V, y + n * V, V)) reportStatus(st, StatusNonFiniteRow, n);
  });
}

template <typename T>
void backwardCpu(const T* dy, const T* y, T* dx, int64_t N, int64_t V) {
  parallelFor(N, rowGrain(V), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) rowBackward(dy + n * V, y + n * V, dx + n * V, V);
  });
}

template <typename T>
void gatherCpu(const T* y, const int32_t* t, T* out, int64_t N, int64_t V, int32_t ignoreIndex, KernelStatus* st) {
  for (int64_t n = 0; n < N; n++) {
    if (t[n] == ignoreIndex) out[n] = 0;
    else if (t[n] < 0 || t[n] >= V) {
      reportStatus(st, StatusTargetOutOfRange, n);
      out[n] = std::numeric_limits<T>::quiet_NaN();
    } else out[n] = y[n * V + t[n]];
  }
}

template <typename T>
void gatherBackwardCpu(const T* g, const int32_t* t, T* dy, int64_t N, int64_t V, int32_t ignoreIndex, KernelStatus* st) {
  parallelFor(N, rowGrain(V), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      std::fill(dy + n * V, dy + (n + 1) * V, T(0));
      if (t[n] == ignoreIndex) continue;
      if (t[n] < 0 || t[n] >= V) reportStatus(st, StatusTargetOutOfRange, n);
      else dy[n * V + t[n]] = g[n];
    }
  });
}

#define OSP_INSTANTIATE(T)                                                                              \
  template void forwardCpu<T>(const T*, T*, int64_t, int64_t, KernelStatus*);                           \
  template void backwardCpu<T>(const T*, const T*, T*, int64_t, int64_t);                               \
  template void gatherCpu<T>(const T*, const int32_t*, T*, int64_t, int64_t, int32_t, KernelStatus*);   \
  template void gatherBackwardCpu<T>(const T*, const int32_t*, T*, int64_t, int64_t, int32_t, KernelStatus*);
OSP_INSTANTIATE(float)
OSP_INSTANTIATE(double)
#undef OSP_INSTANTIATE

}  // namespace osp::log_softmax
