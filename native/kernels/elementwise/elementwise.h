// Elementwise building blocks for the unfused reference compositions (the preference losses
// written as separate ops, for `npm run bench` and as a cross-check of the fused kernel):
//   binary: a + b, a - b, a * b (same shape)        unary: -x, sigmoid, softplus, log sigmoid, x^2, exp, log
//   affine: scale * x + shift                        sum: all elements, in a fixed order -> [1]
//   copyInto: dst <- src converted to dst's dtype, in place (dst may be a contiguous view, e.g. a
//             narrow() along dim 0: how a chunk's result lands in its rows of a bigger tensor, and
//             how f32 master weights are written back into a bf16 model)
// binary, unary and affine also serve the model (residual adds, zeroed gradients): on CUDA they
// take f32 or bf16 (f32 arithmetic); sum stays f32.
// Each op reads its inputs and writes one output: purely memory-bound. softplus and log sigmoid
// use the stable forms (see preference_loss.h). Pinned by test/elementwise.test.ts.
#pragma once
#include <cstdint>

#include "../../core/tensor.h"

namespace osp {

enum class BinaryOp { Add = 0, Sub = 1, Mul = 2 };
enum class UnaryOp { Neg = 0, Sigmoid = 1, Softplus = 2, LogSigmoid = 3, Square = 4, Exp = 5, Log = 6 };

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
Tensor unary(UnaryOp op, const Tensor& x);
Tensor affine(const Tensor& x, double scale, double shift);
Tensor sum(const Tensor& x);
void copyInto(const Tensor& dst, const Tensor& src);

namespace elementwise {

void binaryCuda(int op, const void* a, const void* b, void* out, bool isBf16, int64_t n);
void unaryCuda(int op, const void* x, void* out, bool isBf16, int64_t n);
void affineCuda(const void* x, void* out, bool isBf16, float scale, float shift, int64_t n);
void castCuda(const void* src, bool srcBf16, void* dst, bool dstBf16, int64_t n);
void sumCuda(const float* x, float* out, int64_t n);

}  // namespace elementwise
}  // namespace osp
