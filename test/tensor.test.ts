// Tensors on the CPU: host round trips per dtype (bf16 rounding to nearest even), getters, views
// (transpose, contiguous), conversion, dispose and scope, and backend discovery (backends(),
// defaultDevice() with and without OSP_DEVICE).
import { execFileSync } from 'child_process';
import * as path from 'path';
import * as osp from '../src';
import { integers, normals, seeded } from './helpers/random';
import { caught } from './helpers/errors';

const cpu = { device: 'cpu' } as const;

describe('round trips through native memory', () => {
  const { next } = seeded('tensor round trips');

  it('f32: a Float32Array reads back bit for bit, special values included', () => {
    const data = Float32Array.from([...normals(next, 61, 100), -0, Infinity, -Infinity, NaN, 3.4028234663852886e38, 1e-45]);
    const x = osp.tensor(data, [data.length], cpu);
    try {
      expect(x.dtype).toBe('f32');
      expect(x.toArray().constructor.name).toBe('Float32Array');
      expect(Array.from(x.toArray())).toEqual(Array.from(data));
    } finally {
      x.dispose();
    }
  });

  it('f64: a Float64Array reads back bit for bit, special values included', () => {
    const data = Float64Array.from([...normals(next, 61, 1e6), -0, Infinity, -Infinity, NaN, Number.MAX_VALUE, 5e-324]);
    const x = osp.tensor(data, [data.length], cpu);
    try {
      expect(x.dtype).toBe('f64');
      expect(x.toArray().constructor.name).toBe('Float64Array');
      expect(Array.from(x.toArray())).toEqual(Array.from(data));
    } finally {
      x.dispose();
    }
  });

  it('i32: an Int32Array reads back exactly, the 32-bit extremes included', () => {
    const data = Int32Array.from([...integers(next, 60, -1e9, 1e9), -2147483648, 2147483647, 0, -1]);
    const x = osp.tensor(data, [4, 16], cpu);
    try {
      expect(x.dtype).toBe('i32');
      expect(x.toArray().constructor.name).toBe('Int32Array');
      expect(Array.from(x.toArray())).toEqual(Array.from(data));
    } finally {
      x.dispose();
    }
  });

  // bf16 keeps 8 significant bits: near 1 its spacing is 2^-7. Ties go to the even significand.
  const BF16_CASES: [string, number, number][] = [
    ['1 stays 1', 1, 1],
    ['1 + 2^-9 (below half an ulp) -> 1', 1 + 2 ** -9, 1],
    ['1 + 2^-8 (a tie) -> 1 (even)', 1 + 2 ** -8, 1],
    ['1 + 2^-8 + 2^-16 (above half an ulp) -> 1 + 2^-7', 1 + 2 ** -8 + 2 ** -16, 1 + 2 ** -7],
    ['1 + 3 * 2^-8 (a tie) -> 1 + 2^-6 (even)', 1 + 3 * 2 ** -8, 1 + 2 ** -6],
    ['-(1 + 3 * 2^-8) -> -(1 + 2^-6)', -(1 + 3 * 2 ** -8), -(1 + 2 ** -6)],
    ['257 (a tie) -> 256', 257, 256],
    ['259 (a tie) -> 260', 259, 260],
    ['fround(pi) -> 3.140625', Math.fround(Math.PI), 3.140625],
    ['the largest f32 overflows to Infinity', 3.4028234663852886e38, Infinity],
    ['-Infinity stays -Infinity', -Infinity, -Infinity],
    ['NaN stays NaN', NaN, NaN],
  ];
  it.each(BF16_CASES)('bf16 from a Float32Array rounds to nearest even: %s', (_name, input, expected) => {
    const x = osp.tensor(Float32Array.from([input]), [1], { dtype: 'bf16', device: 'cpu' });
    try {
      expect(x.dtype).toBe('bf16');
      expect(x.toArray()[0]).toBe(expected);
    } finally {
      x.dispose();
    }
  });

  it('bf16 from a Uint16Array takes the values as raw bf16 bits', () => {
    const bits = Uint16Array.from([0x3f80, 0xc000, 0x3f81, 0x7f80, 0x0000, 0x8000]);
    const x = osp.tensor(bits, [6], { dtype: 'bf16', device: 'cpu' });
    try {
      expect(Array.from(x.toArray())).toEqual([1, -2, 1 + 2 ** -7, Infinity, 0, -0]);
    } finally {
      x.dispose();
    }
  });

  it('a number[] makes an f32 tensor holding the values rounded to f32', () => {
    const data = Array.from(normals(next, 10, 3));
    const x = osp.tensor(data, [2, 5], cpu);
    try {
      expect(x.dtype).toBe('f32');
      expect(x.shape).toEqual([2, 5]);
      expect(Array.from(x.toArray())).toEqual(data.map(Math.fround));
    } finally {
      x.dispose();
    }
  });

  it('data whose length does not match the shape is a RangeError naming both', () => {
    for (const data of [new Float32Array(5), [1, 2, 3, 4, 5]]) {
      const err = caught(() => osp.tensor(data, [2, 3], cpu));
      expect(err?.errorClass).toBe('RangeError');
      expect(err?.message).toMatch(/data has 5 elements.*\[2, 3\].*6/);
    }
  });
});

