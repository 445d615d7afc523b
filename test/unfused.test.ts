// The unfused path kept for tests and benches: logSoftmax, gather and their backward, and the
// compositions tokenLogprobsUnfused / tokenLogprobsBackwardUnfused, against the fused op and
// finite differences.
import * as osp from '../src';
import { integers, normals, seeded } from './helpers/random';
import { maxRelError } from './helpers/reference';

const cpu = { device: 'cpu' as const };
const f64 = (x: Float64Array, shape: number[]) => osp.tensor(x, shape, cpu);
const f32 = (x: Float64Array, shape: number[]) => osp.tensor(x, shape, { ...cpu, dtype: 'f32' });
const i32 = (x: Int32Array) => osp.tensor(x, [x.length], cpu);

describe('unfused log-softmax path', () => {
  const { next } = seeded('unfused');

  it.each([[1, 1], [7, 97], [33, 1001]])('logSoftmax rows of [%i, %i] logsumexp to 0', (N, V) => {
    osp.scope(() => {
      const y = osp.logSoftmax(f64(normals(next, N * V, 3), [N, V])).toArray();
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let v = 0; v < V; v++) s += Math.exp(y[n * V + v] as number);
        expect(Math.abs(Math.log(s))).toBeLessThanOrEqual(1e-12);
      }
    });
  });

  it.each([[7, 97], [33, 1001], [4, 32000]])('unfused forward and backward of [%i, %i] equal the fused op (f64 1e-12, f32 1e-5)', (N, V) => {
    osp.scope(() => {
      const x = normals(next, N * V, 3);
      const t = integers(next, N, 0, V);
      t[0] = -100;
      const g = normals(next, N);
      for (const [make, tol] of [[f64, 1e-12], [f32, 1e-5]] as const) {
        const logits = make(x, [N, V]);
        const targets = i32(t);
        const grad = make(g, [N]);
        expect(maxRelError(osp.tokenLogprobsUnfused(logits, targets).toArray(), osp.tokenLogprobs(logits, targets).toArray(), 1)).toBeLessThanOrEqual(tol);
        expect(maxRelError(osp.tokenLogprobsBackwardUnfused(logits, targets, grad).toArray(), osp.tokenLogprobsBackward(logits, targets, grad).toArray(), 1)).toBeLessThanOrEqual(tol);
      }
    });
  });

  it('logSoftmaxBackward equals central finite differences of sum(G * logSoftmax(x)) in f64', () => {
    osp.scope(() => {
      const N = 3;
      const V = 41;
      const x = normals(next, N * V, 2);
      const G = normals(next, N * V);
      const y = osp.logSoftmax(f64(x, [N, V]));
      const dx = osp.logSoftmaxBackward(f64(G, [N, V]), y).toArray();
      const L = (xs: Float64Array) => osp.scope(() => {
        const ys = osp.logSoftmax(f64(xs, [N, V])).toArray();
        let s = 0;
        for (let i = 0; i < ys.length; i++) s += (G[i] as number) * (ys[i] as number);
        return s;
      });
      let scale = 0;
      for (const v of dx) scale = Math.max(scale, Math.abs(v));
      // Richardson-extrapolated central differences (h = 2^-8), floor at 1e-3 of the gradient scale.
      for (let k = 0; k < 25; k++) {
        const i = Math.floor(next() * N * V);
        const central = (h: number) => {
          const xp = Float64Array.from(x);
          const xm = Float64Array.from(x);
          xp[i] = (xp[i] as number) + h;
          xm[i] = (xm[i] as number) - h;
          return (L(xp) - L(xm)) / (2 * h);
        };
        const fd = (4 * central(2 ** -9) - central(2 ** -8)) / 3;
        expect(Math.abs(fd - (dx[i] as number)) / Math.max(Math.abs(dx[i] as number), 1e-3 * scale)).toBeLessThanOrEqual(1e-6);
      }
    });
  });

  it('gatherBackward puts g at the target, zeros elsewhere, and zero rows for ignored targets', () => {
    osp.scope(() => {
      const V = 6;
      const d = osp.gatherBackward(f64(new Float64Array([2, 3, 4]), [3]), i32(new Int32Array([5, -100, 0])), V).toArray();
      const expected = new Float64Array(3 * V);
      expected[5] = 2;
      expected[2 * V] = 4;
      expect(Array.from(d)).toEqual(Array.from(expected));
    });
  });

  it('gather of an out-of-range target is a RangeError naming it', () => {
    osp.scope(() => {
      const y = f64(normals(next, 2 * 4), [2, 4]);
      expect(() => osp.gather(y, i32(new Int32Array([1, 4])))).toThrow(/targets\[1\] = 4 is outside \[0, 4\)/);
    });
  });
});
