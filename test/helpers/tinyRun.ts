// A tiny Hugging Face model folder and data files for the end-to-end tests of the training commands:
// the demo task's tokenizer (vocabulary ~226; <unk> 0, <s> 1, </s> 2), a randomly initialised
// 2-layer Llama (hidden 32) saved next to it, and JSONL data made by the demo task
// (prompts {prompt}, sft {prompt, response}, pairs {prompt, chosen, rejected, strength}).
// Written once per test file into a temporary folder (tinyRun() caches its promise).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { makePreferencePairs, makePrompts, makeSftExamples, writeDemoTokenizer } from '../../src/demo';
import { LlamaConfig } from '../../src/model/config';
import { LlamaModel } from '../../src/model/llama';
import { Tokenizer } from '../../src/model/tokenizer';
import { MetricsLog, StepMetrics } from '../../src/osp/metrics';
import { main } from '../../src/cli/index';

export interface TinyRun {
  /** The temporary folder everything lives in (removed by cleanup()). */
  root: string;
  /** The model folder: config.json, model.safetensors, tokenizer.json, tokenizer_config.json. */
  model: string;
  prompts: string;
  sft: string;
  pairs: string;
  /** Records in each data file. */
  size: number;
  /** A fresh path under root for a run folder (not created). */
  out(name: string): string;
  cleanup(): void;
}

export function tinyConfig(vocabSize: number): LlamaConfig {
  return {
    architecture: 'LlamaForCausalLM',
    modelType: 'llama',
    hiddenSize: 32,
    intermediateSize: 64,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 8,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    vocabSize,
    tieWordEmbeddings: true,
    maxPositionEmbeddings: 128,
    bosTokenId: 1,
    eosTokenId: 2,
    hiddenAct: 'silu',
    attentionBias: false,
    mlpBias: false,
  };
}

function writeJsonl(file: string, records: object[]): void {
  fs.writeFileSync(file, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
}

/** Writes the model folder and data files into a new temporary folder. */
export async function makeTinyRun(opts: { seed?: number; size?: number } = {}): Promise<TinyRun> {
  const seed = opts.seed ?? 1;
  const size = opts.size ?? 8;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-cli-'));
  const model = path.join(root, 'model');
  const tokDir = path.join(root, 'tokenizer');
  await writeDemoTokenizer(tokDir, 1);
  const tok = await Tokenizer.load(tokDir);
  const m = LlamaModel.init(tinyConfig(tok.vocabSize), { seed, dtype: 'f32', device: 'cpu' });
  try {
    await m.save(model, { tokenizerFrom: tokDir });
  } finally {
    m.dispose();
  }
  const prompts = path.join(root, 'prompts.jsonl');
  const sft = path.join(root, 'sft.jsonl');
  const pairs = path.join(root, 'pairs.jsonl');
  writeJsonl(prompts, makePrompts(size, seed, { maxLength: 4 }).map((prompt) => ({ prompt })));
  writeJsonl(sft, makeSftExamples(size, seed, { maxLength: 4 }));
  writeJsonl(pairs, makePreferencePairs(size, seed, { maxLength: 4 }));
  let n = 0;
  return {
    root,
    model,
    prompts,
    sft,
    pairs,
    size,
    out: (name) => path.join(root, `${name}-${++n}`),
    cleanup: () => fs.rmSync(root, { recursive: true, force: true }),
  };
}

let cached: Promise<TinyRun> | null = null;
/** The tiny model and data of this test file (made on the first call; each Jest test file has its own module registry). */
export function tinyRun(): Promise<TinyRun> {
  cached ??= makeTinyRun();
  return cached;
}

/** Settings that keep an online step to well under a second on the cpu (later flags win: spread this first). */
export const FAST_ONLINE = ['--k', '2', '--max-new-tokens', '6', '--batch-size', '2', '--micro-batch', '4', '--device', 'cpu', '--template', 'hh'];

/** Runs `osp ...args` in this process, capturing stderr; returns the exit code and what was written. */
export async function osp(...args: string[]): Promise<{ code: number; stderr: string }> {
  const chunks: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    return true;
  }) as typeof process.stderr.write;
  let code: number;
  try {
    code = await main(['node', 'osp', ...args]);
  } finally {
    process.stderr.write = write;
  }
  return { code, stderr: chunks.join('') };
}

export function readJsonl<T = Record<string, unknown>>(file: string): T[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as T);
}

export function readMetrics(runDir: string): StepMetrics[] {
  return readJsonl<StepMetrics>(path.join(runDir, 'metrics.jsonl'));
}

/** Fields that depend on the clock, not on the computation. */
export function withoutTimings(m: StepMetrics): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(m)) if (!/seconds|elapsed|PerSecond/i.test(k)) out[k] = v;
  return out;
}

export function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/**
 * Sends this process a Ctrl-C (the CLI's SIGINT handler) right after metrics line `step` is
 * written. Undo with jest.restoreAllMocks() (or the returned spy's mockRestore()).
 */
export function ctrlCAfterStep(step: number): jest.SpyInstance {
  const append = MetricsLog.prototype.append;
  return jest.spyOn(MetricsLog.prototype, 'append').mockImplementation(function (this: MetricsLog, m) {
    append.call(this, m);
    if (m.step === step) process.emit('SIGINT');
  });
}
