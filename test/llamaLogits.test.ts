// LlamaModel.logits and lastLogits on the cpu, on the tiny config of llama.test.ts (f64 and f32,
// tied and untied embeddings): log_softmax of the full logits at the targets equals tokenLogprobs;
// lastLogits equals the last row of logits, and its column selection picks those columns; a
// sequence's logits do not depend on what it is packed with; bad input is a clear error.
import * as osp from '../src';
import { LlamaModel, packSequences } from '../src/model/llama';
import { integers, seeded } from './helpers/random';
import { tinyConfig } from './helpers/tinyLlama';

const V = 97;
const LENGTHS = [1, 5, 17];

/** log_softmax of one row, in f64. */
function logSoftmaxRow(row: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]);
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i] - max);
  const lse = max + Math.log(s);
  return Float64Array.from(row, (x) => x - lse);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function disposeModel(model: LlamaModel): void {
  model.dispose();
}

describe.each([false, true])('LlamaModel logits (tied %s)', (tie) => {
  it('log_softmax(logits) at the targets equals tokenLogprobs (f64, 1e-12)', () => {
    const { seed, next } = seeded(`llama logits tie=${tie}`);
    const model = LlamaModel.init(tinyConfig(tie), { seed, dtype: 'f64' });
    const seqs = LENGTHS.map((n) => integers(next, n, 0, V));
    const logits = model.logits(seqs);
    expect(logits.length).toBe(seqs.length);
    const batch = packSequences(seqs);
    const targets = integers(next, batch.tokens.length, 0, V);
    const lp = model.tokenLogprobs(batch, targets);
    let t = 0;
    seqs.forEach((s, i) => {
      expect(logits[i]).toBeInstanceOf(Float64Array);
      expect(logits[i].length).toBe(s.length * V);
      for (let j = 0; j < s.length; j++, t++) {
        const ls = logSoftmaxRow(logits[i].subarray(j * V, (j + 1) * V));
        expect(Math.abs(ls[targets[t]] - lp[t])).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(lp[t])));
      }
    });
    disposeModel(model);
  });

  it('lastLogits is the last row of logits; columns pick those columns (f64 and f32)', () => {
    const { seed, next } = seeded(`llama lastLogits tie=${tie}`);
    for (const dtype of ['f64', 'f32'] as const) {
      const model = LlamaModel.init(tinyConfig(tie), { seed, dtype, device: 'cpu' });
      const seqs = LENGTHS.map((n) => integers(next, n, 0, V));
      const logits = model.logits(seqs);
      const last = model.lastLogits(seqs);
      const columns = Int32Array.from([integers(next, 1, 0, V)[0], 3, V - 1]);
      const picked = model.lastLogits(seqs, columns);
      const tol = dtype === 'f64' ? 1e-12 : 1e-5;
      seqs.forEach((s, i) => {
        expect(last[i]).toBeInstanceOf(dtype === 'f64' ? Float64Array : Float32Array);
        const lastRow = logits[i].subarray((s.length - 1) * V, s.length * V);
        expect(maxAbsDiff(last[i], lastRow)).toBeLessThanOrEqual(tol);
        expect(maxAbsDiff(picked[i], Array.from(columns, (c) => last[i][c]))).toBeLessThanOrEqual(tol);
      });
      disposeModel(model);
    }
  });

  it('a sequence gives the same logits alone as packed with others', () => {
    const { seed, next } = seeded(`llama logits packing tie=${tie}`);
    const model = LlamaModel.init(tinyConfig(tie), { seed, dtype: 'f64' });
    const seqs = LENGTHS.map((n) => integers(next, n, 0, V));
    const packed = model.logits(seqs);
    const packedLast = model.lastLogits(seqs);
    seqs.forEach((s, i) => {
      const alone = model.logits([s])[0];
      expect(maxAbsDiff(packed[i], alone)).toBeLessThanOrEqual(1e-12);
      expect(maxAbsDiff(packedLast[i], model.lastLogits([s])[0])).toBeLessThanOrEqual(1e-12);
    });
    // Reordering the batch changes nothing either.
    const reversed = model.logits([...seqs].reverse()).reverse();
    seqs.forEach((_, i) => expect(maxAbsDiff(packed[i], reversed[i])).toBeLessThanOrEqual(1e-12));
    disposeModel(model);
  });
});

describe('LlamaModel logits bad input', () => {
  it('rejects empty or out-of-range input with errors that name it, and frees what it made', () => {
    const model = LlamaModel.init(tinyConfig(true), { seed: 5, dtype: 'f64' });
    const seq = Int32Array.from([1, 2, 3]);
    expect(model.logits([]).length).toBe(0);
    const withEmpty = model.logits([seq, new Int32Array(0)]);
    expect(withEmpty[1].length).toBe(0);
    expect(withEmpty[0].length).toBe(3 * V);
    expect(() => model.logits([Int32Array.from([0, V])])).toThrow(/sequences\[0\]\[1\] is 97/);
    expect(() => model.lastLogits([seq, new Int32Array(0)])).toThrow(/sequences\[1\] is empty/);
    expect(() => model.lastLogits([seq], Int32Array.from([-1]))).toThrow(/columns\[0\] is -1/);
    expect(() => model.lastLogits([seq], new Int32Array(0))).toThrow(/columns/);
    const before = osp.memoryStats().cpu.currentBytes;
    model.logits([seq]);
    model.lastLogits([seq], Int32Array.from([4, 5]));
    expect(osp.memoryStats().cpu.currentBytes).toBe(before);
    disposeModel(model);
  });
});
