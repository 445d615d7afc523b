// Loads the native addon (node-gyp-build finds build/Release or a matching prebuild) and declares
// its shape. Nothing here holds logic: src/tensor.ts and src/ops.ts are the typed public surface.
import path from 'path';

export interface NativeTensor {
  readonly shape: number[];
  readonly strides: number[];
  readonly dtype: 'f32' | 'f64' | 'bf16' | 'i32';
  readonly device: 'cpu' | 'cuda';
  readonly disposed: boolean;
  readonly isContiguous: boolean;
  readonly nbytes: number;
  toArray(): Float32Array | Float64Array | Int32Array;
  dispose(): void;
  transpose(dim0: number, dim1: number): NativeTensor;
  reshape(shape: number[]): NativeTensor;
  narrow(dim: number, start: number, length: number): NativeTensor;
  contiguous(): NativeTensor;
  to(dtype: string, device: string): NativeTensor;
}

export interface NativeDeviceInfo {
  name: string;
  memoryBytes: number;
  computeCapability: string;
  peakBandwidthBytesPerSecond: number;
}

export interface NativeBackends {
  /** isa: the CPU kernels' instruction set (OSP_CPU_ISA or the best this CPU runs); it decides their summation order. */
  cpu: { threads: number; isa: 'avx512' | 'avx2' | 'baseline' };
  cuda: { compiled: boolean; available: boolean; devices: NativeDeviceInfo[]; reason?: string; blas: string };
}

export interface NativePreferenceResult {
  loss: NativeTensor;
  losses: NativeTensor;
  pHat: NativeTensor;
  margins: NativeTensor;
  gradPolicyChosen: NativeTensor;
  gradPolicyRejected: NativeTensor;
}

/**
 * The addon's exports (native/addon/addon.cpp registers them from one table). Tensors are passed
 * positionally; every other parameter of an op is a field of its options object (the last argument).
 */
