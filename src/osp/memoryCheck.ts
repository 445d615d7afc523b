// A run's memory plan (src/model/memoryPlan.ts) from its settings and its model folder, without
// loading a weight: config.json gives the shapes, the safetensors headers (model.safetensors or the
// index's shards) the element counts, the data (when given) the longest prompt and response. The
// trainer checks it before loading weights (checkRunFits: a plan over the card's memory is refused
// with the table and the setting that would fit); `osp <command> --dry-run` prints it (planRun).
import { isAdapterFolder, readAdapterConfig } from '../model/lora';
import * as fs from 'fs';
import * as path from 'path';
import { backends, defaultDevice } from '../device';
import { defaultJudgeMaxLength } from '../judge/judge';
import { defaultMaxCacheBytes } from '../generate/kvCache';
import { loadLlamaConfig } from '../model/config';
import { MemoryPlan, MemoryPlanInput, PlanSuggestion, formatBytes, formatPlan, planMemory, suggestFit } from '../model/memoryPlan';
import { INDEX_FILE, readIndexFile, readSafetensorsHeader } from '../model/safetensors';
import { RecordKind, readRecords } from '../data';
import { Tokenizer } from '../model/tokenizer';
import { LoraSettings, ResolvedSettings, SettingsError, TrainerCommand } from './settings';

/** The longest prompt and response of the run in tokens, and where the figures come from. */
export interface RunLengths {
  promptLength: number;
  responseLength: number;
  source: string;
}

/** A run whose plan exceeds the card: the message names the totals and the fix; table is the plan. */
export class MemoryPlanError extends Error {
  constructor(message: string, readonly table: string, readonly plan: MemoryPlan, readonly suggestion: PlanSuggestion | null) {
    super(message);
    this.name = 'MemoryPlanError';
  }
}

/** Elements of every tensor the folder's safetensors headers list (no weight is read); undefined without weights. */
export function weightElementsOf(dir: string): number | undefined {
  const count = (file: string) => {
    let n = 0;
    for (const t of readSafetensorsHeader(file).tensors.values()) n += t.shape.reduce((a, b) => a * b, 1);
    return n;
  };
  const single = path.join(dir, 'model.safetensors');
  if (fs.existsSync(single)) return count(single);
  if (fs.existsSync(path.join(dir, INDEX_FILE))) {
    const shards = new Set(readIndexFile(dir).weightMap.values());
    let n = 0;
    for (const f of shards) n += count(path.join(dir, f));
    return n;
  }
  return undefined;
}

type AnySettings = ResolvedSettings<TrainerCommand> & Record<string, unknown>;

/** The card's memory to plan against: --device-memory, else the present card's on cuda, else none. */
export function deviceMemoryOf(s: { deviceMemory?: number }, device: 'cpu' | 'cuda'): number | undefined {
  if (s.deviceMemory !== undefined) return s.deviceMemory;
  if (device === 'cuda') return backends().cuda.devices[0]?.memoryBytes;
  return undefined;
}

/** The plan's input for a command's resolved settings (device and dtype as the run resolves them). */
export function planInputOf(command: TrainerCommand, settings: ResolvedSettings<TrainerCommand>, lengths: RunLengths): MemoryPlanInput {
  const s = settings as AnySettings;
  const config = loadLlamaConfig(s.model);
  const device = (s.device as 'cpu' | 'cuda' | undefined) ?? defaultDevice();
  const dtype = (s.dtype as 'f32' | 'bf16' | undefined) ?? (device === 'cuda' ? 'bf16' : 'f32');
  const online = command === 'train' || command === 'self-reward';
  const template = typeof s.template === 'string' && (s.template === 'hh' || s.template === 'tldr') ? s.template : undefined;
  const judgeMaxLength = (s.judgeMaxLength as number | undefined) ?? (template ? defaultJudgeMaxLength(template, config.maxPositionEmbeddings) : config.maxPositionEmbeddings);
  const resolved = (p: unknown) => (typeof p === 'string' ? path.resolve(p) : undefined);
  const reference = resolved(s.reference) ?? resolved(s.model);
  // --adapter without --lora trains that adapter: plan with its own spec.
  const lora = (s.lora as LoraSettings | undefined) ?? (typeof s.adapter === 'string' && isAdapterFolder(s.adapter) ? readAdapterConfig(s.adapter).spec : undefined);
  return {
    config,
    command,
    device,
    dtype,
    batchSize: s.batchSize,
    microBatch: s.microBatch,
    recompute: Boolean(s.recompute),
    promptLength: lengths.promptLength,
    responseLength: lengths.responseLength,
    k: online || command === 'ppo' ? (s.k as number) : undefined,
    pairing: online ? (s.pairing as MemoryPlanInput['pairing']) : undefined,
    judgeBatch: s.judgeBatch as number | undefined,
    judgeMaxLength,
    separateJudge: command === 'dpo' ? s.judge !== undefined : s.judge !== undefined && resolved(s.judge) !== reference,
    judgeLabels: command === 'dpo' && s.loss === 'spce' && s.labels === 'judge',
    lora: lora ? { r: lora.r, targets: lora.targets, dropout: lora.dropout } : undefined,
    weightElements: weightElementsOf(s.model),
    deviceMemory: deviceMemoryOf(s, device),
    // generate's and the judge's kv-cache bound on the cpu (on cuda the planner takes 40% of the card's memory, as they do).
    maxCacheBytes: device === 'cpu' ? defaultMaxCacheBytes('cpu') : undefined,
  };
}

