// CPU AdamW and sum of squares (maths in adamw.h): arithmetic in double; the sum runs over fixed
// chunks added in order, so its bits do not depend on the thread count.
#include <cmath>
#include <vector>

#include "../../core/parallel.h"
#include "adamw.h"

namespace osp::adamw {

template <typename T>
double sumOfSquaresCpu(const T* x, int64_t n) {
  const int64_t chunks = (n + kSumChunk - 1) / kSumChunk;
  std::vector<double> partial(static_cast<size_t>(chunks), 0.0);
  parallelFor(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) {
      const int64_t i1 = std::min(n, (c + 1) * kSumChunk);
      double s = 0;
      for (int64_t i = c * kSumChunk; i < i1; i++) s += double(x[i]) * double(x[i]);
      partial[c] = s;
    }
  });
  double total = 0;
  for (double s : partial) total += s;
  return total;
}

template <typename T>
void findNonFiniteCpu(const T* g, int64_t n, KernelStatus* st) {
  parallelFor(n, 1 << 15, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++)
      if (!std::isfinite(g[i])) {
        reportStatus(st, StatusNonFiniteValue, i);
        return;
      }
  });
}

template <typename T>
void stepCpu(T* p, const T* g, T* m, T* v, int64_t n, const StepScalars& s) {
  parallelFor(n, 1 << 14, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      const double gi = double(g[i]) * s.gradScale;
      const double pi = double(p[i]) * s.decay;
      const double mi = s.beta1 * double(m[i]) + (1 - s.beta1) * gi;
      const double vi = s.beta2 * double(v[i]) + (1 - s.beta2) * gi * gi;
      m[i] = T(mi);
      v[i] = T(vi);
      p[i] = T(pi - s.stepSize * mi / (std::sqrt(vi) / s.bc2Sqrt + s.eps));
    }
  });
}

template double sumOfSquaresCpu<float>(const float*, int64_t);
template double sumOfSquaresCpu<double>(const double*, int64_t);
template void findNonFiniteCpu<float>(const float*, int64_t, KernelStatus*);
template void findNonFiniteCpu<double>(const double*, int64_t, KernelStatus*);
template void stepCpu<float>(float*, const float*, float*, float*, int64_t, const StepScalars&);
template void stepCpu<double>(double*, const double*, double*, double*, int64_t, const StepScalars&);

}  // namespace osp::adamw
