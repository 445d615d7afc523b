// The Llama model composition on the cpu in f64, on a tiny config (2 layers, hidden 32, 4 heads,
// 2 KV heads, head_dim 8, intermediate 48, vocab 97) with packed sequences of lengths 1, 5 and 17,
// tied and untied embeddings: the explicit backward against central finite differences (Richardson)
// of L = sum(g * tokenLogprobs) for sampled entries of every parameter tensor and of the input
// embeddings; packing independence; sequenceLogprobs counting only response tokens; and 20 AdamW
// steps on a tiny repeated sequence lowering its loss.
import * as osp from '../src';
import { LlamaModel, packSequences, llamaParameterShapes } from '../src/model/llama';
import { integers, normals, seeded } from './helpers/random';
import { cpu, dot, gradcheck, read, sampleEntries } from './helpers/tensors';
import { tinyConfig } from './helpers/tinyLlama';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { saveLlama } from '../src/model/hub';
import { loadLlama } from '../src/model/llama';
import { RopeScaling } from '../src/model/config';

const LENGTHS = [1, 5, 17];

/**
 * Rule for the backward (gradcheck, Richardson with a fixed step 1e-3):
 * |fd - analytic| <= 1e-6 * max(|fd|, |analytic|, 1e-4). The floor 1e-4 (an absolute 1e-10) sits
 * well above the differences' rounding error, about u |L| / h ~ 1e-11 for |L| ~ 30.
 */
const FD = { step: 1e-3, floor: 1e-4 };

function randomSequences(next: () => number, lengths: number[], V: number): Int32Array[] {
  return lengths.map((n) => integers(next, n, 0, V));
}

describe('LlamaModel parameters', () => {
  it('init gives Hugging Face names and shapes, norms = 1, distinct weights per tensor', () => {
    const config = tinyConfig(false);
    const model = LlamaModel.init(config, { seed: 3, dtype: 'f64' });
    const params = model.parameters();
    expect(Array.from(params.keys())).toEqual(Array.from(llamaParameterShapes(config).keys()));
    expect(params.get('model.layers.1.self_attn.k_proj.weight')?.shape).toEqual([16, 32]);
    expect(params.get('model.layers.0.mlp.down_proj.weight')?.shape).toEqual([32, 48]);
    expect(params.get('lm_head.weight')?.shape).toEqual([97, 32]);
    expect(Array.from(params.get('model.norm.weight')!.toArray())).toEqual(new Array(32).fill(1));
    const a = params.get('model.layers.0.mlp.gate_proj.weight')!.toArray();
    const b = params.get('model.layers.0.mlp.up_proj.weight')!.toArray();
    expect(a[0]).not.toBe(b[0]);
    const std = Math.sqrt(dot(a, a) / a.length);
    expect(std).toBeGreaterThan(0.015);
    expect(std).toBeLessThan(0.025);
    const tied = LlamaModel.init(tinyConfig(true), { seed: 3, dtype: 'f64' });
    expect(tied.parameters().has('lm_head.weight')).toBe(false);
    for (const t of [...params.values(), ...tied.parameters().values()]) t.dispose();
  });

  it('the constructor names a missing or mis-shaped parameter', () => {
    const config = tinyConfig(true);
    const model = LlamaModel.init(config, { seed: 1, dtype: 'f64' });
    const params = model.parameters();
    const missing = new Map(params);
    missing.delete('model.layers.1.mlp.up_proj.weight');
    expect(() => new LlamaModel(config, missing)).toThrow(/model\.layers\.1\.mlp\.up_proj\.weight is missing/);
    const wrong = new Map(params);
    wrong.set('model.norm.weight', osp.tensor(new Float64Array(31), [31], cpu));
    expect(() => new LlamaModel(config, wrong)).toThrow(/model\.norm\.weight has shape \[31\]; expected \[32\]/);
    for (const t of params.values()) t.dispose();
  });
});

/** llama3 rope scaling on the tiny config (head_dim 8, theta 1e4): wavelengths 6.3 (kept), 63 (smoothed), 628 and 6283 (scaled). */
const LLAMA3_ROPE = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 } as const;

