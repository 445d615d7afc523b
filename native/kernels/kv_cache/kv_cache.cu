// CUDA kv cache (maths in kv_cache.h). The write: one 256-thread block per row i copies its
// Hkv * Dh elements, or reports i when its slot or position is out of range. The attention: one
// 128-thread block (4 warps) per (query, head); warp w takes keys w, w + 4, ... up to the query's
// position, reduces each dot product with shuffles, and keeps its own online-softmax state and
// Dh-wide accumulator in shared memory; the warps are merged in order at the end, so results are
// deterministic. f32 arithmetic on f32 or bf16 storage.
#include "../../core/cuda_common.cuh"
#include "../attention/attention_device.cuh"
#include "kv_cache.h"

namespace osp::kv_cache {

namespace {

using osp::attention_device::kBlock;
using osp::cuda::fromFloat;

constexpr int kWriteBlock = 256;

__device__ __forceinline__ bool inRange(int32_t x, int64_t n) { return x >= 0 && x < n; }

template <typename T>
__global__ void __launch_bounds__(kWriteBlock) writeKernel(T* __restrict__ cache, const T* __restrict__ values,
                                                           const int32_t* __restrict__ slots,
                                                           const int32_t* __restrict__ positions, int64_t S, int64_t L,
                                                           int64_t row, KernelStatus* st) {
  const int64_t i = blockIdx.x;
  const int32_t s = slots[i], p = positions[i];
  if (!inRange(s, S) || !inRange(p, L)) {
    if (threadIdx.x == 0) osp::cuda::reportStatus(st, StatusIndexOutOfRange, i);
    return;
  }
  T* dst = cache + (int64_t(s) * L + p) * row;
  const T* src = values + i * row;
  for (int64_t e = threadIdx.x; e < row; e += kWriteBlock) dst[e] = src[e];
}

// Shared memory: attendQuery's (attention_device.cuh).
template <typename T>
__global__ void __launch_bounds__(kBlock) attentionKernel(const T* __restrict__ q, const T* __restrict__ k,
                                                          const T* __restrict__ v, const int32_t* __restrict__ slots,
                                                          const int32_t* __restrict__ positions, T* __restrict__ out,
                                                          int64_t H, int64_t Hkv, int64_t Dh, int64_t S, int64_t L,
                                                          float scale, KernelStatus* st) {
  extern __shared__ float sh[];
  const int64_t n = blockIdx.x, i = n / H, h = n % H, g = h / (H / Hkv);
  const int32_t slot = slots[i], pos = positions[i];
  if (!inRange(slot, S) || !inRange(pos, L)) {  // uniform over the block
    for (int64_t d = threadIdx.x; d < Dh; d += kBlock) out[n * Dh + d] = fromFloat<T>(NAN);
    if (threadIdx.x == 0) osp::cuda::reportStatus(st, StatusIndexOutOfRange, i);
    return;
  }
  // The query's cache slot, keys 0..pos.
  const T* kb = k + int64_t(slot) * L * Hkv * Dh;
  const T* vb = v + int64_t(slot) * L * Hkv * Dh;
  osp::attention_device::attendQuery(q + n * Dh, kb, vb, Hkv, g, 0, pos, Dh, scale, sh, out + n * Dh);
}

template <typename T>
void launchWrite(T* cache, const T* values, const int32_t* slots, const int32_t* positions, int64_t N, int64_t S, int64_t L,
                 int64_t row, KernelStatus* st) {
  writeKernel<T><<<static_cast<unsigned>(N), kWriteBlock, 0, osp::cuda::stream()>>>(cache, values, slots, positions, S, L,
                                                                                     row, st);
}

template <typename T>
void launchAttention(const T* q, const T* k, const T* v, const int32_t* slots, const int32_t* positions, T* out, int64_t N,
                     int64_t H, int64_t Hkv, int64_t Dh, int64_t S, int64_t L, float scale, KernelStatus* st) {
  const size_t shm = osp::attention_device::attendSharedBytes(Dh);
  attentionKernel<T><<<static_cast<unsigned>(N * H), kBlock, shm, osp::cuda::stream()>>>(q, k, v, slots, positions, out, H,
                                                                                          Hkv, Dh, S, L, scale, st);
}

}  // namespace

void writeCuda(void* cache, const void* values, const int32_t* slots, const int32_t* positions, bool isBf16, int64_t N,
               int64_t S, int64_t L, int64_t row, KernelStatus* status) {
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launchWrite(static_cast<T*>(cache), static_cast<const T*>(values), slots, positions, N, S, L, row, status);
  });
}

void attentionCuda(const void* q, const void* k, const void* v, const int32_t* slots, const int32_t* positions, void* out,
                   bool isBf16, int64_t N, int64_t H, int64_t Hkv, int64_t Dh, int64_t S, int64_t L, float scale,
                   KernelStatus* status) {
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launchAttention(static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), slots, positions,
                    static_cast<T*>(out), N, H, Hkv, Dh, S, L, scale, status);
  });
}

}  // namespace osp::kv_cache
