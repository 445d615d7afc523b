// Per-sequence sums of token log-probs on the cpu: sequenceLogprobs(tokenLogprobs, sequenceIds, count)
// and its backward, against plain loops, finite differences, the uncounted ids (-1, ignoreIndex), the
// value checks, and independence from how the sequences' tokens are interleaved.
import * as osp from '../src';
import { caught } from './helpers/errors';
import { integers, seeded, uniforms } from './helpers/random';
import { FloatType, DTYPES, held, floats, ints, read, expectWithin, gradcheck, sampleEntries } from './helpers/tensors';

const forward = (lp: ArrayLike<number>, ids: ArrayLike<number>, count: number, dtype: FloatType, opts: osp.IgnoreOptions = {}) =>
  osp.scope(() => read(osp.sequenceLogprobs(floats(lp, dtype), ints(ids), count, opts)));

const backward = (g: ArrayLike<number>, ids: ArrayLike<number>, dtype: FloatType, opts: osp.IgnoreOptions = {}) =>
  osp.scope(() => read(osp.sequenceLogprobsBackward(floats(g, dtype), ints(ids), opts)));

/** The plain loop: out[s] = sum of lp[n] over ids[n] == s, in f64, in token order. */
function plainSums(lp: ArrayLike<number>, ids: ArrayLike<number>, count: number, uncounted: number[] = [-1, -100]): number[] {
  const out = new Array<number>(count).fill(0);
  for (let n = 0; n < ids.length; n++) if (!uncounted.includes(ids[n])) out[ids[n]] += lp[n];
  return out;
}

/** Token log-probs: negative, spread over several orders of magnitude (so summation order shows). */
function logprobs(next: () => number, n: number, dtype: FloatType): Float64Array {
  return held(
    uniforms(next, n, -12, 3).map((e) => -Math.exp(e)),
    dtype,
  );
}

