// Rotary position embedding, Hugging Face "rotate half" convention (transformers'
// LlamaRotaryEmbedding + apply_rotary_pos_emb). x [T, H, Dh], positions [T] i32 (>= 0), Dh even,
// h = Dh / 2. Given h inverse frequencies inv_freq_i, angle = pos_t * inv_freq_i and
//   out[t, k, i]     = x[t, k, i] cos(angle) - x[t, k, i + h] sin(angle)
//   out[t, k, i + h] = x[t, k, i + h] cos(angle) + x[t, k, i] sin(angle)
// i.e. each pair (i, i + h) rotated by +angle. The backward is the transpose of a rotation, the
// rotation by -angle, applied to the incoming gradient (it needs no x).
//
// The inverse frequencies come from the caller: either ropeInvFreq(theta, scalingFactor, Dh),
// inv_freq_i = theta^(-2i / Dh) / scalingFactor (HF's default and "linear" rope scaling; 1 = none),
// or any host table of h finite positive numbers (HF's "llama3" scaling is computed in TypeScript
// from ropeInvFreq's table). The table is built once on the host in f64, so a theta call and a
// table call with ropeInvFreq's values give bit-identical results.
//
// Cost: one read and one write of x, 6 flops per pair, plus h sin/cos per (t) (shared by heads).
//
// Angles: the CPU computes the angle and its sin and cos in f64 (for f32 tensors too; only the
// rotated values are rounded to f32). CUDA gets the table rounded to f32 (as HF's float32
// inv_freq) by value in the kernel's parameters (so Dh <= 2 kRopeMaxHalf there) and computes the
// angle in f32 with full-precision sincosf; for large positions the f32 angle carries a rounding of
// about pos * 6e-8 rad. A negative position is a RangeError naming positions[t].
// Pinned by test/modelOps.test.ts (f64 reference, finite differences, norm preservation) and test/gpu.test.ts.
#pragma once
#include <cstdint>
#include <vector>

#include "../../core/errors.h"
#include "../../core/tensor.h"

namespace osp {

// The most inverse frequencies (Dh / 2) the CUDA kernel takes (its table travels in the launch's parameters).
constexpr int64_t kRopeMaxHalf = 512;

// inv_freq_i = theta^(-2i / Dh) / scalingFactor for i < Dh / 2, in f64. `op` names errors (theta,
// scalingFactor > 0 and finite; Dh even and > 0).
std::vector<double> ropeInvFreq(double theta, double scalingFactor, int64_t Dh, const char* op = "ropeInvFreq");

// direction +1: forward (rope); -1: backward (ropeBackward, applied to gradOut). invFreq: Dh / 2
// finite numbers > 0 (checked).
Tensor rope(const Tensor& x, const Tensor& positions, const std::vector<double>& invFreq, int direction);
// The same with ropeInvFreq(theta, scalingFactor, Dh).
Tensor rope(const Tensor& x, const Tensor& positions, double theta, double scalingFactor, int direction);

namespace rope_kernels {

template <typename T>
void applyCpu(const T* x, const int32_t* positions, T* out, int64_t T_, int64_t H, int64_t Dh, const double* invFreq,
              double sign, bool threaded, KernelStatus* status);

// invFreq: Dh / 2 <= kRopeMaxHalf host values (copied into the launch).
void applyCuda(const void* x, const int32_t* positions, void* out, bool isBf16, int64_t T_, int64_t H, int64_t Dh,
               const float* invFreq, float sign, KernelStatus* status);

}  // namespace rope_kernels
}  // namespace osp
