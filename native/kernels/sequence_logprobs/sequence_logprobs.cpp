// Sequence sums: argument checks and dispatch (maths in sequence_logprobs.h).
#include "sequence_logprobs.h"

#include "../../core/check.h"
#include "../../core/cuda_backend.h"
#include "../../core/sync.h"

namespace osp {

namespace {

void checkIds(const ArgCheck& c, const Tensor& ids, const Tensor& like, const char* likeName) {
  c.dims(ids, "sequenceIds", 1);
  c.contiguous(ids, "sequenceIds");
  c.dtype(ids, "sequenceIds", {DType::I32});
  c.sameDevice(like, likeName, ids, "sequenceIds");
}

void checkValues(const ArgCheck& c, const Tensor& t, const char* arg) {
  c.dims(t, arg, 1);
  c.contiguous(t, arg);
  c.floating(t, arg, false);
}

// `range` names where count comes from ("count", "the entries of gradSequences").
void raise(const ArgCheck& c, const KernelStatus& st, const Tensor& ids, const Tensor& values, const char* valuesName,
           int64_t count, int32_t ignoreIndex, const char* range) {
  if (st.code == StatusSequenceId)
    c.status(st, "sequenceIds[" + std::to_string(st.index) + "] = " + std::to_string(readInt(ids, st.index)) +
                     " is outside [0, " + std::to_string(count) + ") (" + range + ") and is neither -1 nor ignoreIndex (" +
                     std::to_string(ignoreIndex) + ")");
  if (st.code == StatusNonFiniteValue)
    c.status(st, std::string(valuesName) + "[" + std::to_string(st.index) + "] is " +
                     formatNumber(readFloat(values, st.index)) + "; expected finite values");
  c.status(st, "kernel reported status " + std::to_string(st.code));
}

}  // namespace

Tensor sequenceLogprobs(const Tensor& lp, const Tensor& ids, int64_t count, int32_t ignoreIndex) {
  ArgCheck c{"sequenceLogprobs"};
  checkValues(c, lp, "tokenLogprobs");
  checkIds(c, ids, lp, "tokenLogprobs");
  c.size(ids, "sequenceIds", 0, lp.shape[0], "one sequence id per entry of tokenLogprobs");
  const int64_t N = lp.shape[0];
  checkedNumel({count}, lp.dtype, "sequenceLogprobs: count: the result's shape");
  Tensor out = Tensor::empty({count}, lp.dtype, lp.device);
  KernelStatus st{};
  if (lp.device == Device::CPU) {
    if (lp.dtype == DType::F64)
      sequence_logprobs::forwardCpu(lp.data<double>(), ids.data<int32_t>(), out.data<double>(), N, count, ignoreIndex, &st);
    else sequence_logprobs::forwardCpu(lp.data<float>(), ids.data<int32_t>(), out.data<float>(), N, count, ignoreIndex, &st);
  } else {
#ifdef OSP_WITH_CUDA
    cuda::runCudaOp(
        c.op,
        [&](KernelStatus* s) {
          sequence_logprobs::forwardCuda(lp.data<float>(), ids.data<int32_t>(), out.data<float>(), N, count, ignoreIndex, s);
        },
        [c, ids, lp, count, ignoreIndex](const KernelStatus& s) { raise(c, s, ids, lp, "tokenLogprobs", count, ignoreIndex, "count"); });
#endif
  }
  raise(c, st, ids, lp, "tokenLogprobs", count, ignoreIndex, "count");
  return out;
}

Tensor sequenceLogprobsBackward(const Tensor& g, const Tensor& ids, int32_t ignoreIndex) {
  ArgCheck c{"sequenceLogprobsBackward"};
  checkValues(c, g, "gradSequences");
  checkIds(c, ids, g, "gradSequences");
  const int64_t N = ids.shape[0], count = g.shape[0];
  Tensor d = Tensor::empty({N}, g.dtype, g.device);
  if (N == 0) return d;
  KernelStatus st{};
  if (g.device == Device::CPU) {
    if (g.dtype == DType::F64)
      sequence_logprobs::backwardCpu(g.data<double>(), ids.data<int32_t>(), d.data<double>(), N, count, ignoreIndex, &st);
    else sequence_logprobs::backwardCpu(g.data<float>(), ids.data<int32_t>(), d.data<float>(), N, count, ignoreIndex, &st);
  } else {
#ifdef OSP_WITH_CUDA
    cuda::runCudaOp(
        c.op,
        [&](KernelStatus* s) {
          sequence_logprobs::backwardCuda(g.data<float>(), ids.data<int32_t>(), d.data<float>(), N, count, ignoreIndex, s);
        },
        [c, ids, g, count, ignoreIndex](const KernelStatus& s) { raise(c, s, ids, g, "gradSequences", count, ignoreIndex, "the entries of gradSequences"); });
#endif
  }
  raise(c, st, ids, g, "gradSequences", count, ignoreIndex, "the entries of gradSequences");
  return d;
}

}  // namespace osp
