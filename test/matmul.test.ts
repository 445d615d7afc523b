// matmul(a, b, { transA, transB }) = op(a) · op(b) on the cpu. f64 (the plain triple loop) and f32
// (the packed, blocked, threaded GEMM) are checked against a plain-TS f64 triple loop on the values
// the tensors hold, for all four transpose combinations over a sampled grid of shapes; a large f32
// case against the f64 op; the backward identities against finite differences; bitwise
// determinism across thread counts; then the argument checks.

import * as osp from '../src';
import { caught } from './helpers/errors';
import { normals, seeded } from './helpers/random';
import { FloatType, DTYPES, cpu, held, floats, read, maxAbs, expectWithin, gradcheck, sampleEntries } from './helpers/tensors';
import { expectSameOutputUnderThreads } from './helpers/child';

/** Relative tolerance against the f64 reference: f64 to 1e-12, f32 (f32 products and sums) to 1e-5. */
const REL: Record<FloatType, number> = { f64: 1e-12, f32: 1e-5 };

interface Problem {
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  /** a as stored: [M, K], or [K, M] with transA; row-major, the values the tensor holds. */
  a: Float64Array;
  /** b as stored: [K, N], or [N, K] with transB. */
  b: Float64Array;
}

const shapeA = (p: Problem) => (p.transA ? [p.K, p.M] : [p.M, p.K]);
const shapeB = (p: Problem) => (p.transB ? [p.N, p.K] : [p.K, p.N]);

function randomProblem(next: () => number, M: number, N: number, K: number, transA: boolean, transB: boolean, dtype: FloatType): Problem {
  return { M, N, K, transA, transB, a: held(normals(next, M * K), dtype), b: held(normals(next, K * N), dtype) };
}

/** The plain-TS f64 triple loop: c[i, j] = sum_k op(a)[i, k] op(b)[k, j]. */
function refMatmul(p: Problem): Float64Array {
  const { M, N, K } = p;
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += (p.transA ? p.a[k * M + i] : p.a[i * K + k]) * (p.transB ? p.b[j * K + k] : p.b[k * N + j]);
      c[i * N + j] = s;
    }
  }
  return c;
}

/**
 * Tolerance: |got - want| <= rel * max(|want|, sqrt(K) * max|a| * max|b|). The floor is the size of
 * a sum of K products of random sign (it grows like sqrt(K)): an entry that cancels to near 0 still
 * carries the roundings of terms of that size, which is what any summation order leaves.
 */
const tolerance = (p: Problem, want: Float64Array, rel: number) => {
  const floor = Math.sqrt(p.K) * maxAbs(p.a) * maxAbs(p.b);
  return (i: number) => rel * Math.max(Math.abs(want[i]), floor);
};

const run = (p: Problem, dtype: FloatType) =>
  osp.scope(() => {
    const c = osp.matmul(floats(p.a, shapeA(p), dtype), floats(p.b, shapeB(p), dtype), { transA: p.transA, transB: p.transB });
    expect(c.shape).toEqual([p.M, p.N]);
    expect(c.dtype).toBe(dtype);
    expect(c.device).toBe('cpu');
    return read(c);
  });

const SIZES = [1, 3, 7, 8, 9, 64, 65, 257];
const TRANSPOSES: [boolean, boolean][] = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];
const CASES = DTYPES.flatMap((dtype) => TRANSPOSES.map(([tA, tB]) => [dtype, tA, tB] as [FloatType, boolean, boolean]));

