// CPU matmul: the scalar reference (any float type) and the blocked f32 GEMM (see matmul.h).
//
// The f32 GEMM follows Goto / BLIS:
//   - The rows of C are cut into blocks of at most MC rows (whole MR-row micro-panels, spread
//     evenly, their count a multiple of the thread count), one pool task each; when M is too small
//     to give every thread a block, the columns are split as well.
//   - A task walks the K slices (KC deep) in order. Per slice it packs its op(A) block into MR-row
//     micro-panels (k-major: MR floats per k, zero-padded) in its thread's buffer (~L2); the
//     thread's private copy of op(B)'s slice, NR-column micro-panels (NR floats per k, zero-padded),
//     is packed once per call by the first of its tasks to need it. Then the MR x NR micro-kernel
//     runs over every (B micro-panel, A micro-panel) pair, B outer: one B micro-panel stays in L1
//     while the A micro-panels stream from L2.
// The packing absorbs both transposes, so the micro-kernels see one layout. One pool call per
// GEMM, not one per K slice: on a busy machine a sleeping pool thread can take a scheduler tick to
// wake, and every call pays that.
//
// Micro-kernels, one per ISA (simd::cpuIsa(): the best the CPU runs, or OSP_CPU_ISA):
//   avx512   14 x 32: 28 zmm accumulators, 2 zmm of B per k, each A value a vbroadcastss from
//            memory (a load, no shuffle): 31 of 32 registers, no spill; 16 loads per 28 FMAs.
//   avx2     6 x 16: 12 ymm accumulators, 2 of B, one vbroadcastss from memory per row: 15 of 16.
//   baseline the same 6 x 16 in portable vector code (SSE2 pairs on x86-64, no FMA).
// avx512 and avx2 are compiled under target attributes, so the binary runs anywhere. Measured on
// Zen 4 (which splits a zmm FMA in two), one thread: avx512 95-108 GFLOP/s, level with MKL on the
// same core; avx2 73-98. The 14 x 32 tile mainly halves the instructions and C traffic per FMA.
//
// Summation order: a micro-kernel sums its KC products in k order from zero (one FMA each), and the
// first K slice stores into C while later ones add: every C element is ((slice 0) + slice 1) + ...
// whatever the thread count or the blocking in M and N. KC is the same for every ISA, so avx512 and
// avx2 give the same bits too (both fuse each multiply-add); baseline rounds each product apart.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <memory>

#include "../../core/parallel.h"
#include "../../core/simd.h"
#include "../../core/tensor.h"
#include "matmul.h"

#ifdef OSP_X86_DISPATCH
#include <immintrin.h>  // OSP_TARGET_AVX512 / OSP_TARGET_AVX2: simd.h
#endif

namespace osp::matmul_kernels {

template <typename T>
void reference(const T* a, const T* b, T* c, int64_t M, int64_t N, int64_t K, bool transA, bool transB, bool accumulate) {
  // op(a)[i, k] = transA ? a[k * M + i] : a[i * K + k]; op(b)[k, j] = transB ? b[j * K + k] : b[k * N + j]
  const int64_t aI = transA ? 1 : K, aK = transA ? M : 1;
  const int64_t bK = transB ? 1 : N, bJ = transB ? K : 1;
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      T s = 0;
      for (int64_t k = 0; k < K; k++) s += a[i * aI + k * aK] * b[k * bK + j * bJ];
      c[i * N + j] = accumulate ? c[i * N + j] + s : s;
    }
}

template void reference<float>(const float*, const float*, float*, int64_t, int64_t, int64_t, bool, bool, bool);
template void reference<double>(const double*, const double*, double*, int64_t, int64_t, int64_t, bool, bool, bool);

// ---- blocked f32 --------------------------------------------------------------------------------

