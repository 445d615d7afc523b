// The trainer as a library: osp.train / selfReward / dpo / sft / augment take typed settings
// (settings.ts), check them, the model folders and the data before anything is written, then run
// the shared loop (loop.ts) in a run folder (run.ts) with checkpoints and resume. osp.resume(runDir)
// continues a run from its saved config.json and last complete checkpoint. The CLI (src/cli/train.ts),
// `osp demo` and scripts/repro-mini.ts all come through here; progress and Ctrl-C reach the trainer
// through TrainerHooks.
import * as fs from 'fs';
import * as path from 'path';
import { RecordKind, readRecords } from '../data';
import { score as demoScore } from '../demo/task';
import { backends, defaultDevice } from '../device';
import { Judge } from '../judge/judge';
import { JudgeTemplate, loadJudgeTemplate } from '../judge/templates';
import { loadLlamaConfig } from '../model/config';
import type { LlamaConfig } from '../model/config';
import { Tensor } from '../tensor';
import { isAdapterFolder } from '../model/lora';
import { AdamW } from '../model/optim';
import { Tokenizer } from '../model/tokenizer';
import { LoopResult, StepFn, runLoop } from './loop';
import { MemoryPlan } from '../model/memoryPlan';
import { checkRunFits, dryRunPlan, recordLengths } from './memoryCheck';
import { MetricsLog, StepMetrics } from './metrics';
import { writeFileAtomicSync } from '../util/atomicWrite';
import { StageEvents, offlineStep, onlineStep, rewardModelStepFn, sftStepFn } from './modes';
import { RewardModel, loadBackbone, readBackboneConfig, readSeqClsAdapterConfig } from '../model/rewardModel';
import { seededUniform, shuffleInPlace } from '../util/random';
import { ScoredPair, SftExample, orientPair } from './objective';
import { FrozenModels, checkModelDir, loadPolicy } from './models';
import { PpoTrainee, ValueHead, ppoStepFn } from './ppo';
import { learningRate } from '../model/schedule';
export { checkModelDir };
import { PolicyTrainee, Trainee, completeCheckpoints, loadCheckpointOptimizer, readCheckpointState, readRunConfig, removeLeftovers, startRun, truncateSamples } from './run';
export type { AugmentSettings, DpoSettings, PpoSettings, RewardModelSettings, SelfRewardSettings, SftSettings, TrainSettings } from './settings';
import {
  AugmentSettings, DpoSettings, LoopSettings, PpoSettings, RewardModelSettings, ResolvedSettings, SelfRewardSettings, SettingsError, SftSettings, TrainSettings, TrainerCommand, resolveSettings, warmupStepsOf,
} from './settings';

export interface TrainerHooks extends StageEvents {
  /** The run is about to take its first step (or its first step after a resume). */
  onStart?(info: { runDir: string; totalSteps: number; startStep: number }): void;
  /** After each optimizer step: its metrics and a one-line summary. */
  onStepDone?(m: StepMetrics, summary: string): void;
  /** Checked after each step: true finishes the run early with a checkpoint (Ctrl-C). */
  stopRequested?(): boolean;
  /** Notices (skipped records, resume details); default: stderr. */
  notice?(line: string): void;
}

export interface RunResult extends LoopResult {
  runDir: string;
  command: TrainerCommand;
  /** The final Hugging Face folder (runDir/final), or null when the run was stopped early. */
  finalDir: string | null;
  /** With dryRun: the memory plan and its table (nothing was loaded or written). */
  dryRun?: { plan: MemoryPlan; table: string };
}

function fail(setting: string, problem: string, value?: string): never {
  throw new SettingsError(setting, problem, value);
}

/** The data a setting names is malformed (exit 1 on the command line, not 2). */
function failData(setting: string, problem: string, value?: string): never {
  throw new SettingsError(setting, problem, value, 'data');
}

/** The device a setting names, or the default; cuda without a GPU is an error naming the setting. */
export function resolveDevice(d: 'cpu' | 'cuda' | undefined): 'cpu' | 'cuda' {
  if (d === undefined) return defaultDevice();
  if (d === 'cuda' && !backends().cuda.available) {
    const b = backends().cuda;
    fail('device', `no CUDA device is available (${b.compiled ? b.reason : 'osp was built without CUDA'})`, 'cuda');
  }
  return d;
}

/** The dtype a setting names, or the default for the device (bf16 on cuda, f32 on the cpu). */
export function resolveDtype(d: 'f32' | 'bf16' | undefined, device: 'cpu' | 'cuda'): 'f32' | 'bf16' {
  if (d === undefined) return device === 'cuda' ? 'bf16' : 'f32';
  if (d === 'bf16' && device === 'cpu') fail('dtype', 'runs on cuda only; on the cpu use f32', 'bf16');
  return d;
}

/** A --judge or --reference folder: a Hugging Face model folder, or a PEFT adapter folder for --model. */
function checkRoleDir(setting: string, dir: string): void {
  if (fs.existsSync(dir) && isAdapterFolder(dir)) return;
  checkModelDir(setting, dir, setting === 'judge');
}

/** Where a command's notices go: the hook, else stderr. */
function noticeOf(hooks: TrainerHooks): (line: string) => void {
  return hooks.notice ?? ((l: string) => process.stderr.write(`${l}\n`));
}

