// The unfused token log-probs path kept for the benches: logSoftmax, gather, gatherBackward,
// logSoftmaxBackward and their compositions tokenLogprobsUnfused / tokenLogprobsBackwardUnfused, on
// the cpu. Checked against plain-TS f64, central finite differences, and the fused op.
import * as osp from '../src';
import { caught } from './helpers/errors';
import { normals, seeded } from './helpers/random';
import { refLogSoftmax } from './helpers/reference';
import { FloatType, DTYPES, held, floats, ints, read, expectWithin, gradcheck, sampleEntries } from './helpers/tensors';
import { gradientTol, logprobTol, randomLogits, softmaxTerms } from './helpers/logits';

/** Relative tolerance: f64 to 1e-12, f32 (fast exp, f32 sums) to 1e-5. */
const REL: Record<FloatType, number> = { f64: 1e-12, f32: 1e-5 };

describe('logSoftmax', () => {
  const { next } = seeded('unfused logSoftmax');
  const SHAPES: [number, number][] = [
    [1, 1],
    [7, 2],
    [7, 97],
    [64, 1000],
    [3, 4099],
  ];

  it.each(SHAPES)('f64 [%i, %i]: every row of exp(logSoftmax) sums to 1 (its logsumexp is 0 to 1e-12)', (N, V) => {
    const x = normals(next, N * V, 3);
    const y = osp.scope(() => {
      const out = osp.logSoftmax(floats(x, [N, V], 'f64'));
      expect(out.shape).toEqual([N, V]);
      expect(out.dtype).toBe('f64');
      return read(out);
    });
    const lse: number[] = [];
    for (let n = 0; n < N; n++) {
      const r = y.slice(n * V, (n + 1) * V);
      const m = Math.max(...r);
      lse.push(m + Math.log(r.reduce((s, v) => s + Math.exp(v - m), 0)));
    }
    expectWithin(lse, new Array<number>(N).fill(0), () => 1e-12, 'row logsumexp');
  });

  it.each(SHAPES)('f64 [%i, %i]: entries equal x - logsumexp(row) from the plain-TS reference to 1e-12', (N, V) => {
    const x = normals(next, N * V, 3);
    const y = osp.scope(() => read(osp.logSoftmax(floats(x, [N, V], 'f64'))));
    const want: number[] = [];
    for (let n = 0; n < N; n++) want.push(...refLogSoftmax(x.subarray(n * V, (n + 1) * V)));
    expectWithin(y, want, logprobTol(REL.f64, want), 'logSoftmax f64');
  });

  it.each(SHAPES)('f32 [%i, %i]: entries are within 1e-5 relative of the f64 op (absolute 1e-5 for |y| < 1)', (N, V) => {
    const x = held(normals(next, N * V, 3), 'f32');
    const got = osp.scope(() => read(osp.logSoftmax(floats(x, [N, V], 'f32'))));
    const want = osp.scope(() => read(osp.logSoftmax(floats(x, [N, V], 'f64'))));
    expectWithin(got, want, logprobTol(REL.f32, want), 'logSoftmax f32');
  });

  it.each(DTYPES)('%s: NaN in row 2 is a RangeError naming "logits row 2"', (dtype) => {
    const x = normals(next, 4 * 33, 1);
    x[2 * 33 + Math.floor(next() * 33)] = NaN;
    const err = caught(() => osp.scope(() => osp.logSoftmax(floats(x, [4, 33], dtype))));
    expect(err?.errorClass).toBe('RangeError');
    expect(err?.message).toMatch(/logits row 2\b/);
  });
});

