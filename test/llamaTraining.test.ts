// Training machinery of the model engine: activation recomputation, gradient accumulation over
// micro-batches, the AdamW optimizer (clipping, master weights, state round trip), copyInto/zeros,
// and 100 optimizer steps on a tiny corpus.
import * as osp from '../src';
import { LlamaModel, packSequences } from '../src/model/llama';
import { AdamW, GradientAccumulator } from '../src/model/optim';
import { learningRate } from '../src/model/schedule';
import { caught } from './helpers/errors';
import { seeded } from './helpers/random';
import { tinyConfig } from './helpers/tinyLlama';

/** Next-token targets within each sequence of a packed batch (the last token of each ignored). */
function nextTokenTargets(batch: { tokens: Int32Array; sequenceIds: Int32Array }): Int32Array {
  const T = batch.tokens.length;
  const targets = new Int32Array(T).fill(-100);
  for (let t = 0; t + 1 < T; t++) if (batch.sequenceIds[t + 1] === batch.sequenceIds[t]) targets[t] = batch.tokens[t + 1];
  return targets;
}

function randomSequences(next: () => number, lengths: number[], V: number): Int32Array[] {
  return lengths.map((n) => Int32Array.from({ length: n }, () => Math.floor(next() * V)));
}

function gradsToHost(grads: Map<string, osp.Tensor>): Map<string, Float64Array> {
  return new Map(Array.from(grads, ([n, g]) => [n, Float64Array.from(g.toArray())]));
}

function disposeAll(m: Map<string, osp.Tensor>): void {
  for (const t of m.values()) t.dispose();
}

describe('activation recomputation', () => {
  for (const dtype of ['f64', 'f32'] as const) {
    it(`gives the same gradients, bit for bit, as keeping every activation (${dtype})`, () => {
      const { seed, next } = seeded(`recompute ${dtype}`);
      const model = LlamaModel.init(tinyConfig(false), { seed, dtype, device: 'cpu', std: 0.2 });
      const batch = packSequences(randomSequences(next, [1, 5, 17], 97));
      const targets = nextTokenTargets(batch);
      const g = Float64Array.from(targets, (t) => (t < 0 ? 0 : next() - 0.5));
      const plain = model.lossAndGrads(batch, targets, g);
      const again = model.lossAndGrads(batch, targets, g, { recompute: true });
      expect(Array.from(again.tokenLogprobs)).toEqual(Array.from(plain.tokenLogprobs));
      const a = gradsToHost(plain.grads);
      const b = gradsToHost(again.grads);
      for (const [n, v] of a) expect(Array.from(b.get(n) as Float64Array)).toEqual(Array.from(v));
      expect(Array.from(again.gradInputEmbeddings.toArray())).toEqual(Array.from(plain.gradInputEmbeddings.toArray()));
      disposeAll(plain.grads);
      disposeAll(again.grads);
    });
  }

  it('frees the recomputed activations: live device memory after the step equals the gradients alone', () => {
    const { seed, next } = seeded('recompute memory');
    const model = LlamaModel.init(tinyConfig(true), { seed, dtype: 'f32', device: 'cpu' });
    const batch = packSequences(randomSequences(next, [9, 12], 97));
    const targets = nextTokenTargets(batch);
    const g = Float64Array.from(targets, (t) => (t < 0 ? 0 : -1));
    const before = osp.memoryStats().cpu.currentBytes;
    const r = model.lossAndGrads(batch, targets, g, { recompute: true });
    let gradBytes = 4 * r.gradInputEmbeddings.size;
    for (const t of r.grads.values()) gradBytes += 4 * t.size;
    expect(gradBytes).toBeGreaterThan(0);
    expect(osp.memoryStats().cpu.currentBytes - before).toBe(gradBytes);
    disposeAll(r.grads);
    r.gradInputEmbeddings.dispose();
  });
});

