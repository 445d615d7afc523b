// sampleTokens on the cpu, specification style: the kept set and probabilities against a plain-TS
// f64 reference that sorts (test/helpers/sampling.ts), the empirical distribution of many draws
// against the claimed one (chi-square), greedy and top-k = 1, reproducibility from (seed, stream,
// step), f32 against f64, thread-count independence, then the argument and value checks.
import * as osp from '../src';
import { native } from '../src/native';
import { caught } from './helpers/errors';
import { expectSameOutputUnderThreads } from './helpers/child';
import { integers, normals, seeded } from './helpers/random';
import { chiSquare, refDistribution, refDraw, SampleSettings, uniformAt } from './helpers/sampling';
import { FloatType, floats, held, ints, read, expectWithin } from './helpers/tensors';

interface Batch {
  B: number;
  V: number;
  x: Float64Array;
  streams: Int32Array;
  steps: Int32Array;
}

function randomBatch(next: () => number, B: number, V: number, dtype: FloatType, scale = 2): Batch {
  return {
    B,
    V,
    x: held(normals(next, B * V, scale), dtype),
    streams: integers(next, B, 0, 1 << 30),
    steps: integers(next, B, 0, 1 << 20),
  };
}

const rowOf = (b: Batch, i: number) => b.x.subarray(i * b.V, (i + 1) * b.V);

function sample(b: Batch, dtype: FloatType, opts: osp.SampleOptions) {
  return osp.scope(() => {
    const r = osp.sampleTokens(floats(b.x, [b.B, b.V], dtype), ints(b.streams), ints(b.steps), opts);
    return { tokens: Array.from(read(r.tokens)), logprobs: Array.from(read(r.logprobs)), modelLogprobs: Array.from(read(r.modelLogprobs)), dtypes: [r.tokens.dtype, r.logprobs.dtype, r.modelLogprobs.dtype] };
  });
}

const SETTINGS: SampleSettings[] = [
  { temperature: 1 },
  { temperature: 0.6 },
  { temperature: 1.5, topK: 5 },
  { temperature: 1, topP: 0.7 },
  { temperature: 0.8, topK: 20, topP: 0.9 },
  { temperature: 2, topK: 3, topP: 0.5 },
  { temperature: 0.05, topP: 0.95 },
];

describe('sampleTokens in f64 against the plain-TS f64 reference', () => {
  const { next } = seeded('sampleTokens f64 reference');

  it.each(SETTINGS.map((s) => [JSON.stringify(s), s] as const))('%s: each token is the reference draw for u(seed, stream, step), with its logprobs to 1e-12', (_, s) => {
    const b = randomBatch(next, 40, 300, 'f64');
    const seed = Math.floor(next() * 2 ** 40);
    const got = sample(b, 'f64', { seed, ...s });
    expect(got.dtypes).toEqual(['i32', 'f64', 'f64']);
    for (let i = 0; i < b.B; i++) {
      const d = refDistribution(rowOf(b, i), s);
      const { token, margin } = refDraw(d, uniformAt(seed, b.streams[i], b.steps[i]));
      if (margin > 1e-9 && d.cutMargin > 1e-9) expect([i, got.tokens[i]]).toEqual([i, token]);
      const t = got.tokens[i];
      expect(d.probs[t]).toBeGreaterThan(0);
      expectWithin([got.logprobs[i], got.modelLogprobs[i]], [d.logprobs[t], d.modelLogprobs[t]], () => 1e-12 * Math.max(1, Math.abs(d.logprobs[t]), Math.abs(d.modelLogprobs[t])), `row ${i}`);
    }
  });

  it('a -Inf logit is never drawn, and the rest of the row is sampled as if it were absent', () => {
    const b = randomBatch(next, 200, 10, 'f64', 0.5);
    for (let i = 0; i < b.B; i++) b.x[i * b.V + (i % b.V)] = -Infinity;
    const got = sample(b, 'f64', { seed: 3, temperature: 1, topK: 4 });
    for (let i = 0; i < b.B; i++) {
      expect(got.tokens[i]).not.toBe(i % b.V);
      const d = refDistribution(rowOf(b, i), { temperature: 1, topK: 4 });
      expect(Math.abs(got.logprobs[i] - d.logprobs[got.tokens[i]])).toBeLessThan(1e-12);
    }
  });
});