describe('getters, views and conversion', () => {
  const { next } = seeded('tensor views');

  it('shape, strides, dtype, device, size and isContiguous describe a new [2, 3, 4] f64 tensor', () => {
    osp.scope(() => {
      const x = osp.tensor(new Float64Array(24), [2, 3, 4], cpu);
      expect(x.shape).toEqual([2, 3, 4]);
      expect(x.strides).toEqual([12, 4, 1]);
      expect(x.dtype).toBe('f64');
      expect(x.device).toBe('cpu');
      expect(x.size).toBe(24);
      expect(x.isContiguous).toBe(true);
      expect(x.disposed).toBe(false);
      expect(x.toString()).toBe('Tensor(f64[2, 3, 4] on cpu)');
    });
  });

  it('transpose of an [N, V] matrix is a non-contiguous [V, N] view whose toArray is the transposed data', () => {
    const N = 3;
    const V = 5;
    const data = Float32Array.from(normals(next, N * V));
    osp.scope(() => {
      const x = osp.tensor(data, [N, V], cpu);
      const y = x.transpose(0, 1);
      expect(y.shape).toEqual([V, N]);
      expect(y.strides).toEqual([1, V]);
      expect(y.isContiguous).toBe(false);
      const want: number[] = [];
      for (let v = 0; v < V; v++) for (let n = 0; n < N; n++) want.push(data[n * V + v]!);
      expect(Array.from(y.toArray())).toEqual(want);
    });
  });

  it('contiguous() of a transposed view is a contiguous copy that outlives the original and the view', () => {
    const data = Float64Array.from(normals(next, 12));
    const x = osp.tensor(data, [4, 3], cpu);
    const view = x.transpose(0, 1);
    const copy = view.contiguous();
    const want = Array.from(view.toArray());
    x.dispose();
    view.dispose();
    try {
      expect(copy.isContiguous).toBe(true);
      expect(copy.shape).toEqual([3, 4]);
      expect(copy.strides).toEqual([4, 1]);
      expect(Array.from(copy.toArray())).toEqual(want);
    } finally {
      copy.dispose();
    }
  });

  it('a transposed view stays readable after its base is disposed (it shares, not borrows, the memory)', () => {
    const data = Float32Array.from(normals(next, 6));
    const x = osp.tensor(data, [2, 3], cpu);
    const view = x.transpose(1, 0);
    x.dispose();
    try {
      expect(Array.from(view.toArray())).toEqual([data[0], data[3], data[1], data[4], data[2], data[5]]);
    } finally {
      view.dispose();
    }
  });

  it('.to({ dtype }) converts: f32 -> f64 exactly, f64 -> f32 rounded, f32 -> bf16 to nearest even', () => {
    const f64data = Float64Array.from([...normals(next, 20), 1 + 3 * 2 ** -8]);
    osp.scope(() => {
      const a = osp.tensor(f64data, [f64data.length], cpu);
      const a32 = a.to({ dtype: 'f32' });
      expect(a32.dtype).toBe('f32');
      expect(Array.from(a32.toArray())).toEqual(Array.from(f64data, Math.fround));
      const back = a32.to({ dtype: 'f64' });
      expect(back.dtype).toBe('f64');
      expect(Array.from(back.toArray())).toEqual(Array.from(f64data, Math.fround));
      const b = a32.to({ dtype: 'bf16' });
      expect(b.dtype).toBe('bf16');
      expect(b.toArray()[f64data.length - 1]).toBe(1 + 2 ** -6);
      // the source is left as it was
      expect(a.disposed).toBe(false);
      expect(Array.from(a.toArray())).toEqual(Array.from(f64data));
    });
  });
});

