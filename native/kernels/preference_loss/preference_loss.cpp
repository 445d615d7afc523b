// Preference losses: argument checks and dispatch (maths in preference_loss.h).
#include "preference_loss.h"

#include <cmath>

#include "../../core/check.h"
#include "../../core/cuda_backend.h"
#include "../../core/sync.h"

namespace osp {

namespace {

const char* const names[5] = {"policyChosen", "policyRejected", "refChosen", "refRejected", "target"};

// ins: the four log-probability vectors and the target (null without one); B pairs.
void raise(const ArgCheck& c, const KernelStatus& st, const Tensor* const ins[5], int64_t B) {
  if (st.code == StatusNonFiniteValue) {
    const int64_t which = st.index / B, i = st.index % B;
    c.status(st, std::string(names[which]) + "[" + std::to_string(i) + "] is " + formatNumber(readFloat(*ins[which], i)) +
                     "; expected finite log-probabilities");
  }
  if (st.code == StatusProbabilityRange)
    c.status(st, "target[" + std::to_string(st.index) + "] is " + formatNumber(readFloat(*ins[4], st.index)) +
                     "; expected a preference strength in [0, 1]");
  c.status(st, "kernel reported status " + std::to_string(st.code));
}

}  // namespace

PreferenceResult preferenceLoss(PreferenceKind kind, const Tensor& pc, const Tensor& pr, const Tensor& rc,
                                const Tensor& rr, const Tensor* target, double beta) {
  ArgCheck c{"preferenceLoss"};
  const Tensor* ins[5] = {&pc, &pr, &rc, &rr, target};
  const int nIn = target ? 5 : 4;
  if (kind == PreferenceKind::SPCE && !target)
    typeError("preferenceLoss: kind spce needs inputs.target (a Tensor[B] of preference strengths in [0, 1])");
  if (kind != PreferenceKind::SPCE && target)
    typeError(std::string("preferenceLoss: inputs.target is only used by spce; kind ") +
              (kind == PreferenceKind::DPO ? "dpo" : "ipo") + " takes no target");
  for (int k = 0; k < nIn; k++) {
    c.dims(*ins[k], names[k], 1);
    c.contiguous(*ins[k], names[k]);
    c.floating(*ins[k], names[k], false);
    if (k > 0) {
      c.sameDevice(pc, names[0], *ins[k], names[k]);
      c.sameDtype(pc, names[0], *ins[k], names[k]);
      c.size(*ins[k], names[k], 0, pc.shape[0], std::string("one value per pair, as in ") + names[0]);
    }
  }
  if (!(beta > 0) || !std::isfinite(beta))
    rangeError("preferenceLoss: beta is " + formatNumber(beta) + "; expected a finite number > 0");
  const int64_t B = pc.shape[0];
  if (B == 0) rangeError("preferenceLoss: no pairs (B = 0); expected at least one");
  const DType dt = pc.dtype;
  const Device dev = pc.device;
  PreferenceResult r{Tensor::empty({1}, dt, dev), Tensor::empty({B}, dt, dev), Tensor::empty({B}, dt, dev), Tensor::empty({B}, dt, dev),
                     Tensor::empty({B}, dt, dev), Tensor::empty({B}, dt, dev)};
  KernelStatus st{};
  const int k = static_cast<int>(kind);
  double mean = 0;
  if (dev == Device::CPU) {
    if (dt == DType::F64)
      preference_loss::forwardCpu<double>(k, pc.data<double>(), pr.data<double>(), rc.data<double>(), rr.data<double>(),
                                          target ? target->data<double>() : nullptr, beta, B, r.losses.data<double>(),
                                          r.pHat.data<double>(), r.margins.data<double>(), r.gradPolicyChosen.data<double>(),
                                          r.gradPolicyRejected.data<double>(), &mean, &st);
    else
      preference_loss::forwardCpu<float>(k, pc.data<float>(), pr.data<float>(), rc.data<float>(), rr.data<float>(),
                                         target ? target->data<float>() : nullptr, static_cast<float>(beta), B,
                                         r.losses.data<float>(), r.pHat.data<float>(), r.margins.data<float>(),
                                         r.gradPolicyChosen.data<float>(), r.gradPolicyRejected.data<float>(), &mean, &st);
  } else {
#ifdef OSP_WITH_CUDA
    preference_loss::Outputs o{r.losses.raw(), r.pHat.raw(), r.margins.raw(), r.gradPolicyChosen.raw(),
                               r.gradPolicyRejected.raw()};
    cuda::runCudaOp(
        c.op,
        [&](KernelStatus* s) {
          preference_loss::forwardCuda(k, pc.data<float>(), pr.data<float>(), rc.data<float>(), rr.data<float>(),
                                       target ? target->data<float>() : nullptr, static_cast<float>(beta), B, o,
                                       r.loss.data<float>(), s);
        },
        [c, pc, pr, rc, rr, t = target ? *target : Tensor(), hasTarget = target != nullptr, B](const KernelStatus& s) {
          const Tensor* const in[5] = {&pc, &pr, &rc, &rr, hasTarget ? &t : nullptr};
          raise(c, s, in, B);
        });
#endif
  }
  if (dev == Device::CPU) {
    if (dt == DType::F64) *r.loss.data<double>() = mean;
    else *r.loss.data<float>() = static_cast<float>(mean);
  }
  raise(c, st, ins, B);
  return r;
}

}  // namespace osp
