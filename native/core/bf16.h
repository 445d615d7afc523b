// bfloat16 on the host: the upper 16 bits of an IEEE float32. Same bit layout as CUDA's
// __nv_bfloat16, so buffers move between host and device unchanged. Rounding is to nearest even,
// as torch and CUDA's __float2bfloat16 do, so values stored here match those made on the GPU.
#pragma once
#include <cstdint>
#include <cstring>

namespace osp {

inline float bf16ToFloat(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t floatToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // quiet NaN
  uint32_t lsb = (bits >> 16) & 1u;
  bits += 0x7fffu + lsb;
  return static_cast<uint16_t>(bits >> 16);
}

}  // namespace osp
