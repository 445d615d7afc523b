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
//               plus the prefill (forwardCached keeps every layer's [N, D] output until it returns and
//               one layer's tensors at a time) and the sampled rows' logits.
//     judge     Judge.preferences -> sharedLastLogits (prefix sharing, the default): per chunk a kv
//               cache of members x longest x bytes per position (within maxCacheBytes) and at most
//               judgeBatch x maxLength computed rows through forwardCached; only the answer columns of
//               the LM head. The unshared path (lastLogits) runs forward({ inference: true }).
//     train     objective.ts: scoring forwards (responseLogprobSums: the reference always, the policy
//               with several micro-batches) run forward({ inference: true }), one layer's activations
//               at a time, then the LM head's chunks; the training forward keeps LayerActivations per
//               layer (or only each layer's input with recompute, plus one recomputed layer in the
//               backward); the backward keeps the cache until it ends and builds every gradient (the
//               model's dtype; with several micro-batches GradientAccumulator's f32 sums beside the
//               current micro-batch's), the LM head's [chunk, V] logits and its [V, D] gradient sum.
//     LoRA      one frozen base for every role; A [r, in] and B [out, r] in f32 (f64 on f64 models)
//               with AdamW's moments (no master copy); the forward keeps A x [T, r] per adapted target
//               (dropout masks are drawn again in the backward, not kept); the backward builds
//               gradients for A and B only (no base weight's, no LM head's) and holds one branch's
//               transients (x in f32 on bf16 models, mask and masked input, d(A x), d x).
// Every sequence is taken at its longest (prompt + new tokens), so the plan is an upper bound of
// what the data can reach; test/memoryPlan.test.ts holds it within 15% of memoryStats() on the cpu.
import { LlamaConfig, llamaParameterShapes } from './config';

import { DEFAULT_HEAD_CHUNK } from './lmHead';
import { LORA_TARGETS, LoraTarget } from './lora';

export { LORA_TARGETS };
export type { LoraTarget };

// reward-model: planned as a preference command without a reference (its LM head rows over-count: it has none).
// ppo: planned like train for sampling (K per prompt) plus a frozen reward model the size of --model, and
// training on batch x K sequences, micro-batch sequences per forward (one optimizer update's share).
export type PlanCommand = 'train' | 'self-reward' | 'dpo' | 'sft' | 'augment' | 'reward-model' | 'ppo';

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

/**
 * The LM head's forward: one chunk's logits [C, V] in the model's dtype, and the [T] log-probs and
 * [T] row logsumexp (kept for the head's backward; f32, f64 on an f64 model: counted at 8 B each).
 */
