// The evaluation commands: generate (sample responses of a model to a prompts file, written as JSON
// Lines) and eval (A vs B head to head: judged win rate in both orders, ROUGE-L against references,
// response lengths; see src/osp/eval.ts for the definitions). Settings are resolved and checked before
// any model is loaded or any response generated.
import { judgeTemplateOf, readDataSetting } from '../osp/trainer';
import * as fs from 'fs';
import * as path from 'path';
import { Command, Option } from 'commander';
import { z } from 'zod';
import { writeJsonl } from '../data';
import { score as demoScore } from '../demo';
import { generate } from '../generate/generate';
import { Judge, defaultJudgeMaxLength, findAnswerTokens } from '../judge/judge';
import { fillJudgeTemplate, resolveJudgeTemplate } from '../judge/templates';
import { loadLlamaConfig } from '../model/config';
import { LlamaModel } from '../model/llama';
import { Tokenizer } from '../model/tokenizer';
import { evaluateHeadToHead, formatEvalTable } from '../osp/eval';
import { writeFileAtomicSync } from '../util/atomicWrite';
import { isAdapterFolder } from '../model/lora';
import { RewardModel, isRewardModelFolder, readSeqClsAdapterConfig } from '../model/rewardModel';
import { checkModelOrAdapterDir, loadModelFolder, modelFolderOf } from '../osp/models';
import { Progress, UsageError, deviceOption, dtypeOption, int, mergeConfig, num, positiveInt, resolveDevice, resolveDtype, validate } from './common';

// ---- shared settings --------------------------------------------------------------------------------

const FORMATS = ['prompts', 'pairs', 'sft', 'hh', 'tldr'] as const;

const stopSchema = z
  .union([z.string(), z.array(z.string())], { invalid_type_error: 'expected a string or a list of strings' })
  .transform((v) => (Array.isArray(v) ? v : [v]))
  .refine((v) => v.every((s) => s.length > 0), 'a stop string must not be empty')
  .optional();

const samplingSchema = {
  prompts: z.string({ required_error: 'expected a prompts file (.jsonl or .parquet)' }).min(1),
  format: z.enum(FORMATS),
  maxNewTokens: positiveInt(),
  temperature: num().refine((v) => v >= 0, 'expected a number >= 0'),
  topP: num().refine((v) => v > 0 && v <= 1, 'expected a number in (0, 1]'),
  topK: int().refine((v) => v >= 0, 'expected an integer >= 0 (0 = off)'),
  seed: int().refine((v) => v >= 0 && v < 2 ** 31, 'expected an integer in [0, 2^31)'),
  stop: stopSchema,
  device: z.enum(['cpu', 'cuda']).optional(),
  dtype: z.enum(['f32', 'bf16']).optional(),
  limit: positiveInt().optional(),
  skipBad: z.boolean().optional(),
  config: z.string().optional(),
};

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function samplingOptions(cmd: Command, d: { temperature: string; topP: string }): Command {
  return cmd
    .option('--prompts <file>', 'prompts (.jsonl or .parquet)')
    .addOption(new Option('--format <kind>', 'record format of --prompts (its prompt field is used)').choices([...FORMATS]).default('prompts'))
    .option('--max-new-tokens <n>', 'longest response in tokens', '512')
    .option('--temperature <x>', 'sampling temperature (0: greedy)', d.temperature)
    .option('--top-p <x>', 'nucleus sampling mass (1: off)', d.topP)
    .option('--top-k <n>', 'keep the k most likely tokens (0: off)', '0')
    .option('--seed <n>', 'seed of the sampler (same seed, same samples on the same device)', '0')
    .option('--stop <string>', 'a response ends before this text (repeatable)', collect)
    .addOption(deviceOption())
    .addOption(dtypeOption())
    .option('--limit <n>', 'use only the first n records of the data')
    .option('--skip-bad', 'skip malformed records (counted) instead of stopping at the first')
    .option('--config <file>', 'JSON file giving any of these settings (flags on the command line win)');
}

interface SamplingSettings {
  maxNewTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  seed: number;
  stop?: string[];
}

const notice = (line: string) => process.stderr.write(`${line}\n`);