describe('sequenceLogprobs forward', () => {
  const { next } = seeded('sequenceLogprobs forward');

  it('f64: each sequence sum equals the plain loop to 1e-12 relative, including -1 and -100 tokens among them', () => {
    const N = 3000;
    const count = 97;
    const lp = logprobs(next, N, 'f64');
    const ids = integers(next, N, -1, count); // about 1% -1
    for (let n = 0; n < N; n += 37) ids[n] = -100;
    const got = osp.scope(() => {
      const out = osp.sequenceLogprobs(floats(lp, 'f64'), ints(ids), count);
      expect(out.shape).toEqual([count]);
      expect(out.dtype).toBe('f64');
      return read(out);
    });
    const want = plainSums(lp, ids, count);
    expectWithin(got, want, (s) => 1e-12 * Math.abs(want[s]), 'sequence sums');
  });

  // The bound: the values of a sequence all have one sign, so summing k of them in f32 in any order
  // is off by at most (k - 1) 2^-24 relative; with at most 16 tokens per sequence that is < 1e-6.
  it('f32: each sequence sum is within 1e-6 relative of the f64 plain loop over the same values (<= 16 tokens per sequence)', () => {
    const count = 200;
    const ids: number[] = [];
    for (let s = 0; s < count; s++) {
      const k = 1 + Math.floor(next() * 16);
      for (let j = 0; j < k; j++) ids.push(s);
      if (next() < 0.3) ids.push(-1);
    }
    const lp = logprobs(next, ids.length, 'f32');
    const got = osp.scope(() => {
      const out = osp.sequenceLogprobs(floats(lp, 'f32'), ints(ids), count);
      expect(out.dtype).toBe('f32');
      return read(out);
    });
    const want = plainSums(lp, ids, count);
    expectWithin(got, want, (s) => 1e-6 * Math.abs(want[s]), 'f32 sequence sums');
  });

  it.each(DTYPES)('%s: sequences with no tokens give exactly 0', (dtype) => {
    const count = 10;
    const empty = [0, 3, 4, 9];
    const ids = integers(next, 200, 0, count).map((s) => (empty.includes(s) ? -1 : s));
    const got = forward(logprobs(next, ids.length, dtype), ids, count, dtype);
    for (const s of empty) expect(got[s] === 0).toBe(true);
    for (let s = 0; s < count; s++) if (!empty.includes(s)) expect(got[s]).toBeLessThan(0);
  });

  // Uncounted tokens carry -1e6: if any of them leaked into a sum, the sum would be off by 1e6.
  const uncountedCases = DTYPES.flatMap((dtype) => [
    [dtype, 'id -1', -1, undefined] as const,
    [dtype, 'id -100 (the default ignoreIndex)', -100, undefined] as const,
    [dtype, 'a custom ignoreIndex -7', -7, -7] as const,
    [dtype, 'a custom ignoreIndex 2 (an in-range id)', 2, 2] as const,
  ]);

  it.each(uncountedCases)('%s: tokens with %s count in no sequence', (dtype, _what, id, ignoreIndex) => {
    const count = 6;
    const N = 120;
    const ids = integers(next, N, 0, count).map((s) => (s === id ? (s + 1) % count : s));
    const lp = logprobs(next, N, dtype);
    for (let n = 0; n < N; n += 5) {
      ids[n] = id;
      lp[n] = -1e6;
    }
    const opts = ignoreIndex === undefined ? {} : { ignoreIndex };
    const got = forward(lp, ids, count, dtype, opts);
    const want = plainSums(lp, ids, count, [-1, ignoreIndex ?? -100]);
    const rel = dtype === 'f64' ? 1e-12 : 1e-5;
    expectWithin(got, want, (s) => rel * Math.abs(want[s]), 'sequence sums');
  });

  it.each(uncountedCases)('%s: tokens with %s get a zero gradient', (dtype, _what, id, ignoreIndex) => {
    const count = 6;
    const N = 120;
    const ids = integers(next, N, 0, count).map((s) => (s === id ? (s + 1) % count : s));
    for (let n = 0; n < N; n += 5) ids[n] = id;
    const g = held(uniforms(next, count, 0.5, 2), dtype);
    const opts = ignoreIndex === undefined ? {} : { ignoreIndex };
    const d = backward(g, ids, dtype, opts);
    for (let n = 0; n < N; n++) {
      if (ids[n] === id) expect(d[n] === 0).toBe(true);
      else expect(d[n]).toBe(g[ids[n]]);
    }
  });

  it.each(DTYPES)('%s: the sums do not depend on how the sequences are interleaved (packed and interleaved ids give bit-identical sums)', (dtype) => {
    const count = 24;
    const perSequence = Array.from({ length: count }, () => Array.from(logprobs(next, 1 + Math.floor(next() * 200), dtype)));
    // Packed: sequence 0's tokens, then sequence 1's, ... (with a few uncounted tokens between).
    const packedIds: number[] = [];
    const packedLp: number[] = [];
    perSequence.forEach((values, s) => {
      for (const v of values) {
        packedIds.push(s);
        packedLp.push(v);
      }
      packedIds.push(-1);
      packedLp.push(-3);
    });
    // Interleaved: a random merge that keeps each sequence's own token order.
    const interIds: number[] = [];
    const interLp: number[] = [];
    const cursor = new Array<number>(count).fill(0);
    let left = perSequence.reduce((a, v) => a + v.length, 0);
    while (left > 0) {
      const s = Math.floor(next() * count);
      if (cursor[s] >= perSequence[s].length) continue;
      interIds.push(s);
      interLp.push(perSequence[s][cursor[s]++]);
      left--;
      if (next() < 0.05) {
        interIds.push(-100);
        interLp.push(-5);
      }
    }
    const counted = interIds.filter((s) => s >= 0);
    const switches = counted.filter((s, i) => i > 0 && s !== counted[i - 1]).length;
    expect(switches).toBeGreaterThan(10 * count); // really interleaved (packed has count - 1)
    const packed = forward(packedLp, packedIds, count, dtype);
    const interleaved = forward(interLp, interIds, count, dtype);
    expect(interleaved).toEqual(packed);
  });
});

