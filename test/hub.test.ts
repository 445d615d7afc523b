// Hugging Face folders (src/model/hub.ts): saveLlama -> loadLlama bit-exact on a tiny config (tied
// and untied), same token log-probs; sharded and BF16 folders; every bad-input case names the file /
// tensor; an interrupted save leaves nothing behind and an existing folder intact.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { saveLlama } from '../src/model/hub';
import { loadLlama } from '../src/model/llama';
import { LlamaModel, packSequences } from '../src/model/llama';
import { INDEX_FILE, bf16ToF32, f32ToBf16, readSafetensors, writeSafetensors } from '../src/model/safetensors';
import { tinyConfig } from './helpers/tinyLlama';

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-hub-'));
});
afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

const cpu = { device: 'cpu' } as const;
const models: LlamaModel[] = [];
function dispose(m: LlamaModel): void {
  m.dispose();
}
afterEach(() => {
  for (const m of models.splice(0)) dispose(m);
});
function track(m: LlamaModel): LlamaModel {
  models.push(m);
  return m;
}
function init(tie: boolean, seed = 5): LlamaModel {
  return track(LlamaModel.init(tinyConfig(tie), { seed, device: 'cpu' }));
}
async function load(dir: string, opts: Parameters<typeof loadLlama>[1] = cpu): Promise<LlamaModel> {
  return track(await loadLlama(dir, opts));
}
async function loadError(dir: string): Promise<string> {
  try {
    track(await loadLlama(dir, cpu));
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error(`loadLlama(${dir}) did not throw`);
}

function expectSameParameters(a: LlamaModel, b: LlamaModel, transform: (x: Float32Array) => Float32Array = (x) => x): void {
  const pa = a.parameters();
  const pb = b.parameters();
  expect([...pb.keys()]).toEqual([...pa.keys()]);
  for (const [name, t] of pa) {
    const u = pb.get(name)!;
    expect(u.shape).toEqual(t.shape);
    const x = transform(t.toArray() as Float32Array);
    const y = u.toArray() as Float32Array;
    // Bit-exact: compare the bit patterns.
    expect(Buffer.from(y.buffer, y.byteOffset, y.byteLength).equals(Buffer.from(x.buffer, x.byteOffset, x.byteLength))).toBe(true);
  }
}

function batch() {
  const seqs = [Int32Array.from([3]), Int32Array.from([5, 9, 11, 2, 60]), Int32Array.from({ length: 17 }, (_, i) => (i * 13 + 7) % 97)];
  const b = packSequences(seqs);
  const targets = Int32Array.from(b.tokens, (_, i) => (i * 31 + 4) % 97);
  return { b, targets };
}

/** Rewrites the single-file weights of `dir` through `edit`. */
function editWeights(dir: string, edit: (m: Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>) => void): void {
  const file = path.join(dir, 'model.safetensors');
  const m = new Map([...readSafetensors(file)].map(([n, t]) => [n, { dtype: 'F32' as const, shape: t.shape, data: t.data as Float32Array }]));
  edit(m);
  fs.rmSync(file);
  writeSafetensors(file, m, { format: 'pt' });
}

describe('saveLlama -> loadLlama', () => {
  for (const tie of [false, true]) {
    it(`is bit-exact and gives the same token log-probs (${tie ? 'tied' : 'untied'} embeddings)`, async () => {
      const model = init(tie);
      const dir = path.join(root, 'm');
      await saveLlama(model, dir);
      expect(fs.readdirSync(dir).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors']);
      // transformers' generate() reads the special tokens from generation_config.json.
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'generation_config.json'), 'utf8'))).toEqual({ bos_token_id: model.config.bosTokenId, eos_token_id: model.config.eosTokenId });
      const hf = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
      expect(hf.architectures).toEqual(['LlamaForCausalLM']);
      expect(hf.model_type).toBe('llama');
      expect(hf.torch_dtype).toBe('float32');
      expect(hf.tie_word_embeddings).toBe(tie);
      const names = [...readSafetensors(path.join(dir, 'model.safetensors')).keys()];
      expect(names.includes('lm_head.weight')).toBe(!tie);
      const loaded = await load(dir);
      expect(loaded.config).toEqual({ ...model.config, torchDtype: 'float32' });
      expectSameParameters(model, loaded);
      const { b, targets } = batch();
      expect(loaded.tokenLogprobs(b, targets)).toEqual(model.tokenLogprobs(b, targets));
      expect(fs.readdirSync(root)).toEqual(['m']);
    });
  }

  it('writes shards and an index above maxShardBytes, and loads them back', async () => {
    const model = init(false);
    const dir = path.join(root, 'sharded');
    await saveLlama(model, dir, { maxShardBytes: 20_000 });
    const files = fs.readdirSync(dir).sort();
    expect(files).toContain(INDEX_FILE);
    expect(files).not.toContain('model.safetensors');
    expect(files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length).toBeGreaterThan(2);
    expectSameParameters(model, await load(dir));
  });

  it('BF16 on disk loads back equal to the bf16-rounded weights (as f32, and as bf16)', async () => {
    const model = init(false);
    const dir = path.join(root, 'bf16');
    await saveLlama(model, dir, { dtype: 'BF16' });
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).torch_dtype).toBe('bfloat16');
    expect(readSafetensors(path.join(dir, 'model.safetensors')).get('model.norm.weight')!.dtype).toBe('BF16');
    const round = (x: Float32Array) => bf16ToF32(f32ToBf16(x));
    expectSameParameters(model, await load(dir), round);
    const asBf16 = await load(dir, { device: 'cpu', dtype: 'bf16' });
    expect(asBf16.parameters().get('model.embed_tokens.weight')!.dtype).toBe('bf16');
    expectSameParameters(model, asBf16, round);
  });

  it('loads f64 on the cpu; refuses f64 on cuda', async () => {
    const model = init(true);
    const dir = path.join(root, 'm');
    await saveLlama(model, dir);
    const m64 = await load(dir, { dtype: 'f64' });
    expect(m64.dtype).toBe('f64');
    const w = model.parameters().get('model.layers.1.mlp.up_proj.weight')!.toArray();
    expect(Array.from(m64.parameters().get('model.layers.1.mlp.up_proj.weight')!.toArray())).toEqual(Array.from(w));
    await expect(loadLlama(dir, { dtype: 'f64', device: 'cuda' })).rejects.toThrow(/f64.*cpu/);
  });

  it('copies the tokenizer files along and replaces an existing folder', async () => {
    const tokDir = path.join(root, 'tok');
    fs.mkdirSync(tokDir);
    fs.writeFileSync(path.join(tokDir, 'tokenizer.json'), '{"x":1}');
    fs.writeFileSync(path.join(tokDir, 'tokenizer_config.json'), '{"y":2}');
    fs.writeFileSync(path.join(tokDir, 'unrelated.txt'), 'no');
    const dir = path.join(root, 'm');
    await saveLlama(init(true, 1), dir);
    fs.writeFileSync(path.join(dir, 'stale.txt'), 'old');
    const model = init(true, 2);
    await saveLlama(model, dir, { tokenizerFrom: tokDir });
    expect(fs.readdirSync(dir).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    expect(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')).toBe('{"x":1}');
    expectSameParameters(model, await load(dir));
    expect(fs.readdirSync(root).sort()).toEqual(['m', 'tok']);
  });

  it('ignores rotary inv_freq buffers; accepts a tied lm_head.weight only if it equals the embeddings', async () => {
    const model = init(true);
    const dir = path.join(root, 'm');
    await saveLlama(model, dir);
    editWeights(dir, (m) => {
      m.set('model.layers.0.self_attn.rotary_emb.inv_freq', { dtype: 'F32', shape: [4], data: new Float32Array(4) });
      const e = m.get('model.embed_tokens.weight')!;
      m.set('lm_head.weight', { dtype: 'F32', shape: e.shape, data: e.data.slice() });
    });
    expectSameParameters(model, await load(dir));
    editWeights(dir, (m) => {
      const h = m.get('lm_head.weight')!;
      h.data[7] += 1;
    });
    expect(await loadError(dir)).toMatch(/model\.safetensors: tensor "lm_head\.weight" differs from "model\.embed_tokens\.weight".*tie_word_embeddings/);
  });
});

