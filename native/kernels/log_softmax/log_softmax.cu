// CUDA log-softmax and gather: the unfused baseline (maths in log_softmax.h). One block per row,
// coalesced element loads: max, then sum of exp, then write y = x - lse, as frameworks do. The
// [N, V] output is what the fused token_logprobs kernel avoids.
#include "../../core/cuda_common.cuh"
#include "log_softmax.h"

namespace osp::log_softmax {

namespace {

using osp::cuda::fromFloat, osp::cuda::kBlock, osp::cuda::toFloat;

template <typename T>
__global__ void __launch_bounds__(kBlock) forwardKernel(const T* __restrict__ x, T* __restrict__ y, int64_t V, KernelStatus* st) {
  const int64_t n = blockIdx.x;
  const T* xr = x + n * V;
  T* yr = y + n * V;
  float m = -INFINITY;
  bool bad = false;
  for (int64_t v = threadIdx.x; v < V; v += kBlock) {
    float f = toFloat(xr[v]);
    m = fmaxf(m, f);
    bad |= !(f < INFINITY);
  }
  bad = __syncthreads_or(bad);
  m = osp::cuda::blockReduceMax(m);
  float s = 0.f;
  for (int64_t v = threadIdx.x; v < V; v += kBlock) s += __expf(toFloat(xr[v]) - m);
  s = osp::cuda::blockReduceSum(s);
  const float lse = m + logf(s);
  if (threadIdx.x == 0 && (bad || !isfinite(m) || !(s > 0.f))) osp::cuda::reportStatus(st, StatusNonFiniteRow, n);
  for (int64_t v = threadIdx.x; v < V; v += kBlock) yr[v] = fromFloat<T>(toFloat(xr[v]) - lse);
}

template <typename T>
__global__ void __launch_bounds__(kBlock) backwardKernel(const T* __restrict__ dy, const T* __restrict__ y, T* __restrict__ dx, int64_t V) {
  const int64_t n = blockIdx.x;
  float s = 0.f;
  for (int64_t v = threadIdx.x; v < V; v += kBlock) s += toFloat(dy[n * V + v]);
  s = osp::cuda::blockReduceSum(s);
  for (int64_t v = threadIdx.x; v < V; v += kBlock)
    dx[n * V + v] = fromFloat<T>(toFloat(dy[n * V + v]) - __expf(toFloat(y[n * V + v])) * s);
}

template <typename T>
__global__ void gatherKernel(const T* __restrict__ y, const int32_t* __restrict__ t, float* __restrict__ out, int64_t N,
                             int64_t V, int32_t ignoreIndex, KernelStatus* st) {
  const int64_t n = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (n >= N) return;
  const int32_t tn = t[n];
  if (tn == ignoreIndex) out[n] = 0.f;
  else if (tn < 0 || tn >= V) {
    out[n] = NAN;
    osp::cuda::reportStatus(st, StatusTargetOutOfRange, n);
  } else out[n] = toFloat(y[n * V + tn]);
}

template <typename T>
__global__ void __launch_bounds__(kBlock) gatherBackwardKernel(const float* __restrict__ g, const int32_t* __restrict__ t,
                                                              T* __restrict__ dy, int64_t V, int32_t ignoreIndex, KernelStatus* st) {
  const int64_t n = blockIdx.x;
  const int32_t tn = t[n];
  const bool valid = tn != ignoreIndex && tn >= 0 && tn < V;
  if (threadIdx.x == 0 && tn != ignoreIndex && !valid) osp::cuda::reportStatus(st, StatusTargetOutOfRange, n);
  const float gn = g[n];
  for (int64_t v = threadIdx.x; v < V; v += kBlock) dy[n * V + v] = fromFloat<T>(valid && v == tn ? gn : 0.f);
}

}  // namespace

void forwardCuda(const void* x, void* y, bool isBf16, int64_t N, int64_t V, KernelStatus* st) {
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    forwardKernel<<<N, kBlock, 0, osp::cuda::stream()>>>(static_cast<const T*>(x), static_cast<T*>(y), V, st);
  });
}

void backwardCuda(const void* dy, const void* y, void* dx, bool isBf16, int64_t N, int64_t V) {
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    backwardKernel<<<N, kBlock, 0, osp::cuda::stream()>>>(static_cast<const T*>(dy), static_cast<const T*>(y),
                                                          static_cast<T*>(dx), V);
  });
}

void gatherCuda(const void* y, bool isBf16, const int32_t* t, float* out, int64_t N, int64_t V, int32_t ignoreIndex,
                KernelStatus* st) {
  const int64_t blocks = osp::cuda::blocksFor(N);
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    gatherKernel<<<blocks, kBlock, 0, osp::cuda::stream()>>>(static_cast<const T*>(y), t, out, N, V, ignoreIndex, st);
  });
}

void gatherBackwardCuda(const float* g, const int32_t* t, void* dy, bool isBf16, int64_t N, int64_t V, int32_t ignoreIndex,
                        KernelStatus* st) {
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    gatherBackwardKernel<<<N, kBlock, 0, osp::cuda::stream()>>>(g, t, static_cast<T*>(dy), V, ignoreIndex, st);
  });
}

}  // namespace osp::log_softmax
