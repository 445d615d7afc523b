// Batched sampling with a kv cache (DESIGN.md src/generate). Prompts are prefilled as one packed
// batch; the K samples of a prompt share its prefill (its keys and values are written into all K
// cache slots at once); decoding then runs one token per unfinished sample per step, and a finished
// sample costs nothing further. Temperature, top-k and top-p are applied on the device by the
// sampleTokens kernel, whose draw for (seed, stream, step) is fixed: a sample's stream is a hash of
// its prompt's tokens, the prompt's occurrence number among identical prompts, and its sample index,
// so the same seed gives the same samples whatever else is in the batch (on the same device; with
// cuBLAS, whose kernel choice can depend on the batch shape, near-ties may round differently).
//
// Memory is known up front: the cache holds 2 x layers x slots x length x kvHeads x headDim values,
// slots = prompts x K and length = the longest prompt + maxNewTokens (capped by the context).
// Prompts are taken in groups whose cache fits maxCacheBytes; a single prompt whose K samples do not
// fit is refused before any work, with the numbers.
import { fnv1a32 } from '../util/random';
import { LlamaModel } from '../model/llama';
import { Tokenizer } from '../model/tokenizer';
import * as ops from '../ops';
import { Tensor, scope, tensor } from '../tensor';
import { allocateKvCache, defaultMaxCacheBytes, disposeKvCache, formatBytes, kvCacheBytesPerPosition } from './kvCache';

export type FinishReason = 'eos' | 'stop' | 'length';

export interface GenerateOptions {
  /** New tokens per sample at most (an integer >= 1). */
  maxNewTokens: number;
  /** >= 0; 0 is greedy decoding (argmax). */
  temperature: number;
  /** Nucleus mass in (0, 1]. Default 1 (off). */
  topP?: number;
  /** Keep the k most likely tokens; 0 = off. Default 0. */
  topK?: number;
  /** Seed of the sampler (an integer in [0, 2^53)). */
  seed: number;
  /** Samples per prompt (K). Default 1. */
  numSamples?: number;
  /** A sample ends once its text contains one of these; the text is cut before it. */
  stop?: string[];
  /** Token ids that end a sample. Default: the tokenizer's EOS and the model config's eos_token_id. */
  eosTokenIds?: number[];
  /** Bound on the kv cache in bytes. Default: 40% of the GPU's memory on cuda, 25% of RAM (at most 8 GiB) on the cpu. */
  maxCacheBytes?: number;
  /** Called after every decoding step with the tokens generated so far in this call (progress bars). */
  onStep?: (info: { generatedTokens: number; activeSamples: number }) => void;
}

export interface Sample {
  /** The generated token ids (EOS included when the sample ended on it; stop-string tokens included). */
  tokens: Int32Array;
  /** The decoded text of the tokens, special tokens skipped, cut before the first stop string. */
  text: string;
  finishReason: FinishReason;
  /** log-probability of each token under the distribution it was drawn from (temperature, top-k, top-p; 0 when greedy). */
  logprobs: Float64Array;
  /** log-probability of each token under the model itself (log_softmax of the raw logits). */
  modelLogprobs: Float64Array;
}

export interface GenerationResult {
  /** The prompt's token ids (as encoded, special tokens included). */
  promptTokens: Int32Array;
  /** numSamples samples. */
  samples: Sample[];
}

const STOP_WINDOW = 32; // tokens decoded to look for a stop string each step

/** 31-bit FNV-1a hash of the prompt's tokens, its occurrence number and the sample index. */
function streamOf(prompt: Int32Array, occurrence: number, sample: number): number {
  return fnv1a32([0x5eed0000 ^ occurrence, 0x7a3b0000 ^ sample], fnv1a32(prompt)) >>> 1;
}

