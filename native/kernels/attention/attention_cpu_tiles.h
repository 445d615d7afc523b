// The f32 CPU causal attention, tiled like FlashAttention-2 (maths and contract in attention.h).
// Included by attention_cpu.cpp once per instruction set, each time inside its own namespace and
// `#pragma GCC target` region, so that one binary carries an AVX-512, an AVX2 and a baseline copy
// and picks one at run time. The includer defines:
//   OSP_TILE_VW  floats per vector (16 for AVX-512, 8 for AVX2, 4 for SSE2)
//   OSP_TILE_MR  rows of the register tile of the small GEMMs (broadcast operand)
//   OSP_TILE_NV  vectors per row of the register tile (MR x NV accumulators stay in registers)
// No include guard, on purpose.
//
// Layout. A query block of B rows of one (sequence, head) meets a key block of B keys of the same
// sequence; both are aligned to the sequence start, so block n of queries meets key blocks 0..n and
// only the diagonal one needs the causal mask. Head dims are padded to Dp = Dh rounded up to VW
// with zeros in small packed copies (Q, V, K, dO blocks), and k, v are transposed once per call
// (K^T, V^T: rows of tokens per (kv head, dim)), so every inner loop is whole vectors.
// Every tile product is one routine, gemm: C (+)= op(A) B with A read by broadcasts through two
// strides (so A^T costs nothing) and B, C row-major in vectors.
//
// Forward, per (sequence, head, query block): for each key block, S = (scale Q) K^T, then the
// online softmax per row (running max m and sum l in local arrays, O rescaled by exp(m_old - m_new)
// only when the max moved), then O += P V; at the end o = O / l and lse = m + log l.
//
// Backward, per (sequence, head): for each key block (dK, dV accumulated in local tiles) and each
// query block at or after it, recompute S = Q K^T once, P = exp(scale S - lse), dV += P^T dO,
// dP = dO V^T, dS = P (dP - D) with D = rowsum(dO o) precomputed, dQ += dS K (into a per-sequence
// local buffer), dK += dS^T Q. dQ of (sequence, head) is owned by the item; dK, dV of a kv head
// shared by several query heads go to per-query-head partial buffers summed afterwards over the
// group's heads in order. Every sum has a fixed order whatever the thread count: deterministic.
//
// Work items: forward (sequence, head, query block), backward (sequence, head); parallelFor hands
// out contiguous runs of items, ordered so a run covers whole causal triangles.

namespace {

constexpr int VW = OSP_TILE_VW, MR = OSP_TILE_MR, NV = OSP_TILE_NV;
static_assert(VW == 4 || VW == 8 || VW == 16, "vector width");
typedef float V __attribute__((vector_size(VW * 4)));
typedef int32_t VI __attribute__((vector_size(VW * 4)));
typedef uint32_t VU __attribute__((vector_size(VW * 4)));

inline V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void store(float* p, V v) { std::memcpy(p, &v, sizeof(v)); }
// {x, x, ..., x}: an initializer list compiles to one broadcast (V{} + x costs an add, as 0 + x is
// not x for x = -0; a loop of element inserts is far worse).
template <size_t... I>
inline V splatList(float x, std::index_sequence<I...>) {
  return V{((void)I, x)...};
}
inline V splat(float x) { return splatList(x, std::make_index_sequence<VW>{}); }
inline float hsum(V v) {  // fixed pairwise order
  float t[VW];
  store(t, v);
  for (int w = VW / 2; w >= 1; w /= 2)
    for (int i = 0; i < w; i++) t[i] += t[i + w];
  return t[0];
}
inline float hmax(V v) {
  float t[VW];
  store(t, v);
  float m = t[0];
  for (int i = 1; i < VW; i++) m = t[i] > m ? t[i] : m;
  return m;
}

// exp(x) for x <= ~0, simd::fastExp (simd.h) at this vector width: relative error < 2e-7, flushed
// to 0 below -87 (so -inf gives 0), NaN stays NaN. Defined here, under this copy's target pragma,
// from simd.h's one body (OSP_FAST_EXP_BODY).
inline V vexp(V x) OSP_FAST_EXP_BODY(V, VI, VU, x)

// C[R x N*VW] (+)= A[R x K] B[K x N*VW], A[r][k] at A[r * ars + k * aks].
template <int R, int N>
inline void tile(const float* __restrict__ A, int64_t ars, int64_t aks, const float* __restrict__ B, int64_t ldb,
                 int64_t K, float* __restrict__ C, int64_t ldc, bool add) {
  V acc[R][N];
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int n = 0; n < N; n++) acc[r][n] = add ? load(C + r * ldc + n * VW) : V{};
  for (int64_t k = 0; k < K; k++) {
    V b[N];
#pragma GCC unroll 4
    for (int n = 0; n < N; n++) b[n] = load(B + k * ldb + n * VW);
    const float* a = A + k * aks;
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) {
      const V ar = splat(a[r * ars]);
#pragma GCC unroll 4
      for (int n = 0; n < N; n++) acc[r][n] += ar * b[n];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int n = 0; n < N; n++) store(C + r * ldc + n * VW, acc[r][n]);
}

