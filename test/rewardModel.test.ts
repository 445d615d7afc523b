// The reward model (src/model/rewardModel.ts) and its Bradley-Terry step (bradleyTerryStep in
// src/osp/objective.ts): the step's gradients of score.weight and of backbone weights (full and
// LoRA) equal finite differences of the f64 loss; the fused loss equals the f64 formula
// mean(-log sigmoid(r_chosen - r_rejected)) of the rewards; several micro-batches give the single
// batch's gradients; the reward is the score head on the last token's final hidden state; and the
// folders round-trip (full: LlamaForSequenceClassification; LoRA: PEFT SEQ_CLS with the head).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as osp from '../src';
import { LlamaModel, packSequences } from '../src/model/llama';
import { LoraAdapter, LoraSpec, loraKey } from '../src/model/lora';
import { PEFT_SCORE_WEIGHT, RewardModel, SCORE_WEIGHT, loadBackbone } from '../src/model/rewardModel';
import { readSafetensors } from '../src/model/safetensors';
import { RewardPair, bradleyTerryStep } from '../src/osp/objective';
import { pairAccuracy } from '../src/osp/modes';
import { Tensor } from '../src/tensor';
import { seeded } from './helpers/random';
import { tinyConfig } from './helpers/tinyLlama';

const config = tinyConfig(true);
const D = config.hiddenSize;

function tokens(next: () => number, n: number): Int32Array {
  return Int32Array.from({ length: n }, () => 3 + Math.floor(next() * (config.vocabSize - 3)));
}

function randomPairs(next: () => number, n: number): RewardPair[] {
  return Array.from({ length: n }, () => ({ prompt: tokens(next, 1 + Math.floor(next() * 4)), chosen: tokens(next, 1 + Math.floor(next() * 4)), rejected: tokens(next, 1 + Math.floor(next() * 4)) }));
}

/** An f64 reward model from host values (backbone weights by name, score [D]). */
function build(values: Map<string, Float64Array>, score: Float64Array): RewardModel {
  const base = LlamaModel.init(config, { seed: 0, dtype: 'f64' });
  const shapes = base.parameters();
  const params = new Map<string, Tensor>();
  for (const [n, t] of shapes) params.set(n, osp.keep(osp.tensor(values.get(n)!, t.shape, { dtype: 'f64' })));
  base.dispose();
  return new RewardModel(new LlamaModel(config, params), osp.keep(osp.tensor(score, [1, D], { dtype: 'f64' })), config);
}

function hostValues(m: LlamaModel): Map<string, Float64Array> {
  return new Map(Array.from(m.parameters(), ([n, t]) => [n, Float64Array.from(t.toArray())]));
}

/** The f64 Bradley-Terry loss of the pairs under a model, by its inference forwards. */
function f64Loss(rm: RewardModel, pairs: RewardPair[]): number {
  const cat = (a: Int32Array, b: Int32Array) => Int32Array.from([...a, ...b]);
  const r = rm.sequenceRewards(pairs.flatMap((p) => [cat(p.prompt, p.chosen), cat(p.prompt, p.rejected)]));
  return pairAccuracy(Array.from(pairs, (_, i) => r[2 * i]), Array.from(pairs, (_, i) => r[2 * i + 1])).loss;
}

function disposeAll(grads: Map<string, Tensor>): void {
  for (const g of grads.values()) g.dispose();
}

