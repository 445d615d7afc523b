// Float64 references in plain TypeScript and comparison helpers, independent of the native code.

/** log_softmax(row)[t] computed in f64 with the max subtracted. */
export function refTokenLogprob(row: ArrayLike<number>, t: number): number {
  let m = -Infinity;
  for (let i = 0; i < row.length; i++) m = Math.max(m, row[i] as number);
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp((row[i] as number) - m);
  return (row[t] as number) - m - Math.log(s);
}

/** Largest |a - b| / max(|b|, floor) over the arrays. */
export function maxRelError(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-8): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    if (Number.isNaN(x) || Number.isNaN(y)) return Infinity;
    const e = Math.abs(x - y) / Math.max(Math.abs(y), floor);
    if (e > worst) worst = e;
  }
  return worst;
}

/** Central difference (f(x+h) - f(x-h)) / 2h of a scalar function of one coordinate. */
export function centralDifference(f: (x: number) => number, x: number, h: number): number {
  return (f(x + h) - f(x - h)) / (2 * h);
}

/**
 * d L / d x[i] by a central difference with one Richardson step: D(h) = (L(x+h) - L(x-h)) / 2h has
 * error c h^2 + O(h^4), so (4 D(h/2) - D(h)) / 3 has O(h^4) truncation (~1e-12 at h = 1e-3) and a
 * rounding error of about u |L| / h.
 */
export function richardson(L: (x: Float64Array) => number, x: Float64Array, i: number, hStep = 1e-3): number {
  const d = (hh: number) => {
    const plus = Float64Array.from(x);
    const minus = Float64Array.from(x);
    plus[i] += hh;
    minus[i] -= hh;
    return (L(plus) - L(minus)) / (2 * hh);
  };
  return (4 * d(hStep / 2) - d(hStep)) / 3;
}
