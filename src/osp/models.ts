// The models a run holds, and who owns their weights. Full fine-tuning: the policy is a trainable
// copy of --model, and the frozen roles (reference, judge) are loaded beside it. LoRA (--lora or
// --adapter): one frozen copy of --model is the base; the policy is the base with a trainable
// adapter, the reference the base itself, and the judge the base or the base with a judge adapter
// (osp augment --lora): one set of base weights serves all three (LlamaModel.withAdapter).
// A --reference or --judge folder may be a Hugging Face model (loaded once) or a PEFT adapter
// folder (applied to the frozen copy of --model).
import * as fs from 'fs';
import * as path from 'path';
import { saveLlama } from '../model/hub';
import { LlamaModel } from '../model/llama';
import { ADAPTER_WEIGHTS, LoraAdapter, LoraSpec, adapterDtype, isAdapterFolder, mergedParameters, readAdapterConfig } from '../model/lora';
import { SettingsError } from './settings';

function fail(setting: string, problem: string, value?: string): never {
  throw new SettingsError(setting, problem, value);
}

/** Checks a Hugging Face model folder up front (config.json, weights, tokenizer.json), naming what is missing. */
export function checkModelDir(setting: string, dir: string, needTokenizer = true): void {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) fail(setting, 'no such folder', dir);
  if (!fs.existsSync(path.join(dir, 'config.json'))) fail(setting, `no config.json (expected a Hugging Face model folder)`, dir);
  const weights = fs.existsSync(path.join(dir, 'model.safetensors')) || fs.existsSync(path.join(dir, 'model.safetensors.index.json'));
  if (!weights) fail(setting, `no model.safetensors or model.safetensors.index.json`, dir);
  if (needTokenizer && !fs.existsSync(path.join(dir, 'tokenizer.json'))) fail(setting, `no tokenizer.json`, dir);
}

type Placement = { device: 'cpu' | 'cuda'; dtype: 'f32' | 'bf16' };

function describeSpec(s: LoraSpec): string {
  return `r=${s.r},alpha=${s.alpha},dropout=${s.dropout},targets=${s.targets.join(',')}`;
}

/** Checks an adapter folder setting up front. */
function readAdapterSetting(setting: string, dir: string): LoraSpec {
  return readAdapterConfigSetting(setting, dir).spec;
}

/**
 * The policy to train: --model itself, or with --lora / --adapter the frozen base with a new adapter
 * (seeded by the run's seed) or the named one. `base` is the loaded weights' owner.
 */
