// The host allocator (native/core/tensor.cpp, HostCache): buffers of 1 MiB and more are kept after
// free in size classes (1, 1.25, 1.5, 1.75 x 2^k) and reused by any request of the same class;
// over the cap (OSP_HOST_CACHE_MB) the least recently freed go first. memoryStats counts the bytes
// requested (never the rounded class) and shows the cache's bytes as cpu.cachedBytes.
import { spawnSync } from 'child_process';
import path from 'path';

import * as osp from '../src';

const MiB = 2 ** 20;
const floats = (bytes: number) => osp.zeros([bytes / 4], { device: 'cpu' });
const cached = () => osp.memoryStats().cpu.cachedBytes;

describe('host allocator', () => {
  it('counts requested bytes, not size classes, in current and peak bytes', () => {
    const before = osp.memoryStats().cpu.currentBytes;
    osp.resetPeakMemory();
    const x = floats(5_000_004); // class 5 MiB
    expect(osp.memoryStats().cpu.currentBytes - before).toBe(5_000_004);
    x.dispose();
    expect(osp.memoryStats().cpu.currentBytes).toBe(before);
    expect(osp.memoryStats().cpu.peakBytes - before).toBe(5_000_004);
  });

  it('reuses a freed buffer for another size of the same class, not for another class', () => {
    floats(75_000_000).dispose(); // 71.5 MiB -> the 80 MiB class
    const held = cached();
    expect(held).toBeGreaterThanOrEqual(80 * MiB);
    const other = floats(90_000_000); // 85.8 MiB -> the 96 MiB class: a fresh buffer
    expect(cached()).toBe(held);
    const same = floats(80_000_000); // 76.3 MiB -> the 80 MiB class: the freed one
    expect(cached()).toBe(held - 80 * MiB);
    same.dispose();
    other.dispose();
    expect(cached()).toBe(held + 96 * MiB);
  });

  it('keeps a few classes, not one buffer per size, under changing lengths (as training batches)', () => {
    const start = cached();
    for (let i = 0; i < 40; i++) {
      // 24 to 32 MiB in steps that are never the same size twice
      const t = floats(24 * MiB + i * 209_716);
      t.dispose();
    }
    // Classes 24, 28 and 32 MiB at most; exact-size reuse would keep ~40 distinct buffers.
    expect(cached() - start).toBeLessThanOrEqual((24 + 28 + 32) * MiB);
  });

  it('releases the least recently freed buffers first when the cap is reached', () => {
    // A fresh process with an 8 MiB cache: free 4 MiB then 3 MiB (7 cached), then 2 MiB: 9 > 8, so
    // the 4 MiB buffer (the oldest) goes; a new 4 MiB tensor is then fresh, a 3 MiB one reused.
    const script =
      `const o=require('./src'); const c=()=>o.memoryStats().cpu.cachedBytes/2**20; const f=(m)=>o.zeros([m*2**18],{device:'cpu'}); const log=[];` +
      `const a=f(4), b=f(3); a.dispose(); b.dispose(); log.push(c());` +
      `f(2).dispose(); log.push(c());` +
      `const a2=f(4); log.push(c()); const b2=f(3); log.push(c()); a2.dispose(); b2.dispose(); log.push(c());` +
      `process.stdout.write(JSON.stringify(log))`;
    const r = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], {
      cwd: path.join(__dirname, '..'),
      env: { ...process.env, OSP_HOST_CACHE_MB: '8' },
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    // Freeing a2 then b2: 2 + 4 + 3 = 9 > 8 evicts the oldest (the 2 MiB one), so 4 + 3 = 7 stay.
    expect(JSON.parse(r.stdout)).toEqual([7, 5, 5, 2, 7]);
  });
});