function checkOptions(model: LlamaModel, opts: GenerateOptions): Required<Omit<GenerateOptions, 'onStep' | 'eosTokenIds' | 'maxCacheBytes'>> {
  const bad = (name: string, v: unknown, want: string) => new RangeError(`generate: ${name} is ${JSON.stringify(v) ?? String(v)}; expected ${want}`);
  if (typeof opts !== 'object' || opts === null) throw new TypeError('generate: opts is not an object; expected {maxNewTokens, temperature, seed, ...}');
  const { maxNewTokens, temperature, seed } = opts;
  const topP = opts.topP ?? 1;
  const topK = opts.topK ?? 0;
  const numSamples = opts.numSamples ?? 1;
  const stop = opts.stop ?? [];
  if (!(Number.isInteger(maxNewTokens) && maxNewTokens >= 1)) throw bad('maxNewTokens', maxNewTokens, 'an integer >= 1');
  if (!(typeof temperature === 'number' && Number.isFinite(temperature) && temperature >= 0)) throw bad('temperature', temperature, 'a finite number >= 0');
  if (!(typeof topP === 'number' && topP > 0 && topP <= 1)) throw bad('topP', topP, 'a number in (0, 1]');
  if (!(Number.isInteger(topK) && topK >= 0)) throw bad('topK', topK, 'an integer >= 0');
  if (!(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 53)) throw bad('seed', seed, 'an integer in [0, 2^53)');
  if (!(Number.isInteger(numSamples) && numSamples >= 1)) throw bad('numSamples', numSamples, 'an integer >= 1');
  if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string' || s.length === 0)) throw bad('stop', stop, 'an array of non-empty strings');
  void model;
  return { maxNewTokens, temperature, topP, topK, seed, numSamples, stop };
}

interface Running {
  prompt: number;
  sample: number;
  slot: number;
  stream: number;
  tokens: number[];
  logprobs: number[];
  modelLogprobs: number[];
  finish: FinishReason | null;
  /** Tokens this sample may generate: min(maxNewTokens, context - prompt length). */
  maxTokens: number;
}

/**
 * Samples numSamples responses for each prompt (a string, encoded with the tokenizer's special tokens,
 * or token ids). Returns, per prompt in order, its tokens and samples.
 */
export async function generate(
  model: LlamaModel,
  tokenizer: Tokenizer,
  prompts: (string | Int32Array)[],
  opts: GenerateOptions,
): Promise<GenerationResult[]> {
  const o = checkOptions(model, opts);
  if (!Array.isArray(prompts)) throw new TypeError('generate: prompts is not an array of strings or Int32Array');
  const c = model.config;
  const V = c.vocabSize;
  const eos = new Set<number>(opts.eosTokenIds ?? [
    ...(tokenizer.eosTokenId !== undefined ? [tokenizer.eosTokenId] : []),
    ...(Array.isArray(c.eosTokenId) ? c.eosTokenId : [c.eosTokenId]),
  ]);
  for (const e of eos) if (!(Number.isInteger(e) && e >= 0 && e < V)) throw new RangeError(`generate: eos token id ${e} is not in the vocabulary [0, ${V})`);
  const encoded: Int32Array[] = [];
  for (let i = 0; i < prompts.length; i++) {
    const p = prompts[i];
    let ids: Int32Array;
    if (typeof p === 'string') ids = await tokenizer.encode(p);
    else if (p instanceof Int32Array) ids = p;
    else throw new TypeError(`generate: prompts[${i}] is neither a string nor an Int32Array`);
    if (ids.length === 0) throw new RangeError(`generate: prompts[${i}] has no tokens; expected at least one`);
    if (ids.length >= c.maxPositionEmbeddings) {
      throw new RangeError(`generate: prompts[${i}] has ${ids.length} tokens; the model's context (max_position_embeddings) is ${c.maxPositionEmbeddings}, so a prompt may have at most ${c.maxPositionEmbeddings - 1}`);
    }
    ids.forEach((t, j) => {
      if (!(t >= 0 && t < V)) throw new RangeError(`generate: prompts[${i}][${j}] is ${t}; expected a token id in [0, ${V})`);
    });
    encoded.push(ids);
  }
  // Memory: plan groups of prompts whose cache fits.
  const K = o.numSamples;
  const perPosition = kvCacheBytesPerPosition(model);
  const limit = opts.maxCacheBytes ?? defaultMaxCacheBytes(model.device);
  if (!(Number.isFinite(limit) && limit > 0)) throw new RangeError(`generate: maxCacheBytes is ${String(limit)}; expected a number > 0`);
  const lengthOf = (n: number) => Math.min(c.maxPositionEmbeddings, n + o.maxNewTokens);
  const groups: number[][] = [];
  let current: number[] = [];
  let currentMax = 0;
  for (let i = 0; i < encoded.length; i++) {
    const need1 = K * lengthOf(encoded[i].length) * perPosition;
    if (need1 > limit) {
      throw new RangeError(
        `generate: the kv cache for prompts[${i}] (${encoded[i].length} tokens) x ${K} samples x ${lengthOf(encoded[i].length)} positions needs ${formatBytes(need1)}; ` +
          `the limit is ${formatBytes(limit)} (maxCacheBytes). Use fewer samples or fewer new tokens, or raise maxCacheBytes`,
      );
    }
    const m = Math.max(currentMax, encoded[i].length);
    if (current.length > 0 && (current.length + 1) * K * lengthOf(m) * perPosition > limit) {
      groups.push(current);
      current = [];
    }
    currentMax = current.length === 0 ? encoded[i].length : Math.max(currentMax, encoded[i].length);
    current.push(i);
  }
  if (current.length > 0) groups.push(current);

  const occurrences = new Map<string, number>();
  const occurrenceOf = encoded.map((p) => {
    const key = p.join(',');
    const n = occurrences.get(key) ?? 0;
    occurrences.set(key, n + 1);
    return n;
  });
  const results: GenerationResult[] = encoded.map((p) => ({ promptTokens: p, samples: [] }));
  let generatedTotal = 0;
  for (const group of groups) {
    const runs = await generateGroup(model, tokenizer, group, encoded, occurrenceOf, o, eos, (n, active) => {
      generatedTotal += n;
      opts.onStep?.({ generatedTokens: generatedTotal, activeSamples: active });
    });
    for (const r of runs) results[r.prompt].samples[r.sample] = await finishSample(tokenizer, r, o.stop);
  }
  return results;
}

