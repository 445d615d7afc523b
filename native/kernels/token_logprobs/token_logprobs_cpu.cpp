// CPU token log-probs: the scalar reference (any float type) and the vectorised f32 path.
// See token_logprobs.h for the maths. Rows are independent, so both parallelise over rows.
// The f32 path has two builds of its row functions, picked at run time: AVX-512 (16 lanes, the exp
// of simd.h's AVX-512 block) where the CPU has it, else the 8-lane vector code (AVX2 + FMA, or the
// baseline). The forward reads each row once from memory; the goal is the two-thread read
// bandwidth that `npm run bench` measures next to it ("%read" of the fused forward row). The
// backward given the forward's logsumexp reads each row once and writes it once (its goal: the
// copy bandwidth, "%copy" of its bench row); without it, it first reads the row for the logsumexp.
#include <cmath>
#include <algorithm>
#include <cstdlib>
#include <limits>

#include "../../core/parallel.h"
#include "../../core/simd.h"
#include "token_logprobs.h"

namespace osp::token_logprobs {

namespace {

// Online max/sum over one row; returns false if the row has NaN/+Inf or no finite value.
template <typename T>
bool rowLogSumExpRef(const T* x, int64_t V, T& lse) {
  T m = -std::numeric_limits<T>::infinity(), s = 0;
  for (int64_t v = 0; v < V; v++) {
    T xv = x[v];
    if (xv == -std::numeric_limits<T>::infinity()) continue;
    if (xv > m) {
      s = s * std::exp(m - xv) + 1;
      m = xv;
    } else {
      s += std::exp(xv - m);  // NaN propagates into s
    }
  }
  lse = m + std::log(s);
  return std::isfinite(m) && std::isfinite(s) && s > 0;
}

}  // namespace

template <typename T>
void forwardReference(const T* logits, const int32_t* targets, T* out, T* lseOut, int64_t N, int64_t V,
                      int32_t ignoreIndex, KernelStatus* status) {
  for (int64_t n = 0; n < N; n++) {
    const int32_t t = targets[n];
    if (t == ignoreIndex) {
      out[n] = 0;
      if (lseOut) lseOut[n] = 0;
      continue;
    }
    if (t < 0 || t >= V) {
      reportStatus(status, StatusTargetOutOfRange, n);
      out[n] = std::numeric_limits<T>::quiet_NaN();
      if (lseOut) lseOut[n] = std::numeric_limits<T>::quiet_NaN();
      continue;
    }
    T lse;
    if (!rowLogSumExpRef(logits + n * V, V, lse)) reportStatus(status, StatusNonFiniteRow, n);
    out[n] = logits[n * V + t] - lse;
    if (lseOut) lseOut[n] = lse;
  }
}

template <typename T>
void backwardReference(const T* logits, const int32_t* targets, const T* g, const T* lseIn, T* dlogits, int64_t N,
                       int64_t V, int32_t ignoreIndex, KernelStatus* status) {
  for (int64_t n = 0; n < N; n++) {
    const T* x = logits + n * V;
    T* d = dlogits + n * V;  // may alias x (in place): each element is read before it is written
    const int32_t t = targets[n];
    if (t == ignoreIndex) {
      for (int64_t v = 0; v < V; v++) d[v] = 0;
      continue;
    }
    if (t < 0 || t >= V) {
      reportStatus(status, StatusTargetOutOfRange, n);
      for (int64_t v = 0; v < V; v++) d[v] = std::numeric_limits<T>::quiet_NaN();
      continue;
    }
    T lse;
    if (lseIn) {  // one pass: the forward's logsumexp, and the row's NaN/+Inf check folded into the write
      lse = lseIn[n];
      if (!std::isfinite(lse)) reportStatus(status, StatusNonFiniteValue, n);
    } else if (!rowLogSumExpRef(x, V, lse)) {
      reportStatus(status, StatusNonFiniteRow, n);
    }
    const T gn = g[n];
    bool finiteRow = true;
    for (int64_t v = 0; v < V; v++) {
      const T xv = x[v];
      finiteRow = finiteRow && xv < std::numeric_limits<T>::infinity();
      d[v] = -gn * std::exp(xv - lse);
    }
    if (!finiteRow) reportStatus(status, StatusNonFiniteRow, n);
    d[t] += gn;
  }
}

template void forwardReference<float>(const float*, const int32_t*, float*, float*, int64_t, int64_t, int32_t,
                                      KernelStatus*);
template void forwardReference<double>(const double*, const int32_t*, double*, double*, int64_t, int64_t, int32_t,
                                       KernelStatus*);
template void backwardReference<float>(const float*, const int32_t*, const float*, const float*, float*, int64_t,
                                       int64_t, int32_t, KernelStatus*);
template void backwardReference<double>(const double*, const int32_t*, const double*, const double*, double*, int64_t,
                                        int64_t, int32_t, KernelStatus*);

// ---- vectorised f32 ----------------------------------------------------------------------------

namespace {

constexpr int64_t kChunk = 2048;  // 8 KiB of a row: stays in L1 between its max and its exp-sum

// One pass over the row in L1-sized chunks: chunk max, rescale the running sum if the max grew,
// then add the chunk's exps. Memory traffic is one read of the row.
OSP_SIMD_CLONES
bool rowLogSumExpF32(const float* x, int64_t V, float& lse) {
  using namespace simd;
  float m = -INFINITY, s = 0.f;
  for (int64_t c0 = 0; c0 < V; c0 += kChunk) {
    const int64_t c1 = c0 + kChunk < V ? c0 + kChunk : V;
    const int64_t cv = c0 + (c1 - c0) / W * W;
    f8 vm = splat(-INFINITY);
    i8 ok = i8{} - 1;  // lanes stay all-ones while every value is < +Inf (false for NaN and +Inf)
    for (int64_t v = c0; v < cv; v += W) {
      f8 xv = load(x + v);
      vm = vmax(vm, xv);
      ok &= (xv < splat(INFINITY));
    }
    float cm = hmax(vm);
    bool good = true;
    for (int i = 0; i < W; i++) good = good && ok[i] != 0;
    for (int64_t v = cv; v < c1; v++) {
      cm = x[v] > cm ? x[v] : cm;
      good = good && x[v] < INFINITY;
    }
    if (!good) {
      lse = NAN;
      return false;
    }
    if (cm == -INFINITY) continue;  // every entry of the chunk is masked
    if (cm > m) {
      s = m == -INFINITY ? 0.f : s * std::exp(m - cm);
      m = cm;
    }
    const f8 mv = splat(m);
    f8 acc0 = splat(0.f), acc1 = splat(0.f);
    int64_t v = c0;
    for (; v + 2 * W <= cv; v += 2 * W) {
      acc0 += fastExp(load(x + v) - mv);
      acc1 += fastExp(load(x + v + W) - mv);
    }
    for (; v < cv; v += W) acc0 += fastExp(load(x + v) - mv);
    float cs = hsum(acc0 + acc1);
    for (; v < c1; v++) cs += fastExp1(x[v] - m);
    s += cs;
  }
  lse = m + std::log(s);
  return std::isfinite(m) && std::isfinite(s) && s > 0;
}

// d = -gn exp(x - lse) over the row, one read and one write (d may alias x); returns false if the
// row holds NaN or +Inf (the check rides on the loads: no extra pass).
OSP_SIMD_CLONES
bool rowBackwardF32(const float* x, float* d, int64_t V, float lse, float gn) {
  using namespace simd;
  const f8 lv = splat(lse), ng = splat(-gn);
  i8 ok = i8{} - 1;
  int64_t v = 0;
  for (; v + W <= V; v += W) {
    const f8 xv = load(x + v);
    ok &= (xv < splat(INFINITY));
    store(d + v, ng * fastExp(xv - lv));
  }
  bool good = true;
  for (int i = 0; i < W; i++) good = good && ok[i] != 0;
  for (; v < V; v++) {
    good = good && x[v] < INFINITY;
    d[v] = -gn * fastExp1(x[v] - lse);
  }
  return good;
}

#ifdef OSP_HAVE_AVX512_PATH
// The same two row functions in 16 lanes. Row tails are masked loads that read -Inf (exp 0, and
// no effect on the max), so there is no scalar tail; masked stores write only the row.
OSP_TARGET_AVX512 static inline __mmask16 tailMask(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
}

OSP_TARGET_AVX512
bool rowLogSumExpF32Avx512(const float* x, int64_t V, float& lse) {
  const __m512 ninf = _mm512_set1_ps(-INFINITY), pinf = _mm512_set1_ps(INFINITY);
  float m = -INFINITY, s = 0.f;
  for (int64_t c0 = 0; c0 < V; c0 += kChunk) {
    const int64_t c1 = c0 + kChunk < V ? c0 + kChunk : V;
    __m512 vm0 = ninf, vm1 = ninf;
    __mmask16 ok = 0xFFFF;  // lanes stay set while every value is < +Inf (false for NaN and +Inf)
    int64_t v = c0;
    for (; v + 32 <= c1; v += 32) {
      const __m512 a = _mm512_loadu_ps(x + v), b = _mm512_loadu_ps(x + v + 16);
      vm0 = _mm512_max_ps(vm0, a);
      vm1 = _mm512_max_ps(vm1, b);
      ok &= _mm512_cmp_ps_mask(a, pinf, _CMP_LT_OQ) & _mm512_cmp_ps_mask(b, pinf, _CMP_LT_OQ);
    }
    for (; v < c1; v += 16) {
      const __m512 a = _mm512_mask_loadu_ps(ninf, tailMask(c1 - v), x + v);
      vm0 = _mm512_max_ps(vm0, a);
      ok &= _mm512_cmp_ps_mask(a, pinf, _CMP_LT_OQ);
    }
    if (ok != 0xFFFF) {
      lse = NAN;
      return false;
    }
    const float cm = _mm512_reduce_max_ps(_mm512_max_ps(vm0, vm1));
    if (cm == -INFINITY) continue;  // every entry of the chunk is masked
    if (cm > m) {
      s = m == -INFINITY ? 0.f : s * std::exp(m - cm);
      m = cm;
    }
    const __m512 mv = _mm512_set1_ps(m);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    v = c0;
    for (; v + 32 <= c1; v += 32) {
      acc0 = _mm512_add_ps(acc0, simd::fastExp16(_mm512_sub_ps(_mm512_loadu_ps(x + v), mv)));
      acc1 = _mm512_add_ps(acc1, simd::fastExp16(_mm512_sub_ps(_mm512_loadu_ps(x + v + 16), mv)));
    }
    for (; v < c1; v += 16)
      acc0 = _mm512_add_ps(acc0, simd::fastExp16(_mm512_sub_ps(_mm512_mask_loadu_ps(ninf, tailMask(c1 - v), x + v), mv)));
    s += _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));  // a fixed tree: deterministic
  }
  lse = m + std::log(s);
  return std::isfinite(m) && std::isfinite(s) && s > 0;
}

