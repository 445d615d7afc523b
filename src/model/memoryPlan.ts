// The memory plan of a training run, from shapes alone (no weights loaded): every tensor the run
// holds at its peak, counted the way the code allocates it, so a run that cannot fit the card is
// refused before any work (and `osp <command> --dry-run` prints the table).
//
// What is counted, and where it comes from:
//   persistent  the base weights in the run's dtype (config.ts shapes, or the safetensors headers'
//               element counts), one copy per model the command holds (trainer.ts: online runs load
//               policy + reference (+ a separate judge), dpo policy + reference, sft and augment one
//               model; with LoRA all roles share one base); optim.ts's f32 master copy (bf16 only) and
//               AdamW's two moments for every trainable parameter.
//   phases      one at a time, on top of the persistent bytes; the total is persistent + the largest:
//     generate  src/generate: the kv cache, 2 x layers x slots x length x kvHeads x headDim, slots =
//               prompts of a group x K (groups bounded by maxCacheBytes, 40% of the card by default),
//               plus the prefill's one-layer transient and the sampled rows' logits.
//     judge     Judge.preferences -> lastLogits: a forward over judgeBatch instructions; forward()
//               keeps every layer's activations whether or not a backward follows.
//     train     objective.ts: scoring forwards (reference, and the policy with several micro-batches)
//               keep all activations of one micro-batch; the training forward keeps LayerActivations
//               per layer (or only each layer's input with recompute, plus one recomputed layer in the
//               backward); the backward keeps the cache until it ends and builds every gradient (the
//               model's dtype; with several micro-batches GradientAccumulator's f32 sums beside the
//               current micro-batch's), the LM head's [chunk, V] logits and its [V, D] gradient sum.
// Every sequence is taken at its longest (prompt + new tokens), so the plan is an upper bound of
// what the data can reach; test/memoryPlan.test.ts holds it within 15% of memoryStats() on the cpu.
import { LlamaConfig, llamaParameterShapes } from './config';

import { LORA_TARGETS, LoraTarget } from './lora';

export { LORA_TARGETS };
export type { LoraTarget };

// reward-model: planned as a preference command without a reference (its LM head rows over-count: it has none).
export type PlanCommand = 'train' | 'self-reward' | 'dpo' | 'sft' | 'augment' | 'reward-model';

export interface MemoryPlanInput {
  config: LlamaConfig;
  command: PlanCommand;
  device: 'cpu' | 'cuda';
  /** The run's weights in memory: bf16 on cuda, f32 on the cpu (f64 for tests of the engine). */
  dtype: 'f32' | 'bf16' | 'f64';
  /** Prompts (online) or examples (pairs, sft examples) per optimizer step. */
  batchSize: number;
  /** Pairs (preference commands) or examples (sft, augment) per forward/backward. */
  microBatch: number;
  recompute: boolean;
  /** Tokens of the longest prompt (for augment: the longest judge instruction). */
  promptLength: number;
  /** Online: samples per prompt. */
  k?: number;
  /** Online: new tokens per sample; offline and sft: tokens of the longest response. */
  responseLength: number;
  /** Online: 'best-worst' pairing (self-reward) forms one pair per prompt, the others K // 2. */
  pairing?: 'ranked' | 'random' | 'best-worst';
  /** Instructions per judge forward and the longest instruction (online runs; dpo with judge labels). */
  judgeBatch?: number;
  judgeMaxLength?: number;
  /** Full fine-tuning: the judge is a model of its own (a --judge folder other than the reference). */
  separateJudge?: boolean;
  /** dpo: soft labels from the judge before training. */
  judgeLabels?: boolean;
  /** Adapters on these projections: the base is frozen (no gradient, no master copy). */
  lora?: { r: number; targets: readonly LoraTarget[]; dropout?: number };
  /** Elements of the base weights as the folder's safetensors headers list them (default: the config's shapes). */
  weightElements?: number;
  /** The card's memory in bytes, when there is one (cuda, or --device-memory). */
  deviceMemory?: number;
  /** generate's bound on the kv cache (default: 40% of deviceMemory on cuda, 25% of RAM up to 8 GiB on the cpu). */
  maxCacheBytes?: number;
  /** The LM head's rows per chunk (lmHead.ts). Default 256. */
  headChunk?: number;
}

