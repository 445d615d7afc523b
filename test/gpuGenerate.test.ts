// generate() on cuda: greedy decoding equals repeated argmax of the cuda full forward, the sampler's
// model log-probs equal the full forward's, and bf16 models generate. Skipped with a one-line reason
// where no GPU answers; OSP_GPU_TESTS=require turns that into a failure.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { generate } from '../src/generate';
import { LlamaModel, packSequences } from '../src/model/llama';
import { Tokenizer } from '../src/model/tokenizer';
import { writeByteLevelTokenizer } from './helpers/byteTokenizer';
import { seeded } from './helpers/random';
import { tinyConfig } from './helpers/tinyLlama';
import { gpuSuite } from './helpers/gpu';

const { describeGpu } = gpuSuite('GPU generate suite');

describeGpu('generate on cuda', () => {
  const config = { ...tinyConfig(false), vocabSize: 257, eosTokenId: 256, maxPositionEmbeddings: 64 };
  let tok: Tokenizer;
  beforeAll(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-gpu-generate-'));
    writeByteLevelTokenizer(dir, []);
    tok = await Tokenizer.load(dir);
  });
  const { seed } = seeded('gpu generate');
  const prompts = ['Hello', 'a much longer prompt', 'x'];

  it('greedy decoding equals repeated argmax of the full forward (f32)', async () => {
    const model = LlamaModel.init(config, { seed, dtype: 'f32', device: 'cuda', std: 0.5 });
    const out = await generate(model, tok, prompts, { maxNewTokens: 12, temperature: 0, seed: 1, eosTokenIds: [] });
    for (const r of out) {
      const seq = Array.from(r.promptTokens);
      for (const t of r.samples[0].tokens) {
        const [logits] = model.lastLogits([Int32Array.from(seq)]);
        let best = 0;
        for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
        expect(t).toBe(best);
        seq.push(t);
      }
    }
  });

  it("the sampler's model log-probs equal the full forward's (f32, 1e-4)", async () => {
    const model = LlamaModel.init(config, { seed, dtype: 'f32', device: 'cuda', std: 0.5 });
    const out = await generate(model, tok, prompts, { maxNewTokens: 12, temperature: 1, topP: 0.9, seed: 1, numSamples: 3, eosTokenIds: [] });
    for (const r of out) {
      for (const s of r.samples) {
        const seq = Int32Array.from([...r.promptTokens, ...s.tokens]);
        const targets = Int32Array.from(seq, (_, i) => (i + 1 < seq.length ? seq[i + 1] : -100));
        const lp = model.tokenLogprobs(packSequences([seq]), targets);
        s.modelLogprobs.forEach((v, j) => expect(Math.abs(v - lp[r.promptTokens.length - 1 + j])).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(v))));
      }
    }
  });

  it('a bf16 model generates K samples per prompt of the asked length', async () => {
    const model = LlamaModel.init(config, { seed, dtype: 'bf16', device: 'cuda', std: 0.5 });
    const out = await generate(model, tok, prompts, { maxNewTokens: 10, temperature: 0.8, seed: 3, numSamples: 4, eosTokenIds: [] });
    for (const r of out) {
      expect(r.samples.length).toBe(4);
      for (const s of r.samples) expect(s.tokens.length).toBe(10);
    }
  });
});
