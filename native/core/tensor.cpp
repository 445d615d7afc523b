// Tensor storage, conversion between dtypes and devices, and views. Conversions stage through the
// host: they are for set-up and tests, not for hot paths.
#include "tensor.h"

#include <atomic>
#include <cstdlib>
#include <list>
#include <map>
#include <vector>
#include <mutex>
#include <cstring>
#include <sstream>

#include "bf16.h"
#include "cuda_backend.h"
#include "errors.h"
#include "sync.h"

namespace osp {

size_t dtypeSize(DType d) {
  switch (d) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::BF16: return 2;
    case DType::I32: return 4;
  }
  return 0;
}

const char* dtypeName(DType d) {
  switch (d) {
    case DType::F32: return "f32";
    case DType::F64: return "f64";
    case DType::BF16: return "bf16";
    case DType::I32: return "i32";
  }
  return "?";
}

const char* deviceName(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

namespace {
std::atomic<int64_t> liveBytes[2], peakBytes[2];
void track(Device d, int64_t delta) {
  const int k = d == Device::CPU ? 0 : 1;
  int64_t now = liveBytes[k].fetch_add(delta) + delta;
  int64_t p = peakBytes[k].load();
  while (now > p && !peakBytes[k].compare_exchange_weak(p, now)) {
  }
}
}  // namespace

size_t hostCachedBytes();

MemoryStats memoryStats(Device d) {
  const int k = d == Device::CPU ? 0 : 1;
  return {liveBytes[k].load(), peakBytes[k].load(), d == Device::CPU ? static_cast<int64_t>(hostCachedBytes()) : 0};
}

void resetPeakMemory() {
  for (int k = 0; k < 2; k++) peakBytes[k].store(liveBytes[k].load());
}

// Host buffers of 1 MiB and more are kept after free and reused, up to a cap (OSP_HOST_CACHE_MB,
// default 2048): a fresh large allocation costs a page fault per 4 KiB on first touch, which
// measured as much as the kernel itself on [2048, 32000] logits. Sizes are rounded up to size
// classes (powers of two with 4 sub-steps: 1, 1.25, 1.5, 1.75 x 2^k, so at most 25% over the
// request) so that nearby sizes share buffers: training's batch lengths change from step to step,
// and exact-size reuse then page-faulted a fresh output on every call once the cache was full of
// other shapes (8192 x 32000 tokenLogprobsBackward: 116 ms -> 393 ms). When a freed buffer does not
// fit under the cap, the least recently freed ones go back to the system first.
class HostCache {
 public:
  static size_t rounded(size_t bytes) {
    const size_t b = bytes == 0 ? 64 : bytes;
    if (b < kLarge) return (b + 63) / 64 * 64;
    const int k = 63 - __builtin_clzll(b);  // 2^k <= b < 2^(k+1), k >= 20
    const size_t step = size_t(1) << (k - 2);
    return (b + step - 1) / step * step;     // 4, 5, 6, 7 or 8 steps of 2^k / 4
  }
  void* take(size_t size) {
    if (size >= kLarge) {
      std::lock_guard<std::mutex> lk(mu_);
      auto it = bySize_.find(size);
      if (it != bySize_.end()) {
        void* p = it->second->ptr;
        lru_.erase(it->second);
        bySize_.erase(it);
        cached_ -= size;
        return p;
      }
    }
    void* p = std::aligned_alloc(64, size);
    if (!p && size >= kLarge) {  // give the cache back to the system and try once more
      release();
      p = std::aligned_alloc(64, size);
    }
    return p;
  }
  void give(void* p, size_t size) {
    if (size >= kLarge && size <= cap()) {
      std::vector<void*> evicted;
      {
        std::lock_guard<std::mutex> lk(mu_);
        while (cached_ + size > cap()) evicted.push_back(evictOldest());
        lru_.push_front({size, p});
        bySize_.emplace(size, lru_.begin());
        cached_ += size;
      }
      for (void* q : evicted) std::free(q);
      return;
    }
    std::free(p);
  }
  void release() {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& b : lru_) std::free(b.ptr);
    lru_.clear();
    bySize_.clear();
    cached_ = 0;
  }
  size_t cachedBytes() {
    std::lock_guard<std::mutex> lk(mu_);
    return cached_;
  }
  ~HostCache() { release(); }

 private:
  struct Block {
    size_t size;
    void* ptr;
  };
  // The least recently freed block leaves the cache (the caller frees it outside the lock).
  void* evictOldest() {
    const Block b = lru_.back();
    auto [lo, hi] = bySize_.equal_range(b.size);
    for (auto it = lo; it != hi; ++it)
      if (it->second->ptr == b.ptr) {
        bySize_.erase(it);
        break;
      }
    lru_.pop_back();
    cached_ -= b.size;
    return b.ptr;
  }
  static constexpr size_t kLarge = size_t(1) << 20;
  static size_t cap() {
    static const size_t c = [] {
      const char* env = std::getenv("OSP_HOST_CACHE_MB");
      return (env ? static_cast<size_t>(std::atoll(env)) : size_t(2048)) << 20;
    }();
    return c;
  }
  std::mutex mu_;
  std::list<Block> lru_;                                     // most recently freed first
  std::multimap<size_t, std::list<Block>::iterator> bySize_;  // the same blocks by size class
  size_t cached_ = 0;
};

