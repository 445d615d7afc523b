// Deferred value checks and host-wait counts on cuda (issue 10). A CUDA op queues its value check;
// the next host wait (a read, synchronize) reads every queued status in one copy and throws the
// first failing check's error. OSP_SYNC_CHECKS=1 restores a check (and a wait) after every op.
// Where no GPU answers, the suite is skipped with a one-line reason (see helpers/gpu.ts).
import { spawnSync } from 'child_process';
import path from 'path';
import * as osp from '../src';
import { gpuSuite } from './helpers/gpu';
import { forward20 } from './helpers/forward20';

const { cuda, describeGpu } = gpuSuite('GPU sync suite');
const cu = { device: 'cuda' as const };
const outOfRange = /^tokenLogprobs: targets\[1\] = 7 is outside \[0, 3\)/;

// A tokenLogprobs whose targets[1] is out of range, then a read of its result; prints what threw where.
const script = `
const osp = require('./src');
const logits = osp.tensor([0, 1, 2, 3, 4, 5], [2, 3], { device: 'cuda' });
const targets = osp.tensor([1, 7], [2], { dtype: 'i32', device: 'cuda' });
let lp;
try { lp = osp.tokenLogprobs(logits, targets); console.log('call: ok'); } catch (e) { console.log('call: ' + e.constructor.name + ': ' + e.message); process.exit(0); }
try { lp.toArray(); console.log('read: ok'); } catch (e) { console.log('read: ' + e.constructor.name + ': ' + e.message); }
`;

function runScript(syncChecks: string): string {
  const r = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], {
    cwd: path.join(__dirname, '..'),
    env: { ...process.env, OSP_SYNC_CHECKS: syncChecks, OSP_DEVICE: 'cuda' },
    encoding: 'utf8',
  });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout;
}

describeGpu(`deferred value checks on cuda (${cuda.devices[0]?.name ?? 'no device'})`, () => {
  const deferred = process.env.OSP_SYNC_CHECKS !== '1';
  const itDeferred = deferred ? it : it.skip;

  beforeEach(() => osp.resetSyncStats());

  itDeferred('a bad target does not throw at tokenLogprobs but at the next toArray, naming the op and the element', () => {
    osp.scope(() => {
      const logits = osp.tensor([0, 1, 2, 3, 4, 5], [2, 3], cu);
      const targets = osp.tensor([1, 7], [2], { ...cu, dtype: 'i32' });
      osp.synchronize(); // nothing pending yet
      osp.resetSyncStats();
      const lp = osp.tokenLogprobs(logits, targets);
      expect(osp.syncStats().hostWaits).toBe(0);
      expect(() => lp.toArray()).toThrow(RangeError);
      // The queue was cleared by the throw: the next read succeeds.
      expect(lp.toArray()).toHaveLength(2);
    });
  });

  itDeferred('the error message is the one a cpu run raises at the call', () => {
    osp.scope(() => {
      const lp = osp.tokenLogprobs(osp.tensor([0, 1, 2, 3, 4, 5], [2, 3], cu), osp.tensor([1, 7], [2], { ...cu, dtype: 'i32' }));
      expect(() => lp.toArray()).toThrow(outOfRange);
    });
  });

  itDeferred('synchronize raises a pending failure too', () => {
    osp.scope(() => {
      osp.tokenLogprobs(osp.tensor([0, 1, 2, 3, 4, 5], [2, 3], cu), osp.tensor([1, 7], [2], { ...cu, dtype: 'i32' }));
      expect(() => osp.synchronize()).toThrow(outOfRange);
      osp.synchronize(); // cleared
    });
  });

  it('in a child process: deferred by default, at the call under OSP_SYNC_CHECKS=1', () => {
    expect(runScript('')).toMatch(/^call: ok\nread: RangeError: tokenLogprobs: targets\[1\] = 7 is outside \[0, 3\)/);
    expect(runScript('1')).toMatch(/^call: RangeError: tokenLogprobs: targets\[1\] = 7 is outside \[0, 3\)/);
  });

  itDeferred('a forward of 20 ops counts no host wait until a final toArray counts one', () => {
    osp.scope(() => {
      const f = forward20('cuda');
      osp.synchronize(); // the uploads are done before counting starts
      osp.resetSyncStats();
      const loss = f.run();
      expect(osp.syncStats().hostWaits).toBe(0);
      expect(Number.isFinite(loss.toArray()[0])).toBe(true);
    });
    expect(osp.syncStats()).toEqual({ hostWaits: 1, reads: 1, synchronizes: 0, statusReads: 0, uploadWaits: 0 });
  });

  it('small uploads do not wait; a 4 MiB upload waits once', () => {
    osp.scope(() => {
      osp.synchronize();
      osp.resetSyncStats();
      for (let i = 0; i < 8; i++) osp.tensor(new Float32Array(1000).fill(i), [1000], cu);
      expect(osp.syncStats().uploadWaits).toBe(0);
      const big = osp.tensor(new Float32Array(1 << 20).fill(2), [1 << 20], cu);
      expect(osp.syncStats().uploadWaits).toBe(1);
      expect(big.toArray()[12345]).toBe(2);
    });
  });

  it('staged uploads arrive intact when the ring wraps many times', () => {
    osp.scope(() => {
      // 40 uploads of 512 KiB pass through the 8 MiB ring more than twice.
      const ts = Array.from({ length: 40 }, (_, i) => osp.tensor(new Float32Array(1 << 17).fill(i), [1 << 17], cu));
      ts.forEach((t, i) => {
        const a = t.toArray();
        expect([a[0], a[a.length - 1]]).toEqual([i, i]);
      });
    });
  });
});
