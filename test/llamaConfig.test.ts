// parseLlamaConfig / toHuggingFaceConfig / loadLlamaConfig (src/model/config.ts): real published
// config.json files (written here as literals), the defaults, one error per bad field (each naming
// the file and the field) and the round trip back to Hugging Face's snake_case form.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { LlamaConfig, loadLlamaConfig, parseLlamaConfig, toHuggingFaceConfig } from '../src/model/config';
import { caught } from './helpers/errors';

/** TinyLlama/TinyLlama-1.1B-Chat-v1.0 config.json. */
const TINYLLAMA = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 5632,
  max_position_embeddings: 2048,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 22,
  num_key_value_heads: 4,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  rope_theta: 10000.0,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  transformers_version: '4.35.0',
  use_cache: true,
  vocab_size: 32000,
};

/** mistralai/Mistral-7B-v0.1 config.json. */
const MISTRAL_7B = {
  architectures: ['MistralForCausalLM'],
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 4096,
  initializer_range: 0.02,
  intermediate_size: 14336,
  max_position_embeddings: 32768,
  model_type: 'mistral',
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  sliding_window: 4096,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  transformers_version: '4.34.0.dev0',
  use_cache: true,
  vocab_size: 32000,
};

/** meta-llama/Llama-3.2-1B-Instruct config.json: llama3 rope scaling, tied embeddings, eos list. */
const LLAMA_32_1B = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  head_dim: 64,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.45.0.dev0',
  use_cache: true,
  vocab_size: 128256,
};

/** The smallest config that parses: only the required fields. */
const MINIMAL = {
  architectures: ['LlamaForCausalLM'],
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  rms_norm_eps: 1e-6,
  vocab_size: 100,
  max_position_embeddings: 256,
  bos_token_id: 1,
  eos_token_id: 2,
};

function errorOf(fn: () => unknown): string {
  const c = caught(fn);
  if (c === undefined) throw new Error('expected an error, but the call returned');
  return c.message;
}

/** The error for TINYLLAMA with `patch` applied (a key set to undefined is removed). */
function tinyError(patch: Record<string, unknown>, file = 'TinyLlama/config.json'): string {
  const json: Record<string, unknown> = { ...TINYLLAMA, ...patch };
  for (const [k, v] of Object.entries(patch)) if (v === undefined) delete json[k];
  return errorOf(() => parseLlamaConfig(json, file));
}

// ---- real configs ---------------------------------------------------------------------------------

test('TinyLlama-1.1B config.json parses to its values', () => {
  expect(parseLlamaConfig(TINYLLAMA)).toEqual<LlamaConfig>({
    architecture: 'LlamaForCausalLM',
    modelType: 'llama',
    hiddenSize: 2048,
    intermediateSize: 5632,
    numHiddenLayers: 22,
    numAttentionHeads: 32,
    numKeyValueHeads: 4,
    headDim: 64,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    vocabSize: 32000,
    tieWordEmbeddings: false,
    maxPositionEmbeddings: 2048,
    bosTokenId: 1,
    eosTokenId: 2,
    torchDtype: 'bfloat16',
    hiddenAct: 'silu',
    attentionBias: false,
    mlpBias: false,
  });
});

test('Mistral-7B config.json parses to its values, sliding window included', () => {
  const c = parseLlamaConfig(MISTRAL_7B);
  expect(c).toMatchObject({
    architecture: 'MistralForCausalLM',
    modelType: 'mistral',
    hiddenSize: 4096,
    intermediateSize: 14336,
    numHiddenLayers: 32,
    numAttentionHeads: 32,
    numKeyValueHeads: 8,
    headDim: 128,
    ropeTheta: 10000,
    ropeScaling: null,
    vocabSize: 32000,
    maxPositionEmbeddings: 32768,
    slidingWindow: 4096,
    tieWordEmbeddings: false,
  });
});