/** The device and dtype a command's settings resolve to. */
function placementOf(s: { device?: 'cpu' | 'cuda'; dtype?: 'f32' | 'bf16' }): { device: 'cpu' | 'cuda'; dtype: 'f32' | 'bf16' } {
  const device = resolveDevice(s.device);
  return { device, dtype: resolveDtype(s.dtype, device) };
}

/** The judge template named by a setting: hh, tldr or a template file. */
export function judgeTemplateOf(setting: string, t: string): 'hh' | 'tldr' | JudgeTemplate {
  if (t === 'hh' || t === 'tldr') return t;
  try {
    return loadJudgeTemplate(t);
  } catch (e) {
    fail(setting, `${(e as Error).message.replace(/^judge template file [^:]*: /, '')} (expected hh, tldr or a template file with {prompt}, {a}, {b})`, t);
  }
}

/** Reads a data file's records, reporting skipped ones through `notice`; an empty result is an error naming the setting. */
export async function readDataSetting<K extends RecordKind>(setting: string, file: string, kind: K, s: { skipBad?: boolean; limit?: number; sample?: number; seed?: number }, notice: (l: string) => void) {
  if (!fs.existsSync(file)) fail(setting, `no such file`, file);
  let r;
  try {
    r = await readRecords(file, kind, { skipBad: Boolean(s.skipBad), limit: s.limit });
  } catch (e) {
    failData(setting, (e as Error).message, file);
  }
  if (r.skipped > 0) notice(`${file}: skipped ${r.skipped} malformed record(s); first: ${r.problems[0]}`);
  if (r.records.length === 0) failData(setting, `no usable ${kind} records`, file);
  if (s.sample !== undefined && s.sample < r.records.length) {
    // --sample N: a random subset of N records (seeded by --seed), kept in the file's order.
    const picked = sampleIndices(r.records.length, s.sample, s.seed ?? 0);
    return Object.assign(picked.map((i) => r.records[i]), { where: picked.map((i) => r.where[i]) });
  }
  // The records, each with where it came from (file:line), for errors about one record.
  return Object.assign(r.records, { where: r.where });
}

/** n of the indices 0..size-1, chosen uniformly (the first n of a seeded shuffle), in increasing order. */
export function sampleIndices(size: number, n: number, seed: number): number[] {
  const idx = shuffleInPlace(Array.from({ length: size }, (_, i) => i), seededUniform((seed ^ 0x5eed5a3e) >>> 0));
  return idx.slice(0, n).sort((a, b) => a - b);
}

function totalSteps(s: LoopSettings, dataSize: number, what: string): number {
  if (s.batchSize > dataSize) fail('batchSize', `is larger than the data (${dataSize} records in ${what})`, String(s.batchSize));
  return s.steps ?? Math.max(1, Math.floor((s.epochs * dataSize) / s.batchSize));
}

function eosOf(tok: Tokenizer, config: LlamaConfig): number | undefined {
  const c = config.eosTokenId;
  return tok.eosTokenId ?? (Array.isArray(c) ? c[0] : c);
}

/** Every record fits the model's context (lengths in tokens; `extra` more positions each, e.g. the tokens to generate). */
function checkContext(setting: string, ctx: number, lengths: number[], where: string[], extra = 0): void {
  const i = lengths.findIndex((n) => n + extra > ctx);
  if (i < 0) return;
  const need = extra ? ` + ${extra} new tokens (maxNewTokens) = ${lengths[i] + extra} positions` : '';
  failData(setting, `${where[i]}: the record is ${lengths[i]} tokens${need}, more than the model's context (${ctx}); shorten it or raise max_position_embeddings`);
}

async function encodePairs(tok: Tokenizer, records: { prompt: string; chosen: string; rejected: string; strength?: number }[], eos: number | undefined): Promise<ScoredPair[]> {
  const prompts = await tok.encodeBatch(records.map((r) => r.prompt));
  const chosen = await tok.encodeBatch(records.map((r) => r.chosen), { addSpecialTokens: false });
  const rejected = await tok.encodeBatch(records.map((r) => r.rejected), { addSpecialTokens: false });
  const withEos = (t: Int32Array) => (eos === undefined ? t : Int32Array.from([...t, eos]));
  return records.map((r, i) => ({ prompt: prompts[i], chosen: withEos(chosen[i]), rejected: withEos(rejected[i]), target: r.strength ?? 1 }));
}

async function encodeSft(tok: Tokenizer, records: { prompt: string; response: string }[], eos: number | undefined): Promise<SftExample[]> {
  const prompts = await tok.encodeBatch(records.map((r) => r.prompt));
  const responses = await tok.encodeBatch(records.map((r) => r.response), { addSpecialTokens: false });
  return records.map((_, i) => ({ prompt: prompts[i], response: eos === undefined ? responses[i] : Int32Array.from([...responses[i], eos]) }));
}

const fmt = (v: number | null | undefined, digits = 3) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits));

/** A prepared run: where, with what settings, resumed or new. */
interface Prepared<C extends TrainerCommand> {
  command: C;
  runDir: string;
  settings: ResolvedSettings<C>;
  resuming: boolean;
}

/** Settings that name files or folders: stored absolute in config.json, so a run resumes from any working folder. */
const PATH_SETTINGS = ['out', 'model', 'judge', 'reference', 'prompts', 'pairs', 'data', 'adapter', 'rewardModel'] as const;

