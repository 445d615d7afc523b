// The judge's shared prefixes (src/judge/sharedPrefix.ts, Judge's sharePrefix): the plan rebuilds
// every instruction token for token in its own cache slot and computes each distinct prefix once;
// the answer logits equal the unshared path's (LlamaModel.lastLogits, sharePrefix false) within
// rounding on random tiny models in f64 and f32, for prompts of different lengths, K odd and even,
// truncated instructions, and a template whose text seam the tokenizer merges across; chunks that
// share nothing, and instructions whose cache exceeds the bound, take the unshared path; K = 2, one
// prompt, empty responses, identical items; bad options.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { writeDemoTokenizer } from '../src/demo';
import { Judge, JudgeItem, judgePairsBatch } from '../src/judge';
import { planSharedPrefixes, sharedLastLogits } from '../src/judge/sharedPrefix';
import { fillJudgeTemplate, parseJudgeTemplate } from '../src/judge/templates';
import { LlamaConfig } from '../src/model/config';
import { LlamaModel } from '../src/model/llama';
import { Tokenizer } from '../src/model/tokenizer';
import { kvCacheBytesPerPosition } from '../src/generate/kvCache';
import { writeByteLevelTokenizer } from './helpers/byteTokenizer';
import { seeded } from './helpers/random';
import { tinyConfig } from './helpers/tinyLlama';

