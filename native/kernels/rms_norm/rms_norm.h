// RMS norm (Llama's RMSNorm): r_t = 1 / sqrt(mean_j x[t, j]^2 + eps), y[t, j] = x[t, j] r_t w[j],
// x [T, D], w [D]. Backward, with gw[t, j] = g[t, j] w[j] and s_t = sum_j gw[t, j] x[t, j]:
//   dx[t, j] = r_t gw[t, j] - x[t, j] r_t^3 s_t / D,
//   dw[j]    = sum_t g[t, j] x[t, j] r_t   (summed over t in order 0..T-1: deterministic).
//
// Cost: forward reads x once and writes y (2 T D elements moved, ~4 flops per element); backward
// reads x and g, writes dx, plus the dw column sums (~3 T D elements moved, ~10 flops per element).
// Memory-bound at every model shape.
//
// CPU: one template for f64 (single-threaded: the reference the tests trust) and f32 (rows over the
// thread pool; dw columns over the thread pool, each column summed over rows in order), row sums in
// double. CUDA (f32 or bf16 storage, f32 arithmetic): one 256-thread block per row with a
// fixed-order block reduction; dw by a second kernel with one thread per column walking the rows in
// order (no atomics), reading the per-row r_t saved by the first. Outputs are in x's dtype.
// Pinned by test/modelOps.test.ts (plain-TS f64 reference, finite differences) and test/gpu.test.ts.
#pragma once
#include <cstdint>

#include "../../core/tensor.h"

namespace osp {

struct RmsNormGrads {
  Tensor gradInput, gradWeight;
};

Tensor rmsNorm(const Tensor& x, const Tensor& weight, double eps);
RmsNormGrads rmsNormBackward(const Tensor& x, const Tensor& weight, const Tensor& gradOut, double eps);

namespace rms_norm {

// CPU: threaded over rows when `threaded` (f32), a plain loop otherwise (f64).
template <typename T>
void forwardCpu(const T* x, const T* w, T* y, int64_t T_, int64_t D, double eps, bool threaded);
template <typename T>
void backwardCpu(const T* x, const T* w, const T* g, T* dx, T* dw, int64_t T_, int64_t D, double eps, bool threaded);

// CUDA: x, w, g, y, dx, dw in f32 or bf16 (isBf16); rstd is an f32 [T] scratch. Queued on the osp stream.
void forwardCuda(const void* x, const void* w, void* y, bool isBf16, int64_t T_, int64_t D, float eps);
void backwardCuda(const void* x, const void* w, const void* g, void* dx, void* dw, float* rstd, bool isBf16, int64_t T_,
                  int64_t D, float eps);

}  // namespace rms_norm
}  // namespace osp
