// osp: Online Self-Preferring alignment of Llama-family models over native CUDA/C++ kernels.
export { backends, defaultDevice, synchronize, memoryStats, resetPeakMemory } from './device';
export type { Backends, Device, MemoryStats } from './device';
export { syncStats, resetSyncStats, type SyncStats } from './sync';
export { tensor, zeros, randn, randu, dropoutMask, scope, keep, Tensor } from './tensor';
export type { DType, TensorData, TensorOptions, RandomOptions } from './tensor';
export {
  DEFAULT_IGNORE_INDEX,
  tokenLogprobs,
  tokenLogprobsWithLogsumexp,
  tokenLogprobsBackward,
  logSoftmax,
  logSoftmaxBackward,
  gather,
  gatherBackward,
  sequenceLogprobs,
  sequenceLogprobsBackward,
  preferenceLoss,
  add,
  sub,
  mul,
  unary,
  affine,
  sum,
  copyInto,
  matmul,
  rmsNorm,
  rmsNormBackward,
  swiglu,
  swigluBackward,
  rope,
  ropeBackward,
  ropeInvFreqTable,
  embedding,
  embeddingBackward,
  causalAttention,
  causalAttentionBackward,
  sequenceSpans,
  kvCacheWrite,
  cachedAttention,
  sumOfSquares,
  adamwStep,
  clipGradNorm,
  sampleTokens,
} from './ops';
export type {
  IgnoreOptions,
  BackwardOptions,
  TokenLogprobsResult,
  PreferenceKind,
  PreferenceInputs,
  PreferenceOptions,
  PreferenceLossResult,
  UnaryOp,
  MatmulOptions,
  RmsNormOptions,
  RmsNormGrads,
  SwigluGrads,
  RopeOptions,
  CausalAttentionOptions,
  CausalAttentionResult,
  CausalAttentionGrads,
  CachedAttentionOptions,
  AdamWOptions,
  ClipResult,
  SampleOptions,
  SampleResult,
} from './ops';
export {
  readSafetensorsHeader,
  readSafetensors,
  writeSafetensors,
  readSafetensorsIndex,
  readShardedSafetensors,
  writeShardedSafetensors,
  shardFileName,
  f16ToF32,
  bf16ToF32,
  f32ToF16,
  f32ToBf16,
  SAFETENSORS_DTYPE_SIZES,
} from './model/safetensors';
export type {
  SafetensorsDType,
  WritableDType,
  SafetensorsEntry,
  SafetensorsHeader,
  SafetensorsData,
  LoadedTensor,
  TensorToWrite,
  TensorsToWrite,
  ReadOptions as SafetensorsReadOptions,
  ShardOptions,
} from './model/safetensors';
export { parseLlamaConfig, toHuggingFaceConfig, loadLlamaConfig, LLAMA_ARCHITECTURES, ROPE_SCALING_TYPES } from './model/config';
export { ropeInvFreq, configRopeInvFreq } from './model/rope';
export type { LlamaConfig, LlamaArchitecture, LlamaModelType, RopeScaling } from './model/config';
export { LlamaModel, loadLlama, packSequences, llamaParameterShapes, disposeCache } from './model/llama';
export { LoraAdapter, LORA_TARGETS, LORA_MODULES, loraKey, mergedParameters, readAdapterConfig, isAdapterFolder, loraBranch, loraBranchBackward } from './model/lora';
export type { LoraSpec, LoraTarget } from './model/lora';
export { loadModelFolder, mergeAdapter } from './osp/models';
export type {
  LlamaDType,
  PackedBatch,
  LlamaInitOptions,
  ForwardOptions,
  ForwardCache,
  ForwardResult,
  Gradients,
  LossAndGrads,
  HeadOptions,
} from './model/llama';
export { learningRate } from './model/schedule';
export type { ScheduleKind, ScheduleOptions } from './model/schedule';
export { saveLlama, readLlamaFolder, WEIGHTS_FILE, TOKENIZER_FILES, DEFAULT_MAX_SHARD_BYTES } from './model/hub';
export type { LoadLlamaOptions, SaveLlamaOptions } from './model/hub';
export { Tokenizer } from './model/tokenizer';
export type { EncodeOptions, DecodeOptions } from './model/tokenizer';
export { AdamW, GradientAccumulator } from './model/optim';
export type { AdamWConfig, StepResult } from './model/optim';
export * from './judge';
export { generate } from './generate';
export type { GenerateOptions, GenerationResult, Sample, FinishReason } from './generate';
export { preferenceStep, sftStep, preferenceValues, responseLogprobSums, orientPair } from './osp/objective';
export type { LossKind, ScoredPair, PreferenceStepOptions, PreferenceStepResult, PreferenceValues, SftExample } from './osp/objective';
export { packResponses } from './model/batch';
export type { PromptResponse, ResponseBatch } from './model/batch';
export { linearLogprobs, linearLogprobsWithLogsumexp, linearLogprobsBackward } from './model/lmHead';
export type { LmHeadOptions, LinearLogprobsBackwardOptions, LinearLogprobsResult } from './model/lmHead';
export { DeviceRecord } from './osp/deviceRecord';
export { train, selfReward, dpo, sft, augment, rewardModel, ppo, resume } from './osp/trainer';
export { RewardModel, loadBackbone } from './model/rewardModel';
export type { TrainerHooks, RunResult, TrainSettings, SelfRewardSettings, DpoSettings, SftSettings, AugmentSettings, RewardModelSettings, PpoSettings } from './osp/trainer';
export { SettingsError, resolveSettings, parseLora, parseBytes } from './osp/settings';
export type { LoraSettings } from './osp/settings';
export { planMemory, formatPlan, suggestFit, loraParameterCount } from './model/memoryPlan';
export type { MemoryPlan, MemoryPlanInput, PlanRow, PlanSuggestion } from './model/memoryPlan';
export { MemoryPlanError, dryRunPlan, planRun } from './osp/memoryCheck';
export { runLoop, DataOrder, stepSeed } from './osp/loop';
export { MetricsLog } from './osp/metrics';
export type { StepMetrics } from './osp/metrics';
export { writeReport } from './osp/report';
export { winRate, rougeL, lengthStats, meanWithCi } from './osp/eval';
export * as reference from './reference';
export * as data from './data';
export * as demo from './demo';
