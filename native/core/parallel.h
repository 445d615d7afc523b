// A small persistent thread pool for the CPU kernels: parallelFor splits [0, n) into chunks of at
// least `grain` items. Threads: OSP_NUM_THREADS, else the hardware's count. Runs inline when the
// work is small, so tiny test shapes pay no synchronisation.
#pragma once
#include <cstdint>
#include <functional>

namespace osp {

int cpuThreads();
void parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

}  // namespace osp
