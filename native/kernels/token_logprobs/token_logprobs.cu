// CUDA token log-probs (maths in token_logprobs.h). One block per row; each thread walks the row
// with 16-byte loads (4 f32 or 8 bf16 values) keeping an online (max, sum-of-exp) pair, merged
// across the block at the end. Forward: one read of the row, no [N, V] intermediate, and on request
// the row's logsumexp (one float). Backward given that logsumexp: one read and one write per
// element, no barrier (each thread rewrites the 16 bytes it read, so in place is safe). Backward
// without it: the logsumexp pass first, then a second read of the row to write it. That second read
// is not an L2 hit at a real vocabulary: a full SM of blocks holds 8 rows in flight, 8 x 128k x 2 B
// = 2 MiB of bf16 logits per SM, about 260 MiB over 132 SMs against a 50 MiB L2, so it comes
// from memory (3 row transfers instead of 2).
// Rows are independent, so the result does not depend on how many rows are launched together.
#include "../../core/cuda_common.cuh"
#include "token_logprobs.h"

namespace osp::token_logprobs {

namespace {

using osp::cuda::kBlock, osp::cuda::toFloat;

template <typename T> struct Pack;  // 16 bytes of T unpacked to floats
template <> struct Pack<float> {
  static constexpr int E = 4;
  __device__ static void unpack(const uint4& r, float* f) {
    f[0] = __uint_as_float(r.x); f[1] = __uint_as_float(r.y); f[2] = __uint_as_float(r.z); f[3] = __uint_as_float(r.w);
  }
  __device__ static uint4 pack(const float* f) {
    return make_uint4(__float_as_uint(f[0]), __float_as_uint(f[1]), __float_as_uint(f[2]), __float_as_uint(f[3]));
  }
};
template <> struct Pack<__nv_bfloat16> {
  static constexpr int E = 8;
  __device__ static void unpack(const uint4& r, float* f) {
    const uint32_t w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
      f[2 * i] = __uint_as_float(w[i] << 16);
      f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
  }
  __device__ static uint4 pack(const float* f) {
    uint32_t w[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
      __nv_bfloat162 h = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
      w[i] = *reinterpret_cast<uint32_t*>(&h);
    }
    return make_uint4(w[0], w[1], w[2], w[3]);
  }
};

// Fold E values into the thread's online state. `bad` records NaN or +Inf.
template <int E>
__device__ __forceinline__ void foldValues(const float* f, float& m, float& s, bool& bad) {
  float lm = f[0];
#pragma unroll
  for (int j = 0; j < E; j++) {
    lm = fmaxf(lm, f[j]);
    bad |= !(f[j] < INFINITY);
  }
  if (lm > m) {
    s = (m == -INFINITY) ? 0.f : s * __expf(m - lm);
    m = lm;
  }
  if (m != -INFINITY) {
#pragma unroll
    for (int j = 0; j < E; j++) s += __expf(f[j] - m);
  }
}

// Row statistics: after the call every thread holds the row's logsumexp; returns false for a bad row.
template <typename T, bool VEC>
__device__ bool rowLogSumExp(const T* x, int64_t V, float& lse) {
  float m = -INFINITY, s = 0.f;
  bool bad = false;
  if constexpr (VEC) {
    constexpr int E = Pack<T>::E;
    const uint4* xv = reinterpret_cast<const uint4*>(x);
    const int64_t nv = V / E;
    int64_t i = threadIdx.x;
    for (; i + kBlock < nv; i += 2 * kBlock) {  // two loads in flight per thread
      uint4 r0 = xv[i], r1 = xv[i + kBlock];
      float f[E];
      Pack<T>::unpack(r0, f);
      foldValues<E>(f, m, s, bad);
      Pack<T>::unpack(r1, f);
      foldValues<E>(f, m, s, bad);
    }
    if (i < nv) {
      float f[E];
      Pack<T>::unpack(xv[i], f);
      foldValues<E>(f, m, s, bad);
    }
  } else {
    for (int64_t v = threadIdx.x; v < V; v += kBlock) {
      float f = toFloat(x[v]);
      foldValues<1>(&f, m, s, bad);
    }
  }
  bad = __syncthreads_or(bad);
  osp::cuda::blockReduceMaxSum(m, s);
  lse = m + __logf(s);
  return !bad && isfinite(m) && s > 0.f;
}

// lseOut: null, or [N] for the row logsumexp (0 on ignored rows, NaN on a bad target).
template <typename T, bool VEC>
__global__ void __launch_bounds__(kBlock) forwardKernel(const T* __restrict__ logits, const int32_t* __restrict__ targets,
                                                        float* __restrict__ out, float* __restrict__ lseOut, int64_t V,
                                                        int32_t ignoreIndex, KernelStatus* st) {
  const int64_t n = blockIdx.x;
  const int32_t t = targets[n];
  if (t == ignoreIndex) {
    if (threadIdx.x == 0) {
      out[n] = 0.f;
      if (lseOut) lseOut[n] = 0.f;
    }
    return;
  }
  if (t < 0 || t >= V) {
    if (threadIdx.x == 0) {
      out[n] = NAN;
      if (lseOut) lseOut[n] = NAN;
      osp::cuda::reportStatus(st, StatusTargetOutOfRange, n);
    }
    return;
  }
  const T* x = logits + n * V;
  float lse;
  const bool ok = rowLogSumExp<T, VEC>(x, V, lse);
  if (threadIdx.x == 0) {
    if (!ok) osp::cuda::reportStatus(st, StatusNonFiniteRow, n);
    out[n] = toFloat(x[t]) - lse;
    if (lseOut) lseOut[n] = lse;
  }
}

// d = -gn exp(f - lse) for the values f at columns v0, v0 + 1, ...; + gn at the target column
// (added after the product, as the CPU's d[t] += g). Clears ok on NaN or +Inf.
template <int E>
__device__ __forceinline__ void backwardValues(float* f, int64_t v0, int32_t t, float lse, float gn, bool& ok) {
  const int64_t tj = t - v0;
#pragma unroll
  for (int j = 0; j < E; j++) {
    ok &= f[j] < INFINITY;
    float r = -gn * __expf(f[j] - lse);
    if (j == tj) r += gn;
    f[j] = r;
  }
}

// A backward row with no gradient to form: an ignored target gives zeros, a target outside [0, V)
// NaN and a status report. True when the row was one of those (its block then returns).
template <typename T>
__device__ __forceinline__ bool skippedRow(int32_t t, int32_t ignoreIndex, int64_t V, int64_t n, T* d, KernelStatus* st) {
  const bool ignored = t == ignoreIndex;
  const bool outOfRange = !ignored && (t < 0 || t >= V);
  if (!ignored && !outOfRange) return false;
  const T fill = osp::cuda::fromFloat<T>(ignored ? 0.f : NAN);
  for (int64_t v = threadIdx.x; v < V; v += kBlock) d[v] = fill;
  if (outOfRange && threadIdx.x == 0) osp::cuda::reportStatus(st, StatusTargetOutOfRange, n);
  return true;
}

// The backward given the forward's logsumexp: one read and one write of each element. Each thread
// reads its 16 bytes before writing them, and no thread reads another's, so logits may alias
// dlogits (in place) without a barrier.
template <typename T, bool VEC>
__global__ void __launch_bounds__(kBlock) backwardGivenLseKernel(const T* logits, const int32_t* __restrict__ targets,
                                                                 const float* __restrict__ g,
                                                                 const float* __restrict__ lseIn, T* dlogits, int64_t V,
                                                                 int32_t ignoreIndex, KernelStatus* st) {
  const int64_t n = blockIdx.x;
  const int32_t t = targets[n];
  const T* x = logits + n * V;
  T* d = dlogits + n * V;
  if (skippedRow(t, ignoreIndex, V, n, d, st)) return;
  const float lse = lseIn[n], gn = g[n];
  if (!isfinite(lse) && threadIdx.x == 0) osp::cuda::reportStatus(st, StatusNonFiniteValue, n);
  bool ok = true;
  if constexpr (VEC) {
    constexpr int E = Pack<T>::E;
    const uint4* xv = reinterpret_cast<const uint4*>(x);
    uint4* dv = reinterpret_cast<uint4*>(d);
    const int64_t nv = V / E;
    int64_t i = threadIdx.x;
    for (; i + kBlock < nv; i += 2 * kBlock) {  // two loads in flight per thread, both before either store
      const uint4 r0 = xv[i], r1 = xv[i + kBlock];
      float f[E];
      Pack<T>::unpack(r0, f);
      backwardValues<E>(f, i * E, t, lse, gn, ok);
      dv[i] = Pack<T>::pack(f);
      Pack<T>::unpack(r1, f);
      backwardValues<E>(f, (i + kBlock) * E, t, lse, gn, ok);
      dv[i + kBlock] = Pack<T>::pack(f);
    }
    if (i < nv) {
      float f[E];
      Pack<T>::unpack(xv[i], f);
      backwardValues<E>(f, i * E, t, lse, gn, ok);
      dv[i] = Pack<T>::pack(f);
    }
  } else {
    for (int64_t v = threadIdx.x; v < V; v += kBlock) {
      float f = toFloat(x[v]);
      backwardValues<1>(&f, v, t, lse, gn, ok);
      d[v] = osp::cuda::fromFloat<T>(f);
    }
  }
  if (!ok) osp::cuda::reportStatus(st, StatusNonFiniteRow, n);
}

template <typename T, bool VEC>
__global__ void __launch_bounds__(kBlock) backwardKernel(const T* logits, const int32_t* __restrict__ targets,
                                                         const float* __restrict__ g, T* dlogits, int64_t V,
                                                         int32_t ignoreIndex, KernelStatus* st) {
  // logits and dlogits may alias (in place): no __restrict__ on them.
  const int64_t n = blockIdx.x;
  const int32_t t = targets[n];
  const T* x = logits + n * V;
  T* d = dlogits + n * V;
  if (skippedRow(t, ignoreIndex, V, n, d, st)) return;
  const float xt = toFloat(x[t]);  // read before any thread of this block overwrites the row
  float lse;
  const bool ok = rowLogSumExp<T, VEC>(x, V, lse);  // ends with barriers: xt is read by then
  if (!ok && threadIdx.x == 0) osp::cuda::reportStatus(st, StatusNonFiniteRow, n);
  const float gn = g[n];
  if constexpr (VEC) {
    constexpr int E = Pack<T>::E;
    const uint4* xv = reinterpret_cast<const uint4*>(x);
    uint4* dv = reinterpret_cast<uint4*>(d);
    const int64_t nv = V / E;
    for (int64_t i = threadIdx.x; i < nv; i += kBlock) {
      float f[E];
      Pack<T>::unpack(xv[i], f);
#pragma unroll
      for (int j = 0; j < E; j++) f[j] = -gn * __expf(f[j] - lse);
      dv[i] = Pack<T>::pack(f);
    }
  } else {
    for (int64_t v = threadIdx.x; v < V; v += kBlock) d[v] = osp::cuda::fromFloat<T>(-gn * __expf(toFloat(x[v]) - lse));
  }
  __syncthreads();
  if (threadIdx.x == 0) d[t] = osp::cuda::fromFloat<T>(gn * (1.f - __expf(xt - lse)));
}

// 16-byte loads need every row to start on a 16-byte boundary: V a multiple of the pack width
// (buffers from the allocator are 256-byte aligned).
template <typename T>
bool vectorisable(const void* p, int64_t V) {
  return V % Pack<T>::E == 0 && reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

template <typename T>
void launchForward(const T* logits, const int32_t* targets, float* out, float* lse, int64_t N, int64_t V, int32_t ii,
                   KernelStatus* st) {
  auto s = osp::cuda::stream();
  if (vectorisable<T>(logits, V)) forwardKernel<T, true><<<N, kBlock, 0, s>>>(logits, targets, out, lse, V, ii, st);
  else forwardKernel<T, false><<<N, kBlock, 0, s>>>(logits, targets, out, lse, V, ii, st);
}

template <typename T>
void launchBackward(const T* logits, const int32_t* targets, const float* g, const float* lse, T* d, int64_t N,
                    int64_t V, int32_t ii, KernelStatus* st) {
  auto s = osp::cuda::stream();
  const bool vec = vectorisable<T>(logits, V) && vectorisable<T>(d, V);
  if (lse) {
    if (vec) backwardGivenLseKernel<T, true><<<N, kBlock, 0, s>>>(logits, targets, g, lse, d, V, ii, st);
    else backwardGivenLseKernel<T, false><<<N, kBlock, 0, s>>>(logits, targets, g, lse, d, V, ii, st);
  } else if (vec) {
    backwardKernel<T, true><<<N, kBlock, 0, s>>>(logits, targets, g, d, V, ii, st);
  } else {
    backwardKernel<T, false><<<N, kBlock, 0, s>>>(logits, targets, g, d, V, ii, st);
  }
}

}  // namespace

void forwardCuda(const void* logits, bool isBf16, const int32_t* targets, float* out, float* lse, int64_t N, int64_t V,
                 int32_t ignoreIndex, KernelStatus* status) {
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launchForward(static_cast<const T*>(logits), targets, out, lse, N, V, ignoreIndex, status);
  });
}

void backwardCuda(const void* logits, bool isBf16, const int32_t* targets, const float* g, const float* lse,
                  void* dlogits, int64_t N, int64_t V, int32_t ignoreIndex, KernelStatus* status) {
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launchBackward(static_cast<const T*>(logits), targets, g, lse, static_cast<T*>(dlogits), N, V, ignoreIndex, status);
  });
}

}  // namespace osp::token_logprobs
