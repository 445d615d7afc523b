// The trainer's two objectives (src/osp/objective.ts, on the device) on a tiny f64 Llama: preferenceStep (SPCE / DPO / IPO on pairs, policy
// against a frozen reference) and sftStep (prompt tokens masked): losses from the formulas of
// METHOD.md section 3, gradients against finite differences, micro-batching that changes nothing.
import * as osp from '../src';
import { LlamaModel } from '../src/model/llama';
import * as objective from '../src/osp/objective';
import { LossKind, ScoredPair, responseLogprobSums } from '../src/osp/objective';
import { seeded } from './helpers/random';
import { gradcheck } from './helpers/tensors';
import { tinyConfig } from './helpers/tinyLlama';

const { seed, next } = seeded('trainer steps');
const config = tinyConfig(false);
const policy = LlamaModel.init(config, { seed, dtype: 'f64', std: 0.2 });
const reference = LlamaModel.init(config, { seed: seed + 1, dtype: 'f64', std: 0.2 });
const rand = (n: number) => Int32Array.from({ length: n }, () => Math.floor(next() * config.vocabSize));
const pairs: ScoredPair[] = [
  { prompt: rand(3), chosen: rand(4), rejected: rand(2), target: 0.8 },
  { prompt: rand(1), chosen: rand(5), rejected: rand(5), target: 0.35 },
  { prompt: rand(6), chosen: rand(1), rejected: rand(3), target: 1 },
];

/** preferenceStep with its record read: the host values and the gradients. */
function preferenceStep(pol: LlamaModel, ref: LlamaModel, ps: ScoredPair[], opts: objective.PreferenceStepOptions) {
  const r = objective.preferenceStep(pol, ref, ps, opts);
  return { ...objective.preferenceValues(r.record, r.pairs), grads: r.grads };
}

function sftStep(model: LlamaModel, examples: objective.SftExample[], opts: { microBatch: number }) {
  const r = objective.sftStep(model, examples, opts);
  return { loss: r.record.get('loss')[0], grads: r.grads };
}

/** Sequence log-probs of the items (slot i for item i), read to the host. */
function responseLogprobs(model: LlamaModel, items: objective.SftExample[], microBatch: number): Float64Array {
  return Float64Array.from(responseLogprobSums(model, items, items.map((_, i) => i), items.length, microBatch).toArray());
}

const softplus = (z: number) => Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z)));

/** The mean loss from METHOD.md section 3, from plain sequence log-probs. */
function lossByHand(kind: LossKind, beta: number): number {
  const items = pairs.flatMap((p) => [{ prompt: p.prompt, response: p.chosen }, { prompt: p.prompt, response: p.rejected }]);
  const pol = responseLogprobs(policy, items, 100);
  const ref = responseLogprobs(reference, items, 100);
  let total = 0;
  pairs.forEach((p, i) => {
    const h = pol[2 * i] - ref[2 * i] - (pol[2 * i + 1] - ref[2 * i + 1]);
    const z = beta * h;
    if (kind === 'spce') total += softplus(z) - p.target * z;
    else if (kind === 'dpo') total += softplus(-z);
    else total += (h - 1 / (2 * beta)) ** 2;
  });
  return total / pairs.length;
}