describe('gradient accumulation over micro-batches', () => {
  it('the sum of two micro-batches equals the gradient of the whole batch (f64, 1e-12)', () => {
    const { seed, next } = seeded('accumulate');
    const model = LlamaModel.init(tinyConfig(true), { seed, dtype: 'f64', std: 0.2 });
    const seqs = randomSequences(next, [5, 17, 1, 8], 97);
    const whole = packSequences(seqs);
    const wt = nextTokenTargets(whole);
    const full = model.lossAndGrads(whole, wt, Float64Array.from(wt, (t) => (t < 0 ? 0 : -1)));
    const acc = new GradientAccumulator();
    for (const part of [seqs.slice(0, 2), seqs.slice(2)]) {
      const b = packSequences(part);
      const t = nextTokenTargets(b);
      const r = model.lossAndGrads(b, t, Float64Array.from(t, (x) => (x < 0 ? 0 : -1)));
      acc.add(r.grads);
      r.gradInputEmbeddings.dispose();
    }
    expect(acc.microBatches).toBe(2);
    const sums = acc.take();
    expect(acc.microBatches).toBe(0);
    for (const [n, g] of full.grads) {
      const want = g.toArray();
      const got = (sums.get(n) as osp.Tensor).toArray();
      let worst = 0;
      let scale = 0;
      for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
      expect(worst).toBeLessThanOrEqual(1e-12 * Math.max(scale, 1e-300));
    }
    disposeAll(full.grads);
    disposeAll(sums);
  });

  it('scales each micro-batch when asked (mean instead of sum)', () => {
    const acc = new GradientAccumulator();
    const a = osp.tensor([1, 2], [2], { device: 'cpu' });
    const b = osp.tensor([3, 6], [2], { device: 'cpu' });
    acc.add(new Map([['w', a]]), { scale: 0.5 });
    acc.add(new Map([['w', b]]), { scale: 0.5 });
    expect(Array.from((acc.take().get('w') as osp.Tensor).toArray())).toEqual([2, 4]);
    expect(a.disposed && b.disposed).toBe(true);
  });

  it('refuses a micro-batch whose gradient names differ from the first', () => {
    const acc = new GradientAccumulator();
    acc.add(new Map([['w', osp.tensor([1], [1], { device: 'cpu' })]]));
    expect(caught(() => acc.add(new Map([['v', osp.tensor([1], [1], { device: 'cpu' })]])))?.message).toBe(
      'GradientAccumulator.add: gradient v was not in the first micro-batch',
    );
    acc.dispose();
  });
});

