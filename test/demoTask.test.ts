// The embedded demo task (src/demo): the seeded sorting-task generator, the graded scorer, the
// imperfect SFT demonstrations and noisily labelled preference pairs, and the task's tokenizer
// (written as tokenizer.json + tokenizer_config.json, loaded through src/model/tokenizer.ts).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  bestResponse,
  DEFAULT_FLIP_NOISE,
  demoAlphabet,
  makePreferencePairs,
  makePrompts,
  makeSftExamples,
  parsePrompt,
  Rng,
  score,
  scoreDetails,
  writeDemoTokenizer,
} from '../src/demo';
import { fillJudgeTemplate, findAnswerTokens, resolveJudgeTemplate } from '../src/judge';
import { Tokenizer } from '../src/model/tokenizer';
import { judgeInstructionExamples } from '../src/data/augment';
import { orientPair } from '../src/osp/objective';

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('Rng', () => {
  it('is reproducible from a seed and differs across seeds and streams', () => {
    const draw = (seed: number, stream: string) => {
      const r = new Rng(seed, stream);
      return Array.from({ length: 8 }, () => r.nextUint32());
    };
    expect(draw(42, 'a')).toEqual(draw(42, 'a'));
    expect(draw(42, 'a')).not.toEqual(draw(43, 'a'));
    expect(draw(42, 'a')).not.toEqual(draw(42, 'b'));
    expect(draw(2 ** 40, 'a')).not.toEqual(draw(0, 'a'));
  });

  it('draws doubles in [0, 1) and integers in range, roughly uniformly', () => {
    const r = new Rng(7);
    const counts = new Array(10).fill(0);
    let outside = 0;
    for (let i = 0; i < 20000; i++) {
      const u = r.next();
      if (!(u >= 0 && u < 1)) outside++;
      counts[r.int(10)]++;
    }
    expect(outside).toBe(0);
    for (const c of counts) expect(Math.abs(c - 2000)).toBeLessThan(200);
  });

  it('refuses a seed that is not a safe integer', () => {
    expect(() => new Rng(1.5)).toThrow(RangeError);
    expect(() => makePrompts(2, NaN)).toThrow(/seed/);
  });
});

describe('makePrompts', () => {
  it('is deterministic for a seed and differs across seeds', () => {
    expect(makePrompts(50, 1)).toEqual(makePrompts(50, 1));
    expect(makePrompts(50, 1)).not.toEqual(makePrompts(50, 2));
    expect(makePrompts(10, 1)).toEqual(makePrompts(50, 1).slice(0, 10));
  });

  it('makes parseable prompts within the options, both directions', () => {
    const prompts = makePrompts(400, 3, { minLength: 3, maxLength: 7 });
    const problems = prompts.map(parsePrompt);
    for (const p of problems) {
      expect(p.numbers.length).toBeGreaterThanOrEqual(3);
      expect(p.numbers.length).toBeLessThanOrEqual(7);
      for (const x of p.numbers) expect(x >= 0 && x <= 9).toBe(true);
    }
    const ascending = problems.filter((p) => p.direction === 'ascending').length;
    expect(ascending).toBeGreaterThan(150);
    expect(ascending).toBeLessThan(250);
    expect(prompts[0]).toMatch(/^Sort (ascending|descending): \d( \d)+\nAnswer:$/);
  });

  it('refuses bad options and malformed prompts', () => {
    expect(() => makePrompts(-1, 0)).toThrow(RangeError);
    expect(() => makePrompts(1, 0, { minLength: 1 })).toThrow(/minLength/);
    expect(() => makePrompts(1, 0, { minLength: 5, maxLength: 4 })).toThrow(/maxLength/);
    expect(() => score('sort this: 3 1', ' 1 3')).toThrow(/not a prompt of the sorting task/);
  });
});