let tmp: string;
let demoTok: Tokenizer;
let byteTok: Tokenizer;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-judge-prefix-'));
  await writeDemoTokenizer(path.join(tmp, 'demo'), 1);
  demoTok = await Tokenizer.load(path.join(tmp, 'demo'));
  // Byte-level BPE with " A", " B" as single tokens and one merge, "x" + "y", that a seam can split.
  writeByteLevelTokenizer(path.join(tmp, 'bytes'), ['Ġ A', 'Ġ B', 'x y']);
  byteTok = await Tokenizer.load(path.join(tmp, 'bytes'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function modelFor(tok: Tokenizer, seed: number, dtype: 'f32' | 'f64', context = 256): LlamaModel {
  const config: LlamaConfig = { ...tinyConfig(false), vocabSize: tok.vocabSize, maxPositionEmbeddings: context };
  return LlamaModel.init(config, { seed, dtype, device: 'cpu', std: 0.5 });
}

/** Task-like text: a prompt of `words` numbers, responses of 0..n numbers (so some are empty). */
function numbers(next: () => number, n: number): string {
  return Array.from({ length: n }, () => ` ${Math.floor(next() * 10)}`).join('');
}

/** A demo step's judge items: every response against the blank one, then consecutive pairs (K odd leaves one out). */
function stepItems(next: () => number, prompts: number, kOf: (i: number) => number): JudgeItem[] {
  const items: JudgeItem[] = [];
  for (let i = 0; i < prompts; i++) {
    const prompt = `Sort ascending:${numbers(next, 2 + Math.floor(next() * 9))}\nAnswer:`;
    const responses = Array.from({ length: kOf(i) }, () => numbers(next, Math.floor(next() * 8)));
    for (const r of responses) items.push({ prompt, a: r, b: '' });
    for (let k = 0; k + 1 < responses.length; k += 2) items.push({ prompt, a: responses[k], b: responses[k + 1] });
  }
  return items;
}

/** The largest |x - y| / (1 + |y|) over all logits. */
function maxLogitError(x: ArrayLike<number>[], y: ArrayLike<number>[]): number {
  let m = 0;
  x.forEach((row, i) => {
    for (let j = 0; j < row.length; j++) m = Math.max(m, Math.abs(row[j] - y[i][j]) / (1 + Math.abs(y[i][j])));
  });
  return m;
}

/** What a chunk's cache slots hold after the forward: slot contents rebuilt from its computed rows and copies. */
function slotContents(chunk: ReturnType<typeof planSharedPrefixes>['chunks'][number]): (number | undefined)[][] {
  const slots: (number | undefined)[][] = chunk.members.map(() => new Array(chunk.length).fill(undefined));
  const written = new Set<string>();
  const put = (s: number, p: number, token: number) => {
    const key = `${s},${p}`;
    expect(written.has(key)).toBe(false); // no (slot, position) written twice
    written.add(key);
    slots[s][p] = token;
  };
  chunk.tokens.forEach((t, r) => put(chunk.slots[r], chunk.positions[r], t));
  chunk.copies.rows.forEach((r, j) => put(chunk.copies.slots[j], chunk.copies.positions[j], chunk.tokens[r]));
  return slots;
}

describe('planSharedPrefixes', () => {
  const { next } = seeded('shared prefix plan');

  it('rebuilds every sequence token for token in its own slot, computes each distinct prefix once, and respects the limits', () => {
    // Sequences drawn from a few common stems, as instructions of a few prompts are.
    const stems = Array.from({ length: 3 }, () => Array.from({ length: 1 + Math.floor(next() * 12) }, () => Math.floor(next() * 5)));
    const sequences = Array.from({ length: 40 }, () => {
      const stem = stems[Math.floor(next() * stems.length)];
      return Int32Array.from([...stem, ...Array.from({ length: 1 + Math.floor(next() * 6) }, () => Math.floor(next() * 3))]);
    });
    sequences.push(Int32Array.from(sequences[3]), Int32Array.from([7])); // a duplicate and a one-token sequence
    for (const limits of [
      { maxRows: 10_000, bytesPerPosition: 1, maxCacheBytes: 1e9 },
      { maxRows: 25, bytesPerPosition: 1, maxCacheBytes: 1e9 },
      { maxRows: 10_000, bytesPerPosition: 10, maxCacheBytes: 10 * 18 * 5 },
    ]) {
      const plan = planSharedPrefixes(sequences, limits);
      const seen = new Set<number>(plan.unshared);
      for (const chunk of plan.chunks) {
        expect(chunk.tokens.length).toBeLessThanOrEqual(limits.maxRows);
        expect(chunk.members.length * chunk.length * limits.bytesPerPosition).toBeLessThanOrEqual(limits.maxCacheBytes);
        const slots = slotContents(chunk);
        chunk.members.forEach((m, s) => {
          seen.add(m);
          const seq = sequences[m];
          expect(slots[s].slice(0, seq.length)).toEqual(Array.from(seq));
          expect(slots[s].slice(seq.length).every((t) => t === undefined)).toBe(true);
          const last = chunk.lastRows[s];
          expect([chunk.slots[last], chunk.positions[last], chunk.tokens[last]]).toEqual([s, seq.length - 1, seq[seq.length - 1]]);
        });
      }
      expect(seen.size).toBe(sequences.length);
      expect(plan.totalTokens).toBe(sequences.reduce((n, s) => n + s.length, 0));
      if (limits.maxRows === 10_000 && limits.maxCacheBytes === 1e9) {
        // One chunk: the computed rows are the distinct prefixes, plus the last token of each
        // sequence that is a prefix of another (its output row must be its own).
        expect(plan.chunks.length).toBe(1);
        const prefixes = new Set<string>();
        for (const s of sequences) for (let p = 1; p <= s.length; p++) prefixes.add(s.subarray(0, p).join(','));
        const sorted = [...sequences].sort((x, y) => (x.join(',') < y.join(',') ? -1 : 1));
        const forced = sorted.filter((s, i) => i > 0 && sorted[i - 1].length >= s.length && sorted[i - 1].subarray(0, s.length).join(',') === s.join(',')).length;
        expect(plan.computedTokens).toBe(prefixes.size + forced);
      }
    }
  });

  it('a chunk that shares nothing and a sequence whose cache exceeds the bound go to the unshared path', () => {
    const seqs = [Int32Array.from([1, 2, 3]), Int32Array.from([4, 5]), Int32Array.from([1, 2, 9]), new Int32Array(7).fill(6)];
    const plan = planSharedPrefixes(seqs, { maxRows: 100, bytesPerPosition: 1, maxCacheBytes: 6 });
    // [4, 5] does not fit the first chunk's cache (3 slots x 3 positions) and alone shares nothing; [6 x 7] needs 7 bytes alone.
    expect(plan.unshared).toEqual([1, 3]);
    expect(plan.chunks.map((c) => c.members)).toEqual([[0, 2]]);
    const alone = planSharedPrefixes([Int32Array.from([1, 2])], { maxRows: 100, bytesPerPosition: 1, maxCacheBytes: 100 });
    expect(alone.chunks).toEqual([]);
    expect(alone.unshared).toEqual([0]);
    expect(() => planSharedPrefixes([Int32Array.from([])], { maxRows: 1, bytesPerPosition: 1, maxCacheBytes: 1 })).toThrow(/sequences\[0\] is empty/);
    expect(() => planSharedPrefixes([], { maxRows: 0, bytesPerPosition: 1, maxCacheBytes: 1 })).toThrow(/maxRows is 0/);
  });
});

describe.each(['f64', 'f32'] as const)('shared prefixes equal the unshared path (%s)', (dtype) => {
  const tol = dtype === 'f64' ? 1e-12 : 2e-5;
  const { seed, next } = seeded(`judge shared prefix ${dtype}`);

  it('sharedLastLogits equals LlamaModel.lastLogits on random token sequences with common prefixes, whatever the chunking', () => {
    const model = modelFor(demoTok, seed, dtype, 64);
    try {
      const V = model.config.vocabSize;
      const stem = Array.from({ length: 20 }, () => Math.floor(next() * V));
      const seqs = Array.from({ length: 13 }, () => Int32Array.from([...stem.slice(0, 5 + Math.floor(next() * 15)), ...Array.from({ length: 1 + Math.floor(next() * 9) }, () => Math.floor(next() * V))]));
      const columns = Int32Array.from([3, 17, V - 1]);
      const want = model.lastLogits(seqs, columns);
      const per = kvCacheBytesPerPosition(model);
      for (const opts of [
        { maxRows: 10_000, maxCacheBytes: 1e9, batchSize: 4 },
        { maxRows: 30, maxCacheBytes: 1e9, batchSize: 4 },
        { maxRows: 10_000, maxCacheBytes: 3 * 29 * per, batchSize: 2 },
      ]) {
        const got = sharedLastLogits(model, seqs, columns, opts);
        expect(got.every((g) => g instanceof (dtype === 'f64' ? Float64Array : Float32Array))).toBe(true);
        expect(maxLogitError(got, want)).toBeLessThanOrEqual(tol);
      }
    } finally {
      model.dispose();
    }
  });

  it.each([
    ['K 4, eight prompts', 8, () => 4],
    ['K 3 and 5, prompts of different lengths', 5, (i: number) => (i % 2 === 0 ? 3 : 5)],
    ['K 2, one prompt', 1, () => 2],
  ])('demo tokenizer, HH template, a step of judgePairsBatch: %s', async (_label, prompts, kOf) => {
    const model = modelFor(demoTok, seed + prompts, dtype);
    try {
      const shared = await Judge.create(model, demoTok, { batchSize: 4 });
      const unshared = await Judge.create(model, demoTok, { batchSize: 4, sharePrefix: false });
      expect(shared.sharePrefix).toBe(true);
      const items = stepItems(next, prompts, kOf);
      const ins = await unshared.instructions(items.flatMap((it) => [it, { prompt: it.prompt, a: it.b, b: it.a }]));
      const plan = planSharedPrefixes(ins, { maxRows: 4 * shared.maxLength, bytesPerPosition: kvCacheBytesPerPosition(model), maxCacheBytes: shared.maxCacheBytes });
      expect(plan.computedTokens).toBeLessThan(plan.totalTokens / 2); // the sharing is real
      const a = await shared.preferences(items);
      const b = await unshared.preferences(items);
      a.forEach((p, i) => {
        expect(Math.abs(p.pAB - b[i].pAB)).toBeLessThanOrEqual(tol);
        expect(Math.abs(p.pBA - b[i].pBA)).toBeLessThanOrEqual(tol);
      });
      // The same through the pairing code the trainer calls.
      const groups = [{ prompt: items[0].prompt, responses: [' 1 2', '', ' 2 1'] }];
      const [ga] = await judgePairsBatch(shared, groups);
      const [gb] = await judgePairsBatch(unshared, groups);
      ga.scores!.forEach((s, k) => expect(Math.abs(s - gb.scores![k])).toBeLessThanOrEqual(tol));
    } finally {
      model.dispose();
    }
  });

  it('truncated instructions (maxLength below their length) share what their tokens share', async () => {
    const model = modelFor(demoTok, seed + 99, dtype);
    try {
      const opts = { batchSize: 3, maxLength: 52 };
      const shared = await Judge.create(model, demoTok, opts);
      const unshared = await Judge.create(model, demoTok, { ...opts, sharePrefix: false });
      const long = (n: number) => numbers(next, n);
      const items = [
        { prompt: `Sort ascending:${long(12)}\nAnswer:`, a: long(9), b: long(2) },
        { prompt: `Sort ascending:${long(12)}\nAnswer:`, a: long(1), b: long(11) },
        { prompt: `Sort descending:${long(3)}\nAnswer:`, a: long(4), b: '' },
      ];
      const ins = await shared.instructions(items);
      const whole = await demoTok.encodeBatch(items.map((it) => fillJudgeTemplate(shared.template, it.prompt, it.a, it.b)));
      expect(whole.filter((s) => s.length > 52).length).toBeGreaterThanOrEqual(2); // cut...
      expect(ins.every((s) => s.length <= 52)).toBe(true); // ...to maxLength
      const a = await shared.preferences(items);
      const b = await unshared.preferences(items);
      a.forEach((p, i) => expect(Math.abs(p.p - b[i].p)).toBeLessThanOrEqual(tol));
    } finally {
      model.dispose();
    }
  });

  it('a template whose seam the tokenizer merges across: shared by tokens, not by text, and still equal', async () => {
    const model = modelFor(byteTok, seed + 7, dtype);
    try {
      // "...x{prompt}": a prompt that starts with "y" merges with the template's "x" into one token.
      const template = { name: 'seam', text: 'Judge x{prompt}\nA:{a}\nB:{b}\nBest? RESPONSE' };
      const parsed = parseJudgeTemplate(template);
      const shared = await Judge.create(model, byteTok, { template, batchSize: 8 });
      const unshared = await Judge.create(model, byteTok, { template, batchSize: 8, sharePrefix: false });
      const items = [
        { prompt: 'yes or no', a: 'yes', b: 'no' },
        { prompt: 'yes or no', a: ' y', b: 'xy' },
        { prompt: 'why', a: '', b: 'because' },
        { prompt: 'y', a: 'y', b: '' },
      ];
      // The hazard: the prefix text encoded alone is not a prefix of the instruction's tokens.
      const full = await byteTok.encode(fillJudgeTemplate(parsed, items[0].prompt, items[0].a, items[0].b));
      const prefixAlone = await byteTok.encode(parsed.prefix);
      expect(Array.from(full.subarray(0, prefixAlone.length))).not.toEqual(Array.from(prefixAlone));
      const a = await shared.preferences(items);
      const b = await unshared.preferences(items);
      a.forEach((p, i) => {
        expect(Math.abs(p.pAB - b[i].pAB)).toBeLessThanOrEqual(tol);
        expect(Math.abs(p.pBA - b[i].pBA)).toBeLessThanOrEqual(tol);
      });
    } finally {
      model.dispose();
    }
  });
});

describe('paths taken', () => {
  const { seed } = seeded('judge shared prefix paths');
  const items = [
    { prompt: 'Sort ascending: 3 1 2\nAnswer:', a: ' 1 2 3', b: '' },
    { prompt: 'Sort ascending: 3 1 2\nAnswer:', a: '', b: '' }, // both responses empty
    { prompt: 'Sort ascending: 3 1 2\nAnswer:', a: ' 1 2 3', b: '' }, // the same item again
  ];

  it('shares in one cached forward by default; falls back to packed forwards when no instruction fits the cache bound; same answers', async () => {
    const model = modelFor(demoTok, seed, 'f64');
    try {
      const reference = await (await Judge.create(model, demoTok, { sharePrefix: false })).preferences(items);
      const cached = jest.spyOn(model, 'forwardCached');
      const packed = jest.spyOn(model, 'lastLogits');
      const shared = await (await Judge.create(model, demoTok)).preferences(items);
      expect([cached.mock.calls.length, packed.mock.calls.length]).toEqual([1, 0]);
      cached.mockClear();
      const tiny = await (await Judge.create(model, demoTok, { maxCacheBytes: 1000, batchSize: 4 })).preferences(items);
      expect([cached.mock.calls.length, packed.mock.calls.length]).toEqual([0, 2]); // 6 instructions, 4 per packed forward
      for (const got of [shared, tiny]) got.forEach((p, i) => expect(Math.abs(p.p - reference[i].p)).toBeLessThanOrEqual(1e-12));
      expect(shared[0]).toEqual(shared[2]);
      cached.mockRestore();
      packed.mockRestore();
    } finally {
      model.dispose();
    }
  });

  it('no items: no forward; bad options are named', async () => {
    const model = modelFor(demoTok, seed, 'f64');
    try {
      expect(await (await Judge.create(model, demoTok)).preferences([])).toEqual([]);
      await expect(Judge.create(model, demoTok, { sharePrefix: 'yes' as unknown as boolean })).rejects.toThrow(/sharePrefix is "yes"; expected true or false/);
      await expect(Judge.create(model, demoTok, { maxCacheBytes: 0 })).rejects.toThrow(/maxCacheBytes is 0; expected a number > 0/);
    } finally {
      model.dispose();
    }
  });
});
