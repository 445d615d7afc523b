// Warp-level bf16 tensor-core helpers for attention_tc.cu: the mma.sync m16n8k16 instruction and
// the index maps of its fragments, written once. Everything here follows the PTX ISA's "Matrix
// Fragments for mma.m16n8k16 with floating point type" (.bf16 A/B, .f32 C/D), with, per lane,
//   group = lane / 4 (the "groupID")   and   quad = lane % 4 (the "threadID_in_group"):
//   A, 16 x 16 row-major, four .b32 registers of two bf16 each (a0..a7):
//     reg 0 = A[group    ][2 quad + {0,1}]    reg 1 = A[group + 8][2 quad + {0,1}]
//     reg 2 = A[group    ][2 quad + 8 + {0,1}] reg 3 = A[group + 8][2 quad + 8 + {0,1}]
//   B, 16 (k) x 8 (n) "col", two .b32 registers (b0..b3):
//     reg 0 = B[2 quad + {0,1}][group]        reg 1 = B[2 quad + 8 + {0,1}][group]
//   C and D, 16 x 8 f32, four registers:
//     c[0], c[1] = C[group][2 quad + {0,1}]   c[2], c[3] = C[group + 8][2 quad + {0,1}]
// In each .b32 pair the element with the lower column (A) or row (B) index is the low half.
// Tiles live in shared memory as bf16 rows of `ld` elements (ld = Dh + 8: the 16-byte pad puts the
// 8 rows a fragment load touches on distinct banks). Requires sm_80 or newer; included only by .cu
// files.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

namespace osp::attention_mma {

__device__ __forceinline__ int laneGroup() { return (threadIdx.x & 31) >> 2; }
__device__ __forceinline__ int laneQuad() { return threadIdx.x & 3; }

// Two floats as a bf16 pair, lo in the low half (round to nearest even).
__device__ __forceinline__ uint32_t packBf16(float lo, float hi) {
  const __nv_bfloat162 p = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&p);
}
// Two bf16 values from separate addresses as a pair, lo in the low half.
__device__ __forceinline__ uint32_t packBf16(__nv_bfloat16 lo, __nv_bfloat16 hi) {
  const __nv_bfloat162 p(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&p);
}
// The pair at p[0], p[1] (p 4-byte aligned).
__device__ __forceinline__ uint32_t pairAt(const __nv_bfloat16* p) { return *reinterpret_cast<const uint32_t*>(p); }

#ifdef OSP_MMA_HOST_EMULATION
// test/native/attentionMmaEmulation.cpp compiles these helpers for the host, one lane at a time,
// and replays the recorded mma calls by the PTX maps (test/attentionMmaEmulation.test.ts).
void emulatedMma(float d[4], const uint32_t a[4], const uint32_t b[2]);
#endif

// d += a b for one 16 x 8 x 16 tile (f32 accumulate).
__device__ __forceinline__ void mma(float d[4], const uint32_t a[4], const uint32_t b[2]) {
#if defined(OSP_MMA_HOST_EMULATION)
  emulatedMma(d, a, b);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();  // the dispatch never launches the tensor-core kernels below sm_80
#endif
}

// A fragment of rows row0..row0+15, columns k0..k0+15 of a row-major tile s (stride ld).
__device__ __forceinline__ void loadA(uint32_t a[4], const __nv_bfloat16* s, int ld, int row0, int k0) {
  const __nv_bfloat16* p = s + (row0 + laneGroup()) * ld + k0 + 2 * laneQuad();
  a[0] = pairAt(p);
  a[1] = pairAt(p + 8 * ld);
  a[2] = pairAt(p + 8);
  a[3] = pairAt(p + 8 * ld + 8);
}

// B fragment B[k][n] = s[(n0 + n) * ld + k0 + k]: the tile's rows are B's columns (K of Q K^T,
// where k runs along the head dimension). Pairs along a row: one 32-bit load each.
__device__ __forceinline__ void loadBFromRows(uint32_t b[2], const __nv_bfloat16* s, int ld, int n0, int k0) {
  const __nv_bfloat16* p = s + (n0 + laneGroup()) * ld + k0 + 2 * laneQuad();
  b[0] = pairAt(p);
  b[1] = pairAt(p + 8);
}

