// The model ops on the cpu: rmsNorm, swiglu, rope and embedding, forward and backward.
// Per op: f64 against a plain-TS f64 reference (1e-12 relative), the backward against central
// finite differences of L = sum(G ⊙ op(...)) in f64 with Richardson extrapolation, f32 against the
// f64 op (1e-5 relative), edge shapes (T = 1, D not a multiple of 8), and the argument checks.
// rope also: each rotated pair keeps its norm, position 0 is the identity, backward ∘ forward = id.

import { Tensor, scope, tensor } from '../src/tensor';
import * as ops from '../src/ops';
import { caught } from './helpers/errors';
import { integers, normals, seeded } from './helpers/random';
import { expectSameOutputUnderThreads } from './helpers/child';
import { floats, ints, read, f32, maxAbs, dot, expectRel, gradcheck, sampleEntries, cpu, type FloatType } from './helpers/tensors';
import { ropeInvFreq } from '../src/model/rope';
import { RopeScaling } from '../src/model/config';

/**
 * Rule for the backward (gradcheck, Richardson, the default step below |x_i|):
 * |fd - analytic| <= 1e-6 * max(|fd|, |analytic|, 1e-3), on SAMPLES entries (or all) per gradient.
 */
const FD = { floor: 1e-3 };
const SAMPLES = 10;

/** T x D shapes: T = 1, D = 1, D not a multiple of 8, a few rows. */
const SHAPES: [number, number][] = [
  [1, 1],
  [1, 13],
  [3, 8],
  [5, 37],
  [17, 64],
  [33, 130],
];

// ---- rmsNorm ------------------------------------------------------------------------------------

function refRmsNorm(x: ArrayLike<number>, w: ArrayLike<number>, T: number, D: number, eps: number): Float64Array {
  const y = new Float64Array(T * D);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let j = 0; j < D; j++) ss += x[t * D + j] * x[t * D + j];
    const r = 1 / Math.sqrt(ss / D + eps);
    for (let j = 0; j < D; j++) y[t * D + j] = x[t * D + j] * r * w[j];
  }
  return y;
}

