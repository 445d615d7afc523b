// CUDA AdamW and sum of squares (maths in adamw.h): f32 arithmetic; the sum is one f32 partial per
// block of a grid sized by n alone, then one block adds the partials in a fixed order.
#include "../../core/cuda_common.cuh"
#include "adamw.h"

namespace osp::adamw {

namespace {

using osp::cuda::gridFor, osp::cuda::kBlock, osp::cuda::toFloat;

constexpr int kMaxBlocks = 1024;  // partials; also the block count cap of the first pass

int64_t blocksFor(int64_t n, int64_t perThread) {
  const int64_t b = (n + kBlock * perThread - 1) / (kBlock * perThread);
  return b < 1 ? 1 : (b > kMaxBlocks ? kMaxBlocks : b);
}

template <typename T>
__global__ void __launch_bounds__(kBlock) partialSumsKernel(const T* __restrict__ x, float* __restrict__ partial, int64_t n) {
  float s = 0.f;
  const int64_t stride = int64_t(gridDim.x) * kBlock;
  for (int64_t i = int64_t(blockIdx.x) * kBlock + threadIdx.x; i < n; i += stride) {
    const float v = toFloat(x[i]);
    s += v * v;
  }
  s = osp::cuda::blockReduceSum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void __launch_bounds__(kBlock) finalSumKernel(const float* __restrict__ partial, int count, float* __restrict__ out) {
  float s = 0.f;
  for (int i = threadIdx.x; i < count; i += kBlock) s += partial[i];
  s = osp::cuda::blockReduceSum(s);
  if (threadIdx.x == 0) out[0] = s;
}

template <typename T>
__global__ void __launch_bounds__(kBlock) nonFiniteKernel(const T* __restrict__ g, int64_t n, KernelStatus* st) {
  const int64_t stride = int64_t(gridDim.x) * kBlock;
  for (int64_t i = int64_t(blockIdx.x) * kBlock + threadIdx.x; i < n; i += stride)
    if (!isfinite(toFloat(g[i]))) {  // first-wins: with several bad elements, any one is named
      osp::cuda::reportStatus(st, StatusNonFiniteValue, i);
      return;
    }
}

struct StepF {
  // oneMinusBeta1/2 are formed in double on the host: 1 - float(0.999) in f32 is 1.3e-5 off, relatively.
  float beta1, beta2, oneMinusBeta1, oneMinusBeta2, eps, decay, gradScale, stepSize, bc2Sqrt;
};

template <typename G>
__global__ void __launch_bounds__(kBlock) stepKernel(float* __restrict__ p, const G* __restrict__ g, float* __restrict__ m,
                                                     float* __restrict__ v, int64_t n, StepF s,
                                                     const float* __restrict__ sumSq, float maxGradNorm) {
  if (sumSq) {
    // Global-norm clipping from the device total: every thread reads the same scalar (one cached load).
    const float total = *sumSq;
    if (!isfinite(total)) return;  // a non-finite norm skips the update: nothing is written
    if (maxGradNorm > 0.f) s.gradScale *= fminf(1.f, maxGradNorm / (sqrtf(total) + 1e-6f));
  }
  const int64_t stride = int64_t(gridDim.x) * kBlock;
  for (int64_t i = int64_t(blockIdx.x) * kBlock + threadIdx.x; i < n; i += stride) {
    const float gi = toFloat(g[i]) * s.gradScale;
    const float mi = s.beta1 * m[i] + s.oneMinusBeta1 * gi;
    const float vi = s.beta2 * v[i] + s.oneMinusBeta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * s.decay - s.stepSize * mi / (sqrtf(vi) / s.bc2Sqrt + s.eps);
  }
}

}  // namespace

void sumOfSquaresCuda(const void* x, bool isBf16, float* out, int64_t n) {
  auto st = osp::cuda::stream();
  const int64_t blocks = blocksFor(n, 8);
  float* partial = static_cast<float*>(osp::cuda::alloc(sizeof(float) * kMaxBlocks));
  if (isBf16)
    partialSumsKernel<<<unsigned(blocks), kBlock, 0, st>>>(static_cast<const __nv_bfloat16*>(x), partial, n);
  else partialSumsKernel<<<unsigned(blocks), kBlock, 0, st>>>(static_cast<const float*>(x), partial, n);
  finalSumKernel<<<1, kBlock, 0, st>>>(partial, int(blocks), out);
  osp::cuda::free(partial);
}

void findNonFiniteCuda(const void* g, bool isBf16, int64_t n, KernelStatus* status) {
  auto st = osp::cuda::stream();
  if (isBf16) nonFiniteKernel<<<gridFor(n), kBlock, 0, st>>>(static_cast<const __nv_bfloat16*>(g), n, status);
  else nonFiniteKernel<<<gridFor(n), kBlock, 0, st>>>(static_cast<const float*>(g), n, status);
}

void stepCuda(float* p, const void* g, bool gradBf16, float* m, float* v, int64_t n, const StepScalars& s,
              const float* sumSq, float maxGradNorm) {
  const StepF f{float(s.beta1), float(s.beta2), float(1.0 - s.beta1), float(1.0 - s.beta2), float(s.eps), float(s.decay),
                float(s.gradScale), float(s.stepSize), float(s.bc2Sqrt)};
  auto st = osp::cuda::stream();
  if (gradBf16) stepKernel<<<gridFor(n), kBlock, 0, st>>>(p, static_cast<const __nv_bfloat16*>(g), m, v, n, f, sumSq, maxGradNorm);
  else stepKernel<<<gridFor(n), kBlock, 0, st>>>(p, static_cast<const float*>(g), m, v, n, f, sumSq, maxGradNorm);
}

}  // namespace osp::adamw
