// Per-sequence sums of token log-probs and their backward (native/kernels/sequence_logprobs).
import * as osp from '../src';
import { integers, seeded, uniforms } from './helpers/random';
import { maxRelError } from './helpers/reference';

const cpu = { device: 'cpu' as const };
const f64 = (x: Float64Array) => osp.tensor(x, [x.length], cpu);
const f32 = (x: Float64Array) => osp.tensor(x, [x.length], { ...cpu, dtype: 'f32' });
const i32 = (x: Int32Array) => osp.tensor(x, [x.length], cpu);

function loopSums(lp: ArrayLike<number>, ids: Int32Array, count: number, ignoreIndex = -100): Float64Array {
  const out = new Float64Array(count);
  for (let n = 0; n < ids.length; n++) {
    const id = ids[n] as number;
    if (id !== -1 && id !== ignoreIndex) out[id] = (out[id] as number) + (lp[n] as number);
  }
  return out;
}

describe('sequenceLogprobs', () => {
  const { next } = seeded('sequenceLogprobs');

  it.each([[1, 1], [50, 3], [2000, 17]])('sums %i tokens into %i sequences like a plain loop (f64 1e-12, f32 1e-6)', (N, count) => {
    osp.scope(() => {
      const lp = uniforms(next, N, -10, 0);
      const ids = integers(next, N, -1, count);
      const ref = loopSums(lp, ids, count);
      expect(maxRelError(osp.sequenceLogprobs(f64(lp), i32(ids), count).toArray(), ref, 1)).toBeLessThanOrEqual(1e-12);
      expect(maxRelError(osp.sequenceLogprobs(f32(lp), i32(ids), count).toArray(), ref, 1)).toBeLessThanOrEqual(1e-6);
    });
  });

  it('tokens with id -1 or ignoreIndex count nowhere and get zero gradient', () => {
    osp.scope(() => {
      const lp = f64(new Float64Array([-1, -2, -4, -8, -16]));
      const ids = i32(new Int32Array([0, -1, 1, -100, 0]));
      expect(Array.from(osp.sequenceLogprobs(lp, ids, 2).toArray())).toEqual([-17, -4]);
      expect(Array.from(osp.sequenceLogprobsBackward(f64(new Float64Array([3, 5])), ids).toArray())).toEqual([3, 0, 5, 0, 3]);
      const custom = i32(new Int32Array([0, -7, 1, -7, 0]));
      expect(Array.from(osp.sequenceLogprobs(lp, custom, 2, { ignoreIndex: -7 }).toArray())).toEqual([-17, -4]);
      expect(Array.from(osp.sequenceLogprobsBackward(f64(new Float64Array([3, 5])), custom, { ignoreIndex: -7 }).toArray())).toEqual([3, 0, 5, 0, 3]);
    });
  });

  it('a sequence with no tokens sums to 0', () => {
    osp.scope(() => {
      expect(Array.from(osp.sequenceLogprobs(f64(new Float64Array([-1, -2])), i32(new Int32Array([0, 2])), 4).toArray())).toEqual([-1, 0, -2, 0]);
    });
  });

  it('the backward is exactly g[id] (the sum is linear), matching finite differences', () => {
    osp.scope(() => {
      const N = 40;
      const count = 5;
      const lp = uniforms(next, N, -5, 0);
      const ids = integers(next, N, -1, count);
      const g = uniforms(next, count, -2, 2);
      const d = osp.sequenceLogprobsBackward(f64(g), i32(ids)).toArray();
      const L = (x: Float64Array) => osp.scope(() => {
        const s = osp.sequenceLogprobs(f64(x), i32(ids), count).toArray();
        let acc = 0;
        for (let k = 0; k < count; k++) acc += (g[k] as number) * (s[k] as number);
        return acc;
      });
      for (let n = 0; n < N; n++) {
        const xp = Float64Array.from(lp);
        const xm = Float64Array.from(lp);
        xp[n] = (xp[n] as number) + 0.5;
        xm[n] = (xm[n] as number) - 0.5;
        const fd = L(xp) - L(xm);
        expect(Math.abs(fd - (d[n] as number))).toBeLessThanOrEqual(1e-12);
        expect(d[n]).toBe((ids[n] as number) < 0 ? 0 : g[ids[n] as number]);
      }
    });
  });

  it('interleaving tokens of different sequences does not change the sums (bit for bit)', () => {
    osp.scope(() => {
      const perSeq = [uniforms(next, 30, -9, 0), uniforms(next, 45, -9, 0), uniforms(next, 7, -9, 0)];
      const packedLp: number[] = [];
      const packedIds: number[] = [];
      perSeq.forEach((v, s) => v.forEach((x) => (packedLp.push(x), packedIds.push(s))));
      // Interleave: round-robin over sequences, keeping each sequence's own order.
      const lp: number[] = [];
      const ids: number[] = [];
      const pos = [0, 0, 0];
      while (lp.length < packedLp.length) {
        for (let s = 0; s < 3; s++) {
          const seq = perSeq[s] as Float64Array;
          if ((pos[s] as number) < seq.length) {
            lp.push(seq[pos[s] as number] as number);
            ids.push(s);
            pos[s] = (pos[s] as number) + 1;
          }
        }
      }
      for (const make of [f64, f32]) {
        const a = osp.sequenceLogprobs(make(Float64Array.from(packedLp)), i32(Int32Array.from(packedIds)), 3).toArray();
        const b = osp.sequenceLogprobs(make(Float64Array.from(lp)), i32(Int32Array.from(ids)), 3).toArray();
        expect(Array.from(b)).toEqual(Array.from(a));
      }
    });
  });

  it.each([[3], [-2], [100]])('an id of %i (outside [0, 3), not -1 or ignoreIndex) is a RangeError naming sequenceIds[i]', (bad) => {
    osp.scope(() => {
      const ids = i32(new Int32Array([0, 1, bad, 2]));
      expect(() => osp.sequenceLogprobs(f64(new Float64Array(4)), ids, 3)).toThrow(new RegExp(`sequenceIds\\[2\\] = ${bad} is outside \\[0, 3\\)`));
      expect(() => osp.sequenceLogprobsBackward(f64(new Float64Array(3)), ids)).toThrow(RangeError);
    });
  });

  it('a NaN token log-prob is a RangeError naming it', () => {
    osp.scope(() => {
      const lp = f32(new Float64Array([-1, NaN, -3]));
      expect(() => osp.sequenceLogprobs(lp, i32(new Int32Array([0, 0, 1])), 2)).toThrow(/tokenLogprobs\[1\] is nan/);
    });
  });
});
