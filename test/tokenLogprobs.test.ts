// The fused token log-probs op on the cpu: tokenLogprobs(logits, targets) = log_softmax(logits)[n, t_n]
// and its backward g[n] * (onehot(t_n) - softmax(logits[n])). f64 is checked against plain-TS f64
// (test/helpers/reference.ts) and central finite differences; f32 (the vectorised path) against
// the f64 op on the same held values; then the edge cases and the value checks.
import { spawnSync } from 'child_process';
import path from 'path';

import * as osp from '../src';
import { caught } from './helpers/errors';
import { seeded, uniforms } from './helpers/random';
import { refLogSoftmax, refTokenLogprob } from './helpers/reference';
import { LogitsProblem, gradientTol, logprobTol, randomLogits, row, softmaxTerms } from './helpers/logits';
import { FloatType, DTYPES, held, floats, ints, read, expectWithin, gradcheck, sampleEntries } from './helpers/tensors';

/** Unit roundoff of each dtype. */
const EPS: Record<FloatType, number> = { f64: 2 ** -53, f32: 2 ** -24 };
/** Relative tolerance against the f64 reference: f64 to 1e-12, f32 (fast exp, f32 sums) to 1e-5. */
const REL: Record<FloatType, number> = { f64: 1e-12, f32: 1e-5 };

/** The f64 reference log-probs (0 on ignored rows). */
function refForward(p: LogitsProblem, ignoreIndex = -100): number[] {
  return Array.from({ length: p.N }, (_, n) => (p.targets[n] === ignoreIndex ? 0 : refTokenLogprob(row(p, n), p.targets[n])));
}

/**
 * The f64 reference gradient want[n, v] = g[n] * (onehot(t_n)[v] - p[n, v]) together with the size
 * of its softmax term |g[n] p[n, v]| (0 on ignored rows).
 */
function refBackward(p: LogitsProblem, ignoreIndex = -100): { want: number[]; softmaxTerm: number[] } {
  const want = new Array<number>(p.N * p.V).fill(0);
  const softmaxTerm = new Array<number>(p.N * p.V).fill(0);
  for (let n = 0; n < p.N; n++) {
    if (p.targets[n] === ignoreIndex) continue;
    const sm = refLogSoftmax(row(p, n)).map(Math.exp);
    for (let v = 0; v < p.V; v++) {
      want[n * p.V + v] = p.g[n] * ((v === p.targets[n] ? 1 : 0) - sm[v]);
      softmaxTerm[n * p.V + v] = Math.abs(p.g[n] * sm[v]);
    }
  }
  return { want, softmaxTerm };
}

/** Fails naming the first element that is not exactly 0 (either sign). */
function expectAllZero(got: ArrayLike<number>, what: string): void {
  const bad = Array.from(got).findIndex((v) => v !== 0);
  if (bad >= 0) throw new Error(`${what}: element [${bad}] is ${got[bad]}; expected 0`);
}

const forwardOf = (p: LogitsProblem, dtype: FloatType, opts: osp.IgnoreOptions = {}) =>
  osp.scope(() => read(osp.tokenLogprobs(floats(p.x, [p.N, p.V], dtype), ints(p.targets), opts)));

const backwardOf = (p: LogitsProblem, dtype: FloatType, opts: osp.IgnoreOptions = {}) =>
  osp.scope(() => read(osp.tokenLogprobsBackward(floats(p.x, [p.N, p.V], dtype), ints(p.targets), floats(p.g, [p.N], dtype), opts)));

const GRID: [number, number][] = [1, 7, 64].flatMap((N) => [1, 2, 97, 1000].map((V) => [N, V] as [number, number]));

describe('tokenLogprobs in f64 against the plain-TS f64 reference', () => {
  const { next } = seeded('tokenLogprobs f64 forward');

  it.each(GRID)('N = %i, V = %i: each row gives logits[n, t_n] - logsumexp(logits[n]) to 1e-12', (N, V) => {
    const p = randomLogits(next, N, V, 'f64');
    const got = osp.scope(() => {
      const out = osp.tokenLogprobs(floats(p.x, [N, V], 'f64'), ints(p.targets));
      expect(out.shape).toEqual([N]);
      expect(out.dtype).toBe('f64');
      return read(out);
    });
    const want = refForward(p);
    expectWithin(got, want, logprobTol(REL.f64, want), 'tokenLogprobs f64');
  });
});

