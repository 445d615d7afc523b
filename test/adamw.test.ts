// AdamW and the sum of squares for gradient clipping (native/kernels/adamw) on the cpu.
// adamwStep in f64 against a plain-TS torch.optim.AdamW (1e-12), f32 against f64 (1e-6 relative),
// weightDecay 0 is Adam, gradScale scales g, 100 steps minimise a quadratic; sumOfSquares against
// a double loop and bit-identical for 1 and 2 threads; clipGradNorm; the argument checks.

import { tensor } from '../src/tensor';
import * as ops from '../src/ops';
import { caught } from './helpers/errors';
import { normals, seeded, uniforms } from './helpers/random';
import { runWithThreads } from './helpers/child';
import { floats, read, f32, maxAbs, cpu, type FloatType } from './helpers/tensors';


function expectRel(got: ArrayLike<number>, want: ArrayLike<number>, rel: number, floor: number, what: string): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const tol = rel * Math.max(Math.abs(want[i]), floor);
    if (!(Math.abs(got[i] - want[i]) <= tol)) {
      throw new Error(`${what}: at [${i}] expected ${want[i]}, got ${got[i]} (|err| ${Math.abs(got[i] - want[i])} > ${tol})`);
    }
  }
}

type Opts = ops.AdamWOptions;

/** torch.optim.AdamW (single-tensor, non-amsgrad), written out in plain f64. */
function adamwReference(p: Float64Array, grad: ArrayLike<number>, m: Float64Array, v: Float64Array, o: Opts): void {
  const bc1 = 1 - o.beta1 ** o.step;
  const bc2 = 1 - o.beta2 ** o.step;
  for (let i = 0; i < p.length; i++) {
    const g = grad[i] * (o.gradScale ?? 1);
    p[i] -= o.lr * o.weightDecay * p[i];
    m[i] = o.beta1 * m[i] + (1 - o.beta1) * g;
    v[i] = o.beta2 * v[i] + (1 - o.beta2) * g * g;
    const mhat = m[i] / bc1;
    const vhat = v[i] / bc2;
    p[i] -= (o.lr * mhat) / (Math.sqrt(vhat) + o.eps);
  }
}

const base = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };

/** Runs `steps` native steps from the given start; returns the final param, m, v. */
function runNative(p0: ArrayLike<number>, grads: Float64Array[], dtype: FloatType, o: Omit<Opts, 'step'>, shape = [p0.length]) {
  const p = floats(p0, shape, dtype);
  const m = floats(new Float64Array(p0.length), shape, dtype);
  const v = floats(new Float64Array(p0.length), shape, dtype);
  grads.forEach((g, s) => {
    const gt = floats(g, shape, dtype);
    ops.adamwStep(p, gt, m, v, { ...o, step: s + 1 });
    gt.dispose();
  });
  const r = { p: read(p), m: read(m), v: read(v) };
  p.dispose();
  m.dispose();
  v.dispose();
  return r;
}

function runReference(p0: ArrayLike<number>, grads: Float64Array[], o: Omit<Opts, 'step'>) {
  const p = Float64Array.from(p0);
  const m = new Float64Array(p0.length);
  const v = new Float64Array(p0.length);
  grads.forEach((g, s) => adamwReference(p, g, m, v, { ...o, step: s + 1 }));
  return { p, m, v };
}