template <int R>
inline void tileRows(int nv, const float* A, int64_t ars, int64_t aks, const float* B, int64_t ldb, int64_t K, float* C,
                     int64_t ldc, bool add) {
  static_assert(NV >= 1 && NV <= 4, "NV in 1..4");
  switch (nv) {
    case 1: return tile<R, 1>(A, ars, aks, B, ldb, K, C, ldc, add);
    case 2: if constexpr (NV >= 2) return tile<R, 2>(A, ars, aks, B, ldb, K, C, ldc, add); break;
    case 3: if constexpr (NV >= 3) return tile<R, 3>(A, ars, aks, B, ldb, K, C, ldc, add); break;
    case 4: if constexpr (NV >= 4) return tile<R, 4>(A, ars, aks, B, ldb, K, C, ldc, add); break;
  }
}

// Which part of a diagonal tile (query block == key block) a product needs, by output row i:
//   Full:  everything (off-diagonal tiles);
//   Lower: only C[i][j] with j <= i (scores: later keys are masked afterwards, so the register
//          tiles wholly above the diagonal are skipped and the rest computed, masked by the caller);
//   KUpTo: only k <= i contributes (A[i][k] is 0 for later keys: P V, dS K);
//   KFrom: only k >= i contributes (A = P^T or dS^T, 0 where the query precedes the key).
enum class Tri { Full, Lower, KUpTo, KFrom };

// C[M x N] (+)= op(A)[M x K] B[K x N] with N a multiple of VW; op(A)[i][k] = A[i * ars + k * aks].
void gemm(const float* A, int64_t ars, int64_t aks, const float* B, int64_t ldb, int64_t M, int64_t N, int64_t K,
          float* C, int64_t ldc, bool add, Tri tri = Tri::Full) {
  auto rowsAt = [&](auto rTag, int nv, int64_t i, int64_t j) {
    constexpr int R = decltype(rTag)::value;
    if (tri == Tri::Lower && j > i + R - 1) return;
    const int64_t k0 = tri == Tri::KFrom ? std::min(i, K) : 0, k1 = tri == Tri::KUpTo ? std::min(K, i + R) : K;
    if (k1 <= k0 && add) return;
    tileRows<R>(nv, A + i * ars + k0 * aks, ars, aks, B + k0 * ldb + j, ldb, k1 - k0, C + i * ldc + j, ldc, add);
  };
  for (int64_t j = 0; j < N; j += NV * VW) {
    const int nv = static_cast<int>(std::min<int64_t>(NV, (N - j) / VW));
    int64_t i = 0;
    for (; i + MR <= M; i += MR) rowsAt(std::integral_constant<int, MR>{}, nv, i, j);
    for (; i < M; i++) rowsAt(std::integral_constant<int, 1>{}, nv, i, j);
  }
}

inline int64_t padded(int64_t n) { return (n + VW - 1) / VW * VW; }

// rows x Dh of x (row r at x + r * stride), times mul, into dst rows of Dp floats, zero-padded.
void packRows(const float* x, int64_t stride, int64_t rows, int64_t Dh, int64_t Dp, float mul, float* dst) {
  for (int64_t r = 0; r < rows; r++) {
    const float* src = x + r * stride;
    float* o = dst + r * Dp;
    for (int64_t d = 0; d < Dh; d++) o[d] = src[d] * mul;
    for (int64_t d = Dh; d < Dp; d++) o[d] = 0.f;
  }
}

