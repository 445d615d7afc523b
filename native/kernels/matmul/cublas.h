// cuBLAS found at run time. The addon is built without cuBLAS headers or libraries (this development
// machine has neither), so the handful of entry points the matmul needs are declared here and looked
// up with dlopen/dlsym in libcublas.so.{13,12,11} (or the file OSP_CUBLAS_LIB names: e.g. the copy
// inside a PyTorch install, site-packages/nvidia/cublas/lib/libcublas.so.12). When it is absent, or
// OSP_CUBLAS=0, matmul runs osp's own tiled kernel (matmul.cu) instead.
//
// C = op(A) op(B) in row-major is computed as the column-major C^T = op(B)^T op(A)^T, which reads
// the same buffers with the operands swapped; f32 uses CUBLAS_COMPUTE_32F (true f32 products, as the
// tests compare against f64; matmul({ tf32: true }) per call, or OSP_TF32=1 for every call, uses TF32 tensor cores), bf16 uses bf16 inputs and output
// with f32 accumulation. cuBLAS runs on osp's stream, so ordering with the other kernels is kept.
// Pinned by test/gpu.test.ts (matmul against the CPU f64 reference, both paths) on a GPU machine.
#pragma once
#include <cstdint>
#include <string>

namespace osp::cublas {

// Whether cuBLAS is loaded and will be used (loads it on the first call; never throws).
bool available();
// "cuBLAS <version> (<library path>)" when loaded, else why not.
std::string describe();
// C = op(A) op(B) (accumulate: C += op(A) op(B), beta 1), row-major, f32 or bf16 (isBf16) on the
// device; tf32: f32 products on TF32 tensor cores (CUBLAS_COMPUTE_32F_FAST_TF32: inputs rounded to
// 10 mantissa bits, f32 accumulation). Throws OspError on a cuBLAS error.
void gemm(const void* a, const void* b, void* c, bool isBf16, int64_t M, int64_t N, int64_t K, bool transA, bool transB,
          bool accumulate = false, bool tf32 = false);

}  // namespace osp::cublas
