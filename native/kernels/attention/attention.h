// Causal self-attention with grouped-query heads over a packed batch of variable-length sequences
// (no padding). q [T, H, Dh], k and v [T, Hkv, Dh], sequenceIds [T] i32: the tokens of one sequence
// are contiguous and in order (ids need not be sorted, but an id may not reappear after another
// sequence started: a RangeError naming sequenceIds[i]). H % Hkv == 0 and query head h reads kv
// head g(h) = h / (H / Hkv). With s(i) the first token of i's sequence and e(i) one past its last,
// token i attends to j in [s(i), i]:
//   S_ij = scale q_i,h . k_j,g,   lse_i,h = log sum_j exp(S_ij),   P_ij = exp(S_ij - lse_i,h),
//   o_i,h = sum_j P_ij v_j,g,     scale = 1 / sqrt(Dh) unless given (finite, > 0).
// The forward returns o [T, H, Dh] in q's dtype and lse [T, H] (f64 for f64 inputs, else f32).
// The backward (FlashAttention-2's) recomputes P from lse: with D_i,h = dO_i,h . o_i,h,
// dP_ij = dO_i,h . v_j,g and dS_ij = P_ij (dP_ij - D_i,h):
//   dq_i,h = scale sum_{j in [s(i), i]} dS_ij k_j,g
//   dk_j,g = scale sum_{h in g} sum_{i in [j, e(j))} dS_ij q_i,h    (heads, then queries, in order)
//   dv_j,g =       sum_{h in g} sum_{i in [j, e(j))} P_ij dO_i,h
// Each output element is owned by one thread or block that sums in a fixed order (no atomics), so
// results are deterministic on cpu and cuda and do not depend on OSP_NUM_THREADS.
//
// Cost, with N = sum over sequences of len (len + 1) / 2 query-key pairs: forward 4 N H Dh flops
// (2 for the scores, 2 for P v), backward 10 N H Dh (S and dP once, then dv, dk, dq; the CUDA
// tensor-core backward recomputes S and dP a second time for dq, 14 N H Dh executed). The SIMT CUDA
// kernels re-read k and v once per query (forward, dq) and q and dO once per key (dk/dv):
// bandwidth-bound. The tensor-core kernels read each k, v tile once per 64 queries (forward, dq) and
// each q, dO tile once per 64 keys (dk/dv), and their flops run on the tensor cores. Masked work:
// the diagonal tiles compute their full 64 x 64 products (about 64 T H Dh extra flops per pass).
//
// CPU f64 (the ground truth): parallelFor over (token, head) pairs for o, lse and dq, and over
// (token, kv head) for dk, dv; every sum in double; the backward recomputes the scores for dq and
// again for dk/dv. CPU f32 (attention_cpu_tiles.h): FlashAttention-2 tiles of 64 queries x 64 keys,
// f32 SIMD (AVX-512, AVX2 + FMA or a baseline copy, picked by the CPU's features at run time and
// capped by OSP_CPU_ISA=avx2|baseline), online softmax in the forward, scores computed once per tile
// in the backward; forward items (sequence, head, query block), backward items (sequence, head)
// with dk, dv of shared kv heads summed over the group's query heads afterwards. Error against the
// f64 op, per row with n keys, u = 2^-24: scores within eps = (Dh + 2) u scale max_j |q|.|k_j|,
// o within (4 eps + 4e-7 + (2n + 8) u) max|v|; the derivation and the backward's bounds are in
// test/attention.test.ts, where they are checked (observed: 1e-7..1e-6 of each output's scale).
//
// CUDA, what runs where (attention.cpp picks per call):
// - tensor cores (attention_tc.cu, FlashAttention-2): bf16 storage, head dims 64, 80, 96, 128, an
//   sm_80+ device and 16-byte aligned tensors. Forward: a block of 4 warps per (64 queries, head),
//   64-key tiles of k, v in shared memory, S = Q K^T with mma.sync m16n8k16 (f32 accumulate), online
//   softmax in registers, P rounded to bf16 for O += P V. Backward: delta = rowsum(dO o), then one
//   block per (64 keys, kv head) for dk, dv (heads of the group, then 32-query tiles, in order) and
//   one per (64 queries, head) for dq; no atomics, deterministic. Error against the f64 op on the
//   same bf16 inputs, with u = 2^-8 and P, B the f64 probabilities and magnitude sums: out within
//   (u + 1e-3) sum_j P_ij max|v_j| + u |o|, dv, dk, dq likewise with P |dO|, B |q|, B |k| (P and dS
//   are rounded to bf16 before their products); lse within the f32 score and sum errors. Derived in
//   test/helpers/gpu.ts (attentionTcBounds), checked against a simulation of the roundings in
//   test/gpuBounds.test.ts and on a GPU in test/gpuAttentionTc.test.ts.
// - SIMT (attention.cu; f32, bf16 at other head dims or on older GPUs, or OSP_ATTENTION=simt, which
//   the tests and the bench use to compare): f32 arithmetic on f32 or bf16 storage, one 128-thread
//   block per (query, head) in the forward and for dq, one per (key, kv head) for dk/dv; each of the
//   4 warps takes every 4th key (or (head, query) item), keeps its own online-softmax state /
//   accumulators in shared memory, and the warps are merged in order. Its forward routine
//   (attention_device.cuh's attendKeys) is also kv_cache.cu's flash-decoding. Error: the f32 sums
//   and the output's own rounding (u |o| in bf16).
// The tensor-core kernels were written without a GPU and have not yet run on one: they compile for
// sm_80, 86, 89, 90 without spills; test/attentionTcEmulation.test.ts runs their code on the host
// (a thread per CUDA thread, the mma replayed by the PTX fragment maps) within the same bounds, and
// test/gpuAttentionTc.test.ts is their check on a GPU.
//
// Sequence spans. Without `spans` the dispatch copies sequenceIds to the host to check contiguity
// and build the per-token start and end arrays (on cuda a host round trip of 4 T bytes and a
// synchronisation per call), then uploads them. With `spans`, an i32 [2, T] tensor on q's device
// (row 0: s(i), row 1: e(i); built once per batch on the host by sequenceSpans in src/ops.ts),
// sequenceIds is only checked for shape, dtype and device and never read. The spans' values are
// checked where they are read: column i is valid iff 0 <= s(i) <= i < e(i) <= T and, for i > 0,
// it equals column i - 1 (same sequence) or starts a new sequence (s(i) = i = e(i - 1)); together
// these say the columns describe contiguous runs covering [0, T). On the cpu the dispatch checks
// every column before the kernels run; on cuda each block checks the column it reads (spanValid)
// and, for a bad one, writes NaN to its outputs, reads nothing else and reports
// StatusSequenceSpan, which the dispatch turns into a RangeError (the status read is one 16-byte
// copy and a synchronisation, as for every kernel that checks values on the GPU).
// Pinned by test/attention.test.ts (plain-TS f64 reference, packing isolation, finite
// differences, f32 vs f64, thread-count determinism, argument checks), test/gpu.test.ts and
// test/gpuAttentionTc.test.ts (the tensor-core path, its bounds, and the SIMT path beside it).
#pragma once
#include <cstdint>
#include <optional>