// x [T, Hkv, Dh] -> xt [Hkv][Dp][ldT]: row (g, d) holds x[j, g, d] for every token j, zero past T
// and for d >= Dh. One pass per call, so the tiles' B operands for S = Q K^T and dP = dO V^T are
// plain row slices (ldT >= T + VW lets a tile's padded columns run past the last token).
void transposeHeads(const float* x, int64_t T, int64_t Hkv, int64_t Dh, int64_t Dp, int64_t ldT, float* xt) {
  parallelFor(Hkv * Dp, std::max<int64_t>(1, 16384 / (T + 1)), [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; n++) {
      const int64_t g = n / Dp, d = n % Dp;
      float* row = xt + n * ldT;
      int64_t j = 0;
      if (d < Dh)
        for (; j < T; j++) row[j] = x[(j * Hkv + g) * Dh + d];
      std::fill(row + j, row + ldT, 0.f);
    }
  });
}

struct Sequence {
  int64_t start, end;
};

std::vector<Sequence> sequencesOf(const int32_t* starts, int64_t T) {
  std::vector<Sequence> seqs;
  for (int64_t i = 0; i < T; i++)
    if (starts[i] == i) {
      if (!seqs.empty()) seqs.back().end = i;
      seqs.push_back({i, T});
    }
  return seqs;
}

// Per-thread scratch that outlives the call: fresh allocations of this size are page-faulted (and
// zeroed) on every call, measured ~7% of a 4 x 128-token forward + backward. Grows to the largest
// call's need (up to (5 Dp + 128) x 64 + T Dp floats per pool thread, and T (H + 2 Hkv Dp) +
// 2 T H Dh more on the calling thread) and is kept. `slot` names one of
// a few independent buffers; every element a caller reads it writes first.
float* scratch(int slot, int64_t n) {
  thread_local std::vector<float> bufs[3];
  std::vector<float>& b = bufs[slot];
  if (static_cast<int64_t>(b.size()) < n) b.resize(static_cast<size_t>(n));
  return b.data();
}

}  // namespace

// Tile edge (queries per block = keys per block): a multiple of VW. 64 keeps a block's packed
// Q, K^T, V, S and O (up to 5 x 64 x 128 floats at Dh 128) within the 1 MB L2 of one core.
constexpr int64_t BLOCK = 64;

void forward(const float* q, const float* k, const float* v, const int32_t* starts, float* out, float* lse, int64_t T,
             int64_t H, int64_t Hkv, int64_t Dh, float scale) {
  const int64_t group = H / Hkv, Dp = padded(Dh), ldT = padded(T) + VW;
  float* KT = scratch(1, Hkv * Dp * ldT);  // the calling thread's; the pool's threads only read it
  transposeHeads(k, T, Hkv, Dh, Dp, ldT, KT);
  struct Item {
    int64_t start, i0, i1, h;
  };
  std::vector<Item> items;
  for (const Sequence& s : sequencesOf(starts, T))
    for (int64_t h = 0; h < H; h++)
      for (int64_t i0 = s.start; i0 < s.end; i0 += BLOCK) items.push_back({s.start, i0, std::min(i0 + BLOCK, s.end), h});
  parallelFor(static_cast<int64_t>(items.size()), 1, [&](int64_t b, int64_t e) {
    float* Qp = scratch(0, BLOCK * (3 * Dp + BLOCK + 2));  // BLOCK x Dp, scaled
    float* Vp = Qp + BLOCK * Dp;     // BLOCK x Dp
    float* O = Vp + BLOCK * Dp;      // BLOCK x Dp
    float* S = O + BLOCK * Dp;       // BLOCK x BLOCK, then P in place
    float* m = S + BLOCK * BLOCK;    // running max per row
    float* l = m + BLOCK;            // running sum per row
    for (int64_t n = b; n < e; n++) {
      const Item it = items[n];
      const int64_t rows = it.i1 - it.i0, g = it.h / group;
      packRows(q + (it.i0 * H + it.h) * Dh, H * Dh, rows, Dh, Dp, scale, Qp);
      std::fill(O, O + rows * Dp, 0.f);
      std::fill(m, m + rows, -INFINITY);
      std::fill(l, l + rows, 0.f);
      for (int64_t j0 = it.start; j0 < it.i1; j0 += BLOCK) {
        const bool diagonal = j0 == it.i0;
        const int64_t cols = diagonal ? rows : BLOCK, ldS = padded(cols);
        packRows(v + (j0 * Hkv + g) * Dh, Hkv * Dh, cols, Dh, Dp, 1.f, Vp);
        std::fill(Vp + cols * Dp, Vp + ldS * Dp, 0.f);
        // Columns past `cols` (other keys, or zeros past T) are masked below.
        gemm(Qp, Dp, 1, KT + g * Dp * ldT + j0, ldT, rows, ldS, Dp, S, ldS, false, diagonal ? Tri::Lower : Tri::Full);
        for (int64_t r = 0; r < rows; r++) {
          float* srow = S + r * ldS;
          // Keys past the query (diagonal block) and the padding columns get probability 0.
          // Whole vectors past the last valid one get P = 0 directly (no exp).
          const int64_t valid = diagonal ? r + 1 : cols, width = padded(valid);
          std::fill(srow + valid, srow + width, -INFINITY);
          std::fill(srow + width, srow + ldS, 0.f);
          V mx = splat(-INFINITY);
          for (int64_t c = 0; c < width; c += VW) {
            const V x = load(srow + c);
            mx = x > mx ? x : mx;
          }
          const float mNew = std::max(m[r], hmax(mx));
          const V mv = splat(mNew);
          V sum{};
          for (int64_t c = 0; c < width; c += VW) {
            const V p = vexp(load(srow + c) - mv);
            store(srow + c, p);
            sum += p;
          }
          if (mNew != m[r]) {
            const float alpha = std::exp(m[r] - mNew);  // 0 on the first block (m = -inf)
            const V av = splat(alpha);
            float* orow = O + r * Dp;
            for (int64_t d = 0; d < Dp; d += VW) store(orow + d, load(orow + d) * av);
            l[r] *= alpha;
            m[r] = mNew;
          }
          l[r] += hsum(sum);
        }
        gemm(S, ldS, 1, Vp, Dp, rows, Dp, ldS, O, Dp, true, diagonal ? Tri::KUpTo : Tri::Full);
      }
      for (int64_t r = 0; r < rows; r++) {
        const int64_t i = it.i0 + r;
        float* o = out + (i * H + it.h) * Dh;
        const float inv = 1.f / l[r];
        for (int64_t d = 0; d < Dh; d++) o[d] = O[r * Dp + d] * inv;
        lse[i * H + it.h] = m[r] + std::log(l[r]);
      }
    }
  });
}

