// CUDA token sampling (maths and cost in sampling.h). One block of kBlock threads per row, f32
// arithmetic, no sort: top-k by radix select on order-preserving keys (integer histograms),
// top-p by bisection on the key with fixed-order block sums, the draw by one block scan of
// contiguous per-thread chunks. Every reduction has a fixed order, so the result is deterministic
// and does not depend on the other rows of the batch.
#include <climits>

#include "../../core/cuda_common.cuh"
#include "sampling.h"

namespace osp::sampling {

namespace {

using osp::cuda::kBlock, osp::cuda::toFloat;

constexpr int kWarps = kBlock / 32;
static_assert(kBlock == 256, "the top-k radix select clears one 256-bin histogram entry per thread");
// Register budget: 4 resident blocks per SM caps the kernel at 64 registers. Given only the block
// size, ptxas (CUDA 13) aimed at 40 and spilled the 64-bit indices (4/8 B on sm_86/89, 8/20 B on
// sm_90); at 64 it needs 54-58 and spills nothing. Launch bounds change only register allocation,
// not the arithmetic.
constexpr int kMinBlocksPerSm = 4;

// Order-preserving map of a float to uint32 (-0 is folded into +0 first, so equal values have
// equal keys). -Inf maps to 0x007fffff; every finite value maps above it.
__device__ __forceinline__ uint32_t orderedKey(float f) {
  const uint32_t u = __float_as_uint(f + 0.0f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ int blockSumInt(int v) { return osp::cuda::blockReduceSum(v); }

// Block-wide (max value, lowest index among maxima); every thread gets the result.
__device__ __forceinline__ void blockArgMax(float& m, int64_t& i) {
  __shared__ float sm[kWarps];
  __shared__ int64_t si[kWarps];
  auto merge = [](float& m, int64_t& i, float m2, int64_t i2) {
    if (m2 > m || (m2 == m && i2 < i)) { m = m2; i = i2; }
  };
  for (int o = 16; o > 0; o >>= 1) merge(m, i, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, i, o));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) { sm[warp] = m; si[warp] = i; }
  __syncthreads();
  m = lane < kWarps ? sm[lane] : -INFINITY;
  i = lane < kWarps ? si[lane] : LLONG_MAX;
  for (int o = 16; o > 0; o >>= 1) merge(m, i, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, i, o));
}

__device__ __forceinline__ int64_t blockMinI64(int64_t v, bool wantMax) {
  auto pick = [wantMax](int64_t a, int64_t b) { return wantMax ? (a > b ? a : b) : (a < b ? a : b); };
  return osp::cuda::blockReduce(v, pick, wantMax ? int64_t(LLONG_MIN) : int64_t(LLONG_MAX));
}

// Block-wide exclusive prefix sum in thread order (fixed order: deterministic).
__device__ __forceinline__ float blockExclusiveScan(float v) {
  __shared__ float sh[kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float inc = v;
  for (int o = 1; o < 32; o <<= 1) {
    const float n = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += n;
  }
  __syncthreads();
  if (lane == 31) sh[warp] = inc;
  __syncthreads();
  float before = 0.f;
  for (int w = 0; w < warp; w++) before += sh[w];
  return before + inc - v;
}

template <typename T>
__global__ void __launch_bounds__(kBlock, kMinBlocksPerSm) sampleKernel(const T* __restrict__ logits, const int32_t* __restrict__ streams,
                                                       const int32_t* __restrict__ steps, int64_t V, uint64_t seed,
                                                       float temperature, bool nucleus, float topP, int64_t topK,
                                                       int32_t* __restrict__ tokens, float* __restrict__ logprobs,
                                                       float* __restrict__ modelLogprobs, KernelStatus* st) {
  const int64_t row = blockIdx.x;
  const T* x = logits + row * V;
  const int tid = threadIdx.x;

  // Pass 1: validity, finite count, (max, sum of exp) for the raw log-softmax, argmax.
  float m = -INFINITY, s = 0.f, am = -INFINITY;
  int64_t ai = LLONG_MAX;
  bool bad = false;
  int finite = 0;
  for (int64_t v = tid; v < V; v += kBlock) {
    const float f = toFloat(x[v]);
    bad |= !(f < INFINITY);
    if (f > -INFINITY && f < INFINITY) {
      finite++;
      if (f > am) { am = f; ai = v; }
      if (f > m) { s = s * __expf(m - f) + 1.f; m = f; }
      else s += __expf(f - m);
    }
  }
  bad = __syncthreads_or(bad);
  const int nFinite = blockSumInt(finite);
  osp::cuda::blockReduceMaxSum(m, s);
  blockArgMax(am, ai);
  if (bad || nFinite == 0) {
    if (tid == 0) {
      osp::cuda::reportStatus(st, StatusNonFiniteRow, row);
      tokens[row] = -1;
      logprobs[row] = modelLogprobs[row] = NAN;
    }
    return;
  }
  const float lse = m + logf(s);
  if (temperature == 0.f) {
    if (tid == 0) {
      tokens[row] = static_cast<int32_t>(ai);
      logprobs[row] = 0.f;
      modelLogprobs[row] = toFloat(x[ai]) - lse;
    }
    return;
  }
  auto weight = [&](float f) { return expf((f - m) / temperature); };

  // Top-k: radix select of the k-th largest finite key, 8 bits at a time, MSB first.
  uint32_t cutKey = 0x00800000u;  // keeps every finite value
  if (topK > 0 && topK < nFinite) {
    __shared__ unsigned int hist[256];
    __shared__ uint32_t sPrefix;
    __shared__ int64_t sRemaining;
    uint32_t prefix = 0, mask = 0;
    int64_t remaining = topK;
    for (int shift = 24; shift >= 0; shift -= 8) {
      hist[tid] = 0;  // kBlock == 256 bins
      __syncthreads();
      for (int64_t v = tid; v < V; v += kBlock) {
        const float f = toFloat(x[v]);
        if (f == -INFINITY) continue;
        const uint32_t k = orderedKey(f);
        if ((k & mask) == prefix) atomicAdd(&hist[(k >> shift) & 255u], 1u);
      }
      __syncthreads();
      if (tid == 0) {
        int64_t cum = 0;
        int b = 255;
        for (; b > 0; b--) {
          if (cum + hist[b] >= remaining) break;
          cum += hist[b];
        }
        sPrefix = prefix | (uint32_t(b) << shift);
        sRemaining = remaining - cum;
      }
      __syncthreads();
      prefix = sPrefix;
      remaining = sRemaining;
      mask |= 255u << shift;
    }
    cutKey = prefix;
  }
  // Z over the top-k set (the max is always in it).
  float zk = 0.f;
  for (int64_t v = tid; v < V; v += kBlock) {
    const float f = toFloat(x[v]);
    if (f > -INFINITY && orderedKey(f) >= cutKey) zk += weight(f);
  }
  float z = osp::cuda::blockReduceSum(zk);

  // Top-p: the largest key c with mass{key >= c} >= p Z_k, by bisection. mass(cutKey) = Z_k meets
  // the target and mass(key(max) + 1) = 0 does not; mass is monotone in c, rounding included.
  if (nucleus) {
    const float target = topP * z;
    uint32_t lo = cutKey, hi = orderedKey(m) + 1u;
    float massLo = z;
    while (hi - lo > 1u) {
      const uint32_t mid = lo + (hi - lo) / 2u;
      float part = 0.f;
      for (int64_t v = tid; v < V; v += kBlock) {
        const float f = toFloat(x[v]);
        if (f > -INFINITY && orderedKey(f) >= mid) part += weight(f);
      }
      const float mass = osp::cuda::blockReduceSum(part);
      if (mass >= target) { lo = mid; massLo = mass; }
      else hi = mid;
    }
    cutKey = lo;
    z = massLo;
  }

  // The draw: thread t owns the contiguous chunk [t c, (t + 1) c); an exclusive scan of the chunk
  // sums gives each chunk's starting mass; the first chunk whose end passes u Z is walked serially.
  const float target = static_cast<float>(uniformAt(seed, streams[row], steps[row])) * z;
  const int64_t chunk = (V + kBlock - 1) / kBlock;
  const int64_t c0 = tid * chunk < V ? tid * chunk : V, c1 = c0 + chunk < V ? c0 + chunk : V;
  float local = 0.f;
  int64_t lastPos = -1;
  for (int64_t v = c0; v < c1; v++) {
    const float f = toFloat(x[v]);
    if (f > -INFINITY && orderedKey(f) >= cutKey) {
      const float w = weight(f);
      if (w > 0.f) { local += w; lastPos = v; }
    }
  }
  const float offset = blockExclusiveScan(local);
  const int64_t first = blockMinI64(local > 0.f && offset + local > target ? tid : kBlock, false);
  const int64_t lastAll = blockMinI64(lastPos, true);
  int64_t chosen = -1;
  if (first < kBlock) {
    if (tid == first) {
      float cum = offset;
      for (int64_t v = c0; v < c1 && chosen < 0; v++) {
        const float f = toFloat(x[v]);
        if (f > -INFINITY && orderedKey(f) >= cutKey) {
          const float w = weight(f);
          if (w > 0.f) { cum += w; if (cum > target) chosen = v; }
        }
      }
      if (chosen < 0) chosen = lastPos;  // rounding: the chunk's serial sum fell short
    }
  } else if (tid == 0) {
    chosen = lastAll;  // rounding: u Z at or beyond the scanned total
  }
  if (chosen >= 0) {
    const float f = toFloat(x[chosen]);
    tokens[row] = static_cast<int32_t>(chosen);
    logprobs[row] = (f - m) / temperature - logf(z);
    modelLogprobs[row] = f - lse;
  }
}

}  // namespace

void sampleCuda(const void* logits, bool isBf16, const int32_t* streams, const int32_t* steps, int64_t B, int64_t V,
                const Params& p, int32_t* tokens, float* logprobs, float* modelLogprobs, KernelStatus* status) {
  auto s = osp::cuda::stream();
  const float t = static_cast<float>(p.temperature), topP = static_cast<float>(p.topP);
  const bool nucleus = p.topP < 1;  // decided in double, as on the CPU
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    sampleKernel<T><<<B, kBlock, 0, s>>>(static_cast<const T*>(logits), streams, steps, V, p.seed, t, nucleus, topP, p.topK,
                                         tokens, logprobs, modelLogprobs, status);
  });
}

}  // namespace osp::sampling
