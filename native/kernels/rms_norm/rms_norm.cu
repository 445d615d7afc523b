// CUDA RMS norm (maths in rms_norm.h): one 256-thread block per row, f32 arithmetic on f32 or
// bf16 storage, fixed-order block reductions. dw in two stages that fill the GPU: stage 1, a grid of
// (256-column tiles x chunks of rows), each thread summing its column over its chunk's rows in
// order into an f32 partial; stage 2, one thread per column summing the chunks' partials in order.
// (One thread per column over all T rows ran on only D / 256 blocks: 16 for D = 4096.)
// Deterministic: the same fixed order on every run.
#include "../../core/cuda_backend.h"
#include "../../core/cuda_common.cuh"
#include "rms_norm.h"

namespace osp::rms_norm {

namespace {

using osp::cuda::fromFloat, osp::cuda::kBlock, osp::cuda::toFloat;

template <typename T>
__device__ float rowRstd(const T* x, int64_t D, float eps) {
  float ss = 0.f;
  for (int64_t j = threadIdx.x; j < D; j += kBlock) {
    const float v = toFloat(x[j]);
    ss += v * v;
  }
  ss = osp::cuda::blockReduceSum(ss);
  return rsqrtf(ss / float(D) + eps);
}

template <typename T>
__global__ void __launch_bounds__(kBlock) forwardKernel(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y,
                                                        int64_t D, float eps) {
  const T* xr = x + int64_t(blockIdx.x) * D;
  T* yr = y + int64_t(blockIdx.x) * D;
  const float r = rowRstd(xr, D, eps);
  for (int64_t j = threadIdx.x; j < D; j += kBlock) yr[j] = fromFloat<T>(toFloat(xr[j]) * r * toFloat(w[j]));
}

template <typename T>
__global__ void __launch_bounds__(kBlock) backwardRowsKernel(const T* __restrict__ x, const T* __restrict__ w,
                                                             const T* __restrict__ g, T* __restrict__ dx,
                                                             float* __restrict__ rstd, int64_t D, float eps) {
  const int64_t t = blockIdx.x;
  const T* xr = x + t * D;
  const T* gr = g + t * D;
  T* dr = dx + t * D;
  const float r = rowRstd(xr, D, eps);
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < D; j += kBlock) s += toFloat(gr[j]) * toFloat(w[j]) * toFloat(xr[j]);
  s = osp::cuda::blockReduceSum(s);
  const float c = r * r * r * s / float(D);
  for (int64_t j = threadIdx.x; j < D; j += kBlock)
    dr[j] = fromFloat<T>(r * toFloat(gr[j]) * toFloat(w[j]) - toFloat(xr[j]) * c);
  if (threadIdx.x == 0) rstd[t] = r;
}

template <typename T>
__global__ void __launch_bounds__(kBlock) weightGradPartialKernel(const T* __restrict__ x, const T* __restrict__ g,
                                                                  const float* __restrict__ rstd, float* __restrict__ partial,
                                                                  int64_t T_, int64_t D, int64_t rowsPerChunk) {
  const int64_t j = int64_t(blockIdx.x) * kBlock + threadIdx.x;
  if (j >= D) return;
  const int64_t t0 = int64_t(blockIdx.y) * rowsPerChunk;
  const int64_t t1 = t0 + rowsPerChunk < T_ ? t0 + rowsPerChunk : T_;
  float acc = 0.f;
  for (int64_t t = t0; t < t1; t++) acc += toFloat(g[t * D + j]) * toFloat(x[t * D + j]) * rstd[t];
  partial[int64_t(blockIdx.y) * D + j] = acc;
}

template <typename T>
__global__ void __launch_bounds__(kBlock) weightGradReduceKernel(const float* __restrict__ partial, T* __restrict__ dw,
                                                                 int64_t chunks, int64_t D) {
  const int64_t j = int64_t(blockIdx.x) * kBlock + threadIdx.x;
  if (j >= D) return;
  float acc = 0.f;
  for (int64_t k = 0; k < chunks; k++) acc += partial[k * D + j];
  dw[j] = fromFloat<T>(acc);
}

// Row chunks of stage 1: at most 128, of at least 16 rows (T = 4096, D = 4096: 16 x 128 blocks).
constexpr int64_t kMaxChunks = 128, kMinRows = 16;

template <typename T>
void launchForward(const T* x, const T* w, T* y, int64_t T_, int64_t D, float eps) {
  forwardKernel<T><<<static_cast<unsigned>(T_), kBlock, 0, osp::cuda::stream()>>>(x, w, y, D, eps);
}

template <typename T>
void launchBackward(const T* x, const T* w, const T* g, T* dx, T* dw, float* rstd, int64_t T_, int64_t D, float eps) {
  auto s = osp::cuda::stream();
  backwardRowsKernel<T><<<static_cast<unsigned>(T_), kBlock, 0, s>>>(x, w, g, dx, rstd, D, eps);
  if (D == 0) return;
  int64_t rows = (T_ + kMaxChunks - 1) / kMaxChunks;
  if (rows < kMinRows) rows = kMinRows;
  const int64_t chunks = T_ == 0 ? 0 : (T_ + rows - 1) / rows;
  const unsigned tiles = static_cast<unsigned>(osp::cuda::blocksFor(D));
  float* partial = chunks ? static_cast<float*>(osp::cuda::alloc(size_t(chunks) * size_t(D) * sizeof(float))) : nullptr;
  if (chunks) weightGradPartialKernel<T><<<dim3(tiles, static_cast<unsigned>(chunks)), kBlock, 0, s>>>(x, g, rstd, partial, T_, D, rows);
  weightGradReduceKernel<T><<<tiles, kBlock, 0, s>>>(partial, dw, chunks, D);
  if (partial) osp::cuda::free(partial);  // stream-ordered (cudaFreeAsync)
}

}  // namespace

void forwardCuda(const void* x, const void* w, void* y, bool isBf16, int64_t T_, int64_t D, float eps) {
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launchForward(static_cast<const T*>(x), static_cast<const T*>(w), static_cast<T*>(y), T_, D, eps);
  });
}

void backwardCuda(const void* x, const void* w, const void* g, void* dx, void* dw, float* rstd, bool isBf16, int64_t T_,
                  int64_t D, float eps) {
  osp::cuda::dispatchFloat(isBf16, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launchBackward(static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(g), static_cast<T*>(dx),
                   static_cast<T*>(dw), rstd, T_, D, eps);
  });
}

}  // namespace osp::rms_norm