function prepareNew<C extends TrainerCommand>(command: C, raw: unknown): Prepared<C> {
  const settings = resolveSettings(command, raw);
  const bag = settings as Record<string, unknown>;
  for (const k of PATH_SETTINGS) if (typeof bag[k] === 'string') bag[k] = path.resolve(bag[k] as string);
  if (typeof bag.template === 'string' && bag.template !== 'hh' && bag.template !== 'tldr') bag.template = path.resolve(bag.template);
  if (settings.dryRun) return { command, runDir: settings.out ?? '', settings, resuming: false };
  if (!settings.out) fail('out', 'expected a folder for the run (or --resume RUN_DIR to continue one)');
  const runDir = settings.out;
  if (fs.existsSync(path.join(runDir, 'config.json'))) fail('out', `that folder already holds a run; continue it with --resume ${runDir} or choose another --out`, runDir);
  return { command, runDir, settings, resuming: false };
}

/**
 * Loads the policy (from the last checkpoint when resuming), writes config.json for a new run
 * (only now: settings, models and data have all been checked), and runs the loop.
 */
async function runTraining<C extends TrainerCommand, M extends Trainee>(
  p: Prepared<C>,
  policy: M,
  extra: { dataSize: number; steps: number; tokenizerDir: string; config: object },
  /** The step function of the trained model; PPO takes its inner updates with the run's optimizer. */
  makeStep: (policy: M, optimizer: AdamW) => StepFn,
  describe: (m: StepMetrics) => string,
  hooks: TrainerHooks,
): Promise<RunResult> {
  const s = p.settings as LoopSettings;
  const notice = noticeOf(hooks);
  let startStep = 0;
  let startPosition = 0;
  let startElapsed = 0;
  let model: M = policy;
  let ckpt: string | null = null;
  let optimizer: AdamW | null = null;
  if (p.resuming) {
    const gone = removeLeftovers(p.runDir);
    if (gone.length) notice(`${p.runDir}: removed what an interrupted run left behind: ${gone.join(', ')}`);
    // The newest complete checkpoint that loads; a corrupt one (unreadable, NaN weights or state) is
    // reported and the one before it is tried.
    for (const dir of completeCheckpoints(p.runDir)) {
      let candidate: M | null = null;
      try {
        const st = readCheckpointState(dir);
        candidate = (await policy.loadCheckpoint(dir)) as M;
        const opt = new AdamW(candidate.trainableParameters(), { lr: s.lr, weightDecay: s.weightDecay, maxGradNorm: s.maxGradNorm });
        try {
          loadCheckpointOptimizer(dir, opt, candidate.device);
        } catch (e) {
          opt.dispose();
          throw e;
        }
        startStep = st.step;
        startPosition = st.dataPosition;
        startElapsed = typeof st.extra?.elapsedSeconds === 'number' ? st.extra.elapsedSeconds : 0;
        ckpt = dir;
        optimizer = opt;
        model = candidate;
        break;
      } catch (e) {
        if (candidate) candidate.release();
        notice(`${path.basename(dir)} cannot be resumed from (${(e as Error).message}); trying the checkpoint before it`);
      }
    }
    if (ckpt) {
      policy.release();
      new MetricsLog(path.join(p.runDir, 'metrics.jsonl')).truncateAfter(startStep);
      truncateSamples(p.runDir, startStep);
      notice(`resuming ${p.runDir} from ${path.basename(ckpt)} (step ${startStep} of ${extra.steps})`);
    } else {
      new MetricsLog(path.join(p.runDir, 'metrics.jsonl')).truncateAfter(0);
      truncateSamples(p.runDir, 0);
      notice(`resuming ${p.runDir}: no usable checkpoint, starting from step 0`);
    }
  } else {
    startRun(p.runDir, { command: p.command, settings: p.settings, ...extra.config, created: new Date().toISOString() });
  }
  optimizer ??= new AdamW(model.trainableParameters(), { lr: s.lr, weightDecay: s.weightDecay, maxGradNorm: s.maxGradNorm });
  try {
    hooks.onStart?.({ runDir: p.runDir, totalSteps: extra.steps, startStep });
    const result = await runLoop(
      {
        runDir: p.runDir, policy: model, optimizer, dataSize: extra.dataSize, batchSize: s.batchSize, totalSteps: extra.steps, seed: s.seed, lr: s.lr,
        schedule: s.schedule, warmupSteps: warmupStepsOf(s, extra.steps), minLrRatio: s.minLrRatio, saveEvery: s.saveEvery, keepCheckpoints: s.keep,
        tokenizerDir: extra.tokenizerDir, startStep, startPosition, startElapsed, title: `osp ${p.command}`, config: { command: p.command, ...s },
      },
      makeStep(model, optimizer),
      { onStepDone: (m) => hooks.onStepDone?.(m, describe(m)), stopRequested: hooks.stopRequested },
    );
    let finalDir: string | null = null;
    if (!result.stopped) {
      finalDir = path.join(p.runDir, 'final');
      await model.saveFinal(finalDir, extra.tokenizerDir);
    }
    return { ...result, runDir: p.runDir, command: p.command, finalDir };
  } finally {
    optimizer.dispose();
    model.release();
  }
}

// ---- the commands ---------------------------------------------------------------------------------