namespace {

// The K slice depth, common to all ISAs (it fixes the summation order). A B micro-panel is KC x NR
// floats: 32 KiB at NR 32 (Zen 4's L1d), 16 KiB at NR 16.
constexpr int64_t KC = 256;

// Pack op(A)[i0:i0+mc, k0:k0+kc] as ceil(mc / MR) micro-panels, each kc x MR (k-major), zero-padded.
template <int MR>
void packA(const float* a, float* dst, int64_t M, int64_t K, bool transA, int64_t i0, int64_t mc, int64_t k0, int64_t kc) {
  for (int64_t ir = 0; ir < mc; ir += MR) {
    const int64_t rows = std::min<int64_t>(MR, mc - ir);
    float* p = dst + ir * kc;
    if (transA) {  // a is [K, M]: the MR rows of op(A) at one k are contiguous
      for (int64_t k = 0; k < kc; k++) {
        const float* src = a + (k0 + k) * M + i0 + ir;
        float* q = p + k * MR;
        if (rows == MR) std::memcpy(q, src, sizeof(float) * MR);
        else {
          int64_t r = 0;
          for (; r < rows; r++) q[r] = src[r];
          for (; r < MR; r++) q[r] = 0.f;
        }
      }
    } else {  // a is [M, K]: walk each row along k
      for (int64_t r = 0; r < MR; r++) {
        if (r < rows) {
          const float* src = a + (i0 + ir + r) * K + k0;
          for (int64_t k = 0; k < kc; k++) p[k * MR + r] = src[k];
        } else {
          for (int64_t k = 0; k < kc; k++) p[k * MR + r] = 0.f;
        }
      }
    }
  }
}

// Pack micro-panels [p0, p1) of op(B)[k0:k0+kc, j0:j0+nc], each kc x NR (k-major), zero-padded.
template <int NR>
void packB(const float* b, float* dst, int64_t N, int64_t K, bool transB, int64_t j0, int64_t nc, int64_t k0, int64_t kc,
           int64_t p0, int64_t p1) {
  for (int64_t jp = p0; jp < p1; jp++) {
    const int64_t jr = jp * NR, cols = std::min<int64_t>(NR, nc - jr);
    float* p = dst + jr * kc;
    if (!transB) {  // b is [K, N]: the NR columns at one k are contiguous
      for (int64_t k = 0; k < kc; k++) {
        const float* src = b + (k0 + k) * N + j0 + jr;
        float* q = p + k * NR;
        if (cols == NR) std::memcpy(q, src, sizeof(float) * NR);
        else {
          int64_t c = 0;
          for (; c < cols; c++) q[c] = src[c];
          for (; c < NR; c++) q[c] = 0.f;
        }
      }
    } else {  // b is [N, K]: walk each row of b (a column of op(B)) along k
      for (int64_t c = 0; c < NR; c++) {
        if (c < cols) {
          const float* src = b + (j0 + jr + c) * K + k0;
          for (int64_t k = 0; k < kc; k++) p[k * NR + c] = src[k];
        } else {
          for (int64_t k = 0; k < kc; k++) p[k * NR + c] = 0.f;
        }
      }
    }
  }
}

// --- micro-kernels: acc = sum over k of (packed A column, MR) x (packed B row, NR), then C = acc
// (first K slice) or C += acc, writing only the rows < rows and columns < cols that exist.

#ifdef OSP_X86_DISPATCH
template <int MR, int NV>
OSP_TARGET_AVX512 __attribute__((always_inline)) inline void microAvx512(const float* __restrict__ ap, const float* __restrict__ bp,
                                                                          int64_t kc, float* c, int64_t ldc, int64_t rows,
                                                                          int64_t cols, bool first) {
  constexpr int NR = 16 * NV;
  __m512 acc[MR][NV];
#pragma GCC unroll 32
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; k++) {
    __m512 bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(bp + 16 * v);
#pragma GCC unroll 32
    for (int r = 0; r < MR; r++) {
      const __m512 av = _mm512_set1_ps(ap[r]);  // vbroadcastss zmm, [mem]: a load, no shuffle
#pragma GCC unroll 8
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
    ap += MR;
    bp += NR;
  }
#pragma GCC unroll 32
  for (int r = 0; r < MR; r++) {
    if (r >= rows) break;
    float* cr = c + r * ldc;
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) {
      const int64_t left = cols - 16 * v;
      if (left <= 0) break;
      const __mmask16 m = left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1);
      __m512 out = acc[r][v];
      if (!first) out = _mm512_add_ps(_mm512_maskz_loadu_ps(m, cr + 16 * v), out);
      _mm512_mask_storeu_ps(cr + 16 * v, m, out);
    }
  }
}

