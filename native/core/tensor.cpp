// Tensor storage, conversion between dtypes and devices, and views. Conversions stage through the
// host: they are for set-up and tests, not for hot paths.
#include "tensor.h"

#include <cstdlib>
#include <cstring>
#include <sstream>

#include "bf16.h"
#include "cuda_runtime.h"
#include "errors.h"

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

Storage::Storage(size_t n, Device dev) : bytes(n), device(dev) {
  size_t b = n == 0 ? 1 : n;  // keep a valid pointer for empty tensors
  if (dev == Device::CPU) {
    ptr = std::aligned_alloc(64, (b + 63) / 64 * 64);
    if (!ptr) rangeError("out of host memory allocating " + std::to_string(n) + " bytes");
  } else {
    ptr = cuda::alloc(b);
  }
}

Storage::~Storage() {
  if (!ptr) return;
  if (device == Device::CPU) std::free(ptr);
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

Tensor Tensor::empty(const std::vector<int64_t>& shape, DType dtype, Device device) {
  Tensor t;
  t.dtype = dtype;
  t.device = device;
  t.shape = shape;
  t.strides = contiguousStrides(shape);
  t.storage = std::make_shared<Storage>(static_cast<size_t>(t.numel()) * dtypeSize(dtype), device);
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

}  // namespace osp