describe('rmsNorm', () => {
  const { next } = seeded('rmsNorm');
  const EPS = 1e-5;

  it('f64 matches the plain-TS reference to 1e-12 at every shape', () => {
    for (const [T, D] of SHAPES) {
      const x = normals(next, T * D);
      const w = normals(next, D);
      scope(() => {
        const y = ops.rmsNorm(floats(x, [T, D]), floats(w, [D]), { eps: EPS });
        expect(y.shape).toEqual([T, D]);
        expect(y.dtype).toBe('f64');
        expectRel(read(y), refRmsNorm(x, w, T, D, EPS), 1e-12, 0, `rmsNorm f64 [${T}, ${D}]`);
      });
    }
  });

  it('default eps is 1e-6; eps = 0 normalises to unit root-mean-square', () => {
    scope(() => {
      const x = [3, 4, 0, 0];
      const w = [1, 1, 1, 1];
      expectRel(read(ops.rmsNorm(floats(x, [1, 4]), floats(w, [4]))), refRmsNorm(x, w, 1, 4, 1e-6), 1e-12, 0, 'default eps');
      const y = read(ops.rmsNorm(floats(x, [1, 4]), floats(w, [4]), { eps: 0 }));
      expectRel(y, [1.2, 1.6, 0, 0], 1e-15, 1, 'eps 0'); // rms of [3, 4, 0, 0] is 2.5
    });
  });

  it('backward (dx and dw) matches finite differences in f64', () => {
    for (const [T, D] of [
      [1, 1],
      [1, 13],
      [4, 9],
      [6, 33],
    ] as [number, number][]) {
      const x = normals(next, T * D);
      const w = normals(next, D);
      const G = normals(next, T * D);
      scope(() => {
        const g = ops.rmsNormBackward(floats(x, [T, D]), floats(w, [D]), floats(G, [T, D]), { eps: EPS });
        expect(g.gradInput.shape).toEqual([T, D]);
        expect(g.gradWeight.shape).toEqual([D]);
        const L = (xx: Float64Array, ww: Float64Array) => dot(G, refRmsNorm(xx, ww, T, D, EPS));
        const Lnative = (xx: Float64Array, ww: Float64Array) => scope(() => dot(G, read(ops.rmsNorm(floats(xx, [T, D]), floats(ww, [D]), { eps: EPS }))));
        gradcheck(`rmsNorm dx [${T}, ${D}]`, read(g.gradInput), (xx) => Lnative(xx, w), x, { ...FD, entries: sampleEntries(next, x.length, SAMPLES) });
        gradcheck(`rmsNorm dw [${T}, ${D}]`, read(g.gradWeight), (ww) => Lnative(x, ww), w, { ...FD, entries: sampleEntries(next, w.length, SAMPLES) });
        // The TS reference gives the same differences (the native forward is not checking itself).
        gradcheck(`rmsNorm dx (TS forward) [${T}, ${D}]`, read(g.gradInput), (xx) => L(xx, w), x, { ...FD, entries: sampleEntries(next, x.length, 3) });
      });
    }
  });

  it('f32 matches the f64 op to 1e-5 (floor: the largest reference magnitude), forward and backward', () => {
    // Floor: an entry that cancels to near 0 (dx = r g w - x c, dw a sum over rows) still carries
    // f32 roundings of terms as large as the largest entry of that output.
    for (const [T, D] of [...SHAPES, [300, 515] as [number, number]]) {
      const x = f32(normals(next, T * D));
      const w = f32(normals(next, D));
      const G = f32(normals(next, T * D));
      scope(() => {
        for (const [what, run] of [
          ['y', (dt: FloatType) => read(ops.rmsNorm(floats(x, [T, D], dt), floats(w, [D], dt), { eps: EPS }))],
          ['dx', (dt: FloatType) => read(ops.rmsNormBackward(floats(x, [T, D], dt), floats(w, [D], dt), floats(G, [T, D], dt), { eps: EPS }).gradInput)],
          ['dw', (dt: FloatType) => read(ops.rmsNormBackward(floats(x, [T, D], dt), floats(w, [D], dt), floats(G, [T, D], dt), { eps: EPS }).gradWeight)],
        ] as const) {
          const want = run('f64');
          expectRel(run('f32'), want, 1e-5, maxAbs(want), `rmsNorm f32 ${what} [${T}, ${D}]`);
        }
      });
    }
  });

  it('refuses wrong dtypes, mismatched shapes and a negative eps, naming the argument', () => {
    scope(() => {
      const x = floats(new Float64Array(8), [2, 4]);
      const w = floats(new Float64Array(4), [4]);
      expect(caught(() => ops.rmsNorm(tensor(new Int32Array(8), [2, 4], cpu), w))).toEqual({
        errorClass: 'TypeError',
        message: 'rmsNorm: x has dtype i32 on cpu; expected f32 or f64',
      });
      expect(caught(() => ops.rmsNorm(x, floats(new Float64Array(5), [5])))).toEqual({
        errorClass: 'TypeError',
        message: 'rmsNorm: weight has shape [5]; expected size 4 in dimension 0 (one weight per column of x)',
      });
      expect(caught(() => ops.rmsNorm(x, floats(new Float64Array(4), [4], 'f32')))).toEqual({
        errorClass: 'TypeError',
        message: 'rmsNorm: x has dtype f64 but weight has dtype f32; expected the same dtype',
      });
      expect(caught(() => ops.rmsNorm(floats(new Float64Array(4), [4]), w))).toEqual({
        errorClass: 'TypeError',
        message: 'rmsNorm: x has shape [4]; expected 2 dimensions',
      });
      expect(caught(() => ops.rmsNorm(x, w, { eps: -1 }))).toEqual({
        errorClass: 'RangeError',
        message: 'rmsNorm: eps is -1; expected a number >= 0',
      });
      expect(caught(() => ops.rmsNormBackward(x, w, floats(new Float64Array(6), [2, 3])))).toEqual({
        errorClass: 'TypeError',
        message: 'rmsNormBackward: gradOut has shape [2, 3]; expected size 4 in dimension 1 (the shape of x)',
      });
      expect(caught(() => ops.rmsNorm(x.transpose(0, 1), floats(new Float64Array(2), [2])))?.message).toMatch(
        /^rmsNorm: x is a non-contiguous view/,
      );
    });
  });
});

// ---- swiglu -------------------------------------------------------------------------------------

const sigmoid = (g: number) => 1 / (1 + Math.exp(-g));
const refSwiglu = (gate: ArrayLike<number>, up: ArrayLike<number>) => Float64Array.from(gate, (g, i) => g * sigmoid(g) * up[i]);

