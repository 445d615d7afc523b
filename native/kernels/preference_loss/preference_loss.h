// Preference losses of METHOD.md section 3, with their gradients, in ONE pass over B pairs.
//   h      = (policyChosen - refChosen) - (policyRejected - refRejected)   difference of log-ratios
//   margin = z = beta * h,   pHat = sigmoid(z)
//   SPCE   loss_i = softplus(z) - p_i z          dL/dz = sigmoid(z) - p_i    (p_i = target in [0, 1])
//   DPO    loss_i = softplus(-z) = -log sigmoid(z)   (SPCE with p = 1)   dL/dz = sigmoid(z) - 1
//   IPO    loss_i = (h - 1/(2 beta))^2          dL/dh = 2 (h - 1/(2 beta))       (no beta inside)
//   loss = mean_i loss_i; gradPolicyChosen_i = dloss/dpolicyChosen_i = beta dL/dz / B (IPO: dL/dh / B),
//   gradPolicyRejected_i = -gradPolicyChosen_i. Reference log-probs and targets are constants.
// softplus(z) = max(z, 0) + log1p(exp(-|z|)) is exact in floating point for |z| up to 1e4 and
// beyond, and sigmoid is formed from exp(-|z|) so no intermediate overflows.
// Memory: reads 4-5 B values, writes 5 B values; the mean is reduced in a fixed order.
// Pinned by test/preferenceLoss.test.ts.
#pragma once
#include <cstdint>

#include "../../core/errors.h"
#include "../../core/tensor.h"

namespace osp {

enum class PreferenceKind { SPCE = 0, DPO = 1, IPO = 2 };

struct PreferenceResult {
  // The mean loss as a [1] tensor on the inputs' device (dtype of the inputs): it stays there, so the
  // objective of a training step needs no host round trip (the caller reads it with its metrics).
  Tensor loss;
  Tensor losses, pHat, margins, gradPolicyChosen, gradPolicyRejected;
};

PreferenceResult preferenceLoss(PreferenceKind kind, const Tensor& policyChosen, const Tensor& policyRejected,
                                const Tensor& refChosen, const Tensor& refRejected, const Tensor* target, double beta);

namespace preference_loss {

struct Outputs {
  void* losses;
  void* pHat;
  void* margins;
  void* gradChosen;
  void* gradRejected;
};

template <typename T>
void forwardCpu(int kind, const T* pc, const T* pr, const T* rc, const T* rr, const T* target, T beta, int64_t B,
                T* losses, T* pHat, T* margins, T* gradChosen, T* gradRejected, double* lossMean, KernelStatus* st);
void forwardCuda(int kind, const float* pc, const float* pr, const float* rc, const float* rr, const float* target,
                 float beta, int64_t B, const Outputs& out, float* lossMean, KernelStatus* st);

}  // namespace preference_loss
}  // namespace osp