for (const [tie, llama3] of [[false, false], [true, false], [false, true]]) {
  const label = `${tie ? 'tied' : 'untied'}${llama3 ? ', llama3 rope scaling' : ''}`;
  describe(`LlamaModel backward against finite differences (f64, ${label} embeddings)`, () => {
    const { seed, next } = seeded(`llama fd ${tie ? 'tied' : 'untied'}${llama3 ? ' llama3' : ''}`);
    const config = { ...tinyConfig(tie), ropeScaling: llama3 ? LLAMA3_ROPE : null };
    // std 0.2 rather than 0.02: attention and the norms then work far from their linear regime.
    const model = LlamaModel.init(config, { seed, dtype: 'f64', std: 0.2 });
    const batch = packSequences(randomSequences(next, LENGTHS, config.vocabSize));
    const T = batch.tokens.length;
    const targets = integers(next, T, 0, config.vocabSize);
    targets[3] = -100; // an ignored target
    const g = normals(next, T);
    // chunkSize 8: the head runs over several chunks, the last one partial.
    const opts = { chunkSize: 8 };
    const result = model.lossAndGrads(batch, targets, g, opts);
    afterAll(() => {
      for (const t of result.grads.values()) t.dispose();
      result.gradInputEmbeddings.dispose();
      model.dispose();
    });

    it('returns a gradient for every parameter, same names and shapes; the ignored target has log-prob 0', () => {
      const params = model.parameters();
      expect(Array.from(result.grads.keys())).toEqual(Array.from(params.keys()));
      for (const [n, t] of params) expect(result.grads.get(n)!.shape).toEqual(t.shape);
      expect(result.gradInputEmbeddings.shape).toEqual([T, 32]);
      expect(result.tokenLogprobs[3]).toBe(0);
      // The chunked head gives the same log-probs as one chunk.
      const whole = model.tokenLogprobs(batch, targets, { chunkSize: 1000 });
      for (let t = 0; t < T; t++) expect(Math.abs(whole[t] - result.tokenLogprobs[t])).toBeLessThanOrEqual(1e-13);
    });

    it('every parameter tensor: 5 sampled entries match finite differences of sum(g * tokenLogprobs)', () => {
      const params = model.parameters();
      const used = Array.from(new Set(batch.tokens));
      for (const [name, p] of params) {
        const x = Float64Array.from(p.toArray());
        const L = (v: Float64Array) =>
          osp.scope(() => {
            const replaced = new Map(params);
            replaced.set(name, osp.tensor(v, p.shape, cpu));
            return dot(g, new LlamaModel(config, replaced).tokenLogprobs(batch, targets, opts));
          });
        let picks = sampleEntries(next, x.length, 5);
        if (name === 'model.embed_tokens.weight') {
          // Rows of tokens in the batch (the other rows only reach L through a tied head).
          const D = config.hiddenSize;
          picks = [used[Math.floor(next() * used.length)] * D + Math.floor(next() * D), used[0] * D + Math.floor(next() * D), picks[0]];
        }
        gradcheck(name, read(result.grads.get(name)!), L, x, { ...FD, entries: picks });
      }
    });

    it('the input embeddings: sampled entries match finite differences', () => {
      const x0 = osp.scope(() => {
        const ids = osp.tensor(batch.tokens, [T], { dtype: 'i32', ...cpu });
        return Float64Array.from(osp.embedding(model.parameters().get('model.embed_tokens.weight')!, ids).toArray());
      });
      const L = (v: Float64Array) =>
        osp.scope(() => dot(g, model.tokenLogprobs(batch, targets, { ...opts, inputEmbeddings: osp.tensor(v, [T, 32], cpu) })));
      const picks = sampleEntries(next, x0.length, 12);
      gradcheck('inputEmbeddings', read(result.gradInputEmbeddings), L, x0, { ...FD, entries: picks });
    });
  });
}