describe('swiglu', () => {
  const { next } = seeded('swiglu');

  it('f64 matches the plain-TS reference to 1e-12 at every shape', () => {
    for (const [T, F] of SHAPES) {
      const gate = normals(next, T * F, 3);
      const up = normals(next, T * F);
      scope(() => {
        const out = ops.swiglu(floats(gate, [T, F]), floats(up, [T, F]));
        expect(out.shape).toEqual([T, F]);
        expect(out.dtype).toBe('f64');
        expectRel(read(out), refSwiglu(gate, up), 1e-12, 0, `swiglu f64 [${T}, ${F}]`);
      });
    }
  });

  it('is finite for large |gate| (silu(-800) = 0, silu(800) = 800)', () => {
    scope(() => {
      expect(Array.from(read(ops.swiglu(floats([-800, 800], [1, 2]), floats([1, 1], [1, 2]))))).toEqual([-0, 800]);
      const g = ops.swigluBackward(floats([-800, 800], [1, 2]), floats([1, 1], [1, 2]), floats([1, 1], [1, 2]));
      expect(Array.from(read(g.gradGate)).every(Number.isFinite)).toBe(true);
    });
  });

  it('backward (dgate, dup) matches finite differences in f64', () => {
    for (const [T, F] of [
      [1, 1],
      [1, 13],
      [5, 9],
    ] as [number, number][]) {
      const gate = normals(next, T * F, 2);
      const up = normals(next, T * F);
      const G = normals(next, T * F);
      scope(() => {
        const g = ops.swigluBackward(floats(gate, [T, F]), floats(up, [T, F]), floats(G, [T, F]));
        const L = (gg: Float64Array, uu: Float64Array) => scope(() => dot(G, read(ops.swiglu(floats(gg, [T, F]), floats(uu, [T, F])))));
        gradcheck(`swiglu dgate [${T}, ${F}]`, read(g.gradGate), (gg) => L(gg, up), gate, { ...FD, entries: sampleEntries(next, gate.length, SAMPLES) });
        gradcheck(`swiglu dup [${T}, ${F}]`, read(g.gradUp), (uu) => L(gate, uu), up, { ...FD, entries: sampleEntries(next, up.length, SAMPLES) });
      });
    }
  });

  it('f32 matches the f64 op to 1e-5 (dgate with a floor at the zero of silu\'), forward and backward', () => {
    // out = g s u and dup = dout g s are products: relative 1e-5 everywhere (floor 1e-30).
    // dgate = dout u s (1 + g (1 - s)) cancels near g = -1.28 (silu' = 0): the factor is a sum of
    // terms of size up to 1 + |g|, so its floor is 1e-2 |dout u| (1 + |g|).
    for (const [T, F] of [...SHAPES, [64, 1031] as [number, number]]) {
      const gate = f32(normals(next, T * F, 3));
      const up = f32(normals(next, T * F));
      const G = f32(normals(next, T * F));
      scope(() => {
        const run = (dt: FloatType) => {
          const b = ops.swigluBackward(floats(gate, [T, F], dt), floats(up, [T, F], dt), floats(G, [T, F], dt));
          return [read(ops.swiglu(floats(gate, [T, F], dt), floats(up, [T, F], dt))), read(b.gradGate), read(b.gradUp)];
        };
        const want = run('f64');
        const got = run('f32');
        expectRel(got[0], want[0], 1e-5, 1e-30, `swiglu f32 out [${T}, ${F}]`);
        expectRel(got[1], want[1], 1e-5, (i) => 1e-2 * Math.abs(G[i] * up[i]) * (1 + Math.abs(gate[i])), `swiglu f32 dgate [${T}, ${F}]`);
        expectRel(got[2], want[2], 1e-5, 1e-30, `swiglu f32 dup [${T}, ${F}]`);
      });
    }
  });

  it('refuses wrong dtypes and mismatched shapes, naming the argument', () => {
    scope(() => {
      const a = floats(new Float64Array(8), [2, 4]);
      expect(caught(() => ops.swiglu(a, floats(new Float64Array(6), [2, 3])))).toEqual({
        errorClass: 'TypeError',
        message: 'swiglu: up has shape [2, 3]; expected size 4 in dimension 1 (the shape of gate)',
      });
      expect(caught(() => ops.swiglu(tensor(new Int32Array(8), [2, 4], cpu), a))).toEqual({
        errorClass: 'TypeError',
        message: 'swiglu: gate has dtype i32 on cpu; expected f32 or f64',
      });
      expect(caught(() => ops.swiglu(a, floats(new Float64Array(8), [2, 4], 'f32')))).toEqual({
        errorClass: 'TypeError',
        message: 'swiglu: gate has dtype f64 but up has dtype f32; expected the same dtype',
      });
      expect(caught(() => ops.swigluBackward(a, a, floats(new Float64Array(4), [1, 4])))).toEqual({
        errorClass: 'TypeError',
        message: 'swigluBackward: gradOut has shape [1, 4]; expected size 2 in dimension 0 (the shape of gate)',
      });
      expect(caught(() => ops.swiglu(a, 3 as unknown as Tensor))?.message).toBe('swiglu: up is not a Tensor; expected a Tensor made by osp.tensor()');
    });
  });
});

// ---- rope ---------------------------------------------------------------------------------------

/** HF rotate-half: pairs (i, i + Dh/2) rotated by sign * (pos / factor) * theta^(-2i/Dh). */
function refRope(x: ArrayLike<number>, pos: ArrayLike<number>, T: number, H: number, Dh: number, theta: number, factor = 1, sign = 1): Float64Array {
  const out = new Float64Array(T * H * Dh);
  const half = Dh / 2;
  for (let t = 0; t < T; t++) {
    for (let k = 0; k < H; k++) {
      const base = (t * H + k) * Dh;
      for (let i = 0; i < half; i++) {
        const a = (pos[t] / factor) * Math.pow(theta, (-2 * i) / Dh);
        const c = Math.cos(a);
        const s = sign * Math.sin(a);
        const x1 = x[base + i];
        const x2 = x[base + i + half];
        out[base + i] = x1 * c - x2 * s;
        out[base + i + half] = x2 * c + x1 * s;
      }
    }
  }
  return out;
}

