// CUDA causal attention (maths in attention.h), the SIMT path: f32, and bf16 where the tensor-core
// path (attention_tc.cu) does not apply. One 128-thread block (4 warps) per (query, head) for the
// forward and dq, one per (key, kv head) for dk/dv. Each warp takes every 4th key (or (head,
// query) item), reduces its dot products with shuffles, and keeps its own online-softmax state and
// Dh-wide accumulators in shared memory; the warps are merged in order at the end, so results are
// deterministic. f32 arithmetic on f32 or bf16 storage; lse and the D scratch in f32. The delta
// kernel (D = rowsum(dO o)) serves both paths. Every block first checks the span column of its
// query or key (spanValid, the same for all its threads): a bad one gets NaN outputs and a status
// report, and nothing else is read.
#include "../../core/cuda_common.cuh"
#include "attention.h"
#include "attention_device.cuh"

namespace osp::attention {

namespace {

using osp::attention_device::kBlock;
using osp::attention_device::kWarps;
using osp::attention_device::warpDot;
using osp::cuda::fromFloat;
using osp::cuda::toFloat;
using osp::cuda::warpSum;

// Whether the block's span column i is valid; if not, thread 0 reports it (status may be null).
__device__ __forceinline__ bool blockSpanOk(const int32_t* starts, const int32_t* ends, int64_t i, int64_t T,
                                            KernelStatus* st) {
  if (spanValid(starts, ends, i, T)) return true;
  if (st && threadIdx.x == 0) osp::cuda::reportStatus(st, StatusSequenceSpan, i);
  return false;
}

// a . b with both rows in global memory, over one warp; every lane gets the result.
template <typename T>
__device__ __forceinline__ float warpDotG(const T* a, const T* b, int64_t Dh, int lane) {
  float s = 0.f;
  for (int64_t d = lane; d < Dh; d += 32) s += toFloat(a[d]) * toFloat(b[d]);
  return warpSum(s);
}

// Shared memory: attendKeys' (attention_device.cuh).
template <typename T>
__global__ void __launch_bounds__(kBlock) forwardKernel(const T* __restrict__ q, const T* __restrict__ k,
                                                        const T* __restrict__ v, const int32_t* __restrict__ starts,
                                                        const int32_t* __restrict__ ends, T* __restrict__ out,
                                                        float* __restrict__ lse, int64_t T_, int64_t H, int64_t Hkv,
                                                        int64_t Dh, float scale, KernelStatus* st) {
  extern __shared__ float sh[];
  const int64_t n = blockIdx.x, i = n / H, h = n % H, g = h / (H / Hkv);
  if (!blockSpanOk(starts, ends, i, T_, st)) {
    for (int64_t d = threadIdx.x; d < Dh; d += kBlock) out[n * Dh + d] = fromFloat<T>(NAN);
    if (threadIdx.x == 0) lse[n] = NAN;
    return;
  }
  // Causal over the packed span: keys starts[i]..i.
  const osp::attention_device::SoftmaxTotals t = osp::attention_device::attendKeys(
      q + n * Dh, k, v, Hkv, g, starts[i], i, Dh, scale, sh, out + n * Dh, static_cast<float*>(nullptr));
  if (threadIdx.x == 0) lse[n] = t.max + logf(t.sum);
}

// delta[n] = dO_n . o_n, one warp per (token, head) row.
template <typename T>
__global__ void deltaKernel(const T* __restrict__ gradOut, const T* __restrict__ out, float* __restrict__ delta, int64_t rows,
                            int64_t Dh) {
  const int64_t n = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (n >= rows) return;
  const float s = warpDotG(gradOut + n * Dh, out + n * Dh, Dh, threadIdx.x & 31);
  if ((threadIdx.x & 31) == 0) delta[n] = s;
}

// dq: shared q[Dh] (unscaled), dO[Dh], acc[kWarps][Dh].
template <typename T>
__global__ void __launch_bounds__(kBlock) dqKernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                                   const int32_t* __restrict__ starts, const int32_t* __restrict__ ends,
                                                   const float* __restrict__ lse, const float* __restrict__ delta,
                                                   const T* __restrict__ gradOut, T* __restrict__ dq, int64_t T_, int64_t H,
                                                   int64_t Hkv, int64_t Dh, float scale, KernelStatus* st) {
  extern __shared__ float sh[];
  float* qs = sh;
  float* gs = sh + Dh;
  float* acc = gs + Dh;
  const int64_t n = blockIdx.x, i = n / H, h = n % H, g = h / (H / Hkv);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (!blockSpanOk(starts, ends, i, T_, st)) {
    for (int64_t d = threadIdx.x; d < Dh; d += kBlock) dq[n * Dh + d] = fromFloat<T>(NAN);
    return;
  }
  for (int64_t d = threadIdx.x; d < Dh; d += kBlock) {
    qs[d] = toFloat(q[n * Dh + d]);
    gs[d] = toFloat(gradOut[n * Dh + d]);
  }
  float* a = acc + warp * Dh;
  for (int64_t d = lane; d < Dh; d += 32) a[d] = 0.f;
  __syncthreads();
  const float l = lse[n], D = delta[n];
  for (int64_t j = starts[i] + warp; j <= i; j += kWarps) {
    const T* kj = k + (j * Hkv + g) * Dh;
    const float p = expf(scale * warpDot(qs, kj, Dh, lane) - l);
    const float ds = p * (warpDot(gs, v + (j * Hkv + g) * Dh, Dh, lane) - D);
    for (int64_t d = lane; d < Dh; d += 32) a[d] += ds * toFloat(kj[d]);
  }
  __syncthreads();
  for (int64_t d = threadIdx.x; d < Dh; d += kBlock) {
    float s = 0.f;
    for (int w = 0; w < kWarps; w++) s += acc[w * Dh + d];
    dq[n * Dh + d] = fromFloat<T>(scale * s);
  }
}

// dk, dv: shared k[Dh], v[Dh], ak[kWarps][Dh], av[kWarps][Dh]. Items (h, i) of the group's heads and
// the key's later queries, heads outer; warp w takes items w, w + 4, ...
template <typename T>
__global__ void __launch_bounds__(kBlock) dkvKernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                                    const int32_t* __restrict__ starts, const int32_t* __restrict__ ends,
                                                    const float* __restrict__ lse, const float* __restrict__ delta,
                                                    const T* __restrict__ gradOut, T* __restrict__ dk, T* __restrict__ dv,
                                                    int64_t T_, int64_t H, int64_t Hkv, int64_t Dh, float scale,
                                                    KernelStatus* st) {
  extern __shared__ float sh[];
  float* ks = sh;
  float* vs = sh + Dh;
  float* ak = vs + Dh;
  float* av = ak + kWarps * Dh;
  const int64_t n = blockIdx.x, j = n / Hkv, g = n % Hkv, group = H / Hkv;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (!blockSpanOk(starts, ends, j, T_, st)) {
    for (int64_t d = threadIdx.x; d < Dh; d += kBlock) dk[n * Dh + d] = dv[n * Dh + d] = fromFloat<T>(NAN);
    return;
  }
  for (int64_t d = threadIdx.x; d < Dh; d += kBlock) {
    ks[d] = toFloat(k[n * Dh + d]);
    vs[d] = toFloat(v[n * Dh + d]);
  }
  float* a = ak + warp * Dh;
  float* b = av + warp * Dh;
  for (int64_t d = lane; d < Dh; d += 32) a[d] = b[d] = 0.f;
  __syncthreads();
  const int64_t nq = ends[j] - j;
  for (int64_t it = warp; it < group * nq; it += kWarps) {
    const int64_t h = g * group + it / nq, i = j + it % nq, r = i * H + h;
    const T* qi = q + r * Dh;
    const T* gi = gradOut + r * Dh;
    const float p = expf(scale * warpDot(ks, qi, Dh, lane) - lse[r]);
    const float ds = p * (warpDot(vs, gi, Dh, lane) - delta[r]);
    for (int64_t d = lane; d < Dh; d += 32) {
      a[d] += ds * toFloat(qi[d]);
      b[d] += p * toFloat(gi[d]);
    }
  }
  __syncthreads();
  for (int64_t d = threadIdx.x; d < Dh; d += kBlock) {
    float sk = 0.f, sv = 0.f;
    for (int w = 0; w < kWarps; w++) {
      sk += ak[w * Dh + d];
      sv += av[w * Dh + d];
    }
    dk[n * Dh + d] = fromFloat<T>(scale * sk);
    dv[n * Dh + d] = fromFloat<T>(sv);
  }
}