describe('tokenLogprobsBackward in f64 against central finite differences', () => {
  const { next } = seeded('tokenLogprobs finite differences');
  // Step h = 2^-12 (~2.4e-4; exact in binary, so x +- h are exact). Per entry the third derivative of
  // g * log_softmax is bounded by the first (|f'''/f'| <= 1), so truncation is <= h^2/6 ~ 1e-8
  // relative. Rounding: each forward is off by a few ulps of |log-prob| (~1e-14), i.e. ~3e-11 |g|
  // after dividing by 2h. (With h ~ 1e-5 that noise is ~1e-9 |g|: measured errors of 1e-3 relative
  // on entries of ~3e-8 with a floor of 1e-7, so h ~ 1e-5 cannot hold 1e-6 on small entries.)
  // Rule: |fd - analytic| <= 1e-6 * max(|fd|, |analytic|, 1e-4 * |g[n]|), i.e. relative 1e-6 for
  // entries down to softmax probability 1e-4, absolute 1e-10 |g[n]| below.
  // gradcheck differences L = sum_n g[n] tokenLogprobs[n] row by row, sum_n g[n] (lp+[n] - lp-[n]):
  // the other rows' terms are exactly 0 unless perturbing one row changes another, which would then
  // show up as an error. No Richardson step: the budget above is the plain difference's. 20 distinct
  // entries (or all).
  const H = 2 ** -12;
  const SAMPLES = 20;

  it.each(GRID)('N = %i, V = %i: sampled entries of dlogits match differences of sum(g * tokenLogprobs) to 1e-6', (N, V) => {
    const p = randomLogits(next, N, V, 'f64');
    osp.scope(() => {
      const targets = ints(p.targets);
      const analytic = read(osp.tokenLogprobsBackward(floats(p.x, [N, V], 'f64'), targets, floats(p.g, [N], 'f64')));
      const logprobs = (x: Float64Array) => osp.scope(() => read(osp.tokenLogprobs(floats(x, [N, V], 'f64'), targets)));

      // Entries: the target entry of a random row, the largest entry of a random row, then random ones.
      const r0 = Math.floor(next() * N);
      const r1 = Math.floor(next() * N);
      const r1row = Array.from(row(p, r1));
      const first = [r0 * V + p.targets[r0], r1 * V + r1row.indexOf(Math.max(...r1row))];
      gradcheck('dlogits', analytic, logprobs, p.x, {
        weights: p.g,
        entries: sampleEntries(next, N * V, SAMPLES, first),
        step: H,
        richardson: false,
        floor: (i) => 1e-4 * Math.abs(p.g[Math.floor(i / V)]),
        label: (i) => `[${Math.floor(i / V)}, ${i % V}]`,
      });
    });
  });
});

