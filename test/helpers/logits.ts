// The token log-prob problem that tokenLogprobs.test.ts and unfused.test.ts share: N rows of V
// logits, a target and an upstream gradient g per row, held in a dtype; and the tolerances of the
// log-probs and of their gradient g (onehot - softmax).
import { integers, normals } from './random';
import { FloatType, held } from './tensors';

export interface LogitsProblem {
  N: number;
  V: number;
  /** [N * V] logits, row-major, as the tensor holds them. */
  x: Float64Array;
  /** [N] target columns (-100, the default ignoreIndex, on the `ignored` rows). */
  targets: Int32Array;
  /** [N] upstream gradient, as the tensor holds it. */
  g: Float64Array;
}

/** Logits N(0, scale^2), uniform targets, g N(0, 1), all as `dtype` holds them. */
export function randomLogits(next: () => number, N: number, V: number, dtype: FloatType, opts: { scale?: number; ignored?: number[] } = {}): LogitsProblem {
  const x = held(normals(next, N * V, opts.scale ?? 2), dtype);
  const targets = integers(next, N, 0, V);
  for (const n of opts.ignored ?? []) if (n < N) targets[n] = -100;
  return { N, V, x, targets, g: held(normals(next, N, 1), dtype) };
}

/** Row n of the logits (a view: writing it changes the problem). */
export const row = (p: LogitsProblem, n: number): Float64Array => p.x.subarray(n * p.V, (n + 1) * p.V);

/**
 * Log-prob tolerance: |got - want| <= rel * max(|want|, 1). The absolute floor of 1 (so rel in
 * absolute terms for |log-prob| < 1): the log-prob is x_t - lse, a difference of numbers the size
 * of the logits that cancels when the target dominates its row, so a rounding of lse (a few ulps of
 * a number ~1..20) is the best any implementation that forms lse can do near 0.
 */
export const logprobTol = (rel: number, want: ArrayLike<number>) => (i: number) => rel * Math.max(Math.abs(want[i]), 1);

/** The softmax term |g[n] p[n, v]| of each entry of a gradient want = g (onehot(t) - p). */
export function softmaxTerms(want: ArrayLike<number>, p: Pick<LogitsProblem, 'V' | 'targets' | 'g'>): Float64Array {
  return Float64Array.from(want, (w, i) => {
    const n = Math.floor(i / p.V);
    return Math.abs(w - (i % p.V === p.targets[n] ? p.g[n] : 0));
  });
}

/**
 * Gradient tolerance: |got - want| <= rel * max(|want|, |g p|). The softmax term g p is the only
 * part computed with rounding; for the target entry g (1 - p_t) it can be much larger than the
 * result (p_t near 1 cancels), and its rounding is what the entry carries.
 */
export const gradientTol = (rel: number, want: ArrayLike<number>, softmaxTerm: ArrayLike<number>) => (i: number) =>
  rel * Math.max(Math.abs(want[i]), softmaxTerm[i]);
