// The trainer's typed settings, one zod schema per command with its defaults: the single source of
// every setting's type, range and default. The library validates with them (osp.train(settings)),
// the CLI turns flags into the same objects (and shows these defaults in --help), and a run's
// config.json stores the resolved result. Numbers may arrive as numeric strings (flags); null,
// booleans and arrays are refused for numeric settings.
import { z } from 'zod';
import { LORA_TARGETS, LoraSpec, LoraTarget } from '../model/lora';

export type { LoraTarget };

/**
 * A setting that is wrong: names the setting (camelCase key) and the problem. kind 'usage': the
 * setting itself is wrong (a value out of range, a path to nothing; the CLI exits 2); 'data': what it
 * names is malformed (a bad record, a prompt longer than the context; the CLI exits 1, as for model
 * and run errors).
 */
export class SettingsError extends Error {
  /** value: the setting's value when the problem is about what it names (a file, a folder). */
  constructor(readonly setting: string, readonly problem: string, readonly value?: string, readonly kind: 'usage' | 'data' = 'usage') {
    super(`${setting}${value === undefined ? '' : ` ${value}`}: ${problem}`);
    this.name = 'SettingsError';
  }
}

const toNumber = (v: unknown) => (typeof v === 'string' && v.trim() !== '' ? Number(v) : v);
export const num = () => z.preprocess(toNumber, z.number({ invalid_type_error: 'expected a number', required_error: 'expected a number' }).finite('expected a finite number'));
export const int = () => num().pipe(z.number().int('expected an integer'));
export const positiveInt = () => int().pipe(z.number().min(1, 'expected an integer >= 1'));
const flag = () => z.boolean({ invalid_type_error: 'expected true or false' }).optional();
const path = (what: string) => z.string({ required_error: `expected ${what}`, invalid_type_error: `expected ${what}` }).min(1, `expected ${what}`);

/** LoRA adapters: rank, alpha (scaling alpha / r), dropout on the adapters' input, and the projections they sit on. */
export type LoraSettings = LoraSpec;

const BYTE_UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** '48GB' (10^9), '44.7GiB' (2^30), '512MB', '1e9' or a number: bytes; an error message otherwise. */
export function parseBytes(v: unknown): number | string {
  if (typeof v === 'number') return Number.isFinite(v) && v > 0 ? Math.floor(v) : `expected a size > 0 like 48GB, 44.7GiB, 512MB or bytes`;
  if (typeof v !== 'string') return 'expected a size like 48GB, 44.7GiB, 512MB or bytes';
  const m = /^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*$/i.exec(v);
  const unit = m ? (m[2] === '' ? 'b' : m[2].toLowerCase()) : '';
  if (!m || !(unit in BYTE_UNITS) || !(Number(m[1]) > 0)) return `expected a size > 0 like 48GB, 44.7GiB, 512MB or bytes`;
  return Math.floor(Number(m[1]) * BYTE_UNITS[unit]);
}

/**
 * 'r=64,alpha=32[,dropout=0.05][,targets=q,k,v,o,gate,up,down]' (what follows targets= is its list)
 * or an object of the same fields: LoraSettings, or an error message naming the bad part.
 */