describe('LlamaModel packing and sequenceLogprobs', () => {
  const { seed, next } = seeded('llama packing');
  const config = tinyConfig(false);
  const model = LlamaModel.init(config, { seed, dtype: 'f64', std: 0.2 });
  afterAll(() => {
    model.dispose();
  });

  it("a sequence's log-probs are the same alone and packed with others", () => {
    const seqs = randomSequences(next, [5, 1, 17, 4], config.vocabSize);
    const targetsOf = seqs.map((s) => integers(next, s.length, 0, config.vocabSize));
    const packedTargets = new Int32Array(targetsOf.reduce((n, t) => n + t.length, 0));
    let t0 = 0;
    for (const t of targetsOf) {
      packedTargets.set(t, t0);
      t0 += t.length;
    }
    const packed = model.tokenLogprobs(packSequences(seqs), packedTargets);
    t0 = 0;
    seqs.forEach((s, i) => {
      const alone = model.tokenLogprobs(packSequences([s]), targetsOf[i]);
      for (let j = 0; j < s.length; j++) {
        const want = alone[j];
        const got = packed[t0 + j];
        if (!(Math.abs(got - want) <= 1e-12 * Math.max(1, Math.abs(want)))) {
          throw new Error(`sequence ${i} token ${j}: alone ${want}, packed ${got}`);
        }
      }
      t0 += s.length;
    });
  });

  it('sequenceLogprobs sums the response tokens only', () => {
    const pairs = [
      { prompt: integers(next, 4, 0, 97), response: integers(next, 6, 0, 97) },
      { prompt: integers(next, 1, 0, 97), response: integers(next, 3, 0, 97) },
      { prompt: integers(next, 7, 0, 97), response: integers(next, 1, 0, 97) },
    ];
    const got = model.sequenceLogprobs(pairs);
    expect(got.length).toBe(3);
    pairs.forEach((pr, i) => {
      const s = new Int32Array([...pr.prompt, ...pr.response]);
      const targets = new Int32Array(s.length).fill(-100);
      for (let j = 0; j + 1 < s.length; j++) targets[j] = s[j + 1];
      const lp = model.tokenLogprobs(packSequences([s]), targets);
      let response = 0;
      let all = 0;
      for (let j = 0; j + 1 < s.length; j++) {
        all += lp[j];
        if (j + 1 >= pr.prompt.length) response += lp[j];
      }
      expect(Math.abs(got[i] - response)).toBeLessThanOrEqual(1e-12 * Math.abs(response));
      // The prompt tokens' own predictions carry weight, and are left out.
      if (pr.prompt.length > 1) expect(Math.abs(all - response)).toBeGreaterThan(1e-6);
    });
    // Changing the last response token changes the pair's sum; the other pairs stay the same.
    const changed = pairs.map((pr) => ({ prompt: pr.prompt, response: Int32Array.from(pr.response) }));
    const r = changed[0].response;
    r[r.length - 1] = (r[r.length - 1] + 1) % 97;
    const after = model.sequenceLogprobs(changed);
    expect(Math.abs(after[0] - got[0])).toBeGreaterThan(1e-6);
    expect(Math.abs(after[1] - got[1])).toBeLessThanOrEqual(1e-12 * Math.abs(got[1]));
    expect(Math.abs(after[2] - got[2])).toBeLessThanOrEqual(1e-12 * Math.abs(got[2]));
    expect(() => model.sequenceLogprobs([{ prompt: new Int32Array(0), response: new Int32Array([1]) }])).toThrow(/prompt is empty/);
  });
});

describe('LlamaModel training', () => {
  it('20 AdamW steps (f64) on a tiny repeated sequence lower its loss substantially', () => {
    const { seed } = seeded('llama adamw');
    const config = tinyConfig(true);
    const model = LlamaModel.init(config, { seed, dtype: 'f64' });
    const motif = [5, 17, 42, 8, 3, 77, 60, 21];
    const seq = Int32Array.from([...motif, ...motif, ...motif]);
    const batch = packSequences([seq, seq.subarray(0, 12)]);
    const T = batch.tokens.length;
    const targets = new Int32Array(T).fill(-100);
    let counted = 0;
    for (let t = 0; t + 1 < T; t++) {
      if (batch.sequenceIds[t + 1] === batch.sequenceIds[t]) {
        targets[t] = batch.tokens[t + 1];
        counted++;
      }
    }
    const grad = Float64Array.from(targets, (v) => (v === -100 ? 0 : -1 / counted));
    const params = model.parameters();
    const state = new Map(Array.from(params, ([n, p]) => [n, { m: osp.affine(p, 0), v: osp.affine(p, 0) }]));
    const losses: number[] = [];
    for (let step = 1; step <= 20; step++) {
      const r = model.lossAndGrads(batch, targets, grad);
      losses.push(-dot(r.tokenLogprobs, new Float64Array(T).fill(1)) / counted);
      const clip = osp.clipGradNorm(Array.from(r.grads.values()), 1.0);
      for (const [n, p] of params) {
        const s = state.get(n)!;
        osp.adamwStep(p, r.grads.get(n)!, s.m, s.v, { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step, gradScale: clip.scale });
      }
      for (const t of r.grads.values()) t.dispose();
      r.gradInputEmbeddings.dispose();
    }
    const final = -dot(model.tokenLogprobs(batch, targets), new Float64Array(T).fill(1)) / counted;
    expect(losses[0]).toBeGreaterThan(4); // about log(97) = 4.57 at init
    expect(final).toBeLessThan(0.5 * losses[0]);
    for (const s of state.values()) {
      s.m.dispose();
      s.v.dispose();
    }
    for (const t of params.values()) t.dispose();
  });
});

