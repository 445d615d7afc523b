// The training commands: train (online self-preferring), self-reward, dpo (offline dpo / ipo / spce),
// sft and augment (preference augmentation of the judge). Each resolves and validates its settings
// before any work, writes a run folder (run.ts) through the shared loop (loop.ts), and can be resumed
// with --resume RUN_DIR (the saved config.json is used; the last complete checkpoint is loaded).
import * as fs from 'fs';
import * as path from 'path';
import { Command, CommanderError, Option } from 'commander';
import { z } from 'zod';
import { RecordKind, readRecords } from '../data';
import { score as demoScore } from '../demo/task';
import { loadJudgeTemplate } from '../judge/templates';
import { Judge } from '../judge/judge';
import { saveLlama } from '../model/hub';
import { LlamaModel } from '../model/llama';
import { AdamW } from '../model/optim';
import { Tokenizer } from '../model/tokenizer';
import { StepMetrics } from '../osp/metrics';
import { LoopResult, StepFn, runLoop } from '../osp/loop';
import { offlineStep, onlineStep, sftStepFn } from '../osp/modes';
import { latestCheckpoint, loadCheckpointModel, loadCheckpointOptimizer, readCheckpointState, readRunConfig, startRun, truncateSamples } from '../osp/run';
import { MetricsLog } from '../osp/metrics';
import { ScoredPair, SftExample } from '../osp/steps';
import { Progress, UsageError, setExitCode, checkModelDir, deviceOption, dtypeOption, fmt, installStopHandler, int, mergeConfig, num, positiveInt, resolveDevice, resolveDtype, validate } from './common';

// ---- settings -------------------------------------------------------------------------------------

const loopSchema = {
  out: z.string().min(1, 'expected a folder for the run').optional(),
  resume: z.string().optional(),
  batchSize: positiveInt(),
  microBatch: positiveInt(),
  lr: num().refine((v) => v > 0, 'expected a learning rate > 0'),
  warmupSteps: int().refine((v) => v >= 0, 'expected an integer >= 0'),
  schedule: z.enum(['constant', 'linear', 'cosine']),
  minLrRatio: num().refine((v) => v >= 0 && v <= 1, 'expected a number in [0, 1]'),
  weightDecay: num().refine((v) => v >= 0, 'expected a number >= 0'),
  maxGradNorm: num().refine((v) => v > 0, 'expected a number > 0'),
  steps: positiveInt().optional(),
  epochs: num().refine((v) => v > 0, 'expected a number > 0'),
  seed: int().refine((v) => v >= 0 && v < 2 ** 31, 'expected an integer in [0, 2^31)'),
  saveEvery: positiveInt(),
  keep: positiveInt(),
  device: z.enum(['cpu', 'cuda']).optional(),
  dtype: z.enum(['f32', 'bf16']).optional(),
  recompute: z.boolean().optional(),
  limit: positiveInt().optional(),
  skipBad: z.boolean().optional(),
  config: z.string().optional(),
};

const onlineSchema = {
  model: z.string({ required_error: 'expected the SFT model folder' }).min(1),
  judge: z.string().optional(),
  prompts: z.string({ required_error: 'expected a prompts file (.jsonl or .parquet)' }).min(1),
  format: z.enum(['prompts', 'pairs', 'sft', 'hh', 'tldr']),
  loss: z.enum(['spce', 'dpo', 'ipo']),
  pairing: z.enum(['ranked', 'random']),
  sampling: z.enum(['policy', 'sft']),
  k: int().refine((v) => v >= 2, 'K must be at least 2 (pairs need two responses)'),
  beta: num().refine((v) => v > 0, 'beta must be > 0'),
  temperature: num().refine((v) => v >= 0, 'expected a number >= 0'),
  topP: num().refine((v) => v > 0 && v <= 1, 'expected a number in (0, 1]'),
  maxNewTokens: positiveInt(),
  judgeMaxLength: positiveInt().optional(),
  template: z.string(),
  scorer: z.enum(['demo']).optional(),
  ...loopSchema,
};

