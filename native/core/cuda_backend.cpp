// Host side of the CUDA backend: device discovery, the stream every kernel is queued on, a
// stream-ordered caching allocator (cudaMallocAsync keeps freed blocks in its pool, so training
// loops do not pay cudaMalloc per step), copies (small uploads through a pinned staging ring),
// the kernels' status slots with their deferred checks, and the host-wait counters (sync.h).
// Built as plain C++ against the CUDA runtime when OSP_WITH_CUDA is defined; otherwise every entry
// reports that CUDA was not compiled in, so the CPU-only build has the same symbols.
#include "cuda_backend.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>

#include "sync.h"

#ifdef OSP_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

// ---- host-wait counters (both builds) -----------------------------------------------------------

namespace osp {

namespace {
std::atomic<int64_t> waitCounts[4];
}

void countWait(Wait w) { waitCounts[static_cast<int>(w)].fetch_add(1, std::memory_order_relaxed); }

SyncStats syncStats() {
  SyncStats s;
  s.reads = waitCounts[static_cast<int>(Wait::Read)].load();
  s.synchronizes = waitCounts[static_cast<int>(Wait::Synchronize)].load();
  s.statusReads = waitCounts[static_cast<int>(Wait::StatusRead)].load();
  s.uploadWaits = waitCounts[static_cast<int>(Wait::UploadWait)].load();
  return s;
}

void resetSyncStats() {
  for (auto& c : waitCounts) c.store(0);
}

void synchronize() {
  countWait(Wait::Synchronize);
  if (cuda::available()) cuda::synchronize();
}

}  // namespace osp