export function parseLora(v: unknown): LoraSettings | string {
  let fields: Record<string, unknown>;
  if (typeof v === 'string') {
    fields = {};
    let list: string[] | null = null;
    for (const part of v.split(',').map((p) => p.trim())) {
      const eq = part.indexOf('=');
      if (eq < 0) {
        if (list && part !== '') {
          list.push(part);
          continue;
        }
        return `'${part}' is not key=value; expected r=64,alpha=32[,dropout=0.05][,targets=q,k,v,o,gate,up,down]`;
      }
      const key = part.slice(0, eq).trim();
      const value = part.slice(eq + 1).trim();
      if (key in fields) return `${key} is given twice`;
      if (key === 'targets') {
        list = value === '' ? [] : [value];
        fields.targets = list;
      } else {
        list = null;
        fields[key] = value;
      }
    }
  } else if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    fields = { ...(v as Record<string, unknown>) };
  } else {
    return 'expected r=64,alpha=32[,dropout=0.05][,targets=q,k,v,o,gate,up,down] or an object {r, alpha, dropout?, targets?}';
  }
  for (const k of Object.keys(fields)) if (!['r', 'alpha', 'dropout', 'targets'].includes(k)) return `'${k}' is not a LoRA field; expected r, alpha, dropout or targets`;
  const number = (k: string) => (typeof fields[k] === 'string' && (fields[k] as string) !== '' ? Number(fields[k]) : fields[k]);
  const r = number('r');
  const alpha = number('alpha');
  const dropout = fields.dropout === undefined ? 0 : number('dropout');
  if (r === undefined) return 'r is missing; expected r=<integer >= 1>';
  if (!(typeof r === 'number' && Number.isInteger(r) && r >= 1)) return `r is ${JSON.stringify(fields.r)}; expected an integer >= 1`;
  if (alpha === undefined) return 'alpha is missing; expected alpha=<number > 0>';
  if (!(typeof alpha === 'number' && Number.isFinite(alpha) && alpha > 0)) return `alpha is ${JSON.stringify(fields.alpha)}; expected a number > 0`;
  if (!(typeof dropout === 'number' && dropout >= 0 && dropout < 1)) return `dropout is ${JSON.stringify(fields.dropout)}; expected a number in [0, 1)`;
  let targets: LoraTarget[] = [...LORA_TARGETS];
  if (fields.targets !== undefined) {
    const t = fields.targets;
    if (!Array.isArray(t) || t.length === 0) return `targets is ${JSON.stringify(t)}; expected some of ${LORA_TARGETS.join(', ')}`;
    for (const name of t) if (!(LORA_TARGETS as readonly unknown[]).includes(name)) return `targets: '${String(name)}' is not a projection; expected some of ${LORA_TARGETS.join(', ')}`;
    if (new Set(t).size !== t.length) return `targets ${t.join(',')} names a projection twice`;
    targets = LORA_TARGETS.filter((x) => (t as unknown[]).includes(x)); // the canonical order
  }
  return { r, alpha, dropout, targets };
}

/** A zod setting from a parser that returns the value or an error message. */
function parsed<T>(parse: (v: unknown) => T | string) {
  return z.unknown().transform((v, ctx): T => {
    const r = parse(v);
    if (typeof r === 'string') {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: r });
      return z.NEVER;
    }
    return r;
  });
}

/** The warm-up of a run of totalSteps optimizer steps: --warmup-steps, else warmupRatio of the steps. */
export function warmupStepsOf(s: { warmupSteps?: number; warmupRatio: number }, totalSteps: number): number {
  return s.warmupSteps ?? Math.round(s.warmupRatio * totalSteps);
}

/** Settings every training command shares (the loop, the optimizer, the run folder, the device). */
function loopShape(d: { batchSize: number; microBatch: number; lr: number }) {
  return {
    out: z.string().min(1, 'expected a folder for the run').optional(),
    batchSize: positiveInt().default(d.batchSize),
    microBatch: positiveInt().default(d.microBatch),
    lr: num().pipe(z.number().gt(0, 'expected a learning rate > 0')).default(d.lr),
    // The paper inherits DeepSpeed-Chat's schedule: cosine decay after a linear warm-up. Without
    // --warmup-steps the warm-up is warmupRatio of the run's steps (rounded).
    warmupSteps: int().pipe(z.number().min(0, 'expected an integer >= 0')).optional(),
    warmupRatio: num().pipe(z.number().min(0).max(1, 'expected a number in [0, 1]')).default(0.1),
    schedule: z.enum(['constant', 'linear', 'cosine']).default('cosine'),
    minLrRatio: num().pipe(z.number().min(0).max(1, 'expected a number in [0, 1]')).default(0),
    weightDecay: num().pipe(z.number().min(0, 'expected a number >= 0')).default(0),
    maxGradNorm: num().pipe(z.number().gt(0, 'expected a number > 0')).default(1),
    steps: positiveInt().optional(),
    epochs: num().pipe(z.number().gt(0, 'expected a number > 0')).default(1),
    seed: int().pipe(z.number().min(0).lt(2 ** 31, 'expected an integer in [0, 2^31)')).default(0),
    saveEvery: positiveInt().default(50),
    keep: positiveInt().default(2),
    device: z.enum(['cpu', 'cuda']).optional(),
    dtype: z.enum(['f32', 'bf16']).optional(),
    recompute: flag(),
    limit: positiveInt().optional(),
    /** A random subset of this many records (after --limit), seeded by --seed. */
    sample: positiveInt().optional(),
    skipBad: flag(),
    /** Print the memory plan and exit without loading weights or data. */
    dryRun: flag(),
    /** The card's memory to plan for (default: the present card's on cuda; none on the cpu). */
    deviceMemory: parsed(parseBytes).optional(),
    // LoRA: train adapters on a frozen base (policy, reference and judge share its weights).
    lora: parsed(parseLora).optional(),
    adapter: z.string().min(1).optional(),
  };
}

