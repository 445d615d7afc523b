// Device code shared by the SIMT attention paths: attention.cu's forward (training, causal over a
// packed span, f32 and the head dims the tensor-core path does not take) and kv_cache.cu's
// flash-decoding (over a cache slot, split over the keys for long caches). Both run one 128-thread
// block (4 warps) per (query, head, key range) with the same online softmax (raiseMax, in
// cuda_common.cuh, which the tensor-core kernels of attention_tc.cu use too); only the key range
// and where the keys live differ, so those are the parameters and the arithmetic has one copy.
// Included only by .cu files.
#pragma once
#include "../../core/cuda_common.cuh"

namespace osp::attention_device {

constexpr int kWarps = 4;
constexpr int kBlock = 32 * kWarps;

// a (shared, f32) . b (global row), over one warp; every lane gets the result.
template <typename T>
__device__ __forceinline__ float warpDot(const float* a, const T* b, int64_t Dh, int lane) {
  float s = 0.f;
  for (int64_t d = lane; d < Dh; d += 32) s += a[d] * osp::cuda::toFloat(b[d]);
  return osp::cuda::warpSum(s);
}

// Dynamic shared memory of attendKeys: q[Dh] (pre-scaled), acc[kWarps][Dh], m[kWarps], l[kWarps].
inline size_t attendSharedBytes(int64_t Dh) { return sizeof(float) * size_t(Dh * (1 + kWarps) + 2 * kWarps); }

// The merged softmax state of a query over a key range: max score and sum of exp(score - max)
// (lse = max + log sum); max = -Inf and sum = 0 for an empty range.
struct SoftmaxTotals {
  float max, sum;
};

// One query row against keys first..last (inclusive; first > last is an empty range), whose rows
// are k + (j * Hkv + g) * Dh and v + (j * Hkv + g) * Dh. Warp w takes keys first + w,
// first + w + kWarps, ... with its own online max/sum and accumulator, and the warps are merged in
// order, so the result is deterministic. Writes, for d < Dh, either (out != nullptr) the
// normalised out[d] = sum_j exp(s_j - max) v_j[d] / sum, which needs a non-empty range, or
// (partial != nullptr) the unnormalised sum_j exp(s_j - max) v_j[d] in f32, for a later merge of
// key ranges (flash-decoding). Every thread of the block must call it (it synchronises); sh is the
// dynamic shared memory (attendSharedBytes(Dh)).
template <typename T>
__device__ __forceinline__ SoftmaxTotals attendKeys(const T* __restrict__ q, const T* __restrict__ k,
                                                    const T* __restrict__ v, int64_t Hkv, int64_t g, int64_t first,
                                                    int64_t last, int64_t Dh, float scale, float* sh,
                                                    T* __restrict__ out, float* __restrict__ partial) {
  using osp::cuda::fromFloat;
  using osp::cuda::toFloat;
  float* qs = sh;
  float* acc = sh + Dh;
  float* wm = acc + kWarps * Dh;
  float* wl = wm + kWarps;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (int64_t d = threadIdx.x; d < Dh; d += kBlock) qs[d] = toFloat(q[d]) * scale;
  float* a = acc + warp * Dh;
  for (int64_t d = lane; d < Dh; d += 32) a[d] = 0.f;
  __syncthreads();
  float m = -INFINITY, l = 0.f, shift;
  for (int64_t j = first + warp; j <= last; j += kWarps) {
    const float s = warpDot(qs, k + (j * Hkv + g) * Dh, Dh, lane);
    const float c = osp::cuda::raiseMax(m, s, shift), p = __expf(s - shift);
    l = l * c + p;
    const T* vj = v + (j * Hkv + g) * Dh;
    for (int64_t d = lane; d < Dh; d += 32) a[d] = a[d] * c + p * toFloat(vj[d]);
  }
  if (lane == 0) {
    wm[warp] = m;
    wl[warp] = l;
  }
  __syncthreads();
  SoftmaxTotals t{-INFINITY, 0.f};
  for (int w = 0; w < kWarps; w++) osp::cuda::mergeMaxSum(t.max, t.sum, wm[w], wl[w]);
  float f[kWarps];
  for (int w = 0; w < kWarps; w++) f[w] = wm[w] == -INFINITY ? 0.f : __expf(wm[w] - t.max);
  for (int64_t d = threadIdx.x; d < Dh; d += kBlock) {
    float o = 0.f;
    for (int w = 0; w < kWarps; w++) o += acc[w * Dh + d] * f[w];
    if (out) out[d] = fromFloat<T>(o / t.sum);
    else partial[d] = o;
  }
  return t;
}

}  // namespace osp::attention_device
