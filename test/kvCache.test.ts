// kvCacheWrite and cachedAttention on the cpu: the cache [S, L, Hkv, Dh] written in place and read
// back; cachedAttention in f64 against a plain-TS f64 reference (naive softmax over positions
// 0..p of the query's slot, 1e-12 relative) and against causalAttention over the same packed
// sequences (every prefill position, and one-token decode steps); grouped-query heads and a head
// dimension that is not a power of two; f32 against f64 (1e-5 relative); bitwise determinism under
// OSP_NUM_THREADS=1 and 2; and the argument checks.

import { Tensor, scope, tensor } from '../src/tensor';
import * as ops from '../src/ops';
import { caught } from './helpers/errors';
import { normals, seeded } from './helpers/random';
import { expectSameOutputUnderThreads } from './helpers/child';
import { floats, ints, read, f32, maxAbs, expectRel, cpu, type FloatType } from './helpers/tensors';




interface Cache {
  S: number;
  L: number;
  Hkv: number;
  Dh: number;
}

/** Plain f64 reference: for each (i, h) a naive softmax over positions 0..positions[i] of slot slots[i]. */
function refCachedAttention(
  q: ArrayLike<number>,
  kc: ArrayLike<number>,
  vc: ArrayLike<number>,
  slots: ArrayLike<number>,
  positions: ArrayLike<number>,
  H: number,
  c: Cache,
  scale = 1 / Math.sqrt(c.Dh),
): Float64Array {
  const { L, Hkv, Dh } = c;
  const N = slots.length;
  const out = new Float64Array(N * H * Dh);
  const at = (s: number, j: number, g: number) => ((s * L + j) * Hkv + g) * Dh;
  for (let i = 0; i < N; i++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / Hkv));
      const sc: number[] = [];
      for (let j = 0; j <= positions[i]; j++) {
        let d = 0;
        for (let x = 0; x < Dh; x++) d += q[(i * H + h) * Dh + x] * kc[at(slots[i], j, g) + x];
        sc.push(scale * d);
      }
      const m = Math.max(...sc);
      const e = sc.map((x) => Math.exp(x - m));
      const z = e.reduce((a, b) => a + b, 0);
      e.forEach((w, j) => {
        for (let x = 0; x < Dh; x++) out[(i * H + h) * Dh + x] += (w / z) * vc[at(slots[i], j, g) + x];
      });
    }
  }
  return out;
}

/** Packed sequences of the given lengths, sequence s in slot s: per token its slot, position and id. */
function packed(lengths: number[]) {
  const slots: number[] = [];
  const positions: number[] = [];
  lengths.forEach((len, s) => {
    for (let p = 0; p < len; p++) {
      slots.push(s);
      positions.push(p);
    }
  });
  return { T: slots.length, slots: Int32Array.from(slots), positions: Int32Array.from(positions) };
}