async function online<C extends 'train' | 'self-reward'>(p: Prepared<C>, hooks: TrainerHooks): Promise<RunResult> {
  const s = p.settings as ResolvedSettings<'train'> | ResolvedSettings<'self-reward'>;
  const notice = noticeOf(hooks);
  checkModelDir('model', s.model);
  if (s.judge) checkRoleDir('judge', s.judge);
  if (s.reference) checkRoleDir('reference', s.reference);
  const template = judgeTemplateOf('template', s.template);
  const records = await readDataSetting('prompts', s.prompts, s.format, s, notice);
  const prompts = records.map((r) => r.prompt);
  const steps = totalSteps(s, prompts.length, `prompts ${s.prompts}`);
  const { device, dtype } = placementOf(s);
  const tokenizer = await Tokenizer.load(s.model);
  // Every prompt and its longest answer fit the context: checked now, naming file:line, not at a step.
  const lengths = (await tokenizer.encodeBatch(prompts)).map((t) => t.length);
  const config = loadLlamaConfig(s.model);
  checkContext('prompts', config.maxPositionEmbeddings, lengths, records.where, s.maxNewTokens);
  // SPIN pairs the data's own response (sft: response; pairs, hh, tldr: chosen) against the samples.
  let references: Int32Array[] | undefined;
  if (s.pairing === 'spin') {
    if (s.format === 'prompts') fail('pairing', "spin needs the data's responses: give --format sft, pairs, hh or tldr data (prompts records have none)", 'spin');
    const eos = eosOf(tokenizer, config);
    const texts = records.map((r) => ('response' in r ? r.response : (r as { chosen: string }).chosen));
    references = (await tokenizer.encodeBatch(texts, { addSpecialTokens: false })).map((t) => (eos === undefined ? t : Int32Array.from([...t, eos])));
    checkContext('prompts', config.maxPositionEmbeddings, lengths.map((n, i) => n + references![i].length), records.where);
  }
  if (s.sampling === 'rso' && s.rsoCandidates !== undefined && s.rsoCandidates < s.k) fail('rsoCandidates', `is below K (${s.k}); RSO accepts K of them`, String(s.rsoCandidates));
  if (s.rsoRewardModel !== undefined) {
    if (s.sampling !== 'rso') fail('rsoRewardModel', `is used only with --sampling rso (sampling is ${s.sampling})`, s.rsoRewardModel);
    if (!fs.existsSync(s.rsoRewardModel) || !fs.statSync(s.rsoRewardModel).isDirectory()) fail('rsoRewardModel', 'no such folder', s.rsoRewardModel);
  }
  checkRunFits(p.command, s, { promptLength: Math.max(...lengths), responseLength: s.maxNewTokens, source: 'the data' });
  const { policy, base } = await loadPolicy(s, { device, dtype });
  // The frozen reference: the SFT model unless another folder is named (the augmented judge may be
  // both reference and judge: one copy serves both when the folders are the same). The judge
  // defaults to the reference. With LoRA, every role shares the base's weights.
  const frozen = new FrozenModels(s.model, base, { device, dtype });
  let rsoModel: RewardModel | null = null;
  try {
    const reference = await frozen.role('reference', s.reference);
    const sameAsReference = s.judge === undefined || path.resolve(s.judge) === path.resolve(s.reference ?? s.model);
    const judgeModel = sameAsReference ? reference : await frozen.role('judge', s.judge);
    const judgeTok = s.judge && !isAdapterFolder(s.judge) ? await Tokenizer.load(s.judge) : tokenizer;
    if (reference.config.vocabSize !== policy.config.vocabSize) {
      fail('reference', `its vocabulary has ${reference.config.vocabSize} tokens; the policy's has ${policy.config.vocabSize} (expected the same tokenizer)`, s.reference);
    }
    const judge = await Judge.create(judgeModel, judgeTok, { template, maxLength: s.judgeMaxLength, batchSize: s.judgeBatch });
    if (s.rsoRewardModel !== undefined) {
      try {
        rsoModel = await RewardModel.load(s.rsoRewardModel, { device, dtype });
      } catch (e) {
        failData('rsoRewardModel', (e as Error).message, s.rsoRewardModel);
      }
      if (!rsoModel.tokenizer) failData('rsoRewardModel', 'has no tokenizer.json (in the folder or its base)', s.rsoRewardModel);
    }
    const rewardModel = rsoModel;
    const rsoRewards = rewardModel ? (ps: string[], rs: string[]) => rewardModel.rewards(ps, rs, { microBatch: s.microBatch }) : undefined;
    return await runTraining(p, new PolicyTrainee(policy), { dataSize: prompts.length, steps, tokenizerDir: s.model, config: { dataRecords: prompts.length, totalSteps: steps } },
      ({ model: pol }) =>
        onlineStep({ policy: pol, reference, judge, tokenizer }, prompts, {
          loss: s.loss, pairing: s.pairing, sampling: s.sampling, rsoCandidates: s.rsoCandidates, rsoBeta: s.rsoBeta, rsoRewards, references,
          k: s.k, beta: s.beta, microBatch: s.microBatch, temperature: s.temperature, topP: s.topP, maxNewTokens: s.maxNewTokens, recompute: s.recompute,
          scorer: s.scorer === 'demo' ? demoScore : undefined,
        }, hooks),
      (m) => `loss ${fmt(m.loss)} | pHat ${fmt(m.pHatMean)} target ${fmt(m.targetMean)} | len ${fmt(m.responseLengthMean, 1)} | generate ${fmt(m.tokensPerSecond, 0)} tok/s, judge ${fmt(m.pairsPerSecond, 1)} pairs/s, train ${fmt(m.secondsTrain, 2)} s`,
      hooks);
  } finally {
    rsoModel?.dispose();
    frozen.release();
    base?.dispose();
  }
}

