// Shared device code for the CUDA kernels: loads of f32/bf16 as float, the stream, block
// reductions, and first-wins status reporting. Included only by .cu files.
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

// Block-wide reduction of (max, sum) pairs; every thread gets the result. blockDim.x <= 1024.
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

// Block-wide sum of a float in a fixed order (deterministic); every thread gets the result.
__device__ __forceinline__ float blockReduceSum(float v) {
  __shared__ float sh[32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  v = lane < warps ? sh[lane] : 0.f;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

}  // namespace osp::cuda
