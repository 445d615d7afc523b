// CPU matmul: the scalar reference (any float type) and the blocked f32 GEMM (see matmul.h).
//
// Blocking (f32): C is cut into MC x NC blocks, one task of the thread pool each. A task walks K in
// KC slices: it packs op(A)[i0:i0+MC, k0:k0+KC] into micro-panels of MR rows (k-major, MR floats
// per k) and op(B)[k0:k0+KC, j0:j0+NC] into micro-panels of NR columns (NR floats per k), zero-padded
// at the edges, then runs the MR x NR micro-kernel over every (micro-panel of A, micro-panel of B).
// The first K slice stores into C, later ones add: so every C element is
// ((slice 0) + slice 1) + ..., each slice summed over k in order, independent of the task split.
// Sizes: a packed A block is 96 x 256 floats (96 KiB, L2), a B micro-panel 256 x 16 (16 KiB, L1),
// the packed B block 256 x 256 (256 KiB, L2/L3).
#include <algorithm>
#include <cstring>
#include <vector>

#include "../../core/parallel.h"
#include "../../core/simd.h"
#include "matmul.h"

namespace osp::matmul_kernels {

template <typename T>
void reference(const T* a, const T* b, T* c, int64_t M, int64_t N, int64_t K, bool transA, bool transB) {
  // op(a)[i, k] = transA ? a[k * M + i] : a[i * K + k]; op(b)[k, j] = transB ? b[j * K + k] : b[k * N + j]
  const int64_t aI = transA ? 1 : K, aK = transA ? M : 1;
  const int64_t bK = transB ? 1 : N, bJ = transB ? K : 1;
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      T s = 0;
      for (int64_t k = 0; k < K; k++) s += a[i * aI + k * aK] * b[k * bK + j * bJ];
      c[i * N + j] = s;
    }
}

template void reference<float>(const float*, const float*, float*, int64_t, int64_t, int64_t, bool, bool);
template void reference<double>(const double*, const double*, double*, int64_t, int64_t, int64_t, bool, bool);

// ---- blocked f32 --------------------------------------------------------------------------------

