// embedding: argument checks, allocation and dispatch to the CPU or CUDA kernels (maths in embedding.h).
#include "embedding.h"

#include "../../core/check.h"
#include "../../core/cuda_backend.h"
#include "../../core/sync.h"

namespace osp {

namespace {

void checkIds(const ArgCheck& c, const Tensor& ids, const Tensor& other, const char* otherName, int64_t rows, const char* why) {
  c.dims(ids, "ids", 1);
  c.contiguous(ids, "ids");
  c.dtype(ids, "ids", {DType::I32});
  c.sameDevice(other, otherName, ids, "ids");
  c.size(ids, "ids", 0, rows, why);
}

void checkFloat2d(const ArgCheck& c, const Tensor& t, const char* name) {
  c.dims(t, name, 2);
  c.contiguous(t, name);
  c.floating(t, name);
}

// `range` names where V comes from ("the rows of table", "vocab").
void raise(const ArgCheck& c, const KernelStatus& st, const Tensor& ids, int64_t V, const char* range) {
  if (st.code == StatusIndexOutOfRange)
    c.status(st, "ids[" + std::to_string(st.index) + "] = " + std::to_string(readInt(ids, st.index)) + " is outside [0, " +
                     std::to_string(V) + ") (" + range + ")");
  c.status(st, "kernel reported status " + std::to_string(st.code));
}

}  // namespace

Tensor embedding(const Tensor& table, const Tensor& ids) {
  ArgCheck c{"embedding"};
  checkFloat2d(c, table, "table");
  c.dims(ids, "ids", 1);
  c.contiguous(ids, "ids");
  c.dtype(ids, "ids", {DType::I32});
  c.sameDevice(table, "table", ids, "ids");
  const int64_t T = ids.shape[0], V = table.shape[0], D = table.shape[1];
  Tensor out = Tensor::empty({T, D}, table.dtype, table.device);
  if (T == 0) return out;
  KernelStatus st{};
  if (table.device == Device::CPU) {
    if (table.dtype == DType::F64)
      embedding_kernels::forwardCpu(table.data<double>(), ids.data<int32_t>(), out.data<double>(), T, V, D, false, &st);
    else embedding_kernels::forwardCpu(table.data<float>(), ids.data<int32_t>(), out.data<float>(), T, V, D, true, &st);
  } else {
#ifdef OSP_WITH_CUDA
    cuda::runCudaOp(
        c.op,
        [&](KernelStatus* s) {
          embedding_kernels::forwardCuda(table.raw(), ids.data<int32_t>(), out.raw(), table.dtype == DType::BF16, T, V, D, s);
        },
        [c, ids, V](const KernelStatus& s) { raise(c, s, ids, V, "the rows of table"); });
#endif
  }
  raise(c, st, ids, V, "the rows of table");
  return out;
}

Tensor embeddingBackward(const Tensor& gradOut, const Tensor& ids, int64_t vocab) {
  ArgCheck c{"embeddingBackward"};
  checkFloat2d(c, gradOut, "gradOut");
  checkIds(c, ids, gradOut, "gradOut", gradOut.shape[0], "one id per row of gradOut");
  if (vocab > 2147483647) rangeError(c.prefix("vocab") + " is " + std::to_string(vocab) + "; expected at most 2^31 - 1");
  const int64_t T = gradOut.shape[0], D = gradOut.shape[1];
  checkedNumel({vocab, D}, gradOut.dtype, "embeddingBackward: vocab: the result's shape");
  Tensor d = Tensor::zeros({vocab, D}, gradOut.dtype, gradOut.device);
  KernelStatus st{};
  if (gradOut.device == Device::CPU) {
    if (gradOut.dtype == DType::F64)
      embedding_kernels::backwardCpu(gradOut.data<double>(), ids.data<int32_t>(), d.data<double>(), T, vocab, D, false, &st);
    else embedding_kernels::backwardCpu(gradOut.data<float>(), ids.data<int32_t>(), d.data<float>(), T, vocab, D, true, &st);
  } else {
#ifdef OSP_WITH_CUDA
    if (T > 0) {
      cuda::runCudaOp(
          c.op,
          [&](KernelStatus* s) {
            embedding_kernels::backwardCuda(gradOut.raw(), ids.data<int32_t>(), d.raw(), gradOut.dtype == DType::BF16, T,
                                            vocab, D, s);
          },
          [c, ids, vocab](const KernelStatus& s) { raise(c, s, ids, vocab, "vocab"); });
    }
#endif
  }
  raise(c, st, ids, vocab, "vocab");
  return d;
}

}  // namespace osp