const beta = () => num().pipe(z.number().gt(0, 'beta must be > 0'));

function onlineShape(selfReward: boolean) {
  return {
    model: path('the SFT model folder'),
    judge: z.string().min(1).optional(),
    reference: z.string().min(1).optional(),
    prompts: path('a prompts file (.jsonl or .parquet)'),
    format: z.enum(['prompts', 'pairs', 'sft', 'hh', 'tldr']).default('prompts'),
    // Self-rewarding is fixed: best vs worst of the policy's samples, the DPO loss (config.json says so).
    loss: selfReward ? z.enum(['dpo']).default('dpo') : z.enum(['spce', 'dpo', 'ipo']).default('spce'),
    pairing: selfReward ? z.enum(['best-worst']).default('best-worst') : z.enum(['ranked', 'random', 'raft', 'spin']).default('ranked'),
    sampling: selfReward ? z.enum(['policy']).default('policy') : z.enum(['policy', 'sft', 'rso']).default('policy'),
    rsoCandidates: positiveInt().optional(),
    rsoBeta: num().pipe(z.number().gt(0, 'expected a number > 0')).default(0.5),
    rsoRewardModel: z.string().min(1).optional(),
    k: int().pipe(z.number().min(2, 'K must be at least 2 (pairs need two responses)')).default(7),
    beta: beta().default(selfReward ? 0.1 : 0.001),
    temperature: num().pipe(z.number().min(0, 'expected a number >= 0')).default(0.7),
    topP: num().pipe(z.number().gt(0).max(1, 'expected a number in (0, 1]')).default(0.9),
    maxNewTokens: positiveInt().default(512),
    judgeMaxLength: positiveInt().optional(),
    judgeBatch: positiveInt().default(16),
    template: z.string().min(1).default('hh'),
    scorer: z.enum(['demo']).optional(),
    ...loopShape({ batchSize: 16, microBatch: 8, lr: 2e-6 }),
  };
}

export const trainSchema = z.object(onlineShape(false)).strict();
export const selfRewardSchema = z.object(onlineShape(true)).strict();
export const dpoSchema = z
  .object({
    model: path('the SFT model folder'),
    pairs: path('a pairs file'),
    format: z.enum(['pairs', 'hh', 'tldr']).default('pairs'),
    loss: z.enum(['dpo', 'ipo', 'spce']).default('dpo'),
    labels: z.enum(['data', 'judge']).default('data'),
    judge: z.string().min(1).optional(),
    template: z.string().min(1).default('hh'),
    judgeMaxLength: positiveInt().optional(),
    judgeBatch: positiveInt().default(16),
    beta: beta().default(0.1),
    ...loopShape({ batchSize: 16, microBatch: 8, lr: 2e-6 }),
  })
  .strict();
export const sftSchema = z
  .object({
    model: path('the model folder'),
    data: path('a data file'),
    format: z.enum(['sft', 'pairs', 'hh', 'tldr']).default('sft'),
    ...loopShape({ batchSize: 16, microBatch: 16, lr: 1e-5 }),
  })
  .strict();
export const augmentSchema = z
  .object({
    model: path('the SFT model folder'),
    pairs: path('a pairs file'),
    format: z.enum(['pairs', 'hh', 'tldr']).default('pairs'),
    template: z.string().min(1).default('hh'),
    judgeMaxLength: positiveInt().optional(),
    // both: every pair in both orders; split: the paper's 2% setting, the first half of the pairs
    // with the preferred answer as A, the second half swapped (B), each pair once.
    orders: z.enum(['both', 'split']).default('both'),
    ...loopShape({ batchSize: 16, microBatch: 16, lr: 1e-5 }),
  })
  .strict();

export const rewardModelSchema = z
  .object({
    model: path('the model folder (the backbone starts here)'),
    pairs: path('a pairs file'),
    format: z.enum(['pairs', 'hh', 'tldr']).default('pairs'),
    evalFraction: num().pipe(z.number().gt(0).lt(1, 'expected a number in (0, 1)')).default(0.05),
    evalEvery: positiveInt().default(50),
    ...loopShape({ batchSize: 16, microBatch: 8, lr: 1e-5 }),
  })
  .strict();

