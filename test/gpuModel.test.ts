// The model engine on cuda: the tiny Llama's log-probs and gradients in f32 against the f64 cpu
// model with the same weights, bf16 weights and activations against f32, recomputation, bf16
// elementwise and copyInto, and AdamW with f32 master weights training a bf16 model. Skipped with
// a one-line reason where no GPU answers; OSP_GPU_TESTS=require turns that into a failure.
import * as osp from '../src';
import { LlamaModel, packSequences } from '../src/model/llama';
import { AdamW } from '../src/model/optim';
import { seeded } from './helpers/random';
import { maxRelError } from './helpers/reference';
import { tinyConfig } from './helpers/tinyLlama';
import { gpuSuite } from './helpers/gpu';

const { cuda, describeGpu } = gpuSuite('GPU model suite');

function nextTokenTargets(batch: { tokens: Int32Array; sequenceIds: Int32Array }): Int32Array {
  const T = batch.tokens.length;
  const targets = new Int32Array(T).fill(-100);
  for (let t = 0; t + 1 < T; t++) if (batch.sequenceIds[t + 1] === batch.sequenceIds[t]) targets[t] = batch.tokens[t + 1];
  return targets;
}

/** The same weights as another model, in another dtype and device. */
function copyModel(model: LlamaModel, dtype: 'f32' | 'f64' | 'bf16', device: 'cpu' | 'cuda'): LlamaModel {
  const params = new Map(Array.from(model.parameters(), ([n, t]) => [n, osp.keep(t.to({ dtype, device }))]));
  return new LlamaModel(model.config, params);
}

describeGpu(`the model engine on cuda (${cuda.devices[0]?.name ?? 'no device'}, matmul: ${cuda.blas})`, () => {
  const { seed, next } = seeded('gpu model');
  const ref = LlamaModel.init(tinyConfig(false), { seed, dtype: 'f64', std: 0.2 });
  const seqs = [1, 5, 17].map((n) => Int32Array.from({ length: n }, () => Math.floor(next() * 97)));
  const batch = packSequences(seqs);
  const targets = nextTokenTargets(batch);
  const g = Float64Array.from(targets, (t) => (t < 0 ? 0 : next() - 0.5));
  const want = ref.lossAndGrads(batch, targets, g);

  it('f32 log-probs and every gradient match the f64 cpu model (1e-4 of each tensor scale)', () => {
    const m = copyModel(ref, 'f32', 'cuda');
    const got = m.lossAndGrads(batch, targets, g);
    expect(maxRelError(got.tokenLogprobs, want.tokenLogprobs, 1)).toBeLessThanOrEqual(1e-4);
    for (const [n, w] of want.grads) {
      const wa = w.toArray();
      const scale = Array.from(wa).reduce((a, v) => Math.max(a, Math.abs(v)), 1e-6);
      const err = maxRelError((got.grads.get(n) as osp.Tensor).toArray(), wa, scale);
      expect({ parameter: n, ok: err <= 1e-4, err }).toMatchObject({ parameter: n, ok: true });
    }
  });

  it('recomputation gives the same f32 gradients on cuda', () => {
    const m = copyModel(ref, 'f32', 'cuda');
    const a = m.lossAndGrads(batch, targets, g);
    const b = m.lossAndGrads(batch, targets, g, { recompute: true });
    for (const [n, t] of a.grads) expect(Array.from((b.grads.get(n) as osp.Tensor).toArray())).toEqual(Array.from(t.toArray()));
  });

  it('bf16 weights and activations stay within bf16 accuracy of f64 (log-probs 3e-2 relative)', () => {
    const m = copyModel(ref, 'bf16', 'cuda');
    const lp = m.tokenLogprobs(batch, targets);
    expect(maxRelError(lp, want.tokenLogprobs, 1)).toBeLessThanOrEqual(3e-2);
  });

  it('bf16 elementwise ops and copyInto round like the cpu', () => {
    const x = Float64Array.from({ length: 1000 }, () => (next() - 0.5) * 8);
    const y = Float64Array.from({ length: 1000 }, () => (next() - 0.5) * 8);
    const a = osp.tensor(x, [1000], { dtype: 'bf16', device: 'cuda' });
    const b = osp.tensor(y, [1000], { dtype: 'bf16', device: 'cuda' });
    const onCpu = osp.zeros([1000], { dtype: 'bf16', device: 'cpu' });
    const xa = Float64Array.from(a.toArray());
    const yb = Float64Array.from(b.toArray());
    osp.copyInto(onCpu, osp.tensor(Float64Array.from(xa, (v, i) => v + yb[i]), [1000], { dtype: 'f64', device: 'cpu' }).to({ dtype: 'f32' }));
    expect(Array.from(osp.add(a, b).toArray())).toEqual(Array.from(onCpu.toArray()));
    const f = osp.zeros([1000], { dtype: 'f32', device: 'cuda' });
    osp.copyInto(f, a);
    expect(Array.from(f.toArray())).toEqual(Array.from(xa));
  });

  it('AdamW with f32 master weights trains a bf16 model: 30 steps lower the loss by half', () => {
    const m = copyModel(LlamaModel.init(tinyConfig(true), { seed, dtype: 'f32', device: 'cpu' }), 'bf16', 'cuda');
    const motif = Int32Array.from([5, 17, 42, 8, 3, 77, 60, 21, 5, 17, 42, 8, 3, 77, 60, 21]);
    const b = packSequences([motif, motif]);
    const t = nextTokenTargets(b);
    const counted = t.filter((v) => v >= 0).length;
    const grad = Float64Array.from(t, (v) => (v < 0 ? 0 : -1 / counted));
    const opt = new AdamW(m.parameters(), { lr: 1e-2 });
    const losses: number[] = [];
    for (let s = 0; s < 30; s++) {
      const r = m.lossAndGrads(b, t, grad);
      losses.push(-r.tokenLogprobs.reduce((a, v) => a + v, 0) / counted);
      opt.step(r.grads);
      for (const x of r.grads.values()) x.dispose();
    }
    expect(losses[29]).toBeLessThan(0.5 * losses[0]);
    expect(opt.state().tensors.get('model.norm.weight.master')?.dtype).toBe('f32');
  });
});