describe('the empirical distribution of draws matches the claimed one (chi-square, p > 0.001)', () => {
  // Fixed logits, seeds and streams: the test is deterministic (never flaky); 6000 draws per case
  // put at least ~30 expected draws in every kept cell. Token order is shuffled so that the
  // index-order scan is not the sorted order.
  const logits = [0.3, 2.0, -0.4, 1.2, 1.7, -1.5, 0.8, 1.0, 0.0, 1.5, -0.9, 0.5];
  const V = logits.length;
  const R = 6000;
  const cases: [string, SampleSettings, number][] = [
    ['temperature 1', { temperature: 1 }, 11],
    ['temperature 0.7, topK 5', { temperature: 0.7, topK: 5 }, 12],
    ['temperature 1.3, topP 0.8', { temperature: 1.3, topP: 0.8 }, 13],
    ['temperature 1, topK 8, topP 0.6', { temperature: 1, topK: 8, topP: 0.6 }, 14],
  ];

  it.each(cases)('%s: counts over %#-th case fit the reference probabilities; excluded tokens never appear', (_, s, seed) => {
    const b: Batch = {
      B: R,
      V,
      x: Float64Array.from({ length: R * V }, (_, i) => logits[i % V]),
      streams: Int32Array.from({ length: R }, (_, i) => i),
      steps: new Int32Array(R).fill(7),
    };
    const d = refDistribution(logits, s);
    const got = sample(b, 'f64', { seed, ...s });
    const counts = new Array<number>(V).fill(0);
    for (const t of got.tokens) counts[t]++;
    const kept = d.probs.map((p, i) => (p > 0 ? i : -1)).filter((i) => i >= 0);
    for (let i = 0; i < V; i++) if (d.probs[i] === 0) expect([i, counts[i]]).toEqual([i, 0]);
    const { statistic, df, p } = chiSquare(kept.map((i) => counts[i]), kept.map((i) => R * d.probs[i]));
    process.stdout.write(`[sampling chi-square ${JSON.stringify(s)}] X2 = ${statistic.toFixed(2)}, df = ${df}, p = ${p.toPrecision(3)}\n`);
    expect(p).toBeGreaterThan(0.001);
  });

  it('the chi-square helper rejects a wrong distribution (the test has power)', () => {
    const b: Batch = {
      B: R,
      V,
      x: Float64Array.from({ length: R * V }, (_, i) => logits[i % V]),
      streams: Int32Array.from({ length: R }, (_, i) => i),
      steps: new Int32Array(R).fill(7),
    };
    const got = sample(b, 'f64', { seed: 11, temperature: 1 });
    const counts = new Array<number>(V).fill(0);
    for (const t of got.tokens) counts[t]++;
    const wrong = refDistribution(logits, { temperature: 1.2 }).probs;
    expect(chiSquare(counts, wrong.map((p) => R * p)).p).toBeLessThan(0.001);
  });
});

