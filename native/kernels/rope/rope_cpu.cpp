// CPU rope (maths in rope.h): angle = pos * invFreq[i], its sin and cos in f64; f64 a plain loop, f32 rows over the pool.
#include <cmath>
#include <limits>
#include <vector>

#include "../../core/parallel.h"
#include "rope.h"

namespace osp::rope_kernels {

template <typename T>
void applyCpu(const T* x, const int32_t* positions, T* out, int64_t T_, int64_t H, int64_t Dh, const double* invFreq,
              double sign, bool threaded, KernelStatus* status) {
  const int64_t h = Dh / 2, row = H * Dh;
  auto body = [&](int64_t t0, int64_t t1) {
    std::vector<double> c(static_cast<size_t>(h)), s(static_cast<size_t>(h));
    for (int64_t t = t0; t < t1; t++) {
      const int32_t p = positions[t];
      const T* xr = x + t * row;
      T* orow = out + t * row;
      if (p < 0) {
        reportStatus(status, StatusIndexOutOfRange, t);
        for (int64_t j = 0; j < row; j++) orow[j] = std::numeric_limits<T>::quiet_NaN();
        continue;
      }
      const double pos = double(p);
      for (int64_t i = 0; i < h; i++) {
        const double a = pos * invFreq[i];
        c[i] = std::cos(a);
        s[i] = sign * std::sin(a);
      }
      for (int64_t k = 0; k < H; k++) {
        const T* xa = xr + k * Dh;
        T* oa = orow + k * Dh;
        for (int64_t i = 0; i < h; i++) {
          const double x1 = double(xa[i]), x2 = double(xa[i + h]);
          oa[i] = T(x1 * c[i] - x2 * s[i]);
          oa[i + h] = T(x2 * c[i] + x1 * s[i]);
        }
      }
    }
  };
  if (threaded) parallelFor(T_, row >= 4096 ? 1 : (4096 + row - 1) / row, body);
  else if (T_ > 0) body(0, T_);
}

template void applyCpu<float>(const float*, const int32_t*, float*, int64_t, int64_t, int64_t, const double*, double, bool,
                              KernelStatus*);
template void applyCpu<double>(const double*, const int32_t*, double*, int64_t, int64_t, int64_t, const double*, double,
                               bool, KernelStatus*);

}  // namespace osp::rope_kernels
