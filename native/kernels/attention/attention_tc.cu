// FlashAttention-2 on tensor cores (bf16 storage, sm_80+, head dims 64, 80, 96, 128): the causal
// packed-span attention of attention.h, forward and backward, with mma.sync m16n8k16 (bf16 in, f32
// accumulate; fragment maps in attention_mma.cuh). Why: the SIMT path re-reads k and v once per
// query and never uses the tensor cores; here a 64-row tile of queries (or keys) reuses each k / v
// (or q / dO) tile staged in shared memory 64 times, and the products run on the tensor cores.
//   forward (block per 64 queries x head, 4 warps of 16 query rows): for each 64-key tile of
//     [min s(i), max i]: S = Q K^T (f32), mask s(i) <= j <= i, online softmax in registers
//     (cuda_common.cuh's raiseMax; row max over the 4 lanes of a quad), P rounded to bf16 straight
//     from S's accumulators into A fragments, O += P V. Saves lse = m + log l.
//   dk, dv (block per 64 keys x kv head, 4 warps of 16 key rows): for each query head of the group,
//     then each 32-query tile of [k0, max e(j)), recompute S^T = K Q^T and P^T = exp(scale S^T - lse),
//     dP^T = V dO^T, dS^T = P^T (dP^T - delta); dV += P^T dO, dK += dS^T Q; dK scaled at the end.
//   dq (block per 64 queries x head): for each 64-key tile, recompute P and dP, dQ += dS K.
// Every output element is owned by one lane of one block and summed in a fixed order (heads, then
// query tiles, then the mma's own fixed k order): deterministic, no atomics. delta = rowsum(dO o)
// comes from attention.cu. Each block first checks the span columns of its 64 rows (spanValid): a
// bad one gets NaN outputs for the block's rows and a status report, and nothing else is read.
// Rounding (beyond f32 accumulation): P and dS are rounded to bf16 before their products, as in
// FlashAttention-2; the bounds are derived in test/gpuAttentionTc.test.ts.
#include "../../core/cuda_common.cuh"
#include "attention.h"
#include "attention_mma.cuh"