describe('kvCacheWrite', () => {
  const { next } = seeded('kvCacheWrite');

  it('writes values[i] at cache[slots[i], positions[i]] and leaves every other row as it was', () => {
    scope(() => {
      const c: Cache = { S: 3, L: 5, Hkv: 2, Dh: 3 };
      const row = c.Hkv * c.Dh;
      const before = normals(next, c.S * c.L * row);
      const values = normals(next, 4 * row);
      const slots = [2, 0, 2, 1];
      const positions = [4, 0, 1, 3];
      const cache = floats(before, [c.S, c.L, c.Hkv, c.Dh]);
      expect(ops.kvCacheWrite(cache, floats(values, [4, c.Hkv, c.Dh]), ints(slots), ints(positions))).toBeUndefined();
      const want = Float64Array.from(before);
      slots.forEach((s, i) => want.set(values.subarray(i * row, (i + 1) * row), (s * c.L + positions[i]) * row));
      expect(read(cache)).toEqual(want);
    });
  });

  it('with a repeated (slot, position) the last row wins on cpu', () => {
    scope(() => {
      const cache = floats(new Float64Array(2 * 2 * 1 * 2), [2, 2, 1, 2]);
      const values = floats([1, 1, 2, 2, 3, 3, 4, 4], [4, 1, 2]);
      ops.kvCacheWrite(cache, values, ints([1, 0, 1, 1]), ints([0, 1, 0, 0]));
      expect(read(cache)).toEqual(Float64Array.from([0, 0, 2, 2, 4, 4, 0, 0]));
    });
  });

  it('an out-of-range slot or position is a RangeError naming the lowest index, and nothing is written', () => {
    scope(() => {
      const cache = floats(new Float64Array(2 * 3 * 1 * 2), [2, 3, 1, 2]);
      const values = floats([1, 1, 2, 2, 3, 3], [3, 1, 2]);
      expect(caught(() => ops.kvCacheWrite(cache, values, ints([0, 2, -1]), ints([0, 0, 0])))).toEqual({
        errorClass: 'RangeError',
        message: 'kvCacheWrite: slots[1] = 2 is outside [0, 2) (the slots of cache)',
      });
      expect(caught(() => ops.kvCacheWrite(cache, values, ints([0, 1, 1]), ints([0, 1, -1])))).toEqual({
        errorClass: 'RangeError',
        message: 'kvCacheWrite: positions[2] = -1 is outside [0, 3) (the positions of cache)',
      });
      expect(caught(() => ops.kvCacheWrite(cache, values, ints([0, 1, 1]), ints([3, 1, 1])))?.message).toBe(
        'kvCacheWrite: positions[0] = 3 is outside [0, 3) (the positions of cache)',
      );
      expect(read(cache)).toEqual(new Float64Array(12));
    });
  });

  it('accepts f32 and an empty batch', () => {
    scope(() => {
      const cache = floats(new Float64Array(4), [1, 2, 1, 2], 'f32');
      ops.kvCacheWrite(cache, floats([0.5, -1.25], [1, 1, 2], 'f32'), ints([0]), ints([1]));
      expect(read(cache)).toEqual(Float64Array.from([0, 0, 0.5, -1.25]));
      ops.kvCacheWrite(cache, floats([], [0, 1, 2], 'f32'), ints([]), ints([]));
      expect(read(cache)).toEqual(Float64Array.from([0, 0, 0.5, -1.25]));
    });
  });
});

describe('cachedAttention against the plain-TS f64 reference', () => {
  const { next } = seeded('cachedAttention reference');

  for (const [H, Hkv, Dh] of [[1, 1, 1], [4, 2, 6], [6, 3, 5], [4, 4, 8]] as [number, number, number][]) {
    it(`random slots and positions match to 1e-12 (H=${H}, Hkv=${Hkv}, Dh=${Dh})`, () => {
      scope(() => {
        const c: Cache = { S: 3, L: 9, Hkv, Dh };
        const kc = normals(next, c.S * c.L * Hkv * Dh);
        const vc = normals(next, c.S * c.L * Hkv * Dh);
        const slots = [0, 2, 2, 1, 0, 1, 2];
        const positions = [0, 8, 3, 5, 8, 0, 7];
        const N = slots.length;
        const q = normals(next, N * H * Dh);
        const shape = [c.S, c.L, Hkv, Dh];
        const out = ops.cachedAttention(floats(q, [N, H, Dh]), floats(kc, shape), floats(vc, shape), ints(slots), ints(positions));
        expect(out.shape).toEqual([N, H, Dh]);
        expect(out.dtype).toBe('f64');
        const want = refCachedAttention(q, kc, vc, slots, positions, H, c);
        expectRel(read(out), want, 1e-12, 1e-3, `H=${H} Hkv=${Hkv} Dh=${Dh}`);
      });
    });
  }

  it('the scale option multiplies q . k', () => {
    scope(() => {
      const c: Cache = { S: 2, L: 4, Hkv: 1, Dh: 3 };
      const kc = normals(next, 2 * 4 * 3);
      const vc = normals(next, 2 * 4 * 3);
      const q = normals(next, 2 * 2 * 3);
      const out = ops.cachedAttention(floats(q, [2, 2, 3]), floats(kc, [2, 4, 1, 3]), floats(vc, [2, 4, 1, 3]), ints([1, 0]), ints([3, 2]), { scale: 0.3 });
      expectRel(read(out), refCachedAttention(q, kc, vc, [1, 0], [3, 2], 2, c, 0.3), 1e-12, 1e-3, 'scale 0.3');
    });
  });
});

