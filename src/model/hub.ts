// Hugging Face model folders: loadLlama reads config.json and the weights (model.safetensors or the
// shards of model.safetensors.index.json; F32, F16, BF16 on disk) into a LlamaModel, checking every
// tensor's presence and shape against the config; saveLlama writes a folder transformers loads
// (config.json, safetensors, sharded above a size limit, tokenizer files copied along), atomically:
// everything goes to `${dir}.tmp-<pid>`, which is renamed to `dir` only once complete.
import * as fs from 'fs';
import * as path from 'path';
import { Device, Tensor, keep, tensor } from '../tensor';
import { LlamaConfig, loadLlamaConfig, toHuggingFaceConfig } from './config';
import { llamaParameterShapes } from './config';
import type { LlamaModel } from './llama';
import { writeFolderAtomically } from '../util/atomicWrite';
import {
  INDEX_FILE,
  SAFETENSORS_DTYPE_SIZES,
  SafetensorsEntry,
  TensorToWrite,
  WritableDType,
  readIndexFile,
  readSafetensors,
  readSafetensorsHeader,
  writeSafetensors,
  writeShardedSafetensors,
} from './safetensors';

export const WEIGHTS_FILE = 'model.safetensors';
/** The tokenizer files saveLlama copies along when present. */
export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model'] as const;
/** Hugging Face's default shard limit ("5GB"). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

export interface LoadLlamaOptions {
  /** Default: the default device (f64 lives on the cpu). */
  device?: Device;
  /** The parameters' dtype in memory, whatever is on disk. Default 'f32'; 'f64' only on the cpu. */
  dtype?: 'f32' | 'f64' | 'bf16';
  /**
   * The transformer without its LM head (a reward model's backbone): a *ForSequenceClassification
   * config is read as its causal LM, the config says tie_word_embeddings (no head is held), and
   * lm_head.weight and score.weight in the folder are left unread.
   */
  headless?: boolean;
}

export interface SaveLlamaOptions {
  /** Above this many bytes of tensor data the weights are sharded. Default 5e9, as transformers. */
  maxShardBytes?: number;
  /** The dtype on disk. Default 'F32'. */
  dtype?: WritableDType;
  /** A folder whose tokenizer files (TOKENIZER_FILES, those present) are copied along. */
  tokenizerFrom?: string;
  /** Refuse (an Error naming the tensor and element) to write a weight that is NaN or infinite. Default false. */
  requireFinite?: boolean;
}

/** Tensors in Hugging Face checkpoints that carry nothing this engine needs (recomputed buffers). */
const HARMLESS = [/^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/];

const fmt = (s: number[]) => `[${s.join(', ')}]`;

function isDir(p: string): boolean {
  return fs.statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false;
}
function isFile(p: string): boolean {
  return fs.statSync(p, { throwIfNoEntry: false })?.isFile() ?? false;
}

