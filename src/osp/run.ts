// A run folder that can be trusted and resumed:
//   config.json         the resolved configuration (written once, atomically)
//   metrics.jsonl       one line per optimizer step (MetricsLog)
//   samples.jsonl       what each step saw: prompts, responses, judge scores, pairs, targets
//   checkpoints/step-N/ model/ (a Hugging Face folder), optimizer.safetensors (AdamW moments and f32
//                       master weights), state.json (step, data position, seed) -- written under a
//                       temporary name and renamed, so a kill mid-write leaves the previous one intact
//   checkpoints/latest  the name of the newest complete checkpoint
//   report.html         plots of metrics.jsonl (report.ts)
import * as fs from 'fs';
import * as path from 'path';
import { LlamaModel, loadLlama } from '../model/llama';
import { AdamW } from '../model/optim';
import { readSafetensors, writeSafetensors, TensorToWrite } from '../model/safetensors';
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
 * updated after that; older checkpoints beyond `keep` are removed last.
 */
export async function saveCheckpoint(
  runDir: string,
  model: LlamaModel,
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
    await model.save(path.join(tmp, 'model'), { dtype: model.dtype === 'bf16' ? 'BF16' : 'F32', tokenizerFrom: opts.tokenizerFrom });
    const st = optimizer.state();
    const tensors = new Map<string, TensorToWrite>();
    for (const [n, t] of st.tensors) tensors.set(n, { dtype: 'F32', shape: t.shape, data: Float32Array.from(t.toArray()) });
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

/** The newest complete checkpoint folder of a run (one with state.json), or null. */
export function latestCheckpoint(runDir: string): string | null {
  const root = path.join(runDir, CKPT_DIR);
  if (!fs.existsSync(root)) return null;
  const complete = fs
    .readdirSync(root)
    .filter((n) => STEP_RE.test(n) && fs.existsSync(path.join(root, n, 'state.json')))
    .sort();
  return complete.length ? path.join(root, complete[complete.length - 1]) : null;
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

/** Loads a checkpoint's policy weights (dtype and device as asked). */
export async function loadCheckpointModel(dir: string, opts: { dtype: 'f32' | 'f64' | 'bf16'; device: 'cpu' | 'cuda' }): Promise<LlamaModel> {
  return loadLlama(path.join(dir, 'model'), opts);
}

/** Restores the optimizer's state from a checkpoint (after the optimizer was made over the loaded weights). */
export function loadCheckpointOptimizer(dir: string, optimizer: AdamW, device: 'cpu' | 'cuda'): void {
  const file = path.join(dir, 'optimizer.safetensors');
  const loaded = readSafetensors(file);
  const tensors = new Map<string, Tensor>();
  for (const [n, t] of loaded) tensors.set(n, tensor(t.data as Float32Array, t.shape, { dtype: 'f32', device }));
  const state = readCheckpointState(dir);
  try {
    optimizer.loadState({ step: state.step, tensors });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}