HostCache& hostCache() {
  static HostCache* c = new HostCache();  // never destroyed: tensors may be finalised at exit
  return *c;
}

size_t hostCachedBytes() { return hostCache().cachedBytes(); }

void* hostScratchTake(size_t bytes, size_t* granted) {
  *granted = HostCache::rounded(bytes);
  return hostCache().take(*granted);
}

void hostScratchGive(void* p, size_t granted) {
  if (p) hostCache().give(p, granted);
}

Storage::Storage(size_t n, Device dev) : bytes(n), device(dev) {
  if (dev == Device::CPU) {
    ptr = hostCache().take(HostCache::rounded(n));
    if (!ptr) rangeError("out of host memory allocating " + std::to_string(n) + " bytes");
  } else {
    size_t b = n == 0 ? 1 : n;  // keep a valid pointer for empty tensors
    ptr = cuda::alloc(b);
  }
  track(device, static_cast<int64_t>(bytes));
}

Storage::~Storage() {
  if (!ptr) return;
  track(device, -static_cast<int64_t>(bytes));
  if (device == Device::CPU) hostCache().give(ptr, HostCache::rounded(bytes));
  else cuda::free(ptr);
}

std::vector<int64_t> contiguousStrides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size());
  int64_t acc = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

std::string shapeString(const std::vector<int64_t>& shape) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < shape.size(); i++) o << (i ? ", " : "") << shape[i];
  o << "]";
  return o.str();
}

int64_t checkedNumel(const std::vector<int64_t>& shape, DType dtype, const std::string& what) {
  const std::string prefix = what.empty() ? "shape " : what + " ";
  int64_t nonZero = static_cast<int64_t>(dtypeSize(dtype)), numel = 1;
  for (int64_t d : shape) {
    if (d < 0) rangeError(prefix + shapeString(shape) + " has a negative dimension; expected sizes >= 0");
    if (d == 0) numel = 0;
    else if (__builtin_mul_overflow(nonZero, d, &nonZero) || nonZero > kMaxTensorBytes)
      rangeError(prefix + shapeString(shape) + " of " + dtypeName(dtype) +
                 " is too large: its non-zero sizes multiply to more than 2^53 bytes; expected a smaller shape");
  }
  return numel == 0 ? 0 : nonZero / static_cast<int64_t>(dtypeSize(dtype));
}

