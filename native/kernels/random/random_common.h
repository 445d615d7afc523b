// The per-element generator shared by the CPU and CUDA random fill (see random.h).
#pragma once
#include <cmath>
#include <cstdint>

#include "../preference_loss/preference_pair.h"  // OSP_HD

namespace osp::random {

OSP_HD uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Standard normal for element i: Box-Muller on two uniforms in (0, 1].
OSP_HD float normalAt(uint64_t seed, uint64_t i) {
  const uint64_t r = splitmix64(splitmix64(seed) ^ (i * 0xd1b54a32d192ed03ull));
  const float u1 = (float((r >> 40) & 0xffffffull) + 1.0f) * (1.0f / 16777216.0f);
  const float u2 = float((r >> 8) & 0xffffffull) * (1.0f / 16777216.0f);
  return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647f * u2);
}

}  // namespace osp::random