template <int MR, int NV>
OSP_TARGET_AVX512 void macroAvx512(const float* ap, const float* bp, float* c, int64_t ldc, int64_t mc, int64_t nc, int64_t kc,
                                   bool first) {
  constexpr int64_t NR = 16 * NV;
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const int64_t cols = std::min(NR, nc - jr);
    for (int64_t ir = 0; ir < mc; ir += MR)
      microAvx512<MR, NV>(ap + ir * kc, bp + jr * kc, kc, c + ir * ldc + jr, ldc, std::min<int64_t>(MR, mc - ir), cols, first);
  }
}

// The avx512 kernel's packing of the two transposing cases: op(A) from a row-major a (a is
// [M, K], the common case) and op(B) from b stored [N, K] (transB, the Linear layer's forward).
// Both are transposes, done 16 k at a time with 16 x 16 register transposes instead of one
// strided scalar store per float (that took 5-8% of a GEMM whose N or M is 256). The other two
// cases are contiguous copies: the generic packA / packB.
// GCC 12 flags the shuffle intrinsics' own _mm512_undefined_ps() as maybe-uninitialized (GCC PR 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// In place: v[r] (row r, 16 columns) becomes v[c] (column c, 16 rows).
OSP_TARGET_AVX512 __attribute__((always_inline)) inline void transpose16(__m512 v[16]) {
  __m512 t[16];
  // Interleave row pairs (32-bit), then row quads (64-bit): v[4q + j], 128-bit lane l, then holds
  // rows 4q..4q+3 of column 4l + j.
#pragma GCC unroll 8
  for (int r = 0; r < 16; r += 2) {
    t[r] = _mm512_unpacklo_ps(v[r], v[r + 1]);
    t[r + 1] = _mm512_unpackhi_ps(v[r], v[r + 1]);
  }
#pragma GCC unroll 4
  for (int r = 0; r < 16; r += 4) {
    v[r] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[r]), _mm512_castps_pd(t[r + 2])));
    v[r + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[r]), _mm512_castps_pd(t[r + 2])));
    v[r + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[r + 1]), _mm512_castps_pd(t[r + 3])));
    v[r + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[r + 1]), _mm512_castps_pd(t[r + 3])));
  }
  // Gather the 128-bit lanes so that v[c] holds rows 0..15 of column c.
#pragma GCC unroll 4
  for (int j = 0; j < 4; j++) {
    t[j] = _mm512_shuffle_f32x4(v[j], v[4 + j], 0x44);  // lanes 0, 1 of each: columns j, 4 + j
    t[4 + j] = _mm512_shuffle_f32x4(v[j], v[4 + j], 0xee);  // lanes 2, 3: columns 8 + j, 12 + j
    t[8 + j] = _mm512_shuffle_f32x4(v[8 + j], v[12 + j], 0x44);
    t[12 + j] = _mm512_shuffle_f32x4(v[8 + j], v[12 + j], 0xee);
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; j++) {
    v[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);  // lanes 0, 2 of each: column j
    v[4 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);  // lanes 1, 3: column 4 + j
    v[8 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0x88);
    v[12 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0xdd);
  }
}

// A 16-row group (pointers src[r], rows < `rows` exist, the rest are zero) at
// k .. k + 15, transposed: v[c] holds the 16 rows at k + c.
OSP_TARGET_AVX512 __attribute__((always_inline)) inline void loadTransposed16(const float* const* src, int64_t rows, int64_t k,
                                                                              __m512 v[16]) {
#pragma GCC unroll 16
  for (int r = 0; r < 16; r++) v[r] = r < rows ? _mm512_loadu_ps(src[r] + k) : _mm512_setzero_ps();
  transpose16(v);
}

OSP_TARGET_AVX512 void packA14(const float* a, float* dst, int64_t M, int64_t K, bool transA, int64_t i0, int64_t mc, int64_t k0,
                               int64_t kc) {
  constexpr int MR = 14;
  if (transA) return packA<MR>(a, dst, M, K, transA, i0, mc, k0, kc);
  for (int64_t ir = 0; ir < mc; ir += MR) {
    const int64_t rows = std::min<int64_t>(MR, mc - ir);
    float* p = dst + ir * kc;
    const float* src[16];
    for (int r = 0; r < 16; r++) src[r] = a + (i0 + ir + std::min<int64_t>(r, rows - 1)) * K + k0;
    int64_t k = 0;
    for (; k + 16 <= kc; k += 16) {
      __m512 v[16];
      loadTransposed16(src, rows, k, v);
#pragma GCC unroll 16
      for (int c = 0; c < 16; c++) _mm512_mask_storeu_ps(p + (k + c) * MR, 0x3fff, v[c]);  // rows 0..13
    }
    for (; k < kc; k++)
      for (int r = 0; r < MR; r++) p[k * MR + r] = r < rows ? src[r][k] : 0.f;
  }
}

