// randn: seeded, counter-based normal draws (native/kernels/random).

import * as osp from '../src';
import { runWithThreads } from './helpers/child';

describe('randn', () => {
  it('gives the same values for the same seed', () => {
    const a = osp.randn([1000], { device: 'cpu', seed: 42 }).toArray();
    const b = osp.randn([1000], { device: 'cpu', seed: 42 }).toArray();
    expect(Array.from(a)).toEqual(Array.from(b));
  });

  it('gives different values for different seeds', () => {
    const a = osp.randn([1000], { device: 'cpu', seed: 1 }).toArray();
    const b = osp.randn([1000], { device: 'cpu', seed: 2 }).toArray();
    let same = 0;
    for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
    expect(same).toBeLessThan(5);
  });

  it('has the requested mean and standard deviation', () => {
    const n = 1 << 20;
    const x = osp.randn([n], { device: 'cpu', seed: 7, mean: 3, std: 2 }).toArray();
    let m = 0;
    for (const v of x) m += v;
    m /= n;
    let s = 0;
    for (const v of x) s += (v - m) ** 2;
    s = Math.sqrt(s / (n - 1));
    // Standard errors: 2 / sqrt(n) = 0.002 for the mean, about 0.0014 for the std.
    expect(Math.abs(m - 3)).toBeLessThan(0.01);
    expect(Math.abs(s - 2)).toBeLessThan(0.01);
  });

  it('is a prefix-stable stream: element i depends only on (seed, i)', () => {
    const long = osp.randn([5000], { device: 'cpu', seed: 9 }).toArray();
    const short = osp.randn([37], { device: 'cpu', seed: 9 }).toArray();
    expect(Array.from(short)).toEqual(Array.from(long.subarray(0, 37)));
  });

  it('does not depend on the number of CPU threads', () => {
    const script = `const o=require('./src'); process.stdout.write(JSON.stringify(Array.from(o.randn([300000],{device:'cpu',seed:5}).toArray().subarray(299990))))`;
    const one = runWithThreads(script, '1');
    const two = runWithThreads(script, '2');
    expect(one.status).toBe(0);
    expect(two.status).toBe(0);
    expect(one.stdout).toBe(two.stdout);
  });

  it('fills bf16 and f64 tensors too', () => {
    const f64 = osp.randn([8], { dtype: 'f64', seed: 3 });
    expect(f64.dtype).toBe('f64');
    expect(f64.device).toBe('cpu');
    const bf = osp.randn([8], { dtype: 'bf16', device: 'cpu', seed: 3 });
    expect(bf.dtype).toBe('bf16');
    const f32 = osp.randn([8], { device: 'cpu', seed: 3 }).toArray();
    const r = bf.toArray();
    for (let i = 0; i < 8; i++) expect(Math.abs((r[i] as number) - (f32[i] as number))).toBeLessThanOrEqual(Math.abs(f32[i] as number) / 128);
  });

  it('rejects a negative std and a non-integer seed', () => {
    expect(() => osp.randn([4], { device: 'cpu', std: -1 })).toThrow(RangeError);
    expect(() => osp.randn([4], { device: 'cpu', seed: 1.5 })).toThrow(/seed must be a non-negative integer/);
    expect(() => osp.randn([4], { device: 'cpu', dtype: 'i32' })).toThrow(TypeError);
  });
});

describe('randu', () => {
  it('draws uniformly in [low, high): every value in range, mean and variance of the uniform', () => {
    const x = osp.randu([200000], { device: 'cpu', seed: 4, low: -2, high: 3 }).toArray();
    let s = 0;
    let s2 = 0;
    for (const v of x) {
      expect(v >= -2 && v < 3).toBe(true);
      s += v;
      s2 += v * v;
    }
    const mean = s / x.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.02); // sd of the mean: 5 / sqrt(12 * 2e5) = 0.0032
    expect(Math.abs(s2 / x.length - mean * mean - 25 / 12)).toBeLessThan(0.03);
  });

  it('refuses low > high, naming randu', () => {
    expect(() => osp.randu([4], { device: 'cpu', low: 1, high: 0 })).toThrow(/^randu: low is 1 and high 0; expected low <= high/);
  });
});

describe('dropoutMask', () => {
  it('is 0 with probability p and 1 / (1 - p) otherwise, the same for the same seed', () => {
    const p = 0.3;
    const m = osp.dropoutMask([100000], p, { device: 'cpu', seed: 8 }).toArray();
    const zeros = m.filter((v) => v === 0).length;
    expect(m.every((v) => v === 0 || v === Math.fround(1 / (1 - p)))).toBe(true);
    expect(Math.abs(zeros / m.length - p)).toBeLessThan(0.006); // sd: sqrt(0.21 / 1e5) = 0.0014
    expect(Array.from(osp.dropoutMask([1000], p, { device: 'cpu', seed: 8 }).toArray())).toEqual(Array.from(m.subarray(0, 1000)));
    expect(Array.from(osp.dropoutMask([1000], p, { device: 'cpu', seed: 9 }).toArray())).not.toEqual(Array.from(m.subarray(0, 1000)));
  });

  it('with p = 0 keeps everything at 1', () => {
    expect(Array.from(osp.dropoutMask([64], 0, { device: 'cpu', seed: 1 }).toArray()).every((v) => v === 1)).toBe(true);
  });

  it('refuses p outside [0, 1), naming dropoutMask', () => {
    expect(() => osp.dropoutMask([4], 1, { device: 'cpu' })).toThrow(/^dropoutMask: p is 1; expected a probability in \[0, 1\)/);
    expect(() => osp.dropoutMask([4], -0.1, { device: 'cpu' })).toThrow(RangeError);
  });
});