describe('bradleyTerryStep (full fine-tuning, f64)', () => {
  it('gives score.weight and backbone weights their finite-difference gradients', () => {
    const { seed, next } = seeded('reward fd');
    const init = LlamaModel.init(config, { seed, dtype: 'f64', std: 0.2 });
    const values = hostValues(init);
    init.dispose();
    const score = Float64Array.from({ length: D }, () => (next() - 0.5) * 2);
    const pairs = randomPairs(next, 3);
    const rm = build(values, score);
    const step = bradleyTerryStep(rm, pairs, { microBatch: 8 });
    const grads = step.grads;
    expect(Array.from(grads.keys())).toEqual(Array.from(rm.trainableParameters().keys()));
    expect(Array.from(grads.keys()).pop()).toBe(SCORE_WEIGHT);
    step.record.dispose();
    rm.dispose();
    const h = 1e-6;
    const probe = (key: string, j: number) => {
      const perturbed = (d: number) => {
        if (key === SCORE_WEIGHT) return build(values, Float64Array.from(score, (v, i) => (i === j ? v + d : v)));
        const vals = new Map(values);
        vals.set(key, Float64Array.from(values.get(key)!, (v, i) => (i === j ? v + d : v)));
        return build(vals, score);
      };
      const p = perturbed(h);
      const m = perturbed(-h);
      const fd = (f64Loss(p, pairs) - f64Loss(m, pairs)) / (2 * h);
      p.dispose();
      m.dispose();
      const analytic = grads.get(key)!.toArray()[j];
      expect(Math.abs(fd - analytic)).toBeLessThan(1e-7 * Math.max(1, Math.abs(fd)));
      return fd;
    };
    const keys = [SCORE_WEIGHT, 'model.norm.weight', 'model.layers.1.mlp.down_proj.weight', 'model.layers.0.self_attn.q_proj.weight', 'model.embed_tokens.weight'];
    let nonzero = 0;
    for (const key of keys) {
      const n = grads.get(key)!.size;
      for (let k = 0; k < 3; k++) {
        // embed_tokens: a row some sequence uses (other rows' gradients are 0 and prove nothing).
        const j = key === 'model.embed_tokens.weight' ? pairs[0].prompt[0] * D + Math.floor(next() * D) : Math.floor(next() * n);
        if (Math.abs(probe(key, j)) > 1e-8) nonzero++;
      }
    }
    expect(nonzero).toBeGreaterThan(10);
    disposeAll(grads);
  });

  it('records the fused loss, equal to mean(-log sigmoid(r_chosen - r_rejected)) in f64, and rewards equal to the inference forward', () => {
    const { seed, next } = seeded('reward loss');
    const init = LlamaModel.init(config, { seed, dtype: 'f64', std: 0.3 });
    const values = hostValues(init);
    init.dispose();
    const rm = build(values, Float64Array.from({ length: D }, () => (next() - 0.5) * 4));
    const pairs = randomPairs(next, 5);
    const step = bradleyTerryStep(rm, pairs, { microBatch: 16 });
    const rewards = step.record.get('rewards');
    const loss = step.record.get('loss')[0];
    const f64 = pairs.reduce((s, _, i) => s + Math.log1p(Math.exp(-(rewards[i] - rewards[5 + i]))), 0) / 5;
    expect(Math.abs(loss - f64)).toBeLessThan(1e-12);
    expect(Math.abs(loss - f64Loss(rm, pairs))).toBeLessThan(1e-12);
    // The reward is score . (final hidden state at the last token) of prompt + response.
    const seq = Int32Array.from([...pairs[2].prompt, ...pairs[2].rejected]);
    const hidden = osp.scope(() => Float64Array.from(rm.backbone.forward(packSequences([seq])).hidden.toArray()));
    const s = Float64Array.from(rm.score.toArray());
    const last = hidden.subarray((seq.length - 1) * D, seq.length * D);
    expect(Math.abs(rewards[5 + 2] - last.reduce((a, v, i) => a + v * s[i], 0))).toBeLessThan(1e-12);
    disposeAll(step.grads);
    rm.dispose();
  });

  it('gives the same gradients with several micro-batches (scoring pass, then forward + backward per micro-batch)', () => {
    const { seed, next } = seeded('reward micro');
    const init = LlamaModel.init(config, { seed, dtype: 'f64', std: 0.2 });
    const values = hostValues(init);
    init.dispose();
    const rm = build(values, Float64Array.from({ length: D }, () => next() - 0.5));
    const pairs = randomPairs(next, 5);
    const one = bradleyTerryStep(rm, pairs, { microBatch: 5 });
    const several = bradleyTerryStep(rm, pairs, { microBatch: 2, recompute: true });
    expect(several.record.get('loss')[0]).toBeCloseTo(one.record.get('loss')[0], 12);
    for (const [n, g] of one.grads) {
      const a = g.toArray();
      const b = several.grads.get(n)!.toArray();
      for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(1e-11);
    }
    disposeAll(one.grads);
    disposeAll(several.grads);
    rm.dispose();
  });
});

describe('bradleyTerryStep with LoRA (f64)', () => {
  it('gives the adapters and the score head their finite-difference gradients, and the base none', () => {
    const { seed, next } = seeded('reward lora fd');
    const spec: LoraSpec = { r: 2, alpha: 4, dropout: 0, targets: ['q', 'v', 'down'] };
    const base = LlamaModel.init(config, { seed, dtype: 'f64', std: 0.2 });
    const init = LoraAdapter.init(config, spec, { seed: seed + 1, dtype: 'f64' });
    // B is zero at init: give it values so that A's gradient is not trivially zero.
    const values = new Map(Array.from(init.parameters(), ([k, t]) => [k, Float64Array.from(t.toArray(), () => (next() - 0.5) * 0.4)]));
    init.dispose();
    const score = Float64Array.from({ length: D }, () => next() - 0.5);
    const make = (vals: Map<string, Float64Array>, sc: Float64Array) => {
      const t = new Map(Array.from(vals, ([k, v]) => [k, osp.keep(osp.tensor(v, k.includes('lora_A') ? [spec.r, v.length / spec.r] : [v.length / spec.r, spec.r], { dtype: 'f64' }))]));
      return new RewardModel(base.withAdapter(new LoraAdapter(config, spec, t)), osp.keep(osp.tensor(sc, [1, D], { dtype: 'f64' })), config, true);
    };
    const pairs = randomPairs(next, 3);
    const rm = make(values, score);
    const step = bradleyTerryStep(rm, pairs, { microBatch: 4 });
    step.record.dispose();
    expect(Array.from(step.grads.keys())).toEqual([...Array.from(values.keys()), SCORE_WEIGHT]);
    rm.dispose();
    const h = 1e-6;
    for (const key of [SCORE_WEIGHT, loraKey(0, 'q', 'A'), loraKey(1, 'down', 'B')]) {
      const analytic = step.grads.get(key)!.toArray();
      for (let k = 0; k < 3; k++) {
        const j = Math.floor(next() * analytic.length);
        const at = (d: number) => {
          if (key === SCORE_WEIGHT) return make(values, Float64Array.from(score, (v, i) => (i === j ? v + d : v)));
          const vals = new Map(values);
          vals.set(key, Float64Array.from(values.get(key)!, (v, i) => (i === j ? v + d : v)));
          return make(vals, score);
        };
        const p = at(h);
        const m = at(-h);
        const fd = (f64Loss(p, pairs) - f64Loss(m, pairs)) / (2 * h);
        p.dispose();
        m.dispose();
        expect(Math.abs(fd - analytic[j])).toBeLessThan(1e-7 * Math.max(1, Math.abs(fd)));
      }
    }
    disposeAll(step.grads);
    base.dispose();
  });
});