describe('tokenLogprobs edge cases', () => {
  const { next } = seeded('tokenLogprobs edge cases');

  it.each(DTYPES)('%s: rows with target -100 (the default ignoreIndex) give 0 and an all-zero gradient row; other rows are unaffected', (dtype) => {
    const N = 9;
    const V = 101;
    const p = randomLogits(next, N, V, dtype);
    const ignored = [0, 4, 8];
    for (const n of ignored) p.targets[n] = -100;
    const got = forwardOf(p, dtype);
    const grad = backwardOf(p, dtype);
    for (const n of ignored) {
      expect(got[n] === 0).toBe(true);
      expectAllZero(grad.slice(n * V, (n + 1) * V), `gradient row ${n}`);
    }
    const want = refForward(p);
    expectWithin(got, want, logprobTol(REL[dtype], want), 'log-probs');
    const ref = refBackward(p);
    expectWithin(grad, ref.want, gradientTol(REL[dtype], ref.want, ref.softmaxTerm), 'gradient');
  });

  it.each(DTYPES.flatMap((dtype) => [-1, 5].map((ignoreIndex) => [dtype, ignoreIndex] as const)))(
    '%s: a custom ignoreIndex (%i) ignores the rows with that target: 0 forward, all-zero gradient row',
    (dtype, ignoreIndex) => {
      const N = 8;
      const V = 33;
      const p = randomLogits(next, N, V, dtype);
      for (let n = 0; n < N; n++) if (p.targets[n] === ignoreIndex) p.targets[n] = ignoreIndex + 1; // only the rows chosen below
      const ignored = [1, 6];
      for (const n of ignored) p.targets[n] = ignoreIndex;
      const got = forwardOf(p, dtype, { ignoreIndex });
      const grad = backwardOf(p, dtype, { ignoreIndex });
      for (const n of ignored) {
        expect(got[n] === 0).toBe(true);
        expectAllZero(grad.slice(n * V, (n + 1) * V), `gradient row ${n}`);
      }
      const want = refForward(p, ignoreIndex);
      expectWithin(got, want, logprobTol(REL[dtype], want), 'log-probs');
      const ref = refBackward(p, ignoreIndex);
      expectWithin(grad, ref.want, gradientTol(REL[dtype], ref.want, ref.softmaxTerm), 'gradient');
    },
  );

  // Logits of +-1e4: exp of them overflows, so this pins the max-subtracted evaluation. The one
  // rounding of lse = m + log(s) to the dtype costs up to ulp(1e4)/2 (9e-13 in f64, 5e-4 in f32), so
  // the tolerance adds 8 eps max|logit| (absolute for the log-probs; relative, on the exponent, for
  // the gradient) to the usual one.
  it.each(DTYPES)('%s: logits of mixed +-1e4 stay finite and match the reference', (dtype) => {
    const N = 32;
    const V = 97;
    const p = randomLogits(next, N, V, dtype);
    p.x = held(
      p.x.map((v) => (next() < 0.5 ? -1e4 : 1e4) + v / 2),
      dtype,
    );
    const maxAbs = Math.max(...Array.from(p.x, Math.abs));
    const extra = 8 * EPS[dtype] * maxAbs;
    const got = forwardOf(p, dtype);
    const grad = backwardOf(p, dtype);
    expect(got.every(Number.isFinite)).toBe(true);
    expect(grad.every(Number.isFinite)).toBe(true);
    const want = refForward(p);
    expectWithin(got, want, (i) => REL[dtype] * Math.abs(want[i]) + extra, 'log-probs');
    const ref = refBackward(p);
    expectWithin(grad, ref.want, (i) => (REL[dtype] + extra) * Math.max(Math.abs(ref.want[i]), ref.softmaxTerm[i]), 'gradient');
  });

  it.each(DTYPES)('%s: a row of equal logits gives -log(V) and the gradient g * (onehot - 1/V)', (dtype) => {
    const N = 6;
    const V = 1001;
    const p = randomLogits(next, N, V, dtype);
    const level = held(uniforms(next, N, -20, 20), dtype);
    for (let n = 0; n < N; n++) row(p, n).fill(level[n]);
    const got = forwardOf(p, dtype);
    const want = new Array<number>(N).fill(-Math.log(V));
    expectWithin(got, want, logprobTol(REL[dtype], want), 'log-probs');
    const grad = backwardOf(p, dtype);
    const wantGrad = Array.from({ length: N * V }, (_, i) => {
      const n = Math.floor(i / V);
      return p.g[n] * ((i % V === p.targets[n] ? 1 : 0) - 1 / V);
    });
    const softmaxTerm = Array.from({ length: N * V }, (_, i) => Math.abs(p.g[Math.floor(i / V)]) / V);
    expectWithin(grad, wantGrad, gradientTol(REL[dtype], wantGrad, softmaxTerm), 'gradient');
  });

  it.each(DTYPES)('%s: one-hot-like rows (one logit 50 above the rest) match the reference, target on or off the peak', (dtype) => {
    const N = 16;
    const V = 257;
    const p = randomLogits(next, N, V, dtype, { scale: 1 });
    for (let n = 0; n < N; n++) {
      const peak = Math.floor(next() * V);
      p.x[n * V + peak] = held([p.x[n * V + peak] + 50], dtype)[0];
      if (n % 2 === 0) p.targets[n] = peak; // even rows: the target is the peak; odd rows: another column
      else if (p.targets[n] === peak) p.targets[n] = (peak + 1) % V;
    }
    const got = forwardOf(p, dtype);
    const want = refForward(p);
    expectWithin(got, want, logprobTol(REL[dtype], want), 'log-probs');
    const ref = refBackward(p);
    expectWithin(backwardOf(p, dtype), ref.want, gradientTol(REL[dtype], ref.want, ref.softmaxTerm), 'gradient');
  });

  // Masked vocabulary: -Infinity logits (never the target) must act as if the columns were absent.
  // 'leading block' masks the first 2100 columns, a whole 2048-column chunk of the f32 path.
  const maskCases = DTYPES.flatMap((dtype) => [
    [dtype, 'random columns', 1001] as const,
    [dtype, 'a leading block of 2100 columns', 4500] as const,
  ]);
  it.each(maskCases)('%s: -Infinity logits in %s (V = %i) give the same log-prob and gradient as dropping them, and 0 gradient there', (dtype, how, V) => {
    const N = 5;
    const p = randomLogits(next, N, V, dtype);
    for (let n = 0; n < N; n++) {
      const masked = new Set<number>();
      if (how === 'random columns') {
        for (let k = 0; k < V / 3; k++) masked.add(Math.floor(next() * V));
        masked.add(0);
        masked.add(V - 1);
      } else {
        for (let v = 0; v < 2100; v++) masked.add(v);
      }
      let t = how === 'random columns' ? p.targets[n] : 2100 + Math.floor(next() * (V - 2100));
      while (masked.has(t)) t = Math.floor(next() * V); // the target is never masked
      const x = row(p, n);
      const kept = Array.from({ length: V }, (_, v) => v).filter((v) => !masked.has(v));
      const dropped: LogitsProblem = { N: 1, V: kept.length, x: Float64Array.from(kept, (v) => x[v]), targets: Int32Array.of(kept.indexOf(t)), g: p.g.slice(n, n + 1) };
      const one: LogitsProblem = { N: 1, V, x: Float64Array.from(x, (val, v) => (masked.has(v) ? -Infinity : val)), targets: Int32Array.of(t), g: dropped.g };

      const want = forwardOf(dropped, dtype);
      expectWithin(forwardOf(one, dtype), want, logprobTol(REL[dtype], want), `row ${n} log-prob`);

      const grad = backwardOf(one, dtype);
      expectAllZero(Array.from(masked, (v) => grad[v]), `row ${n} gradient at masked columns`);
      const wantKept = backwardOf(dropped, dtype);
      expectWithin(
        kept.map((v) => grad[v]),
        wantKept,
        gradientTol(REL[dtype], wantKept, softmaxTerms(wantKept, dropped)),
        `row ${n} gradient at kept columns`,
      );
    }
  });
});