void checkViewInBuffer(const Tensor& t, const std::string& what) {
  const auto fail = [&](const std::string& why) {
    rangeError(what + " would make a view " + t.describe() + " (offset " + std::to_string(t.offset) + ", strides " +
               shapeString(t.strides) + ") that " + why + "; expected a view inside its tensor's memory");
  };
  if (!t.storage) fail("has no buffer");
  if (t.strides.size() != t.shape.size()) fail("has " + std::to_string(t.strides.size()) + " strides");
  checkedNumel(t.shape, t.dtype, what);
  if (t.offset < 0) fail("starts before its buffer");
  for (int64_t d : t.shape)
    if (d == 0) return;  // no element is addressed
  int64_t lo = t.offset, hi = t.offset;
  for (size_t d = 0; d < t.shape.size(); d++) {
    int64_t extent = 0;
    if (__builtin_mul_overflow(t.shape[d] - 1, t.strides[d], &extent)) fail("overflows 64-bit offsets");
    if (__builtin_add_overflow(extent < 0 ? lo : hi, extent, extent < 0 ? &lo : &hi)) fail("overflows 64-bit offsets");
  }
  const int64_t es = static_cast<int64_t>(dtypeSize(t.dtype));
  int64_t endBytes = 0;
  if (lo < 0) fail("starts before its buffer");
  if (__builtin_add_overflow(hi, int64_t(1), &endBytes) || __builtin_mul_overflow(endBytes, es, &endBytes) ||
      static_cast<uint64_t>(endBytes) > t.storage->bytes)
    fail("reaches past the end of its buffer of " + std::to_string(t.storage->bytes) + " bytes");
}

Tensor reshapeView(const Tensor& t, const std::vector<int64_t>& shape, const char* op) {
  const std::string o(op);
  const int64_t n = checkedNumel(shape, t.dtype, o + ": shape");
  if (n != t.numel())
    rangeError(o + ": tensor " + t.describe() + " has " + std::to_string(t.numel()) + " elements; shape " + shapeString(shape) +
               " has " + std::to_string(n) + "; expected the same number of elements");
  if (!t.isContiguous()) typeError(o + ": tensor " + t.describe() + " is a non-contiguous view; call .contiguous() first");
  Tensor v = t;
  v.shape = shape;
  v.strides = contiguousStrides(shape);
  checkViewInBuffer(v, o + ": shape");
  return v;
}

Tensor narrowView(const Tensor& t, int64_t dim, int64_t start, int64_t length, const char* op) {
  const std::string o(op);
  if (dim < 0 || dim >= t.dim())
    rangeError(o + ": dim " + std::to_string(dim) + " is outside [0, " + std::to_string(t.dim()) + ") for tensor " + t.describe());
  if (start < 0 || length < 0 || start > t.shape[dim] || length > t.shape[dim] - start)
    rangeError(o + ": [start, start + length) = [" + std::to_string(start) + ", " + std::to_string(start + length) +
               ") is outside dimension " + std::to_string(dim) + " of tensor " + t.describe());
  Tensor v = t;
  v.offset += start * t.strides[dim];
  v.shape[dim] = length;
  checkViewInBuffer(v, o + ": start");
  return v;
}

Tensor transposeView(const Tensor& t, int64_t dim0, int64_t dim1, const char* op) {
  const std::string o(op);
  if (dim0 < 0 || dim1 < 0 || dim0 >= t.dim() || dim1 >= t.dim())
    rangeError(o + ": dimensions " + std::to_string(dim0) + ", " + std::to_string(dim1) + " (dim0, dim1) are outside [0, " +
               std::to_string(t.dim()) + ") for tensor " + t.describe());
  Tensor v = t;
  std::swap(v.shape[dim0], v.shape[dim1]);
  std::swap(v.strides[dim0], v.strides[dim1]);
  checkViewInBuffer(v, o + ": dim0");
  return v;
}

Tensor elementView(const Tensor& t, int64_t index) {
  if (index < 0 || index >= t.numel() || !t.isContiguous())
    rangeError("element " + std::to_string(index) + " of " + t.describe() + " is outside it");
  Tensor one = t;
  one.offset = t.offset + index;
  one.shape = {1};
  one.strides = {1};
  checkViewInBuffer(one, "element " + std::to_string(index));
  return one;
}