/** Where each tensor of the folder is: name -> [file, header entry]. `source` is the file that lists them. */
export function locateTensors(dir: string): { source: string; where: Map<string, { file: string; entry: SafetensorsEntry | undefined }> } {
  const single = path.join(dir, WEIGHTS_FILE);
  const index = path.join(dir, INDEX_FILE);
  const where = new Map<string, { file: string; entry: SafetensorsEntry | undefined }>();
  if (isFile(single)) {
    for (const [name, entry] of readSafetensorsHeader(single).tensors) where.set(name, { file: single, entry });
    return { source: single, where };
  }
  if (isFile(index)) {
    const { weightMap } = readIndexFile(dir);
    const headers = new Map<string, Map<string, SafetensorsEntry>>();
    for (const [name, shard] of weightMap) {
      const file = path.join(dir, shard);
      let h = headers.get(file);
      if (!h) headers.set(file, (h = readSafetensorsHeader(file).tensors));
      where.set(name, { file, entry: h.get(name) });
    }
    return { source: index, where };
  }
  throw new Error(`${dir}: no weights: neither ${single} nor ${index} exists`);
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** The config fields a parameter's shape comes from, for error messages. */
function shapeHint(c: LlamaConfig): string {
  return (
    `hidden_size ${c.hiddenSize}, intermediate_size ${c.intermediateSize}, num_attention_heads ${c.numAttentionHeads}, ` +
    `num_key_value_heads ${c.numKeyValueHeads}, head_dim ${c.headDim}, vocab_size ${c.vocabSize}`
  );
}

/**
 * Loads a Hugging Face Llama / Mistral folder. Checks, before any tensor data is read: every
 * parameter the config implies is present (error naming the tensor and the file that should hold
 * it) with its shape (error naming tensor, file, expected and found shape); tensors the config does
 * not imply are an error, except rotary_emb.inv_freq buffers (ignored) and, with tied embeddings,
 * an lm_head.weight, which is accepted only if it equals model.embed_tokens.weight.
 */
export async function readLlamaFolder(dir: string, opts: LoadLlamaOptions = {}): Promise<{ config: LlamaConfig; params: Map<string, Tensor> }> {
  const dtype = opts.dtype ?? 'f32';
  if (!['f32', 'f64', 'bf16'].includes(dtype)) throw new TypeError(`loadLlama: dtype ${JSON.stringify(dtype)} is not one of 'f32', 'f64', 'bf16'`);
  if (dtype === 'f64' && opts.device !== undefined && opts.device !== 'cpu') {
    throw new TypeError(`loadLlama: dtype 'f64' lives on the cpu only, not on ${opts.device}`);
  }
  const device = opts.device ?? (dtype === 'f64' ? 'cpu' : undefined);
  if (!fs.existsSync(dir)) throw new Error(`${dir}: no such folder`);
  if (!isDir(dir)) throw new Error(`${dir}: not a folder`);
  const config = opts.headless ? { ...loadLlamaConfig(dir, { sequenceClassifier: true }), tieWordEmbeddings: true } : loadLlamaConfig(dir);
  const configFile = path.join(dir, 'config.json');
  const { source, where } = locateTensors(dir);
  const expected = llamaParameterShapes(config);

  for (const [name, shape] of expected) {
    const loc = where.get(name);
    if (!loc) throw new Error(`${source}: tensor "${name}" is missing (expected shape ${fmt(shape)} for ${configFile})`);
    if (!loc.entry) throw new Error(`${loc.file}: tensor "${name}" is missing (${source} says this file holds it)`);
    if (!sameShape(loc.entry.shape, shape)) {
      throw new Error(
        `${loc.file}: tensor "${name}" has shape ${fmt(loc.entry.shape)} but ${configFile} (${shapeHint(config)}) expects ${fmt(shape)}`,
      );
    }
    if (!['F32', 'F16', 'BF16', 'F64'].includes(loc.entry.dtype)) {
      throw new Error(`${loc.file}: tensor "${name}" is ${loc.entry.dtype}; expected F32, F16 or BF16`);
    }
  }
  let tiedHead: { file: string; entry: SafetensorsEntry } | undefined;
  const unexpected: string[] = [];
  for (const [name, loc] of where) {
    if (expected.has(name) || HARMLESS.some((re) => re.test(name))) continue;
    if (opts.headless && (name === 'lm_head.weight' || name === 'score.weight')) continue;
    if (name === 'lm_head.weight' && config.tieWordEmbeddings && loc.entry) {
      tiedHead = { file: loc.file, entry: loc.entry };
      continue;
    }
    unexpected.push(name);
  }
  if (unexpected.length > 0) {
    const layer = unexpected.map((n) => /^model\.layers\.(\d+)\./.exec(n)).find((m) => m && Number(m[1]) >= config.numHiddenLayers);
    const hint = layer ? ` (${configFile} has num_hidden_layers ${config.numHiddenLayers})` : '';
    const shown = unexpected.slice(0, 5).map((n) => `"${n}"`).join(', ') + (unexpected.length > 5 ? `, ... (${unexpected.length} in all)` : '');
    throw new Error(`${source}: unexpected tensor${unexpected.length > 1 ? 's' : ''} ${shown}, not part of this config${hint}`);
  }

  // Read file by file, converting to the requested dtype; free what was made if anything fails.
  const byFile = new Map<string, string[]>();
  for (const name of expected.keys()) {
    const f = where.get(name)!.file;
    byFile.set(f, [...(byFile.get(f) ?? []), name]);
  }
  const params = new Map<string, Tensor>();
  try {
    for (const [file, names] of byFile) {
      const loaded = readSafetensors(file, { names });
      for (const [name, t] of loaded) {
        const data = dtype === 'f64' ? Float64Array.from(t.data as Float32Array | Float64Array) : t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as Float64Array);
        params.set(name, keep(tensor(data, t.shape, { dtype, device })));
      }
    }
    if (tiedHead) {
      const head = readSafetensors(tiedHead.file, { names: ['lm_head.weight'] }).get('lm_head.weight')!;
      const embFile = where.get('model.embed_tokens.weight')!.file;
      const emb = readSafetensors(embFile, { names: ['model.embed_tokens.weight'] }).get('model.embed_tokens.weight')!;
      const equal = sameShape(head.shape, emb.shape) && head.data.length === emb.data.length && head.data.every((v, i) => Object.is(v, emb.data[i]));
      if (!equal) {
        throw new Error(
          `${tiedHead.file}: tensor "lm_head.weight" differs from "model.embed_tokens.weight" but ${configFile} has tie_word_embeddings true`,
        );
      }
    }
    return { config, params };
  } catch (e) {
    for (const t of params.values()) t.dispose();
    throw e;
  }
}

