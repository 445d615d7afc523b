// Tensor storage shared by every op: a dtype, a device, a shape with strides (so views such as a
// transpose can exist and be refused by kernels that need contiguous rows), and a reference-counted
// buffer on the host or on the GPU. Freed when the last tensor using the buffer is disposed.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace osp {

enum class DType { F32, F64, BF16, I32 };
enum class Device { CPU, CUDA };

size_t dtypeSize(DType d);
const char* dtypeName(DType d);
const char* deviceName(Device d);

struct Storage {
  void* ptr = nullptr;
  size_t bytes = 0;
  Device device = Device::CPU;
  Storage(size_t bytes, Device device);  // allocates (uninitialised)
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

struct Tensor {
  std::shared_ptr<Storage> storage;
  DType dtype = DType::F32;
  Device device = Device::CPU;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // in elements
  int64_t offset = 0;            // in elements

  static Tensor empty(const std::vector<int64_t>& shape, DType dtype, Device device);
  static Tensor zeros(const std::vector<int64_t>& shape, DType dtype, Device device);

  int64_t numel() const;
  int64_t dim() const { return static_cast<int64_t>(shape.size()); }
  bool isContiguous() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtypeSize(dtype); }
  void* raw() const { return static_cast<char*>(storage->ptr) + offset * static_cast<int64_t>(dtypeSize(dtype)); }
  template <typename T> T* data() const { return static_cast<T*>(raw()); }
  std::string describe() const;  // e.g. "f32[7, 97] on cpu"
};

std::vector<int64_t> contiguousStrides(const std::vector<int64_t>& shape);
std::string shapeString(const std::vector<int64_t>& shape);

// Bytes held by live storages per device, and the peak since the last reset (for benchmarks).
struct MemoryStats {
  int64_t current, peak;
};
MemoryStats memoryStats(Device d);
void resetPeakMemory();

// Copy with conversion to another dtype and/or device (host staging; for tests and set-up).
Tensor convert(const Tensor& src, DType dtype, Device device);
// Materialise a view as a contiguous tensor of the same dtype and device.
Tensor contiguous(const Tensor& src);
// Copy `bytes` of host data into a new tensor (data must already be in `dtype`'s layout).
Tensor fromHost(const void* data, const std::vector<int64_t>& shape, DType dtype, Device device);
// Read a contiguous tensor's bytes to host memory.
void toHost(const Tensor& t, void* dst);

}  // namespace osp
