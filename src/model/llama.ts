// The Llama-family decoder composed of native ops: parameters in Hugging Face naming, a forward over
// packed variable-length batches that saves what the backward needs, an explicit backward, and an
// LM head that never holds the full [T, V] logits (chunks of rows: matmul, tokenLogprobs; the
// backward recomputes each chunk's logits).
//
// Reshapes ([T, H*Dh] <-> [T, H, Dh]) and the head's row chunks are zero-copy views
// (Tensor.reshape, Tensor.narrow); each chunk's gradient lands in its rows of d hidden on the device
// (copyInto a narrow view). With recompute, the forward keeps only each layer's input and the
// backward runs that layer's forward again just before its backward (activation checkpointing per
// layer: memory O(layers x T x D) plus one layer's activations).
//
// dtypes: f64 and f32 on the cpu; f32 and bf16 on cuda (bf16 weights and activations, f32
// accumulation inside every kernel; optim.ts keeps f32 master weights).
import * as ops from '../ops';
import { Device, Tensor, keep, randn, scope, tensor } from '../tensor';
import { DEFAULT_IGNORE_INDEX, PackedBatch, packResponses, packSequences } from './batch';
import { LlamaConfig, llamaParameterShapes } from './config';
import { LoadLlamaOptions, SaveLlamaOptions, readLlamaFolder, saveLlama } from './hub';
import { DEFAULT_HEAD_CHUNK, LmHeadOptions, linearLogprobsBackward, linearLogprobsWithLogsumexp } from './lmHead';
import { LORA_MODULES, LoraAdapter, LoraSaved, LoraTarget, loraBranch, loraBranchBackward, branchSeed, loraKey } from './lora';
import { configRopeInvFreq } from './rope';

export type LlamaDType = 'f32' | 'f64' | 'bf16';

export { PackedBatch, packSequences, llamaParameterShapes };

/**
 * Keys and values per layer, [slots, maxLength, numKeyValueHeads, headDim] each, in the model's dtype
 * and on its device (see src/generate/kvCache.ts for allocation with a memory bound).
 */
export interface KVCache {
  k: Tensor[];
  v: Tensor[];
}

export interface LlamaInitOptions {
  seed: number;
  /** Default 'f32'. */
  dtype?: LlamaDType;
  /** Default: 'cpu' for f64, else the default device. */
  device?: Device;
  /** Standard deviation of the normal weights (Hugging Face initializer_range). Default 0.02. */
  std?: number;
}

export interface ForwardOptions {
  /** Use these [T, D] input embeddings instead of looking the tokens up in model.embed_tokens. */
  inputEmbeddings?: Tensor;
  /**
   * Keep only each layer's input in the cache and recompute the layer's activations in the backward
   * (one extra forward per step; the activations of one layer at a time instead of all). Default false.
   */
  recompute?: boolean;
  /**
   * With a LoRA adapter whose dropout is > 0: the seed of this forward's dropout masks (training).
   * Absent: no dropout (scoring, sampling, judging). The backward draws the same masks again.
   */
  dropoutSeed?: number;
  /**
   * No backward will follow (scoring, judging): each layer's activations are freed as soon as the
   * next layer has its input, so the forward holds one layer's at a time. The cache cannot be used
   * for a backward. Default false.
   */
  inference?: boolean;
}

interface LayerCache {
  x: Tensor;
}

/** Per adapted target of a layer: what its branch's backward needs. */
type LayerLora = Partial<Record<LoraTarget, LoraSaved>>;

interface LayerActivations extends LayerCache {
  xn1: Tensor;
  /** Rotated q [T, H, Dh] and k [T, Hkv, Dh], and v [T, Hkv, Dh]: the attention's inputs. */
  q: Tensor;
  k: Tensor;
  v: Tensor;
  attn: Tensor;
  lse: Tensor;
  attnFlat: Tensor;
  h: Tensor;
  hn: Tensor;
  gate: Tensor;
  up: Tensor;
  act: Tensor;
  lora: LayerLora;
}

/** Frees a layer's activations (all but its input x when keepInput). */
function disposeLayer(l: LayerCache | LayerActivations, keepInput: boolean): void {
  for (const [k, t] of Object.entries(l)) {
    if (t instanceof Tensor) {
      if (!(keepInput && k === 'x')) t.dispose();
    } else if (k === 'lora') {
      for (const saved of Object.values(t as LayerLora)) saved?.ax.dispose();
    }
  }
}

/** What the backward needs: the inputs of each op of the forward. Dispose with disposeCache or a scope. */
export interface ForwardCache {
  tokens: Tensor;
  sequenceIds: Tensor;
  /** ops.sequenceSpans(batch.sequenceIds): every layer's attention, forward and backward, reads these. */
  spans: Tensor;
  positions: Tensor;
  T: number;
  inputEmbeddingsGiven: boolean;
  /** Per layer: all the activations, or only the input x when the forward ran with recompute. */
  layers: (LayerCache | LayerActivations)[];
  /** The input of model.norm. */
  xFinal: Tensor;
  /** ForwardOptions.dropoutSeed, for a recomputed layer's masks. */
  dropoutSeed: number | null;
  /** The forward ran with inference: true (no layer is kept; backward refuses this cache). */
  inference: boolean;
}

export interface ForwardResult {
  /** Final hidden states [T, D], after model.norm. */
  hidden: Tensor;
  cache: ForwardCache;
}

