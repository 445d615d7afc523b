// A Llama-family model's config.json (Hugging Face transformers' LlamaConfig / MistralConfig),
// validated with zod and turned into a typed, camelCase LlamaConfig; toHuggingFaceConfig writes it
// back. Every error names the file and the field. Fields this engine does not use (initializer_range,
// use_cache, transformers_version, ...) are accepted and dropped.
import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';

export const LLAMA_ARCHITECTURES = ['LlamaForCausalLM', 'MistralForCausalLM'] as const;
export type LlamaArchitecture = (typeof LLAMA_ARCHITECTURES)[number];
export type LlamaModelType = 'llama' | 'mistral';

export type RopeScaling =
  | { type: 'linear'; factor: number }
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    };

export interface LlamaConfig {
  architecture: LlamaArchitecture;
  modelType: LlamaModelType;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  /** Default: numAttentionHeads (no grouped-query attention). */
  numKeyValueHeads: number;
  /** Default: hiddenSize / numAttentionHeads. */
  headDim: number;
  rmsNormEps: number;
  /** Default: 10000. */
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  vocabSize: number;
  /** Default: false. */
  tieWordEmbeddings: boolean;
  maxPositionEmbeddings: number;
  bosTokenId: number;
  eosTokenId: number | number[];
  padTokenId?: number;
  torchDtype?: string;
  slidingWindow?: number | null;
  /** Always 'silu' (the only activation this engine implements). */
  hiddenAct: 'silu';
  /** Default: false. */
  attentionBias: boolean;
  /** Default: false. */
  mlpBias: boolean;
}

const posInt = z.number().int().positive();
const tokenId = z.number().int().nonnegative();
const positive = z.number().positive().finite();

/** The rope_scaling types this engine implements ('default' is the same as no rope_scaling). */
export const ROPE_SCALING_TYPES = ['default', 'linear', 'llama3'] as const;

const defaultScaling = z.object({ rope_type: z.literal('default') });
const linearScaling = z.object({ rope_type: z.literal('linear'), factor: positive });
const llama3Scaling = z.object({
  rope_type: z.literal('llama3'),
  factor: positive,
  low_freq_factor: positive,
  high_freq_factor: positive,
  original_max_position_embeddings: posInt,
});

/**
 * rope_scaling: null, or {rope_type | type: 'default' | 'linear' | 'llama3', ...}; the older key
 * `type` is folded into `rope_type`. llama3 needs high_freq_factor > low_freq_factor.
 */
const ropeScalingSchema = z
  .preprocess(
    (v) => {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return v;
      const o = v as Record<string, unknown>;
      const { type, ...rest } = o;
      return { ...rest, rope_type: o.rope_type ?? type };
    },
    z
      .discriminatedUnion('rope_type', [defaultScaling, linearScaling, llama3Scaling], {
        errorMap: (issue, ctx) => {
          if (issue.code !== z.ZodIssueCode.invalid_union_discriminator) return { message: ctx.defaultError };
          const got = (ctx.data as Record<string, unknown> | undefined)?.rope_type;
          return {
            message:
              `rope_type (or type) must be ${ROPE_SCALING_TYPES.map((t) => `'${t}'`).join(', ')}; got ` +
              `${got === undefined ? 'none' : JSON.stringify(got)} ('dynamic' and 'yarn' are not supported)`,
          };
        },
      })
      .superRefine((rs, ctx) => {
        if (rs.rope_type === 'llama3' && !(rs.high_freq_factor > rs.low_freq_factor)) {
          ctx.addIssue({
            code: z.ZodIssueCode.custom,
            path: ['high_freq_factor'],
            message: `${rs.high_freq_factor} is not greater than low_freq_factor ${rs.low_freq_factor}`,
          });
        }
      }),
  )
  .nullable();

