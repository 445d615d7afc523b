// Backend discovery and the default device: cuda when the addon was built with CUDA and a device
// answers, else cpu. OSP_DEVICE=cpu|cuda forces one; forcing cuda without a GPU is an error.
import { native, NativeBackends } from './native';

export type Device = 'cpu' | 'cuda';

export interface Backends {
  /** isa: the CPU kernels' instruction set (OSP_CPU_ISA or the best this CPU runs); it decides their summation order. */
  cpu: { threads: number; isa: 'avx512' | 'avx2' | 'baseline' };
  cuda: {
    compiled: boolean;
    available: boolean;
    devices: { name: string; memoryBytes: number; computeCapability: string; peakBandwidthBytesPerSecond: number }[];
    /** Why no device is available, when none is. */
    reason?: string;
    /** The GEMM CUDA matmuls use: "cuBLAS <version> (<library>)" when it loaded at run time, else why osp's own kernel serves. */
    blas: string;
  };
}

let cached: NativeBackends | undefined;

/** What this build and this machine offer. Probed once per process. */
export function backends(): Backends {
  cached ??= native.backends();
  return JSON.parse(JSON.stringify(cached)) as Backends;
}

/** The device tensors and ops use when none is named. */
export function defaultDevice(): Device {
  const forced = process.env.OSP_DEVICE;
  const b = backends();
  if (forced !== undefined && forced !== '') {
    if (forced !== 'cpu' && forced !== 'cuda') {
      throw new RangeError(`OSP_DEVICE is '${forced}'; expected cpu or cuda`);
    }
    if (forced === 'cuda' && !b.cuda.available) {
      throw new Error(
        `OSP_DEVICE=cuda but no CUDA device is available: ${b.cuda.compiled ? b.cuda.reason : 'osp was built without CUDA'}`,
      );
    }
    return forced;
  }
  return b.cuda.available ? 'cuda' : 'cpu';
}

/** Waits for queued GPU work (a no-op on the CPU). For timing. */
export function synchronize(): void {
  native.synchronize();
}

export interface MemoryStats {
  /** Bytes held by live tensors. */
  currentBytes: number;
  /** Most bytes held at once since the last resetPeakMemory(). */
  peakBytes: number;
  /**
   * Host only (0 on cuda): bytes of freed buffers of 1 MiB and more that the host cache keeps for
   * reuse (size classes, least recently freed released first, at most OSP_HOST_CACHE_MB).
   */
  cachedBytes: number;
}

/** Native memory held by osp tensors, per device. */
export function memoryStats(): Record<Device, MemoryStats> {
  return native.memoryStats();
}

export function resetPeakMemory(): void {
  native.resetPeakMemory();
}
