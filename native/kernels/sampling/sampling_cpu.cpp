// CPU token sampling (maths in sampling.h): one row at a time, rows spread over the thread pool.
// T = double is the f64 reference; T = float runs the same steps in f32 arithmetic. Each row
// depends only on its own logits and (seed, stream, step), so the result is the same for any
// thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../../core/parallel.h"
#include "sampling.h"

namespace osp::sampling {

namespace {

template <typename T>
void sampleRow(const T* x, int64_t V, int64_t row, int32_t stream, int32_t step, const Params& p, int32_t& token,
               T& logprob, T& modelLogprob, KernelStatus* status, std::vector<T>& vals, std::vector<int64_t>& idx) {
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
  T z = 0;
  for (int64_t v = 0; v < V; v++)
    if (keptK(x[v])) z += weight(x[v]);

  // Top-p: walk the top-k survivors from the largest logit down until the mass reaches p * Z_k;
  // the logit reached is the cut-off (ties with it are kept).
  if (p.topP < 1) {
    idx.clear();
    for (int64_t v = 0; v < V; v++)
      if (keptK(x[v])) idx.push_back(v);
    // Sorted prefixes of growing length (64, 128, ...): the nucleus is usually a small part of the
    // vocabulary. The order is total (ties by index), so the running sum is the same for any length.
    auto before = [&](int64_t a, int64_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); };
    const T target = static_cast<T>(p.topP) * z;
    T cutP = x[idx.back()];
    const size_t total = idx.size();
    for (size_t n = std::min<size_t>(64, total);; n = std::min(2 * n, total)) {
      std::partial_sort(idx.begin(), idx.begin() + n, idx.end(), before);
      T cum = 0;
      bool reached = false;
      for (size_t j = 0; j < n && !reached; j++) {
        cum += weight(x[idx[j]]);
        if (cum >= target) {
          cutP = x[idx[j]];
          reached = true;
        }
      }
      if (reached || n == total) break;
    }
    if (cutP > cut) {
      cut = cutP;
      z = 0;
      for (int64_t v = 0; v < V; v++)
        if (keptK(x[v])) z += weight(x[v]);
    }
  }

  // The draw: the first kept token in index order whose running mass exceeds u Z.
  const T target = static_cast<T>(uniformAt(p.seed, stream, step)) * z;
  T cum = 0;
  int64_t chosen = -1, lastPositive = -1;
  for (int64_t v = 0; v < V; v++) {
    if (!keptK(x[v])) continue;
    const T w = weight(x[v]);
    if (w <= 0) continue;
    lastPositive = v;
    cum += w;
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
    std::vector<int64_t> idx;
    for (int64_t b = b0; b < b1; b++)
      sampleRow(logits + b * V, V, b, streams[b], steps[b], p, tokens[b], logprobs[b], modelLogprobs[b], status, vals, idx);
  });
}

template void sampleCpu<float>(const float*, const int32_t*, const int32_t*, int64_t, int64_t, const Params&, int32_t*,
                               float*, float*, KernelStatus*);
template void sampleCpu<double>(const double*, const int32_t*, const int32_t*, int64_t, int64_t, const Params&, int32_t*,
                                double*, double*, KernelStatus*);

}  // namespace osp::sampling