function headBytes(c: LlamaConfig, T: number, b: number, chunk: number): number {
  return Math.min(chunk, T) * c.vocabSize * b + 2 * T * 8;
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
  const chunk = input.headChunk ?? DEFAULT_HEAD_CHUNK;
  const online = input.command === 'train' || input.command === 'self-reward';
  // ppo samples like the online commands and trains on batch x K sequences; no judge, a reward model instead.
  const ppo = input.command === 'ppo';
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
    if (online || ppo || input.command === 'dpo') add('persistent', `reference weights (${input.dtype}, frozen copy)`, weightBytes);
    if (online && input.separateJudge) add('persistent', `judge weights (${input.dtype}, frozen copy)`, weightBytes);
  }
  if (ppo) add('persistent', `reward model weights (${input.dtype}, frozen; planned as --model's size)`, weightBytes);
  const trainable = lora ? loraParameterCount(c, lora) : elements.total;
  if (lora) add('persistent', `LoRA adapters A, B (f32, r ${lora.r} on ${lora.targets.join(',')})`, trainable * 4);
  else if (input.dtype === 'bf16') add('persistent', 'f32 master weights', trainable * 4);
  add('persistent', `AdamW state (2 x ${stateBytes === 8 ? 'f64' : 'f32'})`, 2 * trainable * stateBytes);

  const D = c.hiddenSize;
  const F = c.intermediateSize;
  const V = c.vocabSize;
  const nLayers = c.numHiddenLayers;
  const qWidth = c.numAttentionHeads * c.headDim;
  const kvWidth = c.numKeyValueHeads * c.headDim;
  const shapesLora = loraShapes(c);
  const adapterBytes = input.dtype === 'f64' ? 8 : 4; // A and B: f32, f64 on f64 models
  const cachePerPosition = 2 * nLayers * kvWidth * b;
  const cacheLimit = input.maxCacheBytes ?? (input.device === 'cuda' && input.deviceMemory ? Math.floor(0.4 * input.deviceMemory) : 8 * 2 ** 30);
  // forwardCached (prefill, judging) holds a layer's input and output [N, D] (it frees each input once
  // the next layer has it) and one layer's tensors at a time: xn1, q and k before and after rope, v,
  // attn, o, h, hn, gate, up, swiglu, down (the layer's output is counted with the two).
  const cachedLayerPerRow = 4 * D + 3 * qWidth + 3 * kvWidth + 3 * F;
  const K = input.k ?? 1;

  // ---- generate (online): kv cache for a group of prompts x K samples
  let generate = 0;
  if (online || ppo) {
    const L = Math.min(c.maxPositionEmbeddings, input.promptLength + input.responseLength);
    const perPrompt = K * L * cachePerPosition;
    const group = Math.max(1, Math.min(input.batchSize, Math.floor(cacheLimit / perPrompt)));
    const kv = group * perPrompt;
    add('generate', `kv cache: ${group} prompt${group === 1 ? '' : 's'} x K ${K} slots x ${L} positions`, kv);
    // Prefill: a layer's input and output and its tensors over the group's prompts, and their K - 1 copies of k and v.
    const N = group * input.promptLength;
    const branch = lora ? N * Math.max(...lora.targets.map((t) => loraForwardTransient(...shapesLora[t], false))) : 0;
    const prefill = 2 * N * D * b + N * cachedLayerPerRow * b + 2 * N * (K - 1) * kvWidth * b + branch + 3 * N * 4;
    add('generate', `prefill of ${N} prompt tokens (one layer at a time)`, prefill);
    const sampled = 3 * group * K * V * Math.max(b, 4);
    add('generate', `sampled rows' logits (${group * K} x vocab ${V}, x3)`, sampled);
    generate = kv + prefill + sampled;
  }

  // ---- judge: sharedLastLogits over one preferences call's instructions (judge.ts, sharedPrefix.ts)
  let judge = 0;
  if (online || (input.command === 'dpo' && input.judgeLabels)) {
    const jb = input.judgeBatch ?? 16;
    const jl = Math.min(c.maxPositionEmbeddings, input.judgeMaxLength ?? c.maxPositionEmbeddings);
    // Instructions per preferences call: ranked and best-worst score every sample against a blank
    // (2 x batch x K), random pairs 2 x batch x K // 2; dpo labels 64 pairs (128 instructions) at a time.
    const instructions = online ? 2 * input.batchSize * (input.pairing === 'random' ? Math.max(1, Math.floor(K / 2)) : K) : 128;
    // A chunk: its members' cache (members x longest x bytes per position, within the bound) and at
    // most judgeBatch x maxLength computed rows; each member computes at least one row.
    const members = Math.max(1, Math.min(instructions, Math.floor(cacheLimit / (jl * cachePerPosition))));
    const rows = Math.min(jb * jl, members * jl);
    const cache = members * jl * cachePerPosition;
    add('judge', `judge kv cache: ${members} instructions x ${jl} positions (shared prefixes)`, cache);
    const shared = 2 * rows * D * b + rows * cachedLayerPerRow * b + 2 * Math.max(0, members * jl - rows) * kvWidth * b + 3 * rows * 4;
    // The unshared path (lastLogits): judgeBatch instructions, one layer's activations at a time.
    const unshared = inferenceForwardBytes(jb * jl, 0);
    const forward = Math.max(shared, unshared - cache);
    add('judge', `judge forward: ${rows} computed rows (one layer at a time)`, forward);
    judge = cache + forward;
    if (input.command === 'dpo' && !lora && input.separateJudge) {
      add('judge', `judge weights (${input.dtype}, loaded for labelling)`, weightBytes);
      judge += weightBytes;
    }
  }

  // ---- train: one micro-batch's forward and backward, gradients, LM head
  const preference = input.command !== 'sft' && input.command !== 'augment';
  const seqLength = Math.min(c.maxPositionEmbeddings, input.promptLength + input.responseLength);
  const pairsPerPrompt = input.pairing === 'best-worst' || input.command === 'self-reward' ? 1 : Math.floor(K / 2);
  const items = ppo ? input.batchSize * K : preference ? 2 * (online ? input.batchSize * pairsPerPrompt : input.batchSize) : input.batchSize;
  const perMicro = preference && !ppo ? 2 * input.microBatch : input.microBatch;
  const seqs = Math.min(items, perMicro);
  const several = items > perMicro;
  const T = seqs * seqLength;
  const dropout = Boolean(lora && lora.dropout && lora.dropout > 0);
  // LoRA keeps A x [T, r] (the adapter's dtype) per target; dropout masks are drawn again in the backward.
  const loraValuesPerToken = lora ? lora.targets.length * lora.r * adapterBytes : 0;
  const activationsOf = (recompute: boolean) => {
    const { values, lse } = layerValuesPerToken(c);
    const oneLayer = T * (values * b + lse * lseBytes + loraValuesPerToken);
    const inputsOnly = nLayers * T * D * b + 2 * T * D * b + 3 * T * 4; // each layer's x, then xFinal, hidden, the i32 ids
    const all = fullForwardBytes(c, T, b, lseBytes) + nLayers * T * loraValuesPerToken;
    // During a layer's backward: all layers, or the inputs plus the one layer recomputed; at the end (recompute) the inputs only.
    return recompute ? { during: inputsOnly + oneLayer - T * D * b, end: inputsOnly } : { during: all, end: all };
  };
  const acts = activationsOf(input.recompute);
  // Gradients as the backward builds them (model.backward, last layer first): the model's dtype
  // for full fine-tuning (the LM head's [V, D] first), A and B only with LoRA (the adapter's dtype).
  const perLayerParams = 2 * D + 2 * qWidth * D + 2 * kvWidth * D + 3 * F * D;
  const targetGrad = (t: LoraTarget) => (lora && lora.targets.includes(t) ? lora.r * (shapesLora[t][0] + shapesLora[t][1]) * adapterBytes : 0);
  const layerGrad = lora ? (loraParameterCount(c, lora) / nLayers) * adapterBytes : perLayerParams * b;
  const mlpGrad = lora ? targetGrad('gate') + targetGrad('up') + targetGrad('down') : 3 * F * D * b;
  const headGrad = lora ? 0 : V * D * b;
  const allGrads = lora ? trainable * adapterBytes : elements.total * b + (c.tieWordEmbeddings ? 2 * V * D * b : 0); // tied: the table's and the head's, then their sum
  const C = Math.min(chunk, T);
  const TD = T * D * b;
  const before = headGrad + (nLayers - 1) * layerGrad; // the gradients of every layer but the first
  // The moments of the backward with the most held: [name, activations, gradients, transients].
  const moments: [string, number, number, number][] = [
    // The head's transients, and the forward's [T] logsumexp it reads (8 B per token at most).
    ['LM head backward', acts.end, 0, (lora ? 0 : 3 * V * D * b) + C * V * b + C * D * b + TD + 8 * T],
    ['first layer MLP backward (d act, d gate, d up)', acts.during, before, T * (3 * F + 2 * D) * b],
    ['first layer MLP backward (d hn)', acts.during, before + mlpGrad, T * (2 * F + 5 * D) * b],
    ['first layer attention backward', acts.during, headGrad + nLayers * layerGrad, T * (5 * D + qWidth + 2 * kvWidth) * b],
    ['end of the backward', acts.end, allGrads, TD],
  ];
  if (lora) {
    // loraBranchBackward beside the base projection's d input (the branch's own tensors, see loraBackwardTransient).
    const bt = (ts: LoraTarget[]) => Math.max(0, ...ts.filter((t) => lora.targets.includes(t)).map((t) => loraBackwardTransient(...shapesLora[t], dropout)));
    moments.push(
      ['first layer down LoRA backward', acts.during, before, T * ((D + F) * b + bt(['down']))],
      ['first layer gate, up LoRA backward', acts.during, before + targetGrad('down'), T * ((4 * D + 2 * F) * b + bt(['gate', 'up']))],
      ['first layer o LoRA backward', acts.during, before + mlpGrad, T * ((D + qWidth) * b + bt(['o']))],
      ['first layer q, k, v LoRA backward', acts.during, before + mlpGrad + targetGrad('o'), T * ((4 * D + qWidth + 2 * kvWidth) * b + bt(['q', 'k', 'v']))],
    );
  }
  const [moment, momentActs, momentGrads, momentTransient] = moments.reduce((a, m) => (m[1] + m[2] + m[3] > a[1] + a[2] + a[3] ? m : a));
  const accumulated = several ? trainable * (lora ? adapterBytes : stateBytes) : 0;
  const backward = momentActs + momentGrads + momentTransient + accumulated;
  // Preference steps score the reference (and, with several micro-batches, the policy) first, before
  // any gradient exists: forward({ inference: true }) holds one layer's activations at a time.
  const scoring = inferenceForwardBytes(T, lora ? 1 : 0);
  const train = Math.max(backward, preference ? scoring : 0);
  if (preference && scoring > backward) {
    add('train', `scoring forward without gradients: one layer of ${seqs} seq x ${seqLength} tokens, then the LM head`, scoring);
  } else {
    add('train', `activations${input.recompute ? ' (recompute: layer inputs + 1 layer)' : ''}${lora ? ` (with A x, r ${lora.r} per target)` : ''}: ${seqs} seq x ${seqLength} tokens`, momentActs);
    add('train', `gradients (${lora ? `${adapterBytes === 8 ? 'f64' : 'f32'}, adapters only` : input.dtype}) at the peak: ${moment}`, momentGrads);
    add('train', `transient buffers then (d activations${lora ? ', LoRA branch' : ''}, LM head chunk ${C} x ${V})`, momentTransient);
    if (several) add('train', `gradient sums over ${Math.ceil(items / perMicro)} micro-batches (${lora ? (adapterBytes === 8 ? 'f64' : 'f32') : stateBytes === 4 ? 'f32' : 'f64'})`, accumulated);
  }
  if (preference) rows.push({ label: `(scoring forwards, one layer at a time: ${formatBytes(scoring)})`, bytes: scoring, phase: 'train', counted: false });
  const other = activationsOf(!input.recompute);
  rows.push({ label: `(activations ${input.recompute ? 'without' : 'with'} recompute would be ${formatBytes(other.during)})`, bytes: other.during, phase: 'train', counted: false });

  /**
   * A forward with inference: true over T tokens (scoring, the judge's unshared path), then the LM
   * head's log-probs: the i32 ids, the layer being computed (its input, activations, down and
   * output; with LoRA the down branch's own tensors instead of the output when larger), then
   * hidden, xFinal and the head's [chunk, V] logits with the [T] log-probs (f64 on the cpu).
   */
  function inferenceForwardBytes(tokens: number, withLora: number): number {
    const { values, lse } = layerValuesPerToken(c);
    const branch = withLora && lora ? Math.max(...lora.targets.map((t) => loraForwardTransient(...shapesLora[t], dropout) + shapesLora[t][1] * b)) : 0;
    const layer = tokens * (values * b + lse * lseBytes + Math.max(2 * D * b, branch));
    const head = 2 * tokens * D * b + headBytes(c, tokens, b, chunk);
    return 3 * tokens * 4 + Math.max(layer, head);
  }
  /** loraBranch's tensors per row for a target [in, out] (its scope's, at its end): x in f32 (bf16 models), the dropout mask and masked input, A x, B A x, its scaled copy, and y back in bf16. */
  function loraForwardTransient(inDim: number, outDim: number, drop: boolean): number {
    const r = lora ? lora.r : 0;
    return (b === 2 ? inDim * 4 : 0) + (drop ? 2 * inDim * adapterBytes : 0) + r * adapterBytes + 2 * outDim * adapterBytes + (b === 2 ? outDim * b : 0);
  }
  /** loraBranchBackward's tensors per row for a target [in, out]: d y scaled (and in f32), x in f32, the mask and masked input, d(A x), d x (masked, back in bf16), and the base d x beside it. */
  function loraBackwardTransient(inDim: number, outDim: number, drop: boolean): number {
    const r = lora ? lora.r : 0;
    return (b === 2 ? outDim * 4 + inDim * 4 + inDim * b : 0) + outDim * adapterBytes + (drop ? 3 * inDim * adapterBytes : 0) + r * adapterBytes + inDim * adapterBytes + inDim * b;
  }

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