describe('loadLlama bad input', () => {
  let dir: string;
  beforeEach(async () => {
    dir = path.join(root, 'm');
    await saveLlama(init(false), dir);
  });

  it('missing folder', async () => {
    const missing = path.join(root, 'nope');
    expect(await loadError(missing)).toBe(`${missing}: no such folder`);
  });

  it('missing config.json', async () => {
    fs.rmSync(path.join(dir, 'config.json'));
    expect(await loadError(dir)).toContain(`${path.join(dir, 'config.json')}: no such file`);
  });

  it('missing weights', async () => {
    fs.rmSync(path.join(dir, 'model.safetensors'));
    const msg = await loadError(dir);
    expect(msg).toContain(path.join(dir, 'model.safetensors'));
    expect(msg).toContain(path.join(dir, INDEX_FILE));
    expect(msg).toMatch(/no weights/);
  });

  it('missing tensor (single file and shard)', async () => {
    editWeights(dir, (m) => m.delete('model.layers.1.mlp.down_proj.weight'));
    expect(await loadError(dir)).toMatch(/model\.safetensors: tensor "model\.layers\.1\.mlp\.down_proj\.weight" is missing \(expected shape \[32, 48\]/);
    // A shard that lacks a tensor its index assigns to it.
    const sdir = path.join(root, 's');
    await saveLlama(init(false), sdir, { maxShardBytes: 20_000 });
    const index = JSON.parse(fs.readFileSync(path.join(sdir, INDEX_FILE), 'utf8'));
    const shard = index.weight_map['model.norm.weight'];
    const other = Object.values(index.weight_map).find((f) => f !== shard) as string;
    index.weight_map['model.norm.weight'] = other;
    fs.writeFileSync(path.join(sdir, INDEX_FILE), JSON.stringify(index));
    expect(await loadError(sdir)).toBe(
      `${path.join(sdir, other)}: tensor "model.norm.weight" is missing (${path.join(sdir, INDEX_FILE)} says this file holds it)`,
    );
  });

  it('mis-shaped tensor', async () => {
    editWeights(dir, (m) => m.set('model.layers.0.self_attn.k_proj.weight', { dtype: 'F32', shape: [8, 32], data: new Float32Array(256) }));
    expect(await loadError(dir)).toMatch(
      /model\.safetensors: tensor "model\.layers\.0\.self_attn\.k_proj\.weight" has shape \[8, 32\] but .*config\.json .* expects \[16, 32\]/,
    );
  });

  it('unexpected tensor', async () => {
    editWeights(dir, (m) => m.set('model.layers.0.self_attn.q_proj.bias', { dtype: 'F32', shape: [32], data: new Float32Array(32) }));
    expect(await loadError(dir)).toMatch(/model\.safetensors: unexpected tensor "model\.layers\.0\.self_attn\.q_proj\.bias"/);
  });

  it('corrupt safetensors header', async () => {
    const file = path.join(dir, 'model.safetensors');
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(file, bytes.subarray(0, 40));
    const msg = await loadError(dir);
    expect(msg).toContain(file);
  });

  it('truncated data section', async () => {
    const file = path.join(dir, 'model.safetensors');
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(file, bytes.subarray(0, bytes.length - 100));
    expect(await loadError(dir)).toContain(file);
  });

  it('config that disagrees with the tensors (hidden_size, num_hidden_layers)', async () => {
    const cfgFile = path.join(dir, 'config.json');
    const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, hidden_size: 64, head_dim: 16 }));
    expect(await loadError(dir)).toMatch(/model\.safetensors: tensor "model\.embed_tokens\.weight" has shape \[97, 32\] but .*config\.json \(hidden_size 64.*expects \[97, 64\]/);
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, num_hidden_layers: 1 }));
    expect(await loadError(dir)).toMatch(/unexpected tensors "model\.layers\.1\..*num_hidden_layers 1/);
  });
});