function checkOut(flag: string, out: string, isDir: boolean): void {
  const st = fs.statSync(out, { throwIfNoEntry: false });
  if (st && (isDir ? !st.isDirectory() : st.isDirectory())) throw new UsageError(`${flag} ${out}: ${isDir ? 'exists and is not a folder' : 'is a folder; expected a file'}`);
}

function disposeModel(model: LlamaModel): void {
  model.dispose();
}

/** Samples k responses per prompt with a progress bar (prompts in chunks, so the bar moves). */
async function sampleResponses(
  label: string,
  model: LlamaModel,
  tokenizer: Tokenizer,
  prompts: string[],
  k: number,
  s: SamplingSettings,
): Promise<{ text: string; tokens: number; finishReason: string }[][]> {
  const bar = new Progress(label);
  const chunk = 32;
  const out: { text: string; tokens: number; finishReason: string }[][] = [];
  bar.start(prompts.length, '');
  try {
    for (let i = 0; i < prompts.length; i += chunk) {
      const results = await generate(model, tokenizer, prompts.slice(i, i + chunk), {
        maxNewTokens: s.maxNewTokens, temperature: s.temperature, topP: s.topP, topK: s.topK, seed: s.seed, numSamples: k, stop: s.stop,
      });
      for (const r of results) out.push(r.samples.map((x) => ({ text: x.text, tokens: x.tokens.length, finishReason: x.finishReason })));
      bar.update(out.length, '');
    }
  } finally {
    bar.stop();
  }
  return out;
}

// ---- osp generate -----------------------------------------------------------------------------------

function generateCommand(program: Command): void {
  const cmd = program
    .command('generate')
    .description('sample k responses per prompt from a model and write them as JSON Lines {prompt, sample, response, tokens, finishReason} (tokens: generated tokens, EOS included)')
    .option('--model <dir>', 'the model (Hugging Face folder), or a LoRA adapter folder whose adapter_config.json names its base')
    .option('--adapter <dir>', 'a PEFT LoRA adapter folder applied to --model')
    .option('--out <file>', 'responses file to write (.jsonl; written atomically)')
    .option('--k <n>', 'responses per prompt', '1');
  samplingOptions(cmd, { temperature: '0.7', topP: '0.9' });
  cmd.action(async (raw: Record<string, unknown>) => {
    const schema = z.object({
      model: z.string({ required_error: 'expected a model folder' }).min(1),
      adapter: z.string().min(1).optional(),
      out: z.string({ required_error: 'expected a .jsonl file to write' }).min(1).refine((v) => v.endsWith('.jsonl'), 'expected a file name ending in .jsonl'),
      k: positiveInt(),
      ...samplingSchema,
    });
    const s = validate(schema, mergeConfig(cmd, raw));
    checkModelOrAdapterDir('model', s.model);
    if (s.adapter !== undefined && !isAdapterFolder(s.adapter)) throw new UsageError(`--adapter ${s.adapter}: no adapter_config.json (expected a PEFT LoRA adapter folder)`);
    checkOut('--out', s.out, false);
    const records = await readDataSetting('prompts', s.prompts, s.format, s, notice);
    const device = resolveDevice(s.device);
    const dtype = resolveDtype(s.dtype, device);
    const prompts = records.map((r) => r.prompt);
    const { model, tokenizerDir } = await loadModelFolder('model', s.model, { device, dtype }, s.adapter);
    const tokenizer = await Tokenizer.load(tokenizerDir);
    let samples;
    try {
      samples = await sampleResponses('osp generate', model, tokenizer, prompts, s.k, s);
    } finally {
      disposeModel(model);
    }
    const lines = prompts.flatMap((prompt, i) => samples[i].map((x, j) => ({ prompt, sample: j, response: x.text, tokens: x.tokens, finishReason: x.finishReason })));
    await writeJsonl(s.out, lines);
    process.stderr.write(`wrote ${lines.length} responses (${prompts.length} prompts x ${s.k}) to ${s.out}\n`);
  });
}

// ---- osp eval ---------------------------------------------------------------------------------------

