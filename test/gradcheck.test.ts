// The test helper gradcheck (test/helpers/tensors.ts) on functions whose gradients are known in
// closed form: it passes the right gradient, fails one off by 1e-5 relative and names the worst
// entry, holds 1e-6 where a fixed 1e-3 step does not (the step below |x_i|), and with rel 0 asks
// for equality.
import { gradcheck, sampleEntries, stepBelowX } from './helpers/tensors';

/** L(x) = sum_i c_i sin(x_i) + (sum_i x_i)^2 / 2, dL/dx_i = c_i cos(x_i) + sum(x). */
const c = Float64Array.of(0.5, -2, 3, 1.25);
const L = (x: Float64Array) => x.reduce((s, v, i) => s + c[i] * Math.sin(v), 0) + x.reduce((s, v) => s + v, 0) ** 2 / 2;
const x0 = Float64Array.of(0.3, -1.1, 2.7, 0.05);
const dL = (x: Float64Array) => {
  const sum = x.reduce((s, v) => s + v, 0);
  return x.map((v, i) => c[i] * Math.cos(v) + sum);
};

describe('gradcheck', () => {
  it('passes the analytic gradient (Richardson, the default step, 1e-6)', () => {
    expect(() => gradcheck('dL', dL(x0), L, x0, { entries: x0.keys() })).not.toThrow();
  });

  it('fails a gradient off by 1e-5 relative in one entry, naming that entry', () => {
    const wrong = dL(x0);
    wrong[2] *= 1 + 1e-5;
    expect(() => gradcheck('dL', wrong, L, x0, { entries: x0.keys() })).toThrow(/^dL\[2\]: analytic .*, finite difference /);
  });

  it('names the worst of several failing entries, with the label given', () => {
    const wrong = dL(x0);
    wrong[0] *= 1 + 1e-5;
    wrong[3] *= 1 + 1e-3;
    expect(() => gradcheck('dL', wrong, L, x0, { entries: x0.keys(), label: (i) => `<${i}>` })).toThrow(/^dL<3>:/);
  });

  it('fails a NaN gradient', () => {
    const wrong = dL(x0);
    wrong[1] = NaN;
    expect(() => gradcheck('dL', wrong, L, x0, { entries: x0.keys() })).toThrow(/^dL\[1\]:/);
  });

  it('with weights, differences sum_k w_k f(x)_k', () => {
    // f(x) = (x0 x1, x1^2), L = 2 f_0 - f_1: dL/dx = (2 x1, 2 x0 - 2 x1).
    const x = Float64Array.of(0.7, -0.4);
    const f = (v: Float64Array) => [v[0] * v[1], v[1] * v[1]];
    const grad = [2 * x[1], 2 * x[0] - 2 * x[1]];
    expect(() => gradcheck('df', grad, f, x, { entries: [0, 1], weights: [2, -1] })).not.toThrow();
    expect(() => gradcheck('df', grad, f, x, { entries: [0, 1], weights: [2, 1] })).toThrow(/^df\[1\]:/);
  });

  it('the default step is below |x_i|: sqrt(x^2 + e) near 0 holds 1e-6 where a fixed 1e-3 step fails', () => {
    // Curvature ~ 1 / sqrt(e) = 1e5 at x = 1e-4: a 1e-3 step is far outside the quadratic region.
    const e = 1e-10;
    const x = Float64Array.of(2e-4);
    const f = (v: Float64Array) => Math.sqrt(v[0] * v[0] + e);
    const grad = [x[0] / Math.sqrt(x[0] * x[0] + e)];
    expect(stepBelowX(x[0])).toBeLessThan(Math.abs(x[0]));
    expect(() => gradcheck('d', grad, f, x, { entries: [0] })).not.toThrow();
    expect(() => gradcheck('d', grad, f, x, { entries: [0], step: 1e-3 })).toThrow(/^d\[0\]:/);
  });

  it('rel 0 asks for equality: a linear L on a binary grid passes exactly and fails by one ulp', () => {
    const x = Float64Array.of(0.5, -0.25);
    const f = (v: Float64Array) => 3 * v[0] - 0.75 * v[1];
    const opts = { entries: [0, 1], step: 2 ** -4, richardson: false, rel: 0 };
    expect(() => gradcheck('d', [3, -0.75], f, x, opts)).not.toThrow();
    expect(() => gradcheck('d', [3 + 2 ** -51, -0.75], f, x, opts)).toThrow(/^d\[0\]:/);
  });
});

describe('sampleEntries', () => {
  const next = ((s) => () => (s = (s * 16807) % 2147483647) / 2147483647)(12345);

  it('gives every entry when there are at most `count`', () => {
    expect(sampleEntries(next, 5, 5)).toEqual([0, 1, 2, 3, 4]);
    expect(sampleEntries(next, 3, 10, [2])).toEqual([0, 1, 2]);
  });

  it('otherwise `first`, then distinct draws up to `count`', () => {
    const got = sampleEntries(next, 1000, 20, [7, 999]);
    expect(got.slice(0, 2)).toEqual([7, 999]);
    expect(new Set(got).size).toBe(20);
    for (const i of got) expect(Number.isInteger(i) && i >= 0 && i < 1000).toBe(true);
  });
});
