// LoRA adapters (src/model/lora.ts) on the model engine: the forward adds scaling B(A x) and a zero B
// changes nothing, bit for bit; the backward gives A and B their exact gradients (finite differences
// in f64, with and without dropout and recompute) and no base weight any; one base serves a model
// with and without its adapter; PEFT's folder reads back bit-exact; the merge is W + scaling B A.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as osp from '../src';
import { LlamaModel, packSequences } from '../src/model/llama';
import { LORA_TARGETS, LoraAdapter, LoraSpec, loraKey, mergedParameters, readAdapterConfig } from '../src/model/lora';
import { seeded } from './helpers/random';
import { tinyConfig } from './helpers/tinyLlama';

const config = tinyConfig(false);

function nextTokenTargets(batch: { tokens: Int32Array; sequenceIds: Int32Array }): Int32Array {
  const targets = new Int32Array(batch.tokens.length).fill(-100);
  for (let t = 0; t + 1 < batch.tokens.length; t++) if (batch.sequenceIds[t + 1] === batch.sequenceIds[t]) targets[t] = batch.tokens[t + 1];
  return targets;
}

function sequences(next: () => number, lengths: number[]): Int32Array[] {
  return lengths.map((n) => Int32Array.from({ length: n }, () => Math.floor(next() * config.vocabSize)));
}

/** An adapter whose A and B are all given host values (B non-zero, so every gradient path is live). */
function adapterFrom(spec: LoraSpec, values: Map<string, Float64Array>, dtype: 'f32' | 'f64' = 'f64'): LoraAdapter {
  const shapes = new Map<string, number[]>();
  const probe = LoraAdapter.init(config, spec, { seed: 1, dtype });
  for (const [k, t] of probe.parameters()) shapes.set(k, t.shape);
  probe.dispose();
  const tensors = new Map<string, osp.Tensor>();
  for (const [k, shape] of shapes) {
    const v = values.get(k) as Float64Array;
    tensors.set(k, osp.keep(osp.tensor(dtype === 'f64' ? v : Float32Array.from(v), shape, { dtype, device: 'cpu' })));
  }
  return new LoraAdapter(config, spec, tensors);
}

function randomValues(spec: LoraSpec, next: () => number, scale: number): Map<string, Float64Array> {
  const probe = LoraAdapter.init(config, spec, { seed: 1, dtype: 'f64' });
  const out = new Map<string, Float64Array>();
  for (const [k, t] of probe.parameters()) out.set(k, Float64Array.from({ length: t.size }, () => scale * (2 * next() - 1)));
  probe.dispose();
  return out;
}

const allTargets: LoraSpec = { r: 3, alpha: 6, dropout: 0, targets: LORA_TARGETS };

