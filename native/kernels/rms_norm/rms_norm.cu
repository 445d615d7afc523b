// CUDA RMS norm (maths in rms_norm.h): one 256-thread block per row, f32 arithmetic on f32 or
// bf16 storage, fixed-order block reductions; dw by one thread per column walking rows in order.
#include "../../core/cuda_common.cuh"
#include "rms_norm.h"

namespace osp::rms_norm {

namespace {

using osp::cuda::fromFloat, osp::cuda::kBlock, osp::cuda::toFloat;

template <typename T>
__device__ float rowRstd(const T* x, int64_t D, float eps) {
  float ss = 0.f;
  for (int64_t j = threadIdx.x; j < D; j += kBlock) {
    const float v = toFloat(x[j]);
    ss += v * v;
  }
  ss = osp::cuda::blockReduceSum(ss);
  return rsqrtf(ss / float(D) + eps);
}

template <typename T>
__global__ void __launch_bounds__(kBlock) forwardKernel(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y,
                                                        int64_t D, float eps) {
  const T* xr = x + int64_t(blockIdx.x) * D;
  T* yr = y + int64_t(blockIdx.x) * D;
  const float r = rowRstd(xr, D, eps);
  for (int64_t j = threadIdx.x; j < D; j += kBlock) yr[j] = fromFloat<T>(toFloat(xr[j]) * r * toFloat(w[j]));
}

template <typename T>
__global__ void __launch_bounds__(kBlock) backwardRowsKernel(const T* __restrict__ x, const T* __restrict__ w,
                                                             const T* __restrict__ g, T* __restrict__ dx,
                                                             float* __restrict__ rstd, int64_t D, float eps) {
  const int64_t t = blockIdx.x;
  const T* xr = x + t * D;
  const T* gr = g + t * D;
  T* dr = dx + t * D;
  const float r = rowRstd(xr, D, eps);
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < D; j += kBlock) s += toFloat(gr[j]) * toFloat(w[j]) * toFloat(xr[j]);
  s = osp::cuda::blockReduceSum(s);
  const float c = r * r * r * s / float(D);
  for (int64_t j = threadIdx.x; j < D; j += kBlock)
    dr[j] = fromFloat<T>(r * toFloat(gr[j]) * toFloat(w[j]) - toFloat(xr[j]) * c);
  if (threadIdx.x == 0) rstd[t] = r;
}

template <typename T>
__global__ void __launch_bounds__(kBlock) weightGradKernel(const T* __restrict__ x, const T* __restrict__ g,
                                                           const float* __restrict__ rstd, T* __restrict__ dw, int64_t T_,
                                                           int64_t D) {
  const int64_t j = int64_t(blockIdx.x) * kBlock + threadIdx.x;
  if (j >= D) return;
  float acc = 0.f;
  for (int64_t t = 0; t < T_; t++) acc += toFloat(g[t * D + j]) * toFloat(x[t * D + j]) * rstd[t];
  dw[j] = fromFloat<T>(acc);
}

template <typename T>
void launchForward(const T* x, const T* w, T* y, int64_t T_, int64_t D, float eps) {
  forwardKernel<T><<<static_cast<unsigned>(T_), kBlock, 0, osp::cuda::stream()>>>(x, w, y, D, eps);
}

template <typename T>
void launchBackward(const T* x, const T* w, const T* g, T* dx, T* dw, float* rstd, int64_t T_, int64_t D, float eps) {
  auto s = osp::cuda::stream();
  backwardRowsKernel<T><<<static_cast<unsigned>(T_), kBlock, 0, s>>>(x, w, g, dx, rstd, D, eps);
  weightGradKernel<T><<<static_cast<unsigned>(osp::cuda::blocksFor(D)), kBlock, 0, s>>>(x, g, rstd, dw, T_, D);
}

}  // namespace

void forwardCuda(const void* x, const void* w, void* y, bool isBf16, int64_t T_, int64_t D, float eps) {
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launchForward(static_cast<const T*>(x), static_cast<const T*>(w), static_cast<T*>(y), T_, D, eps);
  });
}

void backwardCuda(const void* x, const void* w, const void* g, void* dx, void* dw, float* rstd, bool isBf16, int64_t T_,
                  int64_t D, float eps) {
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launchBackward(static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(g), static_cast<T*>(dx),
                   static_cast<T*>(dw), rstd, T_, D, eps);
  });
}

}  // namespace osp::rms_norm