/** PPO with a reward model (METHOD.md section 9): defaults of TRL's PPOTrainer and the N+ implementation details. */
export const ppoSchema = z
  .object({
    model: path('the SFT model folder'),
    rewardModel: path('a reward model folder (final/ of osp reward-model)'),
    prompts: path('a prompts file (.jsonl or .parquet)'),
    format: z.enum(['prompts', 'pairs', 'sft', 'hh', 'tldr']).default('prompts'),
    k: positiveInt().default(4),
    temperature: num().pipe(z.number().gt(0, 'expected a number > 0 (PPO scores the sampled distribution)')).default(0.7),
    topP: num().pipe(z.number().gt(0).max(1, 'expected a number in (0, 1]')).default(0.9),
    maxNewTokens: positiveInt().default(512),
    klCoef: num().pipe(z.number().min(0, 'expected a number >= 0')).default(0.05),
    adaptiveKl: flag(),
    klTarget: num().pipe(z.number().gt(0, 'expected a number > 0')).default(6),
    klHorizon: num().pipe(z.number().gt(0, 'expected a number > 0')).default(10000),
    gamma: num().pipe(z.number().min(0).max(1, 'expected a number in [0, 1]')).default(1),
    lam: num().pipe(z.number().min(0).max(1, 'expected a number in [0, 1]')).default(0.95),
    ppoEpochs: positiveInt().default(4),
    miniBatch: positiveInt().optional(),
    clipRange: num().pipe(z.number().gt(0, 'expected a number > 0')).default(0.2),
    clipRangeValue: num().pipe(z.number().gt(0, 'expected a number > 0')).default(0.2),
    vfCoef: num().pipe(z.number().min(0, 'expected a number >= 0')).default(0.1),
    whitenRewards: flag(),
    scorer: z.enum(['demo']).optional(),
    ...loopShape({ batchSize: 16, microBatch: 8, lr: 3e-6 }),
  })
  .strict();

export const SCHEMAS = { train: trainSchema, 'self-reward': selfRewardSchema, dpo: dpoSchema, sft: sftSchema, augment: augmentSchema, 'reward-model': rewardModelSchema, ppo: ppoSchema } as const;
export type TrainerCommand = keyof typeof SCHEMAS;

/** What a caller gives (defaults optional) and what the trainer runs with (defaults filled in). */
export type TrainSettings = z.input<typeof trainSchema>;
export type SelfRewardSettings = z.input<typeof selfRewardSchema>;
export type DpoSettings = z.input<typeof dpoSchema>;
export type SftSettings = z.input<typeof sftSchema>;
export type AugmentSettings = z.input<typeof augmentSchema>;
export type RewardModelSettings = z.input<typeof rewardModelSchema>;
export type PpoSettings = z.input<typeof ppoSchema>;
export type ResolvedSettings<C extends TrainerCommand> = z.output<(typeof SCHEMAS)[C]>;
/** The settings every training command shares, resolved. */
export type LoopSettings = z.output<z.ZodObject<ReturnType<typeof loopShape>>>;

/** Validates settings for a command; the first problem is a SettingsError naming the setting. */
export function resolveSettings<C extends TrainerCommand>(command: C, value: unknown): ResolvedSettings<C> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new SettingsError('settings', 'expected an object of settings');
  const r = SCHEMAS[command].safeParse(value);
  if (r.success) return r.data as ResolvedSettings<C>;
  const issue = r.error.issues[0];
  if (issue.code === 'unrecognized_keys') throw new SettingsError(issue.keys[0], `is not a setting of ${command}`);
  const key = String(issue.path[0] ?? 'settings');
  const got = key in (value as Record<string, unknown>) ? JSON.stringify((value as Record<string, unknown>)[key]) : 'missing';
  throw new SettingsError(key, `${issue.message} (got ${got})`);
}

/** What --help shows of a setting: its default and, for an enum, its choices (undefined when none). */
export function settingHelp(command: TrainerCommand, key: string): { default?: unknown; choices?: readonly string[] } {
  let field = (SCHEMAS[command].shape as Record<string, z.ZodTypeAny>)[key];
  const help: { default?: unknown; choices?: readonly string[] } = {};
  if (field instanceof z.ZodDefault) {
    help.default = field._def.defaultValue();
    field = field._def.innerType;
  }
  if (field instanceof z.ZodOptional) field = field._def.innerType;
  if (field instanceof z.ZodEnum) help.choices = field.options as string[];
  return help;
}