describe('preferenceStep', () => {
  for (const kind of ['spce', 'dpo', 'ipo'] as LossKind[]) {
    it(`${kind}: the loss is the formula's, and sampled gradients match finite differences (f64, 1e-6)`, () => {
      const beta = 0.5;
      const r = preferenceStep(policy, reference, pairs, { loss: kind, beta, microBatch: 2 });
      expect(Math.abs(r.loss - lossByHand(kind, beta))).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(r.loss)));
      for (const name of ['model.layers.0.self_attn.q_proj.weight', 'model.layers.1.mlp.down_proj.weight', 'lm_head.weight', 'model.embed_tokens.weight']) {
        const p = policy.parameters().get(name) as osp.Tensor;
        const g = (r.grads.get(name) as osp.Tensor).toArray();
        const values = p.toArray() as Float64Array;
        // The entry with the largest gradient (a meaningful finite difference).
        let idx = 0;
        for (let i = 0; i < g.length; i++) if (Math.abs(g[i]) > Math.abs(g[idx])) idx = i;
        const lossAt = (v: Float64Array) => {
          osp.copyInto(p, osp.tensor(v, p.shape, { dtype: 'f64', device: 'cpu' }));
          return lossByHand(kind, beta);
        };
        try {
          // A plain difference with a fixed step 1e-5; rule |fd - g| <= 1e-6 max(|fd|, |g|, 1e-3).
          gradcheck(name, g, lossAt, values, { entries: [idx], step: 1e-5, richardson: false, floor: 1e-3 });
        } finally {
          osp.copyInto(p, osp.tensor(values, p.shape, { dtype: 'f64', device: 'cpu' }));
        }
      }
      for (const t of r.grads.values()) t.dispose();
    });
  }

  it('micro-batches of one pair give the loss and gradients of one batch (1e-12)', () => {
    const a = preferenceStep(policy, reference, pairs, { loss: 'spce', beta: 0.1, microBatch: 1 });
    const b = preferenceStep(policy, reference, pairs, { loss: 'spce', beta: 0.1, microBatch: 3 });
    expect(a.loss).toBeCloseTo(b.loss, 12);
    for (const [n, g] of a.grads) {
      const x = g.toArray();
      const y = (b.grads.get(n) as osp.Tensor).toArray();
      let scale = 1e-300;
      let worst = 0;
      for (let i = 0; i < x.length; i++) {
        scale = Math.max(scale, Math.abs(y[i]));
        worst = Math.max(worst, Math.abs(x[i] - y[i]));
      }
      expect(worst).toBeLessThanOrEqual(1e-12 * scale);
    }
  });

  it('dpo and ipo ignore the soft targets (every pair counts as p = 1)', () => {
    for (const loss of ['dpo', 'ipo'] as LossKind[]) {
      const soft = preferenceStep(policy, reference, pairs, { loss, beta: 0.1, microBatch: 4 });
      const hard = preferenceStep(policy, reference, pairs.map((p) => ({ ...p, target: 1 })), { loss, beta: 0.1, microBatch: 4 });
      expect(soft.loss).toBe(hard.loss);
    }
  });

  it('reports pHat = sigmoid(margin) and the four sequence log-probs per pair', () => {
    const r = preferenceStep(policy, reference, pairs, { loss: 'spce', beta: 0.3, microBatch: 4 });
    r.margins.forEach((z, i) => {
      expect(r.pHat[i]).toBeCloseTo(1 / (1 + Math.exp(-z)), 12);
      expect(z).toBeCloseTo(0.3 * (r.policyChosen[i] - r.refChosen[i] - (r.policyRejected[i] - r.refRejected[i])), 12);
    });
  });

  it('refuses a target outside [0, 1] and a bad micro-batch, naming them', () => {
    expect(() => preferenceStep(policy, reference, [{ ...pairs[0], target: 1.5 }], { loss: 'spce', beta: 0.1, microBatch: 1 })).toThrow(
      'preferenceStep: pairs[0].target is 1.5; expected a number in [0, 1]',
    );
    expect(() => preferenceStep(policy, reference, pairs, { loss: 'spce', beta: 0.1, microBatch: 0 })).toThrow('preferenceStep: microBatch is 0; expected an integer >= 1');
  });
});

describe('sftStep', () => {
  const examples = [
    { prompt: rand(4), response: rand(3) },
    { prompt: rand(1), response: rand(6) },
  ];

  it('the loss is the mean negative log-prob of the response tokens only', () => {
    const r = sftStep(policy, examples, { microBatch: 1 });
    const lp = responseLogprobs(policy, examples, 10);
    expect(r.loss).toBeCloseTo(-(lp[0] + lp[1]) / 9, 12);
    for (const t of r.grads.values()) t.dispose();
  });

  it('with a one-token prompt, exactly the response tokens are scored', () => {
    const r1 = sftStep(policy, [{ prompt: Int32Array.from([5]), response: Int32Array.from([7, 8]) }], { microBatch: 1 });
    const r2 = sftStep(policy, [{ prompt: Int32Array.from([5]), response: Int32Array.from([7, 9]) }], { microBatch: 1 });
    expect(r1.loss).not.toBe(r2.loss); // the response is scored
    const lp = responseLogprobs(policy, [{ prompt: Int32Array.from([5]), response: Int32Array.from([7, 8]) }], 1);
    expect(r1.loss).toBeCloseTo(-lp[0] / 2, 12);
  });

  it('micro-batching does not change the loss', () => {
    const a = sftStep(policy, examples, { microBatch: 1 });
    const b = sftStep(policy, examples, { microBatch: 2 });
    expect(a.loss).toBeCloseTo(b.loss, 12);
  });
});