async function finishSample(tokenizer: Tokenizer, r: Running, stop: string[]): Promise<Sample> {
  const tokens = Int32Array.from(r.tokens);
  let text = await tokenizer.decode(tokens);
  if (r.finish === 'stop') {
    let cut = text.length;
    for (const s of stop) {
      const at = text.indexOf(s);
      if (at >= 0) cut = Math.min(cut, at);
    }
    text = text.slice(0, cut);
  }
  return { tokens, text, finishReason: r.finish ?? 'length', logprobs: Float64Array.from(r.logprobs), modelLogprobs: Float64Array.from(r.modelLogprobs) };
}

async function generateGroup(
  model: LlamaModel,
  tokenizer: Tokenizer,
  group: number[],
  encoded: Int32Array[],
  occurrenceOf: number[],
  o: ReturnType<typeof checkOptions>,
  eos: Set<number>,
  progress: (newTokens: number, active: number) => void,
): Promise<Running[]> {
  const c = model.config;
  const K = o.numSamples;
  const S = group.length * K;
  const L = Math.min(c.maxPositionEmbeddings, Math.max(...group.map((i) => encoded[i].length)) + o.maxNewTokens);
  const cache = allocateKvCache(model, S, L);
  try {
    const runs: Running[] = [];
    group.forEach((p, g) => {
      for (let k = 0; k < K; k++) {
        runs.push({ prompt: p, sample: k, slot: g * K + k, stream: streamOf(encoded[p], occurrenceOf[p], k), tokens: [], logprobs: [], modelLogprobs: [], finish: null, maxTokens: Math.min(c.maxPositionEmbeddings - encoded[p].length, o.maxNewTokens) });
      }
    });
    // Prefill: the prompts packed, each into its first sample's slot, copied into the other K - 1.
    const T = group.reduce((n, p) => n + encoded[p].length, 0);
    const tokens = new Int32Array(T);
    const slots = new Int32Array(T);
    const positions = new Int32Array(T);
    const lastRows = new Int32Array(group.length);
    const copyRows: number[] = [];
    const copySlots: number[] = [];
    const copyPositions: number[] = [];
    let t0 = 0;
    group.forEach((p, g) => {
      const ids = encoded[p];
      tokens.set(ids, t0);
      for (let j = 0; j < ids.length; j++) {
        slots[t0 + j] = g * K;
        positions[t0 + j] = j;
        for (let k = 1; k < K; k++) {
          copyRows.push(t0 + j);
          copySlots.push(g * K + k);
          copyPositions.push(j);
        }
      }
      t0 += ids.length;
      lastRows[g] = t0 - 1;
    });
    // Each sample's first token is drawn from its prompt's last row.
    const firstRows = Int32Array.from(runs, (r) => group.indexOf(r.prompt));
    const step0 = scope(() => {
      const hidden = model.forwardCached(cache, tokens, slots, positions, {
        copies: { rows: Int32Array.from(copyRows), slots: Int32Array.from(copySlots), positions: Int32Array.from(copyPositions) },
        outputRows: lastRows,
      });
      const logits = model.headLogits(hidden);
      const expanded = ops.embedding(logits, tensor(firstRows, [firstRows.length], { dtype: 'i32', device: model.device }));
      return drawTokens(model, expanded, runs, o);
    });
    applyDraws(runs, step0, eos);
    progress(runs.length, runs.filter((r) => r.finish === null).length);
    await checkStops(tokenizer, runs, o.stop);
    for (;;) {
      const active = runs.filter((r) => r.finish === null);
      if (active.length === 0) break;
      const n = active.length;
      const feed = Int32Array.from(active, (r) => r.tokens[r.tokens.length - 1]);
      const aSlots = Int32Array.from(active, (r) => r.slot);
      const aPos = Int32Array.from(active, (r) => encoded[r.prompt].length + r.tokens.length - 1);
      const draws = scope(() => {
        const hidden = model.forwardCached(cache, feed, aSlots, aPos);
        return drawTokens(model, model.headLogits(hidden), active, o);
      });
      applyDraws(active, draws, eos);
      progress(n, active.filter((r) => r.finish === null).length);
      await checkStops(tokenizer, active, o.stop);
    }
    return runs;
  } finally {
    disposeKvCache(cache);
  }
}