export interface Gradients {
  /** d L / d parameter for every parameter, under the same names. */
  grads: Map<string, Tensor>;
  /** d L / d input embeddings [T, D] (the rows the embedding lookup produced). */
  gradInputEmbeddings: Tensor;
}

export interface LossAndGrads extends Gradients {
  /** The per-token log-probs of the forward, [T] (0 on ignored targets). */
  tokenLogprobs: Float64Array;
}

/** The chunked LM head's options (see lmHead.ts). */
export type HeadOptions = LmHeadOptions;

/**
 * What headLogprobs keeps for a later headBackward on the same hidden tensor: the head forward's
 * row logsumexp ([T], f32; f64 for an f64 model) and what it was computed from, so that the
 * backward uses it only for the same targets, weight, chunk size and ignoreIndex.
 */
interface HeadForwardRecord {
  logsumexp: Tensor;
  targets: Tensor | Int32Array;
  /** Host targets' contents at the forward (an Int32Array can be changed in place between the calls). */
  targetValues: Int32Array | null;
  weight: Tensor;
  chunkSize: number | undefined;
  ignoreIndex: number | undefined;
}

/** Frees every tensor of a forward cache. */
export function disposeCache(cache: ForwardCache): void {
  for (const t of [cache.tokens, cache.sequenceIds, cache.spans, cache.positions, cache.xFinal]) t.dispose();
  for (const l of cache.layers) disposeLayer(l, false);
}

/** [T, a*b] <-> [T, a, b]: a view of the same memory. */
function reshape(x: Tensor, shape: number[]): Tensor {
  return x.reshape(shape);
}

function linear(x: Tensor, w: Tensor): Tensor {
  return ops.matmul(x, w, { transB: true });
}

/** a + b, disposing a and b (accumulation helper). */
function addInto(a: Tensor, b: Tensor): Tensor {
  const s = ops.add(a, b);
  a.dispose();
  b.dispose();
  return s;
}

/** A float tensor's values on the host: Float64Array for f64, else Float32Array. */
function toHost(t: Tensor): Float32Array | Float64Array {
  const a = t.toArray();
  if (a instanceof Float64Array || a instanceof Float32Array) return a;
  return Float32Array.from(a);
}

export class LlamaModel {
  readonly config: LlamaConfig;
  private readonly params: Map<string, Tensor>;
  private readonly ropeOpts: ops.RopeOptions;
  /** The LoRA adapter this model applies (LlamaModel.withAdapter), or null. */
  readonly adapter: LoraAdapter | null = null;
  /** False for a view made by withAdapter: the weights belong to the model it came from. */
  private ownsParams = true;
  private ownsAdapter = false;
  /** headLogprobs' records per hidden tensor, for headBackward (weak: they go with the hidden tensor). */
  private readonly headForwards = new WeakMap<Tensor, HeadForwardRecord>();

