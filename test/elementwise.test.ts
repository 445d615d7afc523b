// Elementwise ops (add, sub, mul, unary, affine, sum) on the CPU against Math.* in f64 and f32,
// the stable forms of sigmoid / softplus / log sigmoid at +-1e4, and shape checking.
import * as osp from '../src';
import type { UnaryOp } from '../src';
import { normals, seeded, uniforms } from './helpers/random';
import { caught } from './helpers/errors';

type FloatType = 'f32' | 'f64';
const DTYPES: FloatType[] = ['f64', 'f32'];
const EPS: Record<FloatType, number> = { f64: 2 ** -53, f32: 2 ** -24 }; // unit roundoff

/** Values as the tensor of that dtype holds them (f32: rounded to single precision). */
function held(a: ArrayLike<number>, dtype: FloatType): number[] {
  return Array.from(a, (v) => (dtype === 'f32' ? Math.fround(v) : v));
}

function t(a: number[], dtype: FloatType, shape: number[] = [a.length]): osp.Tensor {
  return osp.tensor(Float64Array.from(a), shape, { dtype, device: 'cpu' });
}

function read(x: osp.Tensor): number[] {
  return Array.from(x.toArray());
}

/** Fails with the worst element when |got - want| > tol(i) anywhere. */
function expectWithin(got: number[], want: number[], tol: (i: number) => number, what: string): void {
  expect(got.length).toBe(want.length);
  let worst = -1;
  let worstRatio = 0;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!);
    const ratio = err / tol(i);
    if (!(err <= tol(i)) && !(ratio <= worstRatio)) {
      worstRatio = ratio;
      worst = i;
    }
  }
  if (worst >= 0) {
    throw new Error(`${what}: at [${worst}] input-derived expected ${want[worst]}, got ${got[worst]} (|err| > ${tol(worst)})`);
  }
  expect(worst).toBe(-1);
}

function softplus(z: number): number {
  return Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z)));
}

function sigmoid(z: number): number {
  const e = Math.exp(-Math.abs(z));
  return z >= 0 ? 1 / (1 + e) : e / (1 + e);
}

const UNARY: Record<UnaryOp, (x: number) => number> = {
  neg: (x) => -x,
  sigmoid,
  softplus,
  logSigmoid: (x) => -softplus(-x),
  square: (x) => x * x,
  exp: Math.exp,
  log: Math.log,
};

describe('binary ops against JavaScript arithmetic', () => {
  const { next } = seeded('elementwise binary');
  const OPS = { add: (a: number, b: number) => a + b, sub: (a: number, b: number) => a - b, mul: (a: number, b: number) => a * b };
  const cases = DTYPES.flatMap((dtype) => (['add', 'sub', 'mul'] as const).map((op) => [op, dtype] as const));

  // One IEEE operation on the held values, rounded once to the dtype: the result is exact.
  it.each(cases)('%s in %s is the correctly rounded result, element by element, on a [4, 25] shape', (op, dtype) => {
    const a = held(normals(next, 100, 5), dtype);
    const b = held(normals(next, 100, 5), dtype);
    const got = osp.scope(() => {
      const out = osp[op](t(a, dtype, [4, 25]), t(b, dtype, [4, 25]));
      expect(out.shape).toEqual([4, 25]);
      expect(out.dtype).toBe(dtype);
      return read(out);
    });
    expect(got).toEqual(held(a.map((v, i) => OPS[op](v, b[i]!)), dtype));
  });

  it.each(['add', 'sub', 'mul'] as const)('%s of tensors with different shapes is a TypeError naming the shapes', (op) => {
    osp.scope(() => {
      for (const [sa, sb] of [
        [[3], [4]],
        [[2, 3], [3, 2]],
        [[6], [2, 3]],
      ]) {
        const a = t(Array(sa!.reduce((p, q) => p * q, 1)).fill(1), 'f32', sa);
        const b = t(Array(sb!.reduce((p, q) => p * q, 1)).fill(1), 'f32', sb);
        const err = caught(() => osp[op](a, b));
        expect(err?.errorClass).toBe('TypeError');
        expect(err?.message).toMatch(/shape/);
      }
    });
  });
});

