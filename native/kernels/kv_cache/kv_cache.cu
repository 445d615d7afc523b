// CUDA kv cache (maths in kv_cache.h). The write: one 256-thread block per row i copies its
// Hkv * Dh elements, or reports i when its slot or position is out of range. The attention
// (flash-decoding): attention_device.cuh's attendKeys, the SIMT routine of attention.cu's forward,
// run by one 128-thread block per (query, head, key split); a long cache is split over its keys
// (decodeSplits) and combineKernel merges the splits' partial states in split order, so results are
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

// Shared memory: attendKeys' (attention_device.cuh). Block (n, split) of a (query, head) n attends
// to the keys [split * chunk, min(pos, (split + 1) * chunk - 1)] of the query's slot. With one split
// it writes the normalised row out[n]; with more it writes its partial state (max, sum) to
// totals[n * splits + split] and the unnormalised accumulator to partial[(n * splits + split) * Dh]
// (an empty range gives -Inf, 0 and zeros), for combineKernel.
template <typename T>
__global__ void __launch_bounds__(kBlock) attentionKernel(const T* __restrict__ q, const T* __restrict__ k,
                                                          const T* __restrict__ v, const int32_t* __restrict__ slots,
                                                          const int32_t* __restrict__ positions, T* __restrict__ out,
                                                          float2* __restrict__ totals, float* __restrict__ partial,
                                                          int64_t H, int64_t Hkv, int64_t Dh, int64_t S, int64_t L,
                                                          int64_t chunk, float scale, KernelStatus* st) {
  extern __shared__ float sh[];
  const int64_t n = blockIdx.x, i = n / H, h = n % H, g = h / (H / Hkv);
  const int64_t splits = gridDim.y, split = blockIdx.y, part = n * splits + split;
  const int32_t slot = slots[i], pos = positions[i];
  if (!inRange(slot, S) || !inRange(pos, L)) {  // uniform over the block
    if (splits == 1)
      for (int64_t d = threadIdx.x; d < Dh; d += kBlock) out[n * Dh + d] = fromFloat<T>(NAN);
    if (threadIdx.x == 0 && split == 0) osp::cuda::reportStatus(st, StatusIndexOutOfRange, i);
    return;  // combineKernel writes the NaN row when split
  }
  // The query's cache slot, keys first..last (causal by position).
  const T* kb = k + int64_t(slot) * L * Hkv * Dh;
  const T* vb = v + int64_t(slot) * L * Hkv * Dh;
  const int64_t first = split * chunk, last = min(int64_t(pos), first + chunk - 1);
  if (splits == 1) {
    osp::attention_device::attendKeys(q + n * Dh, kb, vb, Hkv, g, first, last, Dh, scale, sh, out + n * Dh,
                                      static_cast<float*>(nullptr));
    return;
  }
  const osp::attention_device::SoftmaxTotals t = osp::attention_device::attendKeys(
      q + n * Dh, kb, vb, Hkv, g, first, last, Dh, scale, sh, static_cast<T*>(nullptr), partial + part * Dh);
  if (threadIdx.x == 0) totals[part] = make_float2(t.max, t.sum);
}

// Flash-decoding's combine: one block per (query, head) n merges its splits' partial states in
// split order (mergeMaxSum), so the result is deterministic, and writes the normalised row.
template <typename T>
__global__ void __launch_bounds__(kBlock) combineKernel(const float2* __restrict__ totals, const float* __restrict__ partial,
                                                        const int32_t* __restrict__ slots,
                                                        const int32_t* __restrict__ positions, T* __restrict__ out,
                                                        int64_t H, int64_t Dh, int64_t S, int64_t L, int64_t splits) {
  const int64_t n = blockIdx.x, i = n / H;
  if (!inRange(slots[i], S) || !inRange(positions[i], L)) {  // reported by attentionKernel
    for (int64_t d = threadIdx.x; d < Dh; d += kBlock) out[n * Dh + d] = fromFloat<T>(NAN);
    return;
  }
  float m = -INFINITY, l = 0.f;
  for (int64_t s = 0; s < splits; s++) osp::cuda::mergeMaxSum(m, l, totals[n * splits + s].x, totals[n * splits + s].y);
  for (int64_t d = threadIdx.x; d < Dh; d += kBlock) {
    float o = 0.f;
    for (int64_t s = 0; s < splits; s++) {
      const float ms = totals[n * splits + s].x;  // -Inf: an empty split (keys past the position)
      if (ms != -INFINITY) o += partial[(n * splits + s) * Dh + d] * __expf(ms - m);
    }
    out[n * Dh + d] = fromFloat<T>(o / l);
  }
}

// The launches (not compiled by test/native/kvCacheEmulation.cpp, which runs the kernels on the host).
#ifndef OSP_KV_CACHE_EMULATION
template <typename T>
void launchWrite(T* cache, const T* values, const int32_t* slots, const int32_t* positions, int64_t N, int64_t S, int64_t L,
                 int64_t row, KernelStatus* st) {
  writeKernel<T><<<static_cast<unsigned>(N), kWriteBlock, 0, osp::cuda::stream()>>>(cache, values, slots, positions, S, L,
                                                                                     row, st);
}

template <typename T>
void launchAttention(const T* q, const T* k, const T* v, const int32_t* slots, const int32_t* positions, T* out,
                     float* scratch, int64_t N, int64_t H, int64_t Hkv, int64_t Dh, int64_t S, int64_t L, float scale,
                     KernelStatus* st) {
  const size_t shm = osp::attention_device::attendSharedBytes(Dh);
  const int64_t splits = decodeSplits(N, H, L), chunk = (L + splits - 1) / splits, rows = N * H;
  auto* totals = reinterpret_cast<float2*>(scratch);
  float* partial = scratch + 2 * rows * splits;
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(splits));
  attentionKernel<T><<<grid, kBlock, shm, osp::cuda::stream()>>>(q, k, v, slots, positions, out, totals, partial, H, Hkv,
                                                                  Dh, S, L, chunk, scale, st);
  if (splits > 1)
    combineKernel<T><<<static_cast<unsigned>(rows), kBlock, 0, osp::cuda::stream()>>>(totals, partial, slots, positions,
                                                                                      out, H, Dh, S, L, splits);
}

#endif  // OSP_KV_CACHE_EMULATION

}  // namespace

#ifndef OSP_KV_CACHE_EMULATION
void writeCuda(void* cache, const void* values, const int32_t* slots, const int32_t* positions, bool isBf16, int64_t N,
               int64_t S, int64_t L, int64_t row, KernelStatus* status) {
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launchWrite(static_cast<T*>(cache), static_cast<const T*>(values), slots, positions, N, S, L, row, status);
  });
}

void attentionCuda(const void* q, const void* k, const void* v, const int32_t* slots, const int32_t* positions, void* out,
                   float* scratch, bool isBf16, int64_t N, int64_t H, int64_t Hkv, int64_t Dh, int64_t S, int64_t L, float scale,
                   KernelStatus* status) {
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launchAttention(static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), slots, positions,
                    static_cast<T*>(out), scratch, N, H, Hkv, Dh, S, L, scale, status);
  });
}

#endif  // OSP_KV_CACHE_EMULATION

}  // namespace osp::kv_cache