describe('rope', () => {
  const { next } = seeded('rope');
  // [T, H, Dh]: T = 1, Dh = 2, Dh not a multiple of 8, a Llama head size.
  const ROPE_SHAPES: [number, number, number][] = [
    [1, 1, 2],
    [1, 3, 6],
    [4, 2, 10],
    [7, 3, 64],
    [16, 4, 128],
  ];
  const THETAS: [number, number][] = [
    [10000, 1],
    [500000, 1],
    [10000, 4],
  ];

  it('f64 matches the plain-TS reference to 1e-12 (theta 1e4, 5e5, linear scaling 4), forward and backward', () => {
    for (const [T, H, Dh] of ROPE_SHAPES) {
      for (const [theta, scalingFactor] of THETAS) {
        const x = normals(next, T * H * Dh);
        const pos = integers(next, T, 0, 4096);
        scope(() => {
          const out = ops.rope(floats(x, [T, H, Dh]), ints(pos), { theta, scalingFactor });
          expect(out.shape).toEqual([T, H, Dh]);
          const what = `[${T}, ${H}, ${Dh}] theta ${theta} factor ${scalingFactor}`;
          // Floor 1: the outputs are O(1) sums of two products, so relative error at an entry that
          // cancels is measured against the size of its terms.
          expectRel(read(out), refRope(x, pos, T, H, Dh, theta, scalingFactor), 1e-12, 1, `rope f64 ${what}`);
          const back = ops.ropeBackward(floats(x, [T, H, Dh]), ints(pos), { theta, scalingFactor });
          expectRel(read(back), refRope(x, pos, T, H, Dh, theta, scalingFactor, -1), 1e-12, 1, `ropeBackward f64 ${what}`);
        });
      }
    }
  });

  it('matches the rotation by hand: Dh = 2 rotates (x, y) by the position in radians', () => {
    scope(() => {
      const got = read(ops.rope(floats([1, 0, 0, 1], [2, 1, 2]), ints([1, 2]), { theta: 10000 }));
      expectRel(got, [Math.cos(1), Math.sin(1), -Math.sin(2), Math.cos(2)], 1e-15, 1, 'by hand');
    });
  });

  it('keeps the norm of every rotated pair; position 0 is the identity; backward undoes forward', () => {
    const [T, H, Dh] = [9, 3, 18];
    const x = normals(next, T * H * Dh);
    const pos = integers(next, T, 0, 100000);
    pos[0] = 0;
    scope(() => {
      const out = read(ops.rope(floats(x, [T, H, Dh]), ints(pos), { theta: 10000 }));
      const half = Dh / 2;
      for (let r = 0; r < T * H; r++) {
        for (let i = 0; i < half; i++) {
          const a = r * Dh + i;
          const before = Math.hypot(x[a], x[a + half]);
          const after = Math.hypot(out[a], out[a + half]);
          if (!(Math.abs(after - before) <= 1e-12 * Math.max(before, 1e-300))) throw new Error(`pair (${a}, ${a + half}): norm ${before} -> ${after}`);
        }
      }
      // Position 0: cos 0 = 1, sin 0 = 0 exactly, so the first token's rows come back bit for bit.
      expect(Array.from(out.subarray(0, H * Dh))).toEqual(Array.from(x.subarray(0, H * Dh)));
      const zeros = read(ops.rope(floats(x, [T, H, Dh]), ints(new Int32Array(T)), { theta: 500000, scalingFactor: 8 }));
      expect(Array.from(zeros)).toEqual(Array.from(x));
      const round = read(ops.ropeBackward(floats(out, [T, H, Dh]), ints(pos), { theta: 10000 }));
      expectRel(round, x, 1e-12, 1, 'ropeBackward(rope(x)) = x');
    });
  });

  it('backward matches finite differences in f64', () => {
    for (const [T, H, Dh] of [
      [1, 1, 2],
      [3, 2, 6],
    ] as [number, number, number][]) {
      const x = normals(next, T * H * Dh);
      const G = normals(next, T * H * Dh);
      const pos = integers(next, T, 0, 2048);
      const opts = { theta: 10000, scalingFactor: 2 };
      scope(() => {
        const dx = read(ops.ropeBackward(floats(G, [T, H, Dh]), ints(pos), opts));
        const L = (xx: Float64Array) => scope(() => dot(G, read(ops.rope(floats(xx, [T, H, Dh]), ints(pos), opts))));
        gradcheck(`rope dx [${T}, ${H}, ${Dh}]`, dx, L, x, { ...FD, entries: sampleEntries(next, x.length, 12) });
      });
    }
  });

  it('f32 matches the f64 op to 1e-5 (floor 1, the size of the terms of each output)', () => {
    for (const [T, H, Dh] of [...ROPE_SHAPES, [64, 8, 66] as [number, number, number]]) {
      const x = f32(normals(next, T * H * Dh));
      const pos = integers(next, T, 0, 8192);
      scope(() => {
        for (const dir of ['rope', 'ropeBackward'] as const) {
          const want = read(ops[dir](floats(x, [T, H, Dh]), ints(pos), { theta: 10000 }));
          const got = read(ops[dir](floats(x, [T, H, Dh], 'f32'), ints(pos), { theta: 10000 }));
          expect(got.length).toBe(want.length);
          expectRel(got, want, 1e-5, 1, `${dir} f32 [${T}, ${H}, ${Dh}]`);
        }
      });
    }
  });

  it('refuses an odd head dimension, a negative position, and bad arguments, naming them', () => {
    scope(() => {
      const x = floats(new Float64Array(12), [2, 2, 3]);
      expect(caught(() => ops.rope(x, ints([0, 1]), { theta: 10000 }))).toEqual({
        errorClass: 'TypeError',
        message: 'rope: x has shape [2, 2, 3]; expected an even head dimension (last size)',
      });
      expect(caught(() => ops.ropeBackward(x, ints([0, 1]), { theta: 10000 }))).toEqual({
        errorClass: 'TypeError',
        message: 'ropeBackward: gradOut has shape [2, 2, 3]; expected an even head dimension (last size)',
      });
      const y = floats(new Float64Array(24), [3, 2, 4]);
      expect(caught(() => ops.rope(y, ints([0, -2, -1]), { theta: 10000 }))).toEqual({
        errorClass: 'RangeError',
        message: 'rope: positions[1] = -2 is negative; expected positions >= 0',
      });
      expect(caught(() => ops.ropeBackward(floats(new Float32Array(24), [3, 2, 4], 'f32'), ints([0, 1, -7]), { theta: 10000 }))).toEqual({
        errorClass: 'RangeError',
        message: 'ropeBackward: positions[2] = -7 is negative; expected positions >= 0',
      });
      expect(caught(() => ops.rope(y, ints([0, 1]), { theta: 10000 }))).toEqual({
        errorClass: 'TypeError',
        message: 'rope: positions has shape [2]; expected size 3 in dimension 0 (one position per row of x)',
      });
      expect(caught(() => ops.rope(y, floats([0, 1, 2], [3]), { theta: 10000 }))).toEqual({
        errorClass: 'TypeError',
        message: 'rope: positions has dtype f64 on cpu; expected i32',
      });
      expect(caught(() => ops.rope(floats(new Float64Array(8), [2, 4]), ints([0, 1]), { theta: 10000 }))).toEqual({
        errorClass: 'TypeError',
        message: 'rope: x has shape [2, 4]; expected 3 dimensions',
      });
      expect(caught(() => ops.rope(tensor(new Int32Array(24), [3, 2, 4], cpu), ints([0, 1, 2]), { theta: 10000 }))).toEqual({
        errorClass: 'TypeError',
        message: 'rope: x has dtype i32 on cpu; expected f32 or f64',
      });
      expect(caught(() => ops.rope(y, ints([0, 1, 2]), { theta: 0 }))).toEqual({
        errorClass: 'RangeError',
        message: 'rope: theta is 0; expected a number > 0',
      });
      expect(caught(() => ops.rope(y, ints([0, 1, 2]), { theta: 10000, scalingFactor: -1 }))).toEqual({
        errorClass: 'RangeError',
        message: 'rope: scalingFactor is -1; expected a number > 0',
      });
      expect(caught(() => ops.rope(y, ints([0, 1, 2]), {} as ops.RopeOptions))).toEqual({
        errorClass: 'TypeError',
        message: 'rope: theta must be a number',
      });
    });
  });
});

