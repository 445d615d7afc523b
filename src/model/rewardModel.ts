// A reward model: the Llama backbone (LlamaModel, no LM head) and a scalar head score.weight [1, D]
// (no bias) read on the final normed hidden state at each sequence's last token (prompt + response +
// EOS), as transformers' LlamaForSequenceClassification reads it. Folders are Hugging Face's:
//   full:    config.json (architectures [LlamaForSequenceClassification], num_labels 1, id2label,
//            label2id, pad_token_id) and model.safetensors with model.* and score.weight (no lm_head);
//   LoRA:    a PEFT folder for SEQ_CLS: adapter_config.json (task_type SEQ_CLS, modules_to_save
//            ["score"]) and adapter_model.safetensors with the A, B tensors under PEFT's keys and the
//            head under base_model.model.score.weight (the key get_peft_model_state_dict writes for a
//            modules_to_save wrapper of "score"), on the causal LM base its config names.
// The backbone is loaded from any folder with model.* weights: a causal LM (lm_head ignored, so a
// reward model starts from an SFT model) or a reward model (score read separately).
//
// transformers picks the score at the last token that is not pad_token_id, so the saved
// pad_token_id must not be EOS (where osp reads): the config's pad_token_id when it is not EOS,
// else 0 (the unk token of Llama's and the demo's tokenizers).
import * as fs from 'fs';
import * as path from 'path';
import * as ops from '../ops';
import { Device, Tensor, keep, randn, scope, tensor } from '../tensor';
import { writeFileAtomicSync, writeFolderAtomically } from '../util/atomicWrite';
import { packSequences } from './batch';
import { LlamaConfig, loadLlamaConfig, toHuggingFaceConfig } from './config';
import { TOKENIZER_FILES, WEIGHTS_FILE, locateTensors } from './hub';
import { LlamaModel } from './llama';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, LoraAdapter, LoraSpec, adapterDtype, isAdapterFolder, readAdapterConfig } from './lora';
import { TensorToWrite, WritableDType, readSafetensors, writeSafetensors } from './safetensors';
import { Tokenizer } from './tokenizer';

/** The scalar head's name in a full folder. */
export const SCORE_WEIGHT = 'score.weight';
/** The scalar head's key in a PEFT SEQ_CLS adapter_model.safetensors (modules_to_save ["score"]). */
export const PEFT_SCORE_WEIGHT = 'base_model.model.score.weight';

type Placement = { device?: Device; dtype?: 'f32' | 'f64' | 'bf16' };

/** XForCausalLM <-> XForSequenceClassification. */
function sequenceClassificationOf(architecture: string): string {
  return architecture.replace(/ForCausalLM$/, 'ForSequenceClassification');
}

/** A folder's config.json as the backbone's LlamaConfig (a sequence-classification architecture read as its causal LM). */
export function readBackboneConfig(dir: string): LlamaConfig {
  return loadLlamaConfig(dir, { sequenceClassifier: true });
}

/** True when a folder's config.json names a sequence-classification architecture. */
export function isRewardModelFolder(dir: string): boolean {
  try {
    const j = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { architectures?: unknown };
    return Array.isArray(j.architectures) && j.architectures.some((a) => typeof a === 'string' && a.endsWith('ForSequenceClassification'));
  } catch {
    return false;
  }
}

function toTensor(data: Float32Array | Float64Array | ArrayLike<number>, shape: number[], dtype: 'f32' | 'f64' | 'bf16', device: Device | undefined): Tensor {
  const d = dtype === 'f64' ? Float64Array.from(data) : data instanceof Float32Array ? data : Float32Array.from(data);
  return keep(tensor(d, shape, { dtype, device: device ?? (dtype === 'f64' ? 'cpu' : undefined) }));
}

/**
 * The backbone of a folder: every model.* weight its config implies (shapes checked), lm_head and
 * score ignored. The LlamaModel's config says tie_word_embeddings (so no LM head is held); the
 * folder's own config is readBackboneConfig(dir).
 */