describe('score', () => {
  const up = 'Sort ascending: 7 1 9 3 5\nAnswer:';
  const down = 'Sort descending: 2 8 2 5\nAnswer:';

  it('gives the perfect answer exactly 1, in both directions', () => {
    expect(bestResponse(up)).toBe(' 1 3 5 7 9');
    expect(bestResponse(down)).toBe(' 8 5 2 2');
    expect(score(up, bestResponse(up))).toBe(1);
    expect(score(down, bestResponse(down))).toBe(1);
    for (const p of makePrompts(200, 11)) expect(score(p, bestResponse(p))).toBe(1);
  });

  it('ignores surrounding whitespace', () => {
    expect(score(up, '1 3 5 7 9')).toBe(1);
    expect(score(up, ' 1 3 5 7 9\n')).toBe(1);
  });

  it('ranks hand-made partial answers in order of quality', () => {
    const ranked = [
      ' 1 3 5 7 9', // perfect
      ' 1, 3, 5, 7, 9', // wrong separator only
      ' 1 5 3 7 9', // one adjacent swap
      ' 1 3 5', // two numbers missing
      ' 1 3 5 9 7 7 2', // swap, duplicate and a wrong extra
      ' 9 7 5 3 1', // wrong direction
      ' 1', // one right number
      '', // nothing
    ];
    const scores = ranked.map((r) => score(up, r));
    for (let i = 0; i + 1 < scores.length; i++) expect(scores[i]).toBeGreaterThan(scores[i + 1]);
    expect(scores[1]).toBeCloseTo(0.95, 10);
  });

  it('gives near or exactly 0 to garbage and empty answers', () => {
    for (const r of ['', '   ', 'hello', ' banana split', ' 2 4 6 8', ' 0 0 0 0 0 0']) expect(score(up, r)).toBe(0);
    expect(score(up, ' 9')).toBeLessThan(0.3);
  });

  it('stays in [0, 1], is deterministic, and is 1 only for the perfect answer', () => {
    const pairs = makePreferencePairs(300, 5);
    for (const { prompt, chosen, rejected } of pairs) {
      for (const r of [chosen, rejected]) {
        const s = score(prompt, r);
        expect(s).toBeGreaterThanOrEqual(0);
        expect(s).toBeLessThanOrEqual(1);
        expect(score(prompt, r)).toBe(s);
        if (s === 1) expect(r.trim()).toBe(bestResponse(prompt).trim());
      }
    }
  });

  it('explains itself through scoreDetails', () => {
    const d = scoreDetails(up, ' 1 5 3 7 9');
    expect(d.target).toEqual([1, 3, 5, 7, 9]);
    expect(d.numbers).toEqual([1, 5, 3, 7, 9]);
    expect(d.content).toBe(1);
    expect(d.sequence).toBeCloseTo(0.8, 12);
    expect(d.order).toBeCloseTo(0.75, 12);
    expect(d.format).toBe(1);
    expect(d.score).toBeCloseTo(0.25 + 0.45 * 0.8 + 0.2 * 0.75 + 0.1, 12);
  });
});

describe('makeSftExamples', () => {
  it('is deterministic for a seed and differs across seeds', () => {
    expect(makeSftExamples(100, 4)).toEqual(makeSftExamples(100, 4));
    expect(makeSftExamples(100, 4)).not.toEqual(makeSftExamples(100, 5));
  });

  it('gives imperfect demonstrations: mean score clearly between 0 and 1, many perfect, some poor', () => {
    const ex = makeSftExamples(2000, 9);
    const s = ex.map((e) => score(e.prompt, e.response));
    const m = mean(s);
    expect(m).toBeGreaterThan(0.7);
    expect(m).toBeLessThan(0.92);
    const perfect = s.filter((x) => x === 1).length / s.length;
    expect(perfect).toBeGreaterThan(0.3);
    expect(perfect).toBeLessThan(0.6);
    expect(s.filter((x) => x < 0.6).length).toBeGreaterThan(0);
    for (const e of ex) expect(e.response.length).toBeGreaterThan(0);
  });

  it('follows the noise option: 0 is perfect, more noise is worse', () => {
    const clean = makeSftExamples(300, 9, { noise: 0 });
    expect(clean.every((e) => e.response === bestResponse(e.prompt))).toBe(true);
    const score_ = (noise: number) => mean(makeSftExamples(1000, 9, { noise }).map((e) => score(e.prompt, e.response)));
    expect(score_(0.9)).toBeLessThan(score_(0.3));
    expect(() => makeSftExamples(1, 0, { noise: 1.5 })).toThrow(/noise/);
  });
});

