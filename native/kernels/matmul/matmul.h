// matmul: C = op(A) · op(B), op(X) = X^T when its flag is set. op(A) is [M, K], op(B) is [K, N],
// C is [M, N], all row-major and contiguous; the transposes are read in place (no copy). The
// Linear layer of the model is y = matmul(x, W, transB) with backward dX = matmul(dY, W) and
// dW = matmul(dY, X, transA).
//
// Cost: 2MNK flops; compulsory traffic (M K + K N + M N) * sizeof(T) bytes, so at the model's
// shapes it is compute-bound (arithmetic intensity ~ min(M, N, K) / 3 flops per byte in f32).
//
// CPU f64: a plain triple loop accumulating in f64 (the ground truth of the tests). CPU f32: a
// blocked GEMM (Goto / BLIS, matmul_cpu.cpp): op(B) packed into micro-panels (a copy per thread;
// the packing absorbs both transposes), blocks of op(A) per task, and a register micro-kernel per
// ISA walks them: 14 x 32 on AVX-512, 6 x 16 on AVX2 + FMA, 6 x 16 portable (baseline), chosen at run time
// by simd::cpuIsa() (the best the CPU runs; OSP_CPU_ISA=avx512|avx2|baseline forces one). Blocks of
// C are spread over the thread pool; each C element sums its K terms in the same order (KC blocks
// in sequence, k in order within a block) whatever the thread count, so results are bitwise
// reproducible under any OSP_NUM_THREADS, and identical between avx512 and avx2.
// CUDA: f32 or bf16 inputs, f32 accumulation, output in the input dtype: cuBLAS (GemmEx) where it
// loads at run time (cublas.h), else a shared-memory tiled kernel (64 x 64 tile of C per 256-thread
// block, 4 x 4 per thread, K tiles of 16).
// K = 0 gives zeros. Pinned by test/matmul.test.ts (plain-TS f64 triple loop, finite differences
// of the backward identities, thread-count determinism) and test/matmulIsa.test.ts (each ISA path
// on shapes at every edge of its tiles and blocks, against an f64 reference).
#pragma once
#include <cstdint>

#include "../../core/tensor.h"

namespace osp {

// Which CUDA GEMM runs: cuBLAS when it loaded (see cublas.h), else osp's own; or one forced (tests, bench).
enum class MatmulImpl { Auto, Own, Cublas };

// Tensor-level op: validate, allocate, dispatch to CPU or CUDA. impl matters on CUDA only.
// accumulate: C += op(A) op(B) into that tensor ([M, N], contiguous, the inputs' dtype and device:
// a GEMM with beta 1, so a gradient summed over chunks needs no extra pass), which is returned.
// tf32: f32 products on TF32 tensor cores through cuBLAS (faster, inputs rounded to 10 mantissa
// bits); osp's own CUDA kernel and the CPU compute in f32 whatever it says.
Tensor matmul(const Tensor& a, const Tensor& b, bool transA, bool transB, MatmulImpl impl = MatmulImpl::Auto,
              const Tensor* accumulate = nullptr, bool tf32 = false);

namespace matmul_kernels {

// CPU reference: c[i, j] = sum_k op(a)[i, k] op(b)[k, j] summed in T, k in order. Single-threaded.
template <typename T>
void reference(const T* a, const T* b, T* c, int64_t M, int64_t N, int64_t K, bool transA, bool transB, bool accumulate = false);

// CPU fast path for f32: packed, blocked, threaded; deterministic in the thread count. K >= 1.
// Throws (RangeError) when OSP_CPU_ISA names an unknown ISA or one this CPU lacks.
void cpuF32(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K, bool transA, bool transB,
            bool accumulate = false);

// CUDA: a, b, c f32 or bf16 (isBf16), f32 accumulation. Queued on the osp stream. K >= 1.
void gemmCuda(const void* a, const void* b, void* c, bool isBf16, int64_t M, int64_t N, int64_t K, bool transA, bool transB,
              bool accumulate = false);

}  // namespace matmul_kernels
}  // namespace osp
