// A key/value cache for incremental decoding, and attention that reads it. The cache is a dense
// tensor [S, L, Hkv, Dh]: S sequence slots of at most L positions each.
//
// kvCacheWrite(cache, values, slots, positions), in place, values [N, Hkv, Dh] in cache's dtype,
// slots and positions [N] i32:
//   cache[slots[i], positions[i], :, :] = values[i, :, :]   for i in [0, N).
// A slot outside [0, S) or a position outside [0, L) is a RangeError naming slots[i] or
// positions[i] and the bound (the lowest such i on cpu, the first one found on cuda). On cpu
// nothing is written then; on cuda the rows with valid indices are written. Duplicate
// (slot, position) pairs: the last index i wins on cpu; on cuda the result is unspecified (two
// blocks write the row element by element at once, so it may even mix the two rows): avoid duplicates.
// Cost: N Hkv Dh element copies (memory-bound), plus an O(N) hash pass on cpu for the duplicates.
//
// cachedAttention(q, kCache, vCache, slots, positions, scale?), q [N, H, Dh], kCache and vCache
// [S, L, Hkv, Dh] in q's dtype, slots and positions [N] i32, H % Hkv == 0, query head h reads kv
// head g(h) = h / (H / Hkv). With s = slots[i], p = positions[i], query i attends to the cached
// positions 0..p of slot s (causal by position; it serves prefill of prompts already written into
// the cache as well as one-token decode steps):
//   S_ij = scale q_i,h . kCache[s, j, g],  P_ij = softmax_j(S_ij) over j in [0, p],
//   o_i,h = sum_j P_ij vCache[s, j, g],    scale = 1 / sqrt(Dh) unless given (finite, > 0).
// Out-of-range slots / positions are RangeErrors as for kvCacheWrite (their rows are NaN inside).
// Returns o [N, H, Dh] in q's dtype. No backward: this is for inference.
// Cost: 4 H Dh sum_i (p_i + 1) flops; bytes: every (query, head) re-reads its p_i + 1 cached k and
// v rows (the H / Hkv heads of a group share them through the caches), so decode is memory-bound.
//
// CPU (f32, f64): parallelFor over (query, head); softmax and every sum in double, in a fixed
// order, so results do not depend on OSP_NUM_THREADS and equal causalAttention's on the same keys.
// CUDA (f32 or bf16 storage, f32 arithmetic), flash-decoding through attention.cu's SIMT routine
// (attention_device.cuh's attendKeys): one 128-thread block per (query, head, key split); each of
// the 4 warps takes every 4th key of the split with its own online-softmax state and Dh-wide
// accumulator in shared memory, and the warps are merged in order. A long cache with few queries is
// split over its keys (decodeSplits) and a combine kernel merges the splits' (max, sum, acc) in
// split order: deterministic, and the same split for the same shapes on every device. Its code is
// also run on the host, without a GPU, by test/kvCacheEmulation.test.ts.
// kvCacheWrite on cuda: one block per row i. Both queued on the osp stream; the status read-back
// (one 16-byte copy and a synchronisation) follows each call.
// Pinned by test/kvCache.test.ts (plain-TS f64 reference, write/read-back, equality with
// causalAttention for packed prompts and decode steps, GQA, f32 vs f64, thread-count determinism,
// argument checks) and test/gpuKvCache.test.ts (cuda against the cpu f64 op).
#pragma once
#include <cstdint>
#include <optional>

#include "../../core/errors.h"
#include "../../core/tensor.h"

namespace osp {

void kvCacheWrite(const Tensor& cache, const Tensor& values, const Tensor& slots, const Tensor& positions);
// scale: nullopt = 1 / sqrt(Dh).
Tensor cachedAttention(const Tensor& q, const Tensor& kCache, const Tensor& vCache, const Tensor& slots,
                       const Tensor& positions, std::optional<double> scale);

namespace kv_cache {

// row = Hkv * Dh elements. Reports the lowest bad index and then writes nothing.
template <typename T>
void writeCpu(T* cache, const T* values, const int32_t* slots, const int32_t* positions, int64_t N, int64_t S, int64_t L,
              int64_t row, KernelStatus* status);
template <typename T>
void attentionCpu(const T* q, const T* k, const T* v, const int32_t* slots, const int32_t* positions, T* out, int64_t N,
                  int64_t H, int64_t Hkv, int64_t Dh, int64_t S, int64_t L, double scale, KernelStatus* status);

// Key splits of the CUDA cachedAttention (flash-decoding): about 1024 (query, head, split) blocks,
// enough to fill a large GPU when few queries decode against long caches, with at least 256 keys
// per split and at most 64 splits. A function of the shapes only, so results do not depend on the
// device. Split s of a row takes keys [s c, (s + 1) c) with c = ceil(L / splits).
inline int64_t decodeSplits(int64_t N, int64_t H, int64_t L) {
  const int64_t rows = N * H;
  if (rows <= 0) return 1;
  int64_t s = (1024 + rows - 1) / rows;
  if (s > L / 256) s = L / 256;
  if (s > 64) s = 64;
  return s < 1 ? 1 : s;
}
// f32 scratch of attentionCuda: (2 + Dh) floats per (query, head, split) when split, else none.
inline int64_t decodeScratchFloats(int64_t N, int64_t H, int64_t Dh, int64_t L) {
  const int64_t s = decodeSplits(N, H, L);
  return s > 1 ? N * H * s * (2 + Dh) : 0;
}

// CUDA: tensors in f32 or bf16 (isBf16), everything on the device, queued on the osp stream;
// scratch: decodeScratchFloats(N, H, Dh, L) f32 on the device (null when that is 0).
void writeCuda(void* cache, const void* values, const int32_t* slots, const int32_t* positions, bool isBf16, int64_t N,
               int64_t S, int64_t L, int64_t row, KernelStatus* status);
void attentionCuda(const void* q, const void* k, const void* v, const int32_t* slots, const int32_t* positions, void* out,
                   float* scratch, bool isBf16, int64_t N, int64_t H, int64_t Hkv, int64_t Dh, int64_t S, int64_t L, float scale,
                   KernelStatus* status);

}  // namespace kv_cache
}  // namespace osp