async function offline(p: Prepared<'dpo'>, hooks: TrainerHooks): Promise<RunResult> {
  const s = p.settings;
  const notice = noticeOf(hooks);
  checkModelDir('model', s.model);
  if (s.judge) checkRoleDir('judge', s.judge);
  const template = s.loss === 'spce' && s.labels === 'judge' ? judgeTemplateOf('template', s.template) : null;
  const records = await readDataSetting('pairs', s.pairs, s.format, s, notice);
  const steps = totalSteps(s, records.length, `pairs ${s.pairs}`);
  const { device, dtype } = placementOf(s);
  const tokenizer = await Tokenizer.load(s.model);
  checkRunFits(p.command, s, await recordLengths(p.command, s, tokenizer, records));
  const { policy, base } = await loadPolicy(s, { device, dtype });
  const frozen = new FrozenModels(s.model, base, { device, dtype });
  try {
    const reference = await frozen.sft();
    const pairs = await encodePairs(tokenizer, records, eosOf(tokenizer, policy.config));
    checkContext('pairs', policy.config.maxPositionEmbeddings, pairs.map((q) => q.prompt.length + Math.max(q.chosen.length, q.rejected.length)), records.where);
    if (template) {
      const jm = await frozen.role('judge', s.judge);
      {
        const judge = await Judge.create(jm, s.judge && !isAdapterFolder(s.judge) ? await Tokenizer.load(s.judge) : tokenizer, { template, maxLength: s.judgeMaxLength, batchSize: s.judgeBatch });
        for (let i = 0; i < records.length; i += 64) {
          const prefs = await judge.preferences(records.slice(i, i + 64).map((r) => ({ prompt: r.prompt, a: r.chosen, b: r.rejected })));
          prefs.forEach((q, j) => (pairs[i + j].target = q.p));
          hooks.onStage?.('judge', { step: 0, done: Math.min(records.length, i + 64), total: records.length });
        }
      }
    }
    const oriented = pairs.map((q) => ({ prompt: q.prompt, ...orientPair(q) }));
    return await runTraining(p, new PolicyTrainee(policy), { dataSize: oriented.length, steps, tokenizerDir: s.model, config: { dataRecords: records.length, totalSteps: steps } },
      ({ model: pol }) => offlineStep({ policy: pol, reference }, oriented, { loss: s.loss, beta: s.beta, microBatch: s.microBatch, recompute: s.recompute }),
      (m) => `loss ${fmt(m.loss)} | pHat ${fmt(m.pHatMean)} | margin ${fmt(m.marginMean)} | ${fmt(m.tokensPerSecond, 0)} tok/s`,
      hooks);
  } finally {
    frozen.release();
    base?.dispose();
  }
}

async function supervised(p: Prepared<'sft'>, hooks: TrainerHooks): Promise<RunResult> {
  const s = p.settings;
  const notice = noticeOf(hooks);
  checkModelDir('model', s.model);
  const read = s.format === 'sft' ? await readDataSetting('data', s.data, 'sft', s, notice) : await readDataSetting('data', s.data, s.format, s, notice);
  const records = read.map((r) => ({ prompt: r.prompt, response: 'response' in r ? r.response : r.chosen }));
  const steps = totalSteps(s, records.length, `data ${s.data}`);
  const { device, dtype } = placementOf(s);
  const tokenizer = await Tokenizer.load(s.model);
  checkRunFits(p.command, s, await recordLengths(p.command, s, tokenizer, records));
  const { policy: model, base } = await loadPolicy(s, { device, dtype });
  try {
    const examples = await encodeSft(tokenizer, records, eosOf(tokenizer, model.config));
    checkContext('data', model.config.maxPositionEmbeddings, examples.map((e) => e.prompt.length + e.response.length), read.where);
    return await runTraining(p, new PolicyTrainee(model), { dataSize: examples.length, steps, tokenizerDir: s.model, config: { dataRecords: records.length, totalSteps: steps } },
      ({ model: m }) => sftStepFn(m, examples, { microBatch: s.microBatch, recompute: s.recompute }), (m) => `loss ${fmt(m.loss)} | ${fmt(m.tokensPerSecond, 0)} tok/s`, hooks);
  } finally {
    base?.dispose();
  }
}

