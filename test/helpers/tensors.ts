// The vocabulary the CPU kernel suites share: tensors from plain numbers, the values a dtype holds,
// read-back in f64, tolerance checks that name the failing element, and `gradcheck`, the one central
// finite-difference check of a backward against its forward.
import * as osp from '../../src';

export type FloatType = 'f32' | 'f64';
export const DTYPES: FloatType[] = ['f64', 'f32'];
export const cpu = { device: 'cpu' } as const;

/** The values a tensor of that dtype holds (f32: rounded to single precision). */
export function held(a: ArrayLike<number>, dtype: FloatType): Float64Array {
  return Float64Array.from(a, (v) => (dtype === 'f32' ? Math.fround(v) : v));
}

/** The values an f32 tensor holds. */
export const f32 = (a: ArrayLike<number>): Float64Array => held(a, 'f32');

/** A CPU tensor of `dtype` (default f64) with the given shape (default: a vector). */
export function floats(a: ArrayLike<number>, shape: number[] | FloatType, dtype?: FloatType): osp.Tensor {
  const [s, d] = typeof shape === 'string' ? [[a.length], shape] : [shape, dtype ?? 'f64'];
  return osp.tensor(d === 'f64' ? Float64Array.from(a) : Float32Array.from(a), s, cpu);
}

export function ints(a: ArrayLike<number>): osp.Tensor {
  return osp.tensor(Int32Array.from(a), [a.length], cpu);
}

/** A tensor's values in f64 (f32 widens exactly). */
export function read(t: osp.Tensor): Float64Array {
  return Float64Array.from(t.toArray());
}

export const maxAbs = (x: ArrayLike<number>): number => Array.from(x).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Fails naming the worst element when |got - want| > tol(i) anywhere (NaN fails). */
export function expectWithin(got: ArrayLike<number>, want: ArrayLike<number>, tol: (i: number) => number, what: string): void {
  expect(got.length).toBe(want.length);
  let worst = -1;
  let worstRatio = 0;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    const ratio = err / tol(i);
    if (!(err <= tol(i)) && !(ratio <= worstRatio)) {
      worstRatio = ratio;
      worst = i;
    }
  }
  if (worst >= 0) {
    throw new Error(
      `${what}: at [${worst}] expected ${want[worst]}, got ${got[worst]} (|err| ${Math.abs(got[worst] - want[worst])} > ${tol(worst)})`,
    );
  }
}

/** Fails naming the worst element with |got - want| > rel * max(|want|, floor) (NaN fails); floor may vary per element. */
export function expectRel(got: ArrayLike<number>, want: ArrayLike<number>, rel: number, floor: number | ((i: number) => number), what: string): void {
  expectWithin(got, want, (i) => rel * Math.max(Math.abs(want[i]), typeof floor === 'number' ? floor : floor(i)), what);
}

/** Entries to check of an array of length n: `first`, then distinct uniform draws up to `count` in all (every entry when n <= count). */
export function sampleEntries(next: () => number, n: number, count: number, first: number[] = []): number[] {
  if (n <= count) return Array.from({ length: n }, (_, i) => i);
  const entries = new Set(first);
  while (entries.size < count) entries.add(Math.floor(next() * n));
  return Array.from(entries);
}

/**
 * The default finite-difference step at x_i: 1e-3, and below |x_i| when |x_i| < 1, down to 1e-6.
 * A function whose curvature grows like 1/|x| near 0 (rmsNorm of one element is nearly sign(x) * w)
 * is not differenced to 1e-6 by a fixed 1e-3 step at a small draw (modelOps, seed 773031737).
 */
export const stepBelowX = (xi: number): number => 1e-3 * Math.min(1, Math.max(Math.abs(xi), 1e-3));

export interface GradcheckOptions {
  /** The entries of x to check (repeats allowed). */
  entries: Iterable<number>;
  /**
   * L(x) = sum_k weights[k] * f(x)[k]; without weights f returns L itself. The difference is taken
   * element by element, sum_k weights[k] (f(x+)[k] - f(x-)[k]): the same number without the
   * rounding of the terms the perturbation leaves unchanged.
   */
  weights?: ArrayLike<number>;
  /** The step at x_i (default stepBelowX); a number for a fixed one. */
  step?: number | ((xi: number) => number);
  /**
   * One Richardson step (default on): D(h) = (L(x+h) - L(x-h)) / 2h has error c h^2 + O(h^4), so
   * (4 D(h/2) - D(h)) / 3 has O(h^4). Off where L is linear in x or a plain difference's rounding
   * budget was worked out.
   */
  richardson?: boolean;
  /** Rule: |fd - analytic| <= rel * max(|fd|, |analytic|, floor(i)). rel defaults to 1e-6; 0 asks for equality. */
  rel?: number;
  floor?: number | ((i: number) => number);
  /** How a failing entry is named (default `[i]`). */
  label?: (i: number) => string;
}

/**
 * Checks a gradient against central finite differences in f64: for each entry i, d L / d x_i by
 * (L(x + h e_i) - L(x - h e_i)) / ((x_i + h) - (x_i - h)) (divided by the step the perturbed points
 * really differ by), Richardson-extrapolated unless told otherwise. Fails naming the worst entry.
 */
export function gradcheck(
  what: string,
  analytic: ArrayLike<number>,
  f: (x: Float64Array) => ArrayLike<number> | number,
  x: ArrayLike<number>,
  opts: GradcheckOptions,
): void {
  expect(analytic.length).toBe(x.length);
  const { weights, step = stepBelowX, richardson = true, rel = 1e-6, floor = 0, label = (i: number) => `[${i}]` } = opts;
  const x0 = Float64Array.from(x);
  const L = (v: Float64Array): ArrayLike<number> => {
    const y = f(v);
    return typeof y === 'number' ? [y] : y;
  };
  const difference = (i: number, h: number): number => {
    const plus = Float64Array.from(x0);
    const minus = Float64Array.from(x0);
    plus[i] += h;
    minus[i] -= h;
    const yp = L(plus);
    const ym = L(minus);
    let dL = 0;
    for (let k = 0; k < yp.length; k++) dL += (weights === undefined ? 1 : weights[k]) * (yp[k] - ym[k]);
    return dL / (plus[i] - minus[i]);
  };
  let worst = { ratio: 0, i: -1, fd: 0, tol: 0 };
  for (const i of opts.entries) {
    const h = typeof step === 'number' ? step : step(x0[i]);
    const fd = richardson ? (4 * difference(i, h / 2) - difference(i, h)) / 3 : difference(i, h);
    const err = Math.abs(fd - analytic[i]);
    const tol = rel * Math.max(Math.abs(fd), Math.abs(analytic[i]), typeof floor === 'number' ? floor : floor(i));
    if (!(err <= tol) && !(err / tol <= worst.ratio)) worst = { ratio: err / tol, i, fd, tol };
  }
  if (worst.i >= 0) {
    const { i, fd, tol } = worst;
    throw new Error(`${what}${label(i)}: analytic ${analytic[i]}, finite difference ${fd} (|err| ${Math.abs(fd - analytic[i])} > ${tol})`);
  }
}