namespace osp::attention {

namespace {

using bf16 = __nv_bfloat16;
using namespace osp::attention_mma;

constexpr int kTile = 64;        // queries of a forward / dq block, keys of a key tile and of a dk/dv block
constexpr int kBwdQueries = 32;  // queries per step of the dk/dv kernel (keeps its registers under 255)
constexpr int kThreads = 128;    // 4 warps of 16 rows
// Two blocks per SM: up to 255 registers per thread, which the accumulators need (ptxas's own
// occupancy target otherwise caps some instantiations near 168 registers and spills).
constexpr int kMinBlocks = 2;

template <int Dh>
__host__ __device__ constexpr int ldOf() {
  return Dh + 8;  // see attention_mma.cuh: the pad spreads a fragment's 8 rows over the banks
}

// Rows first..first+count-1 (count <= rows) of head `head` of a [tokens, heads, Dh] bf16 tensor into
// the shared tile dst (rows x Dh, stride Dh + 8), rows count..rows-1 zero-filled (so masked
// products never meet garbage: 0 * NaN). 16-byte copies: the dispatch checks 16-byte alignment.
template <int Dh>
__device__ __forceinline__ void loadTile(bf16* dst, const bf16* __restrict__ src, int64_t heads, int64_t head,
                                         int64_t first, int count, int rows) {
  constexpr int kChunks = Dh / 8;
  for (int c = threadIdx.x; c < rows * kChunks; c += kThreads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    uint4 x = make_uint4(0u, 0u, 0u, 0u);
    if (r < count) x = *reinterpret_cast<const uint4*>(src + ((first + r) * heads + head) * Dh + col);
    *reinterpret_cast<uint4*>(dst + r * ldOf<Dh>() + col) = x;
  }
}

// Whether span columns first..first+count-1 (count <= kThreads) are all valid; thread t checks
// column first + t and reports a bad one (status may be null). Every thread must call it.
__device__ __forceinline__ bool tileSpansOk(const int32_t* starts, const int32_t* ends, int64_t first, int count,
                                            int64_t T, KernelStatus* st) {
  bool bad = false;
  if (int(threadIdx.x) < count && !spanValid(starts, ends, first + threadIdx.x, T)) {
    bad = true;
    if (st) osp::cuda::reportStatus(st, StatusSequenceSpan, first + threadIdx.x);
  }
  return !__syncthreads_or(bad);
}

// NaN into rows first..first+count-1 of head `head` of a [tokens, heads, Dh] tensor.
template <int Dh>
__device__ __forceinline__ void fillNaN(bf16* dst, int64_t heads, int64_t head, int64_t first, int count) {
  for (int e = threadIdx.x; e < count * Dh; e += kThreads)
    dst[((first + e / Dh) * heads + head) * Dh + e % Dh] = __float2bfloat16(NAN);
}

// The two query rows of this lane in a 64-query block (accumulator rows group and group + 8 of
// its warp): token index (-1 past T) and first key s(i) (keys first..i, none for -1).
struct QueryRows {
  int64_t last[2], first[2];
};
__device__ __forceinline__ QueryRows queryRows(const int32_t* starts, int64_t q0, int64_t T) {
  QueryRows r;
  for (int x = 0; x < 2; x++) {
    const int64_t i = q0 + (threadIdx.x >> 5) * 16 + laneGroup() + 8 * x;
    r.last[x] = i < T ? i : -1;
    r.first[x] = i < T ? starts[i] : 0;
  }
  return r;
}

// Whether a 16-query warp of the block (rows w0..min(w0+15, T-1)) sees any key of [j0, j0 + 63]:
// its keys are [s(w0), last row] (starts are non-decreasing). Uniform over the warp.
__device__ __forceinline__ bool warpSeesKeys(const int32_t* starts, int64_t w0, int64_t T, int64_t j0) {
  if (w0 >= T) return false;
  const int64_t wLast = min(w0 + 15, T - 1);
  return j0 <= wLast && j0 + kTile - 1 >= starts[w0];
}

// Keys j0..min(j0 + 63, kLast) of kv head g into the shared tiles ks, vs (rows past kLast zero),
// between two barriers: every warp is done with the previous tile before it is overwritten, and
// the new one is complete before any warp reads it. Every thread must call it.
template <int Dh>
__device__ __forceinline__ void stageKeyTile(bf16* ks, bf16* vs, const bf16* __restrict__ k, const bf16* __restrict__ v,
                                             int64_t Hkv, int64_t g, int64_t j0, int64_t kLast) {
  const int count = int(min(int64_t(kTile), kLast - j0 + 1));
  __syncthreads();
  loadTile<Dh>(ks, k, Hkv, g, j0, count, kTile);
  loadTile<Dh>(vs, v, Hkv, g, j0, count, kTile);
  __syncthreads();
}

template <int Dh>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    forwardTcKernel(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                    const int32_t* __restrict__ starts, const int32_t* __restrict__ ends, bf16* __restrict__ out,
                    float* __restrict__ lse, int64_t T, int64_t H, int64_t Hkv, float scale, KernelStatus* st) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int ld = ldOf<Dh>();
  bf16* ks = reinterpret_cast<bf16*>(smem);
  bf16* vs = ks + kTile * ld;
  const int64_t q0 = int64_t(blockIdx.x) * kTile, h = blockIdx.y, g = h / (H / Hkv);
  const int rows = int(min(int64_t(kTile), T - q0)), warp = threadIdx.x >> 5, quad = laneQuad();
  if (!tileSpansOk(starts, ends, q0, rows, T, st)) {
    fillNaN<Dh>(out, H, h, q0, rows);
    if (int(threadIdx.x) < rows) lse[(q0 + threadIdx.x) * H + h] = NAN;
    return;
  }
  const QueryRows row = queryRows(starts, q0, T);
  // Q's A fragments (rows group, group + 8 of the warp; see attention_mma.cuh), straight from global.
  uint32_t qa[Dh / 16][4];
#pragma unroll
  for (int kk = 0; kk < Dh / 16; kk++)
#pragma unroll
    for (int reg = 0; reg < 4; reg++) {
      const int x = reg & 1, col = kk * 16 + 2 * quad + (reg >= 2 ? 8 : 0);
      qa[kk][reg] = row.last[x] >= 0 ? pairAt(q + (row.last[x] * H + h) * Dh + col) : 0u;
    }
  float o[Dh / 8][4];
  zero(o);
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const int64_t kFirst = starts[q0], kLast = q0 + rows - 1, w0 = q0 + warp * 16;
  for (int64_t j0 = kFirst; j0 <= kLast; j0 += kTile) {
    stageKeyTile<Dh>(ks, vs, k, v, Hkv, g, j0, kLast);
    if (!warpSeesKeys(starts, w0, T, j0)) continue;
    float s[kTile / 8][4];
    zero(s);
#pragma unroll
    for (int kk = 0; kk < Dh / 16; kk++)  // S = Q K^T, Q's fragments from registers
#pragma unroll
      for (int nt = 0; nt < kTile / 8; nt++) {
        uint32_t b[2];
        loadBFromRows(b, ks, ld, nt * 8, kk * 16);
        mma(s[nt], qa[kk], b);
      }
    float tileMax[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < kTile / 8; nt++)
#pragma unroll
      for (int r = 0; r < 4; r++) {
        const int x = r >> 1;
        const int64_t j = j0 + nt * 8 + accCol(r);
        s[nt][r] = j >= row.first[x] && j <= row.last[x] ? s[nt][r] * scale : -INFINITY;
        tileMax[x] = fmaxf(tileMax[x], s[nt][r]);
      }
    float shift[2];
#pragma unroll
    for (int x = 0; x < 2; x++) {
      const float c = osp::cuda::raiseMax(m[x], osp::cuda::quadMax(tileMax[x]), shift[x]);
      l[x] *= c;
#pragma unroll
      for (int nt = 0; nt < Dh / 8; nt++) {
        o[nt][2 * x] *= c;
        o[nt][2 * x + 1] *= c;
      }
    }
#pragma unroll
    for (int nt = 0; nt < kTile / 8; nt++)
#pragma unroll
      for (int r = 0; r < 4; r++) {
        s[nt][r] = __expf(s[nt][r] - shift[r >> 1]);  // masked: exp(-Inf) = 0
        l[r >> 1] += s[nt][r];                        // this lane's columns; the quad is summed at the end
      }
    mmaAccCols<kTile / 16>(o, s, vs, ld);  // O += P V
  }
  const float L[2] = {osp::cuda::quadSum(l[0]), osp::cuda::quadSum(l[1])};  // every lane: full-warp shuffles
#pragma unroll
  for (int x = 0; x < 2; x++) {
    if (row.last[x] < 0) continue;
    // L >= 1: the running max's own term is exp(0) = 1.
    storeRow(out + (row.last[x] * H + h) * Dh, o, x, 1.f / L[x]);
    if (quad == 0) lse[row.last[x] * H + h] = m[x] + logf(L[x]);
  }
}

// dk, dv. Shared: K, V tiles [64][ld], Q, dO tiles [32][ld], lse and delta [32] (f32).
template <int Dh>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    gradKvTcKernel(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                   const int32_t* __restrict__ starts, const int32_t* __restrict__ ends, const float* __restrict__ lse,
                   const float* __restrict__ delta, const bf16* __restrict__ gradOut, bf16* __restrict__ dk,
                   bf16* __restrict__ dv, int64_t T, int64_t H, int64_t Hkv, float scale, KernelStatus* st) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int ld = ldOf<Dh>();
  bf16* ks = reinterpret_cast<bf16*>(smem);
  bf16* vs = ks + kTile * ld;
  bf16* qs = vs + kTile * ld;
  bf16* gs = qs + kBwdQueries * ld;
  float* lseS = reinterpret_cast<float*>(gs + kBwdQueries * ld);
  float* deltaS = lseS + kBwdQueries;
  const int64_t k0 = int64_t(blockIdx.x) * kTile, g = blockIdx.y, group = H / Hkv;
  const int keys = int(min(int64_t(kTile), T - k0)), warp = threadIdx.x >> 5;
  if (!tileSpansOk(starts, ends, k0, keys, T, st)) {
    fillNaN<Dh>(dk, Hkv, g, k0, keys);
    fillNaN<Dh>(dv, Hkv, g, k0, keys);
    return;
  }
  // This lane's two key rows j (accumulator rows group, group + 8 of the warp): queries [j, e(j)).
  int64_t keyJ[2], keyEnd[2];
  for (int x = 0; x < 2; x++) {
    const int64_t j = k0 + warp * 16 + laneGroup() + 8 * x;
    keyJ[x] = j < T ? j : T;
    keyEnd[x] = j < T ? ends[j] : 0;  // [T, 0): no query
  }
  // The warp's keys w0..min(w0 + 15, T - 1) see queries [w0, e(last key)); the block's [k0, qEnd).
  const int64_t w0 = k0 + warp * 16, wEnd = w0 < T ? ends[min(w0 + 15, T - 1)] : 0, qEnd = ends[k0 + keys - 1];
  loadTile<Dh>(ks, k, Hkv, g, k0, keys, kTile);
  loadTile<Dh>(vs, v, Hkv, g, k0, keys, kTile);
  float dkAcc[Dh / 8][4], dvAcc[Dh / 8][4];
  zero(dkAcc);
  zero(dvAcc);
  for (int64_t h = g * group; h < (g + 1) * group; h++) {
    for (int64_t i0 = k0; i0 < qEnd; i0 += kBwdQueries) {
      const int count = int(min(int64_t(kBwdQueries), qEnd - i0));
      __syncthreads();  // every warp is done with the previous query tile
      loadTile<Dh>(qs, q, H, h, i0, count, kBwdQueries);
      loadTile<Dh>(gs, gradOut, H, h, i0, count, kBwdQueries);
      if (threadIdx.x < kBwdQueries) {
        const bool in = int(threadIdx.x) < count;
        lseS[threadIdx.x] = in ? lse[(i0 + threadIdx.x) * H + h] : 0.f;
        deltaS[threadIdx.x] = in ? delta[(i0 + threadIdx.x) * H + h] : 0.f;
      }
      __syncthreads();
      if (w0 >= T || i0 + kBwdQueries - 1 < w0 || i0 >= wEnd) continue;  // no (key, query) pair of the warp
      float sT[kBwdQueries / 8][4], dpT[kBwdQueries / 8][4];
      zero(sT);
      zero(dpT);
      mmaRowsRows<Dh>(sT, ks, warp * 16, qs, ld);   // S^T = K Q^T
      mmaRowsRows<Dh>(dpT, vs, warp * 16, gs, ld);  // dP^T = V dO^T
#pragma unroll
      for (int nt = 0; nt < kBwdQueries / 8; nt++)
#pragma unroll
        for (int r = 0; r < 4; r++) {
          const int x = r >> 1, col = nt * 8 + accCol(r);
          const int64_t i = i0 + col;
          const float p = i >= keyJ[x] && i < keyEnd[x] ? __expf(sT[nt][r] * scale - lseS[col]) : 0.f;
          sT[nt][r] = p;
          dpT[nt][r] = p * (dpT[nt][r] - deltaS[col]);  // dS^T
        }
      mmaAccCols<kBwdQueries / 16>(dvAcc, sT, gs, ld);   // dV += P^T dO
      mmaAccCols<kBwdQueries / 16>(dkAcc, dpT, qs, ld);  // dK += dS^T Q
    }
  }
#pragma unroll
  for (int x = 0; x < 2; x++) {
    if (keyJ[x] >= T) continue;
    storeRow(dk + (keyJ[x] * Hkv + g) * Dh, dkAcc, x, scale);
    storeRow(dv + (keyJ[x] * Hkv + g) * Dh, dvAcc, x, 1.f);
  }
}