describe('greedy sampling', () => {
  const { next } = seeded('sampleTokens greedy');

  it('temperature 0 takes the argmax, the lowest index among tied maxima, with logprob 0', () => {
    for (const dtype of ['f64', 'f32'] as FloatType[]) {
      const b = randomBatch(next, 30, 50, dtype);
      for (let i = 0; i < b.B; i += 3) {
        const row = rowOf(b, i);
        const m = Math.max(...row);
        row[(i * 7) % 50] = m; // a tie with the max, before or after it
        row[49 - (i % 50)] = m;
      }
      const got = sample(b, dtype, { seed: 5, temperature: 0, topP: 0.3, topK: 7 });
      for (let i = 0; i < b.B; i++) {
        const row = Array.from(rowOf(b, i));
        expect([i, got.tokens[i]]).toEqual([i, row.indexOf(Math.max(...row))]);
        expect(got.logprobs[i]).toBe(0);
      }
    }
  });

  it('topK = 1 gives the same tokens as greedy for any temperature and topP, with logprob 0', () => {
    const b = randomBatch(next, 50, 200, 'f64');
    const greedy = sample(b, 'f64', { seed: 1, temperature: 0 });
    for (const s of [{ temperature: 0.5 }, { temperature: 3, topP: 0.2 }]) {
      const got = sample(b, 'f64', { seed: 9, topK: 1, ...s });
      expect(got.tokens).toEqual(greedy.tokens);
      expect(got.logprobs.every((v) => v === 0)).toBe(true);
      expect(got.modelLogprobs).toEqual(greedy.modelLogprobs);
    }
  });

  it('the greedy modelLogprobs are log_softmax of the raw logits at the argmax', () => {
    const b = randomBatch(next, 20, 100, 'f64');
    const got = sample(b, 'f64', { seed: 1, temperature: 0 });
    const want = got.tokens.map((t, i) => refDistribution(rowOf(b, i), { temperature: 0 }).modelLogprobs[t]);
    expectWithin(got.modelLogprobs, want, () => 1e-12, 'greedy modelLogprobs');
  });
});

describe('truncation', () => {
  const { next } = seeded('sampleTokens truncation');

  it.each([[5], [1], [17]])('topK %i: only tokens among the k largest logits (ties kept) are drawn', (k) => {
    const b = randomBatch(next, 3000, 40, 'f64');
    const got = sample(b, 'f64', { seed: 2, temperature: 2, topK: k });
    for (let i = 0; i < b.B; i++) {
      const kth = [...rowOf(b, i)].sort((a, c) => c - a)[k - 1];
      if (!(rowOf(b, i)[got.tokens[i]] >= kth)) throw new Error(`row ${i}: token ${got.tokens[i]} is outside the top ${k}`);
    }
  });

  it('tokens tied with the k-th largest logit are all kept', () => {
    const row = [0, 3, 1, 1, 2, 1, -1];
    const B = 4000;
    const b: Batch = { B, V: row.length, x: Float64Array.from({ length: B * row.length }, (_, i) => row[i % row.length]), streams: Int32Array.from({ length: B }, (_, i) => i), steps: new Int32Array(B) };
    const got = sample(b, 'f64', { seed: 4, temperature: 1, topK: 3 });
    const seen = new Set(got.tokens);
    expect([...seen].sort()).toEqual([1, 2, 3, 4, 5]);
    expect(refDistribution(row, { temperature: 1, topK: 3 }).probs.map((p) => p > 0)).toEqual([false, true, true, true, true, true, false]);
  });

  it.each([[0.5], [0.9], [0.05]])('topP %f: only tokens of the nucleus are drawn', (p) => {
    const b = randomBatch(next, 3000, 40, 'f64');
    const s = { temperature: 0.9, topP: p };
    const got = sample(b, 'f64', { seed: 6, ...s });
    for (let i = 0; i < b.B; i++) {
      const d = refDistribution(rowOf(b, i), s);
      if (!(d.probs[got.tokens[i]] > 0)) throw new Error(`row ${i}: token ${got.tokens[i]} is outside the nucleus ${p}`);
    }
  });

  it('the nucleus is the smallest top set whose mass reaches topP (the last member completes it)', () => {
    // probs 0.5, 0.3, 0.2 at temperature 1: topP 0.8 keeps the first two exactly; 0.81 needs the third.
    const row = [Math.log(0.3), Math.log(0.5), Math.log(0.2)];
    expect(refDistribution(row, { temperature: 1, topP: 0.79 }).probs.map((p) => p > 0)).toEqual([true, true, false]);
    expect(refDistribution(row, { temperature: 1, topP: 0.81 }).probs.map((p) => p > 0)).toEqual([true, true, true]);
    const B = 2000;
    const b: Batch = { B, V: 3, x: Float64Array.from({ length: B * 3 }, (_, i) => row[i % 3]), streams: Int32Array.from({ length: B }, (_, i) => i), steps: new Int32Array(B) };
    expect(new Set(sample(b, 'f64', { seed: 8, temperature: 1, topP: 0.79 }).tokens)).toEqual(new Set([0, 1]));
    expect(new Set(sample(b, 'f64', { seed: 8, temperature: 1, topP: 0.81 }).tokens)).toEqual(new Set([0, 1, 2]));
  });

  it.each([[0.05], [1]])('a flat 32000-wide row (normals * %f) with topP 0.9: the reference token and logprob for many seeds', (scale) => {
    // The nucleus is most of the vocabulary (~29k tokens at 0.05), the case the CPU path finds
    // without a comparison sort of the whole row; f64 gives the reference's draw exactly.
    const V = 32000;
    const B = 24;
    const s = { temperature: 1, topP: 0.9 };
    for (let r = 0; r < 2; r++) {
      const row = held(normals(next, V, scale), 'f64');
      const d = refDistribution(row, s);
      expect(d.cutMargin).toBeGreaterThan(1e-9);
      const kept = d.probs.filter((q) => q > 0).length;
      if (scale < 0.1) expect(kept).toBeGreaterThan(25000);
      const b: Batch = { B, V, x: new Float64Array(B * V), streams: integers(next, B, 0, 1 << 30), steps: integers(next, B, 0, 1 << 20) };
      for (let i = 0; i < B; i++) b.x.set(row, i * V);
      let compared = 0;
      for (let k = 0; k < 6; k++) {
        const seed = Math.floor(next() * 2 ** 40);
        const got = sample(b, 'f64', { seed, ...s });
        for (let i = 0; i < B; i++) {
          const { token, margin } = refDraw(d, uniformAt(seed, b.streams[i], b.steps[i]));
          const t = got.tokens[i];
          expect(d.probs[t]).toBeGreaterThan(0);
          expectWithin([got.logprobs[i], got.modelLogprobs[i]], [d.logprobs[t], d.modelLogprobs[t]], () => 1e-12 * Math.max(1, Math.abs(d.logprobs[t])), `row ${i} seed ${seed}`);
          if (margin > 1e-9) {
            compared++;
            expect([i, seed, t]).toEqual([i, seed, token]);
          }
        }
      }
      expect(compared).toBeGreaterThan(B * 6 * 0.9);
    }
  });
});