Tensor Tensor::empty(const std::vector<int64_t>& shape, DType dtype, Device device) {
  // Refuse shapes whose byte size would overflow before anything multiplies them.
  const int64_t n = checkedNumel(shape, dtype);
  Tensor t;
  t.dtype = dtype;
  t.device = device;
  t.shape = shape;
  t.strides = contiguousStrides(shape);
  t.storage = std::make_shared<Storage>(static_cast<size_t>(n) * dtypeSize(dtype), device);
  return t;
}

Tensor Tensor::zeros(const std::vector<int64_t>& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  if (device == Device::CPU) std::memset(t.raw(), 0, t.nbytes());
  else cuda::memsetZero(t.raw(), t.nbytes());
  return t;
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

bool Tensor::isContiguous() const {
  int64_t acc = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] != 1 && strides[i] != acc) return false;
    acc *= shape[i];
  }
  return true;
}

std::string Tensor::describe() const {
  return std::string(dtypeName(dtype)) + shapeString(shape) + " on " + deviceName(device);
}

Tensor fromHost(const void* data, const std::vector<int64_t>& shape, DType dtype, Device device) {
  Tensor t = Tensor::empty(shape, dtype, device);
  if (t.nbytes() == 0) return t;
  if (device == Device::CPU) std::memcpy(t.raw(), data, t.nbytes());
  else cuda::copyToDevice(t.raw(), data, t.nbytes());
  return t;
}

void toHost(const Tensor& t, void* dst) {
  if (t.nbytes() == 0) return;
  countWait(Wait::Read);  // on the cpu too, so that cpu tests see the counts a gpu run would
  if (t.device == Device::CPU) std::memcpy(dst, t.raw(), t.nbytes());
  else cuda::copyToHost(dst, t.raw(), t.nbytes());
}

// Gather a strided view into a dense host buffer, element by element (any rank).
static void gatherStrided(const Tensor& src, const char* base, char* dst) {
  const size_t es = dtypeSize(src.dtype);
  const int64_t n = src.numel();
  std::vector<int64_t> idx(src.shape.size(), 0);
  for (int64_t i = 0; i < n; i++) {
    int64_t off = 0;
    for (size_t d = 0; d < idx.size(); d++) off += idx[d] * src.strides[d];
    std::memcpy(dst + i * es, base + off * static_cast<int64_t>(es), es);
    for (size_t d = idx.size(); d-- > 0;) {
      if (++idx[d] < src.shape[d]) break;
      idx[d] = 0;
    }
  }
}

static double loadAsDouble(DType d, const char* p, int64_t i) {
  switch (d) {
    case DType::F32: return reinterpret_cast<const float*>(p)[i];
    case DType::F64: return reinterpret_cast<const double*>(p)[i];
    case DType::BF16: return bf16ToFloat(reinterpret_cast<const uint16_t*>(p)[i]);
    case DType::I32: return reinterpret_cast<const int32_t*>(p)[i];
  }
  return 0;
}

static void storeFromDouble(DType d, char* p, int64_t i, double v) {
  switch (d) {
    case DType::F32: reinterpret_cast<float*>(p)[i] = static_cast<float>(v); break;
    case DType::F64: reinterpret_cast<double*>(p)[i] = v; break;
    case DType::BF16: reinterpret_cast<uint16_t*>(p)[i] = floatToBf16(static_cast<float>(v)); break;
    case DType::I32: reinterpret_cast<int32_t*>(p)[i] = static_cast<int32_t>(v); break;
  }
}

// Dense host copy of any tensor (contiguous or not, host or device), in its own dtype.
static std::vector<char> denseHostBytes(const Tensor& src) {
  std::vector<char> out(src.nbytes());
  if (out.empty()) return out;
  if (src.isContiguous()) {
    toHost(src, out.data());
    return out;
  }
  // A view: fetch the whole underlying buffer, then gather.
  std::vector<char> whole(src.storage->bytes);
  countWait(Wait::Read);
  if (src.device == Device::CPU) std::memcpy(whole.data(), src.storage->ptr, whole.size());
  else cuda::copyToHost(whole.data(), src.storage->ptr, whole.size());
  gatherStrided(src, whole.data() + src.offset * static_cast<int64_t>(dtypeSize(src.dtype)), out.data());
  return out;
}