describe('logSoftmaxBackward (f64) against central finite differences', () => {
  const { next } = seeded('unfused logSoftmaxBackward finite differences');
  // L = sum(G * logSoftmax(x)), so dL/dx_v = G_v - p_v S with p = softmax(x), S = rowsum(G) (what
  // logSoftmaxBackward(G, y) computes from y = logSoftmax(x)). Step h = 2^-12 (exact in binary).
  // Truncation: h^2/6 |L'''| with L''' = -S p_v (1 - p_v)(1 - 2 p_v), so <= 1e-8 |p_v S|: small
  // next to the term p_v S, but not next to the entry where G_v and p_v S nearly cancel. Rounding:
  // each y entry is off by ~1 ulp (~1e-15) and sum(G (y+ - y-)) adds V of them, ~ sqrt(V) 1e-15 / 2h
  // ~ 1e-10 for V = 1000.
  // Rule: |fd - analytic| <= 1e-6 * max(|fd|, |analytic|, |G_v|, |p_v S|, 1e-3): relative 1e-6 to the
  // larger of the entry and the two terms that form it, and at least 1e-9 absolute.
  // gradcheck takes the difference of L element by element, sum(G (y+ - y-)): the unchanged rows
  // contribute exactly 0 unless rows leak into each other. No Richardson step: the budget above is
  // the plain difference's. 20 distinct entries (or all).
  const H = 2 ** -12;
  const SAMPLES = 20;
  const SHAPES: [number, number][] = [
    [1, 1],
    [7, 2],
    [7, 97],
    [16, 1000],
  ];

  it.each(SHAPES)('[%i, %i]: sampled entries of dx match differences of sum(G * logSoftmax(x)) to 1e-6', (N, V) => {
    const x = normals(next, N * V, 2);
    const G = normals(next, N * V, 1);
    osp.scope(() => {
      const analytic = read(osp.logSoftmaxBackward(floats(G, [N, V], 'f64'), osp.logSoftmax(floats(x, [N, V], 'f64'))));
      const logSoftmax = (xx: Float64Array) => osp.scope(() => read(osp.logSoftmax(floats(xx, [N, V], 'f64'))));
      gradcheck('dx', analytic, logSoftmax, x, {
        weights: G,
        entries: sampleEntries(next, N * V, SAMPLES),
        step: H,
        richardson: false,
        floor: (i) => Math.max(Math.abs(G[i]), Math.abs(G[i] - analytic[i]), 1e-3), // |G_v|, |p_v S|, 1e-3
        label: (i) => `[${Math.floor(i / V)}, ${i % V}]`,
      });
    });
  });
});

describe('gather and gatherBackward', () => {
  const { next } = seeded('unfused gather');
  const N = 12;
  const V = 37;

  it.each(DTYPES)('%s: gather picks values[n, t_n] exactly, and 0 on rows whose target is ignoreIndex', (dtype) => {
    const p = randomLogits(next, N, V, dtype, { scale: 3, ignored: [2, 9] });
    const got = osp.scope(() => {
      const out = osp.gather(floats(p.x, [N, V], dtype), ints(p.targets));
      expect(out.shape).toEqual([N]);
      expect(out.dtype).toBe(dtype);
      return read(out);
    });
    const want = Float64Array.from(p.targets, (t, n) => (t === -100 ? 0 : p.x[n * V + t]));
    expect(got).toEqual(want);
  });

  it.each(DTYPES.flatMap((dtype) => [-100, -1, 4].map((ignoreIndex) => [dtype, ignoreIndex] as const)))(
    '%s: gatherBackward (ignoreIndex %i) puts g[n] at (n, t_n), zeros elsewhere, and zero rows for ignored targets',
    (dtype, ignoreIndex) => {
      const p = randomLogits(next, N, V, dtype, { scale: 3 });
      for (let n = 0; n < N; n++) if (p.targets[n] === ignoreIndex) p.targets[n] = ignoreIndex + 1;
      p.targets[0] = ignoreIndex;
      p.targets[7] = ignoreIndex;
      const got = osp.scope(() => {
        const out = osp.gatherBackward(floats(p.g, [N], dtype), ints(p.targets), V, { ignoreIndex });
        expect(out.shape).toEqual([N, V]);
        expect(out.dtype).toBe(dtype);
        return read(out);
      });
      const want = new Float64Array(N * V);
      for (let n = 0; n < N; n++) if (p.targets[n] !== ignoreIndex) want[n * V + p.targets[n]] = p.g[n];
      expect(got).toEqual(want);
    },
  );

  it.each(DTYPES.flatMap((dtype) => [V, -1].map((bad) => [dtype, bad] as const)))(
    '%s: gather of target %i (outside [0, V), not ignoreIndex) is a RangeError naming `targets[i] = value`',
    (dtype, bad) => {
      const p = randomLogits(next, N, V, dtype, { scale: 3 });
      p.targets[5] = bad;
      const err = caught(() => osp.scope(() => osp.gather(floats(p.x, [N, V], dtype), ints(p.targets))));
      expect(err?.errorClass).toBe('RangeError');
      expect(err?.message).toContain(`targets[5] = ${bad} `);
    },
  );

  it.each(DTYPES.flatMap((dtype) => [V, -1].map((bad) => [dtype, bad] as const)))(
    '%s: gatherBackward of target %i (outside [0, vocab)) is a RangeError naming `targets[i] = value`',
    (dtype, bad) => {
      const p = randomLogits(next, N, V, dtype, { scale: 3 });
      p.targets[3] = bad;
      const err = caught(() => osp.scope(() => osp.gatherBackward(floats(p.g, [N], dtype), ints(p.targets), V)));
      expect(err?.errorClass).toBe('RangeError');
      expect(err?.message).toContain(`targets[3] = ${bad} `);
    },
  );
});

