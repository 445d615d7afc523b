// The bf16 tensor-core attention (FlashAttention-2, attention_tc.cu) on cuda against the float64 CPU
// op on the same (bf16) inputs, elementwise within the bounds derived in test/helpers/gpu.ts
// (attentionTcBounds, whose derivation test/gpuBounds.test.ts checks against a simulation of the
// device's roundings): head dims 64, 80, 96, 128; GQA groups 1 and 4; packed spans with one-token,
// short and long sequences; T not a multiple of the 64-row tiles. Also: two runs are bitwise equal,
// the SIMT path (OSP_ATTENTION=simt) agrees within the two paths' bounds and differs in its bits
// (so the switch really switches), and flash-decoding over a long cache is covered by
// test/gpuKvCache.test.ts. Where no GPU answers the suite is skipped with a one-line reason; on a
// GPU older than sm_80 the dispatch keeps the SIMT path and the bitwise-difference check says so.
import * as osp from '../src';
import type { Tensor } from '../src';
import { normals, seeded } from './helpers/random';
import * as ops from '../src/ops';
import { attentionTcBounds, gpuSuite, packedAttentionShape, roundBf16, worstBoundRatio } from './helpers/gpu';

const { cuda, describeGpu } = gpuSuite('GPU tensor-core attention suite');

const f64 = (t: Tensor) => Float64Array.from(t.toArray());
const bits = (t: Tensor) => Buffer.from(t.toArray().buffer).toString('base64');

/** Runs f with OSP_ATTENTION set to mode (or unset), restoring it afterwards. */
function withAttentionPath<R>(mode: string | undefined, f: () => R): R {
  const before = process.env.OSP_ATTENTION;
  if (mode === undefined) delete process.env.OSP_ATTENTION;
  else process.env.OSP_ATTENTION = mode;
  try {
    return f();
  } finally {
    if (before === undefined) delete process.env.OSP_ATTENTION;
    else process.env.OSP_ATTENTION = before;
  }
}

interface Case {
  lengths: number[];
  H: number;
  Hkv: number;
  Dh: number;
}