export type PlanPhase = 'persistent' | 'generate' | 'judge' | 'train';

export interface PlanRow {
  label: string;
  bytes: number;
  phase: PlanPhase;
  /** false: shown for comparison, not part of the sum (the activations with the other recompute setting). */
  counted?: boolean;
}

export interface MemoryPlan {
  rows: PlanRow[];
  persistentBytes: number;
  phaseBytes: Record<Exclude<PlanPhase, 'persistent'>, number>;
  /** The phase whose bytes the total adds. */
  peakPhase: Exclude<PlanPhase, 'persistent'>;
  totalBytes: number;
  deviceMemory: number | null;
  /** totalBytes <= deviceMemory (true when there is no card to compare with). */
  fits: boolean;
  input: MemoryPlanInput;
}

const bytesOf = (dtype: 'f32' | 'bf16' | 'f64') => (dtype === 'bf16' ? 2 : dtype === 'f64' ? 8 : 4);

/** [in, out] of each LoRA target's base projection. */
function loraShapes(c: LlamaConfig): Record<LoraTarget, [number, number]> {
  const { hiddenSize: D, intermediateSize: F, numAttentionHeads: H, numKeyValueHeads: Hkv, headDim: Dh } = c;
  return { q: [D, H * Dh], k: [D, Hkv * Dh], v: [D, Hkv * Dh], o: [H * Dh, D], gate: [D, F], up: [D, F], down: [F, D] };
}

/** Trainable LoRA parameters: A [r, in] and B [out, r] per target per layer. */
export function loraParameterCount(c: LlamaConfig, lora: { r: number; targets: readonly LoraTarget[] }): number {
  const shapes = loraShapes(c);
  return c.numHiddenLayers * lora.targets.reduce((n, t) => n + lora.r * (shapes[t][0] + shapes[t][1]), 0);
}

function parameterElements(c: LlamaConfig): { total: number; largest: number } {
  let total = 0;
  let largest = 0;
  for (const s of llamaParameterShapes(c).values()) {
    const n = s.reduce((a, b) => a * b, 1);
    total += n;
    largest = Math.max(largest, n);
  }
  return { total, largest };
}

/**
 * Values one decoder layer's forward keeps per token (LayerActivations: x, xn1, q, k, v, attn, h,
 * hn, gate, up, act; attnFlat is a view of attn) and the f32 logsumexp per head.
 */
function layerValuesPerToken(c: LlamaConfig): { values: number; lse: number } {
  const { hiddenSize: D, intermediateSize: F, numAttentionHeads: H, numKeyValueHeads: Hkv, headDim: Dh } = c;
  return { values: 4 * D + 2 * H * Dh + 2 * Hkv * Dh + 3 * F, lse: H };
}

/** Bytes of a forward over T tokens that keeps every layer's activations (no recompute). */
function fullForwardBytes(c: LlamaConfig, T: number, b: number, lseBytes: number): number {
  const { values, lse } = layerValuesPerToken(c);
  // Per layer, then xFinal and hidden [T, D], the i32 tokens, sequence ids and positions.
  return c.numHiddenLayers * T * (values * b + lse * lseBytes) + 2 * T * c.hiddenSize * b + 3 * T * 4;
}

/** A forward's transient inside one layer: a projection's output before rope or the residual add. */
function layerForwardTransient(c: LlamaConfig, T: number, b: number): number {
  return T * Math.max(c.hiddenSize, c.numAttentionHeads * c.headDim) * b;
}

