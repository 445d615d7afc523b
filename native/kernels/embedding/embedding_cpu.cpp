// CPU embedding (maths in embedding.h): f64 a plain loop, f32 the same template over the pool.
#include <algorithm>
#include <limits>

#include "../../core/parallel.h"
#include "embedding.h"

namespace osp::embedding_kernels {

namespace {

template <typename F>
void run(int64_t n, int64_t grain, bool threaded, const F& fn) {
  if (threaded) parallelFor(n, grain, fn);
  else if (n > 0) fn(0, n);
}

}  // namespace

template <typename T>
void forwardCpu(const T* table, const int32_t* ids, T* out, int64_t T_, int64_t V, int64_t D, bool threaded,
                KernelStatus* status) {
  run(T_, D >= 4096 ? 1 : (4096 + D - 1) / (D > 0 ? D : 1), threaded, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const int32_t id = ids[t];
      T* o = out + t * D;
      if (id < 0 || id >= V) {
        reportStatus(status, StatusIndexOutOfRange, t);
        std::fill(o, o + D, std::numeric_limits<T>::quiet_NaN());
        continue;
      }
      std::copy(table + int64_t(id) * D, table + int64_t(id) * D + D, o);
    }
  });
}

template <typename T>
void backwardCpu(const T* g, const int32_t* ids, T* dtable, int64_t T_, int64_t V, int64_t D, bool threaded,
                 KernelStatus* status) {
  for (int64_t t = 0; t < T_; t++)
    if (ids[t] < 0 || ids[t] >= V) {
      reportStatus(status, StatusIndexOutOfRange, t);
      return;
    }
  // Column blocks over the pool; every column adds its rows in order of t.
  run(D, 64, threaded, [&](int64_t j0, int64_t j1) {
    for (int64_t t = 0; t < T_; t++) {
      T* d = dtable + int64_t(ids[t]) * D;
      const T* gr = g + t * D;
      for (int64_t j = j0; j < j1; j++) d[j] += gr[j];
    }
  });
}

template void forwardCpu<float>(const float*, const int32_t*, float*, int64_t, int64_t, int64_t, bool, KernelStatus*);
template void forwardCpu<double>(const double*, const int32_t*, double*, int64_t, int64_t, int64_t, bool, KernelStatus*);
template void backwardCpu<float>(const float*, const int32_t*, float*, int64_t, int64_t, int64_t, bool, KernelStatus*);
template void backwardCpu<double>(const double*, const int32_t*, double*, int64_t, int64_t, int64_t, bool, KernelStatus*);

}  // namespace osp::embedding_kernels