describe('AdamW', () => {
  it('matches adamwStep applied by hand with the same clipping (f64, bit for bit)', () => {
    const { seed, next } = seeded('adamw class');
    const mk = () => LlamaModel.init(tinyConfig(false), { seed, dtype: 'f64', std: 0.1 });
    const [m1, m2] = [mk(), mk()];
    const batch = packSequences(randomSequences(next, [7, 11], 97));
    const targets = nextTokenTargets(batch);
    const g = Float64Array.from(targets, (t) => (t < 0 ? 0 : -1));
    const opt = new AdamW(m1.parameters(), { lr: 1e-2, weightDecay: 0.1, maxGradNorm: 0.5 });
    const p2 = m2.parameters();
    const state = new Map(Array.from(p2, ([n, p]) => [n, { m: osp.affine(p, 0), v: osp.affine(p, 0) }]));
    for (let step = 1; step <= 3; step++) {
      const r1 = m1.lossAndGrads(batch, targets, g);
      const res = opt.step(r1.grads, { lr: 1e-2 * step });
      const r2 = m2.lossAndGrads(batch, targets, g);
      const clip = osp.clipGradNorm(Array.from(r2.grads.values()), 0.5);
      expect(res.gradNorm).toBe(clip.norm);
      expect(res.clipScale).toBe(clip.scale);
      for (const [n, p] of p2) {
        const s = state.get(n)!;
        const decay = p.shape.length < 2 ? 0 : 0.1; // norm weights are not decayed
        osp.adamwStep(p, r2.grads.get(n)!, s.m, s.v, { lr: 1e-2 * step, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: decay, step, gradScale: clip.scale });
      }
      disposeAll(r1.grads);
      disposeAll(r2.grads);
    }
    for (const [n, p] of m1.parameters()) expect(Array.from(p.toArray())).toEqual(Array.from((p2.get(n) as osp.Tensor).toArray()));
    expect(opt.stepCount).toBe(3);
  });

  it('resumes from state() exactly: 2 + 2 steps through a restored optimizer equal 4 steps (f64)', () => {
    const { seed, next } = seeded('adamw resume');
    const batch = packSequences(randomSequences(next, [6, 9], 97));
    const targets = nextTokenTargets(batch);
    const g = Float64Array.from(targets, (t) => (t < 0 ? 0 : -1));
    const run = (model: LlamaModel, opt: AdamW, steps: number) => {
      for (let i = 0; i < steps; i++) {
        const r = model.lossAndGrads(batch, targets, g);
        opt.step(r.grads);
        disposeAll(r.grads);
      }
    };
    const a = LlamaModel.init(tinyConfig(true), { seed, dtype: 'f64', std: 0.1 });
    const optA = new AdamW(a.parameters(), { lr: 3e-3 });
    run(a, optA, 4);
    const b = LlamaModel.init(tinyConfig(true), { seed, dtype: 'f64', std: 0.1 });
    const optB = new AdamW(b.parameters(), { lr: 3e-3 });
    run(b, optB, 2);
    const saved = optB.state();
    const copy = { step: saved.step, tensors: new Map(Array.from(saved.tensors, ([n, t]) => [n, osp.tensor(t.toArray() as Float64Array, t.shape, { dtype: 'f64', device: 'cpu' })])) };
    const weights = new Map(Array.from(b.parameters(), ([n, t]) => [n, osp.tensor(t.toArray() as Float64Array, t.shape, { dtype: 'f64', device: 'cpu' })]));
    const c = new LlamaModel(b.config, weights);
    const optC = new AdamW(c.parameters(), { lr: 3e-3 });
    optC.loadState(copy);
    expect(optC.stepCount).toBe(2);
    run(c, optC, 2);
    for (const [n, p] of a.parameters()) expect(Array.from((c.parameters().get(n) as osp.Tensor).toArray())).toEqual(Array.from(p.toArray()));
  });

  it('skips the update on a non-finite gradient norm (weights untouched) and reports the norm as NaN', () => {
    const w = osp.tensor([1, 2], [2], { device: 'cpu' });
    const opt = new AdamW(new Map([['w', w]]), { lr: 0.1 });
    const bad = osp.tensor([NaN, 1], [2], { device: 'cpu' });
    const res = opt.step(new Map([['w', bad]]));
    expect(res.gradNorm).toBeNaN();
    expect(res.clipScale).toBeNaN();
    expect(Array.from(w.toArray())).toEqual([1, 2]);
  });

  it.each([
    [{ lr: -1 }, 'AdamW: lr is -1; expected a finite number >= 0'],
    [{ lr: 1, beta1: 1 }, 'AdamW: beta1 is 1; expected a number in [0, 1)'],
    [{ lr: 1, beta2: -0.1 }, 'AdamW: beta2 is -0.1; expected a number in [0, 1)'],
    [{ lr: 1, eps: 0 }, 'AdamW: eps is 0; expected a finite number > 0'],
    [{ lr: 1, weightDecay: NaN }, 'AdamW: weightDecay is NaN; expected a finite number >= 0'],
    [{ lr: 1, maxGradNorm: 0 }, 'AdamW: maxGradNorm is 0; expected a finite number > 0 or null'],
  ])('refuses the hyper-parameters %j, naming the setting', (cfg, message) => {
    expect(caught(() => new AdamW(new Map(), cfg))).toEqual({ errorClass: 'RangeError', message });
  });

  it('refuses a step that lacks a parameter gradient, naming it', () => {
    const opt = new AdamW(new Map([['w', osp.tensor([1], [1], { device: 'cpu' })]]), { lr: 0.1 });
    expect(caught(() => opt.step(new Map()))?.message).toBe('AdamW.step: no gradient for parameter w');
  });
});