/** The LM head's forward: one chunk's logits [C, V] in the model's dtype and the [T] log-probs. */
function headBytes(c: LlamaConfig, T: number, b: number, chunk: number): number {
  return Math.min(chunk, T) * c.vocabSize * b + T * 8;
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

function checkInput(p: MemoryPlanInput): void {
  const posInt = (name: string, v: unknown) => {
    if (!(Number.isInteger(v) && (v as number) >= 1)) throw new RangeError(`planMemory: ${name} is ${String(v)}; expected an integer >= 1`);
  };
  posInt('batchSize', p.batchSize);
  posInt('microBatch', p.microBatch);
  posInt('promptLength', p.promptLength);
  posInt('responseLength', p.responseLength);
  if (p.k !== undefined) posInt('k', p.k);
  if (p.judgeBatch !== undefined) posInt('judgeBatch', p.judgeBatch);
  if (p.judgeMaxLength !== undefined) posInt('judgeMaxLength', p.judgeMaxLength);
  if (p.lora) {
    posInt('lora.r', p.lora.r);
    if (p.lora.targets.length === 0) throw new RangeError('planMemory: lora.targets is empty; expected some of q, k, v, o, gate, up, down');
  }
  if (p.deviceMemory !== undefined && !(Number.isFinite(p.deviceMemory) && p.deviceMemory > 0)) throw new RangeError(`planMemory: deviceMemory is ${String(p.deviceMemory)}; expected bytes > 0`);
}

/** The memory plan of a run (see the file comment): rows of bytes with their phase, and the total against the card. */
export function planMemory(input: MemoryPlanInput): MemoryPlan {
  checkInput(input);
  const c = input.config;
  const b = bytesOf(input.dtype);
  const lseBytes = input.dtype === 'f64' ? 8 : 4;
  const stateBytes = input.dtype === 'f64' ? 8 : 4; // moments, masters and accumulated gradients
  const chunk = input.headChunk ?? 256;
  const online = input.command === 'train' || input.command === 'self-reward';
  const rows: PlanRow[] = [];
  const add = (phase: PlanPhase, label: string, bytes: number) => {
    if (bytes > 0) rows.push({ label, bytes, phase });
  };

  // ---- persistent: weights, masters, optimizer state
  const elements = parameterElements(c);
  const baseElements = input.weightElements ?? elements.total;
  const weightBytes = baseElements * b;
  const lora = input.lora;
  if (lora) {
    add('persistent', `base weights (${input.dtype}, frozen; one copy for policy, reference and judge)`, weightBytes);
  } else {
    add('persistent', `policy weights (${input.dtype})`, weightBytes);
    if (online || input.command === 'dpo') add('persistent', `reference weights (${input.dtype}, frozen copy)`, weightBytes);
    if (online && input.separateJudge) add('persistent', `judge weights (${input.dtype}, frozen copy)`, weightBytes);
  }
  const trainable = lora ? loraParameterCount(c, lora) : elements.total;
  if (lora) add('persistent', `LoRA adapters A, B (f32, r ${lora.r} on ${lora.targets.join(',')})`, trainable * 4);
  else if (input.dtype === 'bf16') add('persistent', 'f32 master weights', trainable * 4);
  add('persistent', `AdamW state (2 x ${stateBytes === 8 ? 'f64' : 'f32'})`, 2 * trainable * stateBytes);

  // ---- generate (online): kv cache for a group of prompts x K samples
  let generate = 0;
  const K = input.k ?? 1;
  if (online) {
    const L = Math.min(c.maxPositionEmbeddings, input.promptLength + input.responseLength);
    const perPosition = 2 * c.numHiddenLayers * c.numKeyValueHeads * c.headDim * b;
    const limit = input.maxCacheBytes ?? (input.device === 'cuda' && input.deviceMemory ? Math.floor(0.4 * input.deviceMemory) : 8 * 2 ** 30);
    const perPrompt = K * L * perPosition;
    const group = Math.max(1, Math.min(input.batchSize, Math.floor(limit / perPrompt)));
    const kv = group * perPrompt;
    add('generate', `kv cache: ${group} prompt${group === 1 ? '' : 's'} x K ${K} slots x ${L} positions`, kv);
    // Prefill: one layer's activations over the group's prompts, and its K - 1 copies of k and v.
    const N = group * input.promptLength;
    const { values, lse } = layerValuesPerToken(c);
    const prefill = N * (values + c.hiddenSize) * b + N * lse * lseBytes + 2 * N * (K - 1) * c.numKeyValueHeads * c.headDim * b;
    add('generate', `prefill of ${N} prompt tokens (one layer at a time)`, prefill);
    add('generate', `sampled rows' logits (${group * K} x vocab ${c.vocabSize}, x3)`, 3 * group * K * c.vocabSize * Math.max(b, 4));
    generate = kv + prefill + 3 * group * K * c.vocabSize * Math.max(b, 4);
  }

  // ---- judge: a forward over judgeBatch instructions, all layers kept
  let judge = 0;
  if (online || (input.command === 'dpo' && input.judgeLabels)) {
    const jb = input.judgeBatch ?? 16;
    const jl = Math.min(c.maxPositionEmbeddings, input.judgeMaxLength ?? c.maxPositionEmbeddings);
    const T = jb * jl;
    judge = fullForwardBytes(c, T, b, lseBytes) + layerForwardTransient(c, T, b);
    add('judge', `judge forward: ${jb} instructions x ${jl} tokens (every layer's activations kept)`, judge);
    if (input.command === 'dpo' && !lora && input.separateJudge) {
      add('judge', `judge weights (${input.dtype}, loaded for labelling)`, weightBytes);
      judge += weightBytes;
    }
  }

  // ---- train: one micro-batch's forward and backward, gradients, LM head
  const preference = input.command !== 'sft' && input.command !== 'augment';
  const seqLength = Math.min(c.maxPositionEmbeddings, input.promptLength + input.responseLength);
  const pairsPerPrompt = input.pairing === 'best-worst' || input.command === 'self-reward' ? 1 : Math.floor(K / 2);
  const items = preference ? 2 * (online ? input.batchSize * pairsPerPrompt : input.batchSize) : input.batchSize;
  const perMicro = preference ? 2 * input.microBatch : input.microBatch;
  const seqs = Math.min(items, perMicro);
  const several = items > perMicro;
  const T = seqs * seqLength;
  const D = c.hiddenSize;
  const F = c.intermediateSize;
  const V = c.vocabSize;
  const nLayers = c.numHiddenLayers;
  const qWidth = c.numAttentionHeads * c.headDim;
  const kvWidth = c.numKeyValueHeads * c.headDim;
  const shapesLora = loraShapes(c);
  // LoRA keeps A x [T, r] (f32) per target for B's gradient, and the dropped-out input when dropout is on.
  const loraValuesPerToken = lora ? lora.targets.reduce((n, t) => n + lora.r * 4 + (lora.dropout ? shapesLora[t][0] * b : 0), 0) : 0;
  const activationsOf = (recompute: boolean) => {
    const { values, lse } = layerValuesPerToken(c);
    const oneLayer = T * (values * b + lse * lseBytes + loraValuesPerToken);
    const inputsOnly = nLayers * T * D * b + 2 * T * D * b + 3 * T * 4; // each layer's x, then xFinal, hidden, the i32 ids
    // During a layer's backward: all layers, or the inputs plus the one layer recomputed; at the end (recompute) the inputs only.
    return recompute ? { during: inputsOnly + oneLayer - T * D * b, end: inputsOnly } : { during: fullForwardBytes(c, T, b, lseBytes) + nLayers * oneLayerLora(T), end: fullForwardBytes(c, T, b, lseBytes) + nLayers * oneLayerLora(T) };
  };
  function oneLayerLora(tokens: number): number {
    return tokens * loraValuesPerToken;
  }
  const acts = activationsOf(input.recompute);
  // Gradients as the backward builds them (model.backward, last layer first): the model's dtype
  // for full fine-tuning (the LM head's [V, D] first), f32 adapters only with LoRA.
  const perLayerParams = 2 * D + 2 * qWidth * D + 2 * kvWidth * D + 3 * F * D;
  const layerGrad = lora ? (loraParameterCount(c, lora) / nLayers) * 4 : perLayerParams * b;
  const mlpGrad = lora ? lora.targets.filter((t) => t === 'gate' || t === 'up' || t === 'down').reduce((n, t) => n + lora.r * (shapesLora[t][0] + shapesLora[t][1]) * 4, 0) : 3 * F * D * b;
  const headGrad = lora ? 0 : V * D * b;
  const allGrads = lora ? trainable * 4 : elements.total * b + (c.tieWordEmbeddings ? 2 * V * D * b : 0); // tied: the table's and the head's, then their sum
  const C = Math.min(chunk, T);
  const TD = T * D * b;
  // The moments of the backward with the most held: [name, activations, gradients, transients].
  const moments: [string, number, number, number][] = [
    ['LM head backward', acts.end, 0, (lora ? 0 : 3 * V * D * b) + C * V * b + C * D * b + TD],
    ['first layer MLP backward (d act, d gate, d up)', acts.during, headGrad + (nLayers - 1) * layerGrad, T * (3 * F + 2 * D) * b],
    ['first layer MLP backward (d hn)', acts.during, headGrad + (nLayers - 1) * layerGrad + mlpGrad, T * (2 * F + 5 * D) * b],
    ['first layer attention backward', acts.during, headGrad + nLayers * layerGrad, T * (5 * D + qWidth + 2 * kvWidth) * b],
    ['end of the backward', acts.end, allGrads, TD],
  ];
  const [moment, momentActs, momentGrads, momentTransient] = moments.reduce((a, m) => (m[1] + m[2] + m[3] > a[1] + a[2] + a[3] ? m : a));
  const accumulated = several ? trainable * (lora ? 4 : stateBytes) : 0;
  const backward = momentActs + momentGrads + momentTransient + accumulated;
  // Preference steps score the reference (and, with several micro-batches, the policy) first, before any gradient exists.
  const scoring = fullForwardBytes(c, T, b, lseBytes) + nLayers * oneLayerLora(T) + layerForwardTransient(c, T, b) + headBytes(c, T, b, chunk);
  const train = Math.max(backward, preference ? scoring : 0);
  if (preference && scoring > backward) {
    add('train', `scoring forward without gradients: ${nLayers} layers x ${seqs} seq x ${seqLength} tokens`, scoring);
  } else {
    add('train', `activations${input.recompute ? ' (recompute: layer inputs + 1 layer)' : ''}: ${seqs} seq x ${seqLength} tokens`, momentActs);
    add('train', `gradients (${lora ? 'f32, adapters' : input.dtype}) at the peak: ${moment}`, momentGrads);
    add('train', `transient buffers then (d activations, LM head chunk ${C} x ${V})`, momentTransient);
    if (several) add('train', `gradient sums over ${Math.ceil(items / perMicro)} micro-batches (${lora || stateBytes === 4 ? 'f32' : 'f64'})`, accumulated);
  }
  const other = activationsOf(!input.recompute);
  rows.push({ label: `(activations ${input.recompute ? 'without' : 'with'} recompute would be ${formatBytes(other.during)})`, bytes: other.during, phase: 'train', counted: false });

  const phaseBytes = { generate, judge, train };
  const peakPhase = (Object.keys(phaseBytes) as (keyof typeof phaseBytes)[]).reduce((a, k) => (phaseBytes[k] > phaseBytes[a] ? k : a), 'train' as keyof typeof phaseBytes);
  const persistentBytes = rows.filter((r) => r.phase === 'persistent' && r.counted !== false).reduce((n, r) => n + r.bytes, 0);
  const totalBytes = persistentBytes + phaseBytes[peakPhase];
  const deviceMemory = input.deviceMemory ?? null;
  return { rows, persistentBytes, phaseBytes, peakPhase, totalBytes, deviceMemory, fits: deviceMemory === null || totalBytes <= deviceMemory, input };
}

/** The plan as an aligned table of bytes: persistent rows, each phase with its sum, the total against the card. */
export function formatPlan(plan: MemoryPlan, title?: string): string {
  const lines: [string, string][] = [];
  const phaseTitle = { persistent: 'held throughout', generate: 'generation (kv cache)', judge: 'judging', train: 'training step (one micro-batch)' } as const;
  for (const phase of ['persistent', 'generate', 'judge', 'train'] as const) {
    const rs = plan.rows.filter((r) => r.phase === phase);
    if (rs.length === 0) continue;
    const sum = phase === 'persistent' ? plan.persistentBytes : plan.phaseBytes[phase];
    const peak = phase === plan.peakPhase ? '  <- the largest phase' : '';
    lines.push([`${phaseTitle[phase]}${peak}`, formatBytes(sum)]);
    for (const r of rs) lines.push([`  ${r.label}`, r.counted === false ? '' : formatBytes(r.bytes)]);
  }
  lines.push([`total (held throughout + ${phaseTitle[plan.peakPhase]})`, formatBytes(plan.totalBytes)]);
  if (plan.deviceMemory !== null) {
    const verdict = plan.fits ? `fits, ${formatBytes(plan.deviceMemory - plan.totalBytes)} to spare` : `does not fit, ${formatBytes(plan.totalBytes - plan.deviceMemory)} over`;
    lines.push([`card memory`, formatBytes(plan.deviceMemory)]);
    lines.push([`  ${verdict}`, '']);
  } else {
    lines.push(['card memory', 'none given (cpu)']);
  }
  const width = Math.max(...lines.map(([l]) => l.length));
  const numWidth = Math.max(...lines.map(([, v]) => v.length));
  const body = lines.map(([l, v]) => `${l.padEnd(width)}  ${v.padStart(numWidth)}`.trimEnd());
  return [...(title ? [title] : []), ...body].join('\n');
}

/** A change of settings that makes a plan fit, found by planning again. */
export interface PlanSuggestion {
  /** The settings changed, e.g. { recompute: true, microBatch: 2 }. */
  change: Partial<Pick<MemoryPlanInput, 'recompute' | 'microBatch' | 'batchSize' | 'judgeBatch'>>;
  plan: MemoryPlan;
}

/**
 * The smallest change that fits the card, trying in order: recompute on; a smaller micro-batch
 * (largest that fits, with the run's recompute, then with recompute); a smaller judge batch; a
 * smaller batch of prompts (the generation batch); and their combination. null when nothing fits.
 */
export function suggestFit(input: MemoryPlanInput): PlanSuggestion | null {
  const tryPlan = (change: PlanSuggestion['change']) => {
    const plan = planMemory({ ...input, ...change });
    return plan.fits ? { change, plan } : null;
  };
  if (planMemory(input).fits) return { change: {}, plan: planMemory(input) };
  const down = (from: number) => Array.from({ length: from - 1 }, (_, i) => from - 1 - i);
  const judgeBatch = input.judgeBatch ?? 16;
  const candidates: PlanSuggestion['change'][] = [];
  if (!input.recompute) candidates.push({ recompute: true });
  for (const mb of down(input.microBatch)) candidates.push({ microBatch: mb });
  if (!input.recompute) for (const mb of down(input.microBatch)) candidates.push({ recompute: true, microBatch: mb });
  for (const jb of down(judgeBatch)) candidates.push({ judgeBatch: jb });
  for (const bs of down(input.batchSize)) candidates.push({ batchSize: bs });
  // Everything at once: recompute, the largest micro-batch and judge batch that fit.
  for (const mb of [input.microBatch, ...down(input.microBatch)]) {
    for (const jb of [judgeBatch, ...down(judgeBatch)]) candidates.push({ recompute: true, microBatch: mb, judgeBatch: jb });
  }
  for (const change of candidates) {
    const s = tryPlan(change);
    if (s) return s;
  }
  return null;
}
