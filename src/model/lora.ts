// LoRA adapters (Hu et al. 2021) in PEFT's format: for a frozen linear y = x W^T, the adapted layer is
//   y = x W^T + scaling * (dropout(x) A^T) B^T,   A [r, in], B [out, r], scaling = alpha / r,
// computed as two thin GEMMs through [T, r]: B A is never materialised. B starts at zero (so a new
// adapter leaves the model's outputs bit-identical) and A as PEFT initialises it, Kaiming-uniform
// with a = sqrt(5): U(-1/sqrt(in), 1/sqrt(in)).
//
// This file holds the adapter's tensors, its PEFT naming (adapter_config.json +
// adapter_model.safetensors, keys base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight),
// the forward and backward of one adapted branch, and the merge W + scaling B A. LlamaModel
// (llama.ts) calls loraBranch / loraBranchBackward where a target is adapted; a model and its
// adapter-free base share one copy of the weights (LlamaModel.withAdapter).
//
// dtypes: the adapter is f32 (f64 for an f64 model, for finite differences). On a bf16 model the
// branch runs in f32: x and dy are converted once per layer and the result is rounded to bf16 when
// it joins the base output, as PEFT does when its adapter weights are f32.
//
// Dropout is inverted dropout on the branch's input, from a counter-based mask (dropoutMask): the
// backward draws the same mask from the same seed instead of keeping it, and a resumed run draws
// the same masks as the uninterrupted one (seeds derive from the run seed and the step).
import * as fs from 'fs';
import * as path from 'path';
import * as ops from '../ops';
import { Device, Tensor, dropoutMask, keep, randu, scope, tensor, zeros } from '../tensor';
import { writeFileAtomicSync, writeFolderAtomically } from '../util/atomicWrite';
import { LlamaConfig, llamaParameterShapes } from './config';
import { readSafetensors, writeSafetensors, TensorToWrite } from './safetensors';

export type LoraTarget = 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down';

/** Every target, in the order of a layer's forward. */
export const LORA_TARGETS: readonly LoraTarget[] = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];

/** The Hugging Face module each target adapts, inside model.layers.{i}. */
export const LORA_MODULES: Record<LoraTarget, string> = {
  q: 'self_attn.q_proj', k: 'self_attn.k_proj', v: 'self_attn.v_proj', o: 'self_attn.o_proj', gate: 'mlp.gate_proj', up: 'mlp.up_proj', down: 'mlp.down_proj',
};

export interface LoraSpec {
  /** Rank, an integer >= 1. */
  r: number;
  /** scaling = alpha / r. */
  alpha: number;
  /** Dropout probability on each adapted branch's input, in [0, 1). */
  dropout: number;
  targets: readonly LoraTarget[];
}

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

/** PEFT's key of a layer's A or B. */
export function loraKey(layer: number, target: LoraTarget, which: 'A' | 'B'): string {
  return `base_model.model.model.layers.${layer}.${LORA_MODULES[target]}.lora_${which}.weight`;
}

/** Checks a spec, naming the bad field and what was expected. */
export function checkLoraSpec(spec: LoraSpec, where = 'lora'): LoraSpec {
  if (!(Number.isInteger(spec.r) && spec.r >= 1)) throw new RangeError(`${where}: r is ${String(spec.r)}; expected an integer >= 1`);
  if (!(Number.isFinite(spec.alpha) && spec.alpha > 0)) throw new RangeError(`${where}: alpha is ${String(spec.alpha)}; expected a number > 0`);
  if (!(Number.isFinite(spec.dropout) && spec.dropout >= 0 && spec.dropout < 1)) throw new RangeError(`${where}: dropout is ${String(spec.dropout)}; expected a number in [0, 1)`);
  if (!Array.isArray(spec.targets) || spec.targets.length === 0) throw new RangeError(`${where}: targets is empty; expected some of ${LORA_TARGETS.join(', ')}`);
  for (const t of spec.targets) if (!LORA_TARGETS.includes(t)) throw new RangeError(`${where}: target ${String(t)} is not one of ${LORA_TARGETS.join(', ')}`);
  if (new Set(spec.targets).size !== spec.targets.length) throw new RangeError(`${where}: targets name one module twice`);
  return spec;
}