export async function loadBackbone(dir: string, at: Placement = {}): Promise<LlamaModel> {
  return LlamaModel.load(dir, { ...at, headless: true });
}

/** A SEQ_CLS adapter_config.json's LoRA spec and base folder (lora.ts's reader, for a sequence classifier). */
export function readSeqClsAdapterConfig(dir: string): { spec: LoraSpec; baseModel: string | null } {
  return readAdapterConfig(dir, 'SEQ_CLS');
}

/** The dtype of the score head (and of the rewards): f32, or f64 for an f64 backbone; trainable beside a bf16 base like LoRA's adapters. */
function scoreDtype(backbone: LlamaModel): 'f32' | 'f64' {
  return adapterDtype(backbone.dtype);
}

function readScore(file: string, key: string, hiddenSize: number, dtype: 'f32' | 'f64', device: Device): Tensor {
  const t = readSafetensors(file, { names: [key] }).get(key);
  if (!t) throw new Error(`${file}: tensor "${key}" is missing (the reward model's score head)`);
  if (t.shape.join(',') !== `1,${hiddenSize}`) throw new Error(`${file}: tensor "${key}" has shape [${t.shape.join(', ')}]; expected [1, ${hiddenSize}] (num_labels 1)`);
  const bad = Array.from(t.data as Float32Array).findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new Error(`${file}: ${key}[${bad}] is not finite`);
  return toTensor(t.data as Float32Array, t.shape, dtype, device);
}

export interface RewardModelSaveOptions {
  /** The dtype of a full folder's weights on disk (default F32; the score head and adapters are F32 in an adapter folder). */
  dtype?: WritableDType;
  /** A folder whose tokenizer files are copied along (full folders). */
  tokenizerFrom?: string;
  /** An adapter folder's base_model_name_or_path. */
  baseModel?: string;
}

export class RewardModel {
  /** The folder's own config (the backbone's says tied embeddings: it holds no LM head). */
  readonly config: LlamaConfig;
  /** The tokenizer (set by load; rewards() needs it). */
  tokenizer: Tokenizer | null = null;

  /**
   * backbone: a LlamaModel without LM head (loadBackbone), or a LoRA view of one; score [1, D] in f32
   * (f64 for an f64 backbone). freeAdapter: dispose() frees the backbone's adapter too (a training
   * view that does not own it).
   */
  constructor(readonly backbone: LlamaModel, readonly score: Tensor, config: LlamaConfig, private readonly freeAdapter = false) {
    const D = backbone.config.hiddenSize;
    if (score.shape.length !== 2 || score.shape[0] !== 1 || score.shape[1] !== D) throw new RangeError(`RewardModel: score has shape [${score.shape.join(', ')}]; expected [1, ${D}]`);
    if (score.dtype !== scoreDtype(backbone) || score.device !== backbone.device) throw new TypeError(`RewardModel: score is ${score.dtype} on ${score.device}; expected ${scoreDtype(backbone)} on ${backbone.device}`);
    this.config = config;
  }

  /** A new head on a backbone: normal(0, 0.02), seeded (transformers' initializer_range default). */
  static init(backbone: LlamaModel, opts: { seed: number; config?: LlamaConfig; freeAdapter?: boolean }): RewardModel {
    const score = keep(randn([1, backbone.config.hiddenSize], { dtype: scoreDtype(backbone), device: backbone.device, seed: opts.seed >>> 0, std: 0.02 }));
    return new RewardModel(backbone, score, opts.config ?? backbone.config, opts.freeAdapter);
  }

