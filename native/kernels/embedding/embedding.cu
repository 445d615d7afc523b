// CUDA embedding (maths in embedding.h). Forward: one block per token copies its row. Backward in
// O(T log V + T D) instead of scanning every id for every table row (O(V T)): the token positions
// are sorted by id once (CUB's stable radix sort: equal ids keep token order), then one block per
// sorted position that starts a run of equal ids sums those tokens' rows of dOut, column by column in
// f32 and in token order, and writes its table row once; rows no token uses keep the caller's zeros.
// No atomics: the result is the same on every run.
#include <cub/device/device_radix_sort.cuh>

#include "../../core/cuda_backend.h"
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

__global__ void iotaKernel(int32_t* __restrict__ out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(kBlock) + threadIdx.x; i < n; i += int64_t(gridDim.x) * kBlock) out[i] = int32_t(i);
}

// Block i: if sorted position i starts a run of equal ids (a valid one), sum the run's rows of g.
template <typename T>
__global__ void __launch_bounds__(kBlock) runSumKernel(const T* __restrict__ g, const int32_t* __restrict__ sortedIds,
                                                       const int32_t* __restrict__ sortedPos, T* __restrict__ dtable,
                                                       int64_t T_, int64_t V, int64_t D) {
  const int64_t i = blockIdx.x;
  const int32_t id = sortedIds[i];
  if ((i > 0 && sortedIds[i - 1] == id) || id < 0 || id >= V) return;
  int64_t end = i + 1;
  while (end < T_ && sortedIds[end] == id) end++;
  for (int64_t j = threadIdx.x; j < D; j += kBlock) {
    float acc = 0.f;
    for (int64_t k = i; k < end; k++) acc += toFloat(g[int64_t(sortedPos[k]) * D + j]);
    dtable[int64_t(id) * D + j] = fromFloat<T>(acc);
  }
}

// Scratch of the backward: sorted ids, positions and sorted positions (T each), then CUB's storage.
struct SortScratch {
  int32_t *sortedIds, *pos, *sortedPos;
  void* temp;
  size_t tempBytes;
  void* base;
};

SortScratch sortScratch(int64_t T_) {
  SortScratch s{};
  cub::DeviceRadixSort::SortPairs(nullptr, s.tempBytes, static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr),
                                  static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), int(T_), 0, 32,
                                  static_cast<cudaStream_t>(osp::cuda::currentStream()));
  const size_t ints = 3 * size_t(T_) * sizeof(int32_t);
  const size_t aligned = (ints + 255) / 256 * 256;
  s.base = osp::cuda::alloc(aligned + s.tempBytes);
  s.sortedIds = static_cast<int32_t*>(s.base);
  s.pos = s.sortedIds + T_;
  s.sortedPos = s.pos + T_;
  s.temp = static_cast<char*>(s.base) + aligned;
  return s;
}

template <typename T>
void launchBackward(const T* g, const int32_t* ids, T* d, int64_t T_, int64_t V, int64_t D) {
  if (V == 0 || D == 0 || T_ == 0) return;  // d is zeroed by the caller (embedding.cpp)
  // All 32 key bits (CUB orders signed ids correctly): an id outside [0, V) must not alias a valid
  // one; checkIdsKernel reports it and the run kernel skips it.
  SortScratch s = sortScratch(T_);
  auto stream = static_cast<cudaStream_t>(osp::cuda::currentStream());
  iotaKernel<<<osp::cuda::gridFor(T_), kBlock, 0, stream>>>(s.pos, T_);
  cub::DeviceRadixSort::SortPairs(s.temp, s.tempBytes, ids, s.sortedIds, s.pos, s.sortedPos, int(T_), 0, 32, stream);
  runSumKernel<T><<<static_cast<unsigned>(T_), kBlock, 0, stream>>>(g, s.sortedIds, s.sortedPos, d, T_, V, D);
  osp::cuda::free(s.base);  // stream-ordered: the caching allocator hands it out again only to later work
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
