// Elementwise building blocks for the unfused reference compositions (the preference losses
// written as separate ops, for `npm run bench` and as a cross-check of the fused kernel):
//   binary: a + b, a - b, a * b (same shape)        unary: -x, sigmoid, softplus, log sigmoid, x^2, exp, log
//   affine: scale * x + shift                        sum: all elements, in a fixed order -> [1]
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

namespace elementwise {

void binaryCuda(int op, const float* a, const float* b, float* out, int64_t n);
void unaryCuda(int op, const float* x, float* out, int64_t n);
void affineCuda(const float* x, float* out, float scale, float shift, int64_t n);
void sumCuda(const float* x, float* out, int64_t n);

}  // namespace elementwise
}  // namespace osp
