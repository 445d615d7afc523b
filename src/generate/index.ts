// Batched sampling with a kv cache.
export { generate } from './generate';
export type { GenerateOptions, GenerationResult, Sample, FinishReason } from './generate';
