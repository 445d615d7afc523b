// PPO's numerics (src/osp/ppo.ts, METHOD.md section 9) against f64 references on seeded random
// inputs: GAE against its closed form sum_l (gamma lambda)^l delta_{t+l}; whitening's mean and
// unbiased variance; the clipped policy objective and clipped value loss and their gradients against
// central finite differences (clipped tokens have gradient 0); Ziegler's adaptive KL controller; and
// one training micro-batch's gradients through the LM head (tempered), the value head and the trunk
// of an f64 Llama against finite differences of the same loss.
import { LlamaModel } from '../src/model/llama';
import { Tensor, tensor } from '../src/tensor';
import * as ops from '../src/ops';
import { adaptiveKlCoef, gae, ppoMicroBatch, ppoTokenLoss, ValueHead, VALUE_HEAD_WEIGHT, whiten } from '../src/osp/ppo';
import { gradcheck, sampleEntries } from './helpers/tensors';
import { tinyConfig } from './helpers/tinyLlama';
import { seededUniform } from '../src/util/random';

const SEED = 20261130;
const rng = seededUniform(SEED);
const uniform = (lo: number, hi: number) => lo + (hi - lo) * rng();
const randArray = (n: number, lo: number, hi: number) => Float64Array.from({ length: n }, () => uniform(lo, hi));
beforeAll(() => process.stdout.write(`ppo.test seed ${SEED}\n`));

describe('gae', () => {
  test.each([
    [1, 0.95],
    [0.99, 0.9],
    [1, 1],
    [0.5, 0],
  ])('gamma %p, lambda %p: advantages are sum_l (gamma lambda)^l delta_{t+l}, returns A + V', (gamma, lam) => {
    for (const L of [1, 2, 7, 30]) {
      const r = randArray(L, -2, 2);
      const v = randArray(L, -1, 1);
      const { advantages, returns } = gae(r, v, gamma, lam);
      const delta = (t: number) => r[t] + gamma * (t + 1 < L ? v[t + 1] : 0) - v[t];
      for (let t = 0; t < L; t++) {
        let want = 0;
        for (let l = 0; t + l < L; l++) want += (gamma * lam) ** l * delta(t + l);
        expect(Math.abs(advantages[t] - want)).toBeLessThan(1e-12 * Math.max(1, Math.abs(want)));
        expect(returns[t]).toBe(advantages[t] + v[t]);
      }
    }
  });

  test('with lambda 1 and gamma 1 the return is the sum of the rewards to go (the values cancel)', () => {
    const r = randArray(9, -1, 1);
    const { returns } = gae(r, randArray(9, -5, 5), 1, 1);
    for (let t = 0; t < 9; t++) expect(returns[t]).toBeCloseTo(r.slice(t).reduce((a, b) => a + b, 0), 12);
  });
});

describe('whiten', () => {
  test('mean 0 and unbiased variance 1 (up to the 1e-8 in the root); shiftMean false keeps the mean', () => {
    const x = randArray(50, -3, 7);
    const m = x.reduce((a, b) => a + b, 0) / x.length;
    const w = whiten(x);
    const mw = w.reduce((a, b) => a + b, 0) / w.length;
    const vw = w.reduce((a, b) => a + (b - mw) ** 2, 0) / (w.length - 1);
    expect(Math.abs(mw)).toBeLessThan(1e-12);
    expect(vw).toBeCloseTo(1, 6);
    const k = whiten(x, false);
    expect(k.reduce((a, b) => a + b, 0) / k.length).toBeCloseTo(m, 10);
    expect(k[3] - k[5]).toBeCloseTo(w[3] - w[5], 12);
  });

  test('fewer than two values are returned unchanged', () => {
    expect(Array.from(whiten(Float64Array.of(3.5)))).toEqual([3.5]);
    expect(whiten(new Float64Array(0)).length).toBe(0);
  });
});