describe('reproducibility', () => {
  const { next } = seeded('sampleTokens reproducibility');
  const s = { temperature: 1.2, topK: 50, topP: 0.95 };

  it('the same seed and (stream, step) give the same token whatever the row order and batch size', () => {
    const b = randomBatch(next, 64, 500, 'f32');
    const all = sample(b, 'f32', { seed: 77, ...s });
    const perm = Array.from({ length: b.B }, (_, i) => i).sort(() => next() - 0.5).slice(0, 23);
    const sub: Batch = {
      B: perm.length,
      V: b.V,
      x: Float64Array.from(perm.flatMap((i) => Array.from(rowOf(b, i)))),
      streams: Int32Array.from(perm, (i) => b.streams[i]),
      steps: Int32Array.from(perm, (i) => b.steps[i]),
    };
    const part = sample(sub, 'f32', { seed: 77, ...s });
    expect(part.tokens).toEqual(perm.map((i) => all.tokens[i]));
    expect(part.logprobs).toEqual(perm.map((i) => all.logprobs[i]));
    const one = sample({ ...sub, B: 1, x: sub.x.subarray(0, b.V), streams: sub.streams.subarray(0, 1), steps: sub.steps.subarray(0, 1) }, 'f32', { seed: 77, ...s });
    expect(one.tokens).toEqual([all.tokens[perm[0]]]);
  });

  it('a second call with the same arguments gives the same result', () => {
    const b = randomBatch(next, 32, 300, 'f64');
    expect(sample(b, 'f64', { seed: 3, ...s })).toEqual(sample(b, 'f64', { seed: 3, ...s }));
  });

  it('different seeds, streams or steps give different draws', () => {
    const B = 400;
    const b: Batch = { B, V: 1000, x: new Float64Array(B * 1000), streams: Int32Array.from({ length: B }, (_, i) => i), steps: new Int32Array(B) };
    const base = sample(b, 'f64', { seed: 1, temperature: 1 }).tokens;
    const differ = (t: ArrayLike<number>) => Array.from(t).filter((v, i) => v !== base[i]).length;
    expect(differ(sample(b, 'f64', { seed: 2, temperature: 1 }).tokens)).toBeGreaterThan(B * 0.95);
    expect(differ(sample(b, 'f64', { seed: 2 ** 53 - 1, temperature: 1 }).tokens)).toBeGreaterThan(B * 0.95);
    expect(differ(sample({ ...b, steps: new Int32Array(B).fill(1) }, 'f64', { seed: 1, temperature: 1 }).tokens)).toBeGreaterThan(B * 0.95);
    // uniform logits: the token is floor(u V), so the draws are spread over the vocabulary
    expect(new Set(base).size).toBeGreaterThan(250);
  });

  it('results are bitwise identical for OSP_NUM_THREADS 1 and 2', () => {
    const script =
      `const o=require('./src');const s=5;` +
      `const x=o.randn([257,3000],{device:'cpu',seed:s});` +
      `const st=o.tensor(Int32Array.from({length:257},(_,i)=>i*3),[257],{device:'cpu'});` +
      `const sp=o.tensor(new Int32Array(257).fill(2),[257],{device:'cpu'});` +
      `const out=[];for(const opts of [{seed:1,temperature:1},{seed:2,temperature:0.7,topK:40,topP:0.9}]){` +
      `const r=o.sampleTokens(x,st,sp,opts);for(const t of [r.tokens,r.logprobs,r.modelLogprobs])out.push(Buffer.from(t.toArray().buffer).toString('base64'));}` +
      `process.stdout.write(out.join('|'))`;
    expectSameOutputUnderThreads(script, 6 * 257);
  });
});

