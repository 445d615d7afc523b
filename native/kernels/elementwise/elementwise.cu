// CUDA elementwise ops (maths in elementwise.h): grid-stride loops, one read per input and one
// write. sum: one block reduces in a fixed order (used on small vectors: per-pair losses).
#include "../../core/cuda_common.cuh"
#include "elementwise.h"
#include "elementwise_ops.h"

namespace osp::elementwise {

namespace {

using osp::cuda::fromFloat, osp::cuda::gridFor, osp::cuda::kBlock, osp::cuda::toFloat;

// T is float or __nv_bfloat16; the arithmetic is f32 either way.
template <typename T>
__global__ void binaryKernel(int op, const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ o, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(kBlock) + threadIdx.x; i < n; i += int64_t(gridDim.x) * kBlock)
    o[i] = fromFloat<T>(applyBinary(op, toFloat(a[i]), toFloat(b[i])));
}

template <typename T>
__global__ void unaryKernel(int op, const T* __restrict__ x, T* __restrict__ o, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(kBlock) + threadIdx.x; i < n; i += int64_t(gridDim.x) * kBlock)
    o[i] = fromFloat<T>(applyUnary(op, toFloat(x[i])));
}

template <typename T>
__global__ void affineKernel(const T* __restrict__ x, T* __restrict__ o, float s, float t, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(kBlock) + threadIdx.x; i < n; i += int64_t(gridDim.x) * kBlock)
    o[i] = fromFloat<T>(s * toFloat(x[i]) + t);
}

template <typename S, typename D>
__global__ void castKernel(const S* __restrict__ x, D* __restrict__ o, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(kBlock) + threadIdx.x; i < n; i += int64_t(gridDim.x) * kBlock)
    o[i] = fromFloat<D>(toFloat(x[i]));
}

__global__ void __launch_bounds__(1024) sumKernel(const float* __restrict__ x, float* __restrict__ o, int64_t n) {
  float acc = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += x[i];
  acc = osp::cuda::blockReduceSum(acc);
  if (threadIdx.x == 0) *o = acc;
}

}  // namespace

using bf16 = __nv_bfloat16;

void binaryCuda(int op, const void* a, const void* b, void* out, bool isBf16, int64_t n) {
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    binaryKernel<<<gridFor(n), kBlock, 0, osp::cuda::stream()>>>(op, static_cast<const T*>(a), static_cast<const T*>(b),
                                                                 static_cast<T*>(out), n);
  });
}
void unaryCuda(int op, const void* x, void* out, bool isBf16, int64_t n) {
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    unaryKernel<<<gridFor(n), kBlock, 0, osp::cuda::stream()>>>(op, static_cast<const T*>(x), static_cast<T*>(out), n);
  });
}
void affineCuda(const void* x, void* out, bool isBf16, float scale, float shift, int64_t n) {
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    affineKernel<<<gridFor(n), kBlock, 0, osp::cuda::stream()>>>(static_cast<const T*>(x), static_cast<T*>(out), scale, shift, n);
  });
}
void castCuda(const void* src, bool srcBf16, void* dst, bool dstBf16, int64_t n) {
  auto st = osp::cuda::stream();
  if (srcBf16 && dstBf16) castKernel<<<gridFor(n), kBlock, 0, st>>>(static_cast<const bf16*>(src), static_cast<bf16*>(dst), n);
  else if (srcBf16) castKernel<<<gridFor(n), kBlock, 0, st>>>(static_cast<const bf16*>(src), static_cast<float*>(dst), n);
  else if (dstBf16) castKernel<<<gridFor(n), kBlock, 0, st>>>(static_cast<const float*>(src), static_cast<bf16*>(dst), n);
  else castKernel<<<gridFor(n), kBlock, 0, st>>>(static_cast<const float*>(src), static_cast<float*>(dst), n);
}
void sumCuda(const float* x, float* out, int64_t n) { sumKernel<<<1, 1024, 0, osp::cuda::stream()>>>(x, out, n); }

}  // namespace osp::elementwise
