// CUDA rope (maths in rope.h): one 256-thread block per token; each thread takes pairs (k, i)
// of that token's H x Dh/2 pairs. The inverse frequencies (f32) travel by value in the launch's
// parameters (Dh/2 <= kRopeMaxHalf, 2 KiB, a __grid_constant__ so it is not copied per thread)
// and each block stages its h values in shared memory (threads of a warp read different ones); angles, sin and cos in f32.
// sincosf is the full-precision one (about 1 ulp at any angle) because CMakeLists.txt compiles this file
// without --use_fast_math: __sincosf's error is ~2^-21 only inside [-pi, pi] and grows with the angle,
// and angles here reach the context length in radians.
#include "../../core/cuda_common.cuh"
#include "rope.h"

namespace osp::rope_kernels {

namespace {

using osp::cuda::fromFloat, osp::cuda::kBlock, osp::cuda::toFloat;

struct InvFreqTable {
  float v[kRopeMaxHalf];
};

template <typename T>
__global__ void __launch_bounds__(kBlock) ropeKernel(const T* __restrict__ x, const int32_t* __restrict__ positions,
                                                     T* __restrict__ out, int64_t H, int64_t Dh,
                                                     const __grid_constant__ InvFreqTable inv,
                                                     float sign, KernelStatus* st) {
  __shared__ float sInv[kRopeMaxHalf];
  const int64_t t = blockIdx.x, h = Dh / 2, row = H * Dh;
  for (int64_t i = threadIdx.x; i < h; i += kBlock) sInv[i] = inv.v[i];
  __syncthreads();
  const int32_t p = positions[t];
  const T* xr = x + t * row;
  T* orow = out + t * row;
  if (p < 0) {
    for (int64_t j = threadIdx.x; j < row; j += kBlock) orow[j] = fromFloat<T>(NAN);
    if (threadIdx.x == 0) osp::cuda::reportStatus(st, StatusIndexOutOfRange, t);
    return;
  }
  const float pos = float(p);
  for (int64_t q = threadIdx.x; q < H * h; q += kBlock) {
    const int64_t k = q / h, i = q % h;
    float s, c;
    sincosf(pos * sInv[i], &s, &c);
    s *= sign;
    const T* xa = xr + k * Dh;
    T* oa = orow + k * Dh;
    const float x1 = toFloat(xa[i]), x2 = toFloat(xa[i + h]);
    oa[i] = fromFloat<T>(x1 * c - x2 * s);
    oa[i + h] = fromFloat<T>(x2 * c + x1 * s);
  }
}

}  // namespace

void applyCuda(const void* x, const int32_t* positions, void* out, bool isBf16, int64_t T_, int64_t H, int64_t Dh,
               const float* invFreq, float sign, KernelStatus* status) {
  using B = __nv_bfloat16;
  InvFreqTable inv{};
  for (int64_t i = 0; i < Dh / 2 && i < kRopeMaxHalf; i++) inv.v[i] = invFreq[i];
  auto s = osp::cuda::stream();
  if (isBf16)
    ropeKernel<B><<<static_cast<unsigned>(T_), kBlock, 0, s>>>(static_cast<const B*>(x), positions, static_cast<B*>(out), H, Dh,
                                                               inv, sign, status);
  else
    ropeKernel<float><<<static_cast<unsigned>(T_), kBlock, 0, s>>>(static_cast<const float*>(x), positions,
                                                                   static_cast<float*>(out), H, Dh, inv, sign, status);
}

}  // namespace osp::rope_kernels