template <typename T>
void launchForward(const T* q, const T* k, const T* v, const int32_t* starts, const int32_t* ends, T* out, float* lse,
                   int64_t T_, int64_t H, int64_t Hkv, int64_t Dh, float scale, KernelStatus* st) {
  const size_t shm = osp::attention_device::attendSharedBytes(Dh);
  forwardKernel<T><<<static_cast<unsigned>(T_ * H), kBlock, shm, osp::cuda::stream()>>>(q, k, v, starts, ends, out, lse, T_,
                                                                                         H, Hkv, Dh, scale, st);
}

template <typename T>
void launchDelta(const T* out, const T* gradOut, float* delta, int64_t rows, int64_t Dh) {
  deltaKernel<T><<<static_cast<unsigned>((rows + kWarps - 1) / kWarps), kBlock, 0, osp::cuda::stream()>>>(gradOut, out,
                                                                                                         delta, rows, Dh);
}

template <typename T>
void launchGrads(const T* q, const T* k, const T* v, const int32_t* starts, const int32_t* ends, const float* lse,
                 const float* delta, const T* gradOut, T* dq, T* dk, T* dv, int64_t T_, int64_t H, int64_t Hkv,
                 int64_t Dh, float scale, KernelStatus* st) {
  auto s = osp::cuda::stream();
  const int64_t rows = T_ * H;
  dqKernel<T><<<static_cast<unsigned>(rows), kBlock, sizeof(float) * size_t(Dh * (2 + kWarps)), s>>>(
      q, k, v, starts, ends, lse, delta, gradOut, dq, T_, H, Hkv, Dh, scale, st);
  dkvKernel<T><<<static_cast<unsigned>(T_ * Hkv), kBlock, sizeof(float) * size_t(Dh * (2 + 2 * kWarps)), s>>>(
      q, k, v, starts, ends, lse, delta, gradOut, dk, dv, T_, H, Hkv, Dh, scale, st);
}

}  // namespace