  /** A model over the given parameters (Hugging Face names; all of one dtype and device), checked against the config. */
  constructor(config: LlamaConfig, params: Map<string, Tensor>) {
    const { numAttentionHeads: H, numKeyValueHeads: Hkv } = config;
    if (!(H % Hkv === 0)) throw new RangeError(`LlamaModel: num_attention_heads ${H} is not a multiple of num_key_value_heads ${Hkv}`);
    if (config.attentionBias || config.mlpBias) throw new RangeError('LlamaModel: attention_bias / mlp_bias are true; this engine supports bias-free Llama layers only');
    let invFreq: Float64Array;
    try {
      invFreq = configRopeInvFreq(config);
    } catch (e) {
      throw new RangeError(`LlamaModel: ${(e as Error).message}`);
    }
    const shapes = llamaParameterShapes(config);
    let first: Tensor | undefined;
    for (const [name, shape] of shapes) {
      const t = params.get(name);
      if (!(t instanceof Tensor)) throw new TypeError(`LlamaModel: parameter ${name} is missing; expected a tensor of shape [${shape.join(', ')}]`);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new RangeError(`LlamaModel: parameter ${name} has shape [${t.shape.join(', ')}]; expected [${shape.join(', ')}]`);
      }
      first ??= t;
      if (t.dtype !== first.dtype || t.device !== first.device) {
        throw new TypeError(`LlamaModel: parameter ${name} is ${t.dtype} on ${t.device}; expected ${first.dtype} on ${first.device} like the others`);
      }
      // bf16 on the cpu is storage only (load, convert, save): the cpu kernels refuse it by name.
      if (t.dtype === 'i32') throw new TypeError(`LlamaModel: parameter ${name} is i32; expected f32, f64 or bf16`);
    }
    for (const name of params.keys()) {
      if (!shapes.has(name)) throw new RangeError(`LlamaModel: unexpected parameter ${name} for this config`);
    }
    this.config = config;
    this.params = new Map(Array.from(shapes.keys(), (n) => [n, params.get(n) as Tensor]));
    this.ropeOpts = { invFreq };
  }

  /**
   * This model's weights with a LoRA adapter applied (or none: the base), without a copy: policy,
   * reference and judge share one set of base weights. The view's dispose() frees nothing; the
   * adapter stays its creator's. Its trainable parameters are the adapter's; the base is frozen.
   * takeOwnership: the view owns the weights and the adapter instead (its dispose frees both), for a
   * model loaded as base + adapter folder.
   */
  withAdapter(adapter: LoraAdapter | null, opts: { takeOwnership?: boolean } = {}): LlamaModel {
    if (adapter) {
      if (adapter.numLayers !== this.config.numHiddenLayers) throw new RangeError(`LlamaModel.withAdapter: the adapter has ${adapter.numLayers} layers; the model ${this.config.numHiddenLayers}`);
      if (adapter.device !== this.device) throw new TypeError(`LlamaModel.withAdapter: the adapter is on ${adapter.device}; the model on ${this.device}`);
      const want = this.dtype === 'f64' ? 'f64' : 'f32';
      if (adapter.dtype !== want) throw new TypeError(`LlamaModel.withAdapter: the adapter is ${adapter.dtype}; a ${this.dtype} model takes ${want} adapters`);
    }
    const view = new LlamaModel(this.config, this.params);
    (view as { adapter: LoraAdapter | null }).adapter = adapter;
    view.ownsParams = opts.takeOwnership === true;
    view.ownsAdapter = opts.takeOwnership === true;
    if (opts.takeOwnership) this.ownsParams = false;
    return view;
  }

  /** What training updates: the adapter's A and B (PEFT keys) with an adapter, else every parameter. */
  trainableParameters(): Map<string, Tensor> {
    return this.adapter ? this.adapter.parameters() : this.parameters();
  }

  /** Loads a Hugging Face folder (config.json + safetensors): the checks of readLlamaFolder in ./hub, then the model's. */
  static async load(dir: string, opts: LoadLlamaOptions = {}): Promise<LlamaModel> {
    const { config, params } = await readLlamaFolder(dir, opts);
    try {
      return new LlamaModel(config, params);
    } catch (e) {
      for (const t of params.values()) t.dispose();
      throw e;
    }
  }

  /** Writes a Hugging Face folder atomically; see saveLlama in ./hub. */
  async save(dir: string, opts: SaveLlamaOptions = {}): Promise<void> {
    return saveLlama(this, dir, opts);
  }

  /** A randomly initialised model: normal(0, std) weights (a distinct seed per tensor), norm weights 1. */
  static init(config: LlamaConfig, opts: LlamaInitOptions): LlamaModel {
    const dtype = opts.dtype ?? 'f32';
    const device = opts.device ?? (dtype === 'f64' ? 'cpu' : undefined);
    const std = opts.std ?? 0.02;
    const params = new Map<string, Tensor>();
    let i = 0;
    for (const [name, shape] of llamaParameterShapes(config)) {
      i++;
      if (shape.length === 1) {
        const ones = dtype === 'f64' ? new Float64Array(shape[0]).fill(1) : new Float32Array(shape[0]).fill(1);
        params.set(name, keep(tensor(ones, shape, { dtype, device })));
      } else {
        const seed = ((opts.seed >>> 0) + 7919 * i) % 2147483647;
        params.set(name, keep(randn(shape, { dtype, device, seed, std })));
      }
    }
    return new LlamaModel(config, params);
  }

  /** The parameters by Hugging Face name (the model's own tensors: updating them in place updates the model). */
  parameters(): Map<string, Tensor> {
    return new Map(this.params);
  }

  get dtype(): LlamaDType {
    return this.param('model.norm.weight').dtype as LlamaDType;
  }

  get device(): Device {
    return this.param('model.norm.weight').device;
  }

  /** The LM head's weight [V, D] (model.embed_tokens.weight when tied). */
  get lmHead(): Tensor {
    return this.param(this.config.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight');
  }

  private param(name: string): Tensor {
    const t = this.params.get(name);
    if (!t) throw new RangeError(`LlamaModel: no parameter ${name}`);
    return t;
  }

  /** bf16 on the cpu is storage only (load, convert, save); say so before any op refuses it deep inside. */
  private checkComputable(op: string): void {
    if (this.dtype === 'bf16' && this.device === 'cpu') {
      throw new TypeError(`LlamaModel.${op}: the weights are bf16 on the cpu, which osp stores but does not compute with; load with { dtype: 'f32' } on the cpu (the weights are converted), or use cuda for bf16`);
    }
  }

  private checkBatch(batch: PackedBatch): number {
    this.checkComputable('forward');
    const T = batch.tokens.length;
    if (batch.sequenceIds.length !== T || batch.positions.length !== T) {
      throw new RangeError(`LlamaModel: batch has ${T} tokens but ${batch.sequenceIds.length} sequence ids and ${batch.positions.length} positions`);
    }
    this.checkPositions('forward', batch.positions);
    return T;
  }

  /**
   * Positions past the context, or past a sliding window (Mistral's sliding_window: attention is
   * full-causal here, which equals the window's only while a sequence fits it), are refused.
   */
  private checkPositions(op: string, positions: Int32Array): void {
    const c = this.config;
    let max = -1;
    for (let i = 0; i < positions.length; i++) if (positions[i] > max) max = positions[i];
    if (max >= c.maxPositionEmbeddings) {
      const i = positions.indexOf(max);
      throw new RangeError(`LlamaModel.${op}: positions[${i}] is ${max}; the model's context (max_position_embeddings) is ${c.maxPositionEmbeddings}`);
    }
    if (c.slidingWindow != null && max >= c.slidingWindow) {
      throw new RangeError(`LlamaModel.${op}: a sequence reaches position ${max}, beyond sliding_window ${c.slidingWindow}; sliding-window attention is not implemented (sequences up to ${c.slidingWindow} tokens are exact)`);
    }
  }

  /**
   * The decoder over a packed batch: the final hidden states [T, D] after model.norm, and the cache
   * the backward needs. The cache's tensors are the caller's (disposeCache, or run inside a scope).
   */
  forward(batch: PackedBatch, opts: ForwardOptions = {}): ForwardResult {
    const T = this.checkBatch(batch);
    const c = this.config;
    const { rmsNormEps: eps } = c;
    const device = this.device;
    const spans = ops.sequenceSpans(batch.sequenceIds, device); // first: it checks the ids
    const tokens = tensor(batch.tokens, [T], { dtype: 'i32', device });
    const sequenceIds = tensor(batch.sequenceIds, [T], { dtype: 'i32', device });
    const positions = tensor(batch.positions, [T], { dtype: 'i32', device });
    let x: Tensor;
    if (opts.inputEmbeddings) {
      const e = opts.inputEmbeddings;
      if (e.shape.length !== 2 || e.shape[0] !== T || e.shape[1] !== c.hiddenSize) {
        throw new RangeError(`LlamaModel.forward: inputEmbeddings has shape [${e.shape.join(', ')}]; expected [${T}, ${c.hiddenSize}]`);
      }
      x = e.contiguous();
    } else {
      x = ops.embedding(this.param('model.embed_tokens.weight'), tokens);
    }
    const layers: (LayerCache | LayerActivations)[] = [];
    const dropoutSeed = this.checkDropoutSeed(opts.dropoutSeed);
    for (let i = 0; i < c.numHiddenLayers; i++) {
      const { acts, out } = this.layerForward(i, x, positions, sequenceIds, spans, dropoutSeed);
      if (opts.inference) {
        disposeLayer(acts, false);
      } else if (opts.recompute) {
        disposeLayer(acts, true);
        layers.push({ x });
      } else {
        layers.push(acts);
      }
      x = out;
    }
    const hidden = ops.rmsNorm(x, this.param('model.norm.weight'), { eps });
    return { hidden, cache: { tokens, sequenceIds, spans, positions, T, inputEmbeddingsGiven: opts.inputEmbeddings !== undefined, layers, xFinal: x, dropoutSeed, inference: opts.inference === true } };
  }

  private checkDropoutSeed(seed: number | undefined): number | null {
    if (seed === undefined) return null;
    if (!(Number.isSafeInteger(seed) && seed >= 0)) throw new RangeError(`LlamaModel.forward: dropoutSeed is ${String(seed)}; expected a non-negative integer`);
    return seed;
  }

  /**
   * A layer's linear `target` of x [T, in]: x W^T, plus the LoRA branch where the adapter adapts it
   * (its backward's inputs go into `saved` when given; maskSeed null: no dropout).
   */
  private project(i: number, target: LoraTarget, x: Tensor, saved: LayerLora | null, maskSeed: number | null): Tensor {
    const base = linear(x, this.param(`model.layers.${i}.${LORA_MODULES[target]}.weight`));
    const a = this.adapter;
    const w = a?.weights(i, target);
    if (!a || !w) return base;
    const { y, saved: s } = loraBranch(x, w, a.scaling, a.spec.dropout, maskSeed === null ? null : branchSeed(maskSeed, i, target));
    if (saved) saved[target] = s;
    else s.ax.dispose();
    return addInto(base, y);
  }

  /** rope(reshape(y, [T, heads, Dh])), freeing y. */
  private rotate(y: Tensor, heads: number, positions: Tensor): Tensor {
    const r = reshape(y, [y.shape[0], heads, this.config.headDim]);
    const out = ops.rope(r, positions, this.ropeOpts);
    r.dispose();
    y.dispose();
    return out;
  }

  /** One decoder layer: x -> x + attn(norm(x)) -> h + mlp(norm(h)), with every activation its backward reads. */
  private layerForward(i: number, x: Tensor, positions: Tensor, sequenceIds: Tensor, spans: Tensor, dropoutSeed: number | null): { acts: LayerActivations; out: Tensor } {
    const { numAttentionHeads: H, numKeyValueHeads: Hkv, headDim: Dh, rmsNormEps: eps } = this.config;
    const T = x.shape[0];
    const p = (n: string) => this.param(`model.layers.${i}.${n}.weight`);
    const lora: LayerLora = {};
    const proj = (t: LoraTarget, inp: Tensor) => this.project(i, t, inp, lora, dropoutSeed);
    const xn1 = ops.rmsNorm(x, p('input_layernorm'), { eps });
    const q = this.rotate(proj('q', xn1), H, positions);
    const k = this.rotate(proj('k', xn1), Hkv, positions);
    const vFlat = proj('v', xn1);
    const v = reshape(vFlat, [T, Hkv, Dh]);
    vFlat.dispose();
    const { out: attn, logsumexp: lse } = ops.causalAttention(q, k, v, sequenceIds, { spans });
    const attnFlat = reshape(attn, [T, H * Dh]);
    const o = proj('o', attnFlat);
    const h = ops.add(x, o);
    o.dispose();
    const hn = ops.rmsNorm(h, p('post_attention_layernorm'), { eps });
    const gate = proj('gate', hn);
    const up = proj('up', hn);
    const act = ops.swiglu(gate, up);
    const down = proj('down', act);
    const out = ops.add(h, down);
    down.dispose();
    return { acts: { x, xn1, q, k, v, attn, lse, attnFlat, h, hn, gate, up, act, lora }, out };
  }

  /**
   * The decoder over a kv cache (no backward): tokens[i] sits at positions[i] of cache slot slots[i];
   * each layer writes its keys and values there, then query i attends to positions 0..positions[i]
   * of its slot. This is prefill (a packed batch of prompts, each in its own slot) and decode (one
   * token per active slot) alike. `copies` also writes row copies.rows[j]'s keys and values at
   * (copies.slots[j], copies.positions[j]): how K samples of one prompt share its prefill. Returns
   * the final hidden states [N, D] (after model.norm) of the rows in `outputRows` (default: all).
   */
  forwardCached(
    cache: KVCache,
    tokens: Int32Array,
    slots: Int32Array,
    positions: Int32Array,
    opts: { copies?: { rows: Int32Array; slots: Int32Array; positions: Int32Array }; outputRows?: Int32Array } = {},
  ): Tensor {
    const c = this.config;
    const { numAttentionHeads: H, numKeyValueHeads: Hkv, headDim: Dh, rmsNormEps: eps } = c;
    const N = tokens.length;
    if (slots.length !== N || positions.length !== N) throw new RangeError(`LlamaModel.forwardCached: ${N} tokens but ${slots.length} slots and ${positions.length} positions`);
    if (cache.k.length !== c.numHiddenLayers) throw new RangeError(`LlamaModel.forwardCached: the cache has ${cache.k.length} layers; expected ${c.numHiddenLayers}`);
    this.checkComputable('forwardCached');
    this.checkPositions('forwardCached', positions);
    const device = this.device;
    return scope(() => {
      const ids = tensor(tokens, [N], { dtype: 'i32', device });
      const slotT = tensor(slots, [N], { dtype: 'i32', device });
      const posT = tensor(positions, [N], { dtype: 'i32', device });
      const copies = opts.copies && opts.copies.rows.length > 0
        ? {
            rows: tensor(opts.copies.rows, [opts.copies.rows.length], { dtype: 'i32', device }),
            slots: tensor(opts.copies.slots, [opts.copies.slots.length], { dtype: 'i32', device }),
            positions: tensor(opts.copies.positions, [opts.copies.positions.length], { dtype: 'i32', device }),
          }
        : null;
      let x = ops.embedding(this.param('model.embed_tokens.weight'), ids);
      for (let i = 0; i < c.numHiddenLayers; i++) {
        const input = x;
        x = scope(() => {
          const p = (n: string) => this.param(`model.layers.${i}.${n}.weight`);
          const proj = (t: LoraTarget, inp: Tensor) => this.project(i, t, inp, null, null);
          const xn1 = ops.rmsNorm(x, p('input_layernorm'), { eps });
          const q = ops.rope(reshape(proj('q', xn1), [N, H, Dh]), posT, this.ropeOpts);
          const k = ops.rope(reshape(proj('k', xn1), [N, Hkv, Dh]), posT, this.ropeOpts);
          const v = reshape(proj('v', xn1), [N, Hkv, Dh]);
          ops.kvCacheWrite(cache.k[i], k, slotT, posT);
          ops.kvCacheWrite(cache.v[i], v, slotT, posT);
          if (copies) {
            const gather = (t: Tensor) => reshape(ops.embedding(reshape(t, [N, Hkv * Dh]), copies.rows), [copies.rows.shape[0], Hkv, Dh]);
            ops.kvCacheWrite(cache.k[i], gather(k), copies.slots, copies.positions);
            ops.kvCacheWrite(cache.v[i], gather(v), copies.slots, copies.positions);
          }
          const attn = ops.cachedAttention(q, cache.k[i], cache.v[i], slotT, posT);
          const h = ops.add(x, proj('o', reshape(attn, [N, H * Dh])));
          const hn = ops.rmsNorm(h, p('post_attention_layernorm'), { eps });
          return ops.add(h, proj('down', ops.swiglu(proj('gate', hn), proj('up', hn))));
        });
        input.dispose(); // one layer's output held at a time, not every layer's until the end
      }
      if (opts.outputRows) x = ops.embedding(x, tensor(opts.outputRows, [opts.outputRows.length], { dtype: 'i32', device }));
      return ops.rmsNorm(x, this.param('model.norm.weight'), { eps });
    });
  }

  /** Logits [N, V] of hidden states [N, D] through the LM head (for the few rows sampling needs). */
  headLogits(hidden: Tensor): Tensor {
    return linear(hidden, this.lmHead);
  }

  /**
   * The backward of forward given gradHidden = d L / d hidden [T, D]: gradients of every parameter
   * (the LM head's not included: see headBackward / lossAndGrads) and of the input embeddings.
   * embed_tokens gets the lookup's gradient unless the forward was given inputEmbeddings. With a
   * LoRA adapter only A and B get gradients (PEFT keys, adapter order); the base weights none.
   */
  backward(cache: ForwardCache, gradHidden: Tensor, opts: { weightGrads?: boolean } = {}): Gradients {
    const c = this.config;
    const { numAttentionHeads: H, numKeyValueHeads: Hkv, headDim: Dh, rmsNormEps: eps } = c;
    const T = cache.T;
    const adapter = this.adapter;
    // With an adapter the base is frozen: no base weight gets a gradient (none is even allocated).
    // weightGrads false: a frozen model's input gradients alone (the bench's LoRA baseline).
    const trainBase = adapter === null && opts.weightGrads !== false;
    if (cache.inference) throw new RangeError('LlamaModel.backward: the forward ran with inference: true and kept no activations; run it without to take a backward');
    const grads = new Map<string, Tensor>();
    const normGrad = (n: string, g: Tensor) => (trainBase ? grads.set(n, g) : g.dispose());
    const fin = ops.rmsNormBackward(cache.xFinal, this.param('model.norm.weight'), gradHidden, { eps });
    normGrad('model.norm.weight', fin.gradWeight);
    let dx = fin.gradInput;
    for (let i = c.numHiddenLayers - 1; i >= 0; i--) {
      const cached = cache.layers[i];
      let recomputed: LayerActivations | null = null;
      if (!('xn1' in cached)) {
        const r = this.layerForward(i, cached.x, cache.positions, cache.sequenceIds, cache.spans, cache.dropoutSeed);
        r.out.dispose();
        recomputed = r.acts;
      }
      const L = recomputed ?? (cached as LayerActivations);
      const name = (n: string) => `model.layers.${i}.${n}.weight`;
      const p = (n: string) => this.param(name(n));
      /** Backward of project(i, target, x): d x from dy, and the gradients of W (or of A and B) into grads. */
      const back = (target: LoraTarget, x: Tensor, dy: Tensor): Tensor => {
        const module = LORA_MODULES[target];
        const dxBase = ops.matmul(dy, p(module));
        if (trainBase) grads.set(name(module), ops.matmul(dy, x, { transA: true }));
        const w = adapter?.weights(i, target);
        if (!adapter || !w) return dxBase;
        const r = loraBranchBackward(x, dy, w, adapter.scaling, adapter.spec.dropout, L.lora[target] as LoraSaved);
        grads.set(loraKey(i, target, 'A'), r.dA);
        grads.set(loraKey(i, target, 'B'), r.dB);
        return addInto(dxBase, r.dx);
      };
      const dxOut = dx;
      // MLP: x' = h + down(swiglu(gate(hn), up(hn))), hn = rmsnorm(h).
      const dAct = back('down', L.act, dxOut);
      const sw = ops.swigluBackward(L.gate, L.up, dAct);
      dAct.dispose();
      const dhn = addInto(back('gate', L.hn, sw.gradGate), back('up', L.hn, sw.gradUp));
      sw.gradGate.dispose();
      sw.gradUp.dispose();
      const post = ops.rmsNormBackward(L.h, p('post_attention_layernorm'), dhn, { eps });
      dhn.dispose();
      normGrad(name('post_attention_layernorm'), post.gradWeight);
      const dh = ops.add(dxOut, post.gradInput);
      post.gradInput.dispose();
      if (dxOut !== gradHidden) dxOut.dispose();
      // Attention: h = x + o(attn(rope(q(xn1)), rope(k(xn1)), v(xn1))), xn1 = rmsnorm(x).
      const dAttnFlat = back('o', L.attnFlat, dh);
      const dAttn = reshape(dAttnFlat, [T, H, Dh]);
      dAttnFlat.dispose();
      const ag = ops.causalAttentionBackward(L.q, L.k, L.v, cache.sequenceIds, L.attn, L.lse, dAttn, { spans: cache.spans });
      dAttn.dispose();
      const flat = (t: Tensor, heads: number, rotated: boolean): Tensor => {
        const r = rotated ? ops.ropeBackward(t, cache.positions, this.ropeOpts) : t;
        const out = reshape(r, [T, heads * Dh]);
        if (r !== t) r.dispose();
        t.dispose();
        return out;
      };
      const dq = flat(ag.gradQ, H, true);
      const dk = flat(ag.gradK, Hkv, true);
      const dv = flat(ag.gradV, Hkv, false);
      let dxn1 = addInto(back('q', L.xn1, dq), back('k', L.xn1, dk));
      dxn1 = addInto(dxn1, back('v', L.xn1, dv));
      dq.dispose();
      dk.dispose();
      dv.dispose();
      const inp = ops.rmsNormBackward(L.x, p('input_layernorm'), dxn1, { eps });
      dxn1.dispose();
      normGrad(name('input_layernorm'), inp.gradWeight);
      dx = addInto(dh, inp.gradInput);
      if (recomputed) disposeLayer(recomputed, true);
    }
    if (trainBase) {
      const table = this.param('model.embed_tokens.weight');
      if (cache.inputEmbeddingsGiven) {
        grads.set('model.embed_tokens.weight', ops.affine(table, 0));
      } else {
        grads.set('model.embed_tokens.weight', ops.embeddingBackward(dx, cache.tokens, c.vocabSize));
      }
    }
    // Same order as trainableParameters().
    const ordered = new Map<string, Tensor>();
    for (const n of this.trainableParameters().keys()) {
      const g = grads.get(n);
      if (g) ordered.set(n, g);
    }
    return { grads: ordered, gradInputEmbeddings: dx };
  }

  /**
   * Per-token log-probs [T] of targets through the LM head, chunk by chunk (never the full [T, V]
   * logits): a tensor on the model's device (f64 for an f64 model, else f32); nothing is read back.
   * Also keeps the head's row logsumexp ([T]) for headBackward on this same hidden tensor, which
   * then reads each recomputed chunk of logits once instead of twice. That tensor lives in the
   * caller's scope (freed with it, or by headBackward, which consumes it).
   */
  headLogprobs(hidden: Tensor, targets: Tensor | Int32Array, opts: HeadOptions = {}): Tensor {
    const r = scope(() => linearLogprobsWithLogsumexp(hidden, this.lmHead, this.targetTensor(targets), opts));
    this.headForwards.get(hidden)?.logsumexp.dispose();
    this.headForwards.set(hidden, {
      logsumexp: r.logsumexp,
      targets,
      targetValues: targets instanceof Int32Array ? targets.slice() : null,
      weight: this.lmHead,
      chunkSize: opts.chunkSize,
      ignoreIndex: opts.ignoreIndex,
    });
    return r.logprobs;
  }

  /**
   * Backward of headLogprobs for L = sum_t gradLogprobs[t] logprob[t]: recomputes each chunk's
   * logits; returns d L / d hidden [T, D] and d L / d W [V, D]. gradLogprobs may be a device tensor
   * (f64 for an f64 model, else f32) or host numbers. After headLogprobs on the same hidden tensor,
   * targets (the same tensor or array, unchanged), chunk size and ignoreIndex, it uses that
   * forward's logsumexp (the recomputed logits are the same GEMM, so it is exact) and frees it;
   * otherwise it recomputes the logsumexp. Like any forward/backward pair, it assumes the head
   * weight was not updated in place in between.
   */
  headBackward(hidden: Tensor, targets: Tensor | Int32Array, gradLogprobs: Tensor | ArrayLike<number>, opts: HeadOptions = {}): { gradHidden: Tensor; gradWeight: Tensor | null } {
    const fwd = this.takeHeadForward(hidden, targets, opts);
    try {
      return scope(() =>
        linearLogprobsBackward(hidden, this.lmHead, this.targetTensor(targets), this.gradTensor(gradLogprobs, hidden.shape[0]), { ...opts, logsumexp: fwd?.logsumexp }),
      );
    } finally {
      fwd?.logsumexp.dispose();
    }
  }

  /** The forward record of hidden if it matches this backward (removed either way), else null. */
  private takeHeadForward(hidden: Tensor, targets: Tensor | Int32Array, opts: HeadOptions): HeadForwardRecord | null {
    const r = this.headForwards.get(hidden);
    if (!r) return null;
    this.headForwards.delete(hidden);
    const sameTargets =
      r.targets === targets && (r.targetValues === null || (targets instanceof Int32Array && r.targetValues.every((t, i) => t === targets[i])));
    const sameChunks = (r.chunkSize ?? DEFAULT_HEAD_CHUNK) === (opts.chunkSize ?? DEFAULT_HEAD_CHUNK);
    const sameIgnore = (r.ignoreIndex ?? DEFAULT_IGNORE_INDEX) === (opts.ignoreIndex ?? DEFAULT_IGNORE_INDEX);
    if (!r.logsumexp.disposed && sameTargets && r.weight === this.lmHead && sameChunks && sameIgnore) return r;
    r.logsumexp.dispose();
    return null;
  }

  private targetTensor(targets: Tensor | Int32Array): Tensor {
    if (targets instanceof Tensor) return targets;
    if (!(targets instanceof Int32Array)) throw new TypeError('LlamaModel: targets is not an Int32Array or an i32 Tensor');
    return tensor(targets, [targets.length], { dtype: 'i32', device: this.device });
  }

  private gradTensor(g: Tensor | ArrayLike<number>, T: number): Tensor {
    if (g instanceof Tensor) return g;
    if (g.length !== T) throw new RangeError(`LlamaModel: ${g.length} token gradients for ${T} tokens`);
    const dtype = this.dtype === 'f64' ? 'f64' : 'f32';
    return tensor(dtype === 'f64' ? Float64Array.from(g) : Float32Array.from(g), [T], { dtype, device: this.device });
  }

  /** Per-token log-probs log p(targets[t] | tokens up to t) over a packed batch, on the host (one read); ignored targets give 0. */
  tokenLogprobs(batch: PackedBatch, targets: Int32Array, opts: HeadOptions & ForwardOptions = {}): Float64Array {
    return scope(() => Float64Array.from(this.headLogprobs(this.forward(batch, { ...opts, inference: true }).hidden, targets, opts).toArray()));
  }

  /**
   * Forward and backward of L = sum(gradTokenLogprobs * tokenLogprobs): the log-probs (read to the
   * host: a convenience for tests and users; training uses forward + headLogprobs +
   * gradientsFromHead, which read nothing) and the gradients of every parameter (tied embeddings
   * get both uses) and of the input embeddings. The returned tensors are the caller's.
   */
  lossAndGrads(batch: PackedBatch, targets: Int32Array, gradTokenLogprobs: Tensor | ArrayLike<number>, opts: HeadOptions & ForwardOptions = {}): LossAndGrads {
    return scope(() => {
      const fwd = this.forward(batch, opts);
      // The head's forward first: its logsumexp spares the head's backward a read of every logit.
      const logprobs = Float64Array.from(this.headLogprobs(fwd.hidden, targets, opts).toArray());
      const grads = this.gradientsFromHead(fwd, targets, gradTokenLogprobs, opts);
      return { tokenLogprobs: logprobs, ...grads };
    });
  }

  /**
   * The second half of lossAndGrads, for callers that need the forward's log-probs before they know
   * d L / d logprobs (a loss over whole sequences): the head's backward (recomputing its logits chunk
   * by chunk), then every layer's, with the LM head's gradient added where it belongs (embed_tokens
   * when tied). The forward's cache is the caller's to free (run both halves in one scope).
   */
  gradientsFromHead(fwd: ForwardResult, targets: Tensor | Int32Array, gradTokenLogprobs: Tensor | ArrayLike<number>, opts: HeadOptions = {}): Gradients {
    // A frozen head (LoRA) needs only d hidden.
    const head = this.headBackward(fwd.hidden, targets, gradTokenLogprobs, { ...opts, weightGrad: this.adapter === null });
    const { grads, gradInputEmbeddings } = this.backward(fwd.cache, head.gradHidden);
    head.gradHidden.dispose();
    if (head.gradWeight === null) return { grads, gradInputEmbeddings };
    if (this.config.tieWordEmbeddings) {
      const e = grads.get('model.embed_tokens.weight') as Tensor;
      grads.set('model.embed_tokens.weight', ops.add(e, head.gradWeight));
      e.dispose();
      head.gradWeight.dispose();
      return { grads, gradInputEmbeddings };
    }
    const ordered = new Map<string, Tensor>();
    for (const n of this.params.keys()) ordered.set(n, n === 'lm_head.weight' ? (head.gradWeight as Tensor) : (grads.get(n) as Tensor));
    return { grads: ordered, gradInputEmbeddings };
  }

  /**
   * Full logits per sequence, for users and tests: each sequence's [len, V] logits, row-major (len * V
   * values; Float64Array for an f64 model, else Float32Array). The sequences are packed into one batch
   * (attention stays within each sequence); every row goes through the LM head, so this holds
   * [len, V] per sequence: for scoring use tokenLogprobs / sequenceLogprobs, for the last position
   * lastLogits.
   */
  logits(sequences: Int32Array[]): (Float32Array | Float64Array)[] {
    this.checkSequences('logits', sequences, false);
    const total = sequences.reduce((n, s) => n + s.length, 0);
    const empty = () => (this.dtype === 'f64' ? new Float64Array(0) : new Float32Array(0));
    if (total === 0) return sequences.map(empty);
    return scope(() => {
      const { hidden } = this.forward(packSequences(sequences), { inference: true });
      const W = this.lmHead;
      let row = 0;
      return sequences.map((s) => {
        const start = row;
        row += s.length;
        if (s.length === 0) return empty();
        return scope(() => toHost(linear(hidden.narrow(0, start, s.length), W)));
      });
    });
  }

  /**
   * The last position's logits of each (non-empty) sequence: all V of them, or only the vocabulary
   * columns given (in that order; e.g. the judge's two answer tokens). Only the last hidden row of
   * each sequence goes through the LM head (with columns, only those rows of the head's weight).
   * Float64Array for an f64 model, else Float32Array.
   */
  lastLogits(sequences: Int32Array[], columns?: Int32Array): (Float32Array | Float64Array)[] {
    this.checkSequences('lastLogits', sequences, true);
    const V = this.config.vocabSize;
    if (columns !== undefined) {
      if (!(columns instanceof Int32Array) || columns.length === 0) throw new TypeError('LlamaModel.lastLogits: columns is not a non-empty Int32Array');
      columns.forEach((c, i) => {
        if (!(c >= 0 && c < V)) throw new RangeError(`LlamaModel.lastLogits: columns[${i}] is ${c}; expected a vocabulary index in [0, ${V})`);
      });
    }
    if (sequences.length === 0) return [];
    return scope(() => {
      const { hidden } = this.forward(packSequences(sequences), { inference: true });
      const W = columns === undefined ? this.lmHead : ops.embedding(this.lmHead, tensor(columns, [columns.length], { dtype: 'i32', device: this.device }));
      let row = 0;
      return sequences.map((s) => {
        row += s.length;
        return scope(() => toHost(linear(hidden.narrow(0, row - 1, 1), W)));
      });
    });
  }

  private checkSequences(op: string, sequences: Int32Array[], nonEmpty: boolean): void {
    if (!Array.isArray(sequences)) throw new TypeError(`LlamaModel.${op}: sequences is not an array of Int32Array`);
    const V = this.config.vocabSize;
    sequences.forEach((s, i) => {
      if (!(s instanceof Int32Array)) throw new TypeError(`LlamaModel.${op}: sequences[${i}] is not an Int32Array`);
      if (nonEmpty && s.length === 0) throw new RangeError(`LlamaModel.${op}: sequences[${i}] is empty; expected at least one token`);
      for (let j = 0; j < s.length; j++) {
        if (!(s[j] >= 0 && s[j] < V)) throw new RangeError(`LlamaModel.${op}: sequences[${i}][${j}] is ${s[j]}; expected a token id in [0, ${V})`);
      }
    });
  }

  /**
   * Sum of the response tokens' log-probs per pair, prompt tokens excluded: prompt and response are
   * packed as one sequence; each response token is scored from the position before it. Needs a
   * non-empty prompt (the first response token is predicted from the last prompt token).
   */
  sequenceLogprobs(pairs: { prompt: Int32Array; response: Int32Array }[], opts: HeadOptions = {}): Float64Array {
    pairs.forEach((pr, i) => {
      if (pr.prompt.length === 0) throw new RangeError(`LlamaModel.sequenceLogprobs: pairs[${i}].prompt is empty; expected at least one token to predict the response from`);
    });
    const { batch, targets, scoreIds } = packResponses(pairs);
    return scope(() => {
      const lp = this.headLogprobs(this.forward(batch, { inference: true }).hidden, targets, { ...opts, ignoreIndex: DEFAULT_IGNORE_INDEX });
      const ids = tensor(scoreIds, [scoreIds.length], { dtype: 'i32', device: this.device });
      return Float64Array.from(ops.sequenceLogprobs(lp, ids, pairs.length).toArray());
    });
  }

  /** Frees every parameter tensor (nothing for a withAdapter view); the model cannot be used afterwards. */
  dispose(): void {
    if (this.ownsParams) for (const t of this.params.values()) t.dispose();
    if (this.ownsAdapter) this.adapter?.dispose();
  }
}

/** Loads a Hugging Face model folder (LlamaModel.load). */
export function loadLlama(dir: string, opts: LoadLlamaOptions = {}): Promise<LlamaModel> {
  return LlamaModel.load(dir, opts);
}
