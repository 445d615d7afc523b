// A run folder that can be trusted and resumed:
//   config.json         the resolved configuration (written once, atomically)
//   metrics.jsonl       one line per optimizer step (MetricsLog)
//   samples.jsonl       what each step saw: prompts, responses, judge scores, pairs, targets
//   checkpoints/step-N/ model/ (a Hugging Face folder; a LoRA run: adapter/, a PEFT folder), optimizer.safetensors (AdamW moments and f32
//                       master weights), state.json (step, data position, seed) -- written under a
//                       temporary name and renamed, so a kill mid-write leaves the previous one intact
//   checkpoints/latest  the name of the newest complete checkpoint
//   report.html         plots of metrics.jsonl (report.ts)
import * as fs from 'fs';
import * as path from 'path';
import { LlamaModel, loadLlama } from '../model/llama';
import { LoraAdapter } from '../model/lora';
import { AdamW } from '../model/optim';
import { readSafetensors, readSafetensorsHeader, writeSafetensors, TensorToWrite } from '../model/safetensors';
import * as ops from '../ops';
import { Tensor, tensor } from '../tensor';
import { writeFileAtomicSync } from '../util/atomicWrite';

export interface CheckpointState {
  /** Optimizer steps completed. */
  step: number;
  /** Examples (prompts, pairs) consumed from the data order so far. */
  dataPosition: number;
  seed: number;
  /** Anything else the trainer needs to continue exactly. */
  extra?: Record<string, unknown>;
}

const CKPT_DIR = 'checkpoints';
const STEP_RE = /^step-(\d{8})$/;

export function checkpointName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

/**
 * What a run trains, checkpoints and frees: a policy (PolicyTrainee, every command but one) or a
 * reward model (its score head beside the backbone). runTraining and runLoop go through this.
 */
export interface Trainee {
  readonly device: 'cpu' | 'cuda';
  /** The optimizer's parameters, in a fixed order. */
  trainableParameters(): Map<string, Tensor>;
  /** Writes the model part of a checkpoint into the checkpoint folder being assembled (model/ or adapter/); values that are not finite are refused. */
  saveCheckpointModel(checkpointDir: string, tokenizerFrom: string | undefined): Promise<void>;
  /** Writes the run's final/ folder. */
  saveFinal(dir: string, tokenizerDir: string): Promise<void>;
  /** The same kind of model from a checkpoint folder (on the same base for LoRA). */
  loadCheckpoint(checkpointDir: string): Promise<Trainee>;
  /** Frees what this trainee owns (a LoRA view: its adapter; the base is its loader's). */
  release(): void;
}

/** A policy LlamaModel as a Trainee: model/ (a Hugging Face folder) or, with LoRA, adapter/ (PEFT's folder). */
export class PolicyTrainee implements Trainee {
  constructor(readonly model: LlamaModel) {}

  get device(): 'cpu' | 'cuda' {
    return this.model.device;
  }

  trainableParameters(): Map<string, Tensor> {
    return this.model.trainableParameters();
  }

  async saveCheckpointModel(dir: string, tokenizerFrom: string | undefined): Promise<void> {
    const m = this.model;
    // A LoRA policy saves its adapter (PEFT's folder) only; the base is the run's --model.
    if (m.adapter) m.adapter.save(path.join(dir, 'adapter'), { baseModel: tokenizerFrom ?? '' });
    else await m.save(path.join(dir, 'model'), { dtype: m.dtype === 'bf16' ? 'BF16' : 'F32', tokenizerFrom, requireFinite: true });
  }

  async saveFinal(dir: string, tokenizerDir: string): Promise<void> {
    const m = this.model;
    // LoRA: final/ is the adapter (PEFT's folder) for --model; osp merge writes the merged model.
    if (m.adapter) m.adapter.save(dir, { baseModel: tokenizerDir });
    else await m.save(dir, { dtype: m.dtype === 'bf16' ? 'BF16' : 'F32', tokenizerFrom: tokenizerDir });
  }

  async loadCheckpoint(dir: string): Promise<PolicyTrainee> {
    return new PolicyTrainee(await loadCheckpointPolicy(dir, this.model));
  }

