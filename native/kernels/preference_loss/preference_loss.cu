// CUDA preference losses (maths in preference_loss.h, per-pair code in preference_pair.h).
// One pass: each thread handles pairs i = tid, tid + stride, ...; every output is written once;
// per-block partial loss sums are combined by the last block to finish, in block order, so the
// mean is the same bit for bit on every run (no floating-point atomics).
#include "../../core/cuda_common.cuh"
#include "preference_loss.h"
#include "preference_pair.h"

namespace osp::preference_loss {

namespace {

using osp::cuda::kBlock;

__global__ void __launch_bounds__(kBlock) forwardKernel(int kind, const float* __restrict__ pc, const float* __restrict__ pr,
                                                        const float* __restrict__ rc, const float* __restrict__ rr,
                                                        const float* __restrict__ target, float beta, int64_t B,
                                                        float* __restrict__ losses, float* __restrict__ pHat,
                                                        float* __restrict__ margins, float* __restrict__ gc,
                                                        float* __restrict__ gr, float* partials, unsigned* counter,
                                                        float* lossMean, KernelStatus* st) {
  const float invB = 1.f / float(B);
  float acc = 0.f;
  for (int64_t i = blockIdx.x * int64_t(kBlock) + threadIdx.x; i < B; i += int64_t(gridDim.x) * kBlock) {
    const float in[4] = {pc[i], pr[i], rc[i], rr[i]};
#pragma unroll
    for (int k = 0; k < 4; k++)
      if (!isfinite(in[k])) osp::cuda::reportStatus(st, StatusNonFiniteValue, k * B + i);
    float p = 1.f;
    if (target) {
      p = target[i];
      if (!(p >= 0.f && p <= 1.f)) osp::cuda::reportStatus(st, StatusProbabilityRange, i);
    }
    PairResult<float> r = preferencePair<float>(kind, in[0], in[1], in[2], in[3], p, beta);
    losses[i] = r.loss;
    pHat[i] = r.pHat;
    margins[i] = r.margin;
    gc[i] = r.dPolicyChosen * invB;
    gr[i] = -r.dPolicyChosen * invB;
    acc += r.loss;
  }
  acc = osp::cuda::blockReduceSum(acc);
  __shared__ bool last;
  if (threadIdx.x == 0) {
    partials[blockIdx.x] = acc;
    __threadfence();
    last = atomicAdd(counter, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  float total = 0.f;
  for (unsigned b = threadIdx.x; b < gridDim.x; b += kBlock) total += ((volatile float*)partials)[b];
  total = osp::cuda::blockReduceSum(total);
  if (threadIdx.x == 0) *lossMean = total * invB;
}

}  // namespace

void forwardCuda(int kind, const float* pc, const float* pr, const float* rc, const float* rr, const float* target,
                 float beta, int64_t B, const Outputs& out, float* lossMean, KernelStatus* st) {
  const int64_t blocks64 = osp::cuda::blocksFor(B);
  const unsigned blocks = static_cast<unsigned>(blocks64 < 1024 ? (blocks64 < 1 ? 1 : blocks64) : 1024);
  // Scratch: the partial sums and the finished-block counter (zeroed), stream-ordered.
  char* scratch = static_cast<char*>(osp::cuda::alloc(blocks * sizeof(float) + sizeof(unsigned)));
  unsigned* counter = reinterpret_cast<unsigned*>(scratch + blocks * sizeof(float));
  osp::cuda::memsetZero(counter, sizeof(unsigned));
  forwardKernel<<<blocks, kBlock, 0, osp::cuda::stream()>>>(
      kind, pc, pr, rc, rr, target, beta, B, static_cast<float*>(out.losses), static_cast<float*>(out.pHat),
      static_cast<float*>(out.margins), static_cast<float*>(out.gradChosen), static_cast<float*>(out.gradRejected),
      reinterpret_cast<float*>(scratch), counter, lossMean, st);
  osp::cuda::free(scratch);  // stream-ordered: released after the kernel has run
}

}  // namespace osp::preference_loss
