// The fused token log-probs on the CPU: forward against a plain-TypeScript f64 reference,
// backward against central finite differences in f64, edge cases, f32 against f64, in place, and
// value errors. (The same checks on cuda live in test/gpu.test.ts.)
import * as osp from '../src';
import { integers, normals, seeded } from './helpers/random';
import { maxRelError, refTokenLogprob } from './helpers/reference';

const cpu = { device: 'cpu' as const };
const f64 = (x: Float64Array, shape: number[]) => osp.tensor(x, shape, cpu);
const f32 = (x: Float64Array, shape: number[]) => osp.tensor(x, shape, { ...cpu, dtype: 'f32' });
const i32 = (x: Int32Array) => osp.tensor(x, [x.length], cpu);

/** Reference forward over rows of x [N, V]. */
function reference(x: Float64Array, t: Int32Array, V: number, ignoreIndex = -100): Float64Array {
  const out = new Float64Array(t.length);
  for (let n = 0; n < t.length; n++) out[n] = t[n] === ignoreIndex ? 0 : refTokenLogprob(x.subarray(n * V, (n + 1) * V), t[n] as number);
  return out;
}

const shapes: [number, number][] = [];
for (const N of [1, 7, 64]) for (const V of [1, 2, 97, 1000]) shapes.push([N, V]);

describe('tokenLogprobs forward (f64)', () => {
  const { next } = seeded('tokenLogprobs forward');
  it.each(shapes)('N=%i, V=%i equals the f64 reference', (N, V) => {
    osp.scope(() => {
      const x = normals(next, N * V, 4);
      const t = integers(next, N, 0, V);
      const got = osp.tokenLogprobs(f64(x, [N, V]), i32(t)).toArray();
      // Floor 1e-3: two f64 formulas of a log-prob near 0 (V = 2) agree to ~1e-16 absolute only.
      expect(maxRelError(got, reference(x, t, V), 1e-3)).toBeLessThanOrEqual(1e-12);
    });
  });
});

describe('tokenLogprobsBackward (f64) against central finite differences', () => {
  const { next } = seeded('tokenLogprobs finite differences');
  // L(x) = sum_n g[n] tokenLogprobs(x)[n]. Only row n changes when x[n, v] moves, so the difference
  // is taken on g[n] lp_n alone (the other rows would add rounding noise). Central differences at
  // h and h/2 (h = 2^-8) are combined by Richardson extrapolation (truncation error O(h^4), about
  // 1e-10 here; rounding about 1e-13). Error measure: |fd - analytic| / max(|analytic|, 1e-3 x the
  // largest gradient entry), i.e. relative, with a floor at a thousandth of the gradient's scale.
  it.each(shapes)('N=%i, V=%i: sampled entries within 1e-6', (N, V) => {
    osp.scope(() => {
      const x = normals(next, N * V, 2);
      const t = integers(next, N, 0, V);
      const g = normals(next, N);
      const grad = osp.tokenLogprobsBackward(f64(x, [N, V]), i32(t), f64(g, [N])).toArray();
      let scale = 0;
      for (const v of grad) scale = Math.max(scale, Math.abs(v));
      const entries = new Set<number>();
      for (let k = 0; k < Math.min(20, N * V); k++) entries.add(Math.floor(next() * N * V));
      const row = Math.floor(next() * N);
      entries.add(row * V + (t[row] as number)); // always a target entry
      for (const i of entries) {
        const n = Math.floor(i / V);
        const rowValues = x.slice(n * V, (n + 1) * V);
        const j = i - n * V;
        const lp = (delta: number) => {
          const r = Float64Array.from(rowValues);
          r[j] = (r[j] as number) + delta;
          return (g[n] as number) * refTokenLogprob(r, t[n] as number);
        };
        const central = (h: number) => (lp(h) - lp(-h)) / (2 * h);
        const h = 2 ** -8;
        const fd = (4 * central(h / 2) - central(h)) / 3;
        const a = grad[i] as number;
        expect(Math.abs(fd - a) / Math.max(Math.abs(a), 1e-3 * scale, 1e-12)).toBeLessThanOrEqual(1e-6); // V = 1: all zero
      }
    });
  });
});

