// The GPU side of the core as seen from plain C++: whether CUDA was compiled in, which devices
// answer, allocation and copies, and the status buffer that kernels write value errors into.
// Uploads of up to 1 MiB return without waiting (staged through pinned memory); reads wait, and
// raise the deferred value checks of sync.h.
// Every function exists in both builds; without CUDA they report "not compiled" or throw.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "errors.h"

namespace osp::cuda {

struct DeviceInfo {
  std::string name;
  size_t memoryBytes;
  int major, minor;
  int memoryBusWidthBits;
  int memoryClockKHz;  // 0 where the runtime does not report it
};

bool compiled();
// Devices that answer. On a machine without a driver or GPU this is empty and `probeError` says why.
std::vector<DeviceInfo> devices();
std::string probeError();
bool available();

void* alloc(size_t bytes);  // throws OspError naming the size when the device is full
void free(void* ptr);
void copyToDevice(void* dst, const void* src, size_t bytes);
void copyToHost(void* dst, const void* src, size_t bytes);
void copyDeviceToDevice(void* dst, const void* src, size_t bytes);
void memsetZero(void* dst, size_t bytes);
void synchronize();

// The immediate form of a value check, for ops not yet on runCudaOp (sync.h): a zeroed
// KernelStatus for the next launch, and its read-back, which waits for the stream (a counted status
// read, which also raises any pending deferred check first).
KernelStatus* statusReset();
KernelStatus statusRead();
void checkLaunch(const char* what);  // throws on a launch error
void* currentStream();               // the cudaStream_t every kernel is queued on

}  // namespace osp::cuda
