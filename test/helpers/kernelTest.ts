// The small vocabulary the model-op kernel suites share (attention, kv cache, AdamW, model ops): CPU
// tensors from plain numbers, read-back in f64, f32 rounding, and a relative check naming the element.
import { Tensor, tensor } from '../../src/tensor';

export type FloatType = 'f32' | 'f64';
export const cpu = { device: 'cpu' } as const;

export const f = (a: ArrayLike<number>, shape: number[], dtype: FloatType = 'f64'): Tensor =>
  tensor(dtype === 'f64' ? Float64Array.from(a) : Float32Array.from(a), shape, cpu);
export const ints = (a: ArrayLike<number>): Tensor => tensor(Int32Array.from(a), [a.length], cpu);
export const read = (t: Tensor): Float64Array => Float64Array.from(t.toArray());
export const f32 = (a: ArrayLike<number>): Float64Array => Float64Array.from(a, (v) => Math.fround(v));
export const maxAbs = (x: ArrayLike<number>): number => Array.from(x).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** Fails naming the first element with |got - want| > rel * max(|want|, floor) (NaN fails). */
export function expectRel(got: ArrayLike<number>, want: ArrayLike<number>, rel: number, floor: number, what: string): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const tol = rel * Math.max(Math.abs(want[i]), floor);
    if (!(Math.abs(got[i] - want[i]) <= tol)) {
      throw new Error(`${what}: at [${i}] expected ${want[i]}, got ${got[i]} (|err| ${Math.abs(got[i] - want[i])} > ${tol})`);
    }
  }
}