type Side = { kind: 'model'; dir: string } | { kind: 'file'; file: string; byPrompt: Map<string, string> };

/** Reads a responses file of `osp generate` (the first response of each prompt is used). */
function readResponses(flag: string, file: string): Map<string, string> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`${flag} ${file}: cannot read: ${(e as Error).message}`);
  }
  const byPrompt = new Map<string, string>();
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new UsageError(`${flag} ${file}: line ${i + 1} is not valid JSON: ${(e as Error).message}`);
    }
    const r = v as { prompt?: unknown; response?: unknown };
    if (typeof v !== 'object' || v === null || typeof r.prompt !== 'string' || typeof r.response !== 'string') {
      throw new UsageError(`${flag} ${file}: line ${i + 1} is not {prompt: string, response: string} (a file written by osp generate)`);
    }
    if (!byPrompt.has(r.prompt)) byPrompt.set(r.prompt, r.response);
  });
  if (byPrompt.size === 0) throw new UsageError(`${flag} ${file}: no responses`);
  return byPrompt;
}

function resolveSide(flag: string, value: string): Side {
  const st = fs.statSync(value, { throwIfNoEntry: false });
  if (!st) throw new UsageError(`${flag} ${value}: no such folder or file (expected a model folder or a responses .jsonl from osp generate)`);
  if (st.isDirectory()) {
    checkModelOrAdapterDir(flag.replace(/^--/, ''), value);
    return { kind: 'model', dir: value };
  }
  if (!value.endsWith('.jsonl')) throw new UsageError(`${flag} ${value}: expected a model folder or a responses .jsonl file from osp generate`);
  return { kind: 'file', file: value, byPrompt: readResponses(flag, value) };
}