describe('tokenLogprobs edge cases', () => {
  const { next } = seeded('tokenLogprobs edge cases');

  it('ignored rows (target -100) give 0 and an all-zero gradient row', () => {
    osp.scope(() => {
      const V = 13;
      const x = normals(next, 3 * V);
      const t = new Int32Array([4, -100, 7]);
      const lp = osp.tokenLogprobs(f64(x, [3, V]), i32(t)).toArray();
      expect(lp[1]).toBe(0);
      const d = osp.tokenLogprobsBackward(f64(x, [3, V]), i32(t), f64(new Float64Array([1, 5, 1]), [3])).toArray();
      expect(Array.from(d.subarray(V, 2 * V)).every((v) => v === 0)).toBe(true);
    });
  });

  it('a custom ignoreIndex is honoured and -100 then counts as out of range', () => {
    osp.scope(() => {
      const x = normals(next, 2 * 5);
      const lp = osp.tokenLogprobs(f64(x, [2, 5]), i32(new Int32Array([3, 0])), { ignoreIndex: 0 }).toArray();
      expect(lp[1]).toBe(0);
      expect(lp[0]).toBeCloseTo(refTokenLogprob(x.subarray(0, 5), 3), 12);
      expect(() => osp.tokenLogprobs(f64(x, [2, 5]), i32(new Int32Array([3, -100])), { ignoreIndex: 0 })).toThrow(RangeError);
    });
  });

  it('logits of +-1e4 stay finite and match the reference', () => {
    osp.scope(() => {
      const V = 97;
      const x = normals(next, 2 * V);
      x[5] = 1e4;
      x[6] = -1e4;
      x[V + 1] = -1e4;
      x[V + 2] = 1e4;
      const t = new Int32Array([6, 1]);
      for (const make of [f64, f32]) {
        const got = osp.tokenLogprobs(make(x, [2, V]), i32(t)).toArray();
        expect(Array.from(got).every(Number.isFinite)).toBe(true);
        expect(maxRelError(got, reference(x, t, V))).toBeLessThanOrEqual(1e-6);
        const d = osp.tokenLogprobsBackward(make(x, [2, V]), i32(t), make(new Float64Array([1, 1]), [2])).toArray();
        expect(Array.from(d).every(Number.isFinite)).toBe(true);
      }
    });
  });

  it('all-equal logits give -log(V) and gradient g (onehot - 1/V)', () => {
    osp.scope(() => {
      const V = 1000;
      const x = new Float64Array(V).fill(3.25);
      const lp = osp.tokenLogprobs(f64(x, [1, V]), i32(new Int32Array([17]))).toArray();
      expect(lp[0]).toBeCloseTo(-Math.log(V), 12);
      const d = osp.tokenLogprobsBackward(f64(x, [1, V]), i32(new Int32Array([17])), f64(new Float64Array([2]), [1])).toArray();
      for (let v = 0; v < V; v++) expect(d[v]).toBeCloseTo(2 * ((v === 17 ? 1 : 0) - 1 / V), 14);
    });
  });

  it('one-hot-like rows (one logit 50 above the rest) give a log-prob near 0 at the peak', () => {
    osp.scope(() => {
      const V = 97;
      const x = new Float64Array(V).map(() => next());
      x[40] = (x[40] as number) + 50;
      const got = osp.tokenLogprobs(f64(x, [1, V]), i32(new Int32Array([40]))).toArray();
      expect(maxRelError(got, reference(x, new Int32Array([40]), V), 1e-300)).toBeLessThanOrEqual(1e-12);
      // The true value, -log(1 + ~96 e^-50) ~ -2e-20, is below f64's resolution of 1 + x: 0 or just below.
      expect(got[0]).toBeLessThanOrEqual(0);
      expect(got[0]).toBeGreaterThan(-1e-19);
    });
  });

  it('-Infinity logits in other columns act as masked vocabulary entries', () => {
    osp.scope(() => {
      const V = 10;
      const x = normals(next, V);
      const masked = Float64Array.from(x);
      masked[2] = -Infinity;
      masked[7] = -Infinity;
      const kept = Float64Array.from(x).filter((_, i) => i !== 2 && i !== 7);
      const got = osp.tokenLogprobs(f64(masked, [1, V]), i32(new Int32Array([4]))).toArray();
      // column 4 stays column 3 after dropping column 2
      expect(got[0]).toBeCloseTo(refTokenLogprob(kept, 3), 12);
      const d = osp.tokenLogprobsBackward(f64(masked, [1, V]), i32(new Int32Array([4])), f64(new Float64Array([1]), [1])).toArray();
      expect(d[2]).toBe(-0);
      expect(d[7]).toBe(-0);
    });
  });
});