describe('LlamaModel rope scaling', () => {
  it('llama3 scaling changes the logits, and the config round-trips through saveLlama / loadLlama', async () => {
    const config = { ...tinyConfig(false), ropeScaling: LLAMA3_ROPE };
    const model = LlamaModel.init(config, { seed: 5, dtype: 'f64', std: 0.2 });
    const seq = Int32Array.from({ length: 20 }, (_, i) => (i * 7 + 3) % 97);
    const logits = model.logits([seq])[0];
    const plain = new LlamaModel(tinyConfig(false), model.parameters()).logits([seq])[0];
    expect(Array.from(logits.slice(0, 97))).toEqual(Array.from(plain.slice(0, 97))); // position 0: no rotation
    expect(Math.max(...Array.from(logits, (v, i) => Math.abs(v - plain[i])))).toBeGreaterThan(1e-3);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-llama3-'));
    try {
      await saveLlama(model, path.join(dir, 'm'));
      const json = JSON.parse(fs.readFileSync(path.join(dir, 'm', 'config.json'), 'utf8'));
      expect(json.rope_scaling).toEqual({ rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 });
      const loaded = await loadLlama(path.join(dir, 'm'), { dtype: 'f64' });
      expect(loaded.config).toEqual({ ...config, torchDtype: 'float32' });
      // Saved as f32: the logits agree to the f32 rounding of the weights.
      const back = loaded.logits([seq])[0];
      for (let i = 0; i < back.length; i++) expect(Math.abs(back[i] - logits[i])).toBeLessThanOrEqual(1e-5);
      loaded.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      model.dispose();
    }
  });

  it('the constructor refuses bad llama3 fields and unsupported scaling types, naming them', () => {
    const config = tinyConfig(true);
    const params = LlamaModel.init(config, { seed: 1, dtype: 'f64' }).parameters();
    expect(() => new LlamaModel({ ...config, ropeScaling: { ...LLAMA3_ROPE, highFreqFactor: 0.5 } }, params)).toThrow(
      'LlamaModel: rope_scaling: high_freq_factor 0.5 is not greater than low_freq_factor 1',
    );
    expect(() => new LlamaModel({ ...config, ropeScaling: { ...LLAMA3_ROPE, factor: NaN } }, params)).toThrow(
      'LlamaModel: rope_scaling: factor is NaN; expected a finite number > 0',
    );
    expect(() => new LlamaModel({ ...config, ropeScaling: { type: 'dynamic', factor: 2 } as unknown as RopeScaling }, params)).toThrow(
      `LlamaModel: rope_scaling: type "dynamic" is not supported; expected 'default', 'linear', 'llama3' ('dynamic' and 'yarn' are not supported)`,
    );
    for (const t of params.values()) t.dispose();
  });
});

describe('LlamaModel positions', () => {
  it('refuses a position past the context, naming it', () => {
    const model = LlamaModel.init(tinyConfig(true), { seed: 1, dtype: 'f64' });
    const seq = new Int32Array(65).fill(3);
    expect(() => model.logits([seq])).toThrow("LlamaModel.forward: positions[64] is 64; the model's context (max_position_embeddings) is 64");
  });

  it('refuses a sequence longer than a sliding window (not implemented) and runs one that fits', () => {
    const model = LlamaModel.init({ ...tinyConfig(true), slidingWindow: 8 }, { seed: 1, dtype: 'f64' });
    expect(model.logits([new Int32Array(8).fill(3)])[0].length).toBe(8 * 97);
    expect(() => model.logits([new Int32Array(9).fill(3)])).toThrow(
      'LlamaModel.forward: a sequence reaches position 8, beyond sliding_window 8; sliding-window attention is not implemented (sequences up to 8 tokens are exact)',
    );
  });
});