#include "../../core/errors.h"
#include "../../core/tensor.h"

#ifdef __CUDACC__
#define OSP_ATTN_HD __host__ __device__ __forceinline__
#else
#define OSP_ATTN_HD inline
#endif

namespace osp {

struct AttentionResult {
  Tensor out, logsumexp;
};
struct AttentionGrads {
  Tensor gradQ, gradK, gradV;
};

// scale: nullopt = 1 / sqrt(Dh). spans: nullptr = derived from sequenceIds on the host.
AttentionResult causalAttention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& sequenceIds,
                                std::optional<double> scale, const Tensor* spans = nullptr);
AttentionGrads causalAttentionBackward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& sequenceIds,
                                       const Tensor& out, const Tensor& logsumexp, const Tensor& gradOut,
                                       std::optional<double> scale, const Tensor* spans = nullptr);

namespace attention {

// Whether column i of (starts, ends) is a valid sequence span of a batch of T tokens (see above).
// Reads starts[i], ends[i] and, for i > 0, starts[i - 1], ends[i - 1]: all in bounds for i < T.
OSP_ATTN_HD bool spanValid(const int32_t* starts, const int32_t* ends, int64_t i, int64_t T) {
  const int64_t s = starts[i], e = ends[i];
  if (!(0 <= s && s <= i && i < e && e <= T)) return false;
  if (i == 0) return true;
  return (s == starts[i - 1] && e == ends[i - 1]) || (s == i && ends[i - 1] == i);
}

// starts[i] / ends[i]: first token of i's sequence / one past its last; lse in the inputs' dtype.
template <typename T>
void forwardCpu(const T* q, const T* k, const T* v, const int32_t* starts, T* out, T* lse, int64_t T_, int64_t H,
                int64_t Hkv, int64_t Dh, double scale);
template <typename T>
void backwardCpu(const T* q, const T* k, const T* v, const int32_t* starts, const int32_t* ends, const T* out, const T* lse,
                 const T* gradOut, T* dq, T* dk, T* dv, int64_t T_, int64_t H, int64_t Hkv, int64_t Dh, double scale);

// CUDA: q, k, v, out, gradOut, dq, dk, dv in f32 or bf16 (isBf16); lse f32; delta an f32 [T, H]
// scratch; starts, ends on the device. Every block checks its span column with spanValid; a bad one
// gets NaN outputs and, where status is not null, StatusSequenceSpan with the column as index.
// Queued on the osp stream.
// tensorCores: the FlashAttention-2 kernels of attention_tc.cu (bf16 only, Dh with
// tensorCoreHeadDim, every pointer 16-byte aligned, an sm_80+ device); else the SIMT kernels.
void forwardCuda(const void* q, const void* k, const void* v, const int32_t* starts, const int32_t* ends, void* out,
                 float* lse, bool isBf16, bool tensorCores, int64_t T_, int64_t H, int64_t Hkv, int64_t Dh, float scale,
                 KernelStatus* status);
void backwardCuda(const void* q, const void* k, const void* v, const int32_t* starts, const int32_t* ends, const void* out,
                  const float* lse, const void* gradOut, void* dq, void* dk, void* dv, float* delta, bool isBf16,
                  bool tensorCores, int64_t T_, int64_t H, int64_t Hkv, int64_t Dh, float scale, KernelStatus* status);
// The head dims the tensor-core kernels are built for: 64, 80, 96, 128.
bool tensorCoreHeadDim(int64_t Dh);
// Whether the current CUDA device has bf16 mma.sync (compute capability 8.0 or newer).
bool tensorCoresAvailable();
// attention_tc.cu's kernels (bf16; the conditions of tensorCores above). gradsTensorCores takes the
// delta = rowsum(dO o) that backwardCuda computed.
void forwardTensorCores(const void* q, const void* k, const void* v, const int32_t* starts, const int32_t* ends, void* out,
                        float* lse, int64_t T_, int64_t H, int64_t Hkv, int64_t Dh, float scale, KernelStatus* status);
void gradsTensorCores(const void* q, const void* k, const void* v, const int32_t* starts, const int32_t* ends,
                      const float* lse, const float* delta, const void* gradOut, void* dq, void* dk, void* dv, int64_t T_,
                      int64_t H, int64_t Hkv, int64_t Dh, float scale, KernelStatus* status);

}  // namespace attention
}  // namespace osp
