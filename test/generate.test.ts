// generate(): batched sampling with a kv cache on a tiny f32 Llama (cpu) with a byte-level tokenizer
// (vocabulary 257, <|endoftext|> = 256). Greedy decoding equals repeated argmax of the full forward;
// the sampler's model log-probs equal the full forward's; seeds reproduce whatever the batch; EOS,
// stop strings, maxNewTokens and the context end samples as stated; memory is bounded up front.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { generate, GenerateOptions } from '../src/generate';
import { LlamaModel, packSequences } from '../src/model/llama';
import { Tokenizer } from '../src/model/tokenizer';
import { writeByteLevelTokenizer } from './helpers/byteTokenizer';
import { seeded } from './helpers/random';
import { tinyConfig } from './helpers/tinyLlama';

const config = { ...tinyConfig(false), vocabSize: 257, eosTokenId: 256, maxPositionEmbeddings: 48 };
let tok: Tokenizer;
let model: LlamaModel;
const prompts = ['Hello', 'a much longer prompt', 'x'];

beforeAll(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-generate-'));
  writeByteLevelTokenizer(dir, []);
  tok = await Tokenizer.load(dir);
  const { seed } = seeded('generate model');
  model = LlamaModel.init(config, { seed, dtype: 'f32', device: 'cpu', std: 0.5 });
});

const base: GenerateOptions = { maxNewTokens: 8, temperature: 1, seed: 7, eosTokenIds: [] };

function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

