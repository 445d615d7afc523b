// CPU causal attention (maths in attention.h): o, lse and dq over (token, head) pairs, dk and dv
// over (token, kv head) pairs on the pool; every sum in double and in a fixed order, so results do
// not depend on the thread count.
#include <cmath>
#include <vector>

#include "../../core/parallel.h"
#include "attention.h"

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
void forwardCpu(const T* q, const T* k, const T* v, const int32_t* starts, T* out, T* lse, int64_t T_, int64_t H,
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
void backwardCpu(const T* q, const T* k, const T* v, const int32_t* starts, const int32_t* ends, const T* out, const T* lse,
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

template void forwardCpu<float>(const float*, const float*, const float*, const int32_t*, float*, float*, int64_t, int64_t,
                                int64_t, int64_t, double);
template void forwardCpu<double>(const double*, const double*, const double*, const int32_t*, double*, double*, int64_t,
                                 int64_t, int64_t, int64_t, double);
template void backwardCpu<float>(const float*, const float*, const float*, const int32_t*, const int32_t*, const float*,
                                 const float*, const float*, float*, float*, float*, int64_t, int64_t, int64_t, int64_t,
                                 double);
template void backwardCpu<double>(const double*, const double*, const double*, const int32_t*, const int32_t*,
                                  const double*, const double*, const double*, double*, double*, double*, int64_t, int64_t,
                                  int64_t, int64_t, double);

}  // namespace osp::attention