namespace {

using namespace simd;

constexpr int64_t MR = 6, NR = 16;            // micro-tile of C: 6 rows x 2 vectors of 8
constexpr int64_t MC = 96, KC = 256, NC = 256;  // cache blocks (MC a multiple of MR, NC of NR)

// Pack op(A)[i0:i0+mc, k0:k0+kc] as ceil(mc / MR) micro-panels, each kc x MR (k-major), zero-padded.
void packA(const float* a, float* dst, int64_t M, int64_t K, bool transA, int64_t i0, int64_t mc, int64_t k0, int64_t kc) {
  for (int64_t ir = 0; ir < mc; ir += MR) {
    const int64_t rows = std::min(MR, mc - ir);
    float* p = dst + ir * kc;
    if (transA) {  // a is [K, M]: the MR rows of op(A) at one k are contiguous
      for (int64_t k = 0; k < kc; k++) {
        const float* src = a + (k0 + k) * M + i0 + ir;
        int64_t r = 0;
        for (; r < rows; r++) p[k * MR + r] = src[r];
        for (; r < MR; r++) p[k * MR + r] = 0.f;
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

// Pack op(B)[k0:k0+kc, j0:j0+nc] as ceil(nc / NR) micro-panels, each kc x NR (k-major), zero-padded.
void packB(const float* b, float* dst, int64_t N, int64_t K, bool transB, int64_t j0, int64_t nc, int64_t k0, int64_t kc) {
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const int64_t cols = std::min(NR, nc - jr);
    float* p = dst + jr * kc;
    if (!transB) {  // b is [K, N]: the NR columns at one k are contiguous
      for (int64_t k = 0; k < kc; k++) {
        const float* src = b + (k0 + k) * N + j0 + jr;
        int64_t c = 0;
        for (; c < cols; c++) p[k * NR + c] = src[c];
        for (; c < NR; c++) p[k * NR + c] = 0.f;
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

// acc = sum over k of the packed A column (MR) times the packed B row (NR); then C = acc (first
// K slice) or C += acc, writing only the rows < rows and columns < cols that exist.
__attribute__((always_inline)) inline void microKernel(const float* __restrict__ ap, const float* __restrict__ bp, int64_t kc,
                                                       float* c, int64_t ldc, int64_t rows, int64_t cols, bool first) {
  f8 c00 = splat(0.f), c01 = splat(0.f), c10 = splat(0.f), c11 = splat(0.f), c20 = splat(0.f), c21 = splat(0.f);
  f8 c30 = splat(0.f), c31 = splat(0.f), c40 = splat(0.f), c41 = splat(0.f), c50 = splat(0.f), c51 = splat(0.f);
  for (int64_t k = 0; k < kc; k++) {
    const f8 b0 = load(bp + k * NR), b1 = load(bp + k * NR + W);
    const float* ak = ap + k * MR;
    f8 a;
    a = splat(ak[0]); c00 += a * b0; c01 += a * b1;
    a = splat(ak[1]); c10 += a * b0; c11 += a * b1;
    a = splat(ak[2]); c20 += a * b0; c21 += a * b1;
    a = splat(ak[3]); c30 += a * b0; c31 += a * b1;
    a = splat(ak[4]); c40 += a * b0; c41 += a * b1;
    a = splat(ak[5]); c50 += a * b0; c51 += a * b1;
  }
  const f8 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  if (rows == MR && cols == NR) {
    for (int64_t r = 0; r < MR; r++) {
      float* cr = c + r * ldc;
      if (first) {
        store(cr, acc[r][0]);
        store(cr + W, acc[r][1]);
      } else {
        store(cr, load(cr) + acc[r][0]);
        store(cr + W, load(cr + W) + acc[r][1]);
      }
    }
    return;
  }
  float tile[MR * NR];
  for (int64_t r = 0; r < MR; r++) {
    store(tile + r * NR, acc[r][0]);
    store(tile + r * NR + W, acc[r][1]);
  }
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < cols; j++) c[r * ldc + j] = first ? tile[r * NR + j] : c[r * ldc + j] + tile[r * NR + j];
}

// All micro-tiles of one (mc x nc) block of C for one K slice.
OSP_SIMD_CLONES
void macroKernel(const float* ap, const float* bp, float* c, int64_t ldc, int64_t mc, int64_t nc, int64_t kc, bool first) {
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const int64_t cols = std::min(NR, nc - jr);
    for (int64_t ir = 0; ir < mc; ir += MR)
      microKernel(ap + ir * kc, bp + jr * kc, kc, c + ir * ldc + jr, ldc, std::min(MR, mc - ir), cols, first);
  }
}

}  // namespace

void cpuF32(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K, bool transA, bool transB) {
  const int64_t mBlocks = (M + MC - 1) / MC, nBlocks = (N + NC - 1) / NC;
  // One task per block of C; small problems (a few blocks of little work) run inline.
  const int64_t perBlock = std::min(M, MC) * std::min(N, NC) * K;
  const int64_t grain = perBlock >= (1 << 18) ? 1 : (1 << 18) / std::max<int64_t>(perBlock, 1);
  parallelFor(mBlocks * nBlocks, grain, [&](int64_t t0, int64_t t1) {
    std::vector<float> apack(static_cast<size_t>(((MC + MR - 1) / MR * MR) * KC));
    std::vector<float> bpack(static_cast<size_t>(((NC + NR - 1) / NR * NR) * KC));
    for (int64_t t = t0; t < t1; t++) {
      const int64_t i0 = (t / nBlocks) * MC, j0 = (t % nBlocks) * NC;
      const int64_t mc = std::min(MC, M - i0), nc = std::min(NC, N - j0);
      for (int64_t k0 = 0; k0 < K; k0 += KC) {
        const int64_t kc = std::min(KC, K - k0);
        packA(a, apack.data(), M, K, transA, i0, mc, k0, kc);
        packB(b, bpack.data(), N, K, transB, j0, nc, k0, kc);
        macroKernel(apack.data(), bpack.data(), c + i0 * N + j0, N, mc, nc, kc, k0 == 0);
      }
    }
  });
}

}  // namespace osp::matmul_kernels