OSP_TARGET_AVX512 void packB32(const float* b, float* dst, int64_t N, int64_t K, bool transB, int64_t j0, int64_t nc, int64_t k0,
                               int64_t kc, int64_t p0, int64_t p1) {
  constexpr int NR = 32;
  if (!transB) return packB<NR>(b, dst, N, K, transB, j0, nc, k0, kc, p0, p1);
  for (int64_t jp = p0; jp < p1; jp++) {
    const int64_t jr = jp * NR, cols = std::min<int64_t>(NR, nc - jr);
    float* p = dst + jr * kc;
    const float* src[NR];
    for (int c = 0; c < NR; c++) src[c] = b + (j0 + jr + std::min<int64_t>(c, cols - 1)) * K + k0;
    int64_t k = 0;
    for (; k + 16 <= kc; k += 16) {
      __m512 lo[16], hi[16];
      loadTransposed16(src, cols, k, lo);
      loadTransposed16(src + 16, cols - 16, k, hi);
#pragma GCC unroll 16
      for (int c = 0; c < 16; c++) {
        _mm512_storeu_ps(p + (k + c) * NR, lo[c]);
        _mm512_storeu_ps(p + (k + c) * NR + 16, hi[c]);
      }
    }
    for (; k < kc; k++)
      for (int c = 0; c < NR; c++) p[k * NR + c] = c < cols ? src[c][k] : 0.f;
  }
}
#pragma GCC diagnostic pop

OSP_TARGET_AVX2 __attribute__((always_inline)) inline void microAvx2(const float* __restrict__ ap, const float* __restrict__ bp,
                                                                      int64_t kc, float* c, int64_t ldc, int64_t rows, int64_t cols,
                                                                      bool first) {
  constexpr int MR = 6, NV = 2, NR = 16;
  __m256 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) acc[r][v] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; k++) {
    const __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
      const __m256 av = _mm256_broadcast_ss(ap + r);  // vbroadcastss ymm, [mem]: a load, no shuffle
      acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
    }
    ap += MR;
    bp += NR;
  }
  if (rows == MR && cols == NR) {
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
      float* cr = c + r * ldc;
      if (first) {
        _mm256_storeu_ps(cr, acc[r][0]);
        _mm256_storeu_ps(cr + 8, acc[r][1]);
      } else {
        _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_loadu_ps(cr), acc[r][0]));
        _mm256_storeu_ps(cr + 8, _mm256_add_ps(_mm256_loadu_ps(cr + 8), acc[r][1]));
      }
    }
    return;
  }
  alignas(32) float tile[MR * NR];
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++) {
    _mm256_store_ps(tile + r * NR, acc[r][0]);
    _mm256_store_ps(tile + r * NR + 8, acc[r][1]);
  }
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < cols; j++) c[r * ldc + j] = first ? tile[r * NR + j] : c[r * ldc + j] + tile[r * NR + j];
}

OSP_TARGET_AVX2 void macroAvx2(const float* ap, const float* bp, float* c, int64_t ldc, int64_t mc, int64_t nc, int64_t kc, bool first) {
  for (int64_t jr = 0; jr < nc; jr += 16) {
    const int64_t cols = std::min<int64_t>(16, nc - jr);
    for (int64_t ir = 0; ir < mc; ir += 6)
      microAvx2(ap + ir * kc, bp + jr * kc, kc, c + ir * ldc + jr, ldc, std::min<int64_t>(6, mc - ir), cols, first);
  }
}
#endif

