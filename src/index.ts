// osp: Online Self-Preferring alignment of Llama-family models over native CUDA/C++ kernels.
export { backends, defaultDevice, synchronize, memoryStats, resetPeakMemory } from './device';
export type { Backends, Device, MemoryStats } from './device';
export { tensor, randn, scope, keep, Tensor } from './tensor';
export type { DType, TensorData, TensorOptions, RandomOptions } from './tensor';
export {
  DEFAULT_IGNORE_INDEX,
  tokenLogprobs,
  tokenLogprobsBackward,
  tokenLogprobsUnfused,
  tokenLogprobsBackwardUnfused,
  logSoftmax,
  logSoftmaxBackward,
  gather,
  gatherBackward,
  sequenceLogprobs,
  sequenceLogprobsBackward,
  preferenceLoss,
  preferenceLossUnfused,
  add,
  sub,
  mul,
  unary,
  affine,
  sum,
  matmul,
} from './ops';
export type {
  IgnoreOptions,
  BackwardOptions,
  PreferenceKind,
  PreferenceInputs,
  PreferenceOptions,
  PreferenceLossResult,
  UnaryOp,
  MatmulOptions,
} from './ops';