test('Llama-3.2-1B config.json parses llama3 rope scaling, head_dim, tied embeddings and an eos list', () => {
  const c = parseLlamaConfig(LLAMA_32_1B);
  expect(c.ropeScaling).toEqual({ type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
  expect([c.ropeTheta, c.headDim, c.tieWordEmbeddings, c.eosTokenId, c.bosTokenId, c.vocabSize]).toEqual([
    500000,
    64,
    true,
    [128001, 128008, 128009],
    128000,
    128256,
  ]);
});

test('defaults: kv heads = heads, head_dim = hidden / heads, rope_theta 10000, no rope scaling, untied', () => {
  const c = parseLlamaConfig(MINIMAL);
  expect(c).toMatchObject({
    numKeyValueHeads: 4,
    headDim: 16,
    ropeTheta: 10000,
    ropeScaling: null,
    tieWordEmbeddings: false,
    hiddenAct: 'silu',
    attentionBias: false,
    mlpBias: false,
  });
  expect('padTokenId' in c || 'torchDtype' in c || 'slidingWindow' in c).toBe(false);
});

test('model_type alone (no architectures) selects the architecture', () => {
  const { architectures: _drop, ...json } = MISTRAL_7B;
  expect(parseLlamaConfig(json).architecture).toBe('MistralForCausalLM');
});

const LLAMA3_SCALING = { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192 };

test('llama3 rope scaling is accepted under rope_type and the older type; rope_type "default" is no scaling', () => {
  const want = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
  expect(parseLlamaConfig({ ...TINYLLAMA, rope_scaling: LLAMA3_SCALING }).ropeScaling).toEqual(want);
  const { rope_type: _, ...rest } = LLAMA3_SCALING;
  expect(parseLlamaConfig({ ...TINYLLAMA, rope_scaling: { ...rest, type: 'llama3' } }).ropeScaling).toEqual(want);
  expect(parseLlamaConfig({ ...TINYLLAMA, rope_scaling: { rope_type: 'default' } }).ropeScaling).toBeNull();
  expect(parseLlamaConfig({ ...TINYLLAMA, rope_scaling: { type: 'default' } }).ropeScaling).toBeNull();
});

test('linear rope scaling under the older key "type" is accepted', () => {
  expect(parseLlamaConfig({ ...TINYLLAMA, rope_scaling: { type: 'linear', factor: 4 } }).ropeScaling).toEqual({ type: 'linear', factor: 4 });
});

test('an explicit head_dim lifts the hidden_size divisibility requirement', () => {
  expect(parseLlamaConfig({ ...MINIMAL, hidden_size: 60, num_attention_heads: 8, head_dim: 8 }).headDim).toBe(8);
});

test('pad_token_id, null sliding_window and torch_dtype are kept', () => {
  const c = parseLlamaConfig({ ...MINIMAL, pad_token_id: 0, sliding_window: null, torch_dtype: 'float32' });
  expect([c.padTokenId, c.slidingWindow, c.torchDtype]).toEqual([0, null, 'float32']);
});

// ---- bad fields -----------------------------------------------------------------------------------

test('an unknown architecture is an error naming architectures', () => {
  expect(tinyError({ architectures: ['GPT2LMHeadModel'] })).toMatch(/^TinyLlama\/config\.json: field "architectures": \["GPT2LMHeadModel"\] names no supported architecture/);
});

test('an unknown model_type is an error naming model_type', () => {
  expect(tinyError({ model_type: 'gpt2' })).toMatch(/^TinyLlama\/config\.json: field "model_type": .*'llama' \| 'mistral'/);
});

test('heads that do not divide hidden_size (no head_dim) are an error naming num_attention_heads', () => {
  expect(tinyError({ num_attention_heads: 30, num_key_value_heads: 30 })).toBe(
    'TinyLlama/config.json: field "num_attention_heads": 30 does not divide hidden_size 2048 (and head_dim is not given)',
  );
});

test('kv heads that do not divide the heads are an error naming num_key_value_heads', () => {
  expect(tinyError({ num_key_value_heads: 5 })).toBe('TinyLlama/config.json: field "num_key_value_heads": 5 does not divide num_attention_heads 32');
});

test('an unknown rope_scaling type is an error naming rope_scaling', () => {
  expect(tinyError({ rope_scaling: { rope_type: 'yarn', factor: 4 } })).toBe(
    `TinyLlama/config.json: field "rope_scaling.rope_type": rope_type (or type) must be 'default', 'linear', 'llama3'; got "yarn" ('dynamic' and 'yarn' are not supported)`,
  );
  expect(tinyError({ rope_scaling: { type: 'dynamic', factor: 2 } })).toMatch(/field "rope_scaling\.rope_type"/);
  expect(tinyError({ rope_scaling: 'linear' })).toMatch(/field "rope_scaling": Expected object, received string/);
});

test('llama3 rope scaling without its fields is an error naming the missing field', () => {
  expect(tinyError({ rope_scaling: { rope_type: 'llama3', factor: 8 } })).toMatch(/field "rope_scaling\.low_freq_factor": is required/);
  const { factor: _, ...noFactor } = LLAMA3_SCALING;
  expect(tinyError({ rope_scaling: noFactor })).toBe('TinyLlama/config.json: field "rope_scaling.factor": is required');
  expect(tinyError({ rope_scaling: { ...LLAMA3_SCALING, original_max_position_embeddings: 0 } })).toMatch(/field "rope_scaling\.original_max_position_embeddings": Number must be greater than 0/);
});

test('llama3 rope scaling with high_freq_factor <= low_freq_factor is an error naming high_freq_factor', () => {
  expect(tinyError({ rope_scaling: { ...LLAMA3_SCALING, high_freq_factor: 1 } })).toBe(
    'TinyLlama/config.json: field "rope_scaling.high_freq_factor": 1 is not greater than low_freq_factor 1',
  );
  expect(tinyError({ rope_scaling: { ...LLAMA3_SCALING, type: 'llama3', rope_type: undefined, high_freq_factor: 0.5 } })).toMatch(
    /field "rope_scaling\.high_freq_factor": 0\.5 is not greater than low_freq_factor 1/,
  );
});

test('a negative vocab_size is an error naming vocab_size', () => {
  expect(tinyError({ vocab_size: -32000 })).toMatch(/^TinyLlama\/config\.json: field "vocab_size": Number must be greater than 0/);
});

test('a missing hidden_size is an error naming hidden_size', () => {
  expect(tinyError({ hidden_size: undefined })).toBe('TinyLlama/config.json: field "hidden_size": is required');
});

test('non-integer or non-numeric sizes are errors naming the field', () => {
  expect(tinyError({ intermediate_size: 5632.5 })).toMatch(/field "intermediate_size": Expected integer, received float/);
  expect(tinyError({ num_hidden_layers: '22' })).toMatch(/field "num_hidden_layers": Expected number, received string/);
  expect(tinyError({ num_key_value_heads: 0 })).toMatch(/field "num_key_value_heads": Number must be greater than 0/);
});

test('a string eos_token_id is an error naming eos_token_id', () => {
  expect(tinyError({ eos_token_id: '</s>' })).toMatch(/field "eos_token_id"/);
});

test('an activation other than silu is an error naming hidden_act', () => {
  expect(tinyError({ hidden_act: 'gelu' })).toMatch(/field "hidden_act": Invalid literal value, expected "silu"/);
});

test('a config that is not an object is an error naming the file', () => {
  expect(errorOf(() => parseLlamaConfig([1, 2], 'x/config.json'))).toBe('x/config.json: the config must be a JSON object');
});

// ---- round trip and loading -----------------------------------------------------------------------

test.each([
  ['TinyLlama', TINYLLAMA],
  ['Mistral-7B', MISTRAL_7B],
  ['Llama-3.2-1B', LLAMA_32_1B],
  ['minimal', MINIMAL],
  ['linear rope + pad', { ...MINIMAL, rope_scaling: { type: 'linear', factor: 2 }, pad_token_id: 0, sliding_window: null }],
])('%s round-trips through toHuggingFaceConfig', (_name, json) => {
  const c = parseLlamaConfig(json);
  const hf = toHuggingFaceConfig(c);
  expect(parseLlamaConfig(JSON.parse(JSON.stringify(hf)))).toEqual(c);
});

test('toHuggingFaceConfig writes the Hugging Face field names and values', () => {
  const hf = toHuggingFaceConfig(parseLlamaConfig(LLAMA_32_1B));
  const kept = Object.fromEntries(Object.keys(hf).filter((k) => k in LLAMA_32_1B).map((k) => [k, (LLAMA_32_1B as Record<string, unknown>)[k]]));
  expect(hf).toEqual(kept);
  expect(Object.keys(hf).filter((k) => !(k in LLAMA_32_1B))).toEqual([]);
});

describe('loadLlamaConfig', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-config-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('reads dir/config.json', () => {
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(TINYLLAMA, null, 2));
    expect(loadLlamaConfig(dir)).toEqual(parseLlamaConfig(TINYLLAMA));
  });

  test('a missing config.json is an error naming the path', () => {
    expect(errorOf(() => loadLlamaConfig(dir))).toBe(`${path.join(dir, 'config.json')}: no such file (a model folder needs config.json)`);
  });

  test('errors in the file name its path and the field', () => {
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...TINYLLAMA, vocab_size: -1 }));
    expect(errorOf(() => loadLlamaConfig(dir))).toMatch(new RegExp(`^${path.join(dir, 'config.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: field "vocab_size"`));
  });

  test('invalid JSON is an error naming the path', () => {
    fs.writeFileSync(path.join(dir, 'config.json'), '{"hidden_size": ');
    expect(errorOf(() => loadLlamaConfig(dir))).toMatch(/config\.json: not valid JSON/);
  });
});