describe('reward-model folders', () => {
  let root: string;
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-rm-'));
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('a full folder is LlamaForSequenceClassification (num_labels 1, model.* and score.weight, no lm_head) and loads back with the same rewards', async () => {
    const { seed, next } = seeded('reward save');
    const causal = LlamaModel.init({ ...config, tieWordEmbeddings: false }, { seed, dtype: 'f32', device: 'cpu' });
    await causal.save(path.join(root, 'causal'));
    causal.dispose();
    const backbone = await loadBackbone(path.join(root, 'causal'), { device: 'cpu', dtype: 'f32' });
    expect(backbone.parameters().has('lm_head.weight')).toBe(false);
    const rm = RewardModel.init(backbone, { seed, config: { ...config, tieWordEmbeddings: false } });
    const dir = path.join(root, 'rm');
    rm.save(dir);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(cfg.architectures).toEqual(['LlamaForSequenceClassification']);
    expect(cfg.num_labels).toBe(1);
    expect(cfg.id2label).toEqual({ '0': 'LABEL_0' });
    expect(cfg.label2id).toEqual({ LABEL_0: 0 });
    expect(cfg.pad_token_id).toBe(0); // not EOS (2): transformers reads the score at the last non-pad token
    expect(cfg.tie_word_embeddings).toBe(false);
    const names = Array.from(readSafetensors(path.join(dir, 'model.safetensors')).keys());
    expect(names).toContain(SCORE_WEIGHT);
    expect(names).not.toContain('lm_head.weight');
    expect(names.every((n) => n === SCORE_WEIGHT || n.startsWith('model.'))).toBe(true);
    const seqs = [tokens(next, 5), tokens(next, 1), tokens(next, 9)];
    const before = rm.sequenceRewards(seqs, { microBatch: 2 });
    const loaded = await RewardModel.load(dir, { device: 'cpu', dtype: 'f32' });
    expect(Array.from(loaded.sequenceRewards(seqs))).toEqual(Array.from(before));
    expect(new Set(before).size).toBe(3);
    loaded.dispose();
    rm.dispose();
    await expect(RewardModel.load(path.join(root, 'causal'))).rejects.toThrow('names no ForSequenceClassification architecture');
  });

  it("a LoRA reward model saves PEFT's SEQ_CLS folder (modules_to_save score, the head under PEFT's key) and loads on its base", async () => {
    const { seed, next } = seeded('reward lora save');
    const causal = LlamaModel.init(config, { seed, dtype: 'f32', device: 'cpu' });
    const baseDir = path.join(root, 'base');
    await causal.save(baseDir);
    causal.dispose();
    const base = await loadBackbone(baseDir, { device: 'cpu', dtype: 'f32' });
    const adapter = LoraAdapter.init(config, { r: 2, alpha: 2, dropout: 0, targets: ['q', 'v'] }, { seed });
    const rm = RewardModel.init(base.withAdapter(adapter), { seed, freeAdapter: true });
    const dir = path.join(root, 'rm-lora');
    rm.save(dir, { baseModel: baseDir });
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
    expect(cfg.task_type).toBe('SEQ_CLS');
    expect(cfg.modules_to_save).toEqual(['score']);
    const keys = Array.from(readSafetensors(path.join(dir, 'adapter_model.safetensors')).keys());
    expect(keys).toContain(PEFT_SCORE_WEIGHT);
    expect(keys).toContain(loraKey(0, 'q', 'A'));
    const seqs = [tokens(next, 4), tokens(next, 7)];
    const before = rm.sequenceRewards(seqs);
    const loaded = await RewardModel.load(dir, { device: 'cpu', dtype: 'f32', base: baseDir });
    expect(Array.from(loaded.sequenceRewards(seqs))).toEqual(Array.from(before));
    loaded.dispose();
    rm.dispose();
    base.dispose();
  });
});
