// The judge's shared prefixes on cuda (src/judge/sharedPrefix.ts over forwardCached's cuda kernels):
// shared and unshared answer logits agree in f32 and bf16, and the f32 ones match the cpu f64 model.
// Skipped with a one-line reason where no GPU answers; OSP_GPU_TESTS=require turns that into a failure.
import { sharedLastLogits } from '../src/judge/sharedPrefix';
import { LlamaModel } from '../src/model/llama';
import { seeded } from './helpers/random';
import { tinyConfig } from './helpers/tinyLlama';
import { gpuSuite } from './helpers/gpu';

const { describeGpu } = gpuSuite('GPU judge shared-prefix suite');

describeGpu('shared prefixes on cuda', () => {
  const { seed, next } = seeded('gpu judge shared prefix');
  const config = { ...tinyConfig(false), maxPositionEmbeddings: 64 };
  const V = config.vocabSize;
  const stem = Array.from({ length: 24 }, () => Math.floor(next() * V));
  // Instructions of a few prompts: a common opening, a prompt, then each its own tail.
  const sequences = Array.from({ length: 12 }, (_, i) =>
    Int32Array.from([...stem.slice(0, 10 + (i % 3) * 5), ...Array.from({ length: 1 + Math.floor(next() * 12) }, () => Math.floor(next() * V))]),
  );
  const columns = Int32Array.from([5, 9]);
  const opts = { maxRows: 4096, maxCacheBytes: 2 ** 26, batchSize: 4 };
  const maxDiff = (x: ArrayLike<number>[], y: ArrayLike<number>[]) => Math.max(...x.map((r, i) => Math.max(...Array.from(r, (v, j) => Math.abs(v - y[i][j]) / (1 + Math.abs(y[i][j]))))));

  it.each([
    ['f32', 1e-4],
    ['bf16', 5e-2],
  ] as const)('%s: shared equals unshared on cuda, and f32 equals the cpu f64 model', (dtype, tol) => {
    const cpu = LlamaModel.init(config, { seed, dtype: 'f64', device: 'cpu', std: 0.5 });
    const gpu = LlamaModel.init(config, { seed, dtype: 'f32', device: 'cuda', std: 0.5 });
    const model = dtype === 'bf16' ? new LlamaModel(config, new Map(Array.from(gpu.parameters(), ([n, t]) => [n, t.to({ dtype: 'bf16', device: 'cuda' })]))) : gpu;
    try {
      const shared = sharedLastLogits(model, sequences, columns, opts);
      expect(maxDiff(shared, model.lastLogits(sequences, columns))).toBeLessThanOrEqual(tol);
      if (dtype === 'f32') expect(maxDiff(shared, cpu.lastLogits(sequences, columns))).toBeLessThanOrEqual(tol);
    } finally {
      cpu.dispose();
      if (model !== gpu) model.dispose();
      gpu.dispose();
    }
  });
});
