// LoRA on cuda: the adapted tiny Llama's log-probs and A/B gradients in f32 against the f64 cpu model
// with the same weights, dropout masks equal to the cpu's, and a bf16 base with f32 adapters (the
// Mistral-7B setting) within bf16 accuracy of f64. Skipped with a one-line reason where no GPU
// answers; OSP_GPU_TESTS=require turns that into a failure.
import * as osp from '../src';
import { LlamaModel, packSequences } from '../src/model/llama';
import { LORA_TARGETS, LoraAdapter } from '../src/model/lora';
import { seeded } from './helpers/random';
import { maxRelError } from './helpers/reference';
import { tinyConfig } from './helpers/tinyLlama';
import { gpuSuite } from './helpers/gpu';

const { cuda, describeGpu } = gpuSuite('GPU LoRA suite');
const config = tinyConfig(false);

function nextTokenTargets(batch: { tokens: Int32Array; sequenceIds: Int32Array }): Int32Array {
  const targets = new Int32Array(batch.tokens.length).fill(-100);
  for (let t = 0; t + 1 < batch.tokens.length; t++) if (batch.sequenceIds[t + 1] === batch.sequenceIds[t]) targets[t] = batch.tokens[t + 1];
  return targets;
}

function copyModel(model: LlamaModel, dtype: 'f32' | 'bf16', device: 'cuda'): LlamaModel {
  return new LlamaModel(model.config, new Map(Array.from(model.parameters(), ([n, t]) => [n, osp.keep(t.to({ dtype, device }))])));
}

function copyAdapter(a: LoraAdapter, dtype: 'f32' | 'f64', device: 'cpu' | 'cuda'): LoraAdapter {
  return new LoraAdapter(config, a.spec, new Map(Array.from(a.parameters(), ([n, t]) => [n, osp.keep(t.to({ dtype, device }))])));
}

describeGpu(`LoRA on cuda (${cuda.devices[0]?.name ?? 'no device'})`, () => {
  const { seed, next } = seeded('gpu lora');
  const ref = LlamaModel.init(config, { seed, dtype: 'f64', std: 0.2 });
  const spec = { r: 4, alpha: 8, dropout: 0.2, targets: LORA_TARGETS };
  const init = LoraAdapter.init(config, spec, { seed: seed + 1, dtype: 'f64' });
  for (const [k, t] of init.parameters()) if (k.endsWith('lora_B.weight')) osp.copyInto(t, osp.randn(t.shape, { dtype: 'f64', seed: seed + 2, std: 0.2 }));
  const batch = packSequences([1, 6, 17].map((n) => Int32Array.from({ length: n }, () => Math.floor(next() * 97))));
  const targets = nextTokenTargets(batch);
  const g = Float64Array.from(targets, (t) => (t < 0 ? 0 : next() - 0.5));
  const want = ref.withAdapter(init).lossAndGrads(batch, targets, g, { dropoutSeed: 11 });

  it('f32: log-probs and A/B gradients (same dropout masks) match the f64 cpu model within 1e-4 of each tensor scale', () => {
    const m = copyModel(ref, 'f32', 'cuda');
    const a = copyAdapter(init, 'f32', 'cuda');
    const got = m.withAdapter(a).lossAndGrads(batch, targets, g, { dropoutSeed: 11 });
    expect(maxRelError(got.tokenLogprobs, want.tokenLogprobs, 1)).toBeLessThanOrEqual(1e-4);
    expect(Array.from(got.grads.keys())).toEqual(Array.from(want.grads.keys()));
    for (const [n, w] of want.grads) {
      const wa = w.toArray();
      const scale = Array.from(wa).reduce((x, v) => Math.max(x, Math.abs(v)), 1e-6);
      const err = maxRelError((got.grads.get(n) as osp.Tensor).toArray(), wa, scale);
      expect({ parameter: n, ok: err <= 1e-4, err }).toMatchObject({ parameter: n, ok: true });
    }
  });

  it('dropout masks on cuda equal the cpu masks for the same seed', () => {
    const c = osp.dropoutMask([4099], 0.3, { device: 'cpu', seed: 5 }).toArray();
    const d = osp.dropoutMask([4099], 0.3, { device: 'cuda', seed: 5 }).toArray();
    expect(Array.from(d)).toEqual(Array.from(c));
  });

  it('a bf16 base with f32 adapters stays within bf16 accuracy of f64 (log-probs 3e-2 relative)', () => {
    const m = copyModel(ref, 'bf16', 'cuda');
    const a = copyAdapter(init, 'f32', 'cuda');
    const got = m.withAdapter(a).lossAndGrads(batch, targets, g, { dropoutSeed: 11 });
    expect(maxRelError(got.tokenLogprobs, want.tokenLogprobs, 1)).toBeLessThanOrEqual(3e-2);
    for (const [n, t] of got.grads) expect({ n, dtype: t.dtype }).toEqual({ n, dtype: 'f32' });
  });
});