namespace osp::cuda {

bool syncChecks() {
  static const bool on = [] {
    const char* e = std::getenv("OSP_SYNC_CHECKS");
    return e && std::strcmp(e, "1") == 0;
  }();
  return on;
}

#ifdef OSP_WITH_CUDA

namespace {

// Status slots: one per queued check, so a forward pass's checks are read together. When all are
// pending, the queue is read early (a counted status read).
constexpr int kStatusSlots = 4096;
// Uploads up to kStageMax bytes are staged through a pinned ring of kRingBytes.
constexpr size_t kStageMax = size_t(1) << 20;
constexpr size_t kRingBytes = size_t(8) << 20;
constexpr size_t kStageAlign = 256;

struct PendingCheck {
  const char* op;
  std::function<void(const KernelStatus&)> raise;
};

// One staged upload still (possibly) reading ring bytes [begin, end).
struct Staged {
  size_t begin, end;
  cudaEvent_t done;
};

struct Context {
  std::vector<DeviceInfo> devices;
  std::string error;
  cudaStream_t stream = nullptr;
  KernelStatus* status = nullptr;  // device memory: the single slot of statusReset / statusRead
  KernelStatus* slots = nullptr;   // device memory: kStatusSlots slots for runCudaOp
  std::mutex checksMu;
  std::vector<PendingCheck> pending;  // pending[i] owns slots[i]
  std::mutex ringMu;
  char* ring = nullptr;  // pinned host memory; null when it could not be allocated
  size_t ringHead = 0;
  std::deque<Staged> staged;  // in the order their copies were queued
  std::vector<cudaEvent_t> spareEvents;
};

Context& context() {
  // Never destroyed: queued checks hold tensors, whose storage may be freed at exit through ctx.
  static Context& ctx = *new Context();
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
    if (cudaMalloc(reinterpret_cast<void**>(&ctx.status), sizeof(KernelStatus)) != cudaSuccess ||
        cudaMalloc(reinterpret_cast<void**>(&ctx.slots), kStatusSlots * sizeof(KernelStatus)) != cudaSuccess) {
      ctx.error = "could not allocate the kernel status buffers";
      ctx.devices.clear();
      return;
    }
    // Without pinned memory uploads stay synchronous (and counted); nothing else changes.
    if (cudaMallocHost(reinterpret_cast<void**>(&ctx.ring), kRingBytes) != cudaSuccess) {
      ctx.ring = nullptr;
      cudaGetLastError();
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

namespace {

// Moves the pending checks out and queues one copy of their slots into `out` (no wait). The caller
// waits for the stream, then calls raiseFirst.
std::vector<PendingCheck> takePending(Context& ctx, std::vector<KernelStatus>& out) {
  std::vector<PendingCheck> taken;
  {
    std::lock_guard<std::mutex> lk(ctx.checksMu);
    taken.swap(ctx.pending);
  }
  if (taken.empty()) return taken;
  out.resize(taken.size());
  check(cudaMemcpyAsync(out.data(), ctx.slots, taken.size() * sizeof(KernelStatus), cudaMemcpyDeviceToHost, ctx.stream),
        "read kernel status");
  return taken;
}

// After the stream wait: the first failing check throws its op's error; the others are dropped
// (the queue is already empty, so a raiser that reads an element through toHost finds none).
void raiseFirst(const std::vector<PendingCheck>& taken, const std::vector<KernelStatus>& st) {
  for (size_t i = 0; i < taken.size(); i++) {
    if (st[i].code == StatusOk) continue;
    taken[i].raise(st[i]);
    runtimeError(std::string(taken[i].op) + ": kernel reported status " + std::to_string(st[i].code));
  }
}

// Read the pending checks now (a wait of its own, counted as `why`).
void flushChecks(Context& ctx, Wait why) {
  std::vector<KernelStatus> st;
  std::vector<PendingCheck> taken = takePending(ctx, st);
  if (taken.empty()) return;
  countWait(why);
  check(cudaStreamSynchronize(ctx.stream), "read kernel status");
  raiseFirst(taken, st);
}

// Ring space for `bytes` (<= kStageMax) whose earlier copies have finished, or null without a ring.
char* stageSpace(Context& ctx, size_t bytes) {
  if (!ctx.ring) return nullptr;
  const size_t need = (bytes + kStageAlign - 1) / kStageAlign * kStageAlign;
  size_t begin = ctx.ringHead;
  if (begin + need > kRingBytes) begin = 0;
  const size_t end = begin + need;
  // The newest earlier copy that read these bytes: copies on one stream finish in order, so once it
  // is done every older one is too, and all of them leave the queue.
  ptrdiff_t last = -1;
  for (size_t i = 0; i < ctx.staged.size(); i++)
    if (ctx.staged[i].begin < end && begin < ctx.staged[i].end) last = static_cast<ptrdiff_t>(i);
  if (last >= 0) {
    cudaEvent_t e = ctx.staged[static_cast<size_t>(last)].done;
    cudaError_t q = cudaEventQuery(e);
    if (q == cudaErrorNotReady) {
      cudaGetLastError();  // "not ready" is no failure: keep it from the next launch check (as PyTorch does)
      countWait(Wait::UploadWait);
      q = cudaEventSynchronize(e);
    }
    check(q, "copy to GPU (staging)");
    for (ptrdiff_t k = 0; k <= last; k++) {
      ctx.spareEvents.push_back(ctx.staged.front().done);
      ctx.staged.pop_front();
    }
  }
  ctx.ringHead = end;
  return ctx.ring + begin;
}

}  // namespace

void copyToDevice(void* dst, const void* src, size_t bytes) {
  Context& ctx = ready();
  if (bytes <= kStageMax) {
    std::lock_guard<std::mutex> lk(ctx.ringMu);
    if (char* stage = stageSpace(ctx, bytes)) {
      cudaEvent_t e = nullptr;
      if (!ctx.spareEvents.empty()) {
        e = ctx.spareEvents.back();
        ctx.spareEvents.pop_back();
      } else {
        check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "copy to GPU (staging event)");
      }
      std::memcpy(stage, src, bytes);  // the caller's buffer may go away after return; the ring stays
      const size_t begin = static_cast<size_t>(stage - ctx.ring);
      cudaError_t r = cudaMemcpyAsync(dst, stage, bytes, cudaMemcpyHostToDevice, ctx.stream);
      if (r == cudaSuccess) r = cudaEventRecord(e, ctx.stream);
      if (r != cudaSuccess) {
        ctx.spareEvents.push_back(e);
        check(r, "copy to GPU");
      }
      ctx.staged.push_back({begin, begin + (bytes + kStageAlign - 1) / kStageAlign * kStageAlign, e});
      return;
    }
  }
  // Large (or no ring): from pageable memory, waiting because the host buffer may go away after return.
  countWait(Wait::UploadWait);
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, ctx.stream), "copy to GPU");
  check(cudaStreamSynchronize(ctx.stream), "copy to GPU");
}

void copyToHost(void* dst, const void* src, size_t bytes) {
  Context& ctx = ready();
  std::vector<KernelStatus> st;
  std::vector<PendingCheck> taken = takePending(ctx, st);  // read in the same wait as the data
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ctx.stream), "copy from GPU");
  check(cudaStreamSynchronize(ctx.stream), "copy from GPU");
  raiseFirst(taken, st);
}
void copyDeviceToDevice(void* dst, const void* src, size_t bytes) {
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ready().stream), "copy on GPU");
}
void memsetZero(void* dst, size_t bytes) { check(cudaMemsetAsync(dst, 0, bytes, ready().stream), "memset on GPU"); }
void synchronize() {
  Context& ctx = ready();
  std::vector<KernelStatus> st;
  std::vector<PendingCheck> taken = takePending(ctx, st);
  check(cudaStreamSynchronize(ctx.stream), "synchronize");
  raiseFirst(taken, st);
}

