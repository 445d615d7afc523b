// LlamaModel.forwardCached: prefill and one-token decode steps over a kv cache give the logits of a
// full forward over the whole sequence at every step; K slots sharing one prefill (copies) decode
// like separately prefilled ones.
import * as osp from '../src';
import { KVCache, LlamaModel } from '../src/model/llama';
import { seeded } from './helpers/random';
import { maxRelError } from './helpers/reference';
import { tinyConfig } from './helpers/tinyLlama';

function makeCache(model: LlamaModel, slots: number, length: number): KVCache {
  const c = model.config;
  const shape = [slots, length, c.numKeyValueHeads, c.headDim];
  const mk = () => osp.keep(osp.zeros(shape, { dtype: model.dtype, device: model.device }));
  return { k: Array.from({ length: c.numHiddenLayers }, mk), v: Array.from({ length: c.numHiddenLayers }, mk) };
}

function disposeCache(cache: KVCache): void {
  for (const t of [...cache.k, ...cache.v]) t.dispose();
}

describe.each(['f64', 'f32'] as const)('forwardCached (%s)', (dtype) => {
  const tol = dtype === 'f64' ? 1e-10 : 1e-5;
  const { seed, next } = seeded(`cached forward ${dtype}`);
  const model = LlamaModel.init(tinyConfig(false), { seed, dtype, device: 'cpu', std: 0.3 });
  const V = model.config.vocabSize;
  const rand = (n: number) => Int32Array.from({ length: n }, () => Math.floor(next() * V));

  it('prefill of packed prompts then decode steps give the full forward logits at every position', () => {
    const prompts = [rand(1), rand(4), rand(9)];
    const continuations = [rand(6), rand(6), rand(6)];
    const cache = makeCache(model, 3, 20);
    const full = model.logits(prompts.map((p, i) => Int32Array.from([...p, ...continuations[i]])));
    osp.scope(() => {
      const tokens = Int32Array.from(prompts.flatMap((p) => Array.from(p)));
      const slots = Int32Array.from(prompts.flatMap((p, i) => Array.from(p, () => i)));
      const positions = Int32Array.from(prompts.flatMap((p) => Array.from(p, (_, j) => j)));
      const logits = model.headLogits(model.forwardCached(cache, tokens, slots, positions)).toArray();
      let row = 0;
      prompts.forEach((p, i) => {
        for (let j = 0; j < p.length; j++, row++) {
          expect(maxRelError(logits.subarray(row * V, (row + 1) * V), full[i].subarray(j * V, (j + 1) * V), 1)).toBeLessThanOrEqual(tol);
        }
      });
    });
    for (let step = 0; step < 6; step++) {
      osp.scope(() => {
        const tokens = Int32Array.from(continuations, (c) => c[step]);
        const positions = Int32Array.from(prompts, (p) => p.length + step);
        const logits = model.headLogits(model.forwardCached(cache, tokens, Int32Array.from([0, 1, 2]), positions)).toArray();
        prompts.forEach((p, i) => {
          const j = p.length + step;
          expect(maxRelError(logits.subarray(i * V, (i + 1) * V), full[i].subarray(j * V, (j + 1) * V), 1)).toBeLessThanOrEqual(tol);
        });
      });
    }
    disposeCache(cache);
  });

  it('outputRows returns only the rows asked for (the last prompt positions)', () => {
    const prompts = [rand(3), rand(5)];
    const cache = makeCache(model, 2, 8);
    const full = model.lastLogits(prompts);
    osp.scope(() => {
      const tokens = Int32Array.from([...prompts[0], ...prompts[1]]);
      const slots = Int32Array.from([0, 0, 0, 1, 1, 1, 1, 1]);
      const positions = Int32Array.from([0, 1, 2, 0, 1, 2, 3, 4]);
      const hidden = model.forwardCached(cache, tokens, slots, positions, { outputRows: Int32Array.from([2, 7]) });
      expect(hidden.shape).toEqual([2, model.config.hiddenSize]);
      const logits = model.headLogits(hidden).toArray();
      for (let i = 0; i < 2; i++) expect(maxRelError(logits.subarray(i * V, (i + 1) * V), full[i], 1)).toBeLessThanOrEqual(tol);
    });
    disposeCache(cache);
  });

  it('K slots sharing one prefill through copies decode exactly like K separate prefills', () => {
    const prompt = rand(7);
    const K = 3;
    const shared = makeCache(model, K, 10);
    const separate = makeCache(model, K, 10);
    osp.scope(() => {
      const n = prompt.length;
      const pos = Int32Array.from({ length: n }, (_, j) => j);
      const rows: number[] = [];
      const cs: number[] = [];
      const cp: number[] = [];
      for (let j = 0; j < n; j++) for (let k = 1; k < K; k++) (rows.push(j), cs.push(k), cp.push(j));
      model.forwardCached(shared, prompt, new Int32Array(n), pos, { copies: { rows: Int32Array.from(rows), slots: Int32Array.from(cs), positions: Int32Array.from(cp) } });
      for (let k = 0; k < K; k++) model.forwardCached(separate, prompt, new Int32Array(n).fill(k), pos);
      const feed = rand(K);
      const slots = Int32Array.from({ length: K }, (_, k) => k);
      const at = new Int32Array(K).fill(n);
      const a = model.headLogits(model.forwardCached(shared, feed, slots, at)).toArray();
      const b = model.headLogits(model.forwardCached(separate, feed, slots, at)).toArray();
      expect(Array.from(a)).toEqual(Array.from(b));
    });
    disposeCache(shared);
    disposeCache(separate);
  });

  it('refuses a position beyond the context and mismatched lengths, naming them', () => {
    const cache = makeCache(model, 1, 4);
    const ctx = model.config.maxPositionEmbeddings;
    expect(() => model.forwardCached(cache, Int32Array.from([1]), Int32Array.from([0]), Int32Array.from([ctx]))).toThrow(
      `LlamaModel.forwardCached: positions[0] is ${ctx}; the model's context (max_position_embeddings) is ${ctx}`,
    );
    expect(() => model.forwardCached(cache, Int32Array.from([1, 2]), Int32Array.from([0]), Int32Array.from([0, 1]))).toThrow(
      'LlamaModel.forwardCached: 2 tokens but 1 slots and 2 positions',
    );
    expect(() => model.forwardCached(cache, Int32Array.from([1]), Int32Array.from([0]), Int32Array.from([4]))).toThrow(/positions\[0\] = 4 is outside \[0, 4\)/);
    disposeCache(cache);
  });
});
