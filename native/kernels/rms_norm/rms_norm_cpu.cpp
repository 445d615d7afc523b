// CPU RMS norm (maths in rms_norm.h): the f64 reference loop and the threaded f32 path share one
// template; every sum runs in a fixed order, so results do not depend on the thread count.
#include <cmath>
#include <vector>

#include "../../core/parallel.h"
#include "rms_norm.h"

namespace osp::rms_norm {

namespace {

template <typename T>
double rowRstd(const T* x, int64_t D, double eps) {
  double ss = 0;
  for (int64_t j = 0; j < D; j++) ss += double(x[j]) * double(x[j]);
  return 1.0 / std::sqrt(ss / double(D) + eps);
}

void rows(int64_t n, int64_t grain, bool threaded, const std::function<void(int64_t, int64_t)>& fn) {
  if (threaded) parallelFor(n, grain, fn);
  else if (n > 0) fn(0, n);
}

}  // namespace

template <typename T>
void forwardCpu(const T* x, const T* w, T* y, int64_t T_, int64_t D, double eps, bool threaded) {
  const int64_t grain = D >= 4096 ? 1 : (4096 + D - 1) / D;
  rows(T_, grain, threaded, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const T* xr = x + t * D;
      T* yr = y + t * D;
      const double r = rowRstd(xr, D, eps);
      for (int64_t j = 0; j < D; j++) yr[j] = T(double(xr[j]) * r * double(w[j]));
    }
  });
}

template <typename T>
void backwardCpu(const T* x, const T* w, const T* g, T* dx, T* dw, int64_t T_, int64_t D, double eps, bool threaded) {
  std::vector<double> rstd(static_cast<size_t>(T_));
  const int64_t grain = D >= 4096 ? 1 : (4096 + D - 1) / D;
  rows(T_, grain, threaded, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const T* xr = x + t * D;
      const T* gr = g + t * D;
      T* dr = dx + t * D;
      const double r = rowRstd(xr, D, eps);
      rstd[t] = r;
      double s = 0;
      for (int64_t j = 0; j < D; j++) s += double(gr[j]) * double(w[j]) * double(xr[j]);
      const double c = r * r * r * s / double(D);
      for (int64_t j = 0; j < D; j++) dr[j] = T(r * double(gr[j]) * double(w[j]) - double(xr[j]) * c);
    }
  });
  // dw: each column summed over rows in order; columns in blocks over the pool.
  const int64_t colGrain = T_ >= 4096 ? 16 : 16 * ((4096 + T_ - 1) / (T_ > 0 ? T_ : 1));
  rows(D, colGrain, threaded, [&](int64_t j0, int64_t j1) {
    std::vector<double> acc(static_cast<size_t>(j1 - j0), 0.0);
    for (int64_t t = 0; t < T_; t++) {
      const T* xr = x + t * D;
      const T* gr = g + t * D;
      const double r = rstd[t];
      for (int64_t j = j0; j < j1; j++) acc[j - j0] += double(gr[j]) * double(xr[j]) * r;
    }
    for (int64_t j = j0; j < j1; j++) dw[j] = T(acc[j - j0]);
  });
}

template void forwardCpu<float>(const float*, const float*, float*, int64_t, int64_t, double, bool);
template void forwardCpu<double>(const double*, const double*, double*, int64_t, int64_t, double, bool);
template void backwardCpu<float>(const float*, const float*, const float*, float*, float*, int64_t, int64_t, double, bool);
template void backwardCpu<double>(const double*, const double*, const double*, double*, double*, int64_t, int64_t, double,
                                  bool);

}  // namespace osp::rms_norm