// Portable 6 x 16 (the baseline: SSE2 pairs on x86-64, whatever the compiler makes elsewhere).
using simd::f8;
inline void microBaseline(const float* __restrict__ ap, const float* __restrict__ bp, int64_t kc, float* c, int64_t ldc, int64_t rows,
                          int64_t cols, bool first) {
  constexpr int MR = 6, NR = 16, W = simd::W;
  f8 acc[MR][2];
  for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = simd::splat(0.f);
  for (int64_t k = 0; k < kc; k++) {
    const f8 b0 = simd::load(bp + k * NR), b1 = simd::load(bp + k * NR + W);
    const float* ak = ap + k * MR;
    for (int r = 0; r < MR; r++) {
      const f8 av = simd::splat(ak[r]);
      acc[r][0] += av * b0;
      acc[r][1] += av * b1;
    }
  }
  float tile[MR * NR];
  for (int r = 0; r < MR; r++) {
    simd::store(tile + r * NR, acc[r][0]);
    simd::store(tile + r * NR + W, acc[r][1]);
  }
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < cols; j++) c[r * ldc + j] = first ? tile[r * NR + j] : c[r * ldc + j] + tile[r * NR + j];
}

void macroBaseline(const float* ap, const float* bp, float* c, int64_t ldc, int64_t mc, int64_t nc, int64_t kc, bool first) {
  for (int64_t jr = 0; jr < nc; jr += 16) {
    const int64_t cols = std::min<int64_t>(16, nc - jr);
    for (int64_t ir = 0; ir < mc; ir += 6)
      microBaseline(ap + ir * kc, bp + jr * kc, kc, c + ir * ldc + jr, ldc, std::min<int64_t>(6, mc - ir), cols, first);
  }
}

// One ISA's GEMM: its micro-tile, its cache blocks and its functions.
struct GemmKernel {
  int64_t MR, NR;
  int64_t MC;  // most rows of an A block (a multiple of MR)
  void (*packA)(const float*, float*, int64_t, int64_t, bool, int64_t, int64_t, int64_t, int64_t);
  void (*packB)(const float*, float*, int64_t, int64_t, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t);
  void (*macro)(const float*, const float*, float*, int64_t, int64_t, int64_t, int64_t, bool);
};

// A packed A block: MC x KC floats (avx512: 168 x 256 = 168 KiB, well within the 1 MiB L2).
const GemmKernel& kernelFor(simd::Isa isa) {
  static const GemmKernel baseline{6, 16, 96, packA<6>, packB<16>, macroBaseline};
#ifdef OSP_X86_DISPATCH
  static const GemmKernel avx2{6, 16, 120, packA<6>, packB<16>, macroAvx2};
  static const GemmKernel avx512{14, 32, 168, packA14, packB32, macroAvx512<14, 2>};
  if (isa == simd::Isa::Avx512) return avx512;
  if (isa == simd::Isa::Avx2) return avx2;
#endif
  (void)isa;
  return baseline;
}

// Scratch that grows and is kept (per thread): packing buffers, 64-byte aligned. get() returns
// nullptr when memory runs out (it runs on pool threads too, where a throw would end the process).
// A thread's packing buffer, taken from and given back to the host cache (hostScratchTake): a large
// op(B) trimmed between a layer's big GEMMs (a small one came between) comes back from the cache
// on the next big one instead of being page-faulted afresh (a Mistral-7B FFN weight packs to 235 MB
// per thread: refaulting it made LoRA's thin GEMMs cost 0.4x a frozen layer's step).
struct Scratch {
  float* data = nullptr;
  size_t size = 0;     // floats
  size_t granted = 0;  // bytes, as the cache rounded them
  // Give back a buffer larger than `keep` floats (a one-off large op(B) should not stay with one
  // thread: a packed op(B) up to 32 MiB, a 4096 x 2048 weight, is kept for the next call).
  void trim(size_t keep) {
    if (size > keep) release();
  }
  float* get(size_t n) {
    if (n > size) {
      release();
      data = static_cast<float*>(hostScratchTake(n * sizeof(float), &granted));
      size = data ? n : 0;
    }
    return data;
  }
  void release() {
    hostScratchGive(data, granted);
    data = nullptr;
    size = 0;
  }
  ~Scratch() { release(); }
};

}  // namespace