describe('the unfused composition against the fused op', () => {
  const { next } = seeded('unfused vs fused');
  // Rows 1 and 5 (where present) are ignored, so both paths' ignore handling is compared too.
  const CASES = DTYPES.flatMap((dtype) =>
    (
      [
        [1, 1],
        [7, 2],
        [64, 97],
        [16, 1001],
        [4, 5000],
      ] as [number, number][]
    ).map(([N, V]) => [dtype, N, V] as const),
  );

  it.each(CASES)('%s [%i, %i]: tokenLogprobsUnfused equals tokenLogprobs (f64 1e-12, f32 1e-5 relative; absolute below |1|)', (dtype, N, V) => {
    const p = randomLogits(next, N, V, dtype, { scale: 3, ignored: [1, 5] });
    const [unfused, fused] = osp.scope(() => {
      const logits = floats(p.x, [N, V], dtype);
      const targets = ints(p.targets);
      const u = osp.reference.tokenLogprobsUnfused(logits, targets);
      expect(u.dtype).toBe(dtype);
      expect(u.shape).toEqual([N]);
      return [read(u), read(osp.tokenLogprobs(logits, targets))];
    });
    expectWithin(unfused, fused, logprobTol(REL[dtype], fused), 'unfused log-probs');
  });

  it.each(CASES)('%s [%i, %i]: tokenLogprobsBackwardUnfused equals tokenLogprobsBackward (f64 1e-12, f32 1e-5 relative to max(|want|, |g p|))', (dtype, N, V) => {
    const p = randomLogits(next, N, V, dtype, { scale: 3, ignored: [1, 5] });
    const [unfused, fused] = osp.scope(() => {
      const logits = floats(p.x, [N, V], dtype);
      const targets = ints(p.targets);
      const g = floats(p.g, [N], dtype);
      const u = osp.reference.tokenLogprobsBackwardUnfused(logits, targets, g);
      expect(u.dtype).toBe(dtype);
      expect(u.shape).toEqual([N, V]);
      return [read(u), read(osp.tokenLogprobsBackward(logits, targets, g))];
    });
    expectWithin(unfused, fused, gradientTol(REL[dtype], fused, softmaxTerms(fused, p)), 'unfused gradient');
  });

  it.each(DTYPES)('%s: a custom ignoreIndex reaches the unfused forward and backward like the fused ones', (dtype) => {
    const N = 10;
    const V = 41;
    const ignoreIndex = 3; // an in-range column: rows targeting it are ignored, not gathered
    const p = randomLogits(next, N, V, dtype, { scale: 3 });
    for (let n = 0; n < N; n++) if (p.targets[n] === ignoreIndex) p.targets[n] = 4;
    p.targets[2] = ignoreIndex;
    p.targets[8] = ignoreIndex;
    const r = osp.scope(() => {
      const logits = floats(p.x, [N, V], dtype);
      const targets = ints(p.targets);
      const g = floats(p.g, [N], dtype);
      const opts = { ignoreIndex };
      return {
        uf: read(osp.reference.tokenLogprobsUnfused(logits, targets, opts)),
        ff: read(osp.tokenLogprobs(logits, targets, opts)),
        ub: read(osp.reference.tokenLogprobsBackwardUnfused(logits, targets, g, opts)),
        fb: read(osp.tokenLogprobsBackward(logits, targets, g, opts)),
      };
    });
    expect([r.uf[2], r.uf[8]].every((v) => v === 0)).toBe(true);
    expect([...r.ub.slice(2 * V, 3 * V), ...r.ub.slice(8 * V, 9 * V)].every((v) => v === 0)).toBe(true);
    expectWithin(r.uf, r.ff, logprobTol(REL[dtype], r.ff), 'unfused log-probs');
    expectWithin(r.ub, r.fb, gradientTol(REL[dtype], r.fb, softmaxTerms(r.fb, p)), 'unfused gradient');
  });
});
