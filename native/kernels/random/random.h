// Seeded random fill: out[i] = mean + std * N(0, 1) (or a uniform, or an inverted-dropout mask: 0
// with probability p, else 1 / (1 - p), for LoRA's dropout), from a counter-based generator: element i's
// value depends only on (seed, i), so a tensor has the same values whatever the thread count, and
// the same values on the CPU and on the GPU up to the last few f32 ulps: the uniforms are bit-equal,
// and each side takes the precise logf, cosf and sqrtf of its own math library (CUDA's within 1-2
// ulps; random.cu is compiled without --use_fast_math for that). Used for benchmark inputs (never
// time on zeros), tests, LoRA's init (uniform) and dropout (a mask that the backward draws again
// from its seed instead of keeping it). Generator: splitmix64 of (seed, i) gives two 24-bit uniforms; Box-Muller
// makes the normal.
// Memory: one write per element. Pinned by test/random.test.ts.
#pragma once
#include <cstdint>

#include "../../core/tensor.h"

namespace osp {

namespace random {
enum class Distribution;
}

struct RandomFill {
  random::Distribution distribution;
  // Normal: mean, std; Uniform: low, high; Dropout: p (the probability of a zero), unused.
  double a = 0, b = 0;
};

Tensor randomFill(const std::vector<int64_t>& shape, DType dtype, Device device, uint64_t seed, const RandomFill& fill);

namespace random {

void fillCpu(void* out, DType dtype, int64_t n, uint64_t seed, Distribution d, float a, float b);
void fillCuda(void* out, bool isBf16, int64_t n, uint64_t seed, Distribution d, float a, float b);

}  // namespace random
}  // namespace osp
