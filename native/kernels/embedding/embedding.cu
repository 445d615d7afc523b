// CUDA embedding (maths in embedding.h). Forward: one block per token copies its row. Backward:
// one block per (table row v, 256 columns); each thread scans the ids in order (chunks staged in
// shared memory) and sums its column of dOut over the tokens with ids[t] == v in f32, then writes
// once. No atomics: the result is the same on every run.
#include "../../core/cuda_common.cuh"
#include "embedding.h"

namespace osp::embedding_kernels {

namespace {

using osp::cuda::fromFloat, osp::cuda::kBlock, osp::cuda::toFloat;

template <typename T>
__global__ void __launch_bounds__(kBlock) forwardKernel(const T* __restrict__ table, const int32_t* __restrict__ ids,
                                                        T* __restrict__ out, int64_t V, int64_t D, KernelStatus* st) {
  const int64_t t = blockIdx.x;
  const int32_t id = ids[t];
  T* o = out + t * D;
  if (id < 0 || id >= V) {
    for (int64_t j = threadIdx.x; j < D; j += kBlock) o[j] = fromFloat<T>(NAN);
    if (threadIdx.x == 0) osp::cuda::reportStatus(st, StatusIndexOutOfRange, t);
    return;
  }
  const T* r = table + int64_t(id) * D;
  for (int64_t j = threadIdx.x; j < D; j += kBlock) o[j] = r[j];
}

__global__ void checkIdsKernel(const int32_t* __restrict__ ids, int64_t T_, int64_t V, KernelStatus* st) {
  for (int64_t t = blockIdx.x * int64_t(kBlock) + threadIdx.x; t < T_; t += int64_t(gridDim.x) * kBlock)
    if (ids[t] < 0 || ids[t] >= V) osp::cuda::reportStatus(st, StatusIndexOutOfRange, t);
}

template <typename T>
__global__ void __launch_bounds__(kBlock) backwardKernel(const T* __restrict__ g, const int32_t* __restrict__ ids,
                                                         T* __restrict__ dtable, int64_t T_, int64_t D) {
  __shared__ int32_t sid[kBlock];
  const int64_t v = blockIdx.x;
  const int64_t j = int64_t(blockIdx.y) * kBlock + threadIdx.x;
  float acc = 0.f;
  for (int64_t t0 = 0; t0 < T_; t0 += kBlock) {
    const int64_t n = T_ - t0 < kBlock ? T_ - t0 : kBlock;
    __syncthreads();
    if (threadIdx.x < n) sid[threadIdx.x] = ids[t0 + threadIdx.x];
    __syncthreads();
    if (j < D)
      for (int64_t k = 0; k < n; k++)
        if (sid[k] == v) acc += toFloat(g[(t0 + k) * D + j]);
  }
  if (j < D) dtable[v * D + j] = fromFloat<T>(acc);
}

template <typename T>
void launchBackward(const T* g, const int32_t* ids, T* d, int64_t T_, int64_t V, int64_t D) {
  if (V == 0 || D == 0) return;
  dim3 grid(static_cast<unsigned>(V), static_cast<unsigned>(osp::cuda::blocksFor(D)));
  backwardKernel<T><<<grid, kBlock, 0, osp::cuda::stream()>>>(g, ids, d, T_, D);
}

}  // namespace

void forwardCuda(const void* table, const int32_t* ids, void* out, bool isBf16, int64_t T_, int64_t V, int64_t D,
                 KernelStatus* status) {
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    forwardKernel<T><<<static_cast<unsigned>(T_), kBlock, 0, osp::cuda::stream()>>>(static_cast<const T*>(table), ids,
                                                                                   static_cast<T*>(out), V, D, status);
  });
}

void backwardCuda(const void* g, const int32_t* ids, void* dtable, bool isBf16, int64_t T_, int64_t V, int64_t D,
                  KernelStatus* status) {
  if (T_ > 0) {
    checkIdsKernel<<<osp::cuda::gridFor(T_), kBlock, 0, osp::cuda::stream()>>>(ids, T_, V, status);
  }
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launchBackward(static_cast<const T*>(g), ids, static_cast<T*>(dtable), T_, V, D);
  });
}

}  // namespace osp::embedding_kernels