/** [out, in] of the linear a target adapts. */
function linearShape(config: LlamaConfig, layer: number, target: LoraTarget): [number, number] {
  const s = llamaParameterShapes(config).get(`model.layers.${layer}.${LORA_MODULES[target]}.weight`) as number[];
  return [s[0], s[1]];
}

/** The adapter's dtype for a model's: f64 for f64, else f32 (bf16 models get f32 adapters). */
export function adapterDtype(modelDtype: string): 'f32' | 'f64' {
  return modelDtype === 'f64' ? 'f64' : 'f32';
}

/** An adapter folder: adapter_config.json beside adapter_model.safetensors. */
export function isAdapterFolder(dir: string): boolean {
  return fs.existsSync(path.join(dir, ADAPTER_CONFIG));
}

/** The PEFT task an adapter was made for: a causal LM (osp's policies and judges) or a sequence classifier (reward models). */
export type AdapterTask = 'CAUSAL_LM' | 'SEQ_CLS';

/** adapter_config.json's spec and base folder, checked: a LoRA adapter for `task` (default a causal LM), in PEFT's fields. */
export function readAdapterConfig(dir: string, task: AdapterTask = 'CAUSAL_LM'): { spec: LoraSpec; baseModel: string | null } {
  const file = path.join(dir, ADAPTER_CONFIG);
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${file}: cannot read the adapter's config: ${(e as Error).message}`);
  }
  if (j.peft_type !== 'LORA') throw new Error(`${file}: peft_type is ${JSON.stringify(j.peft_type)}; expected "LORA"`);
  if ((j.task_type !== undefined || task !== 'CAUSAL_LM') && j.task_type !== task) throw new Error(`${file}: task_type is ${JSON.stringify(j.task_type)}; expected "${task}"`);
  if (j.bias !== undefined && j.bias !== 'none') throw new Error(`${file}: bias is ${JSON.stringify(j.bias)}; osp adapters have no bias terms (expected "none")`);
  if (j.fan_in_fan_out === true) throw new Error(`${file}: fan_in_fan_out is true; expected false (Llama's linears store [out, in])`);
  if (j.use_dora === true || j.use_rslora === true) throw new Error(`${file}: DoRA / rsLoRA adapters are not supported; expected plain LoRA`);
  const modules = j.target_modules;
  if (!Array.isArray(modules) || modules.length === 0) throw new Error(`${file}: target_modules is ${JSON.stringify(modules)}; expected a list such as ["q_proj", "v_proj"]`);
  const targets = modules.map((m) => {
    const t = LORA_TARGETS.find((x) => LORA_MODULES[x].endsWith(`.${String(m)}`));
    if (!t) throw new Error(`${file}: target module ${JSON.stringify(m)} is not one of ${LORA_TARGETS.map((x) => LORA_MODULES[x].split('.')[1]).join(', ')}`);
    return t;
  });
  const spec = { r: Number(j.r), alpha: Number(j.lora_alpha), dropout: Number(j.lora_dropout ?? 0), targets: LORA_TARGETS.filter((t) => targets.includes(t)) };
  try {
    checkLoraSpec(spec, file);
  } catch (e) {
    throw new Error((e as Error).message);
  }
  return { spec, baseModel: typeof j.base_model_name_or_path === 'string' ? j.base_model_name_or_path : null };
}

export class LoraAdapter {
  readonly spec: LoraSpec;
  readonly scaling: number;
  readonly numLayers: number;
  private readonly tensors: Map<string, Tensor>;

