// The per-element generator shared by the CPU and CUDA random fill (see random.h).
#pragma once
#include <cmath>
#include <cstdint>

#include "../../core/math.h"  // OSP_HD

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
  // The guard: u1 is in (0, 1], so log u1 <= 0, but a log that rounds to a tiny positive value near
  // u1 = 1 would make the argument negative and the result NaN; one guard serves CPU and GPU alike.
  return sqrtf(fmaxf(0.0f, -2.0f * logf(u1))) * cosf(6.28318530717958647f * u2);
}

// Uniform in [0, 1) for element i, 24 bits (exact in f32): the dropout mask and the uniform fill.
// A different mix of (seed, i) than normalAt's, so a normal and a uniform stream of one seed are unrelated.
OSP_HD float uniformAt(uint64_t seed, uint64_t i) {
  const uint64_t r = splitmix64(splitmix64(seed ^ 0x5851f42d4c957f2dull) ^ (i * 0x9e3779b97f4a7c15ull));
  return float(r >> 40) * (1.0f / 16777216.0f);
}

enum class Distribution { Normal = 0, Uniform = 1, Dropout = 2 };

// Element i of a fill: Normal: a + b * N(0, 1); Uniform: a + (b - a) * U[0, 1);
// Dropout (inverted, as torch.nn.Dropout in training): 0 with probability a, else b = 1 / (1 - a).
OSP_HD float drawAt(Distribution d, uint64_t seed, uint64_t i, float a, float b) {
  switch (d) {
    case Distribution::Normal: return a + b * normalAt(seed, i);
    case Distribution::Uniform: return a + (b - a) * uniformAt(seed, i);
    default: return uniformAt(seed, i) < a ? 0.0f : b;
  }
}

}  // namespace osp::random