  release(): void {
    if (this.model.adapter) this.model.adapter.dispose();
    else this.model.dispose();
  }
}

/** Writes config.json for a new run; refuses a folder that already holds a run (use --resume). */
export function startRun(runDir: string, config: object): void {
  if (fs.existsSync(path.join(runDir, 'config.json'))) {
    throw new Error(`${runDir} already holds a run (config.json exists); resume it with --resume ${runDir} or choose another --out`);
  }
  fs.mkdirSync(runDir, { recursive: true });
  writeFileAtomicSync(path.join(runDir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
}

export function readRunConfig(runDir: string): Record<string, unknown> {
  const file = path.join(runDir, 'config.json');
  if (!fs.existsSync(file)) throw new Error(`${runDir}: not a run folder (no config.json)`);
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${file}: not valid JSON: ${(e as Error).message}`);
  }
}

/** Appends one JSON line per record to runDir/samples.jsonl (one write call per batch of lines). */
export function appendSamples(runDir: string, records: object[]): void {
  if (records.length === 0) return;
  fs.appendFileSync(path.join(runDir, 'samples.jsonl'), records.map((r) => `${JSON.stringify(r)}\n`).join(''));
}

/** Drops samples.jsonl lines of steps after `step` (on resume), atomically. */
export function truncateSamples(runDir: string, step: number): void {
  const file = path.join(runDir, 'samples.jsonl');
  if (!fs.existsSync(file)) return;
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const keep = lines.filter((l) => {
    if (!l.trim()) return false;
    try {
      return (JSON.parse(l) as { step?: number }).step! <= step;
    } catch {
      return false;
    }
  });
  writeFileAtomicSync(file, keep.map((l) => `${l}\n`).join(''));
}

/**
 * Saves a checkpoint of the policy, the optimizer and the trainer state. Everything is written into
 * checkpoints/.step-N.partial first and renamed to checkpoints/step-N at the end; `latest` is
 * updated after that; older checkpoints beyond `keep` are removed last. A weight or optimizer value
 * that is NaN or infinite is never saved: the checkpoint is not written and the error names the
 * tensor and element (the previous checkpoints stay as they were).
 */
export async function saveCheckpoint(
  runDir: string,
  model: LlamaModel | Trainee,
  optimizer: AdamW,
  state: CheckpointState,
  opts: { keep?: number; tokenizerFrom?: string } = {},
): Promise<string> {
  const root = path.join(runDir, CKPT_DIR);
  fs.mkdirSync(root, { recursive: true });
  const name = checkpointName(state.step);
  const tmp = path.join(root, `.${name}.partial`);
  const final = path.join(root, name);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  try {
    await (model instanceof LlamaModel ? new PolicyTrainee(model) : model).saveCheckpointModel(tmp, opts.tokenizerFrom);
    const st = optimizer.state();
    const tensors = new Map<string, TensorToWrite>();
    for (const [n, t] of st.tensors) {
      const data = Float32Array.from(t.toArray());
      const bad = data.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) throw new Error(`optimizer state ${n}[${bad}] is ${data[bad]}; a value that is not finite is never saved`);
      tensors.set(n, { dtype: 'F32', shape: t.shape, data });
    }
    writeSafetensors(path.join(tmp, 'optimizer.safetensors'), tensors, { step: String(st.step) });
    writeFileAtomicSync(path.join(tmp, 'state.json'), `${JSON.stringify(state, null, 2)}\n`);
    fs.rmSync(final, { recursive: true, force: true });
    fs.renameSync(tmp, final);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  writeFileAtomicSync(path.join(root, 'latest'), `${name}\n`);
  const keep = opts.keep ?? 2;
  const all = fs.readdirSync(root).filter((n) => STEP_RE.test(n)).sort();
  for (const old of all.slice(0, Math.max(0, all.length - keep))) fs.rmSync(path.join(root, old), { recursive: true, force: true });
  return final;
}

/** The complete checkpoint folders of a run (those with state.json), newest first. */
export function completeCheckpoints(runDir: string): string[] {
  const root = path.join(runDir, CKPT_DIR);
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root)
    .filter((n) => STEP_RE.test(n) && fs.existsSync(path.join(root, n, 'state.json')))
    .sort()
    .reverse()
    .map((n) => path.join(root, n));
}

/** The newest complete checkpoint folder of a run (one with state.json), or null. */
export function latestCheckpoint(runDir: string): string | null {
  return completeCheckpoints(runDir)[0] ?? null;
}

/**
 * Removes what an interrupted run left behind: checkpoints/.step-N.partial folders, the temporary
 * files of atomic writes (.NAME.PID.HEX.tmp) and saveLlama's NAME.tmp-PID / NAME.old-PID folders.
 * Returns what it removed (relative to runDir).
 */
export function removeLeftovers(runDir: string): string[] {
  const removed: string[] = [];
  for (const dir of [runDir, path.join(runDir, CKPT_DIR)]) {
    if (!fs.existsSync(dir)) continue;
    for (const n of fs.readdirSync(dir)) {
      if (/^\.step-\d{8}\.partial$/.test(n) || /^\..+\.\d+\.[0-9a-f]+\.tmp$/.test(n) || /\.(tmp|old)-\d+$/.test(n)) {
        fs.rmSync(path.join(dir, n), { recursive: true, force: true });
        removed.push(path.relative(runDir, path.join(dir, n)));
      }
    }
  }
  return removed;
}

export function readCheckpointState(dir: string): CheckpointState {
  const file = path.join(dir, 'state.json');
  let s: CheckpointState;
  try {
    s = JSON.parse(fs.readFileSync(file, 'utf8')) as CheckpointState;
  } catch (e) {
    throw new Error(`${file}: cannot read the checkpoint state: ${(e as Error).message}`);
  }
  if (!(Number.isInteger(s.step) && s.step >= 0 && Number.isInteger(s.dataPosition) && s.dataPosition >= 0)) {
    throw new Error(`${file}: step and dataPosition must be non-negative integers`);
  }
  return s;
}

/**
 * A checkpoint's policy: its weights (dtype and device of `like`), or for a LoRA policy its adapter on
 * `like`'s base. Values that are not finite are an error.
 */
export async function loadCheckpointPolicy(dir: string, like: LlamaModel): Promise<LlamaModel> {
  if (like.adapter) {
    const a = like.adapter;
    return like.withAdapter(LoraAdapter.load(path.join(dir, 'adapter'), like.config, { dtype: a.dtype, device: a.device }));
  }
  return loadCheckpointModel(dir, { dtype: like.dtype, device: like.device });
}

/** Loads a checkpoint's policy weights (dtype and device as asked); weights that are not finite are an error. */
export async function loadCheckpointModel(dir: string, opts: { dtype: 'f32' | 'f64' | 'bf16'; device: 'cpu' | 'cuda' }): Promise<LlamaModel> {
  const model = await loadLlama(path.join(dir, 'model'), opts);
  const total = ops.gradSumOfSquares(Array.from(model.parameters().values()));
  const finite = Number.isFinite(total.toArray()[0]);
  total.dispose();
  if (!finite) {
    model.dispose();
    throw new Error(`${path.join(dir, 'model')}: the weights hold NaN or infinite values`);
  }
  return model;
}

/** Restores the optimizer's state from a checkpoint (after the optimizer was made over the loaded weights). */
export function loadCheckpointOptimizer(dir: string, optimizer: AdamW, device: 'cpu' | 'cuda'): void {
  const file = path.join(dir, 'optimizer.safetensors');
  const loaded = readSafetensors(file);
  for (const [n, t] of loaded) {
    const bad = (t.data as Float32Array).findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new Error(`${file}: ${n}[${bad}] is ${t.data[bad]}; the optimizer state is not finite`);
  }
  const tensors = new Map<string, Tensor>();
  for (const [n, t] of loaded) tensors.set(n, tensor(t.data as Float32Array, t.shape, { dtype: 'f32', device }));
  const state = readCheckpointState(dir);
  // The optimizer's own update count (saved with its state): PPO takes several updates per run step.
  const saved = Number(readSafetensorsHeader(file).metadata.step);
  try {
    optimizer.loadState({ step: Number.isInteger(saved) && saved >= 0 ? saved : state.step, tensors });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}