async function augmentation(p: Prepared<'augment'>, hooks: TrainerHooks): Promise<RunResult> {
  const s = p.settings;
  const notice = noticeOf(hooks);
  checkModelDir('model', s.model);
  const template = judgeTemplateOf('template', s.template);
  const records = await readDataSetting('pairs', s.pairs, s.format, s, notice);
  const { device, dtype } = placementOf(s);
  const tokenizer = await Tokenizer.load(s.model);
  checkRunFits(p.command, s, await recordLengths(p.command, s, tokenizer, records));
  const { policy: model, base } = await loadPolicy(s, { device, dtype });
  try {
    const judge = await Judge.create(model, tokenizer, { template, maxLength: s.judgeMaxLength });
    // Both orders of each pair (or, with orders 'split', the first half as A and the second half as
    // B, each pair once: the paper's two 1% slices), the preferred side found by orientPair; 0.5
    // teaches nothing.
    const items: { prompt: string; a: string; b: string; answer: number }[] = [];
    const usable = records.filter((r) => (r.strength ?? 1) !== 0.5);
    usable.forEach((r, i) => {
      const { chosen: w, rejected: l } = orientPair({ chosen: r.chosen, rejected: r.rejected, target: r.strength ?? 1 });
      const asA = { prompt: r.prompt, a: w, b: l, answer: judge.answerTokens.a };
      const asB = { prompt: r.prompt, a: l, b: w, answer: judge.answerTokens.b };
      if (s.orders === 'both') items.push(asA, asB);
      else items.push(i < Math.ceil(usable.length / 2) ? asA : asB);
    });
    if (items.length === 0) failData('pairs', `every pair has strength 0.5; nothing to learn`, s.pairs);
    const instructions = await judge.instructions(items);
    const examples: SftExample[] = items.map((it, i) => ({ prompt: instructions[i], response: Int32Array.of(it.answer) }));
    const steps = totalSteps(s, examples.length, `pairs ${s.pairs} (${s.orders === 'both' ? '2 examples per pair' : 'one example per pair'})`);
    return await runTraining(p, new PolicyTrainee(model), { dataSize: examples.length, steps, tokenizerDir: s.model, config: { dataRecords: records.length, examples: examples.length, totalSteps: steps } },
      ({ model: m }) => sftStepFn(m, examples, { microBatch: s.microBatch, recompute: s.recompute }), (m) => `loss ${fmt(m.loss)} | ${fmt(m.tokensPerSecond, 0)} tok/s`, hooks);
  } finally {
    base?.dispose();
  }
}

/** A reward model as what runTraining trains: model/ (a LlamaForSequenceClassification folder) or adapter/ (PEFT SEQ_CLS) in checkpoints. */
class RewardTrainee implements Trainee {
  constructor(readonly model: RewardModel) {}

  get device(): 'cpu' | 'cuda' {
    return this.model.device;
  }

  trainableParameters(): Map<string, Tensor> {
    return this.model.trainableParameters();
  }

  private diskDtype(): 'F32' | 'BF16' {
    return this.model.backbone.dtype === 'bf16' ? 'BF16' : 'F32';
  }

  async saveCheckpointModel(dir: string, tokenizerFrom: string | undefined): Promise<void> {
    if (this.model.backbone.adapter) this.model.save(path.join(dir, 'adapter'), { baseModel: tokenizerFrom });
    else this.model.save(path.join(dir, 'model'), { dtype: this.diskDtype(), tokenizerFrom });
  }

  async saveFinal(dir: string, tokenizerDir: string): Promise<void> {
    this.model.save(dir, { dtype: this.diskDtype(), tokenizerFrom: tokenizerDir, baseModel: tokenizerDir });
  }

  async loadCheckpoint(dir: string): Promise<RewardTrainee> {
    const m = this.model;
    if (m.backbone.adapter) {
      const adapterDir = path.join(dir, 'adapter');
      return new RewardTrainee(RewardModel.onBase(m.backbone, adapterDir, readSeqClsAdapterConfig(adapterDir).spec, m.config, false));
    }
    const loaded = await RewardModel.load(path.join(dir, 'model'), { device: m.device, dtype: m.backbone.dtype });
    loaded.tokenizer = null;
    return new RewardTrainee(loaded);
  }

  release(): void {
    this.model.dispose();
  }
}

/** The pairs held out of a reward model's training: max(1, round(fraction n)) of n, a seeded draw. */
export function heldOutSplit(n: number, fraction: number, seed: number): { train: number[]; heldOut: number[] } {
  const count = Math.max(1, Math.round(fraction * n));
  const order = shuffleInPlace(Array.from({ length: n }, (_, i) => i), seededUniform((seed ^ 0x5eed0e7a) >>> 0));
  const held = new Set(order.slice(0, count));
  return { train: order.filter((_, i) => i >= count).sort((a, b) => a - b), heldOut: [...held].sort((a, b) => a - b) };
}

async function rewardModelRun(p: Prepared<'reward-model'>, hooks: TrainerHooks): Promise<RunResult> {
  const s = p.settings;
  const notice = noticeOf(hooks);
  checkModelDir('model', s.model);
  const all = await readDataSetting('pairs', s.pairs, s.format, s, notice);
  // A pair of strength 0.5 prefers neither side: Bradley-Terry has nothing to learn from it.
  const kept = all.map((_, i) => i).filter((i) => (all[i].strength ?? 1) !== 0.5);
  const records = kept.map((i) => all[i]);
  const where = kept.map((i) => all.where[i]);
  if (records.length < all.length) notice(`${s.pairs}: left out ${all.length - records.length} pair(s) of strength 0.5 (no preference)`);
  if (records.length < 2) failData('pairs', `${records.length} usable pair(s); a reward model needs at least 2 (one is held out)`, s.pairs);
  const split = heldOutSplit(records.length, s.evalFraction, s.seed);
  const steps = totalSteps(s, split.train.length, `pairs ${s.pairs} (${split.train.length} after holding out ${split.heldOut.length})`);
  const { device, dtype } = placementOf(s);
  const tokenizer = await Tokenizer.load(s.model);
  checkRunFits(p.command, s, await recordLengths(p.command, s, tokenizer, records));
  const { policy: backbone, base } = await loadPolicy(s, { device, dtype }, loadBackbone);
  try {
    const encoded = await encodePairs(tokenizer, records, eosOf(tokenizer, backbone.config));
    checkContext('pairs', backbone.config.maxPositionEmbeddings, encoded.map((q) => q.prompt.length + Math.max(q.chosen.length, q.rejected.length)), where);
    const oriented = encoded.map((q) => ({ prompt: q.prompt, ...orientPair(q) }));
    const train = split.train.map((i) => oriented[i]);
    const heldOut = split.heldOut.map((i) => oriented[i]);
    const rm = RewardModel.init(backbone, { seed: s.seed, config: readBackboneConfig(s.model), freeAdapter: backbone.adapter !== null });
    return await runTraining(
      p,
      new RewardTrainee(rm),
      { dataSize: train.length, steps, tokenizerDir: s.model, config: { dataRecords: all.length, trainPairs: train.length, heldOutPairs: heldOut.length, totalSteps: steps } },
      ({ model }) => rewardModelStepFn(model, train, heldOut, { microBatch: s.microBatch, recompute: s.recompute, evalEvery: s.evalEvery, totalSteps: steps }),
      (m) => `loss ${fmt(m.loss)} | accuracy ${fmt(m.accuracy, 2)} | held-out ${fmt(m.evalAccuracy, 3)} | margin ${fmt(m.marginMean)} | ${fmt(m.tokensPerSecond, 0)} tok/s`,
      hooks,
    );
  } finally {
    base?.dispose();
  }
}