describe('saveLlama atomicity', () => {
  it('an interrupted save leaves no folder and no temporary folder', async () => {
    const model = LlamaModel.init(tinyConfig(false), { seed: 9, device: 'cpu' });
    model.parameters().get('model.layers.1.mlp.up_proj.weight')!.dispose();
    const dir = path.join(root, 'm');
    await expect(saveLlama(model, dir)).rejects.toThrow();
    expect(fs.readdirSync(root)).toEqual([]);
    dispose(model);
  });

  it('an interrupted save keeps an existing folder intact', async () => {
    const good = init(false, 1);
    const dir = path.join(root, 'm');
    await saveLlama(good, dir);
    const before = fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f))] as const);
    const bad = LlamaModel.init(tinyConfig(false), { seed: 9, device: 'cpu' });
    bad.parameters().get('model.norm.weight')!.dispose();
    await expect(saveLlama(bad, dir, { maxShardBytes: 20_000 })).rejects.toThrow();
    dispose(bad);
    expect(fs.readdirSync(root)).toEqual(['m']);
    for (const [f, bytes] of before) expect(fs.readFileSync(path.join(dir, f)).equals(bytes)).toBe(true);
    expect(fs.readdirSync(dir).length).toBe(before.length);
    expectSameParameters(good, await load(dir));
  });

  it('rejects bad options before writing anything', async () => {
    const model = init(true);
    const dir = path.join(root, 'm');
    await expect(saveLlama(model, dir, { maxShardBytes: 0 })).rejects.toThrow(/maxShardBytes/);
    await expect(saveLlama(model, dir, { tokenizerFrom: path.join(root, 'none') })).rejects.toThrow(/tokenizerFrom .*none: no such folder/);
    expect(fs.readdirSync(root)).toEqual([]);
  });
});

test('LlamaModel.load and model.save are the same as loadLlama and saveLlama', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-hub-methods-'));
  try {
    const model = LlamaModel.init(tinyConfig(false), { seed: 5, device: 'cpu' });
    await model.save(path.join(dir, 'm'));
    const back = await LlamaModel.load(path.join(dir, 'm'));
    for (const [name, t] of model.parameters()) expect(Array.from(back.parameters().get(name)!.toArray())).toEqual(Array.from(t.toArray()));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