// dq. Shared: Q, dO, K, V tiles [64][ld].
template <int Dh>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    gradQTcKernel(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                  const int32_t* __restrict__ starts, const int32_t* __restrict__ ends, const float* __restrict__ lse,
                  const float* __restrict__ delta, const bf16* __restrict__ gradOut, bf16* __restrict__ dq, int64_t T,
                  int64_t H, int64_t Hkv, float scale, KernelStatus* st) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int ld = ldOf<Dh>();
  bf16* qs = reinterpret_cast<bf16*>(smem);
  bf16* gs = qs + kTile * ld;
  bf16* ks = gs + kTile * ld;
  bf16* vs = ks + kTile * ld;
  const int64_t q0 = int64_t(blockIdx.x) * kTile, h = blockIdx.y, g = h / (H / Hkv);
  const int rows = int(min(int64_t(kTile), T - q0)), warp = threadIdx.x >> 5;
  if (!tileSpansOk(starts, ends, q0, rows, T, st)) {
    fillNaN<Dh>(dq, H, h, q0, rows);
    return;
  }
  const QueryRows row = queryRows(starts, q0, T);
  float rowLse[2], rowDelta[2];
  for (int x = 0; x < 2; x++) {
    rowLse[x] = row.last[x] >= 0 ? lse[row.last[x] * H + h] : 0.f;
    rowDelta[x] = row.last[x] >= 0 ? delta[row.last[x] * H + h] : 0.f;
  }
  loadTile<Dh>(qs, q, H, h, q0, rows, kTile);
  loadTile<Dh>(gs, gradOut, H, h, q0, rows, kTile);
  float dqAcc[Dh / 8][4];
  zero(dqAcc);
  const int64_t kFirst = starts[q0], kLast = q0 + rows - 1, w0 = q0 + warp * 16;
  for (int64_t j0 = kFirst; j0 <= kLast; j0 += kTile) {
    stageKeyTile<Dh>(ks, vs, k, v, Hkv, g, j0, kLast);
    if (!warpSeesKeys(starts, w0, T, j0)) continue;
    float s[kTile / 8][4], dp[kTile / 8][4];
    zero(s);
    zero(dp);
    mmaRowsRows<Dh>(s, qs, warp * 16, ks, ld);   // S = Q K^T
    mmaRowsRows<Dh>(dp, gs, warp * 16, vs, ld);  // dP = dO V^T
#pragma unroll
    for (int nt = 0; nt < kTile / 8; nt++)
#pragma unroll
      for (int r = 0; r < 4; r++) {
        const int x = r >> 1;
        const int64_t j = j0 + nt * 8 + accCol(r);
        const float p = j >= row.first[x] && j <= row.last[x] ? __expf(s[nt][r] * scale - rowLse[x]) : 0.f;
        s[nt][r] = p * (dp[nt][r] - rowDelta[x]);  // dS
      }
    mmaAccCols<kTile / 16>(dqAcc, s, ks, ld);  // dQ += dS K
  }