// ---- embedding ----------------------------------------------------------------------------------

describe('embedding', () => {
  const { next } = seeded('embedding');
  // [V, D, T]: T = 1, D = 1, D not a multiple of 8, more tokens than rows (repeats).
  const EMB_SHAPES: [number, number, number][] = [
    [1, 1, 1],
    [5, 13, 1],
    [7, 8, 20],
    [50, 37, 64],
    [300, 70, 33],
  ];

  function refBackward(G: ArrayLike<number>, ids: ArrayLike<number>, V: number, D: number): Float64Array {
    const d = new Float64Array(V * D);
    for (let t = 0; t < ids.length; t++) for (let j = 0; j < D; j++) d[ids[t] * D + j] += G[t * D + j];
    return d;
  }

  it('f64 forward gathers rows exactly and backward matches the plain-TS accumulation to 1e-12', () => {
    for (const [V, D, T] of EMB_SHAPES) {
      const table = normals(next, V * D);
      const ids = integers(next, T, 0, V);
      const G = normals(next, T * D);
      scope(() => {
        const out = ops.embedding(floats(table, [V, D]), ints(ids));
        expect(out.shape).toEqual([T, D]);
        const want = new Float64Array(T * D);
        for (let t = 0; t < T; t++) want.set(table.subarray(ids[t] * D, ids[t] * D + D), t * D);
        expect(Array.from(read(out))).toEqual(Array.from(want));
        const d = ops.embeddingBackward(floats(G, [T, D]), ints(ids), V);
        expect(d.shape).toEqual([V, D]);
        expect(d.dtype).toBe('f64');
        // Floor: the largest |G|, the size of the terms that a repeated row sums.
        expectRel(read(d), refBackward(G, ids, V, D), 1e-12, maxAbs(G), `embeddingBackward f64 [${V}, ${D}] T=${T}`);
      });
    }
  });

  it('backward matches finite differences of sum(G * embedding(table, ids)) in f64', () => {
    const [V, D, T] = [6, 5, 11];
    const table = normals(next, V * D);
    const ids = integers(next, T, 0, V);
    ids[0] = ids[1]; // at least one repeated id
    const G = normals(next, T * D);
    scope(() => {
      const d = read(ops.embeddingBackward(floats(G, [T, D]), ints(ids), V));
      const L = (tt: Float64Array) => scope(() => dot(G, read(ops.embedding(floats(tt, [V, D]), ints(ids)))));
      gradcheck('embedding dTable', d, L, table, { ...FD, entries: sampleEntries(next, table.length, V * D) });
    });
  });

  it('f32 matches the f64 op to 1e-5 (floor: the largest |G|); unused rows get exact zeros', () => {
    for (const [V, D, T] of [...EMB_SHAPES, [1000, 129, 2000] as [number, number, number]]) {
      const table = f32(normals(next, V * D));
      const ids = integers(next, T, 0, V);
      const G = f32(normals(next, T * D));
      scope(() => {
        expect(Array.from(read(ops.embedding(floats(table, [V, D], 'f32'), ints(ids))))).toEqual(Array.from(read(ops.embedding(floats(table, [V, D]), ints(ids)))));
        const want = read(ops.embeddingBackward(floats(G, [T, D]), ints(ids), V));
        const got = ops.embeddingBackward(floats(G, [T, D], 'f32'), ints(ids), V);
        expect(got.dtype).toBe('f32');
        expectRel(read(got), want, 1e-5, maxAbs(G), `embeddingBackward f32 [${V}, ${D}] T=${T}`);
        const used = new Set(ids);
        const g = read(got);
        for (let v = 0; v < V; v++) if (!used.has(v)) for (let j = 0; j < D; j++) expect(g[v * D + j]).toBe(0);
      });
    }
  });

  it('refuses ids outside [0, V) (RangeError naming ids[t]) and bad arguments', () => {
    scope(() => {
      const table = floats(new Float64Array(10), [5, 2]);
      expect(caught(() => ops.embedding(table, ints([0, 4, 5, 1])))).toEqual({
        errorClass: 'RangeError',
        message: 'embedding: ids[2] = 5 is outside [0, 5) (the rows of table)',
      });
      expect(caught(() => ops.embedding(floats(new Float32Array(10), [5, 2], 'f32'), ints([-1])))).toEqual({
        errorClass: 'RangeError',
        message: 'embedding: ids[0] = -1 is outside [0, 5) (the rows of table)',
      });
      expect(caught(() => ops.embeddingBackward(floats(new Float64Array(6), [3, 2]), ints([1, 9, -3]), 5))).toEqual({
        errorClass: 'RangeError',
        message: 'embeddingBackward: ids[1] = 9 is outside [0, 5) (vocab)',
      });
      expect(caught(() => ops.embedding(tensor(new Int32Array(10), [5, 2], cpu), ints([0])))).toEqual({
        errorClass: 'TypeError',
        message: 'embedding: table has dtype i32 on cpu; expected f32 or f64',
      });
      expect(caught(() => ops.embedding(table, floats([0], [1])))).toEqual({
        errorClass: 'TypeError',
        message: 'embedding: ids has dtype f64 on cpu; expected i32',
      });
      expect(caught(() => ops.embeddingBackward(floats(new Float64Array(6), [3, 2]), ints([1, 2]), 5))).toEqual({
        errorClass: 'TypeError',
        message: 'embeddingBackward: ids has shape [2]; expected size 3 in dimension 0 (one id per row of gradOut)',
      });
      expect(caught(() => ops.embeddingBackward(floats(new Float64Array(6), [3, 2]), ints([1, 2, 0]), -1))).toEqual({
        errorClass: 'RangeError',
        message: 'embeddingBackward: vocab is -1; expected a non-negative integer',
      });
    });
  });
});