/** PPO against a reward model (METHOD.md section 9; the step in ppo.ts). */
async function ppoRun(p: Prepared<'ppo'>, hooks: TrainerHooks): Promise<RunResult> {
  const s = p.settings;
  const notice = noticeOf(hooks);
  checkModelDir('model', s.model);
  if (!fs.existsSync(s.rewardModel) || !fs.statSync(s.rewardModel).isDirectory()) fail('rewardModel', 'no such folder', s.rewardModel);
  const records = await readDataSetting('prompts', s.prompts, s.format, s, notice);
  const prompts = records.map((r) => r.prompt);
  const steps = totalSteps(s, prompts.length, `prompts ${s.prompts}`);
  const { device, dtype } = placementOf(s);
  const tokenizer = await Tokenizer.load(s.model);
  const lengths = (await tokenizer.encodeBatch(prompts)).map((t) => t.length);
  checkContext('prompts', loadLlamaConfig(s.model).maxPositionEmbeddings, lengths, records.where, s.maxNewTokens);
  checkRunFits(p.command, s, { promptLength: Math.max(...lengths), responseLength: s.maxNewTokens, source: 'the data' });
  const { policy, base } = await loadPolicy(s, { device, dtype });
  const frozen = new FrozenModels(s.model, base, { device, dtype });
  let rm: RewardModel | null = null;
  try {
    const reference = await frozen.sft();
    try {
      rm = await RewardModel.load(s.rewardModel, { device, dtype });
    } catch (e) {
      failData('rewardModel', (e as Error).message, s.rewardModel);
    }
    if (rm.backbone.config.vocabSize !== policy.config.vocabSize) {
      failData('rewardModel', `has a vocabulary of ${rm.backbone.config.vocabSize} tokens, --model ${policy.config.vocabSize}; PPO scores the policy's tokens directly, so both must share the tokenizer`, s.rewardModel);
    }
    if (rm.backbone.config.maxPositionEmbeddings < Math.max(...lengths) + s.maxNewTokens) {
      failData('rewardModel', `has a context of ${rm.backbone.config.maxPositionEmbeddings} tokens, less than the longest prompt plus maxNewTokens (${Math.max(...lengths) + s.maxNewTokens})`, s.rewardModel);
    }
    const reward = rm;
    const trainee = new PpoTrainee(policy, ValueHead.init(policy, s.seed), { klCoef: s.klCoef });
    const lrAt = (step: number) => learningRate(step, { kind: s.schedule, peak: s.lr, warmupSteps: warmupStepsOf(s, steps), totalSteps: steps, minRatio: s.minLrRatio });
    const opts = {
      k: s.k, temperature: s.temperature, topP: s.topP, maxNewTokens: s.maxNewTokens, microBatch: s.microBatch, miniBatch: s.miniBatch, ppoEpochs: s.ppoEpochs,
      gamma: s.gamma, lam: s.lam, clipRange: s.clipRange, clipRangeValue: s.clipRangeValue, vfCoef: s.vfCoef, whitenRewards: Boolean(s.whitenRewards),
      adaptiveKl: s.adaptiveKl ? { target: s.klTarget, horizon: s.klHorizon } : null, recompute: s.recompute, lrAt,
      scorer: s.scorer === 'demo' ? demoScore : undefined,
    };
    return await runTraining(p, trainee, { dataSize: prompts.length, steps, tokenizerDir: s.model, config: { dataRecords: records.length, totalSteps: steps } },
      (t, optimizer) => ppoStepFn({ trainee: t, reference, rewardModel: reward, tokenizer }, prompts, opts, optimizer, hooks),
      (m) => `reward ${fmt(m.rewardMean)} | kl ${fmt(m.klEstimate)} (${fmt(m.klPerTokenMean, 4)}/tok) | entropy ${fmt(m.entropyMean)} | clip ${fmt(m.clipFraction, 2)} | pg ${fmt(m.policyLoss)} | vf ${fmt(m.valueLoss)} | approx-kl ${fmt(m.approxKl, 4)} | len ${fmt(m.responseLengthMean, 1)}${m.sampleScoreMean != null ? ` | score ${fmt(m.sampleScoreMean)}` : ''}`,
      hooks);
  } finally {
    rm?.dispose();
    frozen.release();
    base?.dispose();
  }
}

