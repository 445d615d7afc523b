// The PTX ISA's fragment maps of mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, written from
// the ISA's tables (not from native/kernels/attention/attention_mma.cuh, which they check), for the
// host emulations in test/native/. With g = lane / 4 and q = lane % 4:
//   A (16 x 16): a0,a1 = (g, 2q + i), a2,a3 = (g + 8, 2q + i), a4,a5 = (g, 2q + 8 + i), a6,a7 = (g + 8, 2q + 8 + i)
//   B (16 x 8):  b0,b1 = (k 2q + i, n g), b2,b3 = (k 2q + 8 + i, n g)
//   C, D (16 x 8): c0,c1 = (g, 2q + i), c2,c3 = (g + 8, 2q + i)
// element 2r + i in .b32 register r, i = 0 the low half.
#pragma once
#include <cstdint>
#include <cstring>

struct MmaFragments {
  uint32_t a[4], b[2];
};

inline float bf16Half(uint32_t w, int hi) {
  const uint32_t u = (hi ? (w >> 16) : (w & 0xffffu)) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// d += (A B)'s elements held by `lane`, A and B assembled from the 32 lanes' fragments; the 16-term
// sums in double, then added to the f32 accumulator.
inline void ptxMmaLane(const MmaFragments* warp, int lane, float d[4]) {
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; l++) {
    const int g = l >> 2, q = l & 3;
    for (int e = 0; e < 8; e++) A[g + ((e >> 1) & 1) * 8][2 * q + (e & 1) + (e >= 4 ? 8 : 0)] = bf16Half(warp[l].a[e >> 1], e & 1);
    for (int e = 0; e < 4; e++) B[2 * q + (e & 1) + (e >= 2 ? 8 : 0)][g] = bf16Half(warp[l].b[e >> 1], e & 1);
  }
  const int g = lane >> 2, q = lane & 3;
  for (int e = 0; e < 4; e++) {
    double s = 0;
    for (int k = 0; k < 16; k++) s += double(A[g + (e >= 2 ? 8 : 0)][k]) * B[k][2 * q + (e & 1)];
    d[e] = float(d[e] + s);
  }
}
