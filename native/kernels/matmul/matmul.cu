// CUDA matmul (maths in matmul.h): a plain shared-memory tiled GEMM. Each 256-thread block owns a
// 64 x 64 tile of C; K is walked in tiles of 16: the block stages op(A)[64 x 16] and op(B)[16 x 64]
// in shared memory (k-major, converted to f32), then each thread accumulates a 4 x 4 patch of C in
// registers. Loads are arranged so consecutive threads read consecutive addresses of whichever
// layout the transposes give; out-of-range rows, columns and k read as 0, and only existing C
// entries are written. Each C element sums k in order, so the result does not depend on the grid.
#include "../../core/cuda_common.cuh"
#include "matmul.h"

namespace osp::matmul_kernels {

namespace {

using osp::cuda::toFloat;

constexpr int kTile = 64, kDepth = 16, kThreads = 256, kPer = 4;

template <typename T, bool TA, bool TB>
__global__ void __launch_bounds__(kThreads) gemmKernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ c,
                                                       int64_t M, int64_t N, int64_t K, bool accumulate) {
  __shared__ float As[kDepth][kTile + 1];  // As[k][m] = op(A)[m0 + m, k0 + k]; +1: stores along k hit distinct banks
  __shared__ float Bs[kDepth][kTile + 1];  // Bs[k][n] = op(B)[k0 + k, n0 + n]
  const int t = threadIdx.x;
  const int tx = t % 16, ty = t / 16;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kTile, n0 = static_cast<int64_t>(blockIdx.x) * kTile;
  float acc[kPer][kPer];
#pragma unroll
  for (int i = 0; i < kPer; i++)
#pragma unroll
    for (int j = 0; j < kPer; j++) acc[i][j] = 0.f;

  for (int64_t k0 = 0; k0 < K; k0 += kDepth) {
#pragma unroll
    for (int r = 0; r < (kTile * kDepth) / kThreads; r++) {
      const int e = t + r * kThreads;  // 0 .. 1023
      // op(A) tile element (m, k). TA: a is [K, M], m fastest; else a is [M, K], k fastest.
      int m, k;
      if (TA) { k = e / kTile; m = e % kTile; } else { m = e / kDepth; k = e % kDepth; }
      int64_t gm = m0 + m, gk = k0 + k;
      float v = 0.f;
      if (gm < M && gk < K) v = toFloat(TA ? a[gk * M + gm] : a[gm * K + gk]);
      As[k][m] = v;
      // op(B) tile element (k, n). TB: b is [N, K], k fastest; else b is [K, N], n fastest.
      int n;
      if (TB) { n = e / kDepth; k = e % kDepth; } else { k = e / kTile; n = e % kTile; }
      int64_t gn = n0 + n;
      gk = k0 + k;
      v = 0.f;
      if (gn < N && gk < K) v = toFloat(TB ? b[gn * K + gk] : b[gk * N + gn]);
      Bs[k][n] = v;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kDepth; k++) {
      float av[kPer], bv[kPer];
#pragma unroll
      for (int i = 0; i < kPer; i++) av[i] = As[k][ty * kPer + i];
#pragma unroll
      for (int j = 0; j < kPer; j++) bv[j] = Bs[k][tx * kPer + j];
#pragma unroll
      for (int i = 0; i < kPer; i++)
#pragma unroll
        for (int j = 0; j < kPer; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < kPer; i++) {
    const int64_t gm = m0 + ty * kPer + i;
    if (gm >= M) continue;
#pragma unroll
    for (int j = 0; j < kPer; j++) {
      const int64_t gn = n0 + tx * kPer + j;
      if (gn < N) c[gm * N + gn] = osp::cuda::fromFloat<T>(accumulate ? osp::cuda::toFloat(c[gm * N + gn]) + acc[i][j] : acc[i][j]);
    }
  }
}

template <typename T>
void launch(const T* a, const T* b, T* c, int64_t M, int64_t N, int64_t K, bool transA, bool transB, bool accumulate) {
  const dim3 grid(static_cast<unsigned>((N + kTile - 1) / kTile), static_cast<unsigned>((M + kTile - 1) / kTile));
  auto s = osp::cuda::stream();
  if (transA && transB) gemmKernel<T, true, true><<<grid, kThreads, 0, s>>>(a, b, c, M, N, K, accumulate);
  else if (transA) gemmKernel<T, true, false><<<grid, kThreads, 0, s>>>(a, b, c, M, N, K, accumulate);
  else if (transB) gemmKernel<T, false, true><<<grid, kThreads, 0, s>>>(a, b, c, M, N, K, accumulate);
  else gemmKernel<T, false, false><<<grid, kThreads, 0, s>>>(a, b, c, M, N, K, accumulate);
}

}  // namespace

void gemmCuda(const void* a, const void* b, void* c, bool isBf16, int64_t M, int64_t N, int64_t K, bool transA, bool transB,
              bool accumulate) {
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(c), M, N, K, transA, transB, accumulate);
  });
}

}  // namespace osp::matmul_kernels
