// kv_cache.cu's CUDA attention (flash-decoding: attention_device.cuh's attendKeys over key splits,
// merged in split order by the combine kernel) run on the host by test/native/kvCacheEmulation.cpp
// (test/native/cudaHostEmulation.h: a std::thread per CUDA thread, block barriers, warp shuffles),
// f32, against the f64 CPU op: one split and several (decodeSplits), positions ending mid-split,
// in the first split and at the cache's end. Bound: the f32 sums of the SIMT path, as
// test/gpuKvCache.test.ts's f32 tolerance (1e-5 of the output's largest magnitude). Needs a C++20
// compiler and the CUDA headers; without them the suite is skipped with a one-line reason.
import { spawnSync } from 'child_process';
import fs from 'fs';
import os from 'os';
import path from 'path';
import * as osp from '../src';
import * as ops from '../src/ops';
import { normals, seeded } from './helpers/random';
import { maxRelError } from './helpers/reference';
import { buildHostEmulation, hostEmulationMissing } from './helpers/native';

const why = hostEmulationMissing();
if (why) process.stdout.write(`kv cache emulation skipped: ${why}\n`);
const describeIf = why ? describe.skip : describe;

describeIf('kv_cache.cu flash-decoding, emulated on the host, against the f64 CPU op', () => {
  const { next } = seeded('kv cache emulation');
  let dir = '';
  let exe = '';
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-kv-'));
    exe = buildHostEmulation('kvCacheEmulation', dir);
  }, 120_000);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  // [H, Hkv, Dh, S, L, positions (query i reads slot i), expected splits]
  const cases: [number, number, number, number, number, number[], number][] = [
    [4, 2, 32, 3, 1024, [1023, 700, 5], 4],
    [2, 1, 16, 2, 200, [199, 0], 1],
  ];
  for (const [H, Hkv, Dh, S, L, positions, splits] of cases) {
    it(`H ${H}/${Hkv}, Dh ${Dh}, caches of ${L}, positions [${positions}]: ${splits} split(s), within 1e-5 of the f64 op`, () => {
      const N = positions.length;
      const slots = Int32Array.from(positions, (_, i) => i);
      const pos = Int32Array.from(positions);
      const q = Float64Array.from(normals(next, N * H * Dh), Math.fround);
      const k = Float64Array.from(normals(next, S * L * Hkv * Dh), Math.fround);
      const v = Float64Array.from(normals(next, S * L * Hkv * Dh), Math.fround);
      const input = Buffer.concat([
        Buffer.from(Int32Array.from([N, H, Hkv, Dh, S, L]).buffer),
        Buffer.from(Float32Array.from([1 / Math.sqrt(Dh)]).buffer),
        Buffer.from(slots.buffer),
        Buffer.from(pos.buffer),
        ...[q, k, v].map((a) => Buffer.from(Float32Array.from(a).buffer)),
      ]);
      const [inFile, outFile] = [path.join(dir, 'in.bin'), path.join(dir, 'out.bin')];
      fs.writeFileSync(inFile, input);
      const run = spawnSync(exe, [inFile, outFile], { encoding: 'utf8' });
      expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
      const bytes = fs.readFileSync(outFile);
      expect(bytes.readInt32LE(0)).toBe(splits);
      const got = new Float32Array(bytes.buffer.slice(bytes.byteOffset + 4, bytes.byteOffset + bytes.length));
      osp.scope(() => {
        const cpu = (a: Float64Array | Int32Array, s: number[]) => osp.tensor(a, s, { device: 'cpu' });
        const want = ops.cachedAttention(cpu(q, [N, H, Dh]), cpu(k, [S, L, Hkv, Dh]), cpu(v, [S, L, Hkv, Dh]), cpu(slots, [N]), cpu(pos, [N])).toArray();
        const floor = Array.from(want).reduce((m, x) => Math.max(m, Math.abs(x)), 0);
        expect(maxRelError(got, want, floor)).toBeLessThanOrEqual(1e-5);
      });
    }, 300_000);
  }
});