describe('f32 against f64', () => {
  const { next } = seeded('sampleTokens f32');

  it.each(SETTINGS.map((s) => [JSON.stringify(s), s] as const))('%s: the same tokens away from draw boundaries; logprobs to 1e-5', (_, s) => {
    const b = randomBatch(next, 60, 1000, 'f32');
    const seed = Math.floor(next() * 1e9);
    const f64 = sample(b, 'f64', { seed, ...s });
    const f32 = sample(b, 'f32', { seed, ...s });
    expect(f32.dtypes).toEqual(['i32', 'f32', 'f32']);
    let compared = 0;
    for (let i = 0; i < b.B; i++) {
      const d = refDistribution(rowOf(b, i), s);
      if (d.cutMargin < 1e-5 || refDraw(d, uniformAt(seed, b.streams[i], b.steps[i])).margin < 1e-5) continue; // f32 sums of 1000 terms: ~1e-6
      compared++;
      expect([i, f32.tokens[i]]).toEqual([i, f64.tokens[i]]);
      expectWithin([f32.logprobs[i], f32.modelLogprobs[i]], [f64.logprobs[i], f64.modelLogprobs[i]], (j) => 1e-5 * Math.max(1, Math.abs([f64.logprobs[i], f64.modelLogprobs[i]][j])), `row ${i}`);
    }
    expect(compared).toBeGreaterThan(b.B * 0.8);
  });
});