OSP_TARGET_AVX512
bool rowBackwardF32Avx512(const float* x, float* d, int64_t V, float lse, float gn) {
  const __m512 lv = _mm512_set1_ps(lse), ng = _mm512_set1_ps(-gn), ninf = _mm512_set1_ps(-INFINITY),
               pinf = _mm512_set1_ps(INFINITY);
  __mmask16 ok = 0xFFFF;
  int64_t v = 0;
  for (; v + 16 <= V; v += 16) {
    const __m512 a = _mm512_loadu_ps(x + v);
    ok &= _mm512_cmp_ps_mask(a, pinf, _CMP_LT_OQ);
    _mm512_storeu_ps(d + v, _mm512_mul_ps(ng, simd::fastExp16(_mm512_sub_ps(a, lv))));
  }
  if (v < V) {
    const __mmask16 mk = tailMask(V - v);
    const __m512 a = _mm512_mask_loadu_ps(ninf, mk, x + v);
    ok &= _mm512_cmp_ps_mask(a, pinf, _CMP_LT_OQ);
    _mm512_mask_storeu_ps(d + v, mk, _mm512_mul_ps(ng, simd::fastExp16(_mm512_sub_ps(a, lv))));
  }
  return ok == 0xFFFF;
}
#endif

// The row functions this CPU runs (AVX-512 where it has it).
struct RowFns {
  bool (*logSumExp)(const float*, int64_t, float&);
  bool (*backward)(const float*, float*, int64_t, float, float);
};
RowFns rowFns() {
#ifdef OSP_HAVE_AVX512_PATH
  if (simd::cpuIsa() == simd::Isa::Avx512) return {rowLogSumExpF32Avx512, rowBackwardF32Avx512};
#endif
  return {rowLogSumExpF32, rowBackwardF32};
}

}  // namespace