export interface NativeAddon {
  NativeTensor: abstract new () => NativeTensor;
  /** Whether v is a tensor handle made by the addon (not an object that only inherits from one). */
  isTensor(v: unknown): boolean;
  zeros(options: { shape: number[]; dtype: string; device: string }): NativeTensor;
  fromArray(data: ArrayBufferView, options: { shape: number[]; dtype: string; device: string }): NativeTensor;
  randomFill(options: { shape: number[]; dtype: string; device: string; seed: number; distribution: 'normal' | 'uniform' | 'dropout'; mean?: number; std?: number; low?: number; high?: number; p?: number }): NativeTensor;
  backends(): NativeBackends;
  synchronize(): void;
  tokenLogprobs(logits: NativeTensor, targets: NativeTensor, options: { ignoreIndex: number }): NativeTensor;
  tokenLogprobsWithLogsumexp(logits: NativeTensor, targets: NativeTensor, options: { ignoreIndex: number }): { logprobs: NativeTensor; logsumexp: NativeTensor };
  tokenLogprobsBackward(
    logits: NativeTensor,
    targets: NativeTensor,
    grad: NativeTensor,
    options: { ignoreIndex: number; inPlace: boolean; logsumexp?: NativeTensor },
  ): NativeTensor;
  logSoftmax(logits: NativeTensor): NativeTensor;
  logSoftmaxBackward(gradOut: NativeTensor, logSoftmaxOut: NativeTensor): NativeTensor;
  gather(values: NativeTensor, targets: NativeTensor, options: { ignoreIndex: number }): NativeTensor;
  gatherBackward(grad: NativeTensor, targets: NativeTensor, options: { vocab: number; ignoreIndex: number; dtype?: string }): NativeTensor;
  sequenceLogprobs(tokenLogprobs: NativeTensor, sequenceIds: NativeTensor, options: { count: number; ignoreIndex: number }): NativeTensor;
  sequenceLogprobsBackward(grad: NativeTensor, sequenceIds: NativeTensor, options: { ignoreIndex: number }): NativeTensor;
  preferenceLoss(
    policyChosen: NativeTensor,
    policyRejected: NativeTensor,
    refChosen: NativeTensor,
    refRejected: NativeTensor,
    options: { kind: string; beta: number; target?: NativeTensor },
  ): NativePreferenceResult;
  binary(a: NativeTensor, b: NativeTensor, options: { op: string }): NativeTensor;
  unary(x: NativeTensor, options: { op: string }): NativeTensor;
  affine(x: NativeTensor, options: { scale: number; shift: number }): NativeTensor;
  sum(x: NativeTensor): NativeTensor;
  copyInto(dst: NativeTensor, src: NativeTensor): void;
  matmul(a: NativeTensor, b: NativeTensor, options: { transA: boolean; transB: boolean; impl?: 'auto' | 'own' | 'cublas'; accumulate?: NativeTensor; tf32?: boolean }): NativeTensor;
  sampleTokens(
    logits: NativeTensor,
    streams: NativeTensor,
    steps: NativeTensor,
    options: { seed: number; temperature: number; topP: number; topK: number },
  ): { tokens: NativeTensor; logprobs: NativeTensor; modelLogprobs: NativeTensor };
  rmsNorm(x: NativeTensor, weight: NativeTensor, options: { eps: number }): NativeTensor;
  rmsNormBackward(x: NativeTensor, weight: NativeTensor, gradOut: NativeTensor, options: { eps: number }): { gradInput: NativeTensor; gradWeight: NativeTensor };
  swiglu(gate: NativeTensor, up: NativeTensor): NativeTensor;
  swigluBackward(gate: NativeTensor, up: NativeTensor, gradOut: NativeTensor): { gradGate: NativeTensor; gradUp: NativeTensor };
  /** invFreq (Dh / 2 inverse frequencies) replaces theta and scalingFactor, which are then not read. */
  rope(x: NativeTensor, positions: NativeTensor, options: NativeRopeOptions): NativeTensor;
  ropeBackward(gradOut: NativeTensor, positions: NativeTensor, options: NativeRopeOptions): NativeTensor;
  ropeInvFreq(options: { theta: number; scalingFactor: number; headDim: number }): Float64Array;
  embedding(table: NativeTensor, ids: NativeTensor): NativeTensor;
  embeddingBackward(gradOut: NativeTensor, ids: NativeTensor, options: { vocab: number }): NativeTensor;
  sumOfSquares(x: NativeTensor): NativeTensor;
  adamwStep(
    param: NativeTensor,
    grad: NativeTensor,
    m: NativeTensor,
    v: NativeTensor,
    options: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number; gradScale?: number; checkFinite?: boolean; gradSumOfSquares?: NativeTensor; maxGradNorm?: number },
  ): void;
  causalAttention(
    q: NativeTensor,
    k: NativeTensor,
    v: NativeTensor,
    sequenceIds: NativeTensor,
    options: { scale?: number; spans?: NativeTensor },
  ): { out: NativeTensor; logsumexp: NativeTensor };
  causalAttentionBackward(
    q: NativeTensor,
    k: NativeTensor,
    v: NativeTensor,
    sequenceIds: NativeTensor,
    out: NativeTensor,
    logsumexp: NativeTensor,
    gradOut: NativeTensor,
    options: { scale?: number; spans?: NativeTensor },
  ): { gradQ: NativeTensor; gradK: NativeTensor; gradV: NativeTensor };
  kvCacheWrite(cache: NativeTensor, values: NativeTensor, slots: NativeTensor, positions: NativeTensor): void;
  cachedAttention(
    q: NativeTensor,
    kCache: NativeTensor,
    vCache: NativeTensor,
    slots: NativeTensor,
    positions: NativeTensor,
    options: { scale?: number },
  ): NativeTensor;
  memoryStats(): Record<'cpu' | 'cuda', { currentBytes: number; peakBytes: number; cachedBytes: number }>;
  resetPeakMemory(): void;
  syncStats(): NativeSyncStats;
  resetSyncStats(): void;
  /** Bandwidth probes for the bench (native/core/bandwidth.h): dst <- src and a read of x, on the kernels' threads. */
  hostParallelCopy(dst: NativeTensor, src: NativeTensor): void;
  hostParallelReadSum(x: NativeTensor): number;
}

/** rope's options: theta and scalingFactor, or invFreq. */
export interface NativeRopeOptions {
  theta?: number;
  scalingFactor?: number;
  invFreq?: Float64Array;
}

/** Host waits since the last resetSyncStats(), by kind; hostWaits is their sum. */
export interface NativeSyncStats {
  hostWaits: number;
  reads: number;
  synchronizes: number;
  statusReads: number;
  uploadWaits: number;
}

function load(): NativeAddon {
  const root = path.join(__dirname, '..');
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('node-gyp-build')(root) as NativeAddon;
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new Error(
      `osp: the native addon is not built or does not load (${why}).\n` +
        `Build it with \`npm run build:native\` (CMake) or \`npm run build:gyp\` (node-gyp, CPU only).`,
    );
  }
}

export const native: NativeAddon = load();
