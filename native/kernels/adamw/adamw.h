// AdamW (torch.optim.AdamW: decoupled weight decay, bias correction) and the sum of squares used
// for global-norm gradient clipping. At step t >= 1, elementwise, with g = grad * gradScale:
//   p <- p - lr wd p
//   m <- beta1 m + (1 - beta1) g,        v <- beta2 v + (1 - beta2) g^2
//   p <- p - (lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// which is lr mhat / (sqrt(vhat) + eps) with mhat = m / (1 - beta1^t), vhat = v / (1 - beta2^t),
// written in torch's order (step size and sqrt of the bias correction computed once, in f64, on the
// host). param, m and v are updated in place. sumOfSquares(x) = sum_i x_i^2, a [1] tensor; the
// global norm is sqrt of the sum of these over all parameters (clipGradNorm in src/ops.ts).
//
// Clipping: with gradSumOfSquares, every element's update also reads that one scalar (the norm never
// travels to the host inside a step; see AdamWOptions).
//
// Cost: adamwStep reads param, grad, m, v and writes param, m, v (7 elements moved per parameter,
// ~15 flops), plus one read of grad for the finite check that runs before anything is written (so
// a NaN gradient leaves param, m and v untouched). sumOfSquares reads x once. Both memory-bound.
//
// CPU: param/grad/m/v f32 or f64, all one dtype, arithmetic in double; elementwise over the thread
// pool (the result does not depend on the thread count). sumOfSquares accumulates in double over
// fixed 64Ki-element chunks whose partials are added in chunk order: the same bits for any thread
// count. CUDA: param, m, v f32 (master weights), grad f32 or bf16, f32 arithmetic;
// sumOfSquares (f32 or bf16 input, f32 output) writes one f32 partial per block of a grid whose
// size depends only on n, then one block adds them in a fixed order (deterministic, no atomics).
// Pinned by test/adamw.test.ts (plain-TS f64 AdamW reference, 1e-12) and test/gpu.test.ts.
#pragma once
#include <cstdint>

#include "../../core/errors.h"
#include "../../core/tensor.h"

namespace osp {

struct AdamWOptions {
  double lr, beta1, beta2, eps, weightDecay, step, gradScale;
  // false: the caller already knows grad is finite (e.g. its global norm is), so the check and its
  // device-to-host status read (one synchronisation per tensor on the GPU) are skipped.
  bool checkFinite = true;
  // Global-norm clipping without a host round trip: the sum of squares of ALL the gradients, a [1]
  // tensor on param's device (f32; f64 for f64 params) that the kernel reads itself. The gradient is
  // multiplied by clip = min(1, maxGradNorm / (sqrt(total) + 1e-6)) (1 when maxGradNorm is 0); a
  // non-finite total skips the update (param, m and v unchanged), so the host learns of a bad
  // step when it next reads the norm, and no weight is ever written from it.
  const Tensor* gradSumOfSquares = nullptr;
  double maxGradNorm = 0;
};

Tensor sumOfSquares(const Tensor& x);
void adamwStep(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const AdamWOptions& o);

namespace adamw {

// The per-step scalars every kernel uses, computed once on the host in f64.
struct StepScalars {
  double lr, beta1, beta2, eps, decay /* 1 - lr wd */, gradScale, stepSize /* lr / bc1 */, bc2Sqrt;
};

// CPU (T = float or double).
constexpr int64_t kSumChunk = 1 << 16;
template <typename T>
double sumOfSquaresCpu(const T* x, int64_t n);
template <typename T>
void findNonFiniteCpu(const T* g, int64_t n, KernelStatus* st);  // lowest bad index, StatusNonFiniteValue
template <typename T>
void stepCpu(T* p, const T* g, T* m, T* v, int64_t n, const StepScalars& s);

// CUDA: x and grad f32 or bf16 (isBf16); out is an f32 [1]; queued on the osp stream.
void sumOfSquaresCuda(const void* x, bool isBf16, float* out, int64_t n);
void findNonFiniteCuda(const void* g, bool isBf16, int64_t n, KernelStatus* st);
// sumSq: null, or the device total of AdamWOptions::gradSumOfSquares (read inside the kernel).
void stepCuda(float* p, const void* g, bool gradBf16, float* m, float* v, int64_t n, const StepScalars& s,
              const float* sumSq, float maxGradNorm);

}  // namespace adamw
}  // namespace osp
