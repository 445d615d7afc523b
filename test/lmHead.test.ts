// The chunked LM head (src/model/lmHead.ts) keeping the forward's row logsumexp for its backward:
// linearLogprobsWithLogsumexp gives linearLogprobs' log-probs bit for bit plus logsumexp(hidden W^T)
// per row; linearLogprobsBackward given it is bit for bit the one that recomputes it (the
// recomputed logits are the same GEMM, so the forward's logsumexp is exact for them), over several
// chunks with a partial last one and ignored rows, in f32 and f64; and LlamaModel's headBackward
// after headLogprobs on the same hidden tensor passes that logsumexp on (lossAndGrads included),
// with the same gradients as without it.
import * as osp from '../src';
import * as ops from '../src/ops';
import { LlamaModel, packSequences } from '../src/model/llama';
import { linearLogprobs, linearLogprobsBackward, linearLogprobsWithLogsumexp } from '../src/model/lmHead';
import { caught } from './helpers/errors';
import { integers, normals, seeded } from './helpers/random';
import { DTYPES, FloatType, expectWithin, floats, ints, read } from './helpers/tensors';
import { tinyConfig } from './helpers/tinyLlama';

/** Fails naming the first element whose bits differ (NaN, -0 included). */
function expectBitwise(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  expect(got.length).toBe(want.length);
  const i = Array.from(got).findIndex((v, k) => !Object.is(v, want[k]));
  if (i >= 0) throw new Error(`${what} [${i}] = ${got[i]}; expected ${want[i]} bit for bit`);
}

interface HeadProblem {
  T: number;
  D: number;
  V: number;
  hidden: Float64Array;
  weight: Float64Array;
  targets: Int32Array;
  g: Float64Array;
}

function headProblem(next: () => number, T: number, D: number, V: number, ignored: number[]): HeadProblem {
  const targets = integers(next, T, 0, V);
  for (const t of ignored) targets[t] = -100;
  return { T, D, V, hidden: Float64Array.from(normals(next, T * D)), weight: Float64Array.from(normals(next, V * D, 0.5)), targets, g: Float64Array.from(normals(next, T)) };
}

/** logsumexp_v (hidden[t] . weight[v]) in plain f64. */
function refLse(p: HeadProblem, t: number): number {
  const z = Array.from({ length: p.V }, (_, v) => {
    let s = 0;
    for (let d = 0; d < p.D; d++) s += p.hidden[t * p.D + d] * p.weight[v * p.D + d];
    return s;
  });
  const m = Math.max(...z);
  return m + Math.log(z.reduce((s, x) => s + Math.exp(x - m), 0));
}

describe('linearLogprobsWithLogsumexp and linearLogprobsBackward({ logsumexp })', () => {
  const { next } = seeded('lmHead logsumexp');
  // T = 10 in chunks of 3 (the last one a single row), V = 37 (no full vector), ignored rows 1 and 9.
  const T = 10;
  const D = 6;
  const V = 37;
  const chunkSize = 3;

  it.each(DTYPES)('%s: the log-probs are linearLogprobs bit for bit and the logsumexp is the f64 row logsumexp of hidden W^T (0 on ignored rows)', (dtype) => {
    const p = headProblem(next, T, D, V, [1, 9]);
    osp.scope(() => {
      const [h, w, t] = [floats(p.hidden, [T, D], dtype), floats(p.weight, [V, D], dtype), ints(p.targets)];
      const r = linearLogprobsWithLogsumexp(h, w, t, { chunkSize });
      expect(r.logsumexp.shape).toEqual([T]);
      expect(r.logsumexp.dtype).toBe(dtype);
      expectBitwise(read(r.logprobs), read(linearLogprobs(h, w, t, { chunkSize })), 'logprobs');
      const want = Array.from({ length: T }, (_, i) => (p.targets[i] === -100 ? 0 : refLse(p, i)));
      expectWithin(read(r.logsumexp), want, (i) => (dtype === 'f64' ? 1e-12 : 1e-5) * Math.max(1, Math.abs(want[i])), 'logsumexp');
    });
  });

  it.each(DTYPES.flatMap((dtype) => [true, false].map((weightGrad) => [dtype, weightGrad] as const)))(
    '%s (weightGrad %s): the backward given the forward logsumexp is the recomputing backward bit for bit',
    (dtype, weightGrad) => {
      const p = headProblem(next, T, D, V, [1, 9]);
      osp.scope(() => {
        const [h, w, t, g] = [floats(p.hidden, [T, D], dtype), floats(p.weight, [V, D], dtype), ints(p.targets), floats(p.g, [T], dtype)];
        const { logsumexp } = linearLogprobsWithLogsumexp(h, w, t, { chunkSize });
        const given = linearLogprobsBackward(h, w, t, g, { chunkSize, weightGrad, logsumexp });
        const recomputed = linearLogprobsBackward(h, w, t, g, { chunkSize, weightGrad });
        expectBitwise(read(given.gradHidden), read(recomputed.gradHidden), 'gradHidden');
        if (weightGrad) expectBitwise(read(given.gradWeight as osp.Tensor), read(recomputed.gradWeight as osp.Tensor), 'gradWeight');
        else expect(given.gradWeight).toBeNull();
      });
    },
  );

  it('the given logsumexp is what each chunk uses: a shifted one changes d hidden', () => {
    const p = headProblem(next, T, D, V, []);
    osp.scope(() => {
      const [h, w, t, g] = [floats(p.hidden, [T, D], 'f64'), floats(p.weight, [V, D], 'f64'), ints(p.targets), floats(p.g, [T], 'f64')];
      const lse = read(linearLogprobsWithLogsumexp(h, w, t, { chunkSize }).logsumexp);
      const right = read(linearLogprobsBackward(h, w, t, g, { chunkSize, logsumexp: floats(lse, [T], 'f64') }).gradHidden);
      lse[T - 1] += 1; // the last chunk's only row
      const shifted = read(linearLogprobsBackward(h, w, t, g, { chunkSize, logsumexp: floats(lse, [T], 'f64') }).gradHidden);
      expectBitwise(shifted.slice(0, (T - 1) * D), right.slice(0, (T - 1) * D), 'rows 0..8');
      expect(shifted.slice((T - 1) * D).some((v, i) => v !== right[(T - 1) * D + i])).toBe(true);
    });
  });

  it('a logsumexp of the wrong length is a RangeError naming it; a NaN one on a counted row a RangeError naming logsumexp', () => {
    const p = headProblem(next, T, D, V, []);
    osp.scope(() => {
      const [h, w, t, g] = [floats(p.hidden, [T, D], 'f32'), floats(p.weight, [V, D], 'f32'), ints(p.targets), floats(p.g, [T], 'f32')];
      const short = caught(() => linearLogprobsBackward(h, w, t, g, { chunkSize, logsumexp: floats(new Float64Array(T - 1), [T - 1], 'f32') }));
      expect(short?.errorClass).toBe('RangeError');
      expect(short?.message).toMatch(/^linearLogprobsBackward: logsumexp has shape \[9\]; expected \[10\]/);
      const lse = new Float64Array(T).fill(1);
      lse[4] = NaN;
      const bad = caught(() => linearLogprobsBackward(h, w, t, g, { chunkSize, logsumexp: floats(lse, [T], 'f32') }));
      expect(bad?.errorClass).toBe('RangeError');
      expect(bad?.message).toMatch(/logsumexp\[\d\] = nan is not finite/);
    });
  });
});