describe('dispose', () => {
  const uses: [string, (x: osp.Tensor) => unknown][] = [
    ['shape', (x) => x.shape],
    ['strides', (x) => x.strides],
    ['dtype', (x) => x.dtype],
    ['device', (x) => x.device],
    ['size', (x) => x.size],
    ['isContiguous', (x) => x.isContiguous],
    ['toArray()', (x) => x.toArray()],
    ['transpose()', (x) => x.transpose(0, 1)],
    ['contiguous()', (x) => x.contiguous()],
    ['to()', (x) => x.to({ dtype: 'f64' })],
    ['an elementwise op', (x) => osp.unary('exp', x)],
    ['tokenLogprobs', (x) => osp.tokenLogprobs(x, osp.tensor(Int32Array.from([0, 1]), [2], cpu))],
  ];

  it.each(uses)('%s of a disposed tensor is a TypeError mentioning "disposed"', (_name, use) => {
    const x = osp.tensor(new Float32Array(6), [2, 3], cpu);
    x.dispose();
    const err = osp.scope(() => caught(() => use(x)));
    expect(err?.errorClass).toBe('TypeError');
    expect(err?.message).toMatch(/disposed/);
  });

  it('dispose() is idempotent and marks the tensor disposed', () => {
    const x = osp.tensor(new Float32Array(3), [3], cpu);
    x.dispose();
    expect(() => x.dispose()).not.toThrow();
    expect(x.disposed).toBe(true);
    expect(x.toString()).toBe('Tensor(disposed)');
  });
});

