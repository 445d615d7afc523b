// Token sampling: argument checks and dispatch to the CPU or CUDA kernels (maths in the header).
#include "sampling.h"

#include <cmath>

#include "../../core/check.h"
#include "../../core/cuda_backend.h"
#include "../../core/sync.h"

namespace osp {

namespace {

void checkOptions(const ArgCheck& c, double seed, double temperature, double topP, double topK) {
  if (!(seed >= 0) || seed != std::floor(seed) || seed >= 9007199254740992.0)
    rangeError(c.prefix("seed") + " is " + formatNumber(seed) + "; expected an integer in [0, 2^53)");
  if (!(temperature >= 0) || !std::isfinite(temperature))
    rangeError(c.prefix("temperature") + " is " + formatNumber(temperature) + "; expected a finite number >= 0 (0 = greedy)");
  if (!(topP > 0 && topP <= 1))
    rangeError(c.prefix("topP") + " is " + formatNumber(topP) + "; expected a number in (0, 1] (1 = off)");
  if (!(topK >= 0) || topK != std::floor(topK) || topK > 9007199254740991.0)
    rangeError(c.prefix("topK") + " is " + formatNumber(topK) + "; expected an integer >= 0 (0 = off)");
}

void checkIndexVector(const ArgCheck& c, const Tensor& t, const char* name, const Tensor& logits) {
  c.dims(t, name, 1);
  c.contiguous(t, name);
  c.dtype(t, name, {DType::I32});
  c.sameDevice(logits, "logits", t, name);
  c.size(t, name, 0, logits.shape[0], "one per row of logits");
}

void raise(const ArgCheck& c, const KernelStatus& st) {
  if (st.code == StatusNonFiniteRow)
    c.status(st, "logits row " + std::to_string(st.index) +
                     " contains NaN or +Inf, or has no finite value (all -Inf); expected finite logits (-Inf is allowed for excluded tokens)");
  c.status(st, "kernel reported status " + std::to_string(st.code));
}

}  // namespace

SampleResult sampleTokens(const Tensor& logits, const Tensor& streams, const Tensor& steps, double seed,
                          double temperature, double topP, double topK) {
  ArgCheck c{"sampleTokens"};
  c.dims(logits, "logits", 2);
  c.contiguous(logits, "logits");
  c.floating(logits, "logits");
  checkIndexVector(c, streams, "streams", logits);
  checkIndexVector(c, steps, "steps", logits);
  if (logits.shape[1] < 1) typeError(c.prefix("logits") + " has shape " + shapeString(logits.shape) + "; expected at least one column");
  checkOptions(c, seed, temperature, topP, topK);
  const int64_t B = logits.shape[0], V = logits.shape[1];
  const DType outType = logits.dtype == DType::F64 ? DType::F64 : DType::F32;
  SampleResult r{Tensor::empty({B}, DType::I32, logits.device), Tensor::empty({B}, outType, logits.device),
                 Tensor::empty({B}, outType, logits.device)};
  if (B == 0) return r;
  const sampling::Params p{static_cast<uint64_t>(seed), temperature, topP, static_cast<int64_t>(topK)};
  KernelStatus st{};
  if (logits.device == Device::CPU) {
    if (logits.dtype == DType::F64)
      sampling::sampleCpu(logits.data<double>(), streams.data<int32_t>(), steps.data<int32_t>(), B, V, p,
                          r.tokens.data<int32_t>(), r.logprobs.data<double>(), r.modelLogprobs.data<double>(), &st);
    else
      sampling::sampleCpu(logits.data<float>(), streams.data<int32_t>(), steps.data<int32_t>(), B, V, p,
                          r.tokens.data<int32_t>(), r.logprobs.data<float>(), r.modelLogprobs.data<float>(), &st);
  } else {
#ifdef OSP_WITH_CUDA
    if (B > 2147483647) rangeError("sampleTokens: " + std::to_string(B) + " rows exceed the CUDA grid's 2^31 - 1 blocks");
    cuda::runCudaOp(
        c.op,
        [&](KernelStatus* s) {
          sampling::sampleCuda(logits.raw(), logits.dtype == DType::BF16, streams.data<int32_t>(), steps.data<int32_t>(), B,
                               V, p, r.tokens.data<int32_t>(), r.logprobs.data<float>(), r.modelLogprobs.data<float>(), s);
        },
        [c](const KernelStatus& s) { raise(c, s); });
#endif
  }
  raise(c, st);
  return r;
}

}  // namespace osp
