// CUDA elementwise ops (maths in elementwise.h): grid-stride loops, one read per input and one
// write. sum: one block reduces in a fixed order (used on small vectors: per-pair losses).
#include "../../core/cuda_common.cuh"
#include "elementwise.h"
#include "elementwise_ops.h"

namespace osp::elementwise {

namespace {

constexpr int kBlock = 256;

unsigned gridFor(int64_t n) {
  int64_t b = (n + kBlock - 1) / kBlock;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 ? 65535 : b));
}

__global__ void binaryKernel(int op, const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ o, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(kBlock) + threadIdx.x; i < n; i += int64_t(gridDim.x) * kBlock)
    o[i] = applyBinary(op, a[i], b[i]);
}

__global__ void unaryKernel(int op, const float* __restrict__ x, float* __restrict__ o, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(kBlock) + threadIdx.x; i < n; i += int64_t(gridDim.x) * kBlock)
    o[i] = applyUnary(op, x[i]);
}

__global__ void affineKernel(const float* __restrict__ x, float* __restrict__ o, float s, float t, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(kBlock) + threadIdx.x; i < n; i += int64_t(gridDim.x) * kBlock) o[i] = s * x[i] + t;
}

__global__ void __launch_bounds__(1024) sumKernel(const float* __restrict__ x, float* __restrict__ o, int64_t n) {
  float acc = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += x[i];
  acc = osp::cuda::blockReduceSum(acc);
  if (threadIdx.x == 0) *o = acc;
}

}  // namespace

void binaryCuda(int op, const float* a, const float* b, float* out, int64_t n) {
  binaryKernel<<<gridFor(n), kBlock, 0, osp::cuda::stream()>>>(op, a, b, out, n);
}
void unaryCuda(int op, const float* x, float* out, int64_t n) {
  unaryKernel<<<gridFor(n), kBlock, 0, osp::cuda::stream()>>>(op, x, out, n);
}
void affineCuda(const float* x, float* out, float scale, float shift, int64_t n) {
  affineKernel<<<gridFor(n), kBlock, 0, osp::cuda::stream()>>>(x, out, scale, shift, n);
}
void sumCuda(const float* x, float* out, int64_t n) { sumKernel<<<1, 1024, 0, osp::cuda::stream()>>>(x, out, n); }

}  // namespace osp::elementwise