describe('tokenLogprobs in f32 (vectorised path) against the f64 op on the same values', () => {
  const { next } = seeded('tokenLogprobs f32 vs f64');
  // Both dtypes see the same (f32-held) logits and g, so only the f32 arithmetic is measured.
  // Shapes: V not a multiple of the 8-wide vectors (97, 1001, 1), V spanning several 2048-column
  // chunks (4099, 32000).
  const SHAPES: [number, number][] = [
    [64, 97],
    [64, 1001],
    [4, 32000],
    [16, 8],
    [7, 1],
    [7, 2],
    [9, 4099],
  ];

  it.each(SHAPES)('N = %i, V = %i: forward is within 1e-5 relative of f64 (absolute 1e-5 for |log-prob| < 1)', (N, V) => {
    const p = randomLogits(next, N, V, 'f32', { scale: 3 });
    const got = osp.scope(() => {
      const out = osp.tokenLogprobs(floats(p.x, [N, V], 'f32'), ints(p.targets));
      expect(out.dtype).toBe('f32');
      return read(out);
    });
    const want = forwardOf(p, 'f64');
    expectWithin(got, want, logprobTol(REL.f32, want), 'f32 log-probs');
  });

  it.each(SHAPES)('N = %i, V = %i: backward is within 1e-5 relative of f64 (relative to the softmax term g p for the target entry)', (N, V) => {
    const p = randomLogits(next, N, V, 'f32', { scale: 3 });
    const got = osp.scope(() => {
      const out = osp.tokenLogprobsBackward(floats(p.x, [N, V], 'f32'), ints(p.targets), floats(p.g, [N], 'f32'));
      expect(out.dtype).toBe('f32');
      expect(out.shape).toEqual([N, V]);
      return read(out);
    });
    const want = backwardOf(p, 'f64');
    expectWithin(got, want, gradientTol(REL.f32, want, softmaxTerms(want, p)), 'f32 gradient');
  });
});

describe('tokenLogprobsBackward with inPlace', () => {
  const { next } = seeded('tokenLogprobs inPlace');

  it.each([
    ['f64', 64, 1000],
    ['f32', 64, 1001],
    ['f32', 3, 5000],
  ] as const)('%s [%i, %i]: returns the logits tensor itself, now holding exactly the out-of-place gradient', (dtype, N, V) => {
    const p = randomLogits(next, N, V, dtype);
    p.targets[1] = -100; // an ignored row is overwritten with zeros too
    osp.scope(() => {
      const targets = ints(p.targets);
      const g = floats(p.g, [N], dtype);
      const outOfPlace = read(osp.tokenLogprobsBackward(floats(p.x, [N, V], dtype), targets, g));
      const logits = floats(p.x, [N, V], dtype);
      const result = osp.tokenLogprobsBackward(logits, targets, g, { inPlace: true });
      expect(result).toBe(logits);
      expect(logits.shape).toEqual([N, V]);
      expect(logits.dtype).toBe(dtype);
      const inPlace = read(logits);
      expect(inPlace.length).toBe(N * V);
      const differs = inPlace.findIndex((v, i) => !Object.is(v, outOfPlace[i])); // bit for bit (NaN, -0 included)
      if (differs >= 0) throw new Error(`in place [${differs}] = ${inPlace[differs]}; out of place ${outOfPlace[differs]}`);
    });
  });
});