void forwardCpuF32(const float* logits, const int32_t* targets, float* out, float* lseOut, int64_t N, int64_t V,
                   int32_t ignoreIndex, KernelStatus* status) {
  const int64_t grain = V >= 4096 ? 1 : (4096 + V - 1) / V;
  const RowFns fns = rowFns();
  parallelFor(N, grain, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      const int32_t t = targets[n];
      if (t == ignoreIndex) {
        out[n] = 0.f;
        if (lseOut) lseOut[n] = 0.f;
        continue;
      }
      if (t < 0 || t >= V) {
        reportStatus(status, StatusTargetOutOfRange, n);
        out[n] = NAN;
        if (lseOut) lseOut[n] = NAN;
        continue;
      }
      float lse;
      if (!fns.logSumExp(logits + n * V, V, lse)) reportStatus(status, StatusNonFiniteRow, n);
      out[n] = logits[n * V + t] - lse;
      if (lseOut) lseOut[n] = lse;
    }
  });
}

void backwardCpuF32(const float* logits, const int32_t* targets, const float* g, const float* lseIn, float* dlogits,
                    int64_t N, int64_t V, int32_t ignoreIndex, KernelStatus* status) {
  const int64_t grain = V >= 4096 ? 1 : (4096 + V - 1) / V;
  const RowFns fns = rowFns();
  parallelFor(N, grain, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      const float* x = logits + n * V;
      float* d = dlogits + n * V;
      const int32_t t = targets[n];
      if (t == ignoreIndex) {
        std::fill(d, d + V, 0.f);
        continue;
      }
      if (t < 0 || t >= V) {
        reportStatus(status, StatusTargetOutOfRange, n);
        std::fill(d, d + V, NAN);
        continue;
      }
      float lse;
      if (lseIn) {  // one pass: the forward's logsumexp (bitwise what logSumExp would give again)
        lse = lseIn[n];
        if (!std::isfinite(lse)) reportStatus(status, StatusNonFiniteValue, n);
      } else if (!fns.logSumExp(x, V, lse)) {
        reportStatus(status, StatusNonFiniteRow, n);
      }
      if (!fns.backward(x, d, V, lse, g[n])) reportStatus(status, StatusNonFiniteRow, n);
      d[t] += g[n];  // one element of the row just written: still in L1
    }
  });
}

}  // namespace osp::token_logprobs