async function dryRun(p: Prepared<TrainerCommand>): Promise<RunResult> {
  const planned = await dryRunPlan(p.command, p.settings);
  return { lastStep: 0, stopped: false, lastCheckpoint: null, runDir: p.runDir, command: p.command, finalDir: null, dryRun: planned };
}

function dispatch(p: Prepared<TrainerCommand>, hooks: TrainerHooks): Promise<RunResult> {
  if (p.settings.dryRun && !p.resuming) return dryRun(p);
  switch (p.command) {
    case 'train':
    case 'self-reward':
      return online(p as Prepared<'train'>, hooks);
    case 'dpo':
      return offline(p as Prepared<'dpo'>, hooks);
    case 'sft':
      return supervised(p as Prepared<'sft'>, hooks);
    case 'augment':
      return augmentation(p as Prepared<'augment'>, hooks);
    case 'reward-model':
      return rewardModelRun(p as Prepared<'reward-model'>, hooks);
    case 'ppo':
      return ppoRun(p as Prepared<'ppo'>, hooks);
  }
}

/** Online self-preferring (the paper's Algorithm 1) into settings.out. */
export function train(settings: TrainSettings, hooks: TrainerHooks = {}): Promise<RunResult> {
  return dispatch(prepareNew('train', settings), hooks);
}

/** The self-rewarding baseline: best vs worst sampled response by the same judge, DPO loss. */
export function selfReward(settings: SelfRewardSettings, hooks: TrainerHooks = {}): Promise<RunResult> {
  return dispatch(prepareNew('self-reward', settings), hooks);
}

/** Offline DPO / IPO / SPCE on fixed preference pairs. */
export function dpo(settings: DpoSettings, hooks: TrainerHooks = {}): Promise<RunResult> {
  return dispatch(prepareNew('dpo', settings), hooks);
}

/** Supervised fine-tuning, prompt tokens masked. */
export function sft(settings: SftSettings, hooks: TrainerHooks = {}): Promise<RunResult> {
  return dispatch(prepareNew('sft', settings), hooks);
}

/** Preference augmentation: fine-tunes a model on judge instructions built from human pairs, both orders. */
export function augment(settings: AugmentSettings, hooks: TrainerHooks = {}): Promise<RunResult> {
  return dispatch(prepareNew('augment', settings), hooks);
}

/** A Bradley-Terry reward model on preference pairs: the backbone of --model plus a scalar head; held-out accuracy in metrics. */
export function rewardModel(settings: RewardModelSettings, hooks: TrainerHooks = {}): Promise<RunResult> {
  return dispatch(prepareNew('reward-model', settings), hooks);
}

/** PPO with a Bradley-Terry reward model and a per-token KL penalty against the frozen SFT model (the paper's RLHF baseline). */
export function ppo(settings: PpoSettings, hooks: TrainerHooks = {}): Promise<RunResult> {
  return dispatch(prepareNew('ppo', settings), hooks);
}

/** Which command made a run folder (its config.json). */
export function runCommandOf(runDir: string): TrainerCommand {
  let saved: Record<string, unknown>;
  if (!fs.existsSync(path.join(runDir, 'config.json'))) fail('resume', 'not a run folder (no config.json)', runDir);
  try {
    saved = readRunConfig(runDir);
  } catch (e) {
    fail('resume', (e as Error).message);
  }
  const command = saved.command as TrainerCommand;
  if (!['train', 'self-reward', 'dpo', 'sft', 'augment', 'reward-model', 'ppo'].includes(command)) fail('resume', `config.json names no training command`, runDir);
  return command;
}

/**
 * Continues the run in runDir with its saved settings from its last complete checkpoint.
 * `extend.steps` raises the run's total number of steps (as the Hugging Face Trainer does when
 * resumed with more steps): the data order continues where it was, and the learning-rate schedule
 * (warm-up, then linear or cosine decay) is recomputed over the new total from the resumed step on,
 * so a decaying schedule steps up to where the longer run would be. config.json records the change.
 */
export function resume(runDir: string, hooks: TrainerHooks = {}, extend: { steps?: number } = {}): Promise<RunResult> {
  const command = runCommandOf(runDir);
  const config = readRunConfig(runDir);
  const saved = config.settings as Record<string, unknown>;
  const settings = resolveSettings(command, extend.steps === undefined ? saved : { ...saved, steps: extend.steps });
  if (extend.steps !== undefined) {
    const before = typeof config.totalSteps === 'number' ? config.totalSteps : saved.steps;
    const newest = completeCheckpoints(runDir)[0];
    const done = newest ? readCheckpointState(newest).step : 0;
    if (settings.steps! < done) fail('steps', `the run already took ${done} steps; expected at least that many`, String(settings.steps));
    writeFileAtomicSync(
      path.join(runDir, 'config.json'),
      `${JSON.stringify({ ...config, settings, totalSteps: settings.steps, extended: [...((config.extended as unknown[]) ?? []), { from: before, to: settings.steps, at: new Date().toISOString() }] }, null, 2)}\n`,
    );
    noticeOf(hooks)(
      `extending ${runDir} from ${String(before)} to ${settings.steps} steps; the learning-rate schedule now spans ${settings.steps} steps`,
    );
  }
  return dispatch({ command, runDir, settings, resuming: true }, hooks);
}