describe('generate', () => {
  it('greedy decoding equals repeated argmax of the full forward pass', async () => {
    const out = await generate(model, tok, prompts, { ...base, temperature: 0 });
    for (const r of out) {
      const s = r.samples[0];
      expect(s.tokens.length).toBe(8);
      const seq = Array.from(r.promptTokens);
      for (const t of s.tokens) {
        const [logits] = model.lastLogits([Int32Array.from(seq)]);
        expect(t).toBe(argmax(logits));
        seq.push(t);
      }
      expect(Array.from(s.logprobs)).toEqual(new Array(8).fill(0)); // a point mass
    }
  });

  it("the sampler's model log-probs equal the full forward's log-probs of the sampled tokens (1e-5)", async () => {
    const out = await generate(model, tok, prompts, { ...base, numSamples: 2, topP: 0.9 });
    for (const r of out) {
      for (const s of r.samples) {
        const seq = Int32Array.from([...r.promptTokens, ...s.tokens]);
        const batch = packSequences([seq]);
        const targets = Int32Array.from(seq, (_, i) => (i + 1 < seq.length ? seq[i + 1] : -100));
        const lp = model.tokenLogprobs(batch, targets);
        s.modelLogprobs.forEach((v, j) => expect(Math.abs(v - lp[r.promptTokens.length - 1 + j])).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(v))));
        // The sampled distribution is the nucleus: never less likely than under the model itself.
        s.logprobs.forEach((v, j) => expect(v).toBeGreaterThanOrEqual(s.modelLogprobs[j] - 1e-6));
      }
    }
  });

  it('the same seed gives the same samples whatever else is in the batch', async () => {
    const together = await generate(model, tok, prompts, { ...base, numSamples: 3 });
    const alone = await generate(model, tok, [prompts[1]], { ...base, numSamples: 3 });
    const reordered = await generate(model, tok, [prompts[2], prompts[1], prompts[0]], { ...base, numSamples: 3 });
    for (let k = 0; k < 3; k++) {
      expect(Array.from(alone[0].samples[k].tokens)).toEqual(Array.from(together[1].samples[k].tokens));
      expect(Array.from(reordered[1].samples[k].tokens)).toEqual(Array.from(together[1].samples[k].tokens));
    }
  });

  it('different seeds, and the K samples of one prompt, differ', async () => {
    const a = await generate(model, tok, [prompts[0]], { ...base, numSamples: 3, seed: 1 });
    const b = await generate(model, tok, [prompts[0]], { ...base, numSamples: 3, seed: 2 });
    expect(Array.from(a[0].samples[0].tokens)).not.toEqual(Array.from(b[0].samples[0].tokens));
    expect(Array.from(a[0].samples[0].tokens)).not.toEqual(Array.from(a[0].samples[1].tokens));
  });

  it('an EOS token ends a sample on it (kept in tokens) with finish reason eos', async () => {
    const [free] = await generate(model, tok, [prompts[0]], { ...base, temperature: 0 });
    const t = free.samples[0].tokens;
    const eos = t[2];
    const first = Array.from(t).indexOf(eos);
    const [r] = await generate(model, tok, [prompts[0]], { ...base, temperature: 0, eosTokenIds: [eos] });
    expect(r.samples[0].finishReason).toBe('eos');
    expect(Array.from(r.samples[0].tokens)).toEqual(Array.from(t.subarray(0, first + 1)));
  });

  it('maxNewTokens ends a sample with finish reason length', async () => {
    const [r] = await generate(model, tok, [prompts[0]], { ...base, maxNewTokens: 5 });
    expect(r.samples[0].finishReason).toBe('length');
    expect(r.samples[0].tokens.length).toBe(5);
    expect(r.samples[0].text).toBe(await tok.decode(r.samples[0].tokens));
  });

  it('a stop string ends a sample; its text is cut before the stop string', async () => {
    const [free] = await generate(model, tok, [prompts[1]], { ...base, temperature: 0, maxNewTokens: 12 });
    const text = free.samples[0].text;
    const stop = text.slice(4, 6);
    const at = text.indexOf(stop);
    const [r] = await generate(model, tok, [prompts[1]], { ...base, temperature: 0, maxNewTokens: 12, stop: [stop] });
    const s = r.samples[0];
    expect(s.finishReason).toBe('stop');
    expect(s.text).toBe(text.slice(0, at));
    expect(s.tokens.length).toBeLessThan(12);
    expect((await tok.decode(s.tokens)).includes(stop)).toBe(true);
  });

  it('the context ends a sample that would run past max_position_embeddings', async () => {
    const long = Int32Array.from({ length: config.maxPositionEmbeddings - 2 }, (_, i) => 97 + (i % 26));
    const [r] = await generate(model, tok, [long], { ...base, maxNewTokens: 10 });
    expect(r.samples[0].tokens.length).toBe(2);
    expect(r.samples[0].finishReason).toBe('length');
  });

  it('refuses a prompt as long as the context, and an empty one, naming it', async () => {
    const long = new Int32Array(config.maxPositionEmbeddings).fill(97);
    await expect(generate(model, tok, ['ok', long], base)).rejects.toThrow(
      `generate: prompts[1] has ${config.maxPositionEmbeddings} tokens; the model's context (max_position_embeddings) is ${config.maxPositionEmbeddings}, so a prompt may have at most ${config.maxPositionEmbeddings - 1}`,
    );
    await expect(generate(model, tok, [new Int32Array(0)], base)).rejects.toThrow('generate: prompts[0] has no tokens; expected at least one');
  });

  it('refuses up front a request whose kv cache cannot fit, with the numbers', async () => {
    await expect(generate(model, tok, prompts, { ...base, numSamples: 4, maxCacheBytes: 1000 })).rejects.toThrow(
      /^generate: the kv cache for prompts\[0\] \(5 tokens\) x 4 samples x 13 positions needs 13\.0 KiB; the limit is 1\.0 KiB \(maxCacheBytes\)/,
    );
  });

  it('splits prompts into groups that fit the cache bound, with the same samples', async () => {
    const all = await generate(model, tok, prompts, { ...base, numSamples: 2 });
    // One prompt's 2 samples x (20 + 8) positions fit; all three prompts together do not.
    const perPosition = 2 * config.numHiddenLayers * config.numKeyValueHeads * config.headDim * 4;
    const steps: number[] = [];
    const grouped = await generate(model, tok, prompts, { ...base, numSamples: 2, maxCacheBytes: 2 * 28 * perPosition, onStep: (i) => steps.push(i.generatedTokens) });
    grouped.forEach((r, i) => r.samples.forEach((s, k) => expect(Array.from(s.tokens)).toEqual(Array.from(all[i].samples[k].tokens))));
    expect(steps[steps.length - 1]).toBe(3 * 2 * 8);
  });

  it.each([
    [{ maxNewTokens: 0 }, 'generate: maxNewTokens is 0; expected an integer >= 1'],
    [{ temperature: -1 }, 'generate: temperature is -1; expected a finite number >= 0'],
    [{ topP: 0 }, 'generate: topP is 0; expected a number in (0, 1]'],
    [{ topK: 1.5 }, 'generate: topK is 1.5; expected an integer >= 0'],
    [{ numSamples: 0 }, 'generate: numSamples is 0; expected an integer >= 1'],
    [{ seed: -3 }, 'generate: seed is -3; expected an integer in [0, 2^53)'],
    [{ stop: [''] }, 'generate: stop is [""]; expected an array of non-empty strings'],
    [{ eosTokenIds: [300] }, 'generate: eos token id 300 is not in the vocabulary [0, 257)'],
  ])('refuses the option %j, naming it', async (bad, message) => {
    await expect(generate(model, tok, prompts, { ...base, ...bad } as GenerateOptions)).rejects.toThrow(message);
  });
});
