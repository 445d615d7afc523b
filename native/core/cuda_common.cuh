// Shared device code for the CUDA kernels (llm.c's cuda_utils.cuh is the model): the stream,
// loads of f32/bf16 as float, the f32/bf16 dispatch of a launch, the common block size and grid
// sizes, warp and block reductions, and first-wins status reporting. Included only by .cu files.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda_backend.h"
#include "errors.h"

namespace osp::cuda {

inline cudaStream_t stream() { return static_cast<cudaStream_t>(currentStream()); }

__device__ __forceinline__ float toFloat(float x) { return x; }
__device__ __forceinline__ float toFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T fromFloat(float x);
template <> __device__ __forceinline__ float fromFloat<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 fromFloat<__nv_bfloat16>(float x) { return __float2bfloat16(x); }

// ---- dtype dispatch ----------------------------------------------------------------------------

template <typename T> struct TypeTag {
  using type = T;
};

// Calls f with TypeTag<__nv_bfloat16> or TypeTag<float>, so one launch serves both storage types:
//   dispatchFloat(isBf16, [&](auto tag) { using T = typename decltype(tag)::type; kernel<T><<<...>>>(...); });
template <typename F>
inline void dispatchFloat(bool isBf16, F&& f) {
  if (isBf16) f(TypeTag<__nv_bfloat16>{});
  else f(TypeTag<float>{});
}

// ---- launch shapes -------------------------------------------------------------------------------
// One block size for the row kernels (a block per row) and the grid-stride loops, so every kernel's
// __launch_bounds__, shared arrays and launches agree on it. Kernels with another shape (attention's
// 4 warps, matmul's tiles) keep their own.
constexpr int kBlock = 256;

// Blocks of kBlock threads that give each of n items its own thread (kernels that guard i < n).
inline int64_t blocksFor(int64_t n) { return (n + kBlock - 1) / kBlock; }

// Grid of a grid-stride loop over n items: blocksFor(n), at least 1 (a launch needs a block) and at
// most 65535 (the loop covers the rest).
inline unsigned gridFor(int64_t n) {
  const int64_t b = blocksFor(n);
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 ? 65535 : b));
}

// ---- reductions ----------------------------------------------------------------------------------
// Xor-shuffle butterflies: every lane (and, for the block forms, every thread) gets the result, and
// the order of operations is fixed, so sums are the same on every run. Block forms need blockDim.x
// a multiple of 32, at most 1024, and must be reached by every thread of the block.

struct SumOp {
  template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// Over aligned groups of Width lanes (a power of two <= 32): every lane gets its group's result.
template <int Width, typename T, typename Op>
__device__ __forceinline__ T groupReduce(T v, Op op) {
  static_assert(Width >= 1 && Width <= 32 && (Width & (Width - 1)) == 0, "Width: a power of two <= 32");
  for (int o = Width / 2; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
template <typename T, typename Op>
__device__ __forceinline__ T warpReduce(T v, Op op) { return groupReduce<32>(v, op); }
template <typename T> __device__ __forceinline__ T warpSum(T v) { return warpReduce(v, SumOp{}); }
__device__ __forceinline__ float warpMax(float v) { return warpReduce(v, MaxOp{}); }
// The 4 lanes of a quad (lanes 4r..4r+3): the lanes that share a row of an mma accumulator.
template <typename T> __device__ __forceinline__ T quadSum(T v) { return groupReduce<4>(v, SumOp{}); }
__device__ __forceinline__ float quadMax(float v) { return groupReduce<4>(v, MaxOp{}); }

// `identity` fills the lanes past the last warp (0 for a sum, -Inf for a max).
template <typename T, typename Op>
__device__ __forceinline__ T blockReduce(T v, Op op, T identity) {
  __shared__ T sh[32];
  v = warpReduce(v, op);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  __syncthreads();  // the shared array may still be read from an earlier call
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  v = lane < warps ? sh[lane] : identity;
  return warpReduce(v, op);
}
template <typename T> __device__ __forceinline__ T blockReduceSum(T v) { return blockReduce(v, SumOp{}, T(0)); }
__device__ __forceinline__ float blockReduceMax(float v) { return blockReduce(v, MaxOp{}, -INFINITY); }

// Record the first problem found by any thread; later ones are dropped.
__device__ __forceinline__ void reportStatus(KernelStatus* st, int code, long long index) {
  if (atomicCAS(&st->code, 0, code) == 0) st->index = index;
}

// Merge two online-softmax partial states (max m, sum of exp(x - m)).
__device__ __forceinline__ void mergeMaxSum(float& m, float& s, float m2, float s2) {
  float mn = fmaxf(m, m2);
  if (mn == -INFINITY) return;  // both empty
  s = s * __expf(m - mn) + s2 * __expf(m2 - mn);
  m = mn;
}

// One step of the online softmax (the one copy, used by every attention kernel): raise the running
// max m to cover a new block of scores whose max is mBlock (-Inf for an empty or fully masked
// block). Returns the factor exp(m_old - m_new) that rescales the running sum and accumulators, and
// sets shift to what the new block's scores subtract before exp: m_new, or 0 while every score so
// far is -Inf, so that exp gives 0 (never exp(-Inf + Inf) = NaN) and the factor is 0.
__device__ __forceinline__ float raiseMax(float& m, float mBlock, float& shift) {
  const float mn = fmaxf(m, mBlock);
  shift = mn == -INFINITY ? 0.f : mn;
  const float factor = __expf(m - shift);
  m = mn;
  return factor;
}

// Block-wide reduction of online-softmax (max, sum) pairs; every thread gets the result.
__device__ __forceinline__ void blockReduceMaxSum(float& m, float& s) {
  __shared__ float sm[32], ss[32];
  for (int o = 16; o > 0; o >>= 1) {
    float m2 = __shfl_xor_sync(0xffffffffu, m, o);
    float s2 = __shfl_xor_sync(0xffffffffu, s, o);
    mergeMaxSum(m, s, m2, s2);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  __syncthreads();  // the shared arrays may still be read from an earlier call
  if (lane == 0) { sm[warp] = m; ss[warp] = s; }
  __syncthreads();
  m = lane < warps ? sm[lane] : -INFINITY;
  s = lane < warps ? ss[lane] : 0.f;
  for (int o = 16; o > 0; o >>= 1) {
    float m2 = __shfl_xor_sync(0xffffffffu, m, o);
    float s2 = __shfl_xor_sync(0xffffffffu, s, o);
    mergeMaxSum(m, s, m2, s2);
  }
}

}  // namespace osp::cuda