  /** An adapter over the given A and B tensors (PEFT keys), checked against the model config. */
  constructor(config: LlamaConfig, spec: LoraSpec, tensors: Map<string, Tensor>) {
    checkLoraSpec(spec);
    let first: Tensor | undefined;
    for (let i = 0; i < config.numHiddenLayers; i++) {
      for (const t of spec.targets) {
        const [out, inp] = linearShape(config, i, t);
        for (const [which, shape] of [['A', [spec.r, inp]], ['B', [out, spec.r]]] as const) {
          const key = loraKey(i, t, which);
          const x = tensors.get(key);
          if (!(x instanceof Tensor)) throw new RangeError(`LoraAdapter: ${key} is missing; expected a tensor of shape [${shape.join(', ')}]`);
          if (x.shape.join(',') !== shape.join(',')) throw new RangeError(`LoraAdapter: ${key} has shape [${x.shape.join(', ')}]; expected [${shape.join(', ')}] (r ${spec.r})`);
          if (x.dtype !== 'f32' && x.dtype !== 'f64') throw new TypeError(`LoraAdapter: ${key} is ${x.dtype}; expected f32 (or f64)`);
          first ??= x;
          if (x.dtype !== first.dtype || x.device !== first.device) throw new TypeError(`LoraAdapter: ${key} is ${x.dtype} on ${x.device}; expected ${first.dtype} on ${first.device} like the others`);
        }
      }
    }
    const expected = config.numHiddenLayers * spec.targets.length * 2;
    if (tensors.size !== expected) {
      const extra = Array.from(tensors.keys()).find((k) => !spec.targets.some((t) => k.includes(`.${LORA_MODULES[t]}.lora_`)) || !/layers\.(\d+)\./.test(k) || Number(/layers\.(\d+)\./.exec(k)![1]) >= config.numHiddenLayers);
      throw new RangeError(`LoraAdapter: ${tensors.size} tensors, expected ${expected} (2 per target per layer)${extra ? `; unexpected ${extra}` : ''}`);
    }
    this.spec = { ...spec, targets: [...spec.targets] };
    this.scaling = spec.alpha / spec.r;
    this.numLayers = config.numHiddenLayers;
    // Canonical order (layer, target, A then B), whatever the file's: the optimizer's slots and the
    // gradient norm's summation follow it, so a resumed run adds in the same order as the first.
    this.tensors = new Map();
    for (let i = 0; i < config.numHiddenLayers; i++) {
      for (const t of LORA_TARGETS) {
        if (!spec.targets.includes(t)) continue;
        for (const which of ['A', 'B'] as const) this.tensors.set(loraKey(i, t, which), tensors.get(loraKey(i, t, which)) as Tensor);
      }
    }
  }

  /** A new adapter: A Kaiming-uniform as PEFT (bound 1 / sqrt(in); a distinct seed per tensor), B zero. */
  static init(config: LlamaConfig, spec: LoraSpec, opts: { seed: number; dtype?: 'f32' | 'f64'; device?: Device }): LoraAdapter {
    checkLoraSpec(spec);
    const dtype = opts.dtype ?? 'f32';
    const device = opts.device ?? 'cpu';
    const tensors = new Map<string, Tensor>();
    let n = 0;
    try {
      for (let i = 0; i < config.numHiddenLayers; i++) {
        for (const t of spec.targets) {
          const [out, inp] = linearShape(config, i, t);
          const bound = 1 / Math.sqrt(inp);
          const seed = ((opts.seed >>> 0) + 104729 * ++n) % 2147483647;
          tensors.set(loraKey(i, t, 'A'), keep(randu([spec.r, inp], { dtype, device, seed, low: -bound, high: bound })));
          tensors.set(loraKey(i, t, 'B'), keep(zeros([out, spec.r], { dtype, device })));
        }
      }
      return new LoraAdapter(config, spec, tensors);
    } catch (e) {
      for (const x of tensors.values()) x.dispose();
      throw e;
    }
  }

