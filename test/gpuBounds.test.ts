// The derived tolerances of the GPU suites (test/helpers/gpu.ts), checked without a GPU: the CPU
// simulates the device kernels' f32 and bf16 roundings step by step (Math.fround, and a bit-exact
// round-to-nearest-even bf16 checked against osp's own conversion) on inputs drawn as the GPU suite
// draws them, and the simulated error must stay within the derived bound. Each case also shows the
// old tolerance failing, so the bound is not loose by construction.
import * as osp from '../src';
import { integers, normals, seeded } from './helpers/random';
import { maxRelError } from './helpers/reference';
import { attentionTcBounds, packedAttentionShape, unfusedBf16BackwardTolerance, worstBoundRatio } from './helpers/gpu';
import type { AttentionShape } from './helpers/gpu';
import * as ops from '../src/ops';

const f32 = new Float32Array(1);
const bits = new Uint32Array(f32.buffer);
/** f32 -> bf16, round to nearest even (finite inputs), as the device's __float2bfloat16_rn. */
function bf16(x: number): number {
  f32[0] = x;
  const b = bits[0] as number;
  bits[0] = ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) << 16;
  return f32[0] as number;
}
const fr = Math.fround;

describe('GPU suite tolerances against a simulation of the device rounding', () => {
  const { next } = seeded('gpu bounds');

  it("the bit-level bf16 rounding equals osp's f32 -> bf16 conversion", () => {
    const x = Float64Array.from(normals(next, 20000, 5), fr);
    const t = osp.tensor(x, [x.length], { dtype: 'bf16', device: 'cpu' });
    expect(Array.from(t.toArray())).toEqual(Array.from(x, bf16));
    t.dispose();
  });

  it('bf16 unfused against fused tokenLogprobs backward stays within the derived bound, above 2e-2', () => {
    // The GPU suite's case: 33 rows of 1001 bf16 logits N(0, 9), one ignored row, g ~ N(0, 1), floor 1e-3.
    const N = 33;
    const V = 1001;
    const floor = 1e-3;
    let worst = 0;
    let worstRatio = 0;
    for (let trial = 0; trial < 20; trial++) {
      const x = Float64Array.from(normals(next, N * V, 3), (v) => bf16(fr(v)));
      const t = integers(next, N, 0, V);
      t[1] = -100;
      const g = Float64Array.from(normals(next, N), fr);
      const fused = new Float64Array(N * V);
      const unfused = new Float64Array(N * V);
      let gMax = 0;
      for (let n = 0; n < N; n++) {
        if (t[n] < 0) continue; // ignored: zeros on both paths
        gMax = Math.max(gMax, Math.abs(g[n] as number));
        const row = x.subarray(n * V, (n + 1) * V);
        let m = -Infinity;
        for (const v of row) m = Math.max(m, v);
        // f32 sums in two orders (the kernels reduce differently): sequential and strided by 256.
        let s1 = 0;
        for (const v of row) s1 = fr(s1 + fr(Math.exp(fr(v - m))));
        const parts = new Array(256).fill(0);
        row.forEach((v, i) => (parts[i % 256] = fr(parts[i % 256] + fr(Math.exp(fr(v - m))))));
        const s2 = parts.reduce((a, b) => fr(a + b), 0);
        const lseF = fr(m + fr(Math.log(s1)));
        const lseU = fr(m + fr(Math.log(s2)));
        const gn = g[n] as number;
        const dyT = bf16(gn);
        for (let v = 0; v < V; v++) {
          const xv = row[v] as number;
          const p = fr(Math.exp(fr(xv - lseF)));
          fused[n * V + v] = bf16(v === t[n] ? fr(gn * fr(1 - p)) : fr(-gn * p));
          const y = bf16(fr(xv - lseU));
          const dy = v === t[n] ? dyT : 0;
          unfused[n * V + v] = bf16(fr(dy - fr(fr(Math.exp(y)) * dyT)));
        }
      }
      const err = maxRelError(unfused, fused, floor);
      const tol = unfusedBf16BackwardTolerance(gMax, floor);
      expect({ trial, err, withinBound: err <= tol }).toMatchObject({ withinBound: true });
      worst = Math.max(worst, err);
      worstRatio = Math.max(worstRatio, err / tol);
    }
    process.stdout.write(`bf16 unfused vs fused backward: worst simulated error ${worst.toFixed(4)} (${(100 * worstRatio).toFixed(0)}% of the derived bound)\n`);
    // One draw exceeds 2e-2 with probability ~0.93 (186 of 200 simulated), so all 20 staying
    // below it has probability ~1e-23.
    expect(worst).toBeGreaterThan(2e-2);
  });

  // The bf16 tensor-core attention (attention_tc.cu), simulated: scores and sums in f32 (fround),
  // P rounded to bf16 before P V and P^T dO, dS rounded to bf16 before dS^T Q and dS K, every output
  // rounded to bf16; the f64 op is the reference (its backward fed the simulated out and lse, as the
  // GPU suite feeds the device's). `skipDiagonal` drops key i from query i's softmax: an off-by-one
  // mask, which the bounds must catch.
  function simulateTc(s: AttentionShape, q: Float64Array, k: Float64Array, v: Float64Array, dO: Float64Array, skipDiagonal = false) {
    const { T, H, Hkv, Dh, scale, starts } = s;
    const group = H / Hkv;
    const out = new Float64Array(T * H * Dh);
    const lse = new Float64Array(T * H);
    const [dq, dk, dv] = [new Float64Array(T * H * Dh), new Float64Array(T * Hkv * Dh), new Float64Array(T * Hkv * Dh)];
    const dot = (a: Float64Array, ai: number, b: Float64Array, bi: number) => {
      let x = 0;
      for (let d = 0; d < Dh; d++) x = fr(x + (a[ai * Dh + d] as number) * (b[bi * Dh + d] as number));
      return x;
    };
    const keys = (i: number) => {
      const js: number[] = [];
      for (let j = starts[i] as number; j <= i; j++) if (!(skipDiagonal && j === i && j > (starts[i] as number))) js.push(j);
      return js;
    };
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / group);
      for (let i = 0; i < T; i++) {
        const r = i * H + h;
        const js = keys(i);
        const sc = js.map((j) => fr(scale * dot(q, r, k, j * Hkv + g)));
        const m = Math.max(...sc);
        const p = sc.map((x) => fr(Math.exp(fr(x - m))));
        const l = p.reduce((a, b) => fr(a + b), 0);
        for (let d = 0; d < Dh; d++) {
          let o = 0;
          js.forEach((j, n) => (o = fr(o + bf16(p[n] as number) * (v[(j * Hkv + g) * Dh + d] as number))));
          out[r * Dh + d] = bf16(fr(o / l));
        }
        lse[r] = fr(m + fr(Math.log(l)));
      }
    }
    const acc = { q: new Float64Array(T * H * Dh), k: new Float64Array(T * Hkv * Dh), v: new Float64Array(T * Hkv * Dh) };
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / group);
      for (let i = 0; i < T; i++) {
        const r = i * H + h;
        const D = dot(dO, r, out, r);
        for (const j of keys(i)) {
          const kr = j * Hkv + g;
          const p = fr(Math.exp(fr(fr(scale * dot(q, r, k, kr)) - (lse[r] as number))));
          const ds = bf16(fr(p * fr(dot(dO, r, v, kr) - D)));
          const pb = bf16(p);
          for (let d = 0; d < Dh; d++) {
            acc.v[kr * Dh + d] = fr((acc.v[kr * Dh + d] as number) + pb * (dO[r * Dh + d] as number));
            acc.k[kr * Dh + d] = fr((acc.k[kr * Dh + d] as number) + ds * (q[r * Dh + d] as number));
            acc.q[r * Dh + d] = fr((acc.q[r * Dh + d] as number) + ds * (k[kr * Dh + d] as number));
          }
        }
      }
    }
    acc.q.forEach((x, e) => (dq[e] = bf16(fr(scale * x))));
    acc.k.forEach((x, e) => (dk[e] = bf16(fr(scale * x))));
    acc.v.forEach((x, e) => (dv[e] = bf16(x)));
    return { out, lse, gradQ: dq, gradK: dk, gradV: dv };
  }

  it('bf16 tensor-core attention stays within attentionTcBounds, and an off-by-one mask does not', () => {
    const { shape, ids } = packedAttentionShape([1, 70, 1, 100, 28], 4, 1, 64);
    const { T, H, Hkv, Dh } = shape;
    const held = (n: number) => Float64Array.from(normals(next, n), (x) => bf16(fr(x)));
    const [q, k, v, dO] = [held(T * H * Dh), held(T * Hkv * Dh), held(T * Hkv * Dh), held(T * H * Dh)];
    const ratios = (sim: ReturnType<typeof simulateTc>) =>
      osp.scope(() => {
        const c = (a: Float64Array | Int32Array, sh: number[]) => osp.tensor(a, sh, { device: 'cpu' });
        const [sq, skv] = [[T, H, Dh], [T, Hkv, Dh]];
        const idsC = c(ids, [T]);
        const ref = ops.causalAttention(c(q, sq), c(k, skv), c(v, skv), idsC);
        const refG = ops.causalAttentionBackward(c(q, sq), c(k, skv), c(v, skv), idsC, c(sim.out, sq), c(sim.lse, [T, H]), c(dO, sq));
        const want = {
          out: Float64Array.from(ref.out.toArray()),
          lse: Float64Array.from(ref.logsumexp.toArray()),
          gradQ: Float64Array.from(refG.gradQ.toArray()),
          gradK: Float64Array.from(refG.gradK.toArray()),
          gradV: Float64Array.from(refG.gradV.toArray()),
        };
        const b = attentionTcBounds(shape, q, k, v, dO, sim.out, sim.lse, want);
        const keys = ['out', 'lse', 'gradQ', 'gradK', 'gradV'] as const;
        return Object.fromEntries(keys.map((key) => [key, worstBoundRatio(sim[key], want[key], b[key])])) as Record<(typeof keys)[number], number>;
      });
    const good = ratios(simulateTc(shape, q, k, v, dO));
    process.stdout.write(`bf16 tensor-core attention, simulated error / derived bound: ${JSON.stringify(good, (_, x) => (typeof x === 'number' ? Number(x.toFixed(3)) : x))}\n`);
    for (const [key, ratio] of Object.entries(good)) expect({ key, ratio, within: ratio <= 1 }).toMatchObject({ within: true });
    const wrong = ratios(simulateTc(shape, q, k, v, dO, true));
    process.stdout.write(`with key i dropped from query i: ${JSON.stringify(wrong, (_, x) => (typeof x === 'number' ? Number(x.toFixed(1)) : x))}\n`);
    for (const [key, ratio] of Object.entries(wrong)) expect({ key, ratio, caught: ratio > 1 }).toMatchObject({ caught: true });
  });
});