void cpuF32(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K, bool transA, bool transB, bool accumulate) {
  const GemmKernel& g = kernelFor(simd::cpuIsa());
  const int64_t MR = g.MR, NR = g.NR;
  // Below ~1M multiply-adds the pool's wake-up costs more than a second thread saves.
  const int64_t threads = M * N * K >= (int64_t{1} << 20) ? cpuThreads() : 1;
  const int64_t mPanels = (M + MR - 1) / MR, nPanels = (N + NR - 1) / NR, kSlices = (K + KC - 1) / KC;
  // Row blocks: at most MC rows each, and when threads share the work at least 4 per thread (of 4+
  // micro-panels) so that a thread the scheduler delays leaves others work to take; their count a
  // multiple of the thread count, when M allows.
  int64_t mBlocks = (mPanels + g.MC / MR - 1) / (g.MC / MR);
  if (threads > 1) mBlocks = std::max(mBlocks, std::min(4 * threads, mPanels / 4));
  mBlocks = std::min(mPanels, (mBlocks + threads - 1) / threads * threads);
  // Too few row blocks for the threads (small M): split the columns as well.
  const int64_t nBlocks = std::min(nPanels, (threads + mBlocks - 1) / mBlocks);

  // op(B) is packed by each thread for itself (a private copy, ~L2), as its tasks reach each
  // (K slice, column block): slice s (k0 = s KC) at offset k0 * nPanels NR, its micro-panel jp
  // kc NR floats further per panel. A copy shared by the threads, packed once, measured slower
  // whenever B is small enough to matter: the panels one core writes, the other must fetch from
  // it, and the next call's writes invalidate them again (at 512 x 688 x 256, 2 threads: packing
  // 9x slower than alone, a fifth of the GEMM). Private copies need no waiting on each other
  // either: one pool call per GEMM, and a pool thread that never wakes just leaves the caller the
  // work. `callId` tells a thread's copy of this call from what an earlier call left there.
  static std::atomic<uint64_t> calls{0};
  const uint64_t callId = ++calls;
  std::atomic<bool> outOfMemory{false};

  // Blocks of C, one task each: every K slice in order, packing its op(A) block (~L2) per slice.
  parallelFor(mBlocks * nBlocks, threads > 1 ? 1 : mBlocks * nBlocks, [&](int64_t t0, int64_t t1) {
    thread_local Scratch aScratch, bScratch;
    thread_local uint64_t packedFor = 0;  // the call whose op(B) bScratch holds (in part)
    thread_local std::vector<bool> packed;  // per (K slice, column block): packed for that call
    float* apack = aScratch.get(static_cast<size_t>(g.MC * KC));
    // A copy over 32 MiB from an earlier call is freed before a call that needs less.
    if (packedFor != callId) bScratch.trim(std::max<size_t>(size_t{8} << 20, static_cast<size_t>(K * nPanels * NR)));
    float* bpack = bScratch.get(static_cast<size_t>(K * nPanels * NR));
    if (apack == nullptr || bpack == nullptr) {  // nothing shared waits on this thread
      outOfMemory.store(true);
      return;
    }
    if (packedFor != callId) {
      packedFor = callId;
      packed.assign(static_cast<size_t>(kSlices * nBlocks), false);
    }
    for (int64_t t = t0; t < t1; t++) {
      const int64_t mb = t / nBlocks, nb = t % nBlocks;
      // Whole micro-panels, spread evenly: block mb holds panels [mb P / B, (mb + 1) P / B).
      const int64_t i0 = mb * mPanels / mBlocks * MR, i1 = std::min(M, (mb + 1) * mPanels / mBlocks * MR);
      const int64_t jp0 = nb * nPanels / nBlocks, jp1 = (nb + 1) * nPanels / nBlocks;
      const int64_t jc0 = jp0 * NR, jc1 = std::min(N, jp1 * NR);
      if (i0 >= i1 || jc0 >= jc1) continue;
      for (int64_t s = 0; s < kSlices; s++) {
        const int64_t k0 = s * KC, kc = std::min(KC, K - k0);
        float* bslice = bpack + k0 * nPanels * NR;
        if (!packed[s * nBlocks + nb]) {
          g.packB(b, bslice, N, K, transB, 0, N, k0, kc, jp0, jp1);
          packed[s * nBlocks + nb] = true;
        }
        g.packA(a, apack, M, K, transA, i0, i1 - i0, k0, kc);
        g.macro(apack, bslice + jc0 * kc, c + i0 * N + jc0, N, i1 - i0, jc1 - jc0, kc, s == 0 && !accumulate);
      }
    }
  });
  if (outOfMemory.load())
    runtimeError("matmul: out of host memory for the packing buffers (" + std::to_string((g.MC * KC + K * nPanels * NR) * 4) +
                 " bytes per thread)");
}

}  // namespace osp::matmul_kernels