// B fragment B[k][n] = s[(k0 + k) * ld + n0 + n]: the tile's rows are B's rows (V of P V, where k
// runs along the keys). A pair spans two rows: two 16-bit loads.
__device__ __forceinline__ void loadBFromCols(uint32_t b[2], const __nv_bfloat16* s, int ld, int k0, int n0) {
  const __nv_bfloat16* p = s + (k0 + 2 * laneQuad()) * ld + n0 + laneGroup();
  b[0] = packBf16(p[0], p[ld]);
  b[1] = packBf16(p[8 * ld], p[9 * ld]);
}

// The A fragment of a 16 x 16 block of a product held as two C/D accumulators: lo = columns 0..7,
// hi = columns 8..15 (P or dS turned into the next mma's left operand, rounded to bf16, no shuffle:
// the C layout of columns 2 quad + {0,1} is A's layout for the same rows and columns).
__device__ __forceinline__ void accToA(uint32_t a[4], const float lo[4], const float hi[4]) {
  a[0] = packBf16(lo[0], lo[1]);
  a[1] = packBf16(lo[2], lo[3]);
  a[2] = packBf16(hi[0], hi[1]);
  a[3] = packBf16(hi[2], hi[3]);
}

// Row (0..15, within the tile) and column (0..7, within the n-tile) of accumulator element r.
__device__ __forceinline__ int accRow(int r) { return laneGroup() + (r >= 2 ? 8 : 0); }
__device__ __forceinline__ int accCol(int r) { return 2 * laneQuad() + (r & 1); }

// ---- warp-level tile products, built from the maps above ----------------------------------------

template <int N>
__device__ __forceinline__ void zero(float (&acc)[N][4]) {
#pragma unroll
  for (int nt = 0; nt < N; nt++) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;
}

// acc (16 x 8N) += A B^T over K columns: A = rows row0..row0+15 of tile a, B^T's columns = rows
// 0..8N-1 of tile b (both row-major, stride ld). S = Q K^T, dP = dO V^T and their transposes.
template <int K, int N>
__device__ __forceinline__ void mmaRowsRows(float (&acc)[N][4], const __nv_bfloat16* a, int row0,
                                            const __nv_bfloat16* b, int ld) {
#pragma unroll
  for (int kk = 0; kk < K / 16; kk++) {
    uint32_t af[4];
    loadA(af, a, ld, row0, kk * 16);
#pragma unroll
    for (int nt = 0; nt < N; nt++) {
      uint32_t bf[2];
      loadBFromRows(bf, b, ld, nt * 8, kk * 16);
      mma(acc[nt], af, bf);
    }
  }
}

// acc (16 x 8N) += L B, with L (16 x 16KT) an accumulator of an earlier product (P or dS, rounded to
// bf16 by accToA) and B = rows 0..16KT-1 of tile b (row-major, stride ld). O += P V, dV += P^T dO,
// dK += dS^T Q, dQ += dS K.
template <int KT, int N>
__device__ __forceinline__ void mmaAccCols(float (&acc)[N][4], const float (&left)[2 * KT][4], const __nv_bfloat16* b,
                                           int ld) {
#pragma unroll
  for (int kk = 0; kk < KT; kk++) {
    uint32_t af[4];
    accToA(af, left[2 * kk], left[2 * kk + 1]);
#pragma unroll
    for (int nt = 0; nt < N; nt++) {
      uint32_t bf[2];
      loadBFromCols(bf, b, ld, kk * 16, nt * 8);
      mma(acc[nt], af, bf);
    }
  }
}

// Row x (0: group, 1: group + 8) of accumulator acc (16 x 8N) times f, as bf16 into row[0..8N).
template <int N>
__device__ __forceinline__ void storeRow(__nv_bfloat16* row, const float (&acc)[N][4], int x, float f) {
#pragma unroll
  for (int nt = 0; nt < N; nt++)
    *reinterpret_cast<uint32_t*>(row + nt * 8 + 2 * laneQuad()) = packBf16(f * acc[nt][2 * x], f * acc[nt][2 * x + 1]);
}

}  // namespace osp::attention_mma