function loopOptions(cmd: Command, d: { batchSize: number; microBatch: number; lr: number; beta?: number }): Command {
  return cmd
    .option('--out <dir>', 'run folder to create (config, metrics, samples, checkpoints, report)')
    .option('--resume <dir>', 'continue the run in this folder from its last complete checkpoint')
    .option('--batch-size <n>', 'examples (prompts or pairs) per optimizer step', String(d.batchSize))
    .option('--micro-batch <n>', 'examples per forward/backward (gradients are accumulated)', String(d.microBatch))
    .option('--lr <x>', 'peak learning rate', String(d.lr))
    .option('--warmup-steps <n>', 'linear warm-up steps', '0')
    .addOption(new Option('--schedule <kind>', 'learning-rate schedule after warm-up').choices(['constant', 'linear', 'cosine']).default('constant'))
    .option('--min-lr-ratio <x>', 'final learning rate of linear/cosine decay as a fraction of --lr', '0')
    .option('--weight-decay <x>', 'AdamW decoupled weight decay (not on norm weights)', '0')
    .option('--max-grad-norm <x>', 'global gradient-norm clipping', '1')
    .option('--steps <n>', 'optimizer steps (default: --epochs over the data)')
    .option('--epochs <x>', 'passes over the data when --steps is not given', '1')
    .option('--seed <n>', 'seed of the data order, sampling and pairing', '0')
    .option('--save-every <n>', 'checkpoint every n steps (and at the end, and on Ctrl-C)', '50')
    .option('--keep <n>', 'checkpoints to keep', '2')
    .addOption(deviceOption())
    .addOption(dtypeOption())
    .option('--recompute', 'recompute activations per layer in the backward (less memory, one more forward)')
    .option('--limit <n>', 'use only the first n records of the data')
    .option('--skip-bad', 'skip malformed records (counted) instead of stopping at the first')
    .option('--config <file>', 'JSON file giving any of these settings (flags on the command line win)');
}

// ---- shared run plumbing ---------------------------------------------------------------------------

interface Prepared {
  runDir: string;
  settings: Record<string, unknown> & { seed: number; batchSize: number; lr: number; schedule: 'constant' | 'linear' | 'cosine'; warmupSteps: number; minLrRatio: number; saveEvery: number; keep: number; weightDecay: number; maxGradNorm: number; steps?: number; epochs: number };
  resuming: boolean;
}

/** New run: validate and write config.json. Resume: read the run's config.json (flags other than --resume are ignored). */
function prepareRun(command: string, cmd: Command, raw: Record<string, unknown>, schema: z.ZodObject<z.ZodRawShape>): Prepared {
  if (raw.resume !== undefined) {
    const runDir = String(raw.resume);
    let saved: Record<string, unknown>;
    try {
      saved = readRunConfig(runDir);
    } catch (e) {
      throw new UsageError(`--resume ${(e as Error).message}`);
    }
    if (saved.command !== command) throw new UsageError(`--resume ${runDir}: that run was made by 'osp ${String(saved.command)}', not 'osp ${command}'`);
    const settings = validate(schema, { ...(saved.settings as Record<string, unknown>), resume: runDir }) as Prepared['settings'];
    const ignored = cmd.options.filter((o) => o.attributeName() !== 'resume' && cmd.getOptionValueSource(o.attributeName()) === 'cli').map((o) => o.long);
    if (ignored.length) process.stderr.write(`--resume continues ${runDir} with its saved settings (config.json); ignoring ${ignored.join(', ')}\n`);
    return { runDir, settings, resuming: true };
  }
  const merged = mergeConfig(cmd, raw);
  const settings = validate(schema, merged) as Prepared['settings'];
  if (!settings.out) throw new UsageError('--out: expected a folder for the run (or --resume RUN_DIR to continue one)');
  const runDir = String(settings.out);
  if (fs.existsSync(path.join(runDir, 'config.json'))) {
    throw new UsageError(`--out ${runDir}: that folder already holds a run; continue it with --resume ${runDir} or choose another --out`);
  }
  return { runDir, settings, resuming: false };
}

function writeConfig(p: Prepared, command: string, extra: object): void {
  if (p.resuming) return;
  startRun(p.runDir, { command, settings: p.settings, ...extra, created: new Date().toISOString() });
}

