// Scalar maths shared by the CPU and CUDA kernels, so both compute the same expression: OSP_HD marks
// a function for host and device alike, and the stable softplus and sigmoid never overflow (the
// preference losses, the elementwise ops and the samplers use them).
#pragma once
#include <cmath>

#ifdef __CUDACC__
#define OSP_HD __host__ __device__ __forceinline__
#else
#define OSP_HD inline
#endif

namespace osp {

// softplus(z) = log(1 + e^z) = max(z, 0) + log1p(e^-|z|).
template <typename T> OSP_HD T softplusStable(T z) {
  using std::exp;
  using std::log1p;
  return (z > 0 ? z : T(0)) + log1p(exp(-(z < 0 ? -z : z)));
}

template <typename T> OSP_HD T sigmoidStable(T z) {
  using std::exp;
  const T e = exp(-(z < 0 ? -z : z));  // in (0, 1]: never overflows
  return z >= 0 ? T(1) / (T(1) + e) : e / (T(1) + e);
}

}  // namespace osp
