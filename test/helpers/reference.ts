// Float64 references in plain TypeScript and a comparison helper, independent of the native code.
// (Finite differences: gradcheck in ./tensors.)

/** log_softmax of one row in f64: (x - max) - log(sum exp(x - max)). */
export function refLogSoftmax(row: ArrayLike<number>): number[] {
  let m = -Infinity;
  for (let i = 0; i < row.length; i++) m = Math.max(m, row[i]);
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i] - m);
  const logS = Math.log(s);
  return Array.from(row, (v) => v - m - logS);
}

/** log_softmax(row)[t] computed in f64 with the max subtracted. */
export function refTokenLogprob(row: ArrayLike<number>, t: number): number {
  return refLogSoftmax(row)[t];
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
