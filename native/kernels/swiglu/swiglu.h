// SwiGLU (the Llama MLP's gate): out = silu(gate) * up, silu(g) = g sigmoid(g); gate, up [T, F].
// Backward, with s = sigmoid(g): dgate = dout * up * s * (1 + g (1 - s)), dup = dout * g * s.
//
// Cost: forward reads 2 and writes 1 element per position, backward reads 3 and writes 2; a few
// flops and one exp each. Memory-bound; fusing it saves the silu(gate) intermediate of the
// unfused composition (one [T, F] write and read each way).
//
// CPU: f64 a plain loop, f32 the same template over the thread pool (elementwise: no order
// question). CUDA: grid-stride loops, f32 arithmetic on f32 or bf16 storage; outputs in the
// inputs' dtype. Pinned by test/modelOps.test.ts (f64 reference, finite differences) and test/gpu.test.ts.
#pragma once
#include <cstdint>

#include "../../core/tensor.h"

namespace osp {

struct SwigluGrads {
  Tensor gradGate, gradUp;
};

Tensor swiglu(const Tensor& gate, const Tensor& up);
SwigluGrads swigluBackward(const Tensor& gate, const Tensor& up, const Tensor& gradOut);

namespace swiglu_kernels {

template <typename T>
void forwardCpu(const T* gate, const T* up, T* out, int64_t n, bool threaded);
template <typename T>
void backwardCpu(const T* gate, const T* up, const T* g, T* dgate, T* dup, int64_t n, bool threaded);

void forwardCuda(const void* gate, const void* up, void* out, bool isBf16, int64_t n);
void backwardCuda(const void* gate, const void* up, const void* g, void* dgate, void* dup, bool isBf16, int64_t n);

}  // namespace swiglu_kernels
}  // namespace osp