#pragma unroll
  for (int x = 0; x < 2; x++) {
    if (row.last[x] >= 0) storeRow(dq + (row.last[x] * H + h) * Dh, dqAcc, x, scale);
  }
}

// The launches (not compiled by test/native/attentionTcEmulation.cpp, which runs the kernels on the host).
#ifndef OSP_ATTENTION_TC_EMULATION
template <int Dh>
constexpr size_t forwardSmem() {
  return sizeof(bf16) * 2 * kTile * ldOf<Dh>();
}
template <int Dh>
constexpr size_t gradKvSmem() {
  return sizeof(bf16) * (2 * kTile + 2 * kBwdQueries) * ldOf<Dh>() + sizeof(float) * 2 * kBwdQueries;
}
template <int Dh>
constexpr size_t gradQSmem() {
  return sizeof(bf16) * 4 * kTile * ldOf<Dh>();
}

// Opts a kernel into more than 48 KiB of dynamic shared memory (sm_80+ allow up to 99 KiB or more);
// a failure shows as the launch's error.
template <typename Kernel>
void allowSharedBytes(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024) cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
}

template <int Dh>
void launchForwardTc(const bf16* q, const bf16* k, const bf16* v, const int32_t* starts, const int32_t* ends, bf16* out,
                     float* lse, int64_t T, int64_t H, int64_t Hkv, float scale, KernelStatus* st) {
  const dim3 grid(static_cast<unsigned>((T + kTile - 1) / kTile), static_cast<unsigned>(H));
  allowSharedBytes(forwardTcKernel<Dh>, forwardSmem<Dh>());
  forwardTcKernel<Dh><<<grid, kThreads, forwardSmem<Dh>(), osp::cuda::stream()>>>(q, k, v, starts, ends, out, lse, T, H,
                                                                                  Hkv, scale, st);
}