describe('unary ops against Math.*', () => {
  const { next } = seeded('elementwise unary');

  function inputsFor(op: UnaryOp, n: number): number[] {
    if (op === 'log') return Array.from(uniforms(next, n, -7, 5), (v) => Math.exp(v)); // positive, 1e-3 .. 150
    if (op === 'exp') return Array.from(uniforms(next, n, -30, 30));
    return Array.from(normals(next, n, 8));
  }

  // f64: neg and square are exact; the rest may differ from V8's Math.* by an ulp or two of libm.
  // f32: the f64 function of the held input, to a few f32 ulps (relative 1e-6).
  const ops = Object.keys(UNARY) as UnaryOp[];
  const cases = DTYPES.flatMap((dtype) => ops.map((op) => [op, dtype] as const));
  it.each(cases)('%s in %s matches the f64 Math.* formula', (op, dtype) => {
    const x = held(inputsFor(op, 200), dtype);
    const got = osp.scope(() => read(osp.unary(op, t(x, dtype))));
    const want = x.map(UNARY[op]);
    const exact = op === 'neg' || op === 'square';
    if (exact) {
      expect(got).toEqual(held(want, dtype));
      return;
    }
    const rel = dtype === 'f64' ? 4e-15 : 1e-6;
    expectWithin(got, want, (i) => rel * Math.abs(want[i]!) + (dtype === 'f32' ? 1e-38 : 1e-300), `${op} ${dtype}`);
  });

  const stableCases = DTYPES.flatMap((dtype) => (['sigmoid', 'softplus', 'logSigmoid'] as const).map((op) => [op, dtype] as const));
  const EXACT_AT_1E4: Record<'sigmoid' | 'softplus' | 'logSigmoid', [number, number]> = {
    sigmoid: [0, 1],
    softplus: [0, 1e4],
    logSigmoid: [-1e4, 0],
  };
  it.each(stableCases)('%s in %s is finite from -1e4 to 1e4 and exact at +-1e4', (op, dtype) => {
    const sweep = [-1e4, -1e3, -710, -100, -89, -50, -1, 0, 1, 50, 89, 100, 710, 1e3, 1e4];
    const got = osp.scope(() => read(osp.unary(op, t(sweep, dtype))));
    expect(got.every(Number.isFinite)).toBe(true);
    // Adding 0 turns -0 into 0: the sign of a zero is not part of the claim.
    expect([got[0]! + 0, got[sweep.length - 1]! + 0]).toEqual(EXACT_AT_1E4[op]);
    const want = sweep.map(UNARY[op]);
    const rel = dtype === 'f64' ? 4e-15 : 1e-6;
    // f32 results below the normal range (e.g. exp(-100)) carry absolute, not relative, precision.
    expectWithin(got, want, (i) => rel * Math.abs(want[i]!) + (dtype === 'f32' ? 1e-38 : 1e-300), `${op} ${dtype}`);
  });
});

describe('affine and sum', () => {
  const { next } = seeded('elementwise affine/sum');

  // scale * x + shift: one multiply and one add (or one fused multiply-add), each rounding by at
  // most the unit roundoff u, so |error| <= 2u (|scale x| + |shift|).
  it.each(DTYPES)('affine in %s is scale * x + shift to the rounding of two operations', (dtype) => {
    const x = held(normals(next, 300, 10), dtype);
    const [scale, shift] = held(normals(next, 2, 3), dtype) as [number, number];
    const got = osp.scope(() => read(osp.affine(t(x, dtype), scale, shift)));
    const want = x.map((v) => scale * v + shift);
    expectWithin(got, want, (i) => 2 * EPS[dtype] * (Math.abs(scale * x[i]!) + Math.abs(shift)) + 1e-300, `affine ${dtype}`);
  });

  it.each(DTYPES)('affine in %s with the default shift is scale * x', (dtype) => {
    const x = held(normals(next, 50, 10), dtype);
    const scale = held(normals(next, 1, 3), dtype)[0]!;
    const got = osp.scope(() => read(osp.affine(t(x, dtype), scale)));
    expect(got).toEqual(held(x.map((v) => scale * v), dtype));
  });

  // Any summation order is within n u sum |x| of the exact sum; the JavaScript sum in f64 is within
  // n 2^-53 sum |x| of it too.
  it.each(DTYPES)('sum in %s is a [1] tensor holding the sum of all elements of a [7, 143] tensor', (dtype) => {
    const x = held(normals(next, 7 * 143, 4), dtype);
    const out = osp.scope(() => {
      const s = osp.sum(t(x, dtype, [7, 143]));
      return { shape: s.shape, dtype: s.dtype, values: read(s) };
    });
    expect(out.shape).toEqual([1]);
    expect(out.dtype).toBe(dtype);
    let want = 0;
    let abs = 0;
    for (const v of x) {
      want += v;
      abs += Math.abs(v);
    }
    const n = x.length;
    expect(Math.abs(out.values[0]! - want)).toBeLessThanOrEqual(n * (EPS[dtype] + EPS.f64) * abs + EPS[dtype] * Math.abs(want));
  });

  it('sum of an empty tensor is 0', () => {
    const got = osp.scope(() => read(osp.sum(t([], 'f64', [0]))));
    expect(got).toEqual([0]);
  });
});
