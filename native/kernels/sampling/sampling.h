// Token sampling: one token per row of logits [B, V], with temperature, top-k and top-p (nucleus).
//
// Maths, for row b with logits l (finite or -Inf) and lse = logsumexp(l):
//   t == 0 (greedy; also a t that rounds to 0 in the arithmetic type, f32 on CUDA): the token is argmax l (the lowest index among equal maxima); logprob = 0.
//   t > 0: w_i = exp((l_i - m) / t), m = max l, over the kept set S:
//     top-k (k > 0): keep the tokens whose logit is >= the k-th largest finite logit (counted with
//       multiplicity), so every token tied with the k-th is kept; k >= the finite count keeps all.
//     top-p (p < 1): of those, keep the tokens whose logit is >= c, where c is the largest logit
//       value such that the mass of {i in top-k : l_i >= c} reaches p * Z_k (Z_k = sum of w over
//       top-k). That is the smallest highest-probability prefix whose mass reaches p, plus every
//       token tied in logit value with its last member (ties at a cut-off are all kept).
//     -Inf logits are never kept. Z = sum of w over S.
//     Draw: u = uniform(seed, streams[b], steps[b]) in [0, 1), 24 bits (exact in f32 and f64);
//     the token is the first of S in index order whose running sum of w exceeds u Z (if rounding
//     leaves the sum short, the last kept token with w > 0). logprob = (l_tok - m) / t - log Z,
//     the log-probability under the distribution actually sampled from.
//   modelLogprob = l_tok - lse: log_softmax of the raw logits (temperature 1, no truncation).
// The uniform is a pure function of (seed, stream, step) through splitmix64 (random_common.h), so
// a row's token does not depend on its position in the batch, the batch size or the thread count.
//
// Values: NaN or +Inf anywhere in a row, or a row with no finite logit (all -Inf), is a RangeError
// naming the row. seed is an integer in [0, 2^53); temperature finite and >= 0; topP in (0, 1]
// (1 = off); topK an integer >= 0 (0 = off).
//
// Cost per row: CPU: one pass for max/lse/argmax, an nth_element for top-k (O(V)); for top-p (only
// when p < 1) the top-k survivors in descending logit order: a partial sort of the top 64 (enough
// for a peaked row), else a stable LSD radix sort of all survivors on the order-preserving key of
// the logit (11 bits a pass, 3 passes for f32, 6 for f64, a pass skipped when all share its digit;
// O(V), no comparisons), then the running sum in that order up to p * Z_k. Tied logits have equal
// weights, so the order among ties does not matter: the cut-off, sums and draws are bitwise those
// of a full sort. (Should rounding leave the sum short of p * Z_k, as when p rounds to 1 in f32,
// every survivor is kept.) The weights are computed once and reused by the sums and the draw.
// CUDA: one block per row, f32 arithmetic, no sort: one pass for max/lse/argmax; top-k by a radix
// select on the order-preserving 32-bit key of the logits (4 passes of 256-bin shared-memory
// integer histograms, exact); top-p by bisection on that key (<= 32 passes, each a fixed-order block
// sum of w, so deterministic); the draw is one block-wide exclusive scan of per-thread contiguous
// chunk sums, then a serial scan of the one chunk that holds the crossing. A row of V = 32000 f32
// is 128 KB, so the repeated passes of a few hundred rows are served from L2.
// Pinned by test/sampling.test.ts (plain-TS f64 reference, chi-square fit, reproducibility, value
// checks) and test/gpuSampling.test.ts (CUDA against the CPU op).
#pragma once
#include <cstdint>

#include "../../core/errors.h"
#include "../../core/tensor.h"
#include "../random/random_common.h"

namespace osp {

struct SampleResult {
  Tensor tokens;         // [B] i32
  Tensor logprobs;       // [B] f32 (f64 for f64 logits)
  Tensor modelLogprobs;  // [B] same dtype as logprobs
};

// Tensor-level op: validates (seed, temperature, topP, topK are checked here too), allocates,
// dispatches to CPU or CUDA.
SampleResult sampleTokens(const Tensor& logits, const Tensor& streams, const Tensor& steps, double seed,
                          double temperature, double topP, double topK);

namespace sampling {

struct Params {
  uint64_t seed;
  double temperature;  // 0 = greedy
  double topP;         // 1 = off
  int64_t topK;        // 0 = off
};

// The row's uniform in [0, 1): 24 random bits, so the value is exact in f32 and f64 alike.
OSP_HD double uniformAt(uint64_t seed, int32_t stream, int32_t step) {
  const uint64_t key = (uint64_t(uint32_t(stream)) << 32) | uint64_t(uint32_t(step));
  const uint64_t r = random::splitmix64(random::splitmix64(seed ^ 0x5a4d504c45ull) ^ (key * 0xd1b54a32d192ed03ull));
  return double(r >> 40) * (1.0 / 16777216.0);
}

// CPU: rows over the thread pool; T = double (the f64 reference) or float (f32 arithmetic).
template <typename T>
void sampleCpu(const T* logits, const int32_t* streams, const int32_t* steps, int64_t B, int64_t V, const Params& p,
               int32_t* tokens, T* logprobs, T* modelLogprobs, KernelStatus* status);

// CUDA: logits f32 or bf16 (isBf16), outputs f32, queued on the osp stream.
void sampleCuda(const void* logits, bool isBf16, const int32_t* streams, const int32_t* steps, int64_t B, int64_t V,
                const Params& p, int32_t* tokens, float* logprobs, float* modelLogprobs, KernelStatus* status);

}  // namespace sampling
}  // namespace osp