  /**
   * Reads a PEFT adapter folder for a model of this config onto a device (f32, or f64 for tests).
   * task: what the adapter must say it was made for; other: keys of the file that are not LoRA
   * weights (a SEQ_CLS adapter's score head), left for the caller.
   */
  static load(dir: string, config: LlamaConfig, opts: { dtype?: 'f32' | 'f64'; device?: Device; task?: AdapterTask; other?: readonly string[] } = {}): LoraAdapter {
    const { spec } = readAdapterConfig(dir, opts.task);
    const file = path.join(dir, ADAPTER_WEIGHTS);
    if (!fs.existsSync(file)) throw new Error(`${dir}: no ${ADAPTER_WEIGHTS} beside ${ADAPTER_CONFIG}`);
    const loaded = readSafetensors(file);
    const dtype = opts.dtype ?? 'f32';
    const tensors = new Map<string, Tensor>();
    try {
      for (const [k, t] of loaded) {
        if (opts.other?.includes(k)) continue;
        if (!(t.data instanceof Float32Array || t.data instanceof Float64Array)) throw new Error(`${file}: ${k} is ${t.dtype}; expected a floating-point tensor`);
        const bad = (t.data as Float32Array).findIndex((v) => !Number.isFinite(v));
        if (bad >= 0) throw new Error(`${file}: ${k}[${bad}] is ${String(t.data[bad])}; an adapter weight must be finite`);
        const data = dtype === 'f64' ? Float64Array.from(t.data) : t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
        tensors.set(k, keep(tensor(data, t.shape, { dtype, device: opts.device ?? 'cpu' })));
      }
      try {
        return new LoraAdapter(config, spec, tensors);
      } catch (e) {
        throw new Error(`${dir}: ${(e as Error).message}`);
      }
    } catch (e) {
      for (const x of tensors.values()) x.dispose();
      throw e;
    }
  }

  /**
   * Writes adapter_config.json and adapter_model.safetensors (f32) as PEFT does, into `dir`
   * atomically (assembled beside it, then renamed). A weight that is not finite is never saved.
   */
  save(dir: string, opts: { baseModel: string }): void {
    const tensors = new Map<string, TensorToWrite>();
    for (const [k, t] of this.tensors) {
      const a = t.toArray();
      const data = a instanceof Float32Array ? a : Float32Array.from(a);
      const bad = data.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) throw new Error(`${k}[${bad}] is ${data[bad]}; a weight that is not finite is never saved`);
      tensors.set(k, { dtype: 'F32', shape: t.shape.slice(), data });
    }
    writeFolderAtomically(dir, (tmp) => {
      writeFileAtomicSync(path.join(tmp, ADAPTER_CONFIG), `${JSON.stringify(this.peftConfig(opts.baseModel), null, 2)}\n`);
      writeSafetensors(path.join(tmp, ADAPTER_WEIGHTS), tensors, { format: 'pt' });
    });
  }

  /** adapter_config.json as PEFT writes it for a LoRA on a causal LM. */
  peftConfig(baseModel: string): Record<string, unknown> {
    return {
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      base_model_name_or_path: baseModel,
      r: this.spec.r,
      lora_alpha: this.spec.alpha,
      lora_dropout: this.spec.dropout,
      target_modules: this.spec.targets.map((t) => LORA_MODULES[t].split('.')[1]),
      bias: 'none',
      fan_in_fan_out: false,
      inference_mode: true,
      modules_to_save: null,
      init_lora_weights: true,
      use_rslora: false,
      use_dora: false,
    };
  }

  /** The trainable tensors by PEFT key (the adapter's own: updating them in place updates it). */
  parameters(): Map<string, Tensor> {
    return new Map(this.tensors);
  }

  /** A and B of a layer's target, or null when that target is not adapted. */
  weights(layer: number, target: LoraTarget): { A: Tensor; B: Tensor } | null {
    const A = this.tensors.get(loraKey(layer, target, 'A'));
    return A ? { A, B: this.tensors.get(loraKey(layer, target, 'B')) as Tensor } : null;
  }

  get dtype(): 'f32' | 'f64' {
    return this.first().dtype as 'f32' | 'f64';
  }

  get device(): Device {
    return this.first().device;
  }

  private first(): Tensor {
    return this.tensors.values().next().value as Tensor;
  }

  dispose(): void {
    for (const t of this.tensors.values()) t.dispose();
  }
}

/** The mask seed of one adapted branch in one forward: distinct per (forward seed, layer, target). */
export function branchSeed(seed: number, layer: number, target: LoraTarget): number {
  return ((seed >>> 0) * 31 + layer * 7 + LORA_TARGETS.indexOf(target) + 1) % 9007199254740881;
}

