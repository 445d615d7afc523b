// CPU sequence sums (maths in sequence_logprobs.h): one pass in token order.
#include <cmath>
#include <limits>
#include <vector>

#include "sequence_logprobs.h"

namespace osp::sequence_logprobs {

template <typename T>
void forwardCpu(const T* lp, const int32_t* ids, T* out, int64_t N, int64_t count, int32_t ignoreIndex, KernelStatus* st) {
  for (int64_t s = 0; s < count; s++) out[s] = 0;
  for (int64_t n = 0; n < N; n++) {
    const int32_t id = ids[n];
    if (id == -1 || id == ignoreIndex) continue;
    if (id < 0 || id >= count) {
      reportStatus(st, StatusSequenceId, n);
      continue;
    }
    if (!std::isfinite(lp[n])) reportStatus(st, StatusNonFiniteValue, n);
    out[id] += lp[n];
  }
}

template <typename T>
void backwardCpu(const T* g, const int32_t* ids, T* d, int64_t N, int64_t count, int32_t ignoreIndex, KernelStatus* st) {
  for (int64_t n = 0; n < N; n++) {
    const int32_t id = ids[n];
    if (id == -1 || id == ignoreIndex) d[n] = 0;
    else if (id < 0 || id >= count) {
      reportStatus(st, StatusSequenceId, n);
      d[n] = std::numeric_limits<T>::quiet_NaN();
    } else d[n] = g[id];
  }
}

template void forwardCpu<float>(const float*, const int32_t*, float*, int64_t, int64_t, int32_t, KernelStatus*);
template void forwardCpu<double>(const double*, const int32_t*, double*, int64_t, int64_t, int32_t, KernelStatus*);
template void backwardCpu<float>(const float*, const int32_t*, float*, int64_t, int64_t, int32_t, KernelStatus*);
template void backwardCpu<double>(const double*, const int32_t*, double*, int64_t, int64_t, int32_t, KernelStatus*);

}  // namespace osp::sequence_logprobs