Tensor convert(const Tensor& src, DType dtype, Device device) {
  if ((dtype == DType::I32) != (src.dtype == DType::I32))
    typeError("cannot convert " + src.describe() + " to " + dtypeName(dtype) +
              ": integer and floating-point tensors do not convert into each other");
  std::vector<char> host = denseHostBytes(src);
  if (dtype == src.dtype) return fromHost(host.data(), src.shape, dtype, device);
  const int64_t n = src.numel();
  std::vector<char> conv(static_cast<size_t>(n) * dtypeSize(dtype));
  for (int64_t i = 0; i < n; i++) storeFromDouble(dtype, conv.data(), i, loadAsDouble(src.dtype, host.data(), i));
  return fromHost(conv.data(), src.shape, dtype, device);
}

Tensor contiguous(const Tensor& src) {
  if (src.isContiguous()) {
    Tensor t = Tensor::empty(src.shape, src.dtype, src.device);
    if (t.nbytes() == 0) return t;
    if (src.device == Device::CPU) std::memcpy(t.raw(), src.raw(), t.nbytes());
    else cuda::copyDeviceToDevice(t.raw(), src.raw(), t.nbytes());
    return t;
  }
  std::vector<char> host = denseHostBytes(src);
  return fromHost(host.data(), src.shape, src.dtype, src.device);
}

// ---- host arrays ----------------------------------------------------------------------------------

void checkPlacement(DType dtype, Device device, const char* op) {
  if (device == Device::CUDA && dtype == DType::F64)
    typeError(std::string(op) + ": dtype f64 is not supported on cuda; expected f32, bf16 or i32 (f64 is for CPU reference checks)");
  if (device == Device::CUDA && !cuda::available())
    runtimeError(std::string(op) + ": device cuda requested but " +
                 (cuda::compiled() ? "no CUDA device is available (" + cuda::probeError() + ")" : std::string("osp was built without CUDA")));
}

Tensor fromHostAs(const void* data, DType dataDtype, const std::vector<int64_t>& shape, DType dtype, Device device) {
  if (dataDtype == dtype) return fromHost(data, shape, dtype, device);
  const int64_t n = checkedNumel(shape, dtype);
  std::vector<char> conv(static_cast<size_t>(n) * dtypeSize(dtype));
  const char* src = static_cast<const char*>(data);
  for (int64_t i = 0; i < n; i++) storeFromDouble(dtype, conv.data(), i, loadAsDouble(dataDtype, src, i));
  return fromHost(conv.data(), shape, dtype, device);
}

DType hostDtype(DType d) { return d == DType::BF16 ? DType::F32 : d; }

void toHostAs(const Tensor& t, void* dst) {
  Tensor dense = t.isContiguous() ? t : contiguous(t);
  const DType as = hostDtype(dense.dtype);
  if (as == dense.dtype) return toHost(dense, dst);
  std::vector<char> raw(dense.nbytes());
  toHost(dense, raw.data());
  const int64_t n = dense.numel();
  for (int64_t i = 0; i < n; i++) storeFromDouble(as, static_cast<char*>(dst), i, loadAsDouble(dense.dtype, raw.data(), i));
}

Tensor convertTo(const Tensor& t, DType dtype, Device device, const char* op) {
  if ((dtype == DType::I32) != (t.dtype == DType::I32))
    typeError(std::string(op) + ": dtype " + dtypeName(dtype) + " for tensor " + t.describe() +
              ": integer and floating-point tensors do not convert into each other; expected " +
              (t.dtype == DType::I32 ? "i32" : "f32, f64 or bf16"));
  return convert(t, dtype, device);
}

}  // namespace osp