describe('sampleTokens argument checks', () => {
  const x = (shape: number[], dtype: FloatType = 'f32') => floats(new Float64Array(shape.reduce((a, c) => a * c, 1)), shape, dtype);
  const ok = { seed: 1, temperature: 1 };
  const run = (opts: object, logits = x([2, 5]), streams = ints([0, 1]), steps = ints([0, 0])) =>
    caught(() => osp.scope(() => osp.sampleTokens(logits, streams, steps, opts as osp.SampleOptions)));

  it('accepts an empty batch and returns empty outputs', () => {
    osp.scope(() => {
      const r = osp.sampleTokens(x([0, 5]), ints([]), ints([]), ok);
      expect([r.tokens.shape, r.logprobs.shape, r.modelLogprobs.shape]).toEqual([[0], [0], [0]]);
    });
  });

  it('refuses wrong dtypes, naming the argument', () => {
    osp.scope(() => {
      expect(run(ok, osp.tensor(new Int32Array(10), [2, 5], { device: 'cpu' }))).toEqual({ errorClass: 'TypeError', message: 'sampleTokens: logits has dtype i32 on cpu; expected f32 or f64' });
      expect(run(ok, osp.tensor(new Float64Array(10), [2, 5], { dtype: 'bf16', device: 'cpu' }))?.message).toBe('sampleTokens: logits has dtype bf16 on cpu; expected f32 or f64');
      expect(run(ok, x([2, 5]), floats([0, 1], 'f32'))).toEqual({ errorClass: 'TypeError', message: 'sampleTokens: streams has dtype f32 on cpu; expected i32' });
      expect(run(ok, x([2, 5]), ints([0, 1]), floats([0, 1], 'f64'))?.message).toBe('sampleTokens: steps has dtype f64 on cpu; expected i32');
    });
  });

  it('refuses wrong shapes, naming the argument', () => {
    osp.scope(() => {
      expect(run(ok, x([10]))).toEqual({ errorClass: 'TypeError', message: 'sampleTokens: logits has shape [10]; expected 2 dimensions' });
      expect(run(ok, x([2, 0]))?.message).toBe('sampleTokens: logits has shape [2, 0]; expected at least one column');
      expect(run(ok, x([2, 5]), ints([0, 1, 2]))).toEqual({ errorClass: 'TypeError', message: 'sampleTokens: streams has shape [3]; expected size 2 in dimension 0 (one per row of logits)' });
      expect(run(ok, x([2, 5]), ints([0, 1]), ints([0, 1]).reshape([1, 2]))?.message).toBe('sampleTokens: steps has shape [1, 2]; expected 1 dimension');
      expect(run(ok, x([5, 2]).transpose(0, 1))?.errorClass).toBe('TypeError');
    });
  });

  it('refuses a non-tensor argument', () => {
    expect(caught(() => osp.sampleTokens([1, 2] as unknown as osp.Tensor, ints([0]), ints([0]), ok))).toEqual({
      errorClass: 'TypeError',
      message: 'sampleTokens: logits is not a Tensor; expected a Tensor made by osp.tensor()',
    });
  });

  it.each(
    ([
    [{ seed: 1, temperature: -0.1 }, 'sampleTokens: temperature is -0.1; expected a finite number >= 0 (0 = greedy)'],
    [{ seed: 1, temperature: NaN }, 'sampleTokens: temperature is NaN; expected a finite number >= 0 (0 = greedy)'],
    [{ seed: 1, temperature: Infinity }, 'sampleTokens: temperature is Infinity; expected a finite number >= 0 (0 = greedy)'],
    [{ ...ok, topP: 0 }, 'sampleTokens: topP is 0; expected a number in (0, 1] (1 = off)'],
    [{ ...ok, topP: 1.01 }, 'sampleTokens: topP is 1.01; expected a number in (0, 1] (1 = off)'],
    [{ ...ok, topP: NaN }, 'sampleTokens: topP is NaN; expected a number in (0, 1] (1 = off)'],
    [{ ...ok, topK: -1 }, 'sampleTokens: topK is -1; expected an integer >= 0 (0 = off)'],
    [{ ...ok, topK: 2.5 }, 'sampleTokens: topK is 2.5; expected an integer >= 0 (0 = off)'],
    [{ seed: -1, temperature: 1 }, 'sampleTokens: seed is -1; expected an integer in [0, 2^53)'],
    [{ seed: 0.5, temperature: 1 }, 'sampleTokens: seed is 0.5; expected an integer in [0, 2^53)'],
    [{ seed: 2 ** 53, temperature: 1 }, 'sampleTokens: seed is 9007199254740992; expected an integer in [0, 2^53)'],
    ] as [object, string][]
  ).map(([opts, message]) => [message, opts] as const))('%s (a RangeError)', (message, opts) => {
    expect(run(opts)).toEqual({ errorClass: 'RangeError', message });
  });

  it('refuses missing or non-number options with a TypeError', () => {
    expect(run({ temperature: 1 })).toEqual({ errorClass: 'TypeError', message: 'sampleTokens: opts.seed must be a number' });
    expect(run({ seed: 1 })).toEqual({ errorClass: 'TypeError', message: 'sampleTokens: opts.temperature must be a number' });
    expect(run({ ...ok, topK: '3' })).toEqual({ errorClass: 'TypeError', message: 'sampleTokens: opts.topK must be a number' });
    expect(caught(() => osp.sampleTokens(x([1, 2]), ints([0]), ints([0]), undefined as unknown as osp.SampleOptions))?.errorClass).toBe('TypeError');
  });

  it('the native op checks the options itself (not only the TypeScript wrapper)', () => {
    osp.scope(() => {
      const l = x([1, 3]).handle;
      const i = ints([0]).handle;
      const call = (seed: number, t: number, p: number, k: number) => caught(() => native.sampleTokens(l, i, i, { seed, temperature: t, topP: p, topK: k }));
      expect(call(-1, 1, 1, 0)?.message).toBe('sampleTokens: seed is -1; expected an integer in [0, 2^53)');
      expect(call(1, -1, 1, 0)?.message).toBe('sampleTokens: temperature is -1; expected a finite number >= 0 (0 = greedy)');
      expect(call(1, 1, 0, 0)?.message).toBe('sampleTokens: topP is 0; expected a number in (0, 1] (1 = off)');
      expect(call(1, 1, 1, 1.5)?.errorClass).toBe('RangeError');
      expect(call(1, 1, 1, 0)).toBeUndefined();
    });
  });
});