describe('cachedAttention equals causalAttention over the same packed sequences', () => {
  const { next } = seeded('cachedAttention vs causalAttention');
  const lengths = [1, 5, 17];

  for (const [H, Hkv, Dh] of [[4, 2, 6], [2, 2, 8], [3, 1, 7]] as [number, number, number][]) {
    it(`prefill: sequences of lengths 1, 5, 17 written into 3 slots and queried at every position (H=${H}, Hkv=${Hkv}, Dh=${Dh})`, () => {
      scope(() => {
        const { T, slots, positions } = packed(lengths);
        const c: Cache = { S: 3, L: 20, Hkv, Dh };
        const [q, k, v] = [normals(next, T * H * Dh), normals(next, T * Hkv * Dh), normals(next, T * Hkv * Dh)];
        const kCache = floats(normals(next, c.S * c.L * Hkv * Dh), [c.S, c.L, Hkv, Dh]); // stale rows past each length
        const vCache = floats(normals(next, c.S * c.L * Hkv * Dh), [c.S, c.L, Hkv, Dh]);
        ops.kvCacheWrite(kCache, floats(k, [T, Hkv, Dh]), ints(slots), ints(positions));
        ops.kvCacheWrite(vCache, floats(v, [T, Hkv, Dh]), ints(slots), ints(positions));
        const got = ops.cachedAttention(floats(q, [T, H, Dh]), kCache, vCache, ints(slots), ints(positions));
        const want = ops.causalAttention(floats(q, [T, H, Dh]), floats(k, [T, Hkv, Dh]), floats(v, [T, Hkv, Dh]), ints(slots)).out;
        expectRel(read(got), read(want), 1e-12, 1e-3, `prefill H=${H} Hkv=${Hkv} Dh=${Dh}`);
      });
    });
  }

  it('decode: one query per slot at its last position equals the last row of causalAttention over the whole sequence', () => {
    scope(() => {
      const [H, Hkv, Dh] = [4, 2, 6];
      const c: Cache = { S: 3, L: 24, Hkv, Dh };
      const kCache = floats(new Float64Array(c.S * c.L * Hkv * Dh), [c.S, c.L, Hkv, Dh]);
      const vCache = floats(new Float64Array(c.S * c.L * Hkv * Dh), [c.S, c.L, Hkv, Dh]);
      const seqs = lengths.map((len) => ({ q: normals(next, (len + 1) * H * Dh), k: normals(next, (len + 1) * Hkv * Dh), v: normals(next, (len + 1) * Hkv * Dh) }));
      // Prompts first, then each slot's new token written at position len and queried there.
      const prompt = packed(lengths);
      const cat = (key: 'k' | 'v') => Float64Array.from(seqs.flatMap((s, i) => Array.from(s[key].subarray(0, lengths[i] * Hkv * Dh))));
      ops.kvCacheWrite(kCache, floats(cat('k'), [prompt.T, Hkv, Dh]), ints(prompt.slots), ints(prompt.positions));
      ops.kvCacheWrite(vCache, floats(cat('v'), [prompt.T, Hkv, Dh]), ints(prompt.slots), ints(prompt.positions));
      const last = (a: Float64Array, i: number, w: number) => Array.from(a.subarray(lengths[i] * w, (lengths[i] + 1) * w));
      const step = (key: 'q' | 'k' | 'v', w: number) => Float64Array.from(seqs.flatMap((s, i) => last(s[key], i, w)));
      const slots = ints([0, 1, 2]);
      const positions = ints(lengths);
      ops.kvCacheWrite(kCache, floats(step('k', Hkv * Dh), [3, Hkv, Dh]), slots, positions);
      ops.kvCacheWrite(vCache, floats(step('v', Hkv * Dh), [3, Hkv, Dh]), slots, positions);
      const got = read(ops.cachedAttention(floats(step('q', H * Dh), [3, H, Dh]), kCache, vCache, slots, positions));
      seqs.forEach((s, i) => {
        const n = lengths[i] + 1;
        const full = ops.causalAttention(floats(s.q, [n, H, Dh]), floats(s.k, [n, Hkv, Dh]), floats(s.v, [n, Hkv, Dh]), ints(new Int32Array(n))).out;
        const want = read(full).subarray((n - 1) * H * Dh);
        expectRel(got.subarray(i * H * Dh, (i + 1) * H * Dh), want, 1e-12, 1e-3, `decode slot ${i}`);
      });
    });
  });
});