  /**
   * Loads a reward-model folder: a full one, or a SEQ_CLS adapter folder on its base (`base`, or the
   * base_model_name_or_path of adapter_config.json, relative to the folder). The tokenizer comes from
   * the folder, else from the base.
   */
  static async load(dir: string, at: Placement & { base?: string } = {}): Promise<RewardModel> {
    if (!fs.existsSync(dir)) throw new Error(`${dir}: no such folder`);
    if (isAdapterFolder(dir)) {
      const { spec, baseModel } = readSeqClsAdapterConfig(dir);
      const baseDir = at.base ?? (baseModel === null ? null : path.isAbsolute(baseModel) ? baseModel : path.resolve(dir, baseModel));
      if (baseDir === null || !fs.existsSync(path.join(baseDir, 'config.json'))) throw new Error(`${dir}: an adapter whose base (${String(baseModel)}) is not a model folder here; give the base folder`);
      const base = await loadBackbone(baseDir, at);
      try {
        const rm = RewardModel.onBase(base, dir, spec, readBackboneConfig(baseDir), true);
        const tokDir = [dir, baseDir].find((d) => fs.existsSync(path.join(d, 'tokenizer.json')));
        if (tokDir) rm.tokenizer = await Tokenizer.load(tokDir);
        return rm;
      } catch (e) {
        base.dispose();
        throw e;
      }
    }
    if (!isRewardModelFolder(dir)) throw new Error(`${dir}: config.json names no ForSequenceClassification architecture (expected a reward model folder, e.g. final/ of osp reward-model)`);
    const backbone = await loadBackbone(dir, at);
    try {
      const score = readScore(locateTensors(dir).where.get(SCORE_WEIGHT)?.file ?? path.join(dir, WEIGHTS_FILE), SCORE_WEIGHT, backbone.config.hiddenSize, scoreDtype(backbone), backbone.device);
      const rm = new RewardModel(backbone, score, readBackboneConfig(dir));
      if (fs.existsSync(path.join(dir, 'tokenizer.json'))) rm.tokenizer = await Tokenizer.load(dir);
      return rm;
    } catch (e) {
      backbone.dispose();
      throw e;
    }
  }

  /**
   * A SEQ_CLS adapter folder applied to a loaded backbone (shared, not copied). takeOwnership: the
   * result owns the base too (dispose frees it); else the adapter only.
   */
  static onBase(base: LlamaModel, dir: string, spec: LoraSpec, config: LlamaConfig, takeOwnership: boolean): RewardModel {
    const file = path.join(dir, ADAPTER_WEIGHTS);
    if (!fs.existsSync(file)) throw new Error(`${dir}: no ${ADAPTER_WEIGHTS} beside ${ADAPTER_CONFIG}`);
    const dtype = adapterDtype(base.dtype);
    const adapter = LoraAdapter.load(dir, base.config, { dtype, device: base.device, task: 'SEQ_CLS', other: [PEFT_SCORE_WEIGHT] });
    try {
      if (adapter.spec.r !== spec.r || adapter.spec.targets.join() !== spec.targets.join()) throw new Error(`${dir}: the adapter is not the spec it was read with`);
      const score = readScore(file, PEFT_SCORE_WEIGHT, base.config.hiddenSize, dtype, base.device);
      return new RewardModel(base.withAdapter(adapter, { takeOwnership }), score, config, !takeOwnership);
    } catch (e) {
      adapter.dispose();
      throw e;
    }
  }


  get device(): Device {
    return this.backbone.device;
  }

  /** What training updates: the backbone's trainable tensors (all of them, or the adapter's A and B), then score.weight. */
  trainableParameters(): Map<string, Tensor> {
    return new Map([...this.backbone.trainableParameters(), [SCORE_WEIGHT, this.score]]);
  }

  /** The rewards [N] (score dtype) of the rows lastRows [N] (i32) of a forward's hidden [T, D]: score . hidden[row]. */
  rewardsOf(hidden: Tensor, lastRows: Tensor): Tensor {
    return scope(() => {
      const last = ops.embedding(hidden, lastRows);
      const x = last.dtype === this.score.dtype ? last : last.to({ dtype: this.score.dtype });
      const r = ops.matmul(x, this.score, { transB: true });
      return r.reshape([lastRows.shape[0]]).contiguous();
    });
  }