template <int Dh>
void launchGradsTc(const bf16* q, const bf16* k, const bf16* v, const int32_t* starts, const int32_t* ends,
                   const float* lse, const float* delta, const bf16* gradOut, bf16* dq, bf16* dk, bf16* dv, int64_t T,
                   int64_t H, int64_t Hkv, float scale, KernelStatus* st) {
  const unsigned tiles = static_cast<unsigned>((T + kTile - 1) / kTile);
  allowSharedBytes(gradKvTcKernel<Dh>, gradKvSmem<Dh>());
  gradKvTcKernel<Dh><<<dim3(tiles, static_cast<unsigned>(Hkv)), kThreads, gradKvSmem<Dh>(), osp::cuda::stream()>>>(
      q, k, v, starts, ends, lse, delta, gradOut, dk, dv, T, H, Hkv, scale, st);
  allowSharedBytes(gradQTcKernel<Dh>, gradQSmem<Dh>());
  gradQTcKernel<Dh><<<dim3(tiles, static_cast<unsigned>(H)), kThreads, gradQSmem<Dh>(), osp::cuda::stream()>>>(
      q, k, v, starts, ends, lse, delta, gradOut, dq, T, H, Hkv, scale, st);
}

// Calls f with std::integral_constant<int, Dh> for a tensor-core head dim (tensorCoreHeadDim).
template <typename F>
void dispatchHeadDim(int64_t Dh, F&& f) {
  switch (Dh) {
    case 64: f(std::integral_constant<int, 64>{}); break;
    case 80: f(std::integral_constant<int, 80>{}); break;
    case 96: f(std::integral_constant<int, 96>{}); break;
    case 128: f(std::integral_constant<int, 128>{}); break;
    default: break;  // not reached: the dispatch checked tensorCoreHeadDim
  }
}

