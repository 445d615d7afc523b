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

// The largest tensor, in bytes, that osp makes or views (2^53: every index and byte offset of a
// tensor, and every product of some of its sizes, then fits in an int64 and a double).
constexpr int64_t kMaxTensorBytes = int64_t(1) << 53;

// The element count of `shape` for a tensor of `dtype`, checked: a negative size, or non-zero sizes
// whose product (in bytes) exceeds kMaxTensorBytes, is a RangeError starting with `what` (e.g.
// "reshape: shape"; "shape" when empty). Every shape a Tensor is made or viewed with passes here.
// Scratch memory for kernels (the GEMM's packing buffers): from the host cache, so that a large
// buffer given back and taken again (a layer's big GEMMs between small ones) is not page-faulted
// afresh. Not counted in memoryStats' live bytes; `granted` is the rounded size to give back.
void* hostScratchTake(size_t bytes, size_t* granted);
void hostScratchGive(void* p, size_t granted);

int64_t checkedNumel(const std::vector<int64_t>& shape, DType dtype, const std::string& what = "");

// A RangeError starting with `what` unless every element the view `t` addresses (offset, shape,
// strides) lies inside its storage. Every view is checked here when it is made.
void checkViewInBuffer(const Tensor& t, const std::string& what);

// Views sharing t's storage (no copy), checked by checkedNumel and checkViewInBuffer; `op` starts
// their error messages. reshape: contiguous t only, same element count. narrow: [start, start +
// length) of dimension dim. transpose: dimensions dim0 and dim1 swapped.
Tensor reshapeView(const Tensor& t, const std::vector<int64_t>& shape, const char* op);
Tensor narrowView(const Tensor& t, int64_t dim, int64_t start, int64_t length, const char* op);
Tensor transposeView(const Tensor& t, int64_t dim0, int64_t dim1, const char* op);
// The one-element view t[index] of a contiguous tensor (index in [0, numel)), for messages.
Tensor elementView(const Tensor& t, int64_t index);
std::string shapeString(const std::vector<int64_t>& shape);

// Bytes held by live storages per device (as requested, before any rounding), the peak since the
// last reset (for benchmarks), and on the host the freed buffers the cache keeps for reuse.
struct MemoryStats {
  int64_t current, peak, cached;
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

// ---- host arrays (what the N-API layer exchanges with JavaScript typed arrays) ------------------

// A TypeError (f64 on cuda) or an Error (cuda not built or no device), starting with `op`, unless a
// tensor of `dtype` can live on `device`.
void checkPlacement(DType dtype, Device device, const char* op);
// A new tensor of `dtype` on `device` from host data laid out as `dataDtype` (f32, f64, bf16 bits or
// i32), converted element by element where the two differ (rounding to nearest even into bf16).
Tensor fromHostAs(const void* data, DType dataDtype, const std::vector<int64_t>& shape, DType dtype, Device device);
// The dtype a tensor reads back to the host as: bf16 widens to f32, the others stay.
DType hostDtype(DType d);
// Reads any tensor (a view too) to host memory as hostDtype(t.dtype), numel() elements.
void toHostAs(const Tensor& t, void* dst);
// convert() for Tensor.to(): the same, but an integer <-> floating-point request is a TypeError
// starting with `op` that names the tensor.
Tensor convertTo(const Tensor& t, DType dtype, Device device, const char* op);

}  // namespace osp
