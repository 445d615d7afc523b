// Host memory bandwidth probes for `npm run bench`: a copy and a read of a large buffer, split over
// the same thread pool (parallel.h) and the same threads as the CPU kernels, so "% of copy" and
// "% of read" compare like with like (a one-thread memcpy understated the machine by 1.8-2x on 2
// cores). Not used by any op; the bench times them like a kernel.
#pragma once
#include "tensor.h"

namespace osp {

// dst <- src, both contiguous f32 host tensors of the same element count; each thread memcpys its
// share. Traffic: read n + write n floats.
void hostParallelCopy(const Tensor& dst, const Tensor& src, const char* op);
// The sum of a contiguous f32 host tensor, read once with SIMD in per-thread shares (the result
// only keeps the compiler from dropping the reads). Traffic: read n floats.
double hostParallelReadSum(const Tensor& x, const char* op);

}  // namespace osp