describe('matmul against the plain-TS f64 triple loop', () => {
  const { next } = seeded('matmul grid');
  const pick = () => SIZES[Math.floor(next() * SIZES.length)];
  // Every size in every position (the diagonal and two rotations), [1, 1, 1] and 4 random triples.
  const grid: [number, number, number][] = SIZES.flatMap((_, i) => [
    [SIZES[i], SIZES[i], SIZES[i]],
    [SIZES[i], SIZES[(i + 3) % SIZES.length], SIZES[(i + 5) % SIZES.length]],
    [SIZES[(i + 6) % SIZES.length], SIZES[i], SIZES[(i + 1) % SIZES.length]],
  ] as [number, number, number][]);
  for (let r = 0; r < 4; r++) grid.push([pick(), pick(), pick()]);

  it.each(CASES)('%s, transA %s, transB %s: every sampled shape matches to the dtype tolerance', (dtype, transA, transB) => {
    for (const [M, N, K] of grid) {
      const p = randomProblem(next, M, N, K, transA, transB, dtype);
      const want = refMatmul(p);
      expectWithin(run(p, dtype), want, tolerance(p, want, REL[dtype]), `matmul ${dtype} M=${M} N=${N} K=${K} transA=${transA} transB=${transB}`);
    }
  });

  it.each(DTYPES)('%s: [1, 1] x [1, 1] is the product of the two numbers', (dtype) => {
    const got = osp.scope(() => read(osp.matmul(floats([3], [1, 1], dtype), floats([-0.5], [1, 1], dtype))));
    expect(got).toEqual(Float64Array.of(-1.5));
  });

  it.each(CASES)('%s, transA %s, transB %s: K = 0 gives zeros; M = 0 or N = 0 gives an empty result', (dtype, transA, transB) => {
    osp.scope(() => {
      const a = (M: number, K: number) => floats(new Float64Array(M * K), transA ? [K, M] : [M, K], dtype);
      const b = (K: number, N: number) => floats(new Float64Array(K * N), transB ? [N, K] : [K, N], dtype);
      const z = osp.matmul(a(3, 0), b(0, 4), { transA, transB });
      expect(z.shape).toEqual([3, 4]);
      expect(z.dtype).toBe(dtype);
      expect(read(z)).toEqual(new Float64Array(12));
      expect(osp.matmul(a(0, 5), b(5, 4), { transA, transB }).shape).toEqual([0, 4]);
      expect(osp.matmul(a(3, 5), b(5, 0), { transA, transB }).shape).toEqual([3, 0]);
    });
  });
});

describe('matmul f32 at a larger shape against the f64 op', () => {
  const { next } = seeded('matmul large');

  it.each(TRANSPOSES)('300x500 times 500x400, transA %s, transB %s: to 1e-5', (transA, transB) => {
    const p = randomProblem(next, 300, 400, 500, transA, transB, 'f32');
    const want = Float64Array.from(run(p, 'f64'));
    expectWithin(run(p, 'f32'), want, tolerance(p, want, REL.f32), `matmul f32 300x400x500 transA=${transA} transB=${transB}`);
  });
});

describe('matmul backward identities against finite differences (f64)', () => {
  const { next } = seeded('matmul finite differences');
  // L(a, b) = sum(G ⊙ matmul(a, b, opts)) is linear in each of a and b, so the central difference
  // (L(x + h) - L(x - h)) / 2h has no truncation error (no Richardson step needed); what is left is
  // rounding, about u |L| / h ~ 1e-16 * 1e2 / 2^-8 ~ 1e-12 here (less: gradcheck differences L
  // element by element). Rule: |fd - analytic| <= 1e-6 * max(|fd|, |analytic|, 1), on 12 entries (or all).
  // The gradients are themselves matmuls: with op(a) [M, K], op(b) [K, N],
  //   d op(a) = G op(b)^T, d op(b) = op(a)^T G,
  // so da = matmul(G, b, {transB: !transB}) (or matmul(b, G, {transA: transB, transB: true}) for a
  // stored transposed) and db = matmul(a, G, {transA: !transA}) (or matmul(G, a, {transA: true,
  // transB: transA})). For the Linear layer (transB): dX = matmul(dY, W), dW = matmul(dY, X, {transA}).
  const H = 2 ** -8;
  const SAMPLES = 12;

  it.each(TRANSPOSES)('transA %s, transB %s: sampled entries of da and db match differences of sum(G * matmul(a, b))', (transA, transB) => {
    for (const [M, N, K] of [
      [1, 1, 1],
      [5, 7, 9],
      [17, 9, 65],
    ]) {
      const p = randomProblem(next, M, N, K, transA, transB, 'f64');
      const G = normals(next, M * N);
      osp.scope(() => {
        const g = floats(G, [M, N], 'f64');
        const A = floats(p.a, shapeA(p), 'f64');
        const B = floats(p.b, shapeB(p), 'f64');
        const da = read(transA ? osp.matmul(B, g, { transA: transB, transB: true }) : osp.matmul(g, B, { transB: !transB }));
        const db = read(transB ? osp.matmul(g, A, { transA: true, transB: transA }) : osp.matmul(A, g, { transA: !transA }));
        const c = (a: Float64Array, b: Float64Array) => osp.scope(() => read(osp.matmul(floats(a, shapeA(p), 'f64'), floats(b, shapeB(p), 'f64'), { transA, transB })));
        const fd = { weights: G, step: H, richardson: false, floor: 1, label: (i: number) => `[${i}] (M=${M} N=${N} K=${K})` };
        gradcheck('da', da, (a) => c(a, p.b), p.a, { ...fd, entries: sampleEntries(next, p.a.length, SAMPLES) });
        gradcheck('db', db, (b) => c(p.a, b), p.b, { ...fd, entries: sampleEntries(next, p.b.length, SAMPLES) });
      });
    }
  });
});