describe('tokenLogprobs value checks', () => {
  const { next } = seeded('tokenLogprobs values');
  const N = 8;
  const V = 1001;
  type Op = 'tokenLogprobs' | 'tokenLogprobsBackward';
  const OPS: Op[] = ['tokenLogprobs', 'tokenLogprobsBackward'];
  const cases = DTYPES.flatMap((dtype) => OPS.map((op) => [op, dtype] as const));

  function run(op: Op, p: LogitsProblem, dtype: FloatType, opts: osp.IgnoreOptions = {}) {
    return caught(() =>
      osp.scope(() => {
        const logits = floats(p.x, [p.N, p.V], dtype);
        return op === 'tokenLogprobs'
          ? osp.tokenLogprobs(logits, ints(p.targets), opts)
          : osp.tokenLogprobsBackward(logits, ints(p.targets), floats(p.g, [p.N], dtype), opts);
      }),
    );
  }

  it.each(cases.flatMap(([op, dtype]) => (['first', 'a random', 'last'] as const).map((where) => [op, dtype, where] as const)))(
    '%s %s: NaN in %s column of row 3 is a RangeError naming "logits row 3"',
    (op, dtype, where) => {
      const p = randomLogits(next, N, V, dtype);
      const col = where === 'first' ? 0 : where === 'last' ? V - 1 : Math.floor(next() * V);
      p.x[3 * V + col] = NaN;
      const err = run(op, p, dtype);
      expect(err?.errorClass).toBe('RangeError');
      expect(err?.message).toMatch(/logits row 3\b/);
    },
  );

  it.each(cases)('%s %s: +Infinity in row 5 is a RangeError naming "logits row 5"', (op, dtype) => {
    const p = randomLogits(next, N, V, dtype);
    p.x[5 * V + Math.floor(next() * V)] = Infinity;
    const err = run(op, p, dtype);
    expect(err?.errorClass).toBe('RangeError');
    expect(err?.message).toMatch(/logits row 5\b/);
  });

  it.each(cases)('%s %s: a row of all -Infinity (no finite logit) is a RangeError naming the row', (op, dtype) => {
    const p = randomLogits(next, N, V, dtype);
    row(p, 2).fill(-Infinity);
    const err = run(op, p, dtype);
    expect(err?.errorClass).toBe('RangeError');
    expect(err?.message).toMatch(/logits row 2\b/);
  });

  it.each(cases)('%s %s: with NaN in rows 3 and 7 the error names row 3, the first', (op, dtype) => {
    const p = randomLogits(next, N, V, dtype);
    p.x[7 * V + Math.floor(next() * V)] = NaN;
    p.x[3 * V + Math.floor(next() * V)] = NaN;
    const err = run(op, p, dtype);
    expect(err?.errorClass).toBe('RangeError');
    expect(err?.message).toMatch(/logits row 3\b/);
  });

  it.each(cases.flatMap(([op, dtype]) => [V, -1, 2 ** 31 - 1].map((bad) => [op, dtype, bad] as const)))(
    '%s %s: target %i (outside [0, V), not ignoreIndex) is a RangeError naming `targets[i] = value`',
    (op, dtype, bad) => {
      const p = randomLogits(next, N, V, dtype);
      p.targets[4] = bad;
      const err = run(op, p, dtype);
      expect(err?.errorClass).toBe('RangeError');
      expect(err?.message).toContain(`targets[4] = ${bad} `);
    },
  );

  it.each(cases)('%s %s: with a custom ignoreIndex, a target of -100 is out of range (RangeError naming it)', (op, dtype) => {
    const p = randomLogits(next, N, V, dtype);
    p.targets[6] = -100;
    const err = run(op, p, dtype, { ignoreIndex: -1 });
    expect(err?.errorClass).toBe('RangeError');
    expect(err?.message).toContain('targets[6] = -100 ');
  });
});