interface Draws {
  tokens: ArrayLike<number>;
  logprobs: ArrayLike<number>;
  modelLogprobs: ArrayLike<number>;
}

function drawTokens(model: LlamaModel, logits: Tensor, runs: Running[], o: ReturnType<typeof checkOptions>): Draws {
  const B = runs.length;
  const streams = tensor(Int32Array.from(runs, (r) => r.stream), [B], { dtype: 'i32', device: model.device });
  const steps = tensor(Int32Array.from(runs, (r) => r.tokens.length), [B], { dtype: 'i32', device: model.device });
  const r = ops.sampleTokens(logits, streams, steps, { seed: o.seed, temperature: o.temperature, topP: o.topP, topK: o.topK });
  return { tokens: r.tokens.toArray(), logprobs: r.logprobs.toArray(), modelLogprobs: r.modelLogprobs.toArray() };
}

function applyDraws(runs: Running[], d: Draws, eos: Set<number>): void {
  runs.forEach((r, i) => {
    const t = d.tokens[i];
    r.tokens.push(t);
    r.logprobs.push(d.logprobs[i]);
    r.modelLogprobs.push(d.modelLogprobs[i]);
    if (eos.has(t)) r.finish = 'eos';
    else if (r.tokens.length >= r.maxTokens) r.finish = 'length';
  });
}

/** Ends samples whose recent text contains a stop string (a sample that just ran out of length too). */
async function checkStops(tokenizer: Tokenizer, runs: Running[], stop: string[]): Promise<void> {
  if (stop.length === 0) return;
  const open = runs.filter((r) => r.finish === null || r.finish === 'length');
  if (open.length === 0) return;
  const texts = await tokenizer.decodeBatch(open.map((r) => r.tokens.slice(-STOP_WINDOW)));
  open.forEach((r, i) => {
    if (stop.some((s) => texts[i].includes(s))) r.finish = 'stop';
  });
}