describe('matmul f32 determinism', () => {
  const { seed } = seeded('matmul determinism');

  it('gives the same bits under OSP_NUM_THREADS=1 and 2 (300x500 · (400x500)^T and 257x300^T · 300x130)', () => {
    const script =
      `const o=require('./src');` +
      `const s=${seed % 1000000};` +
      `const x=o.randn([300,500],{device:'cpu',seed:s}), w=o.randn([400,500],{device:'cpu',seed:s+1});` +
      `const a=o.randn([300,257],{device:'cpu',seed:s+2}), b=o.randn([300,130],{device:'cpu',seed:s+3});` +
      `const c1=o.matmul(x,w,{transB:true}).toArray(), c2=o.matmul(a,b,{transA:true}).toArray();` +
      `process.stdout.write(Buffer.from(c1.buffer).toString('base64')+'|'+Buffer.from(c2.buffer).toString('base64'))`;
    expectSameOutputUnderThreads(script, 300 * 400 * 4);
  });
});

describe('matmul argument checks', () => {
  const m = (shape: number[], dtype: FloatType = 'f32') => floats(new Float64Array(shape.reduce((x, y) => x * y, 1)), shape, dtype);

  it('refuses a rank-1 input, naming it', () => {
    osp.scope(() => {
      expect(caught(() => osp.matmul(m([4]), m([4, 2])))).toEqual({
        errorClass: 'TypeError',
        message: 'matmul: a has shape [4]; expected 2 dimensions',
      });
      expect(caught(() => osp.matmul(m([2, 4]), m([4])))).toEqual({
        errorClass: 'TypeError',
        message: 'matmul: b has shape [4]; expected 2 dimensions',
      });
    });
  });

  it('refuses inner dimensions that disagree, naming both shapes', () => {
    osp.scope(() => {
      expect(caught(() => osp.matmul(m([3, 4]), m([5, 6])))).toEqual({
        errorClass: 'TypeError',
        message: 'matmul: a is [3, 4] and b is [5, 6]; op(a) has 4 columns but op(b) has 5 rows (transA false, transB false); expected them equal',
      });
      const e = caught(() => osp.matmul(m([3, 4]), m([5, 6]), { transA: true, transB: true }));
      expect(e?.errorClass).toBe('TypeError');
      expect(e?.message).toContain('op(a) has 3 columns but op(b) has 6 rows (transA true, transB true)');
    });
  });

  it('refuses mismatched dtypes and i32 inputs, naming the argument', () => {
    osp.scope(() => {
      expect(caught(() => osp.matmul(m([2, 2], 'f32'), m([2, 2], 'f64')))).toEqual({
        errorClass: 'TypeError',
        message: 'matmul: a has dtype f32 but b has dtype f64; expected the same dtype',
      });
      const i = osp.tensor(new Int32Array(4), [2, 2], cpu);
      expect(caught(() => osp.matmul(i, m([2, 2])))).toEqual({
        errorClass: 'TypeError',
        message: 'matmul: a has dtype i32 on cpu; expected f32 or f64',
      });
      expect(caught(() => osp.matmul(m([2, 2]), i))).toEqual({
        errorClass: 'TypeError',
        message: 'matmul: b has dtype i32 on cpu; expected f32 or f64',
      });
    });
  });

  it('refuses a non-contiguous view (transpose()), naming the argument', () => {
    osp.scope(() => {
      const e = caught(() => osp.matmul(m([2, 3]), m([4, 3]).transpose(0, 1)));
      expect(e?.errorClass).toBe('TypeError');
      expect(e?.message).toMatch(/^matmul: b is a non-contiguous view .*expected contiguous memory/);
      const f = caught(() => osp.matmul(m([3, 2]).transpose(0, 1), m([3, 4])));
      expect(f?.message).toMatch(/^matmul: a is a non-contiguous view/);
    });
  });

  it('refuses a non-tensor, a disposed tensor and a non-boolean flag', () => {
    const b = m([2, 2]);
    expect(caught(() => osp.matmul([1, 2] as unknown as osp.Tensor, b))?.message).toBe(
      'matmul: a is not a Tensor; expected a Tensor made by osp.tensor()',
    );
    const d = m([2, 2]);
    d.dispose();
    expect(caught(() => osp.matmul(d, b))).toEqual({ errorClass: 'TypeError', message: 'matmul: a has been disposed; expected a live tensor' });
    expect(caught(() => osp.matmul(b, b, { transA: 1 as unknown as boolean }))).toEqual({
      errorClass: 'TypeError',
      message: 'matmul: transA must be a boolean',
    });
    b.dispose();
  });

  it('refuses an unknown impl, naming the choices', () => {
    const b = m([2, 2]);
    expect(caught(() => osp.matmul(b, b, { impl: 'fast' as unknown as 'auto' }))).toEqual({
      errorClass: 'TypeError',
      message: "matmul: impl is fast; expected 'auto', 'own' or 'cublas'",
    });
    b.dispose();
  });

  it('runs any impl on the cpu (the choice concerns cuda only)', () => {
    const a = osp.tensor([1, 2, 3, 4], [2, 2], { device: 'cpu' });
    expect(Array.from(osp.matmul(a, a, { impl: 'cublas' }).toArray())).toEqual([7, 10, 15, 22]);
    a.dispose();
  });
});