describe('tokenLogprobs f32: the AVX-512 and the 8-lane paths agree', () => {
  const { seed } = seeded('tokenLogprobs paths');

  // The f32 kernel picks AVX-512 row functions where the CPU has them; OSP_CPU_ISA=avx2 forces the
  // 8-lane (AVX2 / baseline) code, which other CPUs run. Both are checked against f64 above on this
  // machine's path; here the forced fallback, in a child process, must give the same values to
  // within f32 rounding of a fast exp (4e-6 relative). Rows of 4099 (masked tails, two chunks)
  // with some -Inf entries.
  it('forward and backward under OSP_CPU_ISA=avx2 match the default path', () => {
    const N = 6;
    const V = 4099;
    const script =
      `const o=require('./src'); const N=${N}, V=${V};` +
      `const x=o.randn([N,V],{device:'cpu',seed:${seed % 1000000},std:3}); const a=x.toArray();` +
      `for (let i=0;i<a.length;i+=37) a[i]=-Infinity; const xs=o.tensor(a,[N,V],{device:'cpu'});` +
      `const t=o.tensor(Int32Array.from({length:N},(_,i)=>(i*1013)%V+1),[N],{device:'cpu'}); const g=o.randn([N],{device:'cpu',seed:${(seed % 1000000) + 1}});` +
      `const f=o.tokenLogprobs(xs,t).toArray(), b=o.tokenLogprobsBackward(xs,t,g).toArray();` +
      `process.stdout.write(JSON.stringify([Array.from(f),Array.from(b)]))`;
    const run = (env: Record<string, string>) => {
      const r = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], {
        cwd: path.join(__dirname, '..'),
        env: { ...process.env, ...env },
        encoding: 'utf8',
        maxBuffer: 64 * 2 ** 20,
      });
      expect(r.stderr).toBe('');
      return JSON.parse(r.stdout) as [number[], number[]];
    };
    const fast = run({});
    const fallback = run({ OSP_CPU_ISA: 'avx2' });
    for (const k of [0, 1]) {
      expect(fast[k].length).toBe(k === 0 ? N : N * V);
      fast[k].forEach((v, i) => {
        const w = fallback[k][i] as number;
        if (Math.abs(v - w) > 4e-6 * Math.max(1e-3, Math.abs(w))) throw new Error(`${k === 0 ? 'log-prob' : 'gradient'} [${i}]: ${v} (default) vs ${w} (OSP_CPU_ISA=avx2)`);
      });
    }
  });
});