/** What the branch's backward needs besides its input: scaling * A x (f32 on bf16 models) and the mask seed. */
export interface LoraSaved {
  ax: Tensor;
  maskSeed: number | null;
}

function dropoutOf(x: Tensor, p: number, seed: number | null): Tensor | null {
  return p > 0 && seed !== null ? dropoutMask(x.shape, p, { seed, dtype: x.dtype, device: x.device }) : null;
}

/**
 * scaling * (dropout(x) A^T) B^T for x [T, in], in x's dtype, and what its backward needs. The
 * scaling multiplies the [T, r] product, never a [T, out] one. maskSeed null: no dropout
 * (evaluation, sampling, judging).
 */
export function loraBranch(x: Tensor, w: { A: Tensor; B: Tensor }, scaling: number, dropout: number, maskSeed: number | null): { y: Tensor; saved: LoraSaved } {
  return scope(() => {
    let xa = x.dtype === w.A.dtype ? x : x.to({ dtype: w.A.dtype });
    const mask = dropoutOf(xa, dropout, maskSeed);
    if (mask) xa = ops.mul(xa, mask);
    const ax = ops.affine(ops.matmul(xa, w.A, { transB: true }), scaling);
    let y = ops.matmul(ax, w.B, { transB: true });
    if (y.dtype !== x.dtype) y = y.to({ dtype: x.dtype });
    return { y, saved: { ax, maskSeed: mask ? maskSeed : null } };
  });
}

/**
 * Backward of loraBranch given dy [T, out] (x's dtype): d x [T, in] in x's dtype, and the
 * gradients of A [r, in] and B [out, r] in the adapter's dtype. The mask is drawn again from its seed.
 * dB = dy^T (s A x); d(A x) = s dy B; dA = d(A x)^T x; dx = d(A x) A (times the mask).
 */
export function loraBranchBackward(x: Tensor, dy: Tensor, w: { A: Tensor; B: Tensor }, scaling: number, dropout: number, saved: LoraSaved): { dx: Tensor; dA: Tensor; dB: Tensor } {
  return scope(() => {
    const dya = dy.dtype === w.A.dtype ? dy : dy.to({ dtype: w.A.dtype });
    let xa = x.dtype === w.A.dtype ? x : x.to({ dtype: w.A.dtype });
    const mask = dropoutOf(xa, dropout, saved.maskSeed);
    if (mask) xa = ops.mul(xa, mask);
    const dB = ops.matmul(dya, saved.ax, { transA: true });
    const dax = ops.affine(ops.matmul(dya, w.B), scaling);
    const dA = ops.matmul(dax, xa, { transA: true });
    let dx = ops.matmul(dax, w.A);
    if (mask) dx = ops.mul(dx, mask);
    if (dx.dtype !== x.dtype) dx = dx.to({ dtype: x.dtype });
    return { dx, dA, dB };
  });
}

/**
 * The merged weights W + scaling B A for every adapted linear (computed in the adapter's dtype,
 * then rounded to the base weight's dtype); the other parameters are the base's own tensors.
 */
export function mergedParameters(base: Map<string, Tensor>, adapter: LoraAdapter): Map<string, Tensor> {
  const out = new Map(base);
  for (let i = 0; i < adapter.numLayers; i++) {
    for (const t of adapter.spec.targets) {
      const name = `model.layers.${i}.${LORA_MODULES[t]}.weight`;
      const W = base.get(name);
      if (!W) throw new RangeError(`mergedParameters: the base has no ${name}`);
      const w = adapter.weights(i, t) as { A: Tensor; B: Tensor };
      out.set(name, keep(scope(() => {
        const delta = ops.affine(ops.matmul(w.B, w.A), adapter.scaling);
        const Wa = W.dtype === delta.dtype ? W : W.to({ dtype: delta.dtype });
        const merged = ops.add(Wa, delta);
        return merged.dtype === W.dtype ? merged : merged.to({ dtype: W.dtype });
      })));
    }
  }
  return out;
}
