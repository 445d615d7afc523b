// Host emulation of the tensor-core attention's fragment helpers (native/kernels/attention/
// attention_mma.cuh), run by test/attentionMmaEmulation.test.ts where no GPU is needed: every lane
// of a warp runs a helper in turn (threadIdx.x = lane), each mma call is recorded instead of
// executed, and then replayed by the PTX ISA's fragment maps for m16n8k16 bf16 (mmaPtxMaps.h,
// written from the ISA's tables, not from the header's helpers). The products must equal the
// plain loops over the shared tiles: S = A B^T (mmaRowsRows), O = bf16(L) B (mmaAccCols, L an
// accumulator of an earlier product), and storeRow's placement. Prints one JSON line:
// {"<check> Dh <Dh>": worst |error|, ...}; exits 1 if a helper cannot be checked.
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

struct Lane {
  unsigned x;
};
static Lane threadIdx;  // the emulated lane; the helpers read threadIdx.x
#undef __device__
#define __device__
#undef __forceinline__
#define __forceinline__ inline
#define OSP_MMA_HOST_EMULATION
#include "../../native/kernels/attention/attention_mma.cuh"
#include "mmaPtxMaps.h"

using namespace osp::attention_mma;

namespace {

struct Call {
  float* d;
  uint32_t a[4], b[2];
};
std::vector<Call> calls[32];

// Replays call c of all 32 lanes by the PTX maps (mmaPtxMaps.h).
void replay() {
  for (size_t c = 0; c < calls[0].size(); c++) {
    MmaFragments warp[32];
    for (int lane = 0; lane < 32; lane++) {
      std::memcpy(warp[lane].a, calls[lane][c].a, sizeof warp[lane].a);
      std::memcpy(warp[lane].b, calls[lane][c].b, sizeof warp[lane].b);
    }
    for (int lane = 0; lane < 32; lane++) ptxMmaLane(warp, lane, calls[lane][c].d);
  }
  for (auto& l : calls) l.clear();
}

std::mt19937 rng(20261130);  // a fixed seed: what is checked is index maps, not values
std::normal_distribution<float> normal;
float rb(float x) { return __bfloat162float(__float2bfloat16(x)); }
std::vector<__nv_bfloat16> tile(int rows, int ld) {
  std::vector<__nv_bfloat16> t(size_t(rows) * ld);
  for (auto& x : t) x = __float2bfloat16(normal(rng));
  return t;
}
float at(const std::vector<__nv_bfloat16>& t, int ld, int r, int c) { return __bfloat162float(t[size_t(r) * ld + c]); }

// mmaRowsRows: acc (16 x 8N) = rows row0.. of a times rows 0..8N-1 of b, over Dh columns.
template <int Dh, int N>
double rowsRows() {
  constexpr int ld = Dh + 8;
  const auto a = tile(64, ld), b = tile(64, ld);
  double worst = 0;
  for (int row0 = 0; row0 < 64; row0 += 16) {
    static float acc[32][N][4];
    std::memset(acc, 0, sizeof acc);
    for (unsigned lane = 0; lane < 32; lane++) {
      threadIdx.x = lane;
      mmaRowsRows<Dh>(acc[lane], a.data(), row0, b.data(), ld);
    }
    replay();
    for (unsigned lane = 0; lane < 32; lane++) {
      threadIdx.x = lane;
      for (int nt = 0; nt < N; nt++)
        for (int r = 0; r < 4; r++) {
          double s = 0;
          for (int d = 0; d < Dh; d++) s += double(at(a, ld, row0 + accRow(r), d)) * at(b, ld, nt * 8 + accCol(r), d);
          worst = std::fmax(worst, std::fabs(s - acc[lane][nt][r]));
        }
    }
  }
  return worst;
}

// mmaAccCols: acc (16 x Dh) = bf16(L) times rows 0..16KT-1 of b, L (16 x 16KT) held as accumulators.
template <int Dh, int KT>
double accCols() {
  constexpr int ld = Dh + 8, N = Dh / 8;
  const auto b = tile(16 * KT, ld);
  static float left[32][2 * KT][4], acc[32][N][4];
  std::memset(acc, 0, sizeof acc);
  float L[16][16 * KT];
  for (unsigned lane = 0; lane < 32; lane++) {
    threadIdx.x = lane;
    for (int nt = 0; nt < 2 * KT; nt++)
      for (int r = 0; r < 4; r++) L[accRow(r)][nt * 8 + accCol(r)] = rb(left[lane][nt][r] = normal(rng));
  }
  for (unsigned lane = 0; lane < 32; lane++) {
    threadIdx.x = lane;
    mmaAccCols<KT>(acc[lane], left[lane], b.data(), ld);
  }
  replay();
  double worst = 0;
  for (unsigned lane = 0; lane < 32; lane++) {
    threadIdx.x = lane;
    for (int nt = 0; nt < N; nt++)
      for (int r = 0; r < 4; r++) {
        double s = 0;
        for (int j = 0; j < 16 * KT; j++) s += double(L[accRow(r)][j]) * at(b, ld, j, nt * 8 + accCol(r));
        worst = std::fmax(worst, std::fabs(s - acc[lane][nt][r]));
      }
  }
  return worst;
}

// storeRow: row x of every lane's accumulator lands at columns nt * 8 + accCol(r); counts misplaced values.
template <int Dh>
double storeRows() {
  float acc[Dh / 8][4];
  std::vector<__nv_bfloat16> row(Dh);
  int bad = 0;
  for (unsigned lane = 0; lane < 32; lane++) {
    threadIdx.x = lane;
    for (int nt = 0; nt < Dh / 8; nt++)
      for (int r = 0; r < 4; r++) acc[nt][r] = float(256 * accRow(r) + nt * 8 + accCol(r));
    for (int x = 0; x < 2; x++) {
      storeRow(row.data(), acc, x, 1.f);
      for (int nt = 0; nt < Dh / 8; nt++)
        for (int i = 0; i < 2; i++) {
          const int col = nt * 8 + 2 * laneQuad() + i;
          bad += __bfloat162float(row[col]) != rb(float(256 * (laneGroup() + 8 * x) + col));
        }
    }
  }
  return bad;
}

template <int Dh>
std::string check() {
  char s[400];
  std::snprintf(s, sizeof s,
                "\"rowsRows N4 Dh %d\": %.3g, \"rowsRows N8 Dh %d\": %.3g, \"accCols KT2 Dh %d\": %.3g, "
                "\"accCols KT4 Dh %d\": %.3g, \"storeRow misplaced Dh %d\": %.0f",
                Dh, rowsRows<Dh, 4>(), Dh, rowsRows<Dh, 8>(), Dh, accCols<Dh, 2>(), Dh, accCols<Dh, 4>(), Dh,
                storeRows<Dh>());
  return s;
}

}  // namespace

namespace osp::attention_mma {
void emulatedMma(float d[4], const uint32_t a[4], const uint32_t b[2]) {
  calls[threadIdx.x & 31].push_back({d, {a[0], a[1], a[2], a[3]}, {b[0], b[1]}});
}
}  // namespace osp::attention_mma

int main() {
  std::printf("{%s, %s, %s, %s}\n", check<64>().c_str(), check<80>().c_str(), check<96>().c_str(), check<128>().c_str());
  return 0;
}
