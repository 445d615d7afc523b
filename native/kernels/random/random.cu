// CUDA random fill: normal, uniform and dropout mask (see random.h): one thread per element, grid-stride. Compiled without
// --use_fast_math (CMakeLists.txt): the precise logf, cosf and sqrtf keep each value within a few
// f32 ulps of the CPU's. (__logf's documented error near u = 1 is absolute, 2^-21.4, against |log u|
// down to 6e-8 there, so some normals near 0 came out wrong in every digit.)
#include "../../core/cuda_common.cuh"
#include "random.h"
#include "random_common.h"

namespace osp::random {

namespace {

template <typename T>
__global__ void fillKernel(T* out, int64_t n, uint64_t seed, Distribution d, float a, float b) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    // normalAt is guarded against sqrt of a negative in random_common.h
    out[i] = osp::cuda::fromFloat<T>(drawAt(d, seed, static_cast<uint64_t>(i), a, b));
  }
}

}  // namespace

void fillCuda(void* out, bool isBf16, int64_t n, uint64_t seed, Distribution d, float a, float b) {
  const unsigned blocks = osp::cuda::gridFor(n);  // n >= 1: random.cpp returns early on 0
  if (isBf16) fillKernel<<<blocks, osp::cuda::kBlock, 0, osp::cuda::stream()>>>(static_cast<__nv_bfloat16*>(out), n, seed, d, a, b);
  else fillKernel<<<blocks, osp::cuda::kBlock, 0, osp::cuda::stream()>>>(static_cast<float*>(out), n, seed, d, a, b);
  osp::cuda::checkLaunch("randomFill");
}

}  // namespace osp::random
