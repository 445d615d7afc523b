// CUDA sequence sums (maths in sequence_logprobs.h). Forward: one block per sequence scans all ids
// in a fixed order and reduces in a fixed tree, so sums are reproducible bit for bit (no atomics).
// With count = 0 one block still runs, to check the ids. Backward: one thread per token.
#include "../../core/cuda_common.cuh"
#include "sequence_logprobs.h"

namespace osp::sequence_logprobs {

namespace {

using osp::cuda::kBlock;

__global__ void __launch_bounds__(kBlock) forwardKernel(const float* __restrict__ lp, const int32_t* __restrict__ ids,
                                                        float* __restrict__ out, int64_t N, int64_t count,
                                                        int32_t ignoreIndex, KernelStatus* st) {
  const int64_t s = blockIdx.x;
  float acc = 0.f;
  for (int64_t n = threadIdx.x; n < N; n += kBlock) {
    const int32_t id = ids[n];
    if (id == s) {
      const float v = lp[n];
      if (!isfinite(v)) osp::cuda::reportStatus(st, StatusNonFiniteValue, n);
      acc += v;
    } else if (s == 0 && id != -1 && id != ignoreIndex && (id < 0 || id >= count)) {
      osp::cuda::reportStatus(st, StatusSequenceId, n);  // checked once, by the first block
    }
  }
  acc = osp::cuda::blockReduceSum(acc);
  if (threadIdx.x == 0 && s < count) out[s] = acc;
}

__global__ void backwardKernel(const float* __restrict__ g, const int32_t* __restrict__ ids, float* __restrict__ d,
                               int64_t N, int64_t count, int32_t ignoreIndex, KernelStatus* st) {
  const int64_t n = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (n >= N) return;
  const int32_t id = ids[n];
  if (id == -1 || id == ignoreIndex) d[n] = 0.f;
  else if (id < 0 || id >= count) {
    d[n] = NAN;
    osp::cuda::reportStatus(st, StatusSequenceId, n);
  } else d[n] = g[id];
}

}  // namespace

void forwardCuda(const float* lp, const int32_t* ids, float* out, int64_t N, int64_t count, int32_t ignoreIndex, KernelStatus* st) {
  forwardKernel<<<count > 0 ? count : 1, kBlock, 0, osp::cuda::stream()>>>(lp, ids, out, N, count, ignoreIndex, st);
}

void backwardCuda(const float* g, const int32_t* ids, float* d, int64_t N, int64_t count, int32_t ignoreIndex, KernelStatus* st) {
  backwardKernel<<<osp::cuda::blocksFor(N), kBlock, 0, osp::cuda::stream()>>>(g, ids, d, N, count, ignoreIndex, st);
}

}  // namespace osp::sequence_logprobs