describe('ppoTokenLoss', () => {
  const o = { clipRange: 0.2, clipRangeValue: 0.2, vfCoef: 0.1, tokens: 13 };
  /** Random tokens away from the kinks (ratio at 1 +- eps, value step at +- eps_v): finite differences are smooth there. */
  function inputs(n: number) {
    const oldLogprobs = randArray(n, -3, -0.1);
    const oldValues = randArray(n, -1, 1);
    const logprobs = oldLogprobs.map((v) => {
      let d: number;
      do d = uniform(-0.6, 0.6);
      while (Math.abs(Math.exp(d) - 0.8) < 0.02 || Math.abs(Math.exp(d) - 1.2) < 0.02);
      return v + d;
    });
    const values = oldValues.map((v) => {
      let d: number;
      do d = uniform(-0.6, 0.6);
      while (Math.abs(Math.abs(d) - 0.2) < 0.02);
      return v + d;
    });
    return { logprobs, oldLogprobs, advantages: randArray(n, -2, 2), values, oldValues, returns: randArray(n, -1.5, 1.5) };
  }

  test('the loss is the mean of max(-A r, -A clip(r)) + vfCoef 0.5 max((V - R)^2, (V_clip - R)^2), as written out', () => {
    const x = inputs(40);
    const r = ppoTokenLoss(x, { ...o, tokens: 40 });
    let pg = 0;
    let vf = 0;
    let clipped = 0;
    for (let t = 0; t < 40; t++) {
      const ratio = Math.exp(x.logprobs[t] - x.oldLogprobs[t]);
      const a = -x.advantages[t] * ratio;
      const b = -x.advantages[t] * Math.min(1.2, Math.max(0.8, ratio));
      pg += Math.max(a, b);
      if (b > a) clipped++;
      const vc = x.oldValues[t] + Math.min(0.2, Math.max(-0.2, x.values[t] - x.oldValues[t]));
      vf += 0.5 * Math.max((x.values[t] - x.returns[t]) ** 2, (vc - x.returns[t]) ** 2);
    }
    expect(r.policyLoss).toBeCloseTo(pg / 40, 12);
    expect(r.valueLoss).toBeCloseTo(vf / 40, 12);
    expect(r.loss).toBeCloseTo(pg / 40 + 0.1 * (vf / 40), 12);
    expect(r.clipped).toBe(clipped);
    // Both branches occur on these inputs: the test exercises the clipped and the unclipped cases.
    expect(clipped).toBeGreaterThan(0);
    expect(clipped).toBeLessThan(40);
    expect(r.valueClipped).toBeGreaterThan(0);
    expect(r.valueClipped).toBeLessThan(40);
  });

  test('d loss / d logp and d loss / d V match central finite differences (clipped tokens: 0)', () => {
    const x = inputs(13);
    const r = ppoTokenLoss(x, o);
    const n = 13;
    gradcheck('d loss / d logp', r.gradLogprobs, (lp) => ppoTokenLoss({ ...x, logprobs: lp }, o).loss, x.logprobs, { entries: Array.from({ length: n }, (_, i) => i), rel: 1e-6, floor: 1e-9 });
    gradcheck('d loss / d V', r.gradValues, (v) => ppoTokenLoss({ ...x, values: v }, o).loss, x.values, { entries: Array.from({ length: n }, (_, i) => i), rel: 1e-6, floor: 1e-9 });
    expect(Array.from(r.gradLogprobs).filter((g) => g === 0).length).toBe(r.clipped);
    expect(Array.from(r.gradValues).filter((g) => g === 0).length).toBe(r.valueClipped);
  });

  test('at the rollout (new = old) nothing is clipped and d loss / d logp = -A / tokens', () => {
    const x = inputs(6);
    const at = { ...x, logprobs: x.oldLogprobs, values: x.oldValues };
    const r = ppoTokenLoss(at, { ...o, tokens: 6 });
    expect(r.clipped).toBe(0);
    expect(r.approxKlSum).toBe(0);
    for (let t = 0; t < 6; t++) expect(r.gradLogprobs[t]).toBeCloseTo(-x.advantages[t] / 6, 14);
  });
});

test("adaptiveKlCoef: Ziegler et al.'s proportional controller, the error clipped to +-0.2", () => {
  expect(adaptiveKlCoef(0.1, 6, { target: 6, horizon: 10000, samples: 64 })).toBe(0.1);
  expect(adaptiveKlCoef(0.1, 7.2, { target: 6, horizon: 10000, samples: 100 })).toBeCloseTo(0.1 * (1 + 0.2 * 100 / 10000), 15);
  expect(adaptiveKlCoef(0.1, 60, { target: 6, horizon: 10000, samples: 100 })).toBeCloseTo(0.1 * (1 + 0.2 * 0.01), 15);
  expect(adaptiveKlCoef(0.1, 0, { target: 6, horizon: 1000, samples: 100 })).toBeCloseTo(0.1 * (1 - 0.2 * 0.1), 15);
});

