// One pair of the preference losses, shared by the CPU and CUDA kernels so that both compute the
// same expression (maths in preference_loss.h). kind: 0 = SPCE, 1 = DPO, 2 = IPO.
// The cross-entropy is written as (1 - p) softplus(z) + p softplus(-z), which equals
// softplus(z) - p z but keeps full relative precision when the loss is tiny (z >> 0, p = 1).
#pragma once
#include <cmath>

#include "../../core/math.h"  // OSP_HD, softplusStable, sigmoidStable

namespace osp::preference_loss {

template <typename T>
struct PairResult {
  T loss, pHat, margin, dPolicyChosen;  // dPolicyChosen: d loss_i / d policyChosen_i (before the 1/B of the mean)
};

template <typename T>
OSP_HD PairResult<T> preferencePair(int kind, T pc, T pr, T rc, T rr, T p, T beta) {
  using std::exp;
  using std::log1p;
  const T h = (pc - rc) - (pr - rr);
  const T z = beta * h;
  // One exp and one log1p serve sigmoid(z), softplus(z) and softplus(-z).
  const T az = z < 0 ? -z : z;
  const T e = exp(-az);  // in (0, 1]: never overflows
  const T l = log1p(e);
  PairResult<T> r;
  r.margin = z;
  r.pHat = z >= 0 ? T(1) / (T(1) + e) : e / (T(1) + e);
  if (kind == 2) {  // IPO: (h - 1/(2 beta))^2
    const T d = h - T(1) / (T(2) * beta);
    r.loss = d * d;
    r.dPolicyChosen = T(2) * d;
  } else {  // SPCE (DPO is p = 1)
    const T q = kind == 1 ? T(1) : p;
    const T spPos = (z > 0 ? z : T(0)) + l;   // softplus(z)
    const T spNeg = (z < 0 ? -z : T(0)) + l;  // softplus(-z)
    r.loss = (T(1) - q) * spPos + q * spNeg;
    r.dPolicyChosen = beta * (r.pHat - q);
  }
  return r;
}

}  // namespace osp::preference_loss
