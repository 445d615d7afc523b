// Host emulation of the CUDA built-ins that osp's kernels use, for the host-compiled checks in
// test/native/ (no GPU needed): every CUDA thread of a block is a std::thread; __syncthreads and
// __syncthreads_or are block barriers; __shfl_xor_sync is a warp collective (write, warp barrier,
// read, warp barrier); atomicCAS takes a lock. Blocks run one after another (launch), so a
// kernel's dynamic shared memory can be one array the harness defines in the kernel's namespace.
// Include after <cuda_runtime.h> and <cuda_bf16.h> and before the kernel source.
#pragma once
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

thread_local uint3 emuThread;
uint3 emuBlock;
dim3 emuGrid;
const dim3 emuBlockDim(128);
#define threadIdx emuThread
#define blockDim emuBlockDim
#define blockIdx emuBlock
#define gridDim emuGrid
#undef __device__
#define __device__
#undef __forceinline__
#define __forceinline__ inline
#undef __global__
#define __global__
#undef __shared__
#define __shared__
#define __launch_bounds__(...)

constexpr int kThreadsPerBlock = 128;
std::unique_ptr<std::barrier<>> blockBarrier;
std::unique_ptr<std::barrier<>> warpBarrier[kThreadsPerBlock / 32];
int orFlags[kThreadsPerBlock];
float shuffle[kThreadsPerBlock];
std::mutex atomics;

void __syncthreads() { blockBarrier->arrive_and_wait(); }
int __syncthreads_or(int p) {
  orFlags[emuThread.x] = p;
  __syncthreads();
  int any = 0;
  for (int f : orFlags) any |= f != 0;
  __syncthreads();
  return any;
}
float __shfl_xor_sync(unsigned, float v, int offset) {
  const unsigned t = emuThread.x, w = t >> 5;
  shuffle[t] = v;
  warpBarrier[w]->arrive_and_wait();
  const float r = shuffle[(w << 5) | ((t & 31) ^ unsigned(offset))];
  warpBarrier[w]->arrive_and_wait();
  return r;
}
float __expf(float x) { return std::exp(x); }
int atomicCAS(int* p, int compare, int value) {
  std::lock_guard<std::mutex> lock(atomics);
  const int old = *p;
  if (old == compare) *p = value;
  return old;
}
inline int64_t min(int64_t a, int64_t b) { return a < b ? a : b; }
[[noreturn]] void __trap() { std::abort(); }

// Runs body for every block of grid, 128 host threads per block, blocks in order.
void launch(dim3 grid, const std::function<void()>& body) {
  emuGrid = grid;
  for (unsigned y = 0; y < grid.y; y++)
    for (unsigned x = 0; x < grid.x; x++) {
      emuBlock = {x, y, 0};
      blockBarrier = std::make_unique<std::barrier<>>(kThreadsPerBlock);
      for (auto& b : warpBarrier) b = std::make_unique<std::barrier<>>(32);
      std::vector<std::thread> threads;
      for (unsigned t = 0; t < kThreadsPerBlock; t++)
        threads.emplace_back([t, &body] {
          emuThread = {t, 0, 0};
          body();
        });
      for (auto& th : threads) th.join();
    }
}
