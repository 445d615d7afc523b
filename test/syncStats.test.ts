// Host-wait counting on the CPU backend: the counters sit at the same points as on CUDA (reads of
// tensor bytes and synchronize), so these counts are the ones a GPU run shows for the same calls.
// CPU ops compute their value checks synchronously: a bad value still throws at the op.
import * as osp from '../src';
import { forward20 } from './helpers/forward20';

const cpu = { device: 'cpu' as const };

function stats() {
  return osp.syncStats();
}

describe('syncStats on the cpu backend', () => {
  beforeEach(() => osp.resetSyncStats());

  it('has every field, hostWaits being their sum, and resetSyncStats zeroes them', () => {
    osp.scope(() => {
      const t = osp.tensor([1, 2, 3], [3], cpu);
      t.toArray();
      osp.synchronize();
    });
    const s = stats();
    expect(s).toEqual({ hostWaits: 2, reads: 1, synchronizes: 1, statusReads: 0, uploadWaits: 0 });
    expect(s.hostWaits).toBe(s.reads + s.synchronizes + s.statusReads + s.uploadWaits);
    osp.resetSyncStats();
    expect(stats()).toEqual({ hostWaits: 0, reads: 0, synchronizes: 0, statusReads: 0, uploadWaits: 0 });
  });

  it('counts one read per toArray call, whatever the dtype', () => {
    osp.scope(() => {
      const tensors = [
        osp.tensor([1, 2, 3, 4], [2, 2], cpu),
        osp.tensor([1, 2], [2], { ...cpu, dtype: 'f64' }),
        osp.tensor([1, 2], [2], { ...cpu, dtype: 'i32' }),
        osp.tensor([1, 2], [2], { ...cpu, dtype: 'bf16' }),
      ];
      osp.resetSyncStats();
      for (const [i, t] of tensors.entries()) {
        t.toArray();
        t.toArray();
        expect(stats().reads).toBe(2 * (i + 1));
      }
    });
    expect(stats()).toMatchObject({ hostWaits: 8, synchronizes: 0, statusReads: 0, uploadWaits: 0 });
  });

  it('counts no wait for uploads and ops that read nothing', () => {
    osp.scope(() => {
      const N = 4;
      const V = 7;
      const logits = osp.tensor(Float32Array.from({ length: N * V }, (_, i) => Math.sin(i)), [N, V], cpu);
      const targets = osp.tensor([0, 3, -100, 6], [N], { ...cpu, dtype: 'i32' });
      const w = osp.tensor(Float32Array.from({ length: V * 3 }, (_, i) => Math.cos(i)), [V, 3], cpu);
      const lp = osp.tokenLogprobs(logits, targets);
      osp.tokenLogprobsBackward(logits, targets, osp.tensor([1, 1, 1, 1], [N], cpu));
      const h = osp.matmul(logits, w);
      osp.add(h, h);
      osp.logSoftmax(logits);
      osp.sum(lp);
      expect(stats().hostWaits).toBe(0);
      lp.toArray();
    });
    expect(stats()).toEqual({ hostWaits: 1, reads: 1, synchronizes: 0, statusReads: 0, uploadWaits: 0 });
  });

  it('counts no wait over a 20-op forward, then one read for its result (the count test/gpuSync.test.ts expects on cuda)', () => {
    osp.scope(() => {
      const f = forward20('cpu');
      osp.resetSyncStats();
      const loss = f.run();
      expect(stats().hostWaits).toBe(0);
      expect(Number.isFinite(loss.toArray()[0])).toBe(true);
    });
    expect(stats()).toEqual({ hostWaits: 1, reads: 1, synchronizes: 0, statusReads: 0, uploadWaits: 0 });
  });

  it('still throws a value error at the op on the cpu, naming the op and the element, without a status read', () => {
    osp.scope(() => {
      const logits = osp.tensor([0, 1, 2, 3, 4, 5], [2, 3], cpu);
      const targets = osp.tensor([1, 7], [2], { ...cpu, dtype: 'i32' });
      osp.resetSyncStats();
      expect(() => osp.tokenLogprobs(logits, targets)).toThrow(RangeError);
      expect(() => osp.tokenLogprobs(logits, targets)).toThrow(/^tokenLogprobs: targets\[1\] = 7 is outside \[0, 3\)/);
    });
    expect(stats().statusReads).toBe(0);
    expect(stats().uploadWaits).toBe(0);
  });
});