describe('sequenceLogprobsBackward', () => {
  const { next } = seeded('sequenceLogprobs backward');

  it.each(DTYPES)('%s: dTokens[n] is exactly g[sequenceIds[n]], with the shape [N] and the dtype of g', (dtype) => {
    const count = 30;
    const N = 500;
    const ids = integers(next, N, -1, count);
    const g = held(uniforms(next, count, -3, 3), dtype);
    const d = osp.scope(() => {
      const out = osp.sequenceLogprobsBackward(floats(g, dtype), ints(ids));
      expect(out.shape).toEqual([N]);
      expect(out.dtype).toBe(dtype);
      return read(out);
    });
    expect(d).toEqual(Float64Array.from(ids, (s) => (s === -1 ? 0 : g[s])));
  });

  // L(lp) = sum_s g[s] sequenceLogprobs(lp)[s] is linear in lp, so central differences are exact up
  // to rounding; with lp on a grid of 2^-20 (sums of up to 600 of them exact in f64) and h = 2^-4,
  // there is no rounding at all: the difference must equal the gradient exactly (gradcheck with rel 0,
  // no Richardson step). gradcheck differences L per sequence, sum_s g[s] (out+[s] - out-[s]), also
  // exact.
  it('f64: the gradient equals central finite differences of sum(g * sequenceLogprobs) exactly', () => {
    const count = 12;
    const N = 600;
    const H = 2 ** -4;
    const ids = integers(next, N, -1, count);
    for (let n = 0; n < N; n += 50) ids[n] = -100;
    const lp = Float64Array.from(integers(next, N, -20 * 2 ** 20, 0), (k) => k / 2 ** 20);
    const g = uniforms(next, count, -3, 3);
    const analytic = backward(g, ids, 'f64');
    gradcheck('dTokens', analytic, (v) => forward(v, ids, count, 'f64'), lp, {
      weights: g,
      entries: sampleEntries(next, N, 40, [0, N - 1]),
      step: H,
      richardson: false,
      rel: 0,
      label: (n) => `[${n}] (id ${ids[n]})`,
    });
  });
});

describe('sequenceLogprobs value checks', () => {
  const { next } = seeded('sequenceLogprobs values');
  const count = 5;
  type Op = 'sequenceLogprobs' | 'sequenceLogprobsBackward';
  const OPS: Op[] = ['sequenceLogprobs', 'sequenceLogprobsBackward'];

  function run(op: Op, ids: number[], dtype: FloatType, opts: osp.IgnoreOptions = {}) {
    return caught(() =>
      op === 'sequenceLogprobs'
        ? forward(logprobs(next, ids.length, dtype), ids, count, dtype, opts)
        : backward(held(uniforms(next, count, -1, 1), dtype), ids, dtype, opts),
    );
  }

  const badIds = DTYPES.flatMap((dtype) => OPS.flatMap((op) => [count, count + 100, -2, -99].map((bad) => [op, dtype, bad] as const)));
  it.each(badIds)('%s %s: sequence id %i (not in [0, count), not -1 or ignoreIndex) is a RangeError naming `sequenceIds[i] = value`', (op, dtype, bad) => {
    const ids = Array.from(integers(next, 40, -1, count));
    ids[17] = bad;
    const err = run(op, ids, dtype);
    expect(err?.errorClass).toBe('RangeError');
    expect(err?.message).toContain(`sequenceIds[17] = ${bad} `);
  });

  it.each(DTYPES.flatMap((dtype) => OPS.map((op) => [op, dtype] as const)))('%s %s: with a custom ignoreIndex, id -100 is out of range (RangeError naming it)', (op, dtype) => {
    const ids = Array.from(integers(next, 40, -1, count));
    ids[9] = -100;
    const err = run(op, ids, dtype, { ignoreIndex: -7 });
    expect(err?.errorClass).toBe('RangeError');
    expect(err?.message).toContain('sequenceIds[9] = -100 ');
  });

  it.each(DTYPES)('%s: a NaN token log-prob is a RangeError naming tokenLogprobs[i]', (dtype) => {
    const ids = Array.from(integers(next, 40, 0, count));
    const lp = logprobs(next, ids.length, dtype);
    lp[23] = NaN;
    const err = caught(() => forward(lp, ids, count, dtype));
    expect(err?.errorClass).toBe('RangeError');
    expect(err?.message).toMatch(/tokenLogprobs\[23\]/);
  });
});