describe('cachedAttention f32 against f64', () => {
  const { next } = seeded('cachedAttention f32');

  it('f32 matches the f64 op to 1e-5 (H=8, Hkv=2, Dh=24, positions up to 63)', () => {
    scope(() => {
      const [H, Hkv, Dh, S, L, N] = [8, 2, 24, 4, 64, 12];
      const kc = f32(normals(next, S * L * Hkv * Dh));
      const vc = f32(normals(next, S * L * Hkv * Dh));
      const q = f32(normals(next, N * H * Dh));
      const slots = Array.from({ length: N }, (_, i) => i % S);
      const positions = Array.from({ length: N }, (_, i) => (i * 17) % L);
      const run = (dtype: FloatType) =>
        read(ops.cachedAttention(floats(q, [N, H, Dh], dtype), floats(kc, [S, L, Hkv, Dh], dtype), floats(vc, [S, L, Hkv, Dh], dtype), ints(slots), ints(positions)));
      const want = run('f64');
      const got = run('f32');
      expect(ops.cachedAttention(floats(q, [N, H, Dh], 'f32'), floats(kc, [S, L, Hkv, Dh], 'f32'), floats(vc, [S, L, Hkv, Dh], 'f32'), ints(slots), ints(positions)).dtype).toBe('f32');
      expectRel(got, want, 1e-5, maxAbs(want), 'f32 vs f64');
    });
  });
});

describe('kv cache ops are bitwise the same under any thread count', () => {
  const { seed } = seeded('kvCache determinism');

  it('kvCacheWrite (with duplicates) and cachedAttention f32 under OSP_NUM_THREADS=1 and 2', () => {
    const script =
      `const t=require('./src/tensor'), o=require('./src/ops');` +
      `const s=${seed % 1000000}, S=4, L=128, N=200, H=4, Hkv=2, Dh=32, c={device:'cpu'};` +
      `const kc=t.randn([S,L,Hkv,Dh],{device:'cpu',seed:s}), vc=t.randn([S,L,Hkv,Dh],{device:'cpu',seed:s+1});` +
      `const vals=t.randn([N,Hkv,Dh],{device:'cpu',seed:s+2}), q=t.randn([N,H,Dh],{device:'cpu',seed:s+3});` +
      `const sl=t.tensor(Int32Array.from({length:N},(_,i)=>(i*7)%S),[N],c), ps=t.tensor(Int32Array.from({length:N},(_,i)=>(i*13)%L),[N],c);` +
      `const dup=t.tensor(Int32Array.from({length:N},(_,i)=>i%3),[N],c);` +
      `o.kvCacheWrite(kc,vals,sl,ps); o.kvCacheWrite(vc,vals,sl,dup);` +
      `const r=o.cachedAttention(q,kc,vc,sl,ps);` +
      `const parts=[kc,vc,r].map((a)=>Buffer.from(a.toArray().buffer).toString('base64'));` +
      `process.stdout.write(parts.join('|'))`;
    expectSameOutputUnderThreads(script, 200 * 4 * 32 * 4);
  });
});

