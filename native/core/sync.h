// Where the host waits for the device, and CUDA value checks that wait for the next such point.
//
// Counting: every read of tensor bytes to the host (toHost, on any device), every explicit
// synchronize, every status read that had to wait on its own, and every upload that had to wait.
// The CPU backend counts at the same points (reads and synchronize; its ops compute their status
// synchronously and never wait), so CPU tests can assert the counts a GPU run would show.
//
// Deferred checks: a CUDA op's kernel writes its status to a slot of a device pool; runCudaOp queues
// the slot with a closure that turns a bad status into the op's error. The next host wait (a read,
// synchronize, or an op's own status read such as adamwStep's) copies all pending slots in one copy
// and throws the first failing check's error, then the queue is empty. Tensors the closures hold
// stay allocated until then.
// OSP_SYNC_CHECKS=1 (read once at start-up) reads each op's status right after its launch instead.
//
// Implemented in cuda_backend.cpp, which both builds compile.
#pragma once
#include <cstdint>
#include <functional>

#include "errors.h"

namespace osp {

enum class Wait { Read, Synchronize, StatusRead, UploadWait };

struct SyncStats {
  int64_t reads = 0, synchronizes = 0, statusReads = 0, uploadWaits = 0;
  int64_t hostWaits() const { return reads + synchronizes + statusReads + uploadWaits; }
};

void countWait(Wait w);
SyncStats syncStats();
void resetSyncStats();

// The explicit wait: counts one synchronize on any backend; on CUDA also waits for the stream and
// raises the first failing pending check.
void synchronize();

namespace cuda {

// Whether OSP_SYNC_CHECKS=1 was set when the process started.
bool syncChecks();

// Launch one CUDA op that reports value problems: take a zeroed status slot, call launch(slot),
// check the launch, then queue the slot with `raise` (or, under OSP_SYNC_CHECKS=1, read it now).
// `raise` is called with a non-OK status and must throw; it runs later, so it must hold by value
// whatever it reads (Tensor handles keep their storage alive). Only in CUDA builds.
void runCudaOp(const char* op, const std::function<void(KernelStatus*)>& launch,
               std::function<void(const KernelStatus&)> raise);

// Checks queued and not yet read (for tests and debugging).
int64_t pendingChecks();

}  // namespace cuda
}  // namespace osp