void backward(const float* q, const float* k, const float* v, const int32_t* starts, const float* out, const float* lse,
              const float* gradOut, float* dq, float* dk, float* dv, int64_t T, int64_t H, int64_t Hkv, int64_t Dh,
              float scale) {
  const int64_t group = H / Hkv, Dp = padded(Dh), ldT = padded(T) + VW;
  // The calling thread's scratch (the pool's threads only read it): D = rowsum(dO o) per (token,
  // head), then k and v transposed.
  float* delta = scratch(1, T * H + 2 * Hkv * Dp * ldT);
  float* KT = delta + T * H;
  float* VT = KT + Hkv * Dp * ldT;
  transposeHeads(k, T, Hkv, Dh, Dp, ldT, KT);
  transposeHeads(v, T, Hkv, Dh, Dp, ldT, VT);
  parallelFor(T * H, std::max<int64_t>(1, 8192 / (Dh + 1)), [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; n++) {
      const float* g = gradOut + n * Dh;
      const float* o = out + n * Dh;
      float s = 0;
      for (int64_t d = 0; d < Dh; d++) s += g[d] * o[d];
      delta[n] = s;
    }
  });
  // dK, dV per query head ([T, H, Dh], like q) when a kv head serves several; else straight out.
  float* partK = group > 1 ? scratch(2, 2 * T * H * Dh) : nullptr;
  float* partV = group > 1 ? partK + T * H * Dh : nullptr;
  const std::vector<Sequence> seqs = sequencesOf(starts, T);
  int64_t longest = 0;
  for (const Sequence& s : seqs) longest = std::max(longest, s.end - s.start);
  const int64_t items = static_cast<int64_t>(seqs.size()) * H;
  parallelFor(items, 1, [&](int64_t b, int64_t e) {
    float* Kp = scratch(0, BLOCK * (5 * Dp + 2 * BLOCK) + longest * Dp);  // BLOCK x Dp
    float* Qp = Kp + BLOCK * Dp;  // BLOCK x Dp
    float* Gp = Qp + BLOCK * Dp;  // BLOCK x Dp (dO)
    float* dK = Gp + BLOCK * Dp;  // BLOCK x Dp
    float* dV = dK + BLOCK * Dp;  // BLOCK x Dp
    float* P = dV + BLOCK * Dp;               // BLOCK x BLOCK
    float* dS = P + BLOCK * BLOCK;            // BLOCK x BLOCK (dP, then dS in place)
    float* dQ = dS + BLOCK * BLOCK;           // longest x Dp
    for (int64_t n = b; n < e; n++) {
      const Sequence s = seqs[n / H];
      const int64_t h = n % H, g = h / group, len = s.end - s.start;
      std::fill(dQ, dQ + len * Dp, 0.f);
      for (int64_t j0 = s.start; j0 < s.end; j0 += BLOCK) {
        const int64_t cols = std::min(BLOCK, s.end - j0), ldS = padded(cols);
        const float* Kt = KT + g * Dp * ldT + j0;  // Dp x ldS slices (columns past cols masked)
        const float* Vt = VT + g * Dp * ldT + j0;
        packRows(k + (j0 * Hkv + g) * Dh, Hkv * Dh, cols, Dh, Dp, 1.f, Kp);
        std::fill(Kp + cols * Dp, Kp + ldS * Dp, 0.f);
        std::fill(dK, dK + ldS * Dp, 0.f);
        std::fill(dV, dV + ldS * Dp, 0.f);
        for (int64_t i0 = j0; i0 < s.end; i0 += BLOCK) {
          const bool diagonal = i0 == j0;
          const int64_t rows = std::min(BLOCK, s.end - i0);
          packRows(q + (i0 * H + h) * Dh, H * Dh, rows, Dh, Dp, 1.f, Qp);
          packRows(gradOut + (i0 * H + h) * Dh, H * Dh, rows, Dh, Dp, 1.f, Gp);
          const Tri lower = diagonal ? Tri::Lower : Tri::Full;
          gemm(Qp, Dp, 1, Kt, ldT, rows, ldS, Dp, P, ldS, false, lower);   // S
          gemm(Gp, Dp, 1, Vt, ldT, rows, ldS, Dp, dS, ldS, false, lower);  // dP
          const V sv = splat(scale);
          for (int64_t r = 0; r < rows; r++) {
            float* prow = P + r * ldS;
            float* dsrow = dS + r * ldS;
            const V lv = splat(lse[(i0 + r) * H + h]), dv_ = splat(delta[(i0 + r) * H + h]);
            const int64_t valid = diagonal ? r + 1 : cols;  // later keys and padding: P = dS = 0
            for (int64_t c = 0; c < padded(valid); c += VW) {
              const V p = vexp(load(prow + c) * sv - lv);
              store(prow + c, p);
              store(dsrow + c, p * (load(dsrow + c) - dv_));
            }
            std::fill(prow + valid, prow + ldS, 0.f);
            std::fill(dsrow + valid, dsrow + ldS, 0.f);
          }
          const Tri from = diagonal ? Tri::KFrom : Tri::Full, upTo = diagonal ? Tri::KUpTo : Tri::Full;
          gemm(P, 1, ldS, Gp, Dp, ldS, Dp, rows, dV, Dp, true, from);                         // dV += P^T dO
          gemm(dS, 1, ldS, Qp, Dp, ldS, Dp, rows, dK, Dp, true, from);                        // dK += dS^T Q
          gemm(dS, ldS, 1, Kp, Dp, rows, Dp, ldS, dQ + (i0 - s.start) * Dp, Dp, true, upTo);  // dQ += dS K
        }
        float* dkOut = group > 1 ? partK + (j0 * H + h) * Dh : dk + (j0 * Hkv + g) * Dh;
        float* dvOut = group > 1 ? partV + (j0 * H + h) * Dh : dv + (j0 * Hkv + g) * Dh;
        const int64_t stride = group > 1 ? H * Dh : Hkv * Dh;
        for (int64_t c = 0; c < cols; c++)
          for (int64_t d = 0; d < Dh; d++) {
            dkOut[c * stride + d] = scale * dK[c * Dp + d];
            dvOut[c * stride + d] = dV[c * Dp + d];
          }
      }
      for (int64_t i = s.start; i < s.end; i++)
        for (int64_t d = 0; d < Dh; d++) dq[(i * H + h) * Dh + d] = scale * dQ[(i - s.start) * Dp + d];
    }
  });
  if (group > 1) {
    parallelFor(T * Hkv, std::max<int64_t>(1, 8192 / (group * Dh + 1)), [&](int64_t b, int64_t e) {
      for (int64_t n = b; n < e; n++) {
        const int64_t j = n / Hkv, g = n % Hkv;
        for (int64_t d = 0; d < Dh; d++) {
          float sk = 0, sv = 0;
          for (int64_t h = g * group; h < (g + 1) * group; h++) {
            sk += partK[(j * H + h) * Dh + d];
            sv += partV[(j * H + h) * Dh + d];
          }
          dk[n * Dh + d] = sk;
          dv[n * Dh + d] = sv;
        }
      }
    });
  }
}