KernelStatus* statusReset() {
  Context& ctx = ready();
  check(cudaMemsetAsync(ctx.status, 0, sizeof(KernelStatus), ctx.stream), "reset kernel status");
  return ctx.status;
}

KernelStatus statusRead() {
  Context& ctx = ready();
  countWait(Wait::StatusRead);
  std::vector<KernelStatus> pendingSt;
  std::vector<PendingCheck> taken = takePending(ctx, pendingSt);  // earlier ops' errors come first
  KernelStatus s;
  check(cudaMemcpyAsync(&s, ctx.status, sizeof(s), cudaMemcpyDeviceToHost, ctx.stream), "read kernel status");
  check(cudaStreamSynchronize(ctx.stream), "read kernel status");
  raiseFirst(taken, pendingSt);
  return s;
}

void checkLaunch(const char* what) { check(cudaGetLastError(), what); }

void runCudaOp(const char* op, const std::function<void(KernelStatus*)>& launch,
               std::function<void(const KernelStatus&)> raise) {
  Context& ctx = ready();
  size_t slot;
  {
    std::lock_guard<std::mutex> lk(ctx.checksMu);
    slot = ctx.pending.size();
  }
  if (slot == static_cast<size_t>(kStatusSlots)) {
    flushChecks(ctx, Wait::StatusRead);  // every slot is pending: read them before reusing any
    slot = 0;
  }
  KernelStatus* st = ctx.slots + slot;
  check(cudaMemsetAsync(st, 0, sizeof(KernelStatus), ctx.stream), "reset kernel status");
  launch(st);
  checkLaunch(op);
  {
    std::lock_guard<std::mutex> lk(ctx.checksMu);
    ctx.pending.push_back({op, std::move(raise)});
  }
  if (syncChecks()) flushChecks(ctx, Wait::StatusRead);
}

int64_t pendingChecks() {
  Context& ctx = context();
  std::lock_guard<std::mutex> lk(ctx.checksMu);
  return static_cast<int64_t>(ctx.pending.size());
}

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
void runCudaOp(const char*, const std::function<void(KernelStatus*)>&, std::function<void(const KernelStatus&)>) {
  runtimeError(kNotCompiled);
}
int64_t pendingChecks() { return 0; }

#endif

}  // namespace osp::cuda
