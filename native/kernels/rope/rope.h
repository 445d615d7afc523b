// Rotary position embedding, Hugging Face "rotate half" convention (transformers'
// LlamaRotaryEmbedding + apply_rotary_pos_emb). x [T, H, Dh], positions [T] i32 (>= 0), Dh even,
// h = Dh / 2. For i < h: inv_freq_i = theta^(-2i / Dh), angle = (pos_t / scalingFactor) inv_freq_i,
//   out[t, k, i]     = x[t, k, i] cos(angle) - x[t, k, i + h] sin(angle)
//   out[t, k, i + h] = x[t, k, i + h] cos(angle) + x[t, k, i] sin(angle)
// i.e. each pair (i, i + h) rotated by +angle. The backward is the transpose of a rotation, the
// rotation by -angle, applied to the incoming gradient (it needs no x).
// scalingFactor is HF's "linear" rope scaling (positions divided by the factor); 1 = none.
//
// Cost: one read and one write of x, 6 flops per pair, plus h sin/cos per (t) (shared by heads).
//
// Angles: the CPU computes inv_freq, the angle, and its sin and cos in f64 (for f32 tensors too;
// only the rotated values are rounded to f32). CUDA computes them in f32 like HF's float32
// inv_freq, with full-precision sincosf; for large positions the f32 angle itself carries a
// rounding of about pos * 6e-8 rad. A negative position is a RangeError naming positions[t].
// Pinned by test/modelOps.test.ts (f64 reference, finite differences, norm preservation) and test/gpu.test.ts.
#pragma once
#include <cstdint>

#include "../../core/errors.h"
#include "../../core/tensor.h"

namespace osp {

// direction +1: forward (rope); -1: backward (ropeBackward, applied to gradOut).
Tensor rope(const Tensor& x, const Tensor& positions, double theta, double scalingFactor, int direction);

namespace rope_kernels {

template <typename T>
void applyCpu(const T* x, const int32_t* positions, T* out, int64_t T_, int64_t H, int64_t Dh, double theta, double factor,
              double sign, bool threaded, KernelStatus* status);

void applyCuda(const void* x, const int32_t* positions, void* out, bool isBf16, int64_t T_, int64_t H, int64_t Dh,
               float theta, float factor, float sign, KernelStatus* status);

}  // namespace rope_kernels
}  // namespace osp