describe('matmul accumulate (C += op(a) op(b), a GEMM with beta 1)', () => {
  const { next } = seeded('matmul accumulate');
  const host = (n: number) => Float64Array.from({ length: n }, () => 2 * next() - 1);
  for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
    it(`adds the product into the given tensor and returns it (transA ${transA}, transB ${transB}; f64 exact, f32 within 1e-5)`, () => {
      const M = 37, N = 45, K = 300; // K spans two of the f32 kernel's K slices
      const A = host(M * K), B = host(K * N), C0 = host(M * N);
      const aShape = transA ? [K, M] : [M, K], bShape = transB ? [N, K] : [K, N];
      const want = new Float64Array(M * N);
      for (let i = 0; i < M; i++)
        for (let j = 0; j < N; j++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += A[transA ? k * M + i : i * K + k] * B[transB ? j * K + k : k * N + j];
          want[i * N + j] = C0[i * N + j] + s;
        }
      for (const dtype of ['f64', 'f32'] as const) {
        const c = osp.tensor(dtype === 'f64' ? C0 : Float32Array.from(C0), [M, N], { dtype, device: 'cpu' });
        const a = osp.tensor(dtype === 'f64' ? A : Float32Array.from(A), aShape, { dtype, device: 'cpu' });
        const b = osp.tensor(dtype === 'f64' ? B : Float32Array.from(B), bShape, { dtype, device: 'cpu' });
        expect(osp.matmul(a, b, { transA, transB, accumulate: c })).toBe(c);
        const got = c.toArray();
        const tol = dtype === 'f64' ? 1e-12 : 1e-5 * Math.sqrt(K);
        for (let i = 0; i < M * N; i++) expect(Math.abs(got[i] - want[i])).toBeLessThan(tol);
        for (const t of [a, b, c]) t.dispose();
      }
    });
  }

  it('refuses an accumulate tensor of the wrong shape or dtype, naming it', () => {
    const a = osp.zeros([3, 4], { device: 'cpu' });
    const b = osp.zeros([4, 5], { device: 'cpu' });
    expect(() => osp.matmul(a, b, { accumulate: osp.zeros([3, 4], { device: 'cpu' }) })).toThrow(/matmul: accumulate has shape \[3, 4\]; expected \[3, 5\]/);
    expect(() => osp.matmul(a, b, { accumulate: osp.zeros([3, 5], { dtype: 'f64' }) })).toThrow(/accumulate/);
  });

  it('with K = 0 leaves the tensor as it was', () => {
    const c = osp.tensor(Float32Array.of(1, 2, 3, 4), [2, 2], { device: 'cpu' });
    osp.matmul(osp.zeros([2, 0], { device: 'cpu' }), osp.zeros([0, 2], { device: 'cpu' }), { accumulate: c });
    expect(Array.from(c.toArray())).toEqual([1, 2, 3, 4]);
  });
});

describe('matmul tf32', () => {
  it('on the cpu computes in f32 whatever tf32 says: the same bits', () => {
    const a = osp.randn([33, 70], { device: 'cpu', seed: 3 });
    const b = osp.randn([70, 21], { device: 'cpu', seed: 4 });
    const plain = osp.matmul(a, b).toArray();
    const tf = osp.matmul(a, b, { tf32: true }).toArray();
    expect(Buffer.from(tf.buffer).equals(Buffer.from(plain.buffer))).toBe(true);
  });

  it('refuses a tf32 that is not a boolean, naming it', () => {
    const a = osp.zeros([2, 2], { device: 'cpu' });
    expect(() => osp.matmul(a, a, { tf32: 1 as unknown as boolean })).toThrow(/matmul: tf32 is 1; expected true or false/);
  });
});
