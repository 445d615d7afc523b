// CUDA SwiGLU (maths in swiglu.h): grid-stride loops, f32 arithmetic on f32 or bf16 storage.
#include "../../core/cuda_common.cuh"
#include "swiglu.h"

namespace osp::swiglu_kernels {

namespace {

using osp::cuda::fromFloat, osp::cuda::gridFor, osp::cuda::kBlock, osp::cuda::toFloat;

__device__ __forceinline__ float sigmoidf(float g) { return 1.f / (1.f + expf(-g)); }

template <typename T>
__global__ void forwardKernel(const T* __restrict__ gate, const T* __restrict__ up, T* __restrict__ out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(kBlock) + threadIdx.x; i < n; i += int64_t(gridDim.x) * kBlock) {
    const float x = toFloat(gate[i]);
    out[i] = fromFloat<T>(x * sigmoidf(x) * toFloat(up[i]));
  }
}

template <typename T>
__global__ void backwardKernel(const T* __restrict__ gate, const T* __restrict__ up, const T* __restrict__ g,
                               T* __restrict__ dgate, T* __restrict__ dup, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(kBlock) + threadIdx.x; i < n; i += int64_t(gridDim.x) * kBlock) {
    const float x = toFloat(gate[i]), s = sigmoidf(x), gi = toFloat(g[i]);
    dgate[i] = fromFloat<T>(gi * toFloat(up[i]) * s * (1.f + x * (1.f - s)));
    dup[i] = fromFloat<T>(gi * x * s);
  }
}

}  // namespace

void forwardCuda(const void* gate, const void* up, void* out, bool isBf16, int64_t n) {
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    forwardKernel<T><<<gridFor(n), kBlock, 0, osp::cuda::stream()>>>(static_cast<const T*>(gate), static_cast<const T*>(up),
                                                                    static_cast<T*>(out), n);
  });
}

void backwardCuda(const void* gate, const void* up, const void* g, void* dgate, void* dup, bool isBf16, int64_t n) {
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    backwardKernel<T><<<gridFor(n), kBlock, 0, osp::cuda::stream()>>>(static_cast<const T*>(gate), static_cast<const T*>(up),
                                                                     static_cast<const T*>(g), static_cast<T*>(dgate),
                                                                     static_cast<T*>(dup), n);
  });
}

}  // namespace osp::swiglu_kernels
