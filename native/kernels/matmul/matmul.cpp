// matmul: argument checks, allocation and dispatch to the CPU or CUDA kernels (maths in matmul.h).
#include "matmul.h"

#include "../../core/check.h"
#include "../../core/cuda_backend.h"
#include "cublas.h"

namespace osp {

Tensor matmul(const Tensor& a, const Tensor& b, bool transA, bool transB, MatmulImpl impl, const Tensor* accumulate, bool tf32) {
  ArgCheck c{"matmul"};
  c.dims(a, "a", 2);
  c.dims(b, "b", 2);
  c.contiguous(a, "a");
  c.contiguous(b, "b");
  c.sameDevice(a, "a", b, "b");
  c.floating(a, "a");
  c.floating(b, "b");
  c.sameDtype(a, "a", b, "b");
  const int64_t M = transA ? a.shape[1] : a.shape[0], K = transA ? a.shape[0] : a.shape[1];
  const int64_t Kb = transB ? b.shape[1] : b.shape[0], N = transB ? b.shape[0] : b.shape[1];
  if (K != Kb)
    typeError("matmul: a is " + shapeString(a.shape) + " and b is " + shapeString(b.shape) + "; op(a) has " +
              std::to_string(K) + " columns but op(b) has " + std::to_string(Kb) + " rows (transA " +
              (transA ? "true" : "false") + ", transB " + (transB ? "true" : "false") + "); expected them equal");
  // [M, 0] x [0, N] is a valid [M, N] of zeros however large M and N: refuse it by name.
  checkedNumel({M, N}, a.dtype, "matmul: a and b: the result's shape");
  const bool acc = accumulate != nullptr;
  if (acc) {
    const Tensor& t = *accumulate;
    c.sameDevice(a, "a", t, "accumulate");
    c.sameDtype(a, "a", t, "accumulate");
    c.contiguous(t, "accumulate");
    if (t.shape.size() != 2 || t.shape[0] != M || t.shape[1] != N)
      rangeError("matmul: accumulate has shape " + shapeString(t.shape) + "; expected [" + std::to_string(M) + ", " + std::to_string(N) +
                 "] (the product's)");
    if (M == 0 || N == 0 || K == 0) return t;
  }
  if (M == 0 || N == 0) return Tensor::empty({M, N}, a.dtype, a.device);
  if (K == 0) return Tensor::zeros({M, N}, a.dtype, a.device);
  Tensor out = acc ? *accumulate : Tensor::empty({M, N}, a.dtype, a.device);
  (void)tf32;  // used by the cuBLAS path only
  if (a.device == Device::CPU) {
    if (a.dtype == DType::F64)
      matmul_kernels::reference(a.data<double>(), b.data<double>(), out.data<double>(), M, N, K, transA, transB, acc);
    else matmul_kernels::cpuF32(a.data<float>(), b.data<float>(), out.data<float>(), M, N, K, transA, transB, acc);
  } else {
#ifdef OSP_WITH_CUDA
    const bool useCublas = impl == MatmulImpl::Cublas || (impl == MatmulImpl::Auto && cublas::available());
    if (useCublas) {
      cublas::gemm(a.raw(), b.raw(), out.raw(), a.dtype == DType::BF16, M, N, K, transA, transB, acc, tf32);
      return out;
    }
    if ((M + 63) / 64 > 65535)
      rangeError("matmul: op(a) has " + std::to_string(M) + " rows; the CUDA kernel handles at most " +
                 std::to_string(65535 * 64));
    matmul_kernels::gemmCuda(a.raw(), b.raw(), out.raw(), a.dtype == DType::BF16, M, N, K, transA, transB, acc);
    cuda::checkLaunch("matmul");
#endif
  }
  return out;
}

}  // namespace osp