function evalCommand(program: Command): void {
  const cmd = program
    .command('eval')
    .description('head to head: judge A vs B on every prompt in both orders (win rate with ties and a bootstrap interval) and/or score both with an independent reward model (mean rewards, win rate by reward), ROUGE-L against references, response lengths; writes OUT/eval.json and OUT/eval.md')
    .option('--a <dir|file>', 'system A: a model folder or LoRA adapter folder (responses generated here) or a responses .jsonl from osp generate (matched by prompt)')
    .option('--b <dir|file>', 'system B: likewise')
    .option('--judge <dir>', 'the judge model (Hugging Face folder, or a LoRA adapter folder whose config names its base), frozen (optional with --reward-model)')
    .option('--reward-model <dir>', 'score A and B with this reward model (final/ of osp reward-model: a LlamaForSequenceClassification folder or a SEQ_CLS adapter folder): mean rewards and the win rate by reward')
    .option('--reward-tolerance <x>', 'rewards within x of each other are a tie', '1e-6')
    .option('--out <dir>', 'folder for eval.json and eval.md')
    .option('--template <name>', 'judge template: hh, tldr, or a file with {prompt}, {a}, {b}', 'hh')
    .option('--judge-max-length <n>', "longest judge instruction in tokens (default: the paper's 768 for hh, 1124 for tldr, within the judge's context)")
    .option('--tie-margin <x>', 'a preference p with abs(p - 0.5) <= x is a tie', '0.05')
    .option('--references', 'score ROUGE-L against the data\'s reference (response of sft records, chosen of pairs/hh/tldr)')
    .addOption(new Option('--scorer <name>', 'also score every response with a programmatic scorer (demo: the embedded sorting task)').choices(['demo']));
  samplingOptions(cmd, { temperature: '0', topP: '1' });
  cmd.action(async (raw: Record<string, unknown>) => {
    const schema = z.object({
      a: z.string({ required_error: 'expected a model folder or a responses .jsonl' }).min(1),
      b: z.string({ required_error: 'expected a model folder or a responses .jsonl' }).min(1),
      judge: z.string().min(1).optional(),
      rewardModel: z.string().min(1).optional(),
      rewardTolerance: num().refine((v) => v >= 0, 'expected a number >= 0'),
      out: z.string({ required_error: 'expected a folder for eval.json and eval.md' }).min(1),
      template: z.string().min(1, 'expected hh, tldr or a template file'),
      judgeMaxLength: positiveInt().optional(),
      tieMargin: num().refine((v) => v >= 0 && v < 0.5, 'expected a number in [0, 0.5)'),
      references: z.boolean().optional(),
      scorer: z.enum(['demo']).optional(),
      ...samplingSchema,
    });
    const s = validate(schema, mergeConfig(cmd, raw));
    if (s.judge === undefined && s.rewardModel === undefined) throw new UsageError('--judge: expected the judge model folder, a --reward-model folder, or both');
    // Everything that can be checked without a model, before any work.
    const sideA = resolveSide('--a', s.a);
    const sideB = resolveSide('--b', s.b);
    if (s.judge !== undefined) checkModelOrAdapterDir('judge', s.judge);
    if (s.rewardModel !== undefined) checkRewardModelDir(s.rewardModel);
    const judgeDir = s.judge === undefined ? undefined : modelFolderOf('judge', s.judge);
    checkOut('--out', s.out, true);
    const template = judgeTemplateOf('template', s.template);
    if (s.references && s.format === 'prompts') throw new UsageError('--references: --format prompts has no reference responses; use sft, pairs, hh or tldr data');
    const records = await readDataSetting('prompts', s.prompts, s.format, s, notice);
    const prompts = records.map((r) => r.prompt);
    const references = s.references ? records.map((r) => ('response' in r ? r.response : (r as { chosen: string }).chosen)) : undefined;
    for (const [flag, side] of [['--a', sideA], ['--b', sideB]] as const) {
      if (side.kind !== 'file') continue;
      const missing = prompts.findIndex((p) => !side.byPrompt.has(p));
      if (missing >= 0) throw new UsageError(`${flag} ${side.file}: no response for prompt ${missing} of --prompts (${JSON.stringify(prompts[missing].slice(0, 60))}); generate it with osp generate on the same prompts`);
    }
    const parsed = resolveJudgeTemplate(template);
    let judgeTok: Tokenizer | null = null;
    if (judgeDir !== undefined) {
      let judgeConfig;
      try {
        judgeConfig = loadLlamaConfig(judgeDir);
      } catch (e) {
        throw new UsageError(`--judge ${s.judge}: ${(e as Error).message}`);
      }
      if (s.judgeMaxLength !== undefined && s.judgeMaxLength > judgeConfig.maxPositionEmbeddings) {
        throw new UsageError(`--judge-max-length ${s.judgeMaxLength}: longer than the judge's context (${judgeConfig.maxPositionEmbeddings})`);
      }
      judgeTok = await Tokenizer.load(judgeDir);
      try {
        await findAnswerTokens(judgeTok, parsed);
      } catch (e) {
        throw new UsageError(`--template ${s.template}: ${(e as Error).message}`);
      }
      const maxLength = s.judgeMaxLength ?? defaultJudgeMaxLength(template, judgeConfig.maxPositionEmbeddings);
      const fixed = (await judgeTok.encode(fillJudgeTemplate(parsed, '', '', ''))).length;
      if (fixed > maxLength) throw new UsageError(`--judge-max-length ${maxLength}: the judge template alone is ${fixed} tokens; no instruction fits`);
    }
    const device = resolveDevice(s.device);
    const dtype = resolveDtype(s.dtype, device);

    // Responses of each side: generated (greedy by default) or looked up by prompt.
    const responsesOf = async (flag: string, side: Side): Promise<string[]> => {
      if (side.kind === 'file') return prompts.map((p) => side.byPrompt.get(p) as string);
      const { model, tokenizerDir } = await loadModelFolder(flag.slice(2), side.dir, { device, dtype });
      const tokenizer = await Tokenizer.load(tokenizerDir);
      try {
        return (await sampleResponses(`generating ${flag.slice(2).toUpperCase()}`, model, tokenizer, prompts, 1, s)).map((r) => r[0].text);
      } finally {
        disposeModel(model);
      }
    };
    const a = await responsesOf('--a', sideA);
    const b = await responsesOf('--b', sideB);
    // The reward model's scores of both sides (its own tokenizer), before the judge is loaded.
    let rewards: { scorer: string; a: Float64Array; b: Float64Array; tolerance: number } | undefined;
    let rmTok: Tokenizer | null = null;
    if (s.rewardModel !== undefined) {
      let rm: RewardModel;
      try {
        rm = await RewardModel.load(s.rewardModel, { device, dtype });
      } catch (e) {
        throw new UsageError(`--reward-model ${s.rewardModel}: ${(e as Error).message}`);
      }
      try {
        if (!rm.tokenizer) throw new UsageError(`--reward-model ${s.rewardModel}: no tokenizer.json in the folder (or its base)`);
        rmTok = rm.tokenizer;
        const bar = new Progress('scoring A and B by reward');
        bar.start(2, '');
        const ra = await rm.rewards(prompts, a);
        bar.update(1, '');
        const rb = await rm.rewards(prompts, b);
        bar.update(2, '');
        bar.stop();
        rewards = { scorer: s.rewardModel, a: ra, b: rb, tolerance: s.rewardTolerance };
      } finally {
        rm.dispose();
      }
    }
    // Token lengths with the judge's tokenizer (else the reward model's) for both sides, so the numbers compare.
    const countTok = (judgeTok ?? rmTok) as Tokenizer;
    const count = async (texts: string[]) => (await countTok.encodeBatch(texts, { addSpecialTokens: false })).map((t) => t.length);
    const [tokensA, tokensB] = [await count(a), await count(b)];

    const input = {
      prompts, a, b, tokensA, tokensB, references, rewards,
      judgeName: s.judge,
      sourceA: sideA.kind === 'model' ? `model ${sideA.dir}` : `responses ${sideA.file}`,
      sourceB: sideB.kind === 'model' ? `model ${sideB.dir}` : `responses ${sideB.file}`,
      scorer: s.scorer === 'demo' ? demoScore : undefined,
      settings: { ...s, judgeTemplate: s.judge === undefined ? null : parsed.name },
    };
    let report;
    if (s.judge === undefined) {
      report = await evaluateHeadToHead(null, input, { tieMargin: s.tieMargin, seed: s.seed });
    } else {
      const { model: judgeModel } = await loadModelFolder('judge', s.judge, { device, dtype });
      const bar = new Progress('judging A vs B');
      try {
        const judge = await Judge.create(judgeModel, judgeTok as Tokenizer, { template, maxLength: s.judgeMaxLength, batchSize: 16 });
        bar.start(prompts.length, 'both orders');
        report = await evaluateHeadToHead(judge, input, { tieMargin: s.tieMargin, seed: s.seed, onProgress: (done) => bar.update(done, 'both orders') });
      } finally {
        bar.stop();
        disposeModel(judgeModel);
      }
    }
    const table = formatEvalTable(report);
    fs.mkdirSync(s.out, { recursive: true });
    writeFileAtomicSync(path.join(s.out, 'eval.json'), JSON.stringify(report, null, 2) + '\n');
    writeFileAtomicSync(path.join(s.out, 'eval.md'), table);
    process.stdout.write(table);
    process.stderr.write(`wrote ${path.join(s.out, 'eval.json')} and eval.md\n`);
  });
}

/** A --reward-model folder, checked up front: a LlamaForSequenceClassification folder or a SEQ_CLS adapter folder. */
function checkRewardModelDir(dir: string): void {
  const st = fs.statSync(dir, { throwIfNoEntry: false });
  if (!st || !st.isDirectory()) throw new UsageError(`--reward-model ${dir}: no such folder`);
  if (isAdapterFolder(dir)) {
    try {
      readSeqClsAdapterConfig(dir);
    } catch (e) {
      throw new UsageError(`--reward-model ${dir}: ${(e as Error).message}`);
    }
    return;
  }
  if (!fs.existsSync(path.join(dir, 'config.json'))) throw new UsageError(`--reward-model ${dir}: no config.json (expected a reward model folder, e.g. final/ of osp reward-model)`);
  if (!isRewardModelFolder(dir)) throw new UsageError(`--reward-model ${dir}: config.json names no ForSequenceClassification architecture (expected a reward model folder, e.g. final/ of osp reward-model)`);
}

export function evalCommands(program: Command): void {
  generateCommand(program);
  evalCommand(program);
}