describe('ppoMicroBatch: gradients through the tempered LM head, the value head and the trunk (f64)', () => {
  test.each([
    ['tied embeddings, temperature 0.7', true, 0.7],
    ['separate LM head, temperature 1', false, 1],
  ])('%s: match finite differences of the loss', (_name, tie, temperature) => {
    const config = tinyConfig(tie);
    const model = LlamaModel.init(config, { seed: 7, dtype: 'f64', device: 'cpu' });
    const head = ValueHead.init(model, 3);
    const toks = (n: number) => Int32Array.from({ length: n }, () => 3 + Math.floor(rng() * (config.vocabSize - 3)));
    const items = [
      { prompt: toks(4), response: toks(5) },
      { prompt: toks(3), response: toks(2) },
    ];
    const n = 7;
    const lossOpts = { clipRange: 0.2, clipRangeValue: 0.2, vfCoef: 0.5, tokens: 9, temperature };
    /** New log-probs and values of the response tokens at the model's current weights (an inference forward). */
    const scores = (m: LlamaModel, h: ValueHead) => {
      const lp: number[] = [];
      const v: number[] = [];
      for (const it of items) {
        const seq = Int32Array.from([...it.prompt, ...it.response]);
        const hidden = m.forward({ tokens: seq, sequenceIds: new Int32Array(seq.length), positions: Int32Array.from(seq.keys()) }, { inference: true }).hidden;
        const targets = Int32Array.from(seq.keys(), (j) => (j >= it.prompt.length - 1 && j + 1 < seq.length ? seq[j + 1] : -100));
        const all = m.headLogprobs(ops.affine(hidden, 1 / temperature), targets).toArray();
        const rows = Int32Array.from({ length: it.response.length }, (_, j) => it.prompt.length - 1 + j);
        lp.push(...Array.from(rows, (r) => all[r]));
        v.push(...h.values(hidden, tensor(rows, [rows.length], { dtype: 'i32', device: 'cpu' })).toArray());
      }
      return { lp: Float64Array.from(lp), v: Float64Array.from(v) };
    };
    const at0 = scores(model, head);
    // Old values near the new ones, old log-probs shifted a little: both branches of both clips occur.
    const targets = {
      oldLogprobs: at0.lp.map((v, i) => v + [0.05, -0.4, 0.1, 0.5, -0.05, 0.02, -0.3][i]),
      advantages: randArray(n, -1, 1),
      oldValues: at0.v.map((v, i) => v + [0.05, -0.5, 0.1, 0.6, -0.02, 0.03, 0.4][i]),
      returns: randArray(n, -1, 1),
    };
    const names = [...model.trainableParameters().keys(), VALUE_HEAD_WEIGHT];
    const { grads, loss } = ppoMicroBatch(model, head, items, targets, lossOpts, names);
    expect(loss.clipped).toBeGreaterThan(0);
    expect(loss.valueClipped).toBeGreaterThan(0);
    const lossAt = (m: LlamaModel, h: ValueHead) => {
      const s = scores(m, h);
      return ppoTokenLoss({ logprobs: s.lp, values: s.v, ...targets }, lossOpts).loss;
    };
    expect(lossAt(model, head)).toBeCloseTo(loss.loss, 12);
    const params = model.parameters();
    const check = (name: string) => {
      const isHead = name === VALUE_HEAD_WEIGHT;
      const p: Tensor = isHead ? head.weight : (params.get(name) as Tensor);
      const x0 = Float64Array.from(p.toArray());
      const f = (x: Float64Array) => {
        const t = tensor(x, p.shape, { dtype: 'f64', device: 'cpu' });
        try {
          if (isHead) return lossAt(model, new ValueHead(t));
          const swapped = new LlamaModel(config, new Map([...params].map(([k, v]) => [k, k === name ? t : v])));
          return lossAt(swapped, head);
        } finally {
          t.dispose();
        }
      };
      const entries = sampleEntries(rng, x0.length, 6);
      gradcheck(`d loss / d ${name}`, grads.get(name)!.toArray(), f, x0, { entries, rel: 1e-5, floor: 1e-8 });
    };
    for (const name of [VALUE_HEAD_WEIGHT, 'model.embed_tokens.weight', 'model.layers.1.mlp.down_proj.weight', 'model.norm.weight', ...(tie ? [] : ['lm_head.weight'])]) check(name);
    for (const g of grads.values()) g.dispose();
    head.dispose();
    model.dispose();
  });
});
