// CPU kv cache (maths in kv_cache.h): the write validates every index first and copies the rows
// that no later index overwrites (so the last duplicate wins whatever the thread count); the
// attention runs over (query, head) pairs on the pool with every sum in double, in a fixed order.
#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>
#include <vector>

#include "../../core/parallel.h"
#include "kv_cache.h"

namespace osp::kv_cache {

namespace {

bool inRange(int32_t x, int64_t n) { return x >= 0 && x < n; }

template <typename T>
double dotRow(const T* a, const T* b, int64_t Dh) {
  double s = 0;
  for (int64_t d = 0; d < Dh; d++) s += double(a[d]) * double(b[d]);
  return s;
}

}  // namespace

template <typename T>
void writeCpu(T* cache, const T* values, const int32_t* slots, const int32_t* positions, int64_t N, int64_t S, int64_t L,
              int64_t row, KernelStatus* status) {
  for (int64_t i = 0; i < N; i++)
    if (!inRange(slots[i], S) || !inRange(positions[i], L)) {
      reportStatus(status, StatusIndexOutOfRange, i);
      return;
    }
  // keep[i]: no later row writes the same (slot, position).
  std::vector<char> keep(static_cast<size_t>(N), 1);
  std::unordered_map<int64_t, int64_t> last;
  last.reserve(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; i++) {
    auto [it, fresh] = last.emplace(int64_t(slots[i]) * L + positions[i], i);
    if (!fresh) {
      keep[it->second] = 0;
      it->second = i;
    }
  }
  parallelFor(N, row >= 4096 ? 1 : (4096 + row) / (row + 1), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++)
      if (keep[i]) std::copy(values + i * row, values + (i + 1) * row, cache + (int64_t(slots[i]) * L + positions[i]) * row);
  });
}

template <typename T>
void attentionCpu(const T* q, const T* k, const T* v, const int32_t* slots, const int32_t* positions, T* out, int64_t N,
                  int64_t H, int64_t Hkv, int64_t Dh, int64_t S, int64_t L, double scale, KernelStatus* status) {
  const int64_t group = H / Hkv;
  // Work items cost about (keys scanned) x Dh: aim for chunks of ~16k multiply-adds.
  int64_t maxKeys = 1;
  for (int64_t i = 0; i < N; i++) maxKeys = std::max<int64_t>(maxKeys, int64_t(positions[i]) + 1);
  const int64_t perItem = std::min(maxKeys, L + 1) * (Dh + 1);
  const int64_t grain = perItem >= 16384 ? 1 : (16384 + perItem - 1) / perItem;
  parallelFor(N * H, grain, [&](int64_t b, int64_t e) {
    std::vector<double> s, acc(static_cast<size_t>(Dh));
    for (int64_t n = b; n < e; n++) {
      const int64_t i = n / H, h = n % H, g = h / group;
      T* o = out + n * Dh;
      if (!inRange(slots[i], S) || !inRange(positions[i], L)) {
        reportStatus(status, StatusIndexOutOfRange, i);
        std::fill(o, o + Dh, std::numeric_limits<T>::quiet_NaN());
        continue;
      }
      const int64_t p = positions[i];
      const T* kb = k + int64_t(slots[i]) * L * Hkv * Dh;
      const T* vb = v + int64_t(slots[i]) * L * Hkv * Dh;
      const T* qi = q + n * Dh;
      s.assign(static_cast<size_t>(p + 1), 0.0);
      double m = -INFINITY;
      for (int64_t j = 0; j <= p; j++) {
        s[j] = scale * dotRow(qi, kb + (j * Hkv + g) * Dh, Dh);
        m = std::max(m, s[j]);
      }
      double sum = 0;
      for (auto& x : s) sum += (x = std::exp(x - m));
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j <= p; j++) {
        const T* vj = vb + (j * Hkv + g) * Dh;
        const double w = s[j];
        for (int64_t d = 0; d < Dh; d++) acc[d] += w * double(vj[d]);
      }
      for (int64_t d = 0; d < Dh; d++) o[d] = T(acc[d] / sum);
    }
  });
}

template void writeCpu<float>(float*, const float*, const int32_t*, const int32_t*, int64_t, int64_t, int64_t, int64_t,
                              KernelStatus*);
template void writeCpu<double>(double*, const double*, const int32_t*, const int32_t*, int64_t, int64_t, int64_t, int64_t,
                               KernelStatus*);
template void attentionCpu<float>(const float*, const float*, const float*, const int32_t*, const int32_t*, float*, int64_t,
                                  int64_t, int64_t, int64_t, int64_t, int64_t, double, KernelStatus*);
template void attentionCpu<double>(const double*, const double*, const double*, const int32_t*, const int32_t*, double*,
                                   int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, double, KernelStatus*);

}  // namespace osp::kv_cache
