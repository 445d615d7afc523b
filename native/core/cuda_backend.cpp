// Host side of the CUDA backend: device discovery, the stream every kernel is queued on, a
// stream-ordered caching allocator (cudaMallocAsync keeps freed blocks in its pool, so training
// loops do not pay cudaMalloc per step), copies, and the kernels' status buffer.
// Built as plain C++ against the CUDA runtime when OSP_WITH_CUDA is defined; otherwise every entry
// reports that CUDA was not compiled in, so the CPU-only build has the same symbols.
#include "cuda_backend.h"

#include <cstring>
#include <mutex>

#ifdef OSP_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace osp::cuda {

#ifdef OSP_WITH_CUDA

namespace {

struct Context {
  std::vector<DeviceInfo> devices;
  std::string error;
  cudaStream_t stream = nullptr;
  KernelStatus* status = nullptr;  // device memory
};

Context& context() {
  static Context ctx;
  static std::once_flag once;
  std::call_once(once, [] {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
      ctx.error = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e);
      if (e == cudaErrorInsufficientDriver)
        ctx.error += " (no NVIDIA driver on this machine, or one older than the CUDA runtime osp was built with)";
      cudaGetLastError();  // clear the sticky error so later calls start clean
      return;
    }
    for (int i = 0; i < count; i++) {
      cudaDeviceProp p;
      if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
      int clock = 0;
      cudaDeviceGetAttribute(&clock, cudaDevAttrMemoryClockRate, i);
      ctx.devices.push_back({p.name, p.totalGlobalMem, p.major, p.minor, p.memoryBusWidth, clock});
    }
    if (ctx.devices.empty()) {
      ctx.error = "no CUDA device answered";
      return;
    }
    cudaSetDevice(0);
    cudaMemPool_t pool;
    if (cudaDeviceGetDefaultMemPool(&pool, 0) == cudaSuccess) {
      uint64_t keep = UINT64_MAX;  // keep freed blocks cached instead of returning them to the driver
      cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
    }
    if (cudaStreamCreateWithFlags(&ctx.stream, cudaStreamNonBlocking) != cudaSuccess) {
      ctx.error = "could not create a CUDA stream";
      ctx.devices.clear();
      return;
    }
    if (cudaMalloc(reinterpret_cast<void**>(&ctx.status), sizeof(KernelStatus)) != cudaSuccess) {
      ctx.error = "could not allocate the kernel status buffer";
      ctx.devices.clear();
    }
  });
  return ctx;
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) runtimeError(std::string(what) + ": " + cudaGetErrorString(e));
}

Context& ready() {
  Context& ctx = context();
  if (ctx.devices.empty()) runtimeError("CUDA device requested but none is available (" + ctx.error + ")");
  return ctx;
}

}  // namespace

void* currentStream() { return ready().stream; }

bool compiled() { return true; }
std::vector<DeviceInfo> devices() { return context().devices; }
std::string probeError() { return context().error; }
bool available() { return !context().devices.empty(); }

void* alloc(size_t bytes) {
  Context& ctx = ready();
  void* p = nullptr;
  cudaError_t e = cudaMallocAsync(&p, bytes, ctx.stream);
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t freeB = 0, total = 0;
    cudaMemGetInfo(&freeB, &total);
    rangeError("out of GPU memory allocating " + std::to_string(bytes) + " bytes (" + std::to_string(freeB) +
               " of " + std::to_string(total) + " bytes free): " + cudaGetErrorString(e));
  }
  return p;
}

void free(void* ptr) {
  Context& ctx = context();
  if (ptr && !ctx.devices.empty()) cudaFreeAsync(ptr, ctx.stream);
}

void copyToDevice(void* dst, const void* src, size_t bytes) {
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, ready().stream), "copy to GPU");
  check(cudaStreamSynchronize(ready().stream), "copy to GPU");  // the host buffer may go away after return
}
void copyToHost(void* dst, const void* src, size_t bytes) {
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ready().stream), "copy from GPU");
  check(cudaStreamSynchronize(ready().stream), "copy from GPU");
}
void copyDeviceToDevice(void* dst, const void* src, size_t bytes) {
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ready().stream), "copy on GPU");
}
void memsetZero(void* dst, size_t bytes) { check(cudaMemsetAsync(dst, 0, bytes, ready().stream), "memset on GPU"); }
void synchronize() { check(cudaStreamSynchronize(ready().stream), "synchronize"); }

KernelStatus* statusReset() {
  Context& ctx = ready();
  check(cudaMemsetAsync(ctx.status, 0, sizeof(KernelStatus), ctx.stream), "reset kernel status");
  return ctx.status;
}

KernelStatus statusRead() {
  Context& ctx = ready();
  KernelStatus s;
  check(cudaMemcpyAsync(&s, ctx.status, sizeof(s), cudaMemcpyDeviceToHost, ctx.stream), "read kernel status");
  check(cudaStreamSynchronize(ctx.stream), "read kernel status");
  return s;
}

void checkLaunch(const char* what) { check(cudaGetLastError(), what); }

#else  // built without CUDA

static const char* kNotCompiled = "osp was built without CUDA (no CUDA compiler found, or OSP_CUDA=OFF)";

void* currentStream() { runtimeError(kNotCompiled); }
bool compiled() { return false; }
std::vector<DeviceInfo> devices() { return {}; }
std::string probeError() { return kNotCompiled; }
bool available() { return false; }
void* alloc(size_t) { runtimeError(kNotCompiled); }
void free(void*) {}
void copyToDevice(void*, const void*, size_t) { runtimeError(kNotCompiled); }
void copyToHost(void*, const void*, size_t) { runtimeError(kNotCompiled); }
void copyDeviceToDevice(void*, const void*, size_t) { runtimeError(kNotCompiled); }
void memsetZero(void*, size_t) { runtimeError(kNotCompiled); }
void synchronize() {}
KernelStatus* statusReset() { runtimeError(kNotCompiled); }
KernelStatus statusRead() { runtimeError(kNotCompiled); }
void checkLaunch(const char*) {}

#endif

}  // namespace osp::cuda
