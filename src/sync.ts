// How often the host waited for the device: tests and benchmarks assert that a training step or a
// forward pass waits only where it must (a read of a result, an explicit synchronize).
import { native, NativeSyncStats } from './native';

/**
 * Host waits since the last resetSyncStats(), by kind:
 * - reads: tensor bytes read to the host (toArray and reads inside ops, e.g. a sequenceIds array);
 * - synchronizes: explicit synchronize() calls;
 * - statusReads: CUDA value checks read on their own (OSP_SYNC_CHECKS=1, a full check queue, adamwStep);
 * - uploadWaits: CUDA uploads that had to wait (over 1 MiB, or a busy staging region).
 * The CPU backend counts reads and synchronizes at the same points; its ops never wait.
 */
export type SyncStats = NativeSyncStats;

/** Host waits since the last resetSyncStats() (process-wide). */
export function syncStats(): SyncStats {
  return native.syncStats();
}

/** Zeroes every host-wait counter. */
export function resetSyncStats(): void {
  native.resetSyncStats();
}
