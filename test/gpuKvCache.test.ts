// kvCacheWrite and cachedAttention on cuda against the float64 CPU op, on the same inputs (bf16
// inputs are rounded first, so the reference sees exactly what the device sees): the written
// cache read back bit for bit, prefill over packed sequences, decode with a few hundred queries
// at positions up to 2047, few queries against caches of 4096 (flash-decoding's key splits),
// determinism, and the errors. Where no GPU answers, the suite is skipped
// with a one-line reason (never passed vacuously); OSP_GPU_TESTS=require turns that into a failure.
import * as osp from '../src';
import type { Tensor } from '../src';
import { integers, normals, seeded } from './helpers/random';
import { maxRelError } from './helpers/reference';
import * as ops from '../src/ops';
import { gpuSuite, roundBf16 } from './helpers/gpu';

const { cuda, describeGpu } = gpuSuite('GPU kv cache suite');

type GpuType = 'f32' | 'bf16';
const tolerance: Record<GpuType, number> = { f32: 1e-5, bf16: 1e-2 };

const held = (x: Float64Array, dtype: GpuType) => (dtype === 'bf16' ? roundBf16(x) : Float64Array.from(x, Math.fround));
const maxAbsOf = (x: ArrayLike<number>) => Array.from(x).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const bytes = (t: Tensor) => Buffer.from(t.toArray().buffer);

/** |got - want| <= tol * max(|want|, floor) elementwise, with the floor at want's largest magnitude. */
function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number): void {
  expect(maxRelError(got, want, maxAbsOf(want))).toBeLessThanOrEqual(tol);
}

interface Case {
  name: string;
  H: number;
  Hkv: number;
  Dh: number;
  S: number;
  L: number;
  /** Rows written into the cache (slot, position) and the queries (slot, position). */
  written: [Int32Array, Int32Array];
  queries: [Int32Array, Int32Array];
}

function packed(lengths: number[]): [Int32Array, Int32Array] {
  const s: number[] = [];
  const p: number[] = [];
  lengths.forEach((len, slot) => {
    for (let i = 0; i < len; i++) {
      s.push(slot);
      p.push(i);
    }
  });
  return [Int32Array.from(s), Int32Array.from(p)];
}

