// CPU token sampling (maths in sampling.h): one row at a time, rows spread over the thread pool.
// T = double is the f64 reference; T = float runs the same steps in f32 arithmetic. Each row
// depends only on its own logits and (seed, stream, step), so the result is the same for any
// thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "../../core/parallel.h"
#include "sampling.h"

namespace osp::sampling {

namespace {

// Descending-order key of a finite logit: the order-preserving unsigned key (sign bit flipped for
// positives, all bits for negatives), -0 taken as +0 (they are tied), then complemented so that an
// ascending sort of keys is a descending sort of logits.
template <typename T>
using KeyOf = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;

template <typename T>
KeyOf<T> descKey(T v) {
  using U = KeyOf<T>;
  constexpr U SIGN = U(1) << (8 * sizeof(U) - 1);
  U u = 0;
  if (v != 0) std::memcpy(&u, &v, sizeof(U));
  const U up = (u & SIGN) ? ~u : (u | SIGN);
  return ~up;
}

template <typename T>
struct RadixScratch {
  std::vector<KeyOf<T>> keys[2];
  std::vector<uint32_t> idx;
  std::vector<uint32_t> counts;
};

// Sorts idx (token indices) by descending x: a stable LSD radix sort on descKey, 11 bits a pass
// (3 passes for f32, 6 for f64), skipping the passes whose digit is the same for every element.
template <typename T>
void radixSortDescending(const T* x, std::vector<uint32_t>& idx, RadixScratch<T>& s) {
  using U = KeyOf<T>;
  constexpr int BITS = 11, BINS = 1 << BITS, PASSES = (8 * sizeof(U) + BITS - 1) / BITS;
  const size_t n = idx.size();
  if (n < 2) return;
  s.keys[0].resize(n);
  s.keys[1].resize(n);
  s.idx.resize(n);
  s.counts.assign(size_t(PASSES) * BINS, 0);
  std::vector<uint32_t>* ia = &idx;
  std::vector<uint32_t>* ib = &s.idx;
  U* ka = s.keys[0].data();
  U* kb = s.keys[1].data();
  uint32_t* counts = s.counts.data();
  for (size_t j = 0; j < n; j++) {
    const U k = descKey(x[idx[j]]);
    ka[j] = k;
    for (int q = 0; q < PASSES; q++) counts[q * BINS + ((k >> (BITS * q)) & (BINS - 1))]++;
  }
  for (int q = 0; q < PASSES; q++) {
    uint32_t* c = counts + q * BINS;
    if (c[(ka[0] >> (BITS * q)) & (BINS - 1)] == n) continue;  // one digit for all: the pass would not move anything
    uint32_t sum = 0;
    for (int d = 0; d < BINS; d++) {
      const uint32_t cd = c[d];
      c[d] = sum;
      sum += cd;
    }
    const uint32_t* src = ia->data();
    uint32_t* dst = ib->data();
    for (size_t j = 0; j < n; j++) {
      const U k = ka[j];
      const uint32_t at = c[(k >> (BITS * q)) & (BINS - 1)]++;
      kb[at] = k;
      dst[at] = src[j];
    }
    std::swap(ka, kb);
    std::swap(ia, ib);
  }
  if (ia != &idx) idx.swap(*ia);
}

template <typename T>
void sampleRow(const T* x, int64_t V, int64_t row, int32_t stream, int32_t step, const Params& p, int32_t& token,
               T& logprob, T& modelLogprob, KernelStatus* status, std::vector<T>& vals, std::vector<T>& w, std::vector<uint32_t>& idx, RadixScratch<T>& radix) {
  constexpr T NEG_INF = -std::numeric_limits<T>::infinity();
  // Pass 1: validity, finite count, max with its lowest index.
  bool bad = false;
  int64_t finite = 0, arg = -1;
  T m = NEG_INF;
  for (int64_t v = 0; v < V; v++) {
    const T xv = x[v];
    if (!(xv < std::numeric_limits<T>::infinity())) bad = true;  // NaN or +Inf
    else if (xv != NEG_INF) {
      finite++;
      if (xv > m) {
        m = xv;
        arg = v;
      }
    }
  }
  if (bad || finite == 0) {
    reportStatus(status, StatusNonFiniteRow, row);
    token = -1;
    logprob = modelLogprob = std::numeric_limits<T>::quiet_NaN();
    return;
  }
  T s = 0;
  for (int64_t v = 0; v < V; v++) s += std::exp(x[v] - m);  // exp(-Inf) = 0
  const T lse = m + std::log(s);

  if (p.temperature == 0 || static_cast<T>(p.temperature) == 0) {  // a temperature that rounds to 0 in T is greedy
    token = static_cast<int32_t>(arg);
    logprob = 0;
    modelLogprob = x[arg] - lse;
    return;
  }
  const T t = static_cast<T>(p.temperature);
  auto weight = [&](T xv) { return std::exp((xv - m) / t); };

  // Top-k: the k-th largest finite logit; every logit >= it is kept.
  T cut = NEG_INF;
  if (p.topK > 0 && p.topK < finite) {
    vals.clear();
    for (int64_t v = 0; v < V; v++)
      if (x[v] != NEG_INF) vals.push_back(x[v]);
    std::nth_element(vals.begin(), vals.begin() + (p.topK - 1), vals.end(), std::greater<T>());
    cut = vals[p.topK - 1];
  }
  auto keptK = [&](T xv) { return xv != NEG_INF && xv >= cut; };
  // w[v] = weight(x[v]) for the top-k survivors (the only ones read below), computed once.
  w.resize(V);
  T z = 0;
  for (int64_t v = 0; v < V; v++)
    if (keptK(x[v])) z += (w[v] = weight(x[v]));

  // Top-p: walk the top-k survivors from the largest logit down until the mass reaches p * Z_k;
  // the logit reached is the cut-off (ties with it are kept).
  if (p.topP < 1) {
    // The survivors in descending logit order. Tied logits have equal weights, so the order among
    // ties changes neither the running sums nor the cut-off: the result is bitwise that of a full
    // comparison sort. First a partial sort of the top 64 (cheap: a peaked row's nucleus is usually
    // within it), then, if the mass is not reached there, an LSD radix sort of all the survivors
    // (O(V), no comparisons).
    const T target = static_cast<T>(p.topP) * z;
    T cutP = NEG_INF;
    bool reached = false;
    auto walk = [&](const uint32_t* order, size_t n) {
      T cum = 0;
      for (size_t j = 0; j < n; j++) {
        cum += w[order[j]];
        if (cum >= target) {
          cutP = x[order[j]];
          return true;
        }
      }
      cutP = x[order[n - 1]];  // rounding left the sum short of p Z_k: every survivor is kept
      return false;
    };
    idx.clear();
    for (int64_t v = 0; v < V; v++)
      if (keptK(x[v])) idx.push_back(static_cast<uint32_t>(v));
    const size_t total = idx.size();
    const size_t head = std::min<size_t>(64, total);
    if (head < total) {
      auto before = [&](uint32_t a, uint32_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); };
      std::partial_sort(idx.begin(), idx.begin() + head, idx.end(), before);
      reached = walk(idx.data(), head);
    }
    if (!reached) {
      radixSortDescending(x, idx, radix);
      walk(idx.data(), total);
    }
    if (cutP > cut) {
      cut = cutP;
      z = 0;
      for (int64_t v = 0; v < V; v++)
        if (keptK(x[v])) z += w[v];
    }
  }