bool tensorCoreHeadDim(int64_t Dh) { return Dh == 64 || Dh == 80 || Dh == 96 || Dh == 128; }

void forwardCuda(const void* q, const void* k, const void* v, const int32_t* starts, const int32_t* ends, void* out,
                 float* lse, bool isBf16, bool tensorCores, int64_t T_, int64_t H, int64_t Hkv, int64_t Dh, float scale,
                 KernelStatus* status) {
  if (tensorCores) return forwardTensorCores(q, k, v, starts, ends, out, lse, T_, H, Hkv, Dh, scale, status);
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launchForward(static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), starts, ends,
                  static_cast<T*>(out), lse, T_, H, Hkv, Dh, scale, status);
  });
}

void backwardCuda(const void* q, const void* k, const void* v, const int32_t* starts, const int32_t* ends, const void* out,
                  const float* lse, const void* gradOut, void* dq, void* dk, void* dv, float* delta, bool isBf16,
                  bool tensorCores, int64_t T_, int64_t H, int64_t Hkv, int64_t Dh, float scale, KernelStatus* status) {
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launchDelta(static_cast<const T*>(out), static_cast<const T*>(gradOut), delta, T_ * H, Dh);
    if (!tensorCores)
      launchGrads(static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), starts, ends, lse, delta,
                  static_cast<const T*>(gradOut), static_cast<T*>(dq), static_cast<T*>(dk), static_cast<T*>(dv), T_, H,
                  Hkv, Dh, scale, status);
  });
  if (tensorCores) gradsTensorCores(q, k, v, starts, ends, lse, delta, gradOut, dq, dk, dv, T_, H, Hkv, Dh, scale, status);
}

}  // namespace osp::attention