describe('scope', () => {
  it('disposes the tensors created inside but not those returned (in objects and arrays)', () => {
    let inner: osp.Tensor | undefined;
    const out = osp.scope(() => {
      inner = osp.tensor([1, 2], [2], cpu);
      const a = osp.tensor([3], [1], cpu);
      const b = osp.tensor([4], [1], cpu);
      return { a, nested: { list: [b] } };
    });
    try {
      expect(inner?.disposed).toBe(true);
      expect(out.a.disposed).toBe(false);
      expect(out.nested.list[0]?.disposed).toBe(false);
      expect(Array.from(out.nested.list[0]!.toArray())).toEqual([4]);
    } finally {
      out.a.dispose();
      out.nested.list[0]?.dispose();
    }
  });

  it('disposes every tensor created inside when fn throws, and rethrows', () => {
    const made: osp.Tensor[] = [];
    const boom = new Error('boom');
    let thrown: unknown;
    try {
      osp.scope(() => {
        made.push(osp.tensor([1], [1], cpu), osp.tensor([2], [1], cpu));
        throw boom;
      });
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBe(boom);
    expect(made.map((t) => t.disposed)).toEqual([true, true]);
  });

  it('hands tensors returned from an inner scope to the enclosing scope', () => {
    let fromInner: osp.Tensor | undefined;
    osp.scope(() => {
      fromInner = osp.scope(() => osp.tensor([1], [1], cpu));
      expect(fromInner.disposed).toBe(false);
      return 0;
    });
    expect(fromInner?.disposed).toBe(true);
  });

  it('keep() takes a tensor out of the scope so that it survives', () => {
    let kept: osp.Tensor | undefined;
    osp.scope(() => {
      kept = osp.keep(osp.tensor([5], [1], cpu));
    });
    try {
      expect(kept?.disposed).toBe(false);
    } finally {
      kept?.dispose();
    }
  });
});

describe('backends and the default device', () => {
  let saved: string | undefined;
  beforeEach(() => {
    saved = process.env.OSP_DEVICE;
    delete process.env.OSP_DEVICE;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.OSP_DEVICE;
    else process.env.OSP_DEVICE = saved;
  });

  it('backends() has the documented shape: { cpu: { threads, isa }, cuda: { compiled, available, devices } }', () => {
    const b = osp.backends();
    expect(Number.isInteger(b.cpu.threads) && b.cpu.threads >= 1).toBe(true);
    expect(['avx512', 'avx2', 'baseline']).toContain(b.cpu.isa);
    expect(typeof b.cuda.compiled).toBe('boolean');
    expect(typeof b.cuda.available).toBe('boolean');
    expect(Array.isArray(b.cuda.devices)).toBe(true);
    expect(b.cuda.available).toBe(b.cuda.devices.length > 0);
    for (const d of b.cuda.devices) {
      expect(typeof d.name).toBe('string');
      expect(d.memoryBytes).toBeGreaterThan(0);
      expect(d.computeCapability).toMatch(/^\d+\.\d+$/);
      expect(typeof d.peakBandwidthBytesPerSecond).toBe('number');
    }
    if (!b.cuda.available) expect(typeof b.cuda.reason).toBe('string');
    expect(typeof b.cuda.blas).toBe('string');
  });

  it('defaultDevice() is cuda exactly when a CUDA device is available (cpu on a machine without one)', () => {
    expect(osp.defaultDevice()).toBe(osp.backends().cuda.available ? 'cuda' : 'cpu');
  });

  it('OSP_DEVICE=cpu forces the cpu', () => {
    process.env.OSP_DEVICE = 'cpu';
    expect(osp.defaultDevice()).toBe('cpu');
  });

  const noGpu = !osp.backends().cuda.available;
  (noGpu ? it : it.skip)('OSP_DEVICE=cuda without a CUDA device makes defaultDevice() throw an Error saying so', () => {
    process.env.OSP_DEVICE = 'cuda';
    const err = caught(() => osp.defaultDevice());
    expect(err?.errorClass).toBe('Error');
    expect(err?.message).toMatch(/OSP_DEVICE=cuda/);
    expect(err?.message).toMatch(/no CUDA device|without CUDA/);
  });

  it('OSP_DEVICE=bogus is a RangeError naming the value', () => {
    process.env.OSP_DEVICE = 'bogus';
    const err = caught(() => osp.defaultDevice());
    expect(err?.errorClass).toBe('RangeError');
    expect(err?.message).toMatch(/OSP_DEVICE.*bogus/);
  });
});

test('backends().cpu.isa follows OSP_CPU_ISA, the one ISA choice of the CPU kernels', () => {
  // A fresh process: the choice is read once, when the addon loads.
  const run = (isa: string) => JSON.parse(execFileSync(process.execPath, ['-e', "process.stdout.write(JSON.stringify(require('./build/Release/osp.node').backends().cpu.isa))"], { env: { ...process.env, OSP_CPU_ISA: isa }, cwd: path.join(__dirname, '..') }).toString());
  expect(run('baseline')).toBe('baseline');
  expect(['avx2', 'baseline']).toContain(run('avx2'));
});