const TORCH_DTYPE: Record<WritableDType, string> = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' };

function writeJson(file: string, value: unknown): void {
  fs.writeFileSync(file, JSON.stringify(value, null, 2) + '\n');
}

/**
 * Writes `model` as a Hugging Face folder: config.json, the weights (model.safetensors, or shards
 * and model.safetensors.index.json above maxShardBytes) and the tokenizer files of tokenizerFrom.
 * Atomic (writeFolderAtomically): a reader sees the old folder or the new one, never a part.
 */
export async function saveLlama(model: LlamaModel, dir: string, opts: SaveLlamaOptions = {}): Promise<void> {
  const maxShardBytes = opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!Number.isSafeInteger(maxShardBytes) || maxShardBytes <= 0) {
    throw new RangeError(`saveLlama: maxShardBytes must be a positive integer, got ${String(opts.maxShardBytes)}`);
  }
  const dtype = opts.dtype ?? 'F32';
  if (!(dtype in TORCH_DTYPE)) throw new TypeError(`saveLlama: dtype ${JSON.stringify(dtype)} is not one of 'F32', 'BF16', 'F16'`);
  if (opts.tokenizerFrom !== undefined && !isDir(opts.tokenizerFrom)) {
    throw new Error(`saveLlama: tokenizerFrom ${opts.tokenizerFrom}: no such folder`);
  }
  writeFolderAtomically(dir, (tmp) => {
    const hf = toHuggingFaceConfig(model.config);
    writeJson(path.join(tmp, 'config.json'), {
      ...hf,
      architectures: [model.config.architecture],
      model_type: model.config.modelType,
      torch_dtype: TORCH_DTYPE[dtype],
    });
    // What transformers' generate() reads beside config.json.
    writeJson(path.join(tmp, 'generation_config.json'), { bos_token_id: model.config.bosTokenId, eos_token_id: model.config.eosTokenId });
    if (opts.tokenizerFrom !== undefined) {
      for (const f of TOKENIZER_FILES) {
        const src = path.join(opts.tokenizerFrom, f);
        if (isFile(src)) fs.copyFileSync(src, path.join(tmp, f));
      }
    }
    const tensors = new Map<string, TensorToWrite>();
    let total = 0;
    for (const [name, t] of model.parameters()) {
      const a = t.toArray();
      const data = a instanceof Float32Array ? a : Float32Array.from(a);
      if (opts.requireFinite) {
        const bad = data.findIndex((v) => !Number.isFinite(v));
        if (bad >= 0) throw new Error(`${name}[${bad}] is ${data[bad]}; a weight that is not finite is never saved`);
      }
      tensors.set(name, { dtype, shape: t.shape.slice(), data });
      total += data.length * SAFETENSORS_DTYPE_SIZES[dtype];
    }
    if (total <= maxShardBytes) writeSafetensors(path.join(tmp, WEIGHTS_FILE), tensors, { format: 'pt' });
    else writeShardedSafetensors(tmp, tensors, { maxShardBytes });
  });
}