const configSchema = z
  .object({
    architectures: z.array(z.string()).optional(),
    model_type: z.enum(['llama', 'mistral']).optional(),
    hidden_size: posInt,
    intermediate_size: posInt,
    num_hidden_layers: posInt,
    num_attention_heads: posInt,
    num_key_value_heads: posInt.nullish(),
    head_dim: posInt.nullish(),
    rms_norm_eps: positive,
    rope_theta: positive.default(10000),
    rope_scaling: ropeScalingSchema.default(null),
    vocab_size: posInt,
    tie_word_embeddings: z.boolean().default(false),
    max_position_embeddings: posInt,
    bos_token_id: tokenId,
    eos_token_id: z.union([tokenId, z.array(tokenId).nonempty()]),
    pad_token_id: tokenId.nullish(),
    torch_dtype: z.string().nullish(),
    sliding_window: posInt.nullish(),
    hidden_act: z.literal('silu').default('silu'),
    attention_bias: z.boolean().default(false),
    mlp_bias: z.boolean().default(false),
  })
  .passthrough()
  .superRefine((c, ctx) => {
    const known = (c.architectures ?? []).filter((a): a is LlamaArchitecture => (LLAMA_ARCHITECTURES as readonly string[]).includes(a));
    if (c.architectures !== undefined && known.length === 0) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['architectures'],
        message: `${JSON.stringify(c.architectures)} names no supported architecture (expected ${LLAMA_ARCHITECTURES.join(' or ')})`,
      });
    }
    if (c.architectures === undefined && c.model_type === undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['architectures'], message: 'neither architectures nor model_type is given' });
    }
    if ((c.head_dim ?? undefined) === undefined && c.hidden_size % c.num_attention_heads !== 0) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['num_attention_heads'],
        message: `${c.num_attention_heads} does not divide hidden_size ${c.hidden_size} (and head_dim is not given)`,
      });
    }
    const kv = c.num_key_value_heads ?? c.num_attention_heads;
    if (c.num_attention_heads % kv !== 0) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['num_key_value_heads'],
        message: `${kv} does not divide num_attention_heads ${c.num_attention_heads}`,
      });
    }
  });

function describe(issue: z.ZodIssue): string {
  const field = issue.path.length > 0 ? issue.path.map(String).join('.') : '(root)';
  const message = issue.code === z.ZodIssueCode.invalid_type && issue.received === 'undefined' ? 'is required' : issue.message;
  return `field "${field}": ${message}`;
}