  /**
   * The backward of rewardsOf for L = sum_i gradRewards[i] r_i: d L / d hidden [T, D] (the
   * backbone's dtype; rows other than lastRows are 0) and d L / d score [1, D].
   */
  rewardsBackward(hidden: Tensor, lastRows: Tensor, gradRewards: Tensor): { gradHidden: Tensor; gradScore: Tensor } {
    return scope(() => {
      const N = lastRows.shape[0];
      const g = (gradRewards.dtype === this.score.dtype ? gradRewards : gradRewards.to({ dtype: this.score.dtype })).reshape([N, 1]).contiguous();
      const last = ops.embedding(hidden, lastRows);
      const x = last.dtype === this.score.dtype ? last : last.to({ dtype: this.score.dtype });
      const gradScore = ops.matmul(g, x, { transA: true });
      const dLast = ops.matmul(g, this.score);
      const dl = dLast.dtype === hidden.dtype ? dLast : dLast.to({ dtype: hidden.dtype as 'f32' | 'f64' | 'bf16' });
      return { gradHidden: ops.embeddingBackward(dl, lastRows, hidden.shape[0]), gradScore };
    });
  }

  /** Rewards of whole token sequences (prompt + response + EOS each), microBatch at a time with inference forwards; one read per micro-batch. */
  sequenceRewards(sequences: Int32Array[], opts: { microBatch?: number } = {}): Float64Array {
    const mb = opts.microBatch ?? 16;
    if (!(Number.isInteger(mb) && mb >= 1)) throw new RangeError(`RewardModel.sequenceRewards: microBatch is ${String(mb)}; expected an integer >= 1`);
    sequences.forEach((s, i) => {
      if (!(s instanceof Int32Array) || s.length === 0) throw new RangeError(`RewardModel.sequenceRewards: sequences[${i}] is empty or not an Int32Array; expected at least one token`);
    });
    const out = new Float64Array(sequences.length);
    for (let s = 0; s < sequences.length; s += mb) {
      const part = sequences.slice(s, s + mb);
      const r = scope(() => {
        const { hidden } = this.backbone.forward(packSequences(part), { inference: true });
        return Float64Array.from(this.rewardsOf(hidden, tensor(lastRowsOf(part), [part.length], { dtype: 'i32', device: this.device })).toArray());
      });
      out.set(r, s);
    }
    return out;
  }

  /** The reward of each (prompt, response): prompt with the tokenizer's special tokens, response without, then EOS. */
  async rewards(prompts: string[], responses: string[], opts: { microBatch?: number } = {}): Promise<Float64Array> {
    if (!this.tokenizer) throw new Error('RewardModel.rewards: no tokenizer (load the model with RewardModel.load, or set .tokenizer)');
    if (prompts.length !== responses.length) throw new RangeError(`RewardModel.rewards: ${prompts.length} prompts but ${responses.length} responses`);
    const p = await this.tokenizer.encodeBatch(prompts);
    const r = await this.tokenizer.encodeBatch(responses, { addSpecialTokens: false });
    const eos = this.tokenizer.eosTokenId ?? (Array.isArray(this.config.eosTokenId) ? this.config.eosTokenId[0] : this.config.eosTokenId);
    const ctx = this.config.maxPositionEmbeddings;
    const seqs = p.map((x, i) => {
      const s = Int32Array.from([...x, ...r[i], ...(eos === undefined ? [] : [eos])]);
      if (s.length > ctx) throw new RangeError(`RewardModel.rewards: pair ${i} is ${s.length} tokens, more than the model's context (${ctx})`);
      return s;
    });
    return this.sequenceRewards(seqs, opts);
  }

  /** The pad_token_id a saved config carries (see the file comment). */
  padTokenId(): number {
    const eos = new Set([this.config.eosTokenId].flat().filter((x): x is number => typeof x === 'number'));
    return this.config.padTokenId !== undefined && !eos.has(this.config.padTokenId) ? this.config.padTokenId : 0;
  }

