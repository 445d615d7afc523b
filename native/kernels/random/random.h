// Seeded random fill: out[i] = mean + std * N(0, 1), from a counter-based generator: element i's
// value depends only on (seed, i), so a tensor has the same values whatever the thread count, and
// the same values on the CPU and on the GPU up to the last few f32 ulps: the uniforms are bit-equal,
// and each side takes the precise logf, cosf and sqrtf of its own math library (CUDA's within 1-2
// ulps; random.cu is compiled without --use_fast_math for that). Used for benchmark inputs (never
// time on zeros) and tests. Generator: splitmix64 of (seed, i) gives two 24-bit uniforms; Box-Muller
// makes the normal.
// Memory: one write per element. Pinned by test/random.test.ts.
#pragma once
#include <cstdint>

#include "../../core/tensor.h"

namespace osp {

Tensor randomNormal(const std::vector<int64_t>& shape, DType dtype, Device device, uint64_t seed, double mean, double std);

namespace random {

void normalCpu(void* out, DType dtype, int64_t n, uint64_t seed, float mean, float std);
void normalCuda(void* out, bool isBf16, int64_t n, uint64_t seed, float mean, float std);

}  // namespace random
}  // namespace osp
