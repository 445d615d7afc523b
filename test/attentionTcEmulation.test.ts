// The tensor-core attention kernels (attention_tc.cu) run on the host by
// test/native/attentionTcEmulation.cpp (a std::thread per CUDA thread, block barriers, warp
// collectives for the shuffles and the mma, replayed by the PTX maps), against the f64 CPU op on
// the same bf16 inputs within the bounds the GPU suite uses (attentionTcBounds, test/helpers/gpu.ts):
// forward and backward at head dims 64, 80, 96, 128, GQA groups 1, 2 and 4, packed spans with
// one-token sequences, T not a multiple of 64. This checks the kernels' code without a GPU; the
// GPU suite (test/gpuAttentionTc.test.ts) checks it on the hardware. Needs a C++20 compiler and the
// CUDA headers; without them the suite is skipped with a one-line reason.
import { spawnSync } from 'child_process';
import fs from 'fs';
import os from 'os';
import path from 'path';
import * as osp from '../src';
import * as ops from '../src/ops';
import { normals, seeded } from './helpers/random';
import { attentionTcBounds, packedAttentionShape, roundBf16, worstBoundRatio } from './helpers/gpu';
import { buildHostEmulation, hostEmulationMissing } from './helpers/native';

const why = hostEmulationMissing();
if (why) process.stdout.write(`attention tensor-core emulation skipped: ${why}\n`);
const describeIf = why ? describe.skip : describe;

describeIf('attention_tc.cu kernels, emulated on the host, against the f64 CPU op', () => {
  const { next } = seeded('attention tc emulation');
  let dir = '';
  let exe = '';
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-attn-tc-'));
    exe = buildHostEmulation('attentionTcEmulation', dir);
  }, 120_000);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const cases: [number[], number, number, number][] = [
    [[1, 70, 1, 40, 3], 4, 1, 64],
    [[1, 30, 100], 4, 2, 80],
    [[130], 2, 1, 96],
    [[5, 1, 60, 1, 3], 2, 2, 128],
  ];
  for (const [lengths, H, Hkv, Dh] of cases) {
    it(`lengths [${lengths}], H ${H}, Hkv ${Hkv}, Dh ${Dh}: forward and backward within the derived bounds`, () => {
      const { shape, ids } = packedAttentionShape(lengths, H, Hkv, Dh);
      const T = shape.T;
      const [q, k, v, dO] = [T * H * Dh, T * Hkv * Dh, T * Hkv * Dh, T * H * Dh].map((n) => roundBf16(normals(next, n))) as [Float64Array, Float64Array, Float64Array, Float64Array];
      const input = Buffer.concat([
        Buffer.from(Int32Array.from([T, H, Hkv, Dh]).buffer),
        Buffer.from(Float32Array.from([shape.scale]).buffer),
        Buffer.from(shape.starts.buffer),
        Buffer.from(shape.ends.buffer),
        ...[q, k, v, dO].map((a) => Buffer.from(Float32Array.from(a).buffer)),
      ]);
      const [inFile, outFile] = [path.join(dir, 'in.bin'), path.join(dir, 'out.bin')];
      fs.writeFileSync(inFile, input);
      const run = spawnSync(exe, [inFile, outFile], { encoding: 'utf8' });
      expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
      const all = new Float32Array(fs.readFileSync(outFile).buffer.slice(0));
      let at = 0;
      const take = (n: number) => Float64Array.from(all.subarray(at, (at += n)));
      const got = { out: take(T * H * Dh), lse: take(T * H), gradQ: take(T * H * Dh), gradK: take(T * Hkv * Dh), gradV: take(T * Hkv * Dh) };
      expect(at).toBe(all.length);
      osp.scope(() => {
        const cpu = (a: Float64Array | Int32Array, s: number[]) => osp.tensor(a, s, { device: 'cpu' });
        const [sq, skv] = [[T, H, Dh], [T, Hkv, Dh]];
        const idsC = cpu(ids, [T]);
        const ref = ops.causalAttention(cpu(q, sq), cpu(k, skv), cpu(v, skv), idsC);
        const refG = ops.causalAttentionBackward(cpu(q, sq), cpu(k, skv), cpu(v, skv), idsC, cpu(got.out, sq), cpu(got.lse, [T, H]), cpu(dO, sq));
        const f64 = (t: osp.Tensor) => Float64Array.from(t.toArray());
        const want = { out: f64(ref.out), lse: f64(ref.logsumexp), gradQ: f64(refG.gradQ), gradK: f64(refG.gradK), gradV: f64(refG.gradV) };
        const bound = attentionTcBounds(shape, q, k, v, dO, got.out, got.lse, want);
        const keys = ['out', 'lse', 'gradQ', 'gradK', 'gradV'] as const;
        const ratios = Object.fromEntries(keys.map((key) => [key, Number(worstBoundRatio(got[key], want[key], bound[key]).toFixed(3))]));
        process.stdout.write(`emulated tensor cores, Dh ${Dh}, H ${H}/${Hkv}, T ${T}: error / bound ${JSON.stringify(ratios)}\n`);
        for (const key of keys) expect({ key, ratio: ratios[key], within: (ratios[key] as number) <= 1 }).toMatchObject({ within: true });
      });
    }, 300_000);
  }
});