describe('makePreferencePairs', () => {
  it('is deterministic for a seed and differs across seeds', () => {
    expect(makePreferencePairs(100, 4)).toEqual(makePreferencePairs(100, 4));
    expect(makePreferencePairs(100, 4)).not.toEqual(makePreferencePairs(100, 5));
  });

  it('pairs two different responses of different quality for one prompt, some against the blank response', () => {
    const pairs = makePreferencePairs(1000, 6);
    for (const p of pairs) {
      expect(p.chosen).not.toBe(p.rejected);
      expect(score(p.prompt, p.chosen)).not.toBe(score(p.prompt, p.rejected));
      expect(p.strength > 0 && p.strength < 1).toBe(true);
      expect(Object.keys(p).sort()).toEqual(['chosen', 'prompt', 'rejected', 'strength']);
    }
    const blank = pairs.filter((p) => p.chosen === '' || p.rejected === '').length;
    expect(blank).toBeGreaterThan(50);
    expect(blank).toBeLessThan(150);
  });

  it('labels agree with the scorer more often than not, but not always (rater noise)', () => {
    const pairs = makePreferencePairs(2000, 8);
    const agree = pairs.filter((p) => score(p.prompt, p.chosen) > score(p.prompt, p.rejected)).length / pairs.length;
    expect(agree).toBeGreaterThan(0.7);
    expect(agree).toBeLessThan(0.97);
    // The strength is the rater's confidence in the label it gave: above 1/2 for flipped pairs too.
    for (const p of pairs) expect(p.strength).toBeCloseTo(1 / (1 + Math.exp(-Math.abs(score(p.prompt, p.chosen) - score(p.prompt, p.rejected)) / DEFAULT_FLIP_NOISE)), 12);
    // Flips are more likely for close calls than for clear ones.
    const gap = (p: (typeof pairs)[0]) => Math.abs(score(p.prompt, p.chosen) - score(p.prompt, p.rejected));
    const flipRate = (sel: typeof pairs) => sel.filter((p) => score(p.prompt, p.chosen) < score(p.prompt, p.rejected)).length / sel.length;
    expect(flipRate(pairs.filter((p) => gap(p) < 0.1))).toBeGreaterThan(flipRate(pairs.filter((p) => gap(p) > 0.3)) + 0.2);
  });

  it('carries the flipped labels into what orients pairs by strength (the judge\'s augmentation data)', () => {
    const pairs = makePreferencePairs(2000, 9);
    const flipped = pairs.filter((p) => score(p.prompt, p.chosen) < score(p.prompt, p.rejected)).length;
    // judgeInstructionExamples answers " A" for the side the pair prefers: the worse one when flipped.
    const examples = judgeInstructionExamples(pairs);
    const t = resolveJudgeTemplate('hh');
    expect(examples.length).toBe(2 * pairs.length);
    pairs.forEach((p, i) => expect(examples[2 * i].prompt).toBe(fillJudgeTemplate(t, p.prompt, p.chosen, p.rejected)));
    expect(flipped).toBeGreaterThan(100);
    expect(pairs.every((p) => orientPair({ chosen: p.chosen, rejected: p.rejected, target: p.strength }).chosen === p.chosen)).toBe(true);
  });

  it('never flips with flipNoise 0', () => {
    const pairs = makePreferencePairs(500, 8, { flipNoise: 0 });
    expect(pairs.every((p) => score(p.prompt, p.chosen) > score(p.prompt, p.rejected) && p.strength > 0.5)).toBe(true);
  });
});