/** Validates a parsed config.json; errors name `file` and each offending field. */
export function parseLlamaConfig(json: unknown, file = 'config.json'): LlamaConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${file}: the config must be a JSON object`);
  const r = configSchema.safeParse(json);
  if (!r.success) throw new Error(`${file}: ${r.error.issues.map(describe).join('; ')}`);
  const c = r.data;
  const architecture =
    (c.architectures ?? []).find((a): a is LlamaArchitecture => (LLAMA_ARCHITECTURES as readonly string[]).includes(a)) ??
    (c.model_type === 'mistral' ? 'MistralForCausalLM' : 'LlamaForCausalLM');
  const modelType: LlamaModelType = c.model_type ?? (architecture === 'MistralForCausalLM' ? 'mistral' : 'llama');
  const rs = c.rope_scaling;
  const ropeScaling: RopeScaling | null =
    rs === null || rs.rope_type === 'default'
      ? null
      : rs.rope_type === 'linear'
        ? { type: 'linear', factor: rs.factor }
        : {
            type: 'llama3',
            factor: rs.factor,
            lowFreqFactor: rs.low_freq_factor,
            highFreqFactor: rs.high_freq_factor,
            originalMaxPositionEmbeddings: rs.original_max_position_embeddings,
          };
  const config: LlamaConfig = {
    architecture,
    modelType,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numHiddenLayers: c.num_hidden_layers,
    numAttentionHeads: c.num_attention_heads,
    numKeyValueHeads: c.num_key_value_heads ?? c.num_attention_heads,
    headDim: c.head_dim ?? c.hidden_size / c.num_attention_heads,
    rmsNormEps: c.rms_norm_eps,
    ropeTheta: c.rope_theta,
    ropeScaling,
    vocabSize: c.vocab_size,
    tieWordEmbeddings: c.tie_word_embeddings,
    maxPositionEmbeddings: c.max_position_embeddings,
    bosTokenId: c.bos_token_id,
    eosTokenId: Array.isArray(c.eos_token_id) ? [...c.eos_token_id] : c.eos_token_id,
    hiddenAct: c.hidden_act,
    attentionBias: c.attention_bias,
    mlpBias: c.mlp_bias,
  };
  if (c.pad_token_id != null) config.padTokenId = c.pad_token_id;
  if (c.torch_dtype != null) config.torchDtype = c.torch_dtype;
  if (c.sliding_window !== undefined) config.slidingWindow = c.sliding_window;
  return config;
}

/** The config as Hugging Face's config.json (snake_case); parseLlamaConfig of it gives `config` back. */
export function toHuggingFaceConfig(config: LlamaConfig): Record<string, unknown> {
  const rs = config.ropeScaling;
  const out: Record<string, unknown> = {
    architectures: [config.architecture],
    model_type: config.modelType,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numHiddenLayers,
    num_attention_heads: config.numAttentionHeads,
    num_key_value_heads: config.numKeyValueHeads,
    head_dim: config.headDim,
    hidden_act: config.hiddenAct,
    rms_norm_eps: config.rmsNormEps,
    rope_theta: config.ropeTheta,
    rope_scaling:
      rs === null
        ? null
        : rs.type === 'linear'
          ? { rope_type: 'linear', factor: rs.factor }
          : {
              rope_type: 'llama3',
              factor: rs.factor,
              low_freq_factor: rs.lowFreqFactor,
              high_freq_factor: rs.highFreqFactor,
              original_max_position_embeddings: rs.originalMaxPositionEmbeddings,
            },
    vocab_size: config.vocabSize,
    tie_word_embeddings: config.tieWordEmbeddings,
    max_position_embeddings: config.maxPositionEmbeddings,
    bos_token_id: config.bosTokenId,
    eos_token_id: Array.isArray(config.eosTokenId) ? [...config.eosTokenId] : config.eosTokenId,
    attention_bias: config.attentionBias,
    mlp_bias: config.mlpBias,
  };
  if (config.padTokenId !== undefined) out.pad_token_id = config.padTokenId;
  if (config.torchDtype !== undefined) out.torch_dtype = config.torchDtype;
  if (config.slidingWindow !== undefined) out.sliding_window = config.slidingWindow;
  return out;
}

/** Reads and validates dir/config.json. */
export function loadLlamaConfig(dir: string, opts: { sequenceClassifier?: boolean } = {}): LlamaConfig {
  const file = path.join(dir, 'config.json');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `${file}: no such file (a model folder needs config.json)` : `${file}: cannot read: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON: ${(e as Error).message}`);
  }
  // A sequence classifier (a reward model's folder) is read as the causal LM its backbone is.
  const j = json as { architectures?: unknown };
  if (opts.sequenceClassifier && Array.isArray(j.architectures)) {
    json = { ...j, architectures: j.architectures.map((a) => (typeof a === 'string' ? a.replace(/ForSequenceClassification$/, 'ForCausalLM') : a)) };
  }
  return parseLlamaConfig(json, file);
}

/** The Hugging Face parameter names and shapes of a config, in a fixed order. */
export function llamaParameterShapes(config: LlamaConfig): Map<string, number[]> {
  const { hiddenSize: D, intermediateSize: F, numAttentionHeads: H, numKeyValueHeads: Hkv, headDim: Dh, vocabSize: V } = config;
  const shapes = new Map<string, number[]>();
  shapes.set('model.embed_tokens.weight', [V, D]);
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const p = `model.layers.${i}`;
    shapes.set(`${p}.input_layernorm.weight`, [D]);
    shapes.set(`${p}.self_attn.q_proj.weight`, [H * Dh, D]);
    shapes.set(`${p}.self_attn.k_proj.weight`, [Hkv * Dh, D]);
    shapes.set(`${p}.self_attn.v_proj.weight`, [Hkv * Dh, D]);
    shapes.set(`${p}.self_attn.o_proj.weight`, [D, H * Dh]);
    shapes.set(`${p}.post_attention_layernorm.weight`, [D]);
    shapes.set(`${p}.mlp.gate_proj.weight`, [F, D]);
    shapes.set(`${p}.mlp.up_proj.weight`, [F, D]);
    shapes.set(`${p}.mlp.down_proj.weight`, [D, F]);
  }
  shapes.set('model.norm.weight', [D]);
  if (!config.tieWordEmbeddings) shapes.set('lm_head.weight', [V, D]);
  return shapes;
}