describe('tokenLogprobs in f32 against f64', () => {
  const { next } = seeded('tokenLogprobs f32');
  // |f32 - f64| <= 1e-5 max(|f64|, 1): a log-prob near 0 is log(1 - small), which f32 resolves only
  // to its epsilon, so below magnitude 1 the bound is absolute. Gradients: same with floor 1 (g ~ N(0,1)).
  it.each([[4, 97], [3, 1001], [64, 1000], [4, 32000], [1, 1], [9, 2]])('N=%i, V=%i forward and backward', (N, V) => {
    osp.scope(() => {
      const x = normals(next, N * V, 3);
      const t = integers(next, N, 0, V);
      const g = normals(next, N);
      const ref = osp.tokenLogprobs(f64(x, [N, V]), i32(t)).toArray();
      expect(maxRelError(osp.tokenLogprobs(f32(x, [N, V]), i32(t)).toArray(), ref, 1)).toBeLessThanOrEqual(1e-5);
      const dref = osp.tokenLogprobsBackward(f64(x, [N, V]), i32(t), f64(g, [N])).toArray();
      const d = osp.tokenLogprobsBackward(f32(x, [N, V]), i32(t), f32(g, [N])).toArray();
      expect(maxRelError(d, dref, 1)).toBeLessThanOrEqual(1e-5);
    });
  });
});

describe('tokenLogprobsBackward in place', () => {
  const { next } = seeded('tokenLogprobs in place');
  it.each([['f32'], ['f64']] as const)('%s: returns the logits tensor holding the gradient', (dtype) => {
    osp.scope(() => {
      const N = 5;
      const V = 131;
      const x = normals(next, N * V);
      const t = integers(next, N, 0, V);
      t[2] = -100;
      const g = normals(next, N);
      const make = dtype === 'f32' ? f32 : f64;
      const expected = osp.tokenLogprobsBackward(make(x, [N, V]), i32(t), make(g, [N])).toArray();
      const logits = make(x, [N, V]);
      const out = osp.tokenLogprobsBackward(logits, i32(t), make(g, [N]), { inPlace: true });
      expect(out).toBe(logits);
      expect(Array.from(logits.toArray())).toEqual(Array.from(expected));
    });
  });
});

describe('tokenLogprobs value errors', () => {
  const { next } = seeded('tokenLogprobs value errors');
  const V = 8;
  it.each([
    ['NaN', NaN],
    ['+Infinity', Infinity],
  ])('%s in a row is a RangeError naming the row', (_, bad) => {
    osp.scope(() => {
      for (const make of [f64, f32]) {
        const x = normals(next, 5 * V);
        x[3 * V + 6] = bad;
        expect(() => osp.tokenLogprobs(make(x, [5, V]), i32(new Int32Array([0, 1, 2, 3, 4])))).toThrow(/logits row 3/);
        expect(() => osp.tokenLogprobsBackward(make(x, [5, V]), i32(new Int32Array([0, 1, 2, 3, 4])), make(normals(next, 5), [5]))).toThrow(/logits row 3/);
      }
    });
  });

  it.each([[V], [-1], [1 << 30]])('target %i is a RangeError naming targets[i] = value', (bad) => {
    osp.scope(() => {
      const x = f32(normals(next, 3 * V), [3, V]);
      const t = i32(new Int32Array([1, bad, 2]));
      expect(() => osp.tokenLogprobs(x, t)).toThrow(new RegExp(`targets\\[1\\] = ${bad} is outside \\[0, ${V}\\)`));
      expect(() => osp.tokenLogprobsBackward(x, t, f32(new Float64Array(3), [3]))).toThrow(RangeError);
    });
  });
});
