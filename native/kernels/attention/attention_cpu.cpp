// CPU causal attention (maths in attention.h). f64: the reference, plain loops over (token, head)
// pairs for o, lse and dq and over (token, kv head) pairs for dk and dv, every sum in double. f32:
// the tiled SIMD kernels of attention_cpu_tiles.h, compiled here once per instruction set and
// picked at run time. Both sum in a fixed order, so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../../core/parallel.h"
#include "../../core/simd.h"
#include "attention.h"

// One copy of the f32 kernels per instruction set, each in its own namespace: AVX-512 and AVX2 (+
// FMA) where GCC targets x86-64 (picked by the CPU's features at run time, as simd.h's clones are),
// and a baseline copy everywhere. Register tiles: MR x NV vectors of accumulators, sized to the
// register file (32 zmm: 8 x 2 = 16 accumulators; 16 ymm: 4 x 2 = 8, leaving room for operands).
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define OSP_ATTN_MULTI_ISA 1
namespace osp::attention::avx512 {
#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512dq,avx512vl")
#define OSP_TILE_VW 16
#define OSP_TILE_MR 8
#define OSP_TILE_NV 2
#include "attention_cpu_tiles.h"
#undef OSP_TILE_VW
#undef OSP_TILE_MR
#undef OSP_TILE_NV
#pragma GCC pop_options
}  // namespace osp::attention::avx512
namespace osp::attention::avx2 {
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define OSP_TILE_VW 8
#define OSP_TILE_MR 4
#define OSP_TILE_NV 2
#include "attention_cpu_tiles.h"
#undef OSP_TILE_VW
#undef OSP_TILE_MR
#undef OSP_TILE_NV
#pragma GCC pop_options
}  // namespace osp::attention::avx2
#endif
namespace osp::attention::baseline {
#define OSP_TILE_VW 4
#define OSP_TILE_MR 4
#define OSP_TILE_NV 2
#include "attention_cpu_tiles.h"
#undef OSP_TILE_VW
#undef OSP_TILE_MR
#undef OSP_TILE_NV
}  // namespace osp::attention::baseline

namespace osp::attention {

namespace {

template <typename T>
double dotRow(const T* a, const T* b, int64_t Dh) {
  double s = 0;
  for (int64_t d = 0; d < Dh; d++) s += double(a[d]) * double(b[d]);
  return s;
}

// Work items cost about (keys scanned) x Dh: aim for chunks of ~16k multiply-adds.
int64_t grainFor(int64_t T_, int64_t Dh) {
  const int64_t perItem = (T_ / 2 + 1) * (Dh + 1);
  return perItem >= 16384 ? 1 : (16384 + perItem - 1) / perItem;
}

}  // namespace

template <typename T>
void forwardReference(const T* q, const T* k, const T* v, const int32_t* starts, T* out, T* lse, int64_t T_, int64_t H,
                int64_t Hkv, int64_t Dh, double scale) {
  const int64_t group = H / Hkv;
  parallelFor(T_ * H, grainFor(T_, Dh), [&](int64_t b, int64_t e) {
    std::vector<double> s, acc(static_cast<size_t>(Dh));
    for (int64_t n = b; n < e; n++) {
      const int64_t i = n / H, h = n % H, g = h / group, s0 = starts[i];
      const T* qi = q + (i * H + h) * Dh;
      s.assign(static_cast<size_t>(i - s0 + 1), 0.0);
      double m = -INFINITY;
      for (int64_t j = s0; j <= i; j++) {
        s[j - s0] = scale * dotRow(qi, k + (j * Hkv + g) * Dh, Dh);
        m = std::max(m, s[j - s0]);
      }
      double sum = 0;
      for (auto& x : s) sum += (x = std::exp(x - m));
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = s0; j <= i; j++) {
        const T* vj = v + (j * Hkv + g) * Dh;
        const double p = s[j - s0];
        for (int64_t d = 0; d < Dh; d++) acc[d] += p * double(vj[d]);
      }
      T* o = out + (i * H + h) * Dh;
      for (int64_t d = 0; d < Dh; d++) o[d] = T(acc[d] / sum);
      lse[n] = T(m + std::log(sum));
    }
  });
}

