// Device code shared by the two attention forwards: attention.cu (training, causal over a packed
// span) and kv_cache.cu (decoding, over a cache slot). Both run one 128-thread block (4 warps) per
// (query, head) with the same online softmax; only the key range and where the keys live differ,
// so those are the parameters and the arithmetic has one copy. Included only by .cu files.
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

// Dynamic shared memory of attendQuery: q[Dh] (pre-scaled), acc[kWarps][Dh], m[kWarps], l[kWarps].
inline size_t attendSharedBytes(int64_t Dh) { return sizeof(float) * size_t(Dh * (1 + kWarps) + 2 * kWarps); }

// The merged softmax state of a query: max score and sum of exp(score - max) (lse = max + log sum).
struct SoftmaxTotals {
  float max, sum;
};

// One query row against keys first..last (inclusive, first <= last), whose rows are
// k + (j * Hkv + g) * Dh and v + (j * Hkv + g) * Dh: out = softmax(scale * q . k_j) . v_j. Warp w
// takes keys first + w, first + w + kWarps, ... with its own online max/sum and accumulator, and
// the warps are merged in order, so the result is deterministic. Every thread of the block must
// call it (it synchronises); sh is the dynamic shared memory (attendSharedBytes(Dh)).
template <typename T>
__device__ __forceinline__ SoftmaxTotals attendQuery(const T* __restrict__ q, const T* __restrict__ k,
                                                     const T* __restrict__ v, int64_t Hkv, int64_t g, int64_t first,
                                                     int64_t last, int64_t Dh, float scale, float* sh,
                                                     T* __restrict__ out) {
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
  float m = -INFINITY, l = 0.f;
  for (int64_t j = first + warp; j <= last; j += kWarps) {
    const float s = warpDot(qs, k + (j * Hkv + g) * Dh, Dh, lane);
    const float mn = fmaxf(m, s), c = expf(m - mn), p = expf(s - mn);
    l = l * c + p;
    const T* vj = v + (j * Hkv + g) * Dh;
    for (int64_t d = lane; d < Dh; d += 32) a[d] = a[d] * c + p * toFloat(vj[d]);
    m = mn;
  }
  if (lane == 0) {
    wm[warp] = m;
    wl[warp] = l;
  }
  __syncthreads();
  float M = wm[0];  // warp 0 always sees key first <= last: M is finite
  for (int w = 1; w < kWarps; w++) M = fmaxf(M, wm[w]);
  float L = 0.f, f[kWarps];
  for (int w = 0; w < kWarps; w++) {
    f[w] = wm[w] == -INFINITY ? 0.f : expf(wm[w] - M);
    L += wl[w] * f[w];
  }
  for (int64_t d = threadIdx.x; d < Dh; d += kBlock) {
    float o = 0.f;
    for (int w = 0; w < kWarps; w++) o += acc[w * Dh + d] * f[w];
    out[d] = fromFloat<T>(o / L);
  }
  return {M, L};
}

}  // namespace osp::attention_device