describe('adamwStep', () => {
  const { next } = seeded('adamw');
  const n = 1000;

  function data(count = n, steps = 5) {
    const p0 = normals(next, count);
    const grads = Array.from({ length: steps }, () => normals(next, count, 0.5));
    return { p0, grads };
  }

  it('matches torch.optim.AdamW in f64 over 5 steps (1e-12)', () => {
    const { p0, grads } = data();
    for (const o of [base, { ...base, beta1: 0.5, beta2: 0.9, lr: 0.3, weightDecay: 0.5, eps: 1e-3 }]) {
      const got = runNative(p0, grads, 'f64', o, [25, 40]);
      const want = runReference(p0, grads, o);
      expectRel(got.p, want.p, 1e-12, 1, 'param');
      expectRel(got.m, want.m, 1e-12, maxAbs(want.m), 'm');
      expectRel(got.v, want.v, 1e-12, maxAbs(want.v), 'v');
    }
  });

  it('agrees between f32 and f64 within 1e-6 relative after 5 steps', () => {
    const { p0, grads } = data();
    const p32 = f32(p0);
    const g32 = grads.map(f32);
    const a = runNative(p32, g32, 'f32', base);
    const b = runNative(p32, g32, 'f64', base);
    expectRel(a.p, b.p, 1e-6, 1, 'param');
    expectRel(a.m, b.m, 1e-6, maxAbs(b.m), 'm');
    expectRel(a.v, b.v, 1e-6, maxAbs(b.v), 'v');
  });

  it('is Adam when weightDecay is 0', () => {
    const { p0, grads } = data(200, 3);
    const o = { ...base, weightDecay: 0 };
    const got = runNative(p0, grads, 'f64', o);
    // Adam written without any decay term.
    const p = Float64Array.from(p0);
    const m = new Float64Array(p.length);
    const v = new Float64Array(p.length);
    grads.forEach((g, s) => {
      const t = s + 1;
      for (let i = 0; i < p.length; i++) {
        m[i] = 0.9 * m[i] + 0.1 * g[i];
        v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
        p[i] -= (o.lr * (m[i] / (1 - 0.9 ** t))) / (Math.sqrt(v[i] / (1 - 0.999 ** t)) + o.eps);
      }
    });
    expectRel(got.p, p, 1e-12, 1, 'param');
  });

  it('multiplies the gradient by gradScale', () => {
    const { p0, grads } = data(300, 3);
    const scale = 0.37;
    const o = { ...base, eps: 1e-3, gradScale: scale };
    const got = runNative(p0, grads, 'f64', o);
    const scaled = runNative(p0, grads.map((g) => g.map((x) => x * scale)), 'f64', { ...base, eps: 1e-3 });
    const want = runReference(p0, grads, o);
    expectRel(got.p, want.p, 1e-12, 1, 'param vs reference');
    expectRel(got.m, scaled.m, 1e-12, maxAbs(scaled.m), 'm vs pre-scaled grad');
    expectRel(got.v, scaled.v, 1e-12, maxAbs(scaled.v), 'v vs pre-scaled grad');
    expectRel(got.p, scaled.p, 1e-12, 1, 'param vs pre-scaled grad');
    // The scale matters (eps is not negligible here): the unscaled run differs.
    const unscaled = runNative(p0, grads, 'f64', { ...base, eps: 1e-3 });
    expect(maxAbs(unscaled.m.map((x, i) => x - got.m[i]))).toBeGreaterThan(1e-3);
  });

  it('minimises a quadratic: 100 steps on sum((p - c)^2) bring p near c', () => {
    for (const dtype of ['f64', 'f32'] as FloatType[]) {
      const count = 64;
      const c = uniforms(next, count, -1, 1);
      const start = uniforms(next, count, -1, 1);
      const p = floats(start, [count], dtype);
      const m = floats(new Float64Array(count), [count], dtype);
      const v = floats(new Float64Array(count), [count], dtype);
      const dist0 = Math.sqrt(start.reduce((s, x, i) => s + (x - c[i]) ** 2, 0));
      for (let s = 1; s <= 100; s++) {
        const pv = read(p);
        const g = floats(pv.map((x, i) => 2 * (x - c[i])), [count], dtype);
        ops.adamwStep(p, g, m, v, { lr: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: s });
        g.dispose();
      }
      const pv = read(p);
      const dist = Math.sqrt(pv.reduce((s, x, i) => s + (x - c[i]) ** 2, 0));
      expect(dist).toBeLessThan(0.1 * dist0);
      expect(maxAbs(pv.map((x, i) => x - c[i]))).toBeLessThan(0.1);
    }
  });

  it('handles empty tensors', () => {
    const e = () => floats([], [0]);
    expect(() => ops.adamwStep(e(), e(), e(), e(), { ...base, step: 1 })).not.toThrow();
  });

  describe('argument checks', () => {
    const fresh = (dtype: FloatType = 'f64', len = 4) => ({
      p: floats([1, 2, 3, 4].slice(0, len), [len], dtype),
      g: floats([0.1, 0.2, 0.3, 0.4].slice(0, len), [len], dtype),
      m: floats(new Float64Array(len), [len], dtype),
      v: floats(new Float64Array(len), [len], dtype),
    });
    const good = { ...base, step: 1 };

    it.each([
      ['step', { step: 0 }],
      ['step', { step: 1.5 }],
      ['step', { step: NaN }],
      ['beta1', { beta1: 1 }],
      ['beta1', { beta1: -0.1 }],
      ['beta2', { beta2: 1 }],
      ['eps', { eps: 0 }],
      ['lr', { lr: -1 }],
      ['lr', { lr: Infinity }],
      ['weightDecay', { weightDecay: -0.1 }],
      ['gradScale', { gradScale: NaN }],
    ])('refuses bad %s %p with a RangeError naming it, leaving the tensors unchanged', (name, bad) => {
      const t = fresh();
      const e = caught(() => ops.adamwStep(t.p, t.g, t.m, t.v, { ...good, ...bad }));
      expect(e?.errorClass).toBe('RangeError');
      expect(e?.message).toContain(`adamwStep: ${name}`);
      expect(Array.from(t.p.toArray())).toEqual([1, 2, 3, 4]);
    });

    it('refuses a missing option with a TypeError naming it', () => {
      const t = fresh();
      const { lr: _lr, ...noLr } = good;
      const e = caught(() => ops.adamwStep(t.p, t.g, t.m, t.v, noLr as never));
      expect(e?.errorClass).toBe('TypeError');
      expect(e?.message).toContain('lr');
    });

    it('refuses a NaN or Inf gradient with a RangeError naming grad[i], writing nothing', () => {
      for (const bad of [NaN, Infinity, -Infinity]) {
        const t = fresh();
        const g = floats([0.1, 0.2, bad, bad], [4]);
        const e = caught(() => ops.adamwStep(t.p, g, t.m, t.v, good));
        expect(e?.errorClass).toBe('RangeError');
        expect(e?.message).toContain('grad[2]');
        expect(Array.from(t.p.toArray())).toEqual([1, 2, 3, 4]);
        expect(Array.from(t.m.toArray())).toEqual([0, 0, 0, 0]);
        expect(Array.from(t.v.toArray())).toEqual([0, 0, 0, 0]);
      }
    });

    it('refuses mismatched shapes with a TypeError naming the tensor', () => {
      const t = fresh();
      const short = floats([0, 0, 0], [3]);
      for (const [name, call] of [
        ['grad', () => ops.adamwStep(t.p, short, t.m, t.v, good)],
        ['m', () => ops.adamwStep(t.p, t.g, short, t.v, good)],
        ['v', () => ops.adamwStep(t.p, t.g, t.m, short, good)],
        ['grad', () => ops.adamwStep(t.p, floats([1, 2, 3, 4], [2, 2]), t.m, t.v, good)],
      ] as [string, () => void][]) {
        const e = caught(call);
        expect(e?.errorClass).toBe('TypeError');
        expect(e?.message).toContain(`adamwStep: ${name}`);
      }
    });

    it('refuses mixed dtypes with a TypeError naming them', () => {
      const t = fresh();
      const g32 = floats([0.1, 0.2, 0.3, 0.4], [4], 'f32');
      for (const [name, call] of [
        ['grad', () => ops.adamwStep(t.p, g32, t.m, t.v, good)],
        ['m', () => ops.adamwStep(t.p, t.g, floats([0, 0, 0, 0], [4], 'f32'), t.v, good)],
      ] as [string, () => void][]) {
        const e = caught(call);
        expect(e?.errorClass).toBe('TypeError');
        expect(e?.message).toContain(name);
        expect(e?.message).toContain('dtype');
      }
      const i = tensor(Int32Array.from([1, 2, 3, 4]), [4], cpu);
      const e = caught(() => ops.adamwStep(i, t.g, t.m, t.v, good));
      expect(e?.errorClass).toBe('TypeError');
      expect(e?.message).toContain('adamwStep: param');
    });

    it('refuses non-contiguous, aliased and non-Tensor arguments', () => {
      const t = fresh();
      const sq = () => floats([1, 2, 3, 4], [2, 2]);
      const p = sq();
      const e1 = caught(() => ops.adamwStep(p.transpose(0, 1), sq(), sq(), sq(), good));
      expect(e1?.errorClass).toBe('TypeError');
      expect(e1?.message).toContain('param');
      const e2 = caught(() => ops.adamwStep(t.p, t.g, t.m, t.m, good));
      expect(e2?.errorClass).toBe('TypeError');
      expect(e2?.message).toContain('overlap');
      const e3 = caught(() => ops.adamwStep(t.p, [1, 2] as never, t.m, t.v, good));
      expect(e3?.errorClass).toBe('TypeError');
      expect(e3?.message).toContain('adamwStep: grad');
    });
  });
});