/** The lengths a run plans for without its data: online prompts of up to 512 tokens (within the context), offline responses of maxNewTokens or 512. */
export function assumedLengths(command: TrainerCommand, settings: ResolvedSettings<TrainerCommand>): RunLengths {
  const s = settings as AnySettings;
  const context = loadLlamaConfig(s.model).maxPositionEmbeddings;
  if (command === 'augment') {
    const template = s.template === 'hh' || s.template === 'tldr' ? s.template : undefined;
    const judgeMaxLength = (s.judgeMaxLength as number | undefined) ?? defaultJudgeMaxLength(template, context);
    return { promptLength: judgeMaxLength, responseLength: 1, source: `judge instructions of ${judgeMaxLength} tokens (--judge-max-length)` };
  }
  const response = typeof s.maxNewTokens === 'number' ? s.maxNewTokens : 512;
  const prompt = Math.max(1, Math.min(512, context - response));
  return { promptLength: prompt, responseLength: response, source: `assumed: prompts of ${prompt} tokens, responses of ${response} (no data read)` };
}

/** The settings change as flags, e.g. '--recompute --micro-batch 2'. */
export function suggestionFlags(change: PlanSuggestion['change']): string {
  const out: string[] = [];
  if (change.recompute) out.push('--recompute');
  if (change.microBatch !== undefined) out.push(`--micro-batch ${change.microBatch}`);
  if (change.judgeBatch !== undefined) out.push(`--judge-batch ${change.judgeBatch}`);
  if (change.batchSize !== undefined) out.push(`--batch-size ${change.batchSize}`);
  return out.join(' ');
}

function titleOf(command: TrainerCommand, input: MemoryPlanInput, lengths: RunLengths, model: string): string {
  const c = input.config;
  const what = input.lora ? `LoRA r ${input.lora.r} on ${input.lora.targets.join(',')}` : 'full fine-tuning';
  return [
    `memory plan: osp ${command}, ${path.basename(path.resolve(model))} (${c.numHiddenLayers} layers, hidden ${c.hiddenSize}, vocab ${c.vocabSize}), ${input.dtype} on ${input.device}, ${what}`,
    `batch ${input.batchSize}, micro-batch ${input.microBatch}${input.k ? `, K ${input.k}` : ''}, recompute ${input.recompute ? 'on' : 'off'}; ${lengths.source}`,
  ].join('\n');
}

/** The plan of a run and its printed table. */
export function planRun(command: TrainerCommand, settings: ResolvedSettings<TrainerCommand>, lengths: RunLengths): { plan: MemoryPlan; table: string; input: MemoryPlanInput } {
  const input = planInputOf(command, settings, lengths);
  const plan = planMemory(input);
  let table = formatPlan(plan, titleOf(command, input, lengths, (settings as AnySettings).model as string));
  if (!plan.fits) {
    const fit = suggestFit(input);
    table += fit ? `\nwould fit with ${suggestionFlags(fit.change)} (total ${formatBytes(fit.plan.totalBytes)})` : '\nno setting of recompute, micro-batch, judge batch or batch size fits this card';
  }
  return { plan, table, input };
}