// ---- determinism --------------------------------------------------------------------------------

describe('f32 reductions are bitwise the same under any thread count', () => {
  const { seed } = seeded('modelOps determinism');

  it('rmsNormBackward (dx, dw) and embeddingBackward under OSP_NUM_THREADS=1 and 3', () => {
    const script =
      `const t=require('./src/tensor'), o=require('./src/ops');` +
      `const s=${seed % 1000000}, T=700, D=300, V=50;` +
      `const x=t.randn([T,D],{device:'cpu',seed:s}), w=t.randn([D],{device:'cpu',seed:s+1}), g=t.randn([T,D],{device:'cpu',seed:s+2});` +
      `const ids=t.tensor(Int32Array.from({length:T},(_,i)=>(i*7+s)%V),[T],{device:'cpu'});` +
      `const r=o.rmsNormBackward(x,w,g,{eps:1e-5});` +
      `const parts=[r.gradInput,r.gradWeight,o.embeddingBackward(g,ids,V)].map((a)=>Buffer.from(a.toArray().buffer).toString('base64'));` +
      `process.stdout.write(parts.join('|'))`;
    expectSameOutputUnderThreads(script, 700 * 300 * 4, '3');
  });
});

// ---- rope with an inverse-frequency table (ops.rope { invFreq }; src/model/rope.ts) -------------