  /** config.json of a full folder: the backbone's fields, the sequence-classification architecture and one label. */
  hfConfig(torchDtype: string): Record<string, unknown> {
    const hf = toHuggingFaceConfig(this.config) as Record<string, unknown>;
    return {
      ...hf,
      architectures: [sequenceClassificationOf(this.config.architecture)],
      model_type: this.config.modelType,
      num_labels: 1,
      id2label: { '0': 'LABEL_0' },
      label2id: { LABEL_0: 0 },
      pad_token_id: this.padTokenId(),
      torch_dtype: torchDtype,
    };
  }

  /** Writes a full folder or, for a LoRA backbone, a PEFT SEQ_CLS adapter folder (atomically). Weights that are not finite are refused. */
  save(dir: string, opts: RewardModelSaveOptions = {}): void {
    const host = (name: string, t: Tensor): Float32Array => {
      const a = t.toArray();
      const data = a instanceof Float32Array ? a : Float32Array.from(a);
      const bad = data.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) throw new Error(`${name}[${bad}] is ${data[bad]}; a weight that is not finite is never saved`);
      return data;
    };
    const adapter = this.backbone.adapter;
    if (adapter) {
      const tensors = new Map<string, TensorToWrite>();
      for (const [k, t] of adapter.parameters()) tensors.set(k, { dtype: 'F32', shape: t.shape.slice(), data: host(k, t) });
      tensors.set(PEFT_SCORE_WEIGHT, { dtype: 'F32', shape: [1, this.config.hiddenSize], data: host(SCORE_WEIGHT, this.score) });
      const config = { ...adapter.peftConfig(opts.baseModel ?? ''), task_type: 'SEQ_CLS', modules_to_save: ['score'] };
      writeFolderAtomically(dir, (tmp) => {
        writeFileAtomicSync(path.join(tmp, ADAPTER_CONFIG), `${JSON.stringify(config, null, 2)}\n`);
        writeSafetensors(path.join(tmp, ADAPTER_WEIGHTS), tensors, { format: 'pt' });
      });
      return;
    }
    const dtype = opts.dtype ?? 'F32';
    const tensors = new Map<string, TensorToWrite>();
    for (const [k, t] of this.backbone.parameters()) tensors.set(k, { dtype, shape: t.shape.slice(), data: host(k, t) });
    tensors.set(SCORE_WEIGHT, { dtype, shape: [1, this.config.hiddenSize], data: host(SCORE_WEIGHT, this.score) });
    writeFolderAtomically(dir, (tmp) => {
      fs.writeFileSync(path.join(tmp, 'config.json'), `${JSON.stringify(this.hfConfig(dtype === 'BF16' ? 'bfloat16' : dtype === 'F16' ? 'float16' : 'float32'), null, 2)}\n`);
      if (opts.tokenizerFrom !== undefined) {
        for (const f of TOKENIZER_FILES) {
          const src = path.join(opts.tokenizerFrom, f);
          if (fs.existsSync(src)) fs.copyFileSync(src, path.join(tmp, f));
        }
      }
      writeSafetensors(path.join(tmp, WEIGHTS_FILE), tensors, { format: 'pt' });
    });
  }

  /** Frees the score head, the backbone (what it owns) and, for a training view, its adapter. */
  dispose(): void {
    if (this.freeAdapter) this.backbone.adapter?.dispose();
    this.backbone.dispose();
    this.score.dispose();
  }
}

/** The packed row of each sequence's last token: cumulative lengths minus one. */
export function lastRowsOf(sequences: Int32Array[]): Int32Array {
  const rows = new Int32Array(sequences.length);
  let t = 0;
  sequences.forEach((s, i) => {
    t += s.length;
    rows[i] = t - 1;
  });
  return rows;
}