describe('the LoRA forward', () => {
  it('with B zero (a new adapter) gives logits bit-identical to the base model', () => {
    const { seed, next } = seeded('lora zero B');
    const base = LlamaModel.init(config, { seed, dtype: 'f32', device: 'cpu', std: 0.2 });
    const adapter = LoraAdapter.init(config, { ...allTargets, dropout: 0.3 }, { seed: seed + 1 });
    const seqs = sequences(next, [7, 1, 12]);
    const plain = base.logits(seqs);
    const adapted = base.withAdapter(adapter).logits(seqs);
    plain.forEach((l, i) => expect(Buffer.from(adapted[i].buffer).equals(Buffer.from(l.buffer))).toBe(true));
    adapter.dispose();
    base.dispose();
  });

  it('initialises A Kaiming-uniform within 1/sqrt(in) as PEFT does, and B to zero', () => {
    const adapter = LoraAdapter.init(config, allTargets, { seed: 5 });
    const a = adapter.weights(0, 'down')!;
    const A = a.A.toArray();
    const bound = 1 / Math.sqrt(config.intermediateSize);
    expect(Math.max(...Array.from(A, Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...Array.from(A, Math.abs))).toBeGreaterThan(0.8 * bound);
    expect(Array.from(a.B.toArray()).every((v) => v === 0)).toBe(true);
    adapter.dispose();
  });

  it('adds scaling (x A^T) B^T to the base output: equal to the merged model within f64 rounding', () => {
    const { seed, next } = seeded('lora merged logits');
    const base = LlamaModel.init(config, { seed, dtype: 'f64', std: 0.2 });
    const adapter = adapterFrom(allTargets, randomValues(allTargets, next, 0.3));
    const merged = new LlamaModel(config, mergedParameters(base.parameters(), adapter));
    const seqs = sequences(next, [9, 4]);
    const a = base.withAdapter(adapter).logits(seqs);
    const m = merged.logits(seqs);
    const b = base.logits(seqs);
    let diffBase = 0;
    a.forEach((l, i) => {
      for (let j = 0; j < l.length; j++) {
        expect(Math.abs(l[j] - m[i][j])).toBeLessThan(1e-12);
        diffBase = Math.max(diffBase, Math.abs(l[j] - b[i][j]));
      }
    });
    expect(diffBase).toBeGreaterThan(1e-3); // the adapter does change the model
    adapter.dispose();
    base.dispose();
  });

  it('samples through the kv cache with the adapter applied: forwardCached equals forward', () => {
    const { seed, next } = seeded('lora cached');
    const base = LlamaModel.init(config, { seed, dtype: 'f64', std: 0.2 });
    const adapter = adapterFrom(allTargets, randomValues(allTargets, next, 0.3));
    const model = base.withAdapter(adapter);
    const [s] = sequences(next, [6]);
    const full = osp.scope(() => Float64Array.from(model.forward(packSequences([s])).hidden.toArray()));
    const cache = { k: [] as osp.Tensor[], v: [] as osp.Tensor[] };
    for (let i = 0; i < config.numHiddenLayers; i++) {
      cache.k.push(osp.zeros([1, 8, config.numKeyValueHeads, config.headDim], { dtype: 'f64' }));
      cache.v.push(osp.zeros([1, 8, config.numKeyValueHeads, config.headDim], { dtype: 'f64' }));
    }
    const cached = Float64Array.from(model.forwardCached(cache, s, new Int32Array(6), Int32Array.from({ length: 6 }, (_, i) => i)).toArray());
    for (let i = 0; i < full.length; i++) expect(Math.abs(cached[i] - full[i])).toBeLessThan(1e-12);
    adapter.dispose();
    base.dispose();
  });
});

describe('the LoRA backward', () => {
  const cases: { what: string; spec: LoraSpec; recompute: boolean; dropoutSeed?: number }[] = [
    { what: 'all seven targets', spec: allTargets, recompute: false },
    { what: 'q and v only, with recompute', spec: { r: 2, alpha: 3, dropout: 0, targets: ['q', 'v'] }, recompute: true },
    { what: 'dropout 0.25 (the same masks in the backward)', spec: { ...allTargets, dropout: 0.25 }, recompute: false, dropoutSeed: 77 },
    { what: 'dropout 0.25 with recompute', spec: { r: 2, alpha: 2, dropout: 0.25, targets: ['o', 'gate', 'down'] }, recompute: true, dropoutSeed: 9 },
  ];
  for (const c of cases) {
    it(`gives A and B their finite-difference gradients in f64: ${c.what}`, () => {
      const { seed, next } = seeded(`lora fd ${c.what}`);
      const base = LlamaModel.init(config, { seed, dtype: 'f64', std: 0.2 });
      const values = randomValues(c.spec, next, 0.3);
      const batch = packSequences(sequences(next, [6, 1, 9]));
      const targets = nextTokenTargets(batch);
      const g = Float64Array.from(targets, (t) => (t < 0 ? 0 : next() - 0.5));
      const opts = { recompute: c.recompute, dropoutSeed: c.dropoutSeed };
      const loss = (vals: Map<string, Float64Array>): number => {
        const a = adapterFrom(c.spec, vals);
        const lp = base.withAdapter(a).tokenLogprobs(batch, targets, opts);
        a.dispose();
        return lp.reduce((s, v, i) => s + g[i] * v, 0);
      };
      const adapter = adapterFrom(c.spec, values);
      const r = base.withAdapter(adapter).lossAndGrads(batch, targets, g, opts);
      expect(Array.from(r.grads.keys())).toEqual(Array.from(adapter.parameters().keys()));
      const h = 1e-6;
      for (const key of [loraKey(0, c.spec.targets[0], 'A'), loraKey(1, c.spec.targets[c.spec.targets.length - 1], 'B'), loraKey(0, c.spec.targets[c.spec.targets.length - 1], 'B')]) {
        const analytic = r.grads.get(key)!.toArray();
        for (let probe = 0; probe < 3; probe++) {
          const j = Math.floor(next() * analytic.length);
          const plus = new Map(values);
          const minus = new Map(values);
          plus.set(key, Float64Array.from(values.get(key)!, (v, i) => (i === j ? v + h : v)));
          minus.set(key, Float64Array.from(values.get(key)!, (v, i) => (i === j ? v - h : v)));
          const fd = (loss(plus) - loss(minus)) / (2 * h);
          expect(Math.abs(fd - analytic[j])).toBeLessThan(1e-6 * Math.max(1, Math.abs(fd)));
        }
      }
      for (const t of r.grads.values()) t.dispose();
      adapter.dispose();
      base.dispose();
    });
  }

  it('allocates no gradient for a base weight: live memory after the step is the adapter gradients alone', () => {
    const { seed, next } = seeded('lora no base grads');
    const base = LlamaModel.init(config, { seed, dtype: 'f32', device: 'cpu' });
    const adapter = LoraAdapter.init(config, allTargets, { seed });
    const batch = packSequences(sequences(next, [9, 12]));
    const targets = nextTokenTargets(batch);
    const g = Float64Array.from(targets, (t) => (t < 0 ? 0 : -1));
    const before = osp.memoryStats().cpu.currentBytes;
    const r = base.withAdapter(adapter).lossAndGrads(batch, targets, g);
    let bytes = 4 * r.gradInputEmbeddings.size;
    for (const t of r.grads.values()) bytes += 4 * t.size;
    let adapterBytes = 0;
    for (const t of adapter.parameters().values()) adapterBytes += 4 * t.size;
    expect(bytes - 4 * r.gradInputEmbeddings.size).toBe(adapterBytes);
    expect(osp.memoryStats().cpu.currentBytes - before).toBe(bytes);
    for (const t of r.grads.values()) t.dispose();
    r.gradInputEmbeddings.dispose();
    adapter.dispose();
    base.dispose();
  });

  it('draws dropout masks from the seed: the same seed gives the same loss, another seed another', () => {
    const { seed, next } = seeded('lora dropout seeds');
    const base = LlamaModel.init(config, { seed, dtype: 'f64', std: 0.2 });
    const spec = { ...allTargets, dropout: 0.5 };
    const adapter = adapterFrom(spec, randomValues(spec, next, 0.3));
    const model = base.withAdapter(adapter);
    const batch = packSequences(sequences(next, [10]));
    const targets = nextTokenTargets(batch);
    const lp = (s?: number) => Array.from(model.tokenLogprobs(batch, targets, { dropoutSeed: s }));
    expect(lp(3)).toEqual(lp(3));
    expect(lp(3)).not.toEqual(lp(4));
    expect(lp(3)).not.toEqual(lp());
    adapter.dispose();
    base.dispose();
  });
});

describe('PEFT folders', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-lora-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes adapter_config.json with PEFT fields and reads the adapter back bit-exact', () => {
    const { next } = seeded('lora save');
    const spec: LoraSpec = { r: 4, alpha: 8, dropout: 0.05, targets: ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] };
    const adapter = adapterFrom(spec, randomValues(spec, next, 0.5), 'f32');
    adapter.save(path.join(dir, 'a'), { baseModel: '/models/base' });
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'a', 'adapter_config.json'), 'utf8'));
    expect(cfg).toMatchObject({
      peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 4, lora_alpha: 8, lora_dropout: 0.05, bias: 'none', fan_in_fan_out: false, inference_mode: true,
      base_model_name_or_path: '/models/base', target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    });
    const header = osp.readSafetensorsHeader(path.join(dir, 'a', 'adapter_model.safetensors'));
    expect(header.tensors.get('base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight')!.shape).toEqual([4, config.hiddenSize]);
    expect(header.tensors.get('base_model.model.model.layers.0.mlp.down_proj.lora_B.weight')!.shape).toEqual([config.hiddenSize, 4]);
    const back = LoraAdapter.load(path.join(dir, 'a'), config);
    expect(readAdapterConfig(path.join(dir, 'a')).spec).toEqual(spec);
    for (const [k, t] of adapter.parameters()) expect(Buffer.from(back.parameters().get(k)!.toArray().buffer).equals(Buffer.from(t.toArray().buffer))).toBe(true);
    back.dispose();
    adapter.dispose();
  });

  it('refuses an adapter whose shapes do not fit the model, naming the tensor', () => {
    const adapter = LoraAdapter.init(config, allTargets, { seed: 2 });
    adapter.save(path.join(dir, 'a'), { baseModel: 'x' });
    adapter.dispose();
    expect(() => LoraAdapter.load(path.join(dir, 'a'), { ...config, hiddenSize: 40 })).toThrow(/lora_A\.weight has shape \[3, 32\]; expected \[3, 40\]/);
  });

  it('refuses a config that is not a LoRA adapter', () => {
    fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'PREFIX_TUNING' }));
    expect(() => LoraAdapter.load(dir, config)).toThrow(/peft_type is "PREFIX_TUNING"; expected "LORA"/);
  });

  it('merges to W + scaling B A in f64 for every adapted weight and leaves the others as they were', () => {
    const { seed, next } = seeded('lora merge');
    const base = LlamaModel.init(config, { seed, dtype: 'f64', std: 0.2 });
    const spec: LoraSpec = { r: 2, alpha: 5, dropout: 0, targets: ['k', 'up'] };
    const values = randomValues(spec, next, 0.4);
    const adapter = adapterFrom(spec, values);
    const merged = mergedParameters(base.parameters(), adapter);
    for (const [name, W] of base.parameters()) {
      const m = merged.get(name)!.toArray();
      const w = W.toArray();
      const hit = /layers\.(\d)\.(self_attn\.k_proj|mlp\.up_proj)\.weight/.exec(name);
      if (!hit) {
        expect(merged.get(name)).toBe(W);
        continue;
      }
      const t = hit[2] === 'self_attn.k_proj' ? 'k' : 'up';
      const A = values.get(loraKey(Number(hit[1]), t, 'A'))!;
      const B = values.get(loraKey(Number(hit[1]), t, 'B'))!;
      const [out, inp] = W.shape;
      for (let o = 0; o < out; o++) {
        for (let i = 0; i < inp; i++) {
          let d = 0;
          for (let k = 0; k < spec.r; k++) d += B[o * spec.r + k] * A[k * inp + i];
          expect(Math.abs(m[o * inp + i] - (w[o * inp + i] + 2.5 * d))).toBeLessThan(1e-14);
        }
      }
    }
    adapter.dispose();
    base.dispose();
  });
});
