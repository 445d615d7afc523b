// The tensor-core attention's fragment helpers (native/kernels/attention/attention_mma.cuh) checked
// without a GPU: test/native/attentionMmaEmulation.cpp compiles them for the host, runs each for
// all 32 lanes of a warp in turn, and replays the recorded mma calls by the PTX ISA's m16n8k16
// fragment maps (test/native/mmaPtxMaps.h, from the ISA's tables); the products must equal plain
// loops over the same tiles for head dims 64, 80, 96, 128. Needs a C++ compiler and the CUDA
// headers (cuda_bf16.h); without them the suite is skipped with a one-line reason.
import { spawnSync } from 'child_process';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { buildHostEmulation, hostEmulationMissing } from './helpers/native';

const why = hostEmulationMissing();
if (why) process.stdout.write(`attention mma emulation skipped: ${why}\n`);
const describeIf = why ? describe.skip : describe;

describeIf('attention_mma.cuh fragment helpers, emulated on the host against the PTX maps', () => {
  it('mmaRowsRows, mmaAccCols and storeRow give the plain products at head dims 64, 80, 96, 128', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-mma-'));
    try {
      const exe = buildHostEmulation('attentionMmaEmulation', dir);
      const run = spawnSync(exe, [], { encoding: 'utf8' });
      expect(run.status).toBe(0);
      const errors = JSON.parse(run.stdout) as Record<string, number>;
      process.stdout.write(`mma emulation, worst |error| per check: ${run.stdout}`);
      expect(Object.keys(errors)).toHaveLength(20);
      // The emulation adds each 16-term product (exact in double) into an f32 accumulator: at most
      // Dh / 16 = 8 roundings of partial sums bounded by sum |a b| <= 128 * 4.5^2 (the largest of
      // ~10^4 N(0, 1) draws is below 4.5), so |error| <= 8 * 2^-24 * 2592 < 1.3e-3. A wrong index
      // map moves whole products: errors of order 10.
      for (const [check, err] of Object.entries(errors)) {
        if (check.startsWith('storeRow')) expect({ check, err }).toEqual({ check, err: 0 });
        else expect({ check, within: err <= 1.3e-3 }).toEqual({ check, within: true });
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