template <typename T>
void backwardReference(const T* q, const T* k, const T* v, const int32_t* starts, const int32_t* ends, const T* out, const T* lse,
                 const T* gradOut, T* dq, T* dk, T* dv, int64_t T_, int64_t H, int64_t Hkv, int64_t Dh, double scale) {
  const int64_t group = H / Hkv;
  std::vector<double> delta(static_cast<size_t>(T_ * H));
  parallelFor(T_ * H, Dh >= 4096 ? 1 : (4096 + Dh) / (Dh + 1), [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; n++) delta[n] = dotRow(gradOut + n * Dh, out + n * Dh, Dh);
  });
  // dq over (query, head).
  parallelFor(T_ * H, grainFor(T_, Dh), [&](int64_t b, int64_t e) {
    std::vector<double> acc(static_cast<size_t>(Dh));
    for (int64_t n = b; n < e; n++) {
      const int64_t i = n / H, h = n % H, g = h / group;
      const T* qi = q + n * Dh;
      const T* gi = gradOut + n * Dh;
      const double l = double(lse[n]), D = delta[n];
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = starts[i]; j <= i; j++) {
        const T* kj = k + (j * Hkv + g) * Dh;
        const double p = std::exp(scale * dotRow(qi, kj, Dh) - l);
        const double ds = p * (dotRow(gi, v + (j * Hkv + g) * Dh, Dh) - D);
        for (int64_t d = 0; d < Dh; d++) acc[d] += ds * double(kj[d]);
      }
      T* o = dq + n * Dh;
      for (int64_t d = 0; d < Dh; d++) o[d] = T(scale * acc[d]);
    }
  });
  // dk, dv over (key, kv head): heads of the group in order, then queries in order.
  parallelFor(T_ * Hkv, grainFor(T_, Dh), [&](int64_t b, int64_t e) {
    std::vector<double> ak(static_cast<size_t>(Dh)), av(static_cast<size_t>(Dh));
    for (int64_t n = b; n < e; n++) {
      const int64_t j = n / Hkv, g = n % Hkv;
      const T* kj = k + n * Dh;
      const T* vj = v + n * Dh;
      std::fill(ak.begin(), ak.end(), 0.0);
      std::fill(av.begin(), av.end(), 0.0);
      for (int64_t h = g * group; h < (g + 1) * group; h++) {
        for (int64_t i = j; i < ends[j]; i++) {
          const int64_t r = i * H + h;
          const T* qi = q + r * Dh;
          const T* gi = gradOut + r * Dh;
          const double p = std::exp(scale * dotRow(qi, kj, Dh) - double(lse[r]));
          const double ds = p * (dotRow(gi, vj, Dh) - delta[r]);
          for (int64_t d = 0; d < Dh; d++) {
            ak[d] += ds * double(qi[d]);
            av[d] += p * double(gi[d]);
          }
        }
      }
      for (int64_t d = 0; d < Dh; d++) {
        dk[n * Dh + d] = T(scale * ak[d]);
        dv[n * Dh + d] = T(av[d]);
      }
    }
  });
}

// The instruction set of the f32 kernels: simd::cpuIsa(), the one choice every per-ISA kernel reads
// (the best the CPU has, or OSP_CPU_ISA; the tests use it to run every copy on one machine).
using simd::Isa;

Isa isa() {
#ifdef OSP_ATTN_MULTI_ISA
  return simd::cpuIsa();
#else
  (void)simd::cpuIsa();  // an OSP_CPU_ISA this build cannot honour is still an error
  return Isa::Baseline;
#endif
}

template <>
void forwardCpu<double>(const double* q, const double* k, const double* v, const int32_t* starts, double* out, double* lse,
                        int64_t T_, int64_t H, int64_t Hkv, int64_t Dh, double scale) {
  forwardReference(q, k, v, starts, out, lse, T_, H, Hkv, Dh, scale);
}

template <>
void backwardCpu<double>(const double* q, const double* k, const double* v, const int32_t* starts, const int32_t* ends,
                         const double* out, const double* lse, const double* gradOut, double* dq, double* dk, double* dv,
                         int64_t T_, int64_t H, int64_t Hkv, int64_t Dh, double scale) {
  backwardReference(q, k, v, starts, ends, out, lse, gradOut, dq, dk, dv, T_, H, Hkv, Dh, scale);
}

template <>
void forwardCpu<float>(const float* q, const float* k, const float* v, const int32_t* starts, float* out, float* lse,
                       int64_t T_, int64_t H, int64_t Hkv, int64_t Dh, double scale) {
  const float s = static_cast<float>(scale);
  switch (isa()) {
#ifdef OSP_ATTN_MULTI_ISA
    case Isa::Avx512: return avx512::forward(q, k, v, starts, out, lse, T_, H, Hkv, Dh, s);
    case Isa::Avx2: return avx2::forward(q, k, v, starts, out, lse, T_, H, Hkv, Dh, s);
#endif
    default: return baseline::forward(q, k, v, starts, out, lse, T_, H, Hkv, Dh, s);
  }
}

template <>
void backwardCpu<float>(const float* q, const float* k, const float* v, const int32_t* starts, const int32_t*,
                        const float* out, const float* lse, const float* gradOut, float* dq, float* dk, float* dv,
                        int64_t T_, int64_t H, int64_t Hkv, int64_t Dh, double scale) {
  const float s = static_cast<float>(scale);
  switch (isa()) {
#ifdef OSP_ATTN_MULTI_ISA
    case Isa::Avx512: return avx512::backward(q, k, v, starts, out, lse, gradOut, dq, dk, dv, T_, H, Hkv, Dh, s);
    case Isa::Avx2: return avx2::backward(q, k, v, starts, out, lse, gradOut, dq, dk, dv, T_, H, Hkv, Dh, s);
#endif
    default: return baseline::backward(q, k, v, starts, out, lse, gradOut, dq, dk, dv, T_, H, Hkv, Dh, s);
  }
}

}  // namespace osp::attention