describe('tokenLogprobsWithLogsumexp and tokenLogprobsBackward({ logsumexp }): the forward hands the backward its row logsumexp', () => {
  const { next } = seeded('tokenLogprobs given logsumexp');

  /** The forward's { logprobs, logsumexp } read to the host. */
  const forwardWithLse = (p: LogitsProblem, dtype: FloatType, opts: osp.IgnoreOptions = {}) =>
    osp.scope(() => {
      const r = osp.tokenLogprobsWithLogsumexp(floats(p.x, [p.N, p.V], dtype), ints(p.targets), opts);
      expect(r.logprobs.shape).toEqual([p.N]);
      expect(r.logsumexp.shape).toEqual([p.N]);
      expect(r.logprobs.dtype).toBe(dtype);
      expect(r.logsumexp.dtype).toBe(dtype);
      return { logprobs: read(r.logprobs), logsumexp: read(r.logsumexp) };
    });

  /** The backward given lse (held in dtype), in place or not. */
  const backwardWithLse = (p: LogitsProblem, dtype: FloatType, lse: ArrayLike<number>, opts: osp.BackwardOptions = {}) =>
    osp.scope(() =>
      read(osp.tokenLogprobsBackward(floats(p.x, [p.N, p.V], dtype), ints(p.targets), floats(p.g, [p.N], dtype), { ...opts, logsumexp: floats(lse, [p.N], dtype) })),
    );

  /** Fails naming the first element whose bits differ (NaN, -0 included). */
  function expectBitwise(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
    expect(got.length).toBe(want.length);
    const i = Array.from(got).findIndex((v, k) => !Object.is(v, want[k]));
    if (i >= 0) throw new Error(`${what} [${i}] = ${got[i]}; expected ${want[i]} bit for bit`);
  }

  /** logsumexp of row n in plain f64 (max-subtracted). */
  function refLse(p: LogitsProblem, n: number): number {
    const x = row(p, n);
    const m = Math.max(...x);
    return m + Math.log(x.reduce((s, v) => s + Math.exp(v - m), 0));
  }

  // Shapes: one row; V = 1, 7 and 97 (no full 16- or 8-wide vector, tails), 4099 (two 2048-column
  // chunks and a tail); ignored rows among them.
  const SHAPES: [number, number][] = [
    [1, 1],
    [1, 97],
    [5, 7],
    [33, 97],
    [9, 4099],
  ];
  const bitwiseCases = DTYPES.flatMap((dtype) => SHAPES.map(([N, V]) => [dtype, N, V] as const));

  it.each(bitwiseCases)('%s [%i, %i]: logprobs are the plain forward bit for bit; logsumexp is the f64 row logsumexp (0 on ignored rows)', (dtype, N, V) => {
    const p = randomLogits(next, N, V, dtype, { ignored: [2, 5] });
    const got = forwardWithLse(p, dtype);
    expectBitwise(got.logprobs, forwardOf(p, dtype), 'logprobs');
    const want = Array.from({ length: N }, (_, n) => (p.targets[n] === -100 ? 0 : refLse(p, n)));
    expectWithin(got.logsumexp, want, logprobTol(REL[dtype], want), 'logsumexp');
    for (let n = 0; n < N; n++) if (p.targets[n] === -100) expect(Object.is(got.logsumexp[n], 0)).toBe(true);
  });

  it.each(bitwiseCases)('%s [%i, %i]: the backward given the forward logsumexp is the recomputing backward bit for bit, out of place and in place', (dtype, N, V) => {
    const p = randomLogits(next, N, V, dtype, { ignored: [2, 5] });
    const { logsumexp } = forwardWithLse(p, dtype);
    const want = backwardOf(p, dtype);
    expectBitwise(backwardWithLse(p, dtype, logsumexp), want, 'out of place');
    const inPlace = osp.scope(() => {
      const logits = floats(p.x, [N, V], dtype);
      const r = osp.tokenLogprobsBackward(logits, ints(p.targets), floats(p.g, [N], dtype), { inPlace: true, logsumexp: floats(logsumexp, [N], dtype) });
      expect(r).toBe(logits);
      return read(logits);
    });
    expectBitwise(inPlace, want, 'in place');
  });

  // Rows shifted to around +1e4 and -1e4 (exp of the logits over- and underflows), rows mixing the
  // two, -Infinity columns (masked), and one row of +-1e30: the lse is huge in magnitude and
  // x - lse must still be formed before the exp.
  it.each(DTYPES)('%s: huge and very negative logits, and masked columns: bit for bit the recomputing backward, and within the f64 reference', (dtype) => {
    const N = 6;
    const V = 1001;
    const p = randomLogits(next, N, V, dtype);
    const shift = [1e4, -1e4, 0, 0, 0, 0];
    for (let n = 0; n < N; n++) {
      const x = row(p, n);
      for (let v = 0; v < V; v++) {
        if (n === 2) x[v] = (next() < 0.5 ? -1e4 : 1e4) + x[v] / 2;
        else if (n === 3 && v % 5 === 1 && v !== p.targets[n]) x[v] = -Infinity;
        else if (n === 4) x[v] = x[v] * 1e28;
        else x[v] += shift[n];
      }
      x.set(held(x, dtype));
    }
    const { logsumexp } = forwardWithLse(p, dtype);
    expect(Array.from(logsumexp).every(Number.isFinite)).toBe(true);
    const got = backwardWithLse(p, dtype, logsumexp);
    expectBitwise(got, backwardOf(p, dtype), 'gradient');
    expect(got.every(Number.isFinite)).toBe(true);
    const maxAbs = Math.max(...Array.from(p.x).filter(Number.isFinite).map(Math.abs));
    const ref = refBackward(p);
    // The one rounding of lse to the dtype: up to ulp(max|x|)/2, relative on the exponent.
    const extra = 8 * EPS[dtype] * maxAbs;
    expectWithin(got, ref.want, (i) => (REL[dtype] + Math.min(extra, 1)) * Math.max(Math.abs(ref.want[i]), ref.softmaxTerm[i]), 'gradient');
    for (let v = 1; v < V; v += 5) if (v !== p.targets[3]) expect(got[3 * V + v] === 0).toBe(true);
  });

  it.each([
    [1, 1],
    [3, 97],
    [4, 1000],
  ])('f64 [%i, %i]: sampled entries of dlogits given the forward logsumexp match central differences of sum(g * tokenLogprobs) to 1e-6', (N, V) => {
    const p = randomLogits(next, N, V, 'f64', { ignored: [1] });
    osp.scope(() => {
      const targets = ints(p.targets);
      const { logsumexp } = forwardWithLse(p, 'f64');
      const analytic = backwardWithLse(p, 'f64', logsumexp);
      const logprobs = (x: Float64Array) => osp.scope(() => read(osp.tokenLogprobs(floats(x, [N, V], 'f64'), targets)));
      gradcheck('dlogits given logsumexp', analytic, logprobs, p.x, {
        weights: p.g,
        entries: sampleEntries(next, N * V, 20, [p.targets[0]]),
        step: 2 ** -12,
        richardson: false,
        floor: (i) => 1e-4 * Math.abs(p.g[Math.floor(i / V)]),
        label: (i) => `[${Math.floor(i / V)}, ${i % V}]`,
      });
    });
  });

  it.each(DTYPES)('%s: the given logsumexp is what the backward uses: lse + log 2 halves every softmax term', (dtype) => {
    const N = 4;
    const V = 300;
    const p = randomLogits(next, N, V, dtype);
    const { logsumexp } = forwardWithLse(p, dtype);
    const right = backwardWithLse(p, dtype, logsumexp);
    const shifted = backwardWithLse(p, dtype, held(Array.from(logsumexp, (l) => l + Math.LN2), dtype));
    const want = right.map((r, i) => {
      const n = Math.floor(i / V);
      const onehot = i % V === p.targets[n] ? p.g[n] : 0;
      return onehot + (r - onehot) / 2;
    });
    expectWithin(shifted, want, (i) => 1e-5 * Math.max(Math.abs(want[i]), Math.abs(p.g[Math.floor(i / V)]) * 1e-3), 'with lse + log 2');
  });

  describe('value and argument checks', () => {
    const N = 8;
    const V = 1001;

    function runWith(p: LogitsProblem, dtype: FloatType, lse: () => osp.Tensor, opts: osp.IgnoreOptions = {}) {
      return caught(() =>
        osp.scope(() => osp.tokenLogprobsBackward(floats(p.x, [p.N, p.V], dtype), ints(p.targets), floats(p.g, [p.N], dtype), { ...opts, logsumexp: lse() })),
      );
    }

    it.each(DTYPES.flatMap((dtype) => [NaN, Infinity, -Infinity].map((bad) => [dtype, bad] as const)))(
      '%s: logsumexp[2] = %s on a row that is not ignored is a RangeError naming "logsumexp[2]"',
      (dtype, bad) => {
        const p = randomLogits(next, N, V, dtype);
        const lse = forwardWithLse(p, dtype).logsumexp;
        lse[2] = bad;
        const err = runWith(p, dtype, () => floats(lse, [N], dtype));
        expect(err?.errorClass).toBe('RangeError');
        expect(err?.message).toMatch(/^tokenLogprobsBackward: logsumexp\[2\] = (nan|inf|-inf) is not finite/);
      },
    );

    it.each(DTYPES)('%s: a NaN logsumexp on an ignored row is not read (no error, zero gradient row)', (dtype) => {
      const p = randomLogits(next, N, V, dtype, { ignored: [6] });
      const lse = forwardWithLse(p, dtype).logsumexp;
      lse[6] = NaN;
      const got = backwardWithLse(p, dtype, lse);
      expectAllZero(got.slice(6 * V, 7 * V), 'gradient row 6');
      expectBitwise(got, backwardOf(p, dtype), 'gradient');
    });

    it.each(DTYPES.flatMap((dtype) => [NaN, Infinity].map((bad) => [dtype, bad] as const)))(
      '%s: %s in row 3 of the logits (the lse given from clean logits) is still a RangeError naming "logits row 3"',
      (dtype, bad) => {
        const p = randomLogits(next, N, V, dtype);
        const lse = forwardWithLse(p, dtype).logsumexp;
        p.x[3 * V + Math.floor(next() * V)] = bad;
        const err = runWith(p, dtype, () => floats(lse, [N], dtype));
        expect(err?.errorClass).toBe('RangeError');
        expect(err?.message).toMatch(/logits row 3\b/);
      },
    );

    it.each(DTYPES)('%s: a target out of range is still named with a logsumexp given', (dtype) => {
      const p = randomLogits(next, N, V, dtype);
      const lse = forwardWithLse(p, dtype).logsumexp;
      p.targets[4] = V;
      const err = runWith(p, dtype, () => floats(lse, [N], dtype));
      expect(err?.errorClass).toBe('RangeError');
      expect(err?.message).toContain(`targets[4] = ${V} `);
    });

    const p32 = () => randomLogits(next, N, V, 'f32');
    it.each([
      ['shape [N + 1]', () => floats(new Float64Array(N + 1), [N + 1], 'f32'), /logsumexp has shape \[9\]; expected size 8 in dimension 0/],
      ['shape [N, 1]', () => floats(new Float64Array(N), [N, 1], 'f32'), /logsumexp has shape \[8, 1\]; expected 1 dimension/],
      ['dtype f64 for f32 logits', () => floats(new Float64Array(N), [N], 'f64'), /logsumexp has dtype f64; expected f32/],
      ['dtype i32', () => ints(new Int32Array(N)), /logsumexp has dtype i32; expected f32/],
      ['not a tensor', () => [1, 2, 3] as unknown as osp.Tensor, /logsumexp is not a Tensor/],
    ] as const)('f32 logits: a logsumexp of %s is a TypeError naming logsumexp', (_what, lse, message) => {
      const err = runWith(p32(), 'f32', lse);
      expect(err?.errorClass).toBe('TypeError');
      expect(err?.message).toMatch(/^tokenLogprobsBackward: /);
      expect(err?.message).toMatch(message);
    });

    it('f64 logits: an f32 logsumexp is a TypeError naming logsumexp and f64', () => {
      const p = randomLogits(next, N, V, 'f64');
      const err = runWith(p, 'f64', () => floats(new Float64Array(N), [N], 'f32'));
      expect(err?.errorClass).toBe('TypeError');
      expect(err?.message).toMatch(/^tokenLogprobsBackward: logsumexp has dtype f32; expected f64 for logits of dtype f64/);
    });
  });
});