describe("LlamaModel: headBackward uses headLogprobs' logsumexp for the same hidden tensor", () => {
  const { seed, next } = seeded('llama head logsumexp');
  const dtype: FloatType = 'f32';
  const model = LlamaModel.init(tinyConfig(false), { seed, dtype });
  const V = tinyConfig(false).vocabSize;
  const batch = packSequences([integers(next, 5, 0, V), integers(next, 9, 0, V)]);
  const T = batch.tokens.length;
  const targets = integers(next, T, 0, V);
  targets[2] = -100;
  const g = Float32Array.from(normals(next, T));
  const opts = { chunkSize: 4 };
  afterAll(() => model.dispose());

  /** Runs fn with ops.tokenLogprobsBackward observed; returns fn's result and whether each call had a logsumexp. */
  function observed<R>(fn: () => R): { result: R; givenLse: boolean[] } {
    const spy = jest.spyOn(ops, 'tokenLogprobsBackward');
    try {
      const result = fn();
      return { result, givenLse: spy.mock.calls.map((c) => c[3]?.logsumexp !== undefined) };
    } finally {
      spy.mockRestore();
    }
  }

  it('after headLogprobs every chunk of headBackward gets the logsumexp, the gradients are those of a fresh backward bit for bit, and the record is consumed', () => {
    osp.scope(() => {
      const fwd = model.forward(batch);
      const lp = model.headLogprobs(fwd.hidden, targets, opts);
      expect(lp.shape).toEqual([T]);
      const withLse = observed(() => model.headBackward(fwd.hidden, targets, g, opts));
      expect(withLse.givenLse).toEqual([true, true, true, true]); // T = 14 in chunks of 4
      // A copy of hidden has no forward record: the backward recomputes the logsumexp.
      const copy = ops.affine(fwd.hidden, 1);
      const plain = observed(() => model.headBackward(copy, targets, g, opts));
      expect(plain.givenLse).toEqual([false, false, false, false]);
      expectBitwise(read(withLse.result.gradHidden), read(plain.result.gradHidden), 'gradHidden');
      expectBitwise(read(withLse.result.gradWeight as osp.Tensor), read(plain.result.gradWeight as osp.Tensor), 'gradWeight');
      // Consumed: a second backward on the same hidden recomputes.
      expect(observed(() => model.headBackward(fwd.hidden, targets, g, opts)).givenLse).toEqual([false, false, false, false]);
    });
  });

  it.each([
    ['other targets (a changed copy)', () => ({ targets: Int32Array.from(targets, (t, i) => (i === 0 ? (t + 1) % V : t)), opts })],
    ['the same array changed in place', () => ({ targets: 'mutate' as const, opts })],
    ['another chunk size', () => ({ targets, opts: { chunkSize: 5 } })],
    ['another ignoreIndex', () => ({ targets: 'own' as const, opts: { ...opts, ignoreIndex: 7 } })],
  ])('a backward with %s does not use the forward logsumexp', (_what, make) => {
    osp.scope(() => {
      const own = targets.slice();
      own[2] = 7; // no ignored row: valid under either ignoreIndex
      const fwd = model.forward(batch);
      model.headLogprobs(fwd.hidden, own, opts);
      const m = make();
      let bt: Int32Array = own;
      if (m.targets === 'mutate') own[5] = (own[5] + 1) % V;
      else if (m.targets !== 'own') bt = m.targets;
      const r = observed(() => model.headBackward(fwd.hidden, bt, g, m.opts));
      expect(r.givenLse.every((x) => !x)).toBe(true);
    });
  });

  it('lossAndGrads runs the head forward first and its backward gets the logsumexp', () => {
    const r = observed(() => model.lossAndGrads(batch, targets, g, opts));
    expect(r.givenLse).toEqual([true, true, true, true]);
    for (const t of r.result.grads.values()) t.dispose();
    r.result.gradInputEmbeddings.dispose();
  });
});
