// Embedding lookup: out[t, :] = table[ids[t], :], table [V, D], ids [T] i32 in [0, V).
// Backward: dTable[v, :] = sum over t with ids[t] == v of dOut[t, :], summed in order of t
// (deterministic: no float atomics anywhere).
//
// Cost: forward moves 2 T D elements; backward writes V D and reads T D (plus the ids).
//
// CPU: f64 a plain loop; f32 the same template with rows (forward) or column blocks (backward,
// each column walking t in order) over the thread pool. CUDA (f32 or bf16 storage): forward one
// block per token; backward sorts the token positions by id once (CUB's stable radix sort), then one
// block per run of equal ids sums its tokens' rows in token order in f32 and writes the table row
// once: O(T D) work plus the sort, deterministic (it replaced a scan of all T ids for each of the V
// table rows). An id outside [0, V) is a RangeError naming ids[t].
// Pinned by test/modelOps.test.ts (f64 reference, finite differences) and test/gpu.test.ts.
#pragma once
#include <cstdint>

#include "../../core/errors.h"
#include "../../core/tensor.h"

namespace osp {

Tensor embedding(const Tensor& table, const Tensor& ids);
Tensor embeddingBackward(const Tensor& gradOut, const Tensor& ids, int64_t vocab);

namespace embedding_kernels {

template <typename T>
void forwardCpu(const T* table, const int32_t* ids, T* out, int64_t T_, int64_t V, int64_t D, bool threaded,
                KernelStatus* status);
// dtable must be zeroed by the caller.
template <typename T>
void backwardCpu(const T* g, const int32_t* ids, T* dtable, int64_t T_, int64_t V, int64_t D, bool threaded,
                 KernelStatus* status);

void forwardCuda(const void* table, const int32_t* ids, void* out, bool isBf16, int64_t T_, int64_t V, int64_t D,
                 KernelStatus* status);
void backwardCuda(const void* g, const int32_t* ids, void* dtable, bool isBf16, int64_t T_, int64_t V, int64_t D,
                  KernelStatus* status);

}  // namespace embedding_kernels
}  // namespace osp
