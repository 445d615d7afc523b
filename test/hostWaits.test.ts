// How often a training step makes the host wait for the device. The CPU backend counts at the same
// points as CUDA (tensor reads and synchronize; src/sync.ts), so these CPU tests pin what a GPU run
// waits: an optimizer step of the preference or SFT objective waits once (the read of its values and
// gradient norm), whatever the number of layers or micro-batches. The bound is 4.
import { LlamaModel } from '../src/model/llama';
import { AdamW } from '../src/model/optim';
import { DeviceRecord } from '../src/osp/deviceRecord';
import { ScoredPair, preferenceStep, sftStep } from '../src/osp/objective';
import { resetSyncStats, syncStats } from '../src/sync';
import { Tensor } from '../src/tensor';
import { seeded } from './helpers/random';
import { tinyConfig } from './helpers/tinyLlama';

const { seed, next } = seeded('host waits');
const rand = (n: number, V: number) => Int32Array.from({ length: n }, () => Math.floor(next() * V));

/** One optimizer step as the trainer takes it: objective, AdamW on the device, the step's one read. */
function optimizerStep(model: LlamaModel, opt: AdamW, step: { grads: Map<string, Tensor>; record: DeviceRecord }): Map<string, Float64Array> {
  const res = opt.step(step.grads);
  for (const g of step.grads.values()) g.dispose();
  step.record.add('gradSumOfSquares', res.gradSumOfSquares.reshape([1]));
  return step.record.read();
}

describe.each([2, 8])('%i layers', (layers) => {
  const config = { ...tinyConfig(false), numHiddenLayers: layers };
  const policy = LlamaModel.init(config, { seed, dtype: 'f32' });
  const reference = LlamaModel.init(config, { seed, dtype: 'f32' });
  const V = config.vocabSize;
  const pairs: ScoredPair[] = Array.from({ length: 3 }, () => ({ prompt: rand(3, V), chosen: rand(4, V), rejected: rand(2, V), target: next() }));
  const opt = new AdamW(policy.parameters(), { lr: 1e-3 });
  afterAll(() => {
    opt.dispose();
    policy.dispose();
    reference.dispose();
  });

  it.each([
    [1, 3],
    [3, 1],
  ])('a preference step in %i micro-batch(es) waits once (the read of its values)', (_microBatches, microBatch) => {
    resetSyncStats();
    const values = optimizerStep(policy, opt, preferenceStep(policy, reference, pairs, { loss: 'spce', beta: 0.1, microBatch }));
    expect(syncStats()).toEqual({ hostWaits: 1, reads: 1, synchronizes: 0, statusReads: 0, uploadWaits: 0 });
    expect(Number.isFinite(values.get('loss')![0])).toBe(true);
    expect(values.get('pHat')!.length).toBe(pairs.length);
  });

  it.each([
    [1, 3],
    [3, 1],
  ])('an SFT step in %i micro-batch(es) waits once', (_microBatches, microBatch) => {
    const examples = pairs.map((p) => ({ prompt: p.prompt, response: p.chosen }));
    resetSyncStats();
    const values = optimizerStep(policy, opt, sftStep(policy, examples, { microBatch }));
    expect(syncStats().hostWaits).toBe(1);
    expect(values.get('loss')![0]).toBeGreaterThan(0);
  });
});

test('the counter sees every read: the loss and the norm read on their own are two waits, a weight read a third', () => {
  const config = tinyConfig(false);
  const policy = LlamaModel.init(config, { seed: seed + 1, dtype: 'f32' });
  const opt = new AdamW(policy.parameters(), { lr: 1e-3 });
  const examples = [{ prompt: rand(2, config.vocabSize), response: rand(3, config.vocabSize) }];
  resetSyncStats();
  const r = sftStep(policy, examples, { microBatch: 1 });
  r.record.get('loss');
  const res = opt.step(r.grads);
  void res.gradNorm;
  for (const g of r.grads.values()) g.dispose();
  expect(syncStats().hostWaits).toBe(2);
  void policy.lmHead.toArray();
  expect(syncStats().reads).toBe(3);
  opt.dispose();
  policy.dispose();
});