describe('kv cache argument checks', () => {
  const S = 2, L = 4, Hkv = 2, Dh = 8, H = 4, N = 3;
  const ok = (dtype: FloatType = 'f64') => ({
    cache: floats(new Float64Array(S * L * Hkv * Dh), [S, L, Hkv, Dh], dtype),
    vCache: floats(new Float64Array(S * L * Hkv * Dh), [S, L, Hkv, Dh], dtype),
    values: floats(new Float64Array(N * Hkv * Dh), [N, Hkv, Dh], dtype),
    q: floats(new Float64Array(N * H * Dh), [N, H, Dh], dtype),
    slots: ints([0, 1, 1]),
    positions: ints([0, 3, 2]),
  });
  const err = (fn: () => unknown, errorClass: string, message: RegExp) => expect(caught(fn)).toEqual({ errorClass, message: expect.stringMatching(message) });

  it('kvCacheWrite: wrong dtypes are TypeErrors naming the argument', () => {
    scope(() => {
      const a = ok();
      const bf = tensor(new Float32Array(S * L * Hkv * Dh), [S, L, Hkv, Dh], { dtype: 'bf16', device: 'cpu' });
      err(() => ops.kvCacheWrite(bf, a.values, a.slots, a.positions), 'TypeError', /^kvCacheWrite: cache has dtype bf16 on cpu; expected f32 or f64/);
      err(() => ops.kvCacheWrite(a.cache, floats(new Float64Array(N * Hkv * Dh), [N, Hkv, Dh], 'f32'), a.slots, a.positions), 'TypeError', /^kvCacheWrite: cache has dtype f64 but values has dtype f32/);
      err(() => ops.kvCacheWrite(a.cache, a.values, floats([0, 1, 1], [3]), a.positions), 'TypeError', /^kvCacheWrite: slots has dtype f64/);
      err(() => ops.kvCacheWrite(a.cache, a.values, a.slots, floats([0, 1, 1], [3])), 'TypeError', /^kvCacheWrite: positions has dtype f64/);
    });
  });

  it('kvCacheWrite: wrong shapes are TypeErrors naming the argument and the expectation', () => {
    scope(() => {
      const a = ok();
      err(() => ops.kvCacheWrite(floats(new Float64Array(8), [S, L]), a.values, a.slots, a.positions), 'TypeError', /^kvCacheWrite: cache has shape \[2, 4\]; expected 4 dimensions/);
      err(() => ops.kvCacheWrite(a.cache, floats(new Float64Array(N * Dh), [N, 1, Dh]), a.slots, a.positions), 'TypeError', /^kvCacheWrite: values has shape \[3, 1, 8\].*kv heads of cache/);
      err(() => ops.kvCacheWrite(a.cache, floats(new Float64Array(N * Hkv * 7), [N, Hkv, 7]), a.slots, a.positions), 'TypeError', /^kvCacheWrite: values has shape \[3, 2, 7\].*head dimension of cache/);
      err(() => ops.kvCacheWrite(a.cache, a.values, ints([0, 1]), a.positions), 'TypeError', /^kvCacheWrite: slots has shape \[2\].*one per row of values/);
      err(() => ops.kvCacheWrite(a.cache, a.values, a.slots, ints([0, 1, 1, 1])), 'TypeError', /^kvCacheWrite: positions has shape \[4\].*one per row of values/);
      err(() => ops.kvCacheWrite(a.cache, a.values.transpose(1, 2), a.slots, a.positions), 'TypeError', /^kvCacheWrite: values/);
      err(() => ops.kvCacheWrite(a.cache.transpose(0, 1), a.values, a.slots, a.positions), 'TypeError', /^kvCacheWrite: cache is a non-contiguous view/);
    });
  });

  it('kvCacheWrite: a non-tensor or disposed argument is a TypeError naming it', () => {
    scope(() => {
      const a = ok();
      err(() => ops.kvCacheWrite(a.cache, a.values, [0, 1, 1] as unknown as Tensor, a.positions), 'TypeError', /^kvCacheWrite: slots is not a Tensor/);
      a.values.dispose();
      err(() => ops.kvCacheWrite(a.cache, a.values, a.slots, a.positions), 'TypeError', /^kvCacheWrite: values has been disposed/);
    });
  });

  it('cachedAttention: wrong dtypes are TypeErrors naming the argument', () => {
    scope(() => {
      const a = ok();
      const qi = tensor(new Int32Array(N * H * Dh), [N, H, Dh], cpu);
      err(() => ops.cachedAttention(qi, a.cache, a.vCache, a.slots, a.positions), 'TypeError', /^cachedAttention: q has dtype i32/);
      const k32 = floats(new Float64Array(S * L * Hkv * Dh), [S, L, Hkv, Dh], 'f32');
      err(() => ops.cachedAttention(a.q, k32, a.vCache, a.slots, a.positions), 'TypeError', /^cachedAttention: q has dtype f64 but kCache has dtype f32/);
      err(() => ops.cachedAttention(a.q, a.cache, k32, a.slots, a.positions), 'TypeError', /^cachedAttention: q has dtype f64 but vCache has dtype f32/);
      err(() => ops.cachedAttention(a.q, a.cache, a.vCache, floats([0, 1, 1], [3]), a.positions), 'TypeError', /^cachedAttention: slots has dtype f64/);
      err(() => ops.cachedAttention(a.q, a.cache, a.vCache, a.slots, floats([0, 1, 1], [3])), 'TypeError', /^cachedAttention: positions has dtype f64/);
    });
  });

  it('cachedAttention: wrong shapes are TypeErrors naming the argument and the expectation', () => {
    scope(() => {
      const a = ok();
      err(() => ops.cachedAttention(floats(new Float64Array(N * H), [N, H]), a.cache, a.vCache, a.slots, a.positions), 'TypeError', /^cachedAttention: q has shape \[3, 4\]; expected 3 dimensions/);
      err(() => ops.cachedAttention(a.q, floats(new Float64Array(S * L * Hkv * Dh), [S * L, Hkv, Dh]), a.vCache, a.slots, a.positions), 'TypeError', /^cachedAttention: kCache has shape \[8, 2, 8\]; expected 4 dimensions/);
      err(() => ops.cachedAttention(a.q, floats(new Float64Array(S * L * Hkv * 7), [S, L, Hkv, 7]), a.vCache, a.slots, a.positions), 'TypeError', /^cachedAttention: kCache has shape \[2, 4, 2, 7\].*head dimension of q/);
      err(() => ops.cachedAttention(a.q, floats(new Float64Array(S * L * 3 * Dh), [S, L, 3, Dh]), floats(new Float64Array(S * L * 3 * Dh), [S, L, 3, Dh]), a.slots, a.positions), 'TypeError', /^cachedAttention: kCache has shape \[2, 4, 3, 8\] \(3 kv heads\).*divides q's 4 heads/);
      err(() => ops.cachedAttention(a.q, a.cache, floats(new Float64Array(3 * L * Hkv * Dh), [3, L, Hkv, Dh]), a.slots, a.positions), 'TypeError', /^cachedAttention: vCache has shape \[3, 4, 2, 8\].*slots of kCache/);
      err(() => ops.cachedAttention(a.q, a.cache, floats(new Float64Array(S * 5 * Hkv * Dh), [S, 5, Hkv, Dh]), a.slots, a.positions), 'TypeError', /^cachedAttention: vCache has shape \[2, 5, 2, 8\].*length of kCache/);
      err(() => ops.cachedAttention(a.q, a.cache, floats(new Float64Array(S * L * 1 * Dh), [S, L, 1, Dh]), a.slots, a.positions), 'TypeError', /^cachedAttention: vCache has shape \[2, 4, 1, 8\].*kv heads of kCache/);
      err(() => ops.cachedAttention(a.q, a.cache, a.vCache, ints([0, 1]), a.positions), 'TypeError', /^cachedAttention: slots has shape \[2\].*one per query of q/);
      err(() => ops.cachedAttention(a.q, a.cache, a.vCache, a.slots, ints([0])), 'TypeError', /^cachedAttention: positions has shape \[1\].*one per query of q/);
      err(() => ops.cachedAttention(a.q, a.cache.transpose(1, 2), a.vCache, a.slots, a.positions), 'TypeError', /^cachedAttention: kCache is a non-contiguous view/);
    });
  });

  it('cachedAttention: a bad scale is a RangeError, a non-tensor or disposed argument a TypeError', () => {
    scope(() => {
      const a = ok();
      for (const scale of [0, -1, NaN, Infinity]) {
        err(() => ops.cachedAttention(a.q, a.cache, a.vCache, a.slots, a.positions, { scale }), 'RangeError', /^cachedAttention: scale is /);
      }
      err(() => ops.cachedAttention(a.q, a.cache, {} as unknown as Tensor, a.slots, a.positions), 'TypeError', /^cachedAttention: vCache is not a Tensor/);
      a.cache.dispose();
      err(() => ops.cachedAttention(a.q, a.cache, a.vCache, a.slots, a.positions), 'TypeError', /^cachedAttention: kCache has been disposed/);
    });
  });

  it('cachedAttention: an out-of-range slot or position is a RangeError naming the lowest index and the bound', () => {
    scope(() => {
      const a = ok('f32');
      expect(caught(() => ops.cachedAttention(a.q, a.cache, a.vCache, ints([0, 5, -2]), a.positions))).toEqual({
        errorClass: 'RangeError',
        message: 'cachedAttention: slots[1] = 5 is outside [0, 2) (the slots of kCache)',
      });
      expect(caught(() => ops.cachedAttention(a.q, a.cache, a.vCache, a.slots, ints([0, 1, 4])))).toEqual({
        errorClass: 'RangeError',
        message: 'cachedAttention: positions[2] = 4 is outside [0, 4) (the positions of kCache)',
      });
      expect(caught(() => ops.cachedAttention(a.q, a.cache, a.vCache, a.slots, ints([-1, 1, 2])))?.message).toBe(
        'cachedAttention: positions[0] = -1 is outside [0, 4) (the positions of kCache)',
      );
    });
  });
});