export async function loadPolicy(
  s: { model: string; lora?: LoraSpec; adapter?: string; seed: number },
  at: Placement,
  /** How --model is loaded (a reward model loads its backbone without the LM head). */
  load: (dir: string, at: Placement) => Promise<LlamaModel> = (dir, p) => LlamaModel.load(dir, p),
): Promise<{ policy: LlamaModel; base: LlamaModel | null }> {
  let spec = s.lora;
  if (s.adapter !== undefined) {
    if (!isAdapterFolder(s.adapter)) throw new SettingsError('adapter', 'no adapter_config.json (expected a PEFT LoRA adapter folder)', s.adapter);
    const saved = readAdapterSetting('adapter', s.adapter);
    if (spec && describeSpec(spec) !== describeSpec(saved)) {
      throw new SettingsError('lora', `differs from the adapter's own (${describeSpec(saved)}); leave --lora out to continue that adapter`, describeSpec(spec));
    }
    spec = saved;
  }
  const model = await load(s.model, at);
  if (!spec) return { policy: model, base: null };
  try {
    const opts = { dtype: adapterDtype(at.dtype), device: at.device };
    let adapter: LoraAdapter;
    try {
      adapter = s.adapter !== undefined ? LoraAdapter.load(s.adapter, model.config, opts) : LoraAdapter.init(model.config, spec, { ...opts, seed: s.seed });
    } catch (e) {
      throw new SettingsError(s.adapter !== undefined ? 'adapter' : 'lora', (e as Error).message, s.adapter);
    }
    return { policy: model.withAdapter(adapter), base: model };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/**
 * The frozen roles of a run. `role(setting, dir)` gives the model a --reference or --judge setting
 * names (undefined: the frozen --model), loading each folder once; release() frees what it loaded.
 */
export class FrozenModels {
  private frozen: LlamaModel | null;
  private readonly loaded = new Map<string, LlamaModel>();
  private readonly adapters: LoraAdapter[] = [];

  /** base: the LoRA base the policy trains on (shared), or null in full fine-tuning (a frozen copy is loaded when needed). */
  constructor(private readonly modelDir: string, private readonly base: LlamaModel | null, private readonly at: Placement) {
    this.frozen = base;
  }

  /** The frozen --model: the LoRA base, or a copy loaded once. */
  async sft(): Promise<LlamaModel> {
    this.frozen ??= await this.load(this.modelDir);
    return this.frozen;
  }

  async role(setting: string, dir: string | undefined): Promise<LlamaModel> {
    if (dir === undefined) return this.sft();
    if (isAdapterFolder(dir)) {
      readAdapterSetting(setting, dir);
      const base = await this.sft();
      let a: LoraAdapter;
      try {
        a = LoraAdapter.load(dir, base.config, { dtype: adapterDtype(this.at.dtype), device: this.at.device });
      } catch (e) {
        throw new SettingsError(setting, (e as Error).message, dir);
      }
      this.adapters.push(a);
      return base.withAdapter(a);
    }
    if (path.resolve(dir) === path.resolve(this.modelDir)) return this.sft();
    return this.load(dir);
  }

  private async load(dir: string): Promise<LlamaModel> {
    const key = path.resolve(dir);
    let m = this.loaded.get(key);
    if (!m) {
      m = await LlamaModel.load(dir, this.at);
      this.loaded.set(key, m);
    }
    return m;
  }

  release(): void {
    for (const a of this.adapters) a.dispose();
    for (const m of this.loaded.values()) m.dispose();
    this.loaded.clear();
    this.frozen = this.base;
  }
}

/** Frees a policy: its adapter (the base is its owner's), or its weights. */
export function releasePolicy(policy: LlamaModel): void {
  if (policy.adapter) policy.adapter.dispose();
  else policy.dispose();
}

/**
 * A model to run (generate, eval, judge): a Hugging Face folder, or a PEFT adapter folder on its
 * base (`adapter` given: that adapter on the model folder `dir`; `dir` an adapter folder: the base
 * its adapter_config.json names). The returned model owns what it loaded (dispose() frees it all);
 * tokenizerDir is where its tokenizer lives (the base's for an adapter).
 */
export async function loadModelFolder(setting: string, dir: string, at: Placement, adapter?: string): Promise<{ model: LlamaModel; tokenizerDir: string }> {
  const adapterDir = adapter ?? (isAdapterFolder(dir) ? dir : undefined);
  const baseDir = adapter === undefined ? modelFolderOf(setting, dir) : dir;
  const base = await LlamaModel.load(baseDir, at);
  if (adapterDir === undefined) return { model: base, tokenizerDir: dir };
  try {
    const a = LoraAdapter.load(adapterDir, base.config, { dtype: adapterDtype(at.dtype), device: at.device });
    return { model: base.withAdapter(a, { takeOwnership: true }), tokenizerDir: baseDir };
  } catch (e) {
    base.dispose();
    throw new SettingsError(adapter !== undefined ? 'adapter' : setting, (e as Error).message, adapterDir);
  }
}

/** The Hugging Face folder behind a setting: the folder itself, or for an adapter folder the base its adapter_config.json names. */
export function modelFolderOf(setting: string, dir: string): string {
  if (!isAdapterFolder(dir)) return dir;
  const named = readAdapterConfigSetting(setting, dir).baseModel;
  if (!named) throw new SettingsError(setting, 'is an adapter folder whose adapter_config.json names no base_model_name_or_path; give the base with --model and this folder with --adapter', dir);
  const baseDir = path.isAbsolute(named) ? named : path.resolve(dir, named);
  if (!fs.existsSync(path.join(baseDir, 'config.json'))) throw new SettingsError(setting, `is an adapter for ${named}, which is not a model folder here (no config.json); give the base with --model and this folder with --adapter`, dir);
  return baseDir;
}

/** A setting naming a model folder or an adapter folder whose base is a model folder, checked up front. */
export function checkModelOrAdapterDir(setting: string, dir: string): void {
  checkModelDir(setting, fs.existsSync(dir) ? modelFolderOf(setting, dir) : dir);
  if (isAdapterFolder(dir) && !fs.existsSync(path.join(dir, ADAPTER_WEIGHTS))) throw new SettingsError(setting, `no ${ADAPTER_WEIGHTS} beside adapter_config.json`, dir);
}

function readAdapterConfigSetting(setting: string, dir: string): { spec: LoraSpec; baseModel: string | null } {
  try {
    return readAdapterConfig(dir);
  } catch (e) {
    throw new SettingsError(setting, (e as Error).message, dir);
  }
}

/**
 * Merges a LoRA adapter into its base: writes outDir as a Hugging Face folder whose adapted weights
 * are W + scaling B A (computed in f32 on the cpu), the tokenizer files copied from the base.
 * dtype: the saved weights (default F32).
 */
export async function mergeAdapter(baseDir: string, adapterDir: string, outDir: string, opts: { dtype?: 'F32' | 'BF16' } = {}): Promise<void> {
  checkModelDir('model', baseDir, false);
  if (!isAdapterFolder(adapterDir)) fail('adapter', 'no adapter_config.json (expected a PEFT LoRA adapter folder)', adapterDir);
  if (path.resolve(outDir) === path.resolve(baseDir) || path.resolve(outDir) === path.resolve(adapterDir)) fail('out', 'is the base or the adapter folder; expected a new folder', outDir);
  const base = await LlamaModel.load(baseDir, { device: 'cpu', dtype: 'f32' });
  let adapter: LoraAdapter | null = null;
  try {
    try {
      adapter = LoraAdapter.load(adapterDir, base.config, { dtype: 'f32', device: 'cpu' });
    } catch (e) {
      fail('adapter', (e as Error).message, adapterDir);
    }
    const params = mergedParameters(base.parameters(), adapter);
    const merged = new LlamaModel(base.config, params);
    try {
      await saveLlama(merged, outDir, { dtype: opts.dtype ?? 'F32', tokenizerFrom: baseDir, requireFinite: true });
    } finally {
      for (const [n, t] of params) if (t !== base.parameters().get(n)) t.dispose();
    }
  } finally {
    adapter?.dispose();
    base.dispose();
  }
}