describe('the demo tokenizer', () => {
  let dir: string;
  let tok: Tokenizer;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-demo-tokenizer-'));
    await writeDemoTokenizer(path.join(dir, 'a'), 1);
    tok = await Tokenizer.load(path.join(dir, 'a'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('is a small vocabulary with <unk> 0, <s> 1 (BOS, added first) and </s> 2 (EOS)', async () => {
    expect(tok.vocabSize).toBeLessThan(512);
    expect(tok.vocabSize).toBeGreaterThan(demoAlphabet().length + 3);
    expect([tok.tokenToId('<unk>'), tok.bosTokenId, tok.eosTokenId]).toEqual([0, 1, 2]);
    const ids = await tok.encode('Sort ascending: 3 1\nAnswer:');
    expect(ids[0]).toBe(1);
    expect((await tok.encode('Sort', { addSpecialTokens: false }))[0]).not.toBe(1);
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'a', 'tokenizer_config.json'), 'utf8'));
    expect(config).toMatchObject({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' });
  });

  it('round-trips task text exactly, and prompt + response tokens are the prompt tokens then the response tokens', async () => {
    const texts = makeSftExamples(500, 12);
    for (const { prompt, response } of texts) {
      const all = await tok.encode(prompt + response);
      const p = await tok.encode(prompt);
      const r = await tok.encode(response, { addSpecialTokens: false });
      expect(await tok.decode(all)).toBe(prompt + response);
      expect(await tok.decode(r)).toBe(response);
      expect(Array.from(all)).toEqual([...p, ...r]);
      expect(all.includes(0)).toBe(false); // no <unk>
    }
    const printable = 'Any ASCII text: {a}, [b] (c) #1 $2 %3 & ~`|\\^_"\'\n\n  two  spaces ';
    expect(await tok.decode(await tok.encode(printable))).toBe(printable);
  });

  it('keeps prompts and responses short: at most 20 tokens with BOS and EOS for perfect answers, 40 for any demonstration', async () => {
    const ex = makeSftExamples(2000, 13);
    const lengths = await Promise.all(ex.map(async (e) => (await tok.encode(e.prompt + e.response)).length + 1));
    const best = await Promise.all(ex.map(async (e) => (await tok.encode(e.prompt + bestResponse(e.prompt))).length + 1));
    const promptLengths = await Promise.all(ex.map(async (e) => (await tok.encode(e.prompt)).length));
    console.log(
      `demo token lengths (BOS and EOS included): prompt max ${Math.max(...promptLengths)}; prompt + perfect answer mean ${mean(best).toFixed(1)}, max ${Math.max(...best)}; ` +
        `prompt + demonstration mean ${mean(lengths).toFixed(1)}, max ${Math.max(...lengths)}`,
    );
    expect(Math.max(...best)).toBeLessThanOrEqual(20);
    expect(Math.max(...lengths)).toBeLessThanOrEqual(40);
    // Digits after a space are one token each: a response of n numbers is n tokens.
    expect((await tok.encode(' 9 8 7 0', { addSpecialTokens: false })).length).toBe(4);
  });

  it('spells " A" and " B" as single tokens after the HH judge template, and judge instructions stay short', async () => {
    const hh = resolveJudgeTemplate('hh');
    const answer = await findAnswerTokens(tok, hh);
    expect([answer.aToken, answer.bToken]).toEqual(['\u2581A', '\u2581B']);
    const fixed = (await tok.encode(fillJudgeTemplate(hh, '', '', ''))).length;
    const pairs = makePreferencePairs(500, 14);
    const lengths = await Promise.all(pairs.map(async (p) => (await tok.encode(fillJudgeTemplate(hh, p.prompt, p.chosen, p.rejected))).length));
    console.log(`demo judge instruction tokens: template alone ${fixed}, filled max ${Math.max(...lengths)}`);
    expect(fixed).toBeLessThan(60);
    expect(Math.max(...lengths)).toBeLessThan(100);
  });

  it('writes identical bytes for the same seed, and a different tokenizer for another seed', async () => {
    await writeDemoTokenizer(path.join(dir, 'b'), 1);
    await writeDemoTokenizer(path.join(dir, 'c'), 2);
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
      expect(fs.readFileSync(path.join(dir, 'b', f)).equals(fs.readFileSync(path.join(dir, 'a', f)))).toBe(true);
    }
    expect(fs.readFileSync(path.join(dir, 'c', 'tokenizer.json')).equals(fs.readFileSync(path.join(dir, 'a', 'tokenizer.json')))).toBe(false);
  });
});