describeGpu(`kv cache ops on cuda against the f64 CPU op (${cuda.devices[0]?.name ?? 'no device'})`, () => {
  const { next } = seeded('gpu kv cache');

  const cases = (): Case[] => {
    const full = (S: number, L: number) => packed(Array.from({ length: S }, () => L));
    const N = 300;
    return [
      { name: 'prefill of lengths 1, 5, 17, GQA 4/2, Dh 6', H: 4, Hkv: 2, Dh: 6, S: 3, L: 20, written: packed([1, 5, 17]), queries: packed([1, 5, 17]) },
      { name: 'prefill of lengths 3, 60, 200, GQA 8/2, Dh 64', H: 8, Hkv: 2, Dh: 64, S: 3, L: 256, written: packed([3, 60, 200]), queries: packed([3, 60, 200]) },
      { name: 'prefill of length 129, MQA 4/1, Dh 128', H: 4, Hkv: 1, Dh: 128, S: 1, L: 129, written: packed([129]), queries: packed([129]) },
      {
        name: `decode: ${N} queries over 4 slots, positions up to 2047, GQA 8/2, Dh 64`,
        H: 8,
        Hkv: 2,
        Dh: 64,
        S: 4,
        L: 2048,
        written: full(4, 2048),
        queries: [integers(next, N, 0, 4), Int32Array.from(integers(next, N, 0, 2048), (p, i) => (i < 4 ? 2047 : p))],
      },
      {
        // 3 queries x 8 heads against caches of 4096: flash-decoding's key splits (decodeSplits:
        // 16 splits of 256 keys) merged by the combine kernel, with positions ending mid-split, in
        // the first split, and at the cache's end.
        name: 'decode: 3 queries over 3 slots of 4096 positions (split over the keys), GQA 8/2, Dh 128',
        H: 8,
        Hkv: 2,
        Dh: 128,
        S: 3,
        L: 4096,
        written: full(3, 4096),
        queries: [Int32Array.from([0, 1, 2]), Int32Array.from([4095, 3000, 100])],
      },
    ];
  };

  for (const dtype of ['f32', 'bf16'] as const) {
    it(`kvCacheWrite then cachedAttention ${dtype} on cuda match the f64 cpu op, deterministically`, () => {
      for (const c of cases()) {
        osp.scope(() => {
          const { H, Hkv, Dh, S, L } = c;
          const [ws, wp] = c.written;
          const [qs, qp] = c.queries;
          const [W, N] = [ws.length, qs.length];
          const k = held(normals(next, W * Hkv * Dh), dtype);
          const v = held(normals(next, W * Hkv * Dh), dtype);
          const q = held(normals(next, N * H * Dh), dtype);
          const cacheShape = [S, L, Hkv, Dh];
          const cpu = (a: Float64Array | Int32Array, s: number[]) => osp.tensor(a, s, { device: 'cpu' });
          const dev = (a: Float64Array, s: number[]) => osp.tensor(a, s, { dtype, device: 'cuda' });
          const devI = (a: Int32Array) => osp.tensor(a, [a.length], { device: 'cuda' });
          // Reference: the f64 cpu ops on the same (rounded) values.
          const kC = cpu(new Float64Array(S * L * Hkv * Dh), cacheShape);
          const vC = cpu(new Float64Array(S * L * Hkv * Dh), cacheShape);
          ops.kvCacheWrite(kC, cpu(k, [W, Hkv, Dh]), cpu(ws, [W]), cpu(wp, [W]));
          ops.kvCacheWrite(vC, cpu(v, [W, Hkv, Dh]), cpu(ws, [W]), cpu(wp, [W]));
          const want = ops.cachedAttention(cpu(q, [N, H, Dh]), kC, vC, cpu(qs, [N]), cpu(qp, [N])).toArray();
          // Device.
          const kD = dev(new Float64Array(S * L * Hkv * Dh), cacheShape);
          const vD = dev(new Float64Array(S * L * Hkv * Dh), cacheShape);
          ops.kvCacheWrite(kD, dev(k, [W, Hkv, Dh]), devI(ws), devI(wp));
          ops.kvCacheWrite(vD, dev(v, [W, Hkv, Dh]), devI(ws), devI(wp));
          expect(Float64Array.from(kD.toArray())).toEqual(Float64Array.from(kC.toArray()));
          expect(Float64Array.from(vD.toArray())).toEqual(Float64Array.from(vC.toArray()));
          const qD = dev(q, [N, H, Dh]);
          const got = ops.cachedAttention(qD, kD, vD, devI(qs), devI(qp));
          expect(got.dtype).toBe(dtype);
          expect(got.device).toBe('cuda');
          expect(got.shape).toEqual([N, H, Dh]);
          expect(bytes(ops.cachedAttention(qD, kD, vD, devI(qs), devI(qp))).equals(bytes(got))).toBe(true);
          try {
            expectClose(got.toArray(), want, tolerance[dtype]);
          } catch (e) {
            throw new Error(`${c.name} (${dtype}): ${(e as Error).message}`);
          }
        });
      }
    });
  }

  it('an out-of-range slot or position on cuda is a RangeError naming it and the bound', () => {
    osp.scope(() => {
      const d = { device: 'cuda' } as const;
      const cache = osp.tensor(new Float32Array(2 * 4 * 1 * 8), [2, 4, 1, 8], d);
      const values = osp.tensor(new Float32Array(3 * 8), [3, 1, 8], d);
      const q = osp.tensor(new Float32Array(3 * 2 * 8), [3, 2, 8], d);
      const ints = (a: number[]) => osp.tensor(Int32Array.from(a), [a.length], d);
      expect(() => { ops.kvCacheWrite(cache, values, ints([0, 2, 1]), ints([0, 0, 0])); osp.synchronize(); }).toThrow(new RangeError('kvCacheWrite: slots[1] = 2 is outside [0, 2) (the slots of cache)'));
      expect(() => { ops.kvCacheWrite(cache, values, ints([0, 1, 1]), ints([0, 0, 4])); osp.synchronize(); }).toThrow(new RangeError('kvCacheWrite: positions[2] = 4 is outside [0, 4) (the positions of cache)'));
      expect(() => { ops.cachedAttention(q, cache, cache, ints([-1, 0, 0]), ints([0, 0, 0])); osp.synchronize(); }).toThrow(new RangeError('cachedAttention: slots[0] = -1 is outside [0, 2) (the slots of kCache)'));
      expect(() => { ops.cachedAttention(q, cache, cache, ints([0, 0, 0]), ints([0, -3, 0])); osp.synchronize(); }).toThrow(new RangeError('cachedAttention: positions[1] = -3 is outside [0, 4) (the positions of kCache)'));
    });
  });

  it('mixed devices, a non-float dtype and a head dimension over 1024 on cuda are TypeErrors naming the argument', () => {
    osp.scope(() => {
      const d = { device: 'cuda' } as const;
      const c = { device: 'cpu' } as const;
      const cache = osp.tensor(new Float32Array(2 * 4 * 1 * 8), [2, 4, 1, 8], d);
      const values = osp.tensor(new Float32Array(3 * 8), [3, 1, 8], d);
      const q = osp.tensor(new Float32Array(3 * 2 * 8), [3, 2, 8], d);
      const idx = osp.tensor(Int32Array.from([0, 1, 1]), [3], d);
      const idxCpu = osp.tensor(Int32Array.from([0, 1, 1]), [3], c);
      expect(() => ops.kvCacheWrite(cache, osp.tensor(new Float32Array(3 * 8), [3, 1, 8], c), idx, idx)).toThrow(new TypeError('kvCacheWrite: cache is on cuda but values is on cpu; expected both on the same device'));
      expect(() => ops.kvCacheWrite(cache, values, idxCpu, idx)).toThrow(/^kvCacheWrite: values is on cuda but slots is on cpu/);
      expect(() => ops.kvCacheWrite(cache, values, idx, idxCpu)).toThrow(/^kvCacheWrite: values is on cuda but positions is on cpu/);
      expect(() => ops.cachedAttention(q, osp.tensor(new Float32Array(2 * 4 * 8), [2, 4, 1, 8], c), cache, idx, idx)).toThrow(/^cachedAttention: q is on cuda but kCache is on cpu/);
      expect(() => ops.cachedAttention(q, cache, osp.tensor(new Float32Array(2 * 4 * 8), [2, 4, 1, 8], c), idx, idx)).toThrow(/^cachedAttention: q is on cuda but vCache is on cpu/);
      expect(() => ops.cachedAttention(q, cache, cache, idxCpu, idx)).toThrow(/^cachedAttention: q is on cuda but slots is on cpu/);
      const qi = osp.tensor(new Int32Array(3 * 2 * 8), [3, 2, 8], d);
      expect(() => ops.cachedAttention(qi, cache, cache, idx, idx)).toThrow(/^cachedAttention: q has dtype i32 on cuda/);
      const ci = osp.tensor(new Int32Array(2 * 4 * 8), [2, 4, 1, 8], d);
      expect(() => ops.kvCacheWrite(ci, values, idx, idx)).toThrow(/^kvCacheWrite: cache has dtype i32 on cuda/);
      const big = osp.tensor(new Float32Array(1025), [1, 1, 1025], d);
      const bigCache = osp.tensor(new Float32Array(1025), [1, 1, 1, 1025], d);
      const zero = osp.tensor(Int32Array.from([0]), [1], d);
      expect(() => ops.cachedAttention(big, bigCache, bigCache, zero, zero)).toThrow(/^cachedAttention: q has shape \[1, 1, 1025\]; expected a head dimension <= 1024 on cuda/);
    });
  });
});