describe('sampleTokens value checks', () => {
  const { next } = seeded('sampleTokens values');
  const B = 6;
  const V = 300;

  it.each([
    ['f64', NaN, 0],
    ['f32', NaN, 1],
    ['f64', Infinity, 0],
    ['f32', Infinity, 0.7],
  ] as const)('%s: %f in row 4 is a RangeError naming "logits row 4" (temperature %f)', (dtype, bad, temperature) => {
    const b = randomBatch(next, B, V, dtype);
    b.x[4 * V + Math.floor(next() * V)] = bad;
    b.x[5 * V] = NaN; // a later bad row: the lowest is named
    const err = caught(() => sample(b, dtype, { seed: 1, temperature, topP: 0.9 }));
    expect(err?.errorClass).toBe('RangeError');
    expect(err?.message).toMatch(/^sampleTokens: logits row 4 contains NaN or \+Inf/);
  });

  it.each(['f64', 'f32'] as const)('%s: a row that is all -Infinity is a RangeError naming the row', (dtype) => {
    const b = randomBatch(next, B, V, dtype);
    b.x.fill(-Infinity, 2 * V, 3 * V);
    const err = caught(() => sample(b, dtype, { seed: 1, temperature: 0 }));
    expect(err).toEqual({
      errorClass: 'RangeError',
      message: 'sampleTokens: logits row 2 contains NaN or +Inf, or has no finite value (all -Inf); expected finite logits (-Inf is allowed for excluded tokens)',
    });
  });

  it('a row with a single finite logit always gives that token, with logprob and modelLogprob 0', () => {
    const b = randomBatch(next, B, V, 'f64');
    b.x.fill(-Infinity);
    for (let i = 0; i < B; i++) b.x[i * V + i * 17] = next() * 10;
    const got = sample(b, 'f64', { seed: 1, temperature: 0.5, topP: 0.2, topK: 3 });
    expect(got.tokens).toEqual(Array.from({ length: B }, (_, i) => i * 17));
    expect(got.logprobs).toEqual(new Array(B).fill(0));
    expect(got.modelLogprobs).toEqual(new Array(B).fill(0));
  });
});
