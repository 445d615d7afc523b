// Small shared helpers of the CPU kernel tests: tensors from plain numbers, the values a dtype
// holds, read-back, and an elementwise tolerance check that names the worst element.
import * as osp from '../../src';

export type FloatType = 'f32' | 'f64';
export const DTYPES: FloatType[] = ['f64', 'f32'];
export const cpu = { device: 'cpu' } as const;

/** The values a tensor of that dtype holds (f32: rounded to single precision). */
export function held(a: ArrayLike<number>, dtype: FloatType): Float64Array {
  return Float64Array.from(a as ArrayLike<number>, (v) => (dtype === 'f32' ? Math.fround(v) : v));
}

/** A CPU tensor of `dtype` with the given shape (default: a vector). */
export function floats(a: ArrayLike<number>, shape: number[] | FloatType, dtype?: FloatType): osp.Tensor {
  const [s, d] = typeof shape === 'string' ? [[a.length], shape] : [shape, dtype ?? 'f64'];
  return osp.tensor(d === 'f64' ? Float64Array.from(a) : Float32Array.from(a), s, cpu);
}

export function ints(a: ArrayLike<number>): osp.Tensor {
  return osp.tensor(Int32Array.from(a), [a.length], cpu);
}

export function read(t: osp.Tensor): number[] {
  return Array.from(t.toArray());
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