/**
 * Refuses a run whose plan exceeds the card's memory (only when there is a figure: cuda, or
 * --device-memory), before any weight is loaded: the error carries the table and the setting that
 * fits, found by planning again.
 */
export function checkRunFits(command: TrainerCommand, settings: ResolvedSettings<TrainerCommand>, lengths: RunLengths): MemoryPlan {
  const { plan, table, input } = planRun(command, settings, lengths);
  if (plan.fits) return plan;
  const fit = suggestFit(input);
  const advice = fit ? `; try ${suggestionFlags(fit.change)} (planned ${formatBytes(fit.plan.totalBytes)})` : '; no smaller recompute, micro-batch, judge batch or batch size fits: use a card with more memory or LoRA (--lora)';
  throw new MemoryPlanError(
    `the run needs ${formatBytes(plan.totalBytes)} at its peak (${plan.peakPhase}), more than the card's ${formatBytes(plan.deviceMemory as number)}${advice}`,
    table,
    plan,
    fit,
  );
}

/** Checks that a dry run names a model folder with a config.json (weights and tokenizer optional). */
export function checkPlanFolder(dir: unknown): void {
  if (typeof dir !== 'string' || !fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new SettingsError('model', 'no such folder', String(dir));
  if (!fs.existsSync(path.join(dir, 'config.json'))) throw new SettingsError('model', 'no config.json (expected a Hugging Face model folder)', dir);
}

/** The longest prompt and response of records in tokens (responses with their EOS): an upper bound of any packed sequence. */
export async function recordLengths(command: TrainerCommand, settings: ResolvedSettings<TrainerCommand>, tokenizer: Tokenizer, data: readonly object[]): Promise<RunLengths> {
  const s = settings as AnySettings;
  const records = data as Record<string, unknown>[];
  if (command === 'augment') return assumedLengths(command, settings);
  const longest = async (texts: string[], special: boolean) => (await tokenizer.encodeBatch(texts, { addSpecialTokens: special })).reduce((m, t) => Math.max(m, t.length), 1);
  const promptLength = await longest(records.map((r) => String(r.prompt)), true);
  if (command === 'train' || command === 'self-reward' || command === 'ppo') {
    return { promptLength, responseLength: s.maxNewTokens as number, source: `prompts up to ${promptLength} tokens (the data), ${s.maxNewTokens as number} new tokens` };
  }
  const responses = records.flatMap((r) => ('response' in r ? [String(r.response)] : [String(r.chosen), String(r.rejected)]));
  const responseLength = (await longest(responses, false)) + 1;
  return { promptLength, responseLength, source: `prompts up to ${promptLength} tokens, responses up to ${responseLength} (the data)` };
}

/**
 * `--dry-run`: the plan of a new run from its settings, reading config.json, the safetensors headers
 * and, when the data file exists and the folder has a tokenizer, the data's lengths; no weight is loaded.
 */
export async function dryRunPlan(command: TrainerCommand, settings: ResolvedSettings<TrainerCommand>): Promise<{ plan: MemoryPlan; table: string }> {
  const s = settings as AnySettings;
  checkPlanFolder(s.model);
  const dataKey = command === 'train' || command === 'self-reward' || command === 'ppo' ? 'prompts' : command === 'sft' ? 'data' : 'pairs';
  const file = s[dataKey];
  let lengths = assumedLengths(command, settings);
  if (command !== 'augment' && typeof file === 'string' && fs.existsSync(file) && fs.existsSync(path.join(s.model, 'tokenizer.json'))) {
    const kind = (command === 'sft' && s.format === 'sft' ? 'sft' : s.format) as RecordKind;
    const { records } = await readRecords(file, kind, { skipBad: true, limit: s.limit as number | undefined });
    if (records.length > 0) {
      const rows = (records as unknown as Record<string, unknown>[]).map((r) => ('response' in r || !('chosen' in r) || command !== 'sft' ? r : { prompt: r.prompt, response: r.chosen }));
      lengths = await recordLengths(command, settings, await Tokenizer.load(s.model), rows);
    }
  }
  const { plan, table } = planRun(command, settings, lengths);
  return { plan, table };
}
