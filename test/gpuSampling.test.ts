// sampleTokens on cuda against the CPU op in f64 on the same held values (f32, and bf16-rounded
// logits): the same tokens for the same (seed, stream, step) wherever the draw is not within
// rounding of a boundary of the cumulative distribution, logprobs to 1e-5. Where no GPU answers the
// suite is skipped with a one-line reason; OSP_GPU_TESTS=require turns that into a failure.
import * as osp from '../src';
import { caught } from './helpers/errors';
import { integers, normals, seeded } from './helpers/random';
import { refDistribution, refDraw, SampleSettings, uniformAt } from './helpers/sampling';
import { gpuSuite } from './helpers/gpu';

const { cuda, describeGpu } = gpuSuite('GPU sampling suite');

function roundBf16(x: Float64Array): Float64Array {
  const t = osp.tensor(x, [x.length], { dtype: 'bf16', device: 'cpu' });
  const r = Float64Array.from(t.toArray());
  t.dispose();
  return r;
}

function heldF32(x: Float64Array): Float64Array {
  return Float64Array.from(x, (v) => Math.fround(v));
}

describeGpu(`sampleTokens on cuda against the CPU op (${cuda.devices[0]?.name ?? 'no device'})`, () => {
  const { next } = seeded('gpu sampling');
  const shapes: [number, number][] = [[1, 1], [7, 97], [64, 1000], [300, 2048], [5, 32000], [3, 32001], [128, 32000]];
  const settings: SampleSettings[] = [
    { temperature: 1 },
    { temperature: 0.7, topK: 50 },
    { temperature: 1, topP: 0.9 },
    { temperature: 0.8, topK: 40, topP: 0.95 },
    { temperature: 1.3, topK: 1000, topP: 0.5 },
  ];

  function run(x: Float64Array, B: number, V: number, streams: Int32Array, steps: Int32Array, dtype: 'f32' | 'f64' | 'bf16', device: 'cpu' | 'cuda', opts: osp.SampleOptions) {
    return osp.scope(() => {
      const r = osp.sampleTokens(
        osp.tensor(x, [B, V], { dtype, device }),
        osp.tensor(streams, [B], { device }),
        osp.tensor(steps, [B], { device }),
        opts,
      );
      return { tokens: Array.from(r.tokens.toArray()), logprobs: Array.from(r.logprobs.toArray()), modelLogprobs: Array.from(r.modelLogprobs.toArray()) };
    });
  }

  for (const dtype of ['f32', 'bf16'] as const) {
    for (const [B, V] of shapes) {
      for (const s of settings) {
        it(`${dtype} [${B}, ${V}] ${JSON.stringify(s)}: the CPU's tokens away from draw boundaries, logprobs to 1e-5`, () => {
          const raw = normals(next, B * V, 3);
          const x = dtype === 'bf16' ? roundBf16(raw) : heldF32(raw);
          const streams = integers(next, B, 0, 1 << 30);
          const steps = integers(next, B, 0, 1000);
          const seed = Math.floor(next() * 2 ** 40);
          const opts = { seed, ...s };
          const ref = run(x, B, V, streams, steps, 'f64', 'cpu', opts);
          const got = run(x, B, V, streams, steps, dtype, 'cuda', opts);
          let compared = 0;
          for (let b = 0; b < B; b++) {
            const row = x.subarray(b * V, (b + 1) * V);
            const d = refDistribution(row, s);
            // f32 block sums of up to 32000 terms: ~1e-6 of the mass; skip draws and nucleus cuts that close
            if (d.cutMargin < 1e-5 || refDraw(d, uniformAt(seed, streams[b], steps[b])).margin < 2e-6) continue;
            compared++;
            expect([b, got.tokens[b]]).toEqual([b, ref.tokens[b]]);
            for (const [k, g, w] of [['logprobs', got.logprobs[b], ref.logprobs[b]], ['modelLogprobs', got.modelLogprobs[b], ref.modelLogprobs[b]]] as const) {
              if (!(Math.abs(g - w) <= 1e-5 * Math.max(1, Math.abs(w)))) throw new Error(`row ${b} ${k}: cuda ${g}, cpu f64 ${w}`);
            }
          }
          expect(compared).toBeGreaterThanOrEqual(Math.floor(B * 0.5));
        });
      }
    }

    it(`${dtype}: temperature 0 is the argmax (lowest index on ties) as on the CPU`, () => {
      const B = 40;
      const V = 5000;
      const x = dtype === 'bf16' ? roundBf16(normals(next, B * V, 3)) : heldF32(normals(next, B * V, 3));
      for (let b = 0; b < B; b += 2) {
        let m = -Infinity;
        for (let v = 0; v < V; v++) m = Math.max(m, x[b * V + v]);
        x[b * V + ((b * 131) % V)] = m;
        x[b * V + V - 1 - b] = m;
      }
      const streams = new Int32Array(B);
      const ref = run(x, B, V, streams, streams, 'f64', 'cpu', { seed: 1, temperature: 0 });
      const got = run(x, B, V, streams, streams, dtype, 'cuda', { seed: 1, temperature: 0 });
      expect(got.tokens).toEqual(ref.tokens);
      expect(got.logprobs.every((v) => v === 0)).toBe(true);
    });
  }

  it('a row gives the same token on cuda whatever the batch around it, and the same on a rerun', () => {
    const B = 100;
    const V = 32000;
    const x = heldF32(normals(next, B * V, 2));
    const streams = Int32Array.from({ length: B }, (_, i) => i * 5);
    const steps = Int32Array.from({ length: B }, (_, i) => i);
    const opts = { seed: 12, temperature: 0.9, topK: 100, topP: 0.9 };
    const all = run(x, B, V, streams, steps, 'f32', 'cuda', opts);
    expect(run(x, B, V, streams, steps, 'f32', 'cuda', opts)).toEqual(all);
    const pick = [57, 3, 99];
    const sub = run(
      Float64Array.from(pick.flatMap((b) => Array.from(x.subarray(b * V, (b + 1) * V)))),
      pick.length,
      V,
      Int32Array.from(pick, (b) => streams[b]),
      Int32Array.from(pick, (b) => steps[b]),
      'f32',
      'cuda',
      opts,
    );
    expect(sub.tokens).toEqual(pick.map((b) => all.tokens[b]));
    expect(sub.logprobs).toEqual(pick.map((b) => all.logprobs[b]));
  });

  it('NaN or +Inf in a row, or an all -Inf row, is a RangeError naming the row', () => {
    const B = 5;
    const V = 3000;
    for (const [row, fill] of [[3, NaN], [1, Infinity]] as const) {
      const x = normals(next, B * V);
      x[row * V + 17] = fill;
      expect(caught(() => run(x, B, V, new Int32Array(B), new Int32Array(B), 'f32', 'cuda', { seed: 1, temperature: 1 }))?.message).toMatch(
        new RegExp(`^sampleTokens: logits row ${row} contains NaN or \\+Inf`),
      );
    }
    const x = normals(next, B * V);
    x.fill(-Infinity, 2 * V, 3 * V);
    expect(caught(() => run(x, B, V, new Int32Array(B), new Int32Array(B), 'bf16', 'cuda', { seed: 1, temperature: 0 }))).toEqual({
      errorClass: 'RangeError',
      message: 'sampleTokens: logits row 2 contains NaN or +Inf, or has no finite value (all -Inf); expected finite logits (-Inf is allowed for excluded tokens)',
    });
  });

  it('refuses streams on another device than the logits, and f64 logits on cuda', () => {
    osp.scope(() => {
      const logits = osp.tensor(new Float32Array(6), [2, 3], { device: 'cuda' });
      const onCpu = osp.tensor(new Int32Array(2), [2], { device: 'cpu' });
      const onGpu = osp.tensor(new Int32Array(2), [2], { device: 'cuda' });
      expect(caught(() => osp.sampleTokens(logits, onCpu, onGpu, { seed: 1, temperature: 1 }))).toEqual({
        errorClass: 'TypeError',
        message: 'sampleTokens: logits is on cuda but streams is on cpu; expected both on the same device',
      });
      expect(caught(() => osp.sampleTokens(logits, onGpu, onCpu, { seed: 1, temperature: 1 }))?.message).toBe(
        'sampleTokens: logits is on cuda but steps is on cpu; expected both on the same device',
      );
    });
  });
});

describe('sampleTokens without a GPU', () => {
  const run = cuda.available ? it.skip : it;
  run('device mismatches cannot be built: a cuda tensor is a clear error', () => {
    expect(() => osp.tensor(new Int32Array(2), [2], { device: 'cuda' })).toThrow(/device cuda requested but/);
  });
});