async function readData<K extends RecordKind>(flag: string, file: string, kind: K, s: Record<string, unknown>) {
  if (!fs.existsSync(file)) throw new UsageError(`${flag} ${file}: no such file`);
  const r = await readRecords(file, kind, { skipBad: Boolean(s.skipBad), limit: s.limit as number | undefined });
  if (r.skipped > 0) process.stderr.write(`${file}: skipped ${r.skipped} malformed record(s); first: ${r.problems[0]}\n`);
  if (r.records.length === 0) throw new UsageError(`${flag} ${file}: no usable ${kind} records`);
  return r.records;
}

function totalSteps(s: Prepared['settings'], dataSize: number, flag: string): number {
  if (s.batchSize > dataSize) throw new UsageError(`--batch-size ${s.batchSize} is larger than the data (${dataSize} records in ${flag})`);
  return s.steps ?? Math.max(1, Math.floor((s.epochs * dataSize) / s.batchSize));
}

/** Loads the policy (from the last checkpoint when resuming), its optimizer, and runs the loop with progress and Ctrl-C. */
async function trainWithLoop(
  command: string,
  p: Prepared,
  policy: LlamaModel,
  device: 'cpu' | 'cuda',
  dataSize: number,
  steps: number,
  tokenizerDir: string,
  makeStep: (policy: LlamaModel, progress: Progress) => StepFn,
  describe: (m: StepMetrics) => string,
): Promise<{ result: LoopResult; policy: LlamaModel }> {
  const s = p.settings;
  let startStep = 0;
  let startPosition = 0;
  let startElapsed = 0;
  let model = policy;
  let ckpt: string | null = null;
  if (p.resuming) {
    ckpt = latestCheckpoint(p.runDir);
    if (ckpt) {
      const st = readCheckpointState(ckpt);
      startStep = st.step;
      startPosition = st.dataPosition;
      startElapsed = typeof st.extra?.elapsedSeconds === 'number' ? st.extra.elapsedSeconds : 0;
      model = await loadCheckpointModel(ckpt, { dtype: policy.dtype as 'f32' | 'bf16', device });
      for (const t of policy.parameters().values()) t.dispose();
      new MetricsLog(path.join(p.runDir, 'metrics.jsonl')).truncateAfter(startStep);
      truncateSamples(p.runDir, startStep);
      process.stderr.write(`resuming ${p.runDir} from ${path.basename(ckpt)} (step ${startStep} of ${steps})\n`);
    } else {
      new MetricsLog(path.join(p.runDir, 'metrics.jsonl')).truncateAfter(0);
      truncateSamples(p.runDir, 0);
      process.stderr.write(`resuming ${p.runDir}: no complete checkpoint yet, starting from step 0\n`);
    }
  }
  const optimizer = new AdamW(model.parameters(), { lr: s.lr, weightDecay: s.weightDecay, maxGradNorm: s.maxGradNorm });
  if (ckpt) loadCheckpointOptimizer(ckpt, optimizer, device);
  const stop = installStopHandler(`osp ${command}`);
  const bar = new Progress(`osp ${command}`);
  const stepProgress = new Progress('  step', true);
  bar.start(steps, '');
  bar.update(startStep, 'starting');
  try {
    const result = await runLoop(
      {
        runDir: p.runDir, policy: model, optimizer, dataSize, batchSize: s.batchSize, totalSteps: steps, seed: s.seed, lr: s.lr,
        schedule: s.schedule, warmupSteps: s.warmupSteps, minLrRatio: s.minLrRatio, saveEvery: s.saveEvery, keepCheckpoints: s.keep,
        tokenizerDir, startStep, startPosition, startElapsed, title: `osp ${command}`, config: { command, ...s },
      },
      makeStep(model, stepProgress),
      { onStepDone: (m) => bar.update(m.step, describe(m)), stopRequested: stop.requested },
    );
    bar.stop();
    if (result.stopped) {
      process.stderr.write(`stopped after step ${result.lastStep}; checkpoint ${result.lastCheckpoint}\nresume with: osp ${command} --resume ${p.runDir}\n`);
      setExitCode(130); // the conventional status of a run ended by Ctrl-C
    } else {
      const finalDir = path.join(p.runDir, 'final');
      await saveLlama(model, finalDir, { dtype: model.dtype === 'bf16' ? 'BF16' : 'F32', tokenizerFrom: tokenizerDir });
      process.stderr.write(`done: ${result.lastStep} steps; model in ${finalDir}; report ${path.join(p.runDir, 'report.html')}\n`);
    }
    return { result, policy: model };
  } finally {
    bar.stop();
    stepProgress.stop();
    stop.dispose();
    optimizer.dispose();
  }
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

function eosOf(tok: Tokenizer, model: LlamaModel): number | undefined {
  const c = model.config.eosTokenId;
  return tok.eosTokenId ?? (Array.isArray(c) ? c[0] : c);
}

function templateOf(t: string) {
  if (t === 'hh' || t === 'tldr') return t;
  try {
    return loadJudgeTemplate(t);
  } catch (e) {
    throw new UsageError(`--template ${t}: ${(e as Error).message}`);
  }
}

function checkContext(flag: string, model: LlamaModel, lengths: number[]): void {
  const ctx = model.config.maxPositionEmbeddings;
  const i = lengths.findIndex((n) => n > ctx);
  if (i >= 0) throw new UsageError(`${flag}: record ${i} is ${lengths[i]} tokens, longer than the model's context (${ctx}); shorten it or raise max_position_embeddings`);
}

// ---- commands ---------------------------------------------------------------------------------------

function onlineCommand(program: Command, name: 'train' | 'self-reward'): void {
  const selfReward = name === 'self-reward';
  const cmd = program
    .command(name)
    .description(
      selfReward
        ? 'the self-rewarding baseline: sample K responses per prompt, judge them against the blank response with the frozen model, train on best vs worst with the DPO loss'
        : 'online self-preferring (OSP): sample K responses per prompt, rank them with the frozen judge against the blank response, pair highest with lowest, train on the judged soft preferences',
    )
    .option('--model <dir>', 'the SFT model (Hugging Face folder): the policy starts here; also the frozen reference and judge')
    .option('--judge <dir>', 'a separate judge model folder (default: --model)')
    .option('--prompts <file>', 'prompts (.jsonl or .parquet)')
    .addOption(new Option('--format <kind>', 'record format of --prompts (the prompt field is used)').choices(['prompts', 'pairs', 'sft', 'hh', 'tldr']).default('prompts'));
  if (!selfReward) {
    cmd
      .addOption(new Option('--loss <kind>', 'preference loss').choices(['spce', 'dpo', 'ipo']).default('spce'))
      .addOption(new Option('--pairing <kind>', 'ranked (the paper) or random (ablation)').choices(['ranked', 'random']).default('ranked'))
      .addOption(new Option('--sampling <from>', 'sample from the policy (on-policy) or from the frozen SFT model (ablation)').choices(['policy', 'sft']).default('policy'));
  }
  cmd
    .option('--k <n>', 'responses sampled per prompt', '7')
    .option('--beta <x>', 'scale of the log-ratio margin', selfReward ? '0.1' : '0.001')
    .option('--temperature <x>', 'sampling temperature', '0.7')
    .option('--top-p <x>', 'nucleus sampling mass', '0.9')
    .option('--max-new-tokens <n>', 'longest sampled response', '512')
    .option('--judge-max-length <n>', 'longest judge instruction in tokens (default: the judge\'s context)', undefined)
    .option('--template <name>', "judge template: hh, tldr, or a file with {prompt}, {a}, {b}", 'hh')
    .addOption(new Option('--scorer <task>', "score samples and judge pairs with a task's programmatic scorer (metrics only; the embedded demo task: demo)").choices(['demo']));
  loopOptions(cmd, { batchSize: 16, microBatch: 8, lr: 2e-6 });
  cmd.action(async (raw: Record<string, unknown>) => {
    const schema = z.object({ ...onlineSchema, loss: onlineSchema.loss.default('dpo'), pairing: onlineSchema.pairing.default('random'), sampling: onlineSchema.sampling.default('policy') });
    const p = prepareRun(name, cmd, raw, schema);
    const s = p.settings as unknown as z.infer<typeof schema>;
    checkModelDir('--model', s.model);
    if (s.judge) checkModelDir('--judge', s.judge);
    const template = templateOf(s.template);
    const records = await readData('--prompts', s.prompts, s.format, s);
    const prompts = records.map((r) => r.prompt);
    const steps = totalSteps(p.settings, prompts.length, `--prompts ${s.prompts}`);
    const device = resolveDevice(s.device);
    const dtype = resolveDtype(s.dtype, device);
    writeConfig(p, name, { dataRecords: prompts.length, totalSteps: steps });
    const tokenizer = await Tokenizer.load(s.model);
    const policy = await LlamaModel.load(s.model, { device, dtype });
    const reference = await LlamaModel.load(s.model, { device, dtype });
    const judgeModel = s.judge ? await LlamaModel.load(s.judge, { device, dtype }) : reference;
    const judgeTok = s.judge ? await Tokenizer.load(s.judge) : tokenizer;
    const judge = await Judge.create(judgeModel, judgeTok, { template, maxLength: s.judgeMaxLength, batchSize: 16 });
    await trainWithLoop(name, p, policy, device, prompts.length, steps, s.model, (pol, prog) =>
      onlineStep({ policy: pol, reference, judge, tokenizer }, prompts, {
        loss: selfReward ? 'dpo' : s.loss, pairing: selfReward ? 'best-worst' : s.pairing, sampling: selfReward ? 'policy' : s.sampling,
        k: s.k, beta: s.beta, microBatch: s.microBatch, temperature: s.temperature, topP: s.topP, maxNewTokens: s.maxNewTokens, recompute: s.recompute,
        scorer: s.scorer === 'demo' ? demoScore : undefined,
      }, {
        onStage: (stage, info) => {
          if (stage === 'generate' && info.done === 0) prog.start(info.total ?? 0, 'generate');
          else if (stage === 'generate') prog.update(info.done ?? 0, 'generate');
          else prog.stop();
        },
      }),
      (m) => `loss ${fmt(m.loss)} | pHat ${fmt(m.pHatMean)} target ${fmt(m.targetMean)} | len ${fmt(m.responseLengthMean, 1)} | generate ${fmt(m.tokensPerSecond, 0)} tok/s, judge ${fmt(m.pairsPerSecond, 1)} pairs/s, train ${fmt(m.secondsTrain, 2)} s`,
    );
  });
}

function dpoCommand(program: Command): void {
  const cmd = program
    .command('dpo')
    .description('offline preference optimisation on fixed pairs: DPO, IPO, or SPCE with soft labels from the data (strength) or from the judge')
    .option('--model <dir>', 'the SFT model (Hugging Face folder): the policy starts here and is the frozen reference')
    .option('--pairs <file>', 'preference pairs (.jsonl or .parquet)')
    .addOption(new Option('--format <kind>', 'record format of --pairs').choices(['pairs', 'hh', 'tldr']).default('pairs'))
    .addOption(new Option('--loss <kind>', 'preference loss').choices(['dpo', 'ipo', 'spce']).default('dpo'))
    .addOption(new Option('--labels <from>', "spce's soft labels: the data's strength field (missing = 1) or the judge").choices(['data', 'judge']).default('data'))
    .option('--judge <dir>', 'judge model folder for --labels judge (default: --model)')
    .option('--template <name>', 'judge template for --labels judge: hh, tldr or a file', 'hh')
    .option('--judge-max-length <n>', 'longest judge instruction in tokens')
    .option('--beta <x>', 'scale of the log-ratio margin', '0.1');
  loopOptions(cmd, { batchSize: 16, microBatch: 8, lr: 2e-6 });
  cmd.action(async (raw: Record<string, unknown>) => {
    const schema = z.object({
      model: onlineSchema.model, pairs: z.string({ required_error: 'expected a pairs file' }).min(1), format: z.enum(['pairs', 'hh', 'tldr']),
      loss: z.enum(['dpo', 'ipo', 'spce']), labels: z.enum(['data', 'judge']), judge: z.string().optional(), template: z.string(),
      judgeMaxLength: positiveInt().optional(), beta: onlineSchema.beta, ...loopSchema,
    });
    const p = prepareRun('dpo', cmd, raw, schema);
    const s = p.settings as unknown as z.infer<typeof schema>;
    checkModelDir('--model', s.model);
    const records = await readData('--pairs', s.pairs, s.format, s);
    const steps = totalSteps(p.settings, records.length, `--pairs ${s.pairs}`);
    const device = resolveDevice(s.device);
    const dtype = resolveDtype(s.dtype, device);
    writeConfig(p, 'dpo', { dataRecords: records.length, totalSteps: steps });
    const tokenizer = await Tokenizer.load(s.model);
    const policy = await LlamaModel.load(s.model, { device, dtype });
    const reference = await LlamaModel.load(s.model, { device, dtype });
    const pairs = await encodePairs(tokenizer, records, eosOf(tokenizer, policy));
    checkContext(`--pairs ${s.pairs}`, policy, pairs.map((q) => q.prompt.length + Math.max(q.chosen.length, q.rejected.length)));
    if (s.loss === 'spce' && s.labels === 'judge') {
      const jm = s.judge ? await LlamaModel.load(s.judge, { device, dtype }) : reference;
      const judge = await Judge.create(jm, s.judge ? await Tokenizer.load(s.judge) : tokenizer, { template: templateOf(s.template), maxLength: s.judgeMaxLength, batchSize: 16 });
      const bar = new Progress('judging pairs');
      bar.start(records.length);
      for (let i = 0; i < records.length; i += 64) {
        const prefs = await judge.preferences(records.slice(i, i + 64).map((r) => ({ prompt: r.prompt, a: r.chosen, b: r.rejected })));
        prefs.forEach((q, j) => (pairs[i + j].target = q.p));
        bar.update(Math.min(records.length, i + 64));
      }
      bar.stop();
    }
    // Orient every pair so chosen is the preferred side (target >= 0.5); SPCE is unchanged by this.
    for (const q of pairs) if (q.target < 0.5) [q.chosen, q.rejected, q.target] = [q.rejected, q.chosen, 1 - q.target];
    await trainWithLoop('dpo', p, policy, device, pairs.length, steps, s.model, (pol) => offlineStep({ policy: pol, reference }, pairs, { loss: s.loss, beta: s.beta, microBatch: s.microBatch, recompute: s.recompute }),
      (m) => `loss ${fmt(m.loss)} | pHat ${fmt(m.pHatMean)} | margin ${fmt(m.marginMean)} | ${fmt(m.tokensPerSecond, 0)} tok/s`);
  });
}

function sftCommand(program: Command): void {
  const cmd = program
    .command('sft')
    .description('supervised fine-tuning on prompt/response pairs (prompt tokens masked in the loss)')
    .option('--model <dir>', 'the model to fine-tune (Hugging Face folder)')
    .option('--data <file>', 'examples (.jsonl or .parquet): {prompt, response}, or pairs/hh/tldr whose chosen side is used')
    .addOption(new Option('--format <kind>', 'record format of --data').choices(['sft', 'pairs', 'hh', 'tldr']).default('sft'));
  loopOptions(cmd, { batchSize: 16, microBatch: 16, lr: 1e-5 });
  cmd.action(async (raw: Record<string, unknown>) => {
    const schema = z.object({ model: onlineSchema.model, data: z.string({ required_error: 'expected a data file' }).min(1), format: z.enum(['sft', 'pairs', 'hh', 'tldr']), ...loopSchema });
    const p = prepareRun('sft', cmd, raw, schema);
    const s = p.settings as unknown as z.infer<typeof schema>;
    checkModelDir('--model', s.model);
    const records = s.format === 'sft'
      ? await readData('--data', s.data, 'sft', s)
      : (await readData('--data', s.data, s.format, s)).map((r) => ({ prompt: r.prompt, response: r.chosen }));
    const steps = totalSteps(p.settings, records.length, `--data ${s.data}`);
    const device = resolveDevice(s.device);
    const dtype = resolveDtype(s.dtype, device);
    writeConfig(p, 'sft', { dataRecords: records.length, totalSteps: steps });
    const tokenizer = await Tokenizer.load(s.model);
    const model = await LlamaModel.load(s.model, { device, dtype });
    const examples = await encodeSft(tokenizer, records, eosOf(tokenizer, model));
    checkContext(`--data ${s.data}`, model, examples.map((e) => e.prompt.length + e.response.length));
    await trainWithLoop('sft', p, model, device, examples.length, steps, s.model, (m) => sftStepFn(m, examples, { microBatch: s.microBatch, recompute: s.recompute }), (m) => `loss ${fmt(m.loss)} | ${fmt(m.tokensPerSecond, 0)} tok/s`);
  });
}

function augmentCommand(program: Command): void {
  const cmd = program
    .command('augment')
    .description('preference augmentation: fine-tune the model on judge instructions built from human preference pairs (each pair in both orders, the answer token naming the preferred side)')
    .option('--model <dir>', 'the SFT model to turn into a better judge (Hugging Face folder)')
    .option('--pairs <file>', 'human preference pairs (.jsonl or .parquet)')
    .addOption(new Option('--format <kind>', 'record format of --pairs').choices(['pairs', 'hh', 'tldr']).default('pairs'))
    .option('--template <name>', 'judge template: hh, tldr or a file', 'hh')
    .option('--judge-max-length <n>', "longest judge instruction in tokens (default: the model's context)");
  loopOptions(cmd, { batchSize: 16, microBatch: 16, lr: 1e-5 });
  cmd.action(async (raw: Record<string, unknown>) => {
    const schema = z.object({ model: onlineSchema.model, pairs: z.string({ required_error: 'expected a pairs file' }).min(1), format: z.enum(['pairs', 'hh', 'tldr']), template: z.string(), judgeMaxLength: positiveInt().optional(), ...loopSchema });
    const p = prepareRun('augment', cmd, raw, schema);
    const s = p.settings as unknown as z.infer<typeof schema>;
    checkModelDir('--model', s.model);
    const records = await readData('--pairs', s.pairs, s.format, s);
    const device = resolveDevice(s.device);
    const dtype = resolveDtype(s.dtype, device);
    const tokenizer = await Tokenizer.load(s.model);
    const model = await LlamaModel.load(s.model, { device, dtype });
    const judge = await Judge.create(model, tokenizer, { template: templateOf(s.template), maxLength: s.judgeMaxLength });
    // Both orders of each pair; a strength below 0.5 means the rejected side is preferred; 0.5 teaches nothing.
    const items: { prompt: string; a: string; b: string; answer: number }[] = [];
    for (const r of records) {
      const st = r.strength ?? 1;
      if (st === 0.5) continue;
      const [w, l] = st > 0.5 ? [r.chosen, r.rejected] : [r.rejected, r.chosen];
      items.push({ prompt: r.prompt, a: w, b: l, answer: judge.answerTokens.a }, { prompt: r.prompt, a: l, b: w, answer: judge.answerTokens.b });
    }
    if (items.length === 0) throw new UsageError(`--pairs ${s.pairs}: every pair has strength 0.5; nothing to learn`);
    const instructions = await judge.instructions(items);
    const examples: SftExample[] = items.map((it, i) => ({ prompt: instructions[i], response: Int32Array.of(it.answer) }));
    const steps = totalSteps(p.settings, examples.length, `--pairs ${s.pairs} (2 examples per pair)`);
    writeConfig(p, 'augment', { dataRecords: records.length, examples: examples.length, totalSteps: steps });
    await trainWithLoop('augment', p, model, device, examples.length, steps, s.model, (m) => sftStepFn(m, examples, { microBatch: s.microBatch, recompute: s.recompute }), (m) => `loss ${fmt(m.loss)} | ${fmt(m.tokensPerSecond, 0)} tok/s`);
  });
}

/**
 * Commander calls process.exit on a parse error (unknown flag, bad choice) of a subcommand unless the
 * subcommand itself has an exit override (the program's is not inherited by commands made before it
 * was set): throw instead, with exit code 2 for bad settings, so main() returns the code.
 */
function throwOnParseError(cmd: Command): void {
  cmd.exitOverride((err) => {
    throw err.exitCode === 0 ? err : new CommanderError(2, err.code, err.message);
  });
}

export function trainCommands(program: Command): void {
  onlineCommand(program, 'train');
  onlineCommand(program, 'self-reward');
  dpoCommand(program);
  sftCommand(program);
  augmentCommand(program);
  for (const name of ['train', 'self-reward', 'dpo', 'sft', 'augment']) {
    const cmd = program.commands.find((c) => c.name() === name);
    if (cmd) throwOnParseError(cmd);
  }
}