describe('rope with an inverse-frequency table', () => {
  const { next } = seeded('rope table');

  it('none and linear: { invFreq: ropeInvFreq(...) } is bit-identical to { theta, scalingFactor }, f64 and f32, both directions', () => {
    const cases: [number, number | null][] = [
      [10000, null],
      [500000, null],
      [10000, 4],
      [500000, 2.5],
    ];
    for (const [T, H, Dh] of [[1, 1, 2], [5, 3, 10], [16, 4, 128]] as [number, number, number][]) {
      for (const [theta, factor] of cases) {
        const table = ropeInvFreq(Dh, theta, factor === null ? null : { type: 'linear', factor });
        expect(Array.from(table)).toEqual(Array.from(ops.ropeInvFreqTable(theta, factor ?? 1, Dh)));
        const x = normals(next, T * H * Dh);
        const pos = integers(next, T, 0, 5000);
        for (const dtype of ['f64', 'f32'] as FloatType[]) {
          for (const dir of ['rope', 'ropeBackward'] as const) {
            scope(() => {
              const byTheta = read(ops[dir](floats(x, [T, H, Dh], dtype), ints(pos), { theta, scalingFactor: factor ?? 1 }));
              const byTable = read(ops[dir](floats(x, [T, H, Dh], dtype), ints(pos), { invFreq: table }));
              expect(byTable).toEqual(byTheta);
            });
          }
        }
      }
    }
  });

  it('llama3 (Dh 16, theta 5e5, factor 8, low 1, high 4, old ctx 64): kept, smoothed and scaled frequencies by hand', () => {
    const table = ropeInvFreq(16, 500000, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 });
    expect(table.length).toBe(8);
    // wavelen_i = 2 pi / 500000^(-i/8); high_wl = 64 / 4 = 16, low_wl = 64 / 1 = 64.
    // i = 0: inv 1, wavelen 6.28 < 16: kept.
    expect(table[0]).toBe(1);
    // i = 1: inv 0.193923, wavelen 32.40 in [16, 64]: smooth = (64 / 32.40 - 1) / 3 = 0.325094,
    // inv' = (1 - smooth) inv / 8 + smooth inv = 0.0794030.
    const inv1 = Math.pow(500000, -1 / 8);
    const smooth = (64 / ((2 * Math.PI) / inv1) - 1) / 3;
    expect(smooth).toBeCloseTo(0.3250936193, 9);
    expect(table[1]).toBeCloseTo(((1 - smooth) * inv1) / 8 + smooth * inv1, 15);
    expect(table[1]).toBeCloseTo(0.0794030091792082, 15);
    // i >= 2: wavelen >= 167 > 64: inv / 8.
    const low = [0.004700753866357992, 0.0009115830921521387, 0.00017677669529663688, 3.428102195952591e-5, 6.647869871181236e-6, 1.2891731721515574e-6];
    for (let i = 2; i < 8; i++) {
      expect(Math.abs(table[i] - Math.pow(500000, -i / 8) / 8)).toBeLessThanOrEqual(2e-16 * table[i]);
      expect(Math.abs(table[i] - low[i - 2])).toBeLessThanOrEqual(1e-15 * low[i - 2]);
    }
  });

  it('llama3 with factor 1 is the none table; with factor 8 the ratio inv / inv\' grows monotonically from 1 to 8', () => {
    const none = ropeInvFreq(64, 10000, null);
    const flat = ropeInvFreq(64, 10000, { type: 'llama3', factor: 1, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 256 });
    for (let i = 0; i < 32; i++) expect(Math.abs(flat[i] - none[i])).toBeLessThanOrEqual(4e-16 * none[i]);
    const scaled = ropeInvFreq(64, 10000, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 256 });
    for (let i = 0; i < 32; i++) {
      const ratio = none[i] / scaled[i];
      expect(ratio).toBeGreaterThanOrEqual(1 - 1e-15);
      expect(ratio).toBeLessThanOrEqual(8 + 1e-12);
      if (i > 0) expect(ratio).toBeGreaterThanOrEqual(none[i - 1] / scaled[i - 1] - 1e-12); // monotone in wavelength
    }
  });

  it('rope with a llama3 table matches the plain-TS rotation by pos * inv_freq (f64, 1e-12) and its gradient passes finite differences', () => {
    const [T, H, Dh] = [6, 2, 16];
    const table = ropeInvFreq(Dh, 500000, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 });
    const x = normals(next, T * H * Dh);
    const pos = integers(next, T, 0, 300);
    for (const sign of [1, -1]) {
      const want = new Float64Array(T * H * Dh);
      for (let t = 0; t < T; t++) {
        for (let k = 0; k < H; k++) {
          const b = (t * H + k) * Dh;
          for (let i = 0; i < Dh / 2; i++) {
            const a = pos[t] * table[i];
            const [c, s] = [Math.cos(a), sign * Math.sin(a)];
            want[b + i] = x[b + i] * c - x[b + i + Dh / 2] * s;
            want[b + i + Dh / 2] = x[b + i + Dh / 2] * c + x[b + i] * s;
          }
        }
      }
      const got = scope(() => read((sign > 0 ? ops.rope : ops.ropeBackward)(floats(x, [T, H, Dh]), ints(pos), { invFreq: table })));
      expectRel(got, want, 1e-12, 1, `llama3 rope sign ${sign}`);
    }
    const G = normals(next, T * H * Dh);
    const dx = scope(() => read(ops.ropeBackward(floats(G, [T, H, Dh]), ints(pos), { invFreq: table })));
    const L = (xx: Float64Array) => scope(() => dot(G, read(ops.rope(floats(xx, [T, H, Dh]), ints(pos), { invFreq: table }))));
    gradcheck('llama3 rope dx', dx, L, x, { ...FD, entries: sampleEntries(next, x.length, 12) });
  });

  it('a bad table or llama3 field is an error naming it', () => {
    const y = floats(new Float64Array(24), [3, 2, 4]);
    expect(caught(() => ops.rope(y, ints([0, 1, 2]), { invFreq: new Float64Array(3) }))).toEqual({
      errorClass: 'RangeError',
      message: 'rope: invFreq has length 3; expected 2 (half the head dimension of x [3, 2, 4])',
    });
    expect(caught(() => ops.ropeBackward(y, ints([0, 1, 2]), { invFreq: new Float64Array([1, NaN]) }))).toEqual({
      errorClass: 'RangeError',
      message: 'ropeBackward: invFreq[1] is nan; expected a finite number > 0',
    });
    expect(caught(() => ops.rope(y, ints([0, 1, 2]), { invFreq: new Float64Array([1, 0]) }))?.message).toMatch(/invFreq\[1\] is 0; expected a finite number > 0/);
    expect(caught(() => ops.rope(y, ints([0, 1, 2]), { invFreq: [1, 0.5] } as unknown as ops.RopeOptions))).toEqual({
      errorClass: 'TypeError',
      message: 'rope: invFreq must be a Float64Array',
    });
    expect(caught(() => ops.rope(y, ints([0, 1, 2]), { invFreq: new Float64Array(2), theta: 1e4 } as unknown as ops.RopeOptions))).toEqual({
      errorClass: 'TypeError',
      message: 'rope: pass either invFreq or theta (and scalingFactor), not both',
    });
    const l3 = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 } as const;
    expect(() => ropeInvFreq(16, 5e5, { ...l3, factor: undefined } as unknown as RopeScaling)).toThrow('rope_scaling: factor is undefined; expected a finite number > 0');
    expect(() => ropeInvFreq(16, 5e5, { ...l3, highFreqFactor: 1 })).toThrow('rope_scaling: high_freq_factor 1 is not greater than low_freq_factor 1');
    expect(() => ropeInvFreq(16, 5e5, { ...l3, lowFreqFactor: -1 })).toThrow('rope_scaling: low_freq_factor is -1; expected a finite number > 0');
    expect(() => ropeInvFreq(16, 5e5, { type: 'yarn', factor: 4 } as unknown as RopeScaling)).toThrow(
      `rope_scaling: type "yarn" is not supported; expected 'default', 'linear', 'llama3' ('dynamic' and 'yarn' are not supported)`,
    );
    expect(() => ops.ropeInvFreqTable(0, 1, 8)).toThrow('ropeInvFreqTable: theta is 0; expected a number > 0');
    expect(() => ops.ropeInvFreqTable(1e4, 1, 7)).toThrow('ropeInvFreqTable: headDim is 7; expected an even number >= 0');
  });
});
