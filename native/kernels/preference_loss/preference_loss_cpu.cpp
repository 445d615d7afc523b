// CPU preference losses (maths in preference_loss.h). The same per-pair function serves f32 and
// f64 (and the CUDA kernel); the mean is accumulated in double.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../../core/parallel.h"

#include "preference_loss.h"
#include "preference_pair.h"

namespace osp::preference_loss {

template <typename T>
void forwardCpu(int kind, const T* pc, const T* pr, const T* rc, const T* rr, const T* target, T beta, int64_t B,
                T* losses, T* pHat, T* margins, T* gradChosen, T* gradRejected, double* lossMean, KernelStatus* st) {
  // Fixed blocks of pairs, summed block by block in order: the mean does not depend on the
  // number of threads.
  constexpr int64_t kPairs = 4096;
  const int64_t blocks = (B + kPairs - 1) / kPairs;
  std::vector<double> partial(blocks, 0.0);
  const T invB = T(1) / T(B);
  parallelFor(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      double acc = 0;
      for (int64_t i = b * kPairs; i < std::min(B, (b + 1) * kPairs); i++) {
        const T in[4] = {pc[i], pr[i], rc[i], rr[i]};
        for (int k = 0; k < 4; k++)
          if (!std::isfinite(in[k])) reportStatus(st, StatusNonFiniteValue, k * B + i);
        T p = 1;
        if (target) {
          p = target[i];
          if (!(p >= 0 && p <= 1)) reportStatus(st, StatusProbabilityRange, i);
        }
        PairResult<T> r = preferencePair<T>(kind, in[0], in[1], in[2], in[3], p, beta);
        losses[i] = r.loss;
        pHat[i] = r.pHat;
        margins[i] = r.margin;
        gradChosen[i] = r.dPolicyChosen * invB;
        gradRejected[i] = -r.dPolicyChosen * invB;
        acc += double(r.loss);
      }
      partial[b] = acc;
    }
  });
  double total = 0;
  for (double v : partial) total += v;
  *lossMean = total / double(B);
}

template void forwardCpu<float>(int, const float*, const float*, const float*, const float*, const float*, float, int64_t,
                                float*, float*, float*, float*, float*, double*, KernelStatus*);
template void forwardCpu<double>(int, const double*, const double*, const double*, const double*, const double*, double,
                                 int64_t, double*, double*, double*, double*, double*, double*, KernelStatus*);

}  // namespace osp::preference_loss