  // The draw: the first kept token in index order whose running mass exceeds u Z.
  const T target = static_cast<T>(uniformAt(p.seed, stream, step)) * z;
  T cum = 0;
  int64_t chosen = -1, lastPositive = -1;
  for (int64_t v = 0; v < V; v++) {
    if (!keptK(x[v])) continue;
    const T wv = w[v];
    if (wv <= 0) continue;
    lastPositive = v;
    cum += wv;
    if (cum > target) {
      chosen = v;
      break;
    }
  }
  if (chosen < 0) chosen = lastPositive;  // rounding left the running sum short of u Z
  token = static_cast<int32_t>(chosen);
  logprob = (x[chosen] - m) / t - std::log(z);
  modelLogprob = x[chosen] - lse;
}

}  // namespace

template <typename T>
void sampleCpu(const T* logits, const int32_t* streams, const int32_t* steps, int64_t B, int64_t V, const Params& p,
               int32_t* tokens, T* logprobs, T* modelLogprobs, KernelStatus* status) {
  const int64_t grain = V >= 4096 ? 1 : (4096 + V - 1) / V;
  parallelFor(B, grain, [&](int64_t b0, int64_t b1) {
    std::vector<T> vals;
    std::vector<T> w;
    std::vector<uint32_t> idx;
    RadixScratch<T> radix;
    for (int64_t b = b0; b < b1; b++)
      sampleRow(logits + b * V, V, b, streams[b], steps[b], p, tokens[b], logprobs[b], modelLogprobs[b], status, vals, w, idx, radix);
  });
}

template void sampleCpu<float>(const float*, const int32_t*, const int32_t*, int64_t, int64_t, const Params&, int32_t*,
                               float*, float*, KernelStatus*);
template void sampleCpu<double>(const double*, const int32_t*, const int32_t*, int64_t, int64_t, const Params&, int32_t*,
                                double*, double*, KernelStatus*);

}  // namespace osp::sampling