#endif  // OSP_ATTENTION_TC_EMULATION

}  // namespace

#ifndef OSP_ATTENTION_TC_EMULATION
bool tensorCoresAvailable() {
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) return false;
  return major >= 8;
}

void forwardTensorCores(const void* q, const void* k, const void* v, const int32_t* starts, const int32_t* ends, void* out,
                        float* lse, int64_t T_, int64_t H, int64_t Hkv, int64_t Dh, float scale, KernelStatus* status) {
  dispatchHeadDim(Dh, [&](auto dh) {
    launchForwardTc<decltype(dh)::value>(static_cast<const bf16*>(q), static_cast<const bf16*>(k),
                                         static_cast<const bf16*>(v), starts, ends, static_cast<bf16*>(out), lse, T_, H,
                                         Hkv, scale, status);
  });
}

void gradsTensorCores(const void* q, const void* k, const void* v, const int32_t* starts, const int32_t* ends,
                      const float* lse, const float* delta, const void* gradOut, void* dq, void* dk, void* dv, int64_t T_,
                      int64_t H, int64_t Hkv, int64_t Dh, float scale, KernelStatus* status) {
  dispatchHeadDim(Dh, [&](auto dh) {
    launchGradsTc<decltype(dh)::value>(static_cast<const bf16*>(q), static_cast<const bf16*>(k),
                                       static_cast<const bf16*>(v), starts, ends, lse, delta,
                                       static_cast<const bf16*>(gradOut), static_cast<bf16*>(dq), static_cast<bf16*>(dk),
                                       static_cast<bf16*>(dv), T_, H, Hkv, scale, status);
  });
}

#endif  // OSP_ATTENTION_TC_EMULATION

}  // namespace osp::attention
