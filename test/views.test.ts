// Zero-copy views: Tensor.reshape and Tensor.narrow share memory with their base tensor.
import path from 'path';
import * as osp from '../src';
import { caught } from './helpers/errors';
import { IsolatedResult, runIsolated } from './helpers/isolated';
import { OVERFLOW_VIEW_CASES } from './helpers/viewCases';

const cpu = { device: 'cpu' as const };

describe('tensor views', () => {
  it('reshape gives the same elements in a new shape without copying', () => {
    osp.scope(() => {
      const x = osp.tensor(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3], cpu);
      const before = osp.memoryStats().cpu.currentBytes;
      const y = x.reshape([3, 2]);
      expect(osp.memoryStats().cpu.currentBytes).toBe(before);
      expect(y.shape).toEqual([3, 2]);
      expect(Array.from(y.toArray())).toEqual([1, 2, 3, 4, 5, 6]);
    });
  });

  it('a write through a view is seen by the base (shared memory)', () => {
    osp.scope(() => {
      const logits = osp.tensor(new Float64Array([0, 1, 2, 3, 4, 5]), [2, 3], cpu);
      const rows = logits.narrow(0, 1, 1);
      osp.tokenLogprobsBackward(rows, osp.tensor(new Int32Array([0]), [1], cpu), osp.tensor(new Float64Array([1]), [1], cpu), { inPlace: true });
      const all = logits.toArray();
      expect(Array.from(all.subarray(0, 3))).toEqual([0, 1, 2]);
      expect(all[3]).toBeGreaterThan(0); // the target entry of row 1: 1 - p
      expect(all[4]).toBeLessThan(0);
    });
  });

  it('narrow selects rows [start, start + length) and keeps them contiguous', () => {
    osp.scope(() => {
      const x = osp.tensor(Float32Array.from({ length: 12 }, (_, i) => i), [4, 3], cpu);
      const r = x.narrow(0, 1, 2);
      expect(r.shape).toEqual([2, 3]);
      expect(r.isContiguous).toBe(true);
      expect(Array.from(r.toArray())).toEqual([3, 4, 5, 6, 7, 8]);
      const c = x.narrow(1, 1, 1);
      expect(c.isContiguous).toBe(false);
      expect(Array.from(c.toArray())).toEqual([1, 4, 7, 10]);
    });
  });

  it('a view outlives the disposal of its base', () => {
    const x = osp.tensor(new Float32Array([7, 8, 9, 10]), [4], cpu);
    const v = x.narrow(0, 2, 2);
    x.dispose();
    expect(Array.from(v.toArray())).toEqual([9, 10]);
    v.dispose();
  });

  it('reshape to a different element count is a RangeError; of a non-contiguous view a TypeError', () => {
    osp.scope(() => {
      const x = osp.tensor(new Float32Array(6), [2, 3], cpu);
      expect(() => x.reshape([4, 2])).toThrow(/has 6 elements; shape \[4, 2\] has 8/);
      expect(() => x.transpose(0, 1).reshape([6])).toThrow(TypeError);
    });
  });

  it('narrow outside the dimension is a RangeError', () => {
    osp.scope(() => {
      const x = osp.tensor(new Float32Array(6), [2, 3], cpu);
      expect(() => x.narrow(0, 1, 2)).toThrow(/\[1, 3\) is outside dimension 0/);
      expect(() => x.narrow(2, 0, 1)).toThrow(RangeError);
    });
  });
});

describe('shapes whose element count overflows (issue 14), each in a child process', () => {
  let results: IsolatedResult[] = [];
  beforeAll(() => {
    results = runIsolated(path.join(__dirname, 'helpers', 'viewCases.ts'), 'overflowViewCases', '');
  });

  it.each(OVERFLOW_VIEW_CASES.map((c) => c.name))('%s is a RangeError from reshape naming its shape', (name) => {
    const r = results.find((x) => x.name === name);
    expect(r && { outcome: r.outcome, errorClass: r.errorClass, message: r.message }).toEqual({
      outcome: 'threw',
      errorClass: 'RangeError',
      message: expect.stringMatching(/^reshape: shape \[1073741824, 1073741824, 1, 16\] of f32 is too large/),
    });
  });
});

describe('checked shapes', () => {
  const huge = [2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1];

  it('tensor() with a shape of 2^64 elements and no data is a RangeError naming tensor: shape', () => {
    expect(caught(() => osp.tensor(new Float32Array(0), [2 ** 30, 2 ** 30, 1, 16], cpu))).toEqual({
      errorClass: 'RangeError',
      message: expect.stringMatching(/^tensor: shape \[1073741824, 1073741824, 1, 16\] of f32 is too large/),
    });
  });

  it('zeros() with a shape whose bytes exceed 2^53 is a RangeError naming zeros: shape', () => {
    expect(caught(() => osp.zeros(huge, cpu))).toEqual({ errorClass: 'RangeError', message: expect.stringMatching(/^zeros: shape \[/) });
  });

  it('randn() with a shape whose bytes exceed 2^53 is a RangeError naming randn: shape', () => {
    expect(caught(() => osp.randn(huge, cpu))).toEqual({ errorClass: 'RangeError', message: expect.stringMatching(/^randn: shape \[/) });
  });

  it('a zero-sized view may have huge other sizes (nothing is addressed) when their product fits', () => {
    osp.scope(() => {
      const v = osp.zeros([0], cpu).reshape([2 ** 31 - 1, 0, 2 ** 20]);
      expect(v.shape).toEqual([2 ** 31 - 1, 0, 2 ** 20]);
      expect(v.toArray().length).toBe(0);
      expect(v.narrow(0, 2 ** 31 - 2, 1).transpose(0, 2).shape).toEqual([2 ** 20, 0, 1]);
    });
  });

  it('reshape to non-zero sizes whose product overflows, around a zero size, is a RangeError', () => {
    expect(caught(() => osp.zeros([0], cpu).reshape([0, ...huge]))).toEqual({
      errorClass: 'RangeError',
      message: expect.stringMatching(/^reshape: shape \[0, 2147483647/),
    });
  });

  it('narrow with start + length past the dimension names start and length', () => {
    osp.scope(() => {
      const x = osp.zeros([4, 3], cpu);
      expect(caught(() => x.narrow(0, 2 ** 53 - 1, 2 ** 53 - 1))).toEqual({
        errorClass: 'RangeError',
        message: expect.stringMatching(/^narrow: \[start, start \+ length\)/),
      });
    });
  });
});

describe('results whose shape comes from several arguments', () => {
  it('matmul of [2^31 - 1, 0] and [0, 2^31 - 1] (a result of 2^62 elements) is a RangeError naming matmul', () => {
    osp.scope(() => {
      const a = osp.zeros([2 ** 31 - 1, 0], cpu);
      const b = osp.zeros([0, 2 ** 31 - 1], cpu);
      expect(caught(() => osp.matmul(a, b))).toEqual({ errorClass: 'RangeError', message: expect.stringMatching(/^matmul: a and b: the result's shape \[2147483647, 2147483647\]/) });
    });
  });

  it('gatherBackward with vocab 2^53 - 1 is a RangeError naming gatherBackward: vocab', () => {
    osp.scope(() => {
      const g = osp.zeros([2], cpu);
      const t = osp.tensor(new Int32Array([0, 1]), [2], cpu);
      expect(caught(() => osp.gatherBackward(g, t, 2 ** 53 - 1))).toEqual({ errorClass: 'RangeError', message: expect.stringMatching(/^gatherBackward: vocab\b/) });
    });
  });
});