describeGpu(`bf16 tensor-core attention on cuda against the f64 CPU op (${cuda.devices[0]?.name ?? 'no device'})`, () => {
  const { next } = seeded('gpu attention tc');
  // T = 275, 130 and 600 (none a multiple of 64); one-token sequences between long ones, a
  // sequence crossing several 64-key tiles, a tile holding the ends and starts of several.
  const cases: Case[] = [
    { lengths: [1, 70, 1, 200, 3], H: 4, Hkv: 4, Dh: 64 },
    { lengths: [1, 70, 1, 200, 3], H: 8, Hkv: 2, Dh: 80 },
    { lengths: [130], H: 4, Hkv: 1, Dh: 96 },
    { lengths: [5, 1, 1, 300, 60, 1, 233], H: 4, Hkv: 1, Dh: 128 },
    { lengths: [600], H: 2, Hkv: 2, Dh: 128 },
  ];

  for (const c of cases) {
    const { lengths, H, Hkv, Dh } = c;
    const T = lengths.reduce((a, b) => a + b, 0);
    it(`lengths [${lengths}], H ${H}, Hkv ${Hkv}, Dh ${Dh}: forward and backward within the derived bounds, deterministic, and the SIMT path agrees`, () => {
      osp.scope(() => {
        const { shape, ids } = packedAttentionShape(lengths, H, Hkv, Dh);
        const [q, k, v, dO] = [T * H * Dh, T * Hkv * Dh, T * Hkv * Dh, T * H * Dh].map((n) => roundBf16(normals(next, n))) as [
          Float64Array,
          Float64Array,
          Float64Array,
          Float64Array,
        ];
        const [sq, skv] = [[T, H, Dh], [T, Hkv, Dh]];
        const cpu = (a: Float64Array | Int32Array, s: number[]) => osp.tensor(a, s, { device: 'cpu' });
        const dev = (a: Float64Array, s: number[]) => osp.tensor(a, s, { dtype: 'bf16', device: 'cuda' });
        const idsC = cpu(ids, [T]);
        const spans = ops.sequenceSpans(ids, 'cuda');
        const idsD = osp.tensor(ids, [T], { device: 'cuda' });
        const [qD, kD, vD, gD] = [dev(q, sq), dev(k, skv), dev(v, skv), dev(dO, sq)];
        const run = () => {
          const r = ops.causalAttention(qD, kD, vD, idsD, { spans });
          const b = ops.causalAttentionBackward(qD, kD, vD, idsD, r.out, r.logsumexp, gD, { spans });
          return { out: r.out, lse: r.logsumexp, gradQ: b.gradQ, gradK: b.gradK, gradV: b.gradV };
        };
        const got = withAttentionPath(undefined, run);
        const again = withAttentionPath(undefined, run);
        const simt = withAttentionPath('simt', run);
        const keys = ['out', 'lse', 'gradQ', 'gradK', 'gradV'] as const;
        for (const key of keys) expect({ key, same: bits(again[key]) === bits(got[key]) }).toMatchObject({ same: true });

        // The f64 op; its backward reads the device's out and lse (see attentionTcBounds).
        const ref = ops.causalAttention(cpu(q, sq), cpu(k, skv), cpu(v, skv), idsC);
        const [out, lse] = [f64(got.out), f64(got.lse)];
        const refG = ops.causalAttentionBackward(cpu(q, sq), cpu(k, skv), cpu(v, skv), idsC, cpu(out, sq), cpu(lse, [T, H]), cpu(dO, sq));
        const want = { out: f64(ref.out), lse: f64(ref.logsumexp), gradQ: f64(refG.gradQ), gradK: f64(refG.gradK), gradV: f64(refG.gradV) };
        const bound = attentionTcBounds(shape, q, k, v, dO, out, lse, want);
        const ratios = Object.fromEntries(keys.map((key) => [key, Number(worstBoundRatio(f64(got[key]), want[key], bound[key]).toFixed(3))]));
        process.stdout.write(`tensor cores, Dh ${Dh}, H ${H}/${Hkv}, T ${T}: error / bound ${JSON.stringify(ratios)}\n`);
        for (const key of keys) expect({ key, ratio: ratios[key], within: (ratios[key] as number) <= 1 }).toMatchObject({ within: true });

        // The SIMT path (f32 arithmetic, outputs rounded to bf16): within u |ref| plus the f32 part of
        // the same bounds, so the two paths differ by at most the sum. Its backward reads its own out
        // and lse; the f64 reference for it is recomputed from those.
        const [outS, lseS] = [f64(simt.out), f64(simt.lse)];
        const refGS = ops.causalAttentionBackward(cpu(q, sq), cpu(k, skv), cpu(v, skv), idsC, cpu(outS, sq), cpu(lseS, [T, H]), cpu(dO, sq));
        const wantS = { out: want.out, lse: want.lse, gradQ: f64(refGS.gradQ), gradK: f64(refGS.gradK), gradV: f64(refGS.gradV) };
        const boundS = attentionTcBounds(shape, q, k, v, dO, outS, lseS, wantS);
        for (const key of keys) {
          const ratio = worstBoundRatio(f64(simt[key]), wantS[key], boundS[key]);
          expect({ path: 'simt', key, ratio, within: ratio <= 1 }).toMatchObject({ within: true });
        }
        const both = Float64Array.from(bound.out, (b, e) => b + (boundS.out[e] as number));
        const outRatio = worstBoundRatio(f64(got.out), f64(simt.out), both);
        expect({ outRatio, within: outRatio <= 1 }).toMatchObject({ within: true });
        // Rounding P to bf16 (u = 2^-8) changes some of the T H Dh output bits unless both runs took
        // the same code: the default took the tensor cores (an sm_80+ device) and simt did not.
        expect({ tensorCoresRan: bits(got.out) !== bits(simt.out) }).toMatchObject({ tensorCoresRan: true });
      });
    });
  }

  it('OSP_ATTENTION other than auto or simt is a RangeError naming it', () => {
    osp.scope(() => {
      const x = osp.tensor(new Float32Array(2 * 1 * 64), [2, 1, 64], { dtype: 'bf16', device: 'cuda' });
      const ids = osp.tensor(Int32Array.from([0, 0]), [2], { device: 'cuda' });
      expect(() => withAttentionPath('fast', () => ops.causalAttention(x, x, x, ids))).toThrow(
        new RangeError("causalAttention: OSP_ATTENTION is 'fast'; expected 'auto' (or unset) or 'simt'"),
      );
      expect(withAttentionPath('auto', () => bits(ops.causalAttention(x, x, x, ids).out))).toBe(bits(ops.causalAttention(x, x, x, ids).out));
    });
  });
});