describe('copyInto and zeros', () => {
  it('zeros makes zeros of the dtype asked', () => {
    expect(Array.from(osp.zeros([2, 3], { dtype: 'f64', device: 'cpu' }).toArray())).toEqual([0, 0, 0, 0, 0, 0]);
    expect(osp.zeros([4], { device: 'cpu' }).dtype).toBe('f32');
  });

  it('writes a chunk into its rows of a bigger tensor through a narrow view', () => {
    const big = osp.zeros([4, 2], { device: 'cpu' });
    osp.copyInto(big.narrow(0, 1, 2), osp.tensor([1, 2, 3, 4], [2, 2], { device: 'cpu' }));
    expect(Array.from(big.toArray())).toEqual([0, 0, 1, 2, 3, 4, 0, 0]);
  });

  it('converts between f64, f32 and bf16, rounding to nearest even', () => {
    const src = osp.tensor(Float64Array.from([1 + 2 ** -30, 1 + 2 ** -8, 1 + 3 * 2 ** -8]), [3], { dtype: 'f64', device: 'cpu' });
    const f = osp.zeros([3], { device: 'cpu' });
    osp.copyInto(f, src);
    expect(Array.from(f.toArray())).toEqual([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8]);
    const b = osp.zeros([3], { dtype: 'bf16', device: 'cpu' });
    osp.copyInto(b, f);
    // bf16 keeps 8 significant bits: 1 + 2^-8 is a tie -> even (1); 1 + 3 * 2^-8 -> 1 + 2^-6 (even).
    expect(Array.from(b.toArray())).toEqual([1, 1, 1 + 2 ** -6]);
  });

  it('refuses different shapes, i32 tensors and non-contiguous views, naming them', () => {
    const a = osp.zeros([2, 3], { device: 'cpu' });
    expect(caught(() => osp.copyInto(a, osp.zeros([3, 2], { device: 'cpu' })))?.message).toBe(
      'copyInto: dst has shape [2, 3] but src has shape [3, 2]; expected equal shapes',
    );
    expect(caught(() => osp.copyInto(osp.zeros([2], { dtype: 'i32', device: 'cpu' }), osp.zeros([2], { device: 'cpu' })))?.message).toMatch(
      /^copyInto: dst is i32\[2\] on cpu and src is f32\[2\] on cpu; expected floating tensors/,
    );
    expect(caught(() => osp.copyInto(a.transpose(0, 1), osp.zeros([3, 2], { device: 'cpu' })))?.message).toMatch(/^copyInto: dst is a non-contiguous view/);
  });
});

describe('LlamaModel dtypes', () => {
  it('holds bf16 weights on the cpu as storage, and its forward is refused naming the dtype', () => {
    const w = new Map(Array.from(LlamaModel.init(tinyConfig(true), { seed: 1, dtype: 'f32', device: 'cpu' }).parameters(), ([n, t]) => [n, t.to({ dtype: 'bf16' })]));
    const m = new LlamaModel(tinyConfig(true), w);
    expect(m.dtype).toBe('bf16');
    expect(caught(() => m.tokenLogprobs(packSequences([Int32Array.from([1, 2])]), Int32Array.from([2, -100])))?.message).toMatch(/^LlamaModel.forward: the weights are bf16 on the cpu.*load with \{ dtype: 'f32' \}/);
  });
});

describe('training a tiny model', () => {
  it('100 AdamW steps (f32, 2 micro-batches per step, cosine schedule) bring the loss on a tiny corpus well below its start', () => {
    const { seed } = seeded('llama 100 steps');
    const config = tinyConfig(true);
    const model = LlamaModel.init(config, { seed, dtype: 'f32', device: 'cpu' });
    // A corpus of four short "sentences" with a fixed grammar: counting patterns modulo 97.
    const corpus = [0, 1, 2, 3].map((k) => Int32Array.from({ length: 16 }, (_, i) => (3 + k * 11 + i * (k + 1)) % 97));
    const opt = new AdamW(model.parameters(), { lr: 3e-3, weightDecay: 0.01, maxGradNorm: 1 });
    const parts = [corpus.slice(0, 2), corpus.slice(2)];
    const totalCounted = corpus.reduce((n, s) => n + s.length - 1, 0);
    const losses: number[] = [];
    for (let step = 1; step <= 100; step++) {
      const acc = new GradientAccumulator();
      let loss = 0;
      for (const part of parts) {
        const b = packSequences(part);
        const t = nextTokenTargets(b);
        const r = model.lossAndGrads(b, t, Float64Array.from(t, (x) => (x < 0 ? 0 : -1 / totalCounted)), { recompute: step % 2 === 0 });
        for (const lp of r.tokenLogprobs) loss -= lp / totalCounted;
        acc.add(r.grads);
        r.gradInputEmbeddings.dispose();
      }
      const grads = acc.take();
      opt.step(grads, { lr: learningRate(step, { kind: 'cosine', peak: 3e-3, warmupSteps: 10, totalSteps: 100, minRatio: 0.1 }) });
      disposeAll(grads);
      losses.push(loss);
    }
    expect(losses[0]).toBeGreaterThan(4); // about log(97) = 4.57 at init
    expect(losses[99]).toBeLessThan(0.25 * losses[0]);
  });
});