describe('sumOfSquares and clipGradNorm', () => {
  const { next } = seeded('sumOfSquares');

  function loop(x: ArrayLike<number>): number {
    let s = 0;
    for (let i = 0; i < x.length; i++) s += x[i] * x[i];
    return s;
  }

  it('equals a double loop (f64 1e-12, f32 1e-6) and has shape [1]', () => {
    for (const n of [0, 1, 7, 1000, 200_003]) {
      const x = normals(next, n, 2);
      const a = ops.sumOfSquares(floats(x, [n], 'f64'));
      expect(a.shape).toEqual([1]);
      expect(a.dtype).toBe('f64');
      expectRel(read(a), [loop(x)], 1e-12, 1e-300, `f64 n=${n}`);
      const x32 = f32(x);
      const b = ops.sumOfSquares(floats(x32, [n], 'f32'));
      expect(b.dtype).toBe('f32');
      expectRel(read(b), [loop(x32)], 1e-6, 1e-300, `f32 n=${n}`);
    }
    expect(Array.from(read(ops.sumOfSquares(floats([1, 2, 3, 4, 5, 6], [2, 3]))))).toEqual([91]);
  });

  it('refuses non-contiguous and integer tensors', () => {
    const e1 = caught(() => ops.sumOfSquares(floats([1, 2, 3, 4], [2, 2]).transpose(0, 1)));
    expect(e1?.errorClass).toBe('TypeError');
    expect(e1?.message).toContain('sumOfSquares: x');
    const e2 = caught(() => ops.sumOfSquares(tensor(Int32Array.from([1]), [1], cpu)));
    expect(e2?.errorClass).toBe('TypeError');
  });

  it('gives the same bits for 1 and 2 threads', () => {
    const script =
      `const o=require('./src'); const ops=require('./src/ops'); const out=[];` +
      `for (const dt of ['f32','f64']) { const x=o.randn([1000003],{device:'cpu',dtype:dt,seed:11});` +
      ` const b=Buffer.from(ops.sumOfSquares(x).toArray().buffer); out.push(b.toString('hex')); }` +
      `process.stdout.write(JSON.stringify(out))`;
    const one = runWithThreads(script, '1');
    const two = runWithThreads(script, '2');
    expect(one.status).toBe(0);
    expect(two.status).toBe(0);
    expect(one.stdout.length).toBeGreaterThan(10);
    expect(one.stdout).toBe(two.stdout);
  });

  it('clipGradNorm returns the global norm and min(1, maxNorm / (norm + 1e-6))', () => {
    const parts = [normals(next, 100), normals(next, 37), normals(next, 1)];
    const grads = parts.map((x, i) => floats(x, [x.length], i === 1 ? 'f32' : 'f64'));
    const want = Math.sqrt(loop(parts[0]) + loop(f32(parts[1])) + loop(parts[2]));
    const small = ops.clipGradNorm(grads, 1);
    expect(Math.abs(small.norm - want)).toBeLessThanOrEqual(1e-6 * want);
    expect(Math.abs(small.scale - 1 / (want + 1e-6))).toBeLessThanOrEqual(1e-6);
    expect(small.scale).toBeLessThan(1);
    const big = ops.clipGradNorm(grads, 10 * want);
    expect(big.scale).toBe(1);
    expect(ops.clipGradNorm([], 1)).toEqual({ norm: 0, scale: 1 });
    const e = caught(() => ops.clipGradNorm(grads, 0));
    expect(e?.errorClass).toBe('RangeError');
    expect(e?.message).toContain('maxNorm');
  });

  it('clipGradNorm scale clips an AdamW step like torch.nn.utils.clip_grad_norm_', () => {
    const x = normals(next, 50, 3);
    const g = floats(x, [50]);
    const { norm, scale } = ops.clipGradNorm([g], 0.5);
    const p0 = normals(next, 50);
    const got = runNative(p0, [x], 'f64', { ...base, eps: 1e-3, gradScale: scale });
    const want = runReference(p0, [x.map((v) => (v * 0.5) / (norm + 1e-6))], { ...base, eps: 1e-3 });
    expectRel(got.m, want.m, 1e-12, maxAbs(want.m), 'm');
    expectRel(got.p, want.p, 1e-12, 1, 'param');
  });
});

describe('adamwStep checkFinite', () => {
  it('checkFinite: false skips the finite check (for callers that checked the global norm): a NaN then reaches param', () => {
    const p = tensor([1, 2], [2], { device: 'cpu' });
    const g = tensor([NaN, 1], [2], { device: 'cpu' });
    const m = tensor([0, 0], [2], { device: 'cpu' });
    const v = tensor([0, 0], [2], { device: 'cpu' });
    const o = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 };
    expect(() => ops.adamwStep(p, g, m, v, o)).toThrow(/grad\[0\] = nan is not finite/i);
    expect(Array.from(p.toArray())).toEqual([1, 2]);
    ops.adamwStep(p, g, m, v, { ...o, checkFinite: false });
    const after = p.toArray();
    expect(Number.isNaN(after[0])).toBe(true);
    expect(after[1]).toBeCloseTo(1.9, 6);
  });
});
