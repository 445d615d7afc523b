// Evaluation: win-rate arithmetic, ROUGE-L, length statistics, and the `osp generate` / `osp eval`
// commands end to end on the cpu with tiny Llama models over the demo tokenizer.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { main } from '../src/cli/index';
import { makeSftExamples, writeDemoTokenizer } from '../src/demo';
import type { JudgeItem, Preference } from '../src/judge/judge';
import { LlamaConfig } from '../src/model/config';
import { LlamaModel } from '../src/model/llama';
import { Tokenizer } from '../src/model/tokenizer';
import { lengthStats, meanRougeL, meanWithCi, rougeL, summarizePreferences, winRate } from '../src/osp/eval';

/** A stand-in judge answering with fixed (pAB, pBA) per item, p = (pAB + 1 - pBA) / 2. */
function fakeJudge(values: [number, number][]) {
  let next = 0;
  return {
    calls: 0,
    async preferences(items: JudgeItem[]): Promise<Preference[]> {
      this.calls++;
      return items.map(() => {
        const [pAB, pBA] = values[next++];
        return { p: (pAB + 1 - pBA) / 2, pAB, pBA };
      });
    },
  };
}

describe('winRate', () => {
  // win (p 0.9, orders agree) | tie (p 0.51; the second order is undecided) | win (p 0.6; orders disagree) | loss (p 0.25)
  const values: [number, number][] = [[0.9, 0.1], [0.52, 0.5], [0.8, 0.6], [0.2, 0.7]];
  const items = values.map((_, i) => ({ prompt: `q${i}`, a: 'x', b: 'y' }));

  it('counts wins, ties (|p - 0.5| <= 0.05 by default) and losses, ties counting half', async () => {
    const judge = fakeJudge(values);
    const r = await winRate(judge, items, { chunkSize: 3 });
    expect(judge.calls).toBe(2);
    expect(r.items.map((it) => it.outcome)).toEqual(['win', 'tie', 'win', 'loss']);
    expect(r.items.map((it) => it.p)).toEqual([0.9, 0.51, 0.6, 0.25].map((v) => expect.closeTo(v, 12)));
    expect(r.summary).toMatchObject({ n: 4, wins: 2, ties: 1, losses: 1, tieMargin: 0.05 });
    expect(r.summary.winRate.mean).toBeCloseTo(2.5 / 4, 12);
  });

  it('measures position disagreement |pAB - (1 - pBA)| and how often the two orders name different winners', async () => {
    const r = await winRate(fakeJudge(values), items);
    expect(r.items.map((it) => it.positionDisagreement)).toEqual([0, 0.02, 0.4, 0.1].map((v) => expect.closeTo(v, 12)));
    expect(r.items.map((it) => it.ordersDisagree)).toEqual([false, true, true, false]);
    expect(r.summary.positionDisagreement).toBeCloseTo(0.52 / 4, 12);
    expect(r.summary.orderDisagreement).toBe(0.5);
  });

  it('gives a seeded 95% bootstrap interval that contains the estimate and is reproducible', async () => {
    const r = await winRate(fakeJudge(values), items, { seed: 7 });
    const w = r.summary.winRate;
    expect(w.level).toBe(0.95);
    expect(w.lo).toBeLessThanOrEqual(w.mean);
    expect(w.hi).toBeGreaterThanOrEqual(w.mean);
    expect(w.lo).toBeGreaterThanOrEqual(0);
    expect(w.hi).toBeLessThanOrEqual(1);
    expect(w.hi - w.lo).toBeGreaterThan(0);
    expect((await winRate(fakeJudge(values), items, { seed: 7 })).summary.winRate).toEqual(w);
    const m = r.summary.meanPreference;
    expect(m.mean).toBeCloseTo((0.9 + 0.51 + 0.6 + 0.25) / 4, 12);
    expect(m.lo).toBeLessThanOrEqual(m.mean);
    expect(m.hi).toBeGreaterThanOrEqual(m.mean);
  });

  it('takes the tie margin as a setting (0: only p = 0.5 is a tie) and refuses one outside [0, 0.5)', () => {
    const prefs = values.map(([pAB, pBA]) => ({ p: (pAB + 1 - pBA) / 2, pAB, pBA }));
    expect(summarizePreferences(prefs, { tieMargin: 0 }).summary).toMatchObject({ wins: 3, ties: 0, losses: 1 });
    expect(summarizePreferences([{ p: 0.5, pAB: 0.7, pBA: 0.7 }], { tieMargin: 0 }).summary).toMatchObject({ ties: 1 });
    expect(summarizePreferences(prefs, { tieMargin: 0.2 }).summary).toMatchObject({ wins: 1, ties: 2, losses: 1 });
    expect(() => summarizePreferences(prefs, { tieMargin: 0.5 })).toThrow(/tieMargin/);
    expect(() => summarizePreferences([{ p: 1.2, pAB: 1, pBA: 0 }])).toThrow(/preference 0\.p/);
  });

  it('summarizes no items as NaN rates rather than throwing', () => {
    const s = summarizePreferences([]).summary;
    expect(s.n).toBe(0);
    expect(s.winRate.mean).toBeNaN();
  });
});

describe('meanWithCi', () => {
  it('is exact for constant values and a single value, NaN for none', () => {
    expect(meanWithCi([0.3, 0.3, 0.3])).toMatchObject({ n: 3, mean: 0.3, lo: 0.3, hi: 0.3 });
    expect(meanWithCi([2])).toMatchObject({ n: 1, mean: 2, lo: 2, hi: 2 });
    expect(meanWithCi([]).mean).toBeNaN();
  });

  it('narrows with more data and depends only on the seed', () => {
    const small = Array.from({ length: 20 }, (_, i) => i % 2);
    const large = Array.from({ length: 2000 }, (_, i) => i % 2);
    const a = meanWithCi(small, { seed: 1 });
    const b = meanWithCi(large, { seed: 1 });
    expect(a.mean).toBe(0.5);
    expect(b.hi - b.lo).toBeLessThan(a.hi - a.lo);
    // Binomial standard error at n = 2000 is 0.0112: the 95% interval is about +-0.022.
    expect(b.hi - b.lo).toBeGreaterThan(0.03);
    expect(b.hi - b.lo).toBeLessThan(0.06);
    expect(meanWithCi(small, { seed: 1 })).toEqual(a);
    expect(() => meanWithCi([1, NaN])).toThrow(/value 1/);
  });
});

describe('rougeL', () => {
  it('is 1 for identical texts and 0 for texts with no word in common', () => {
    expect(rougeL('the cat sat on the mat', 'the cat sat on the mat')).toBe(1);
    expect(rougeL('a b c', 'd e f')).toBe(0);
  });

  it('is the LCS F1: "the cat sat" vs "the cat was on the mat" shares "the cat": P 2/3, R 2/6, F 4/9', () => {
    expect(rougeL('the cat sat', 'the cat was on the mat')).toBeCloseTo(4 / 9, 12);
    // word order matters: the LCS of "3 2 1" and "1 2 3" is one token
    expect(rougeL(' 3 2 1', ' 1 2 3')).toBeCloseTo(1 / 3, 12);
  });

  it('ignores case, and scores an empty candidate or reference 0', () => {
    expect(rougeL('The Cat', 'the cat')).toBe(1);
    expect(rougeL('', 'the cat')).toBe(0);
    expect(rougeL('the cat', '  ')).toBe(0);
  });

  it('averages over items', () => {
    const r = meanRougeL([{ candidate: 'a b', reference: 'a b' }, { candidate: 'x', reference: 'y' }]);
    expect(r.scores).toEqual([1, 0]);
    expect(r.mean.mean).toBe(0.5);
  });
});

describe('lengthStats', () => {
  it('gives mean, median, p90 (linear interpolation) and max', () => {
    expect(lengthStats([10, 1, 2, 3, 4, 5, 6, 7, 8, 9])).toEqual({ n: 10, mean: 5.5, median: 5.5, p90: expect.closeTo(9.1, 12), max: 10 });
    expect(lengthStats([4])).toEqual({ n: 1, mean: 4, median: 4, p90: 4, max: 4 });
    expect(lengthStats([1, 2, 3]).median).toBe(2);
    expect(lengthStats([]).mean).toBeNaN();
  });
});

// ---- the commands ---------------------------------------------------------------------------------

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = jest.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((stdout += String(s)), true));
  const err = jest.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => ((stderr += String(s)), true));
  try {
    const code = await main(['node', 'osp', ...args]);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

function readJsonl(file: string): Record<string, unknown>[] {
  return fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('osp generate and osp eval', () => {
  let root: string;
  let modelA: string;
  let modelB: string;
  let data: string;
  let promptsOnly: string;
  const examples = makeSftExamples(6, 21);

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-eval-'));
    const tokDir = path.join(root, 'tok');
    await writeDemoTokenizer(tokDir, 5);
    const vocabSize = (await Tokenizer.load(tokDir)).vocabSize;
    const config: LlamaConfig = {
      architecture: 'LlamaForCausalLM', modelType: 'llama', hiddenSize: 32, intermediateSize: 48, numHiddenLayers: 2, numAttentionHeads: 4,
      numKeyValueHeads: 2, headDim: 8, rmsNormEps: 1e-6, ropeTheta: 10000, ropeScaling: null, vocabSize, tieWordEmbeddings: false,
      maxPositionEmbeddings: 128, bosTokenId: 1, eosTokenId: 2, hiddenAct: 'silu', attentionBias: false, mlpBias: false,
    };
    modelA = path.join(root, 'a');
    modelB = path.join(root, 'b');
    for (const [dir, seed] of [[modelA, 1], [modelB, 2]] as const) {
      const m = LlamaModel.init(config, { seed, std: 0.5 });
      await m.save(dir, { tokenizerFrom: tokDir });
      m.dispose();
    }
    data = path.join(root, 'sft.jsonl');
    fs.writeFileSync(data, examples.map((e) => JSON.stringify(e)).join('\n') + '\n');
    promptsOnly = path.join(root, 'prompts.jsonl');
    fs.writeFileSync(promptsOnly, examples.map((e) => JSON.stringify({ prompt: e.prompt })).join('\n') + '\n');
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('osp generate writes k responses per prompt as JSON lines, the same for the same seed', async () => {
    const out = path.join(root, 'gen', 'responses.jsonl');
    const args = ['generate', '--model', modelA, '--prompts', promptsOnly, '--out', out, '--k', '2', '--max-new-tokens', '5', '--temperature', '1', '--seed', '3', '--device', 'cpu', '--limit', '4'];
    const r = await run(args);
    expect(r.stderr).toMatch(/wrote 8 responses \(4 prompts x 2\)/);
    expect(r.code).toBe(0);
    const lines = readJsonl(out);
    expect(lines).toHaveLength(8);
    lines.forEach((l, i) => {
      expect(l.prompt).toBe(examples[Math.floor(i / 2)].prompt);
      expect(l.sample).toBe(i % 2);
      expect(typeof l.response).toBe('string');
      expect(l.tokens).toBeGreaterThanOrEqual(1);
      expect(l.tokens).toBeLessThanOrEqual(5);
      expect(['eos', 'stop', 'length']).toContain(l.finishReason);
    });
    const first = fs.readFileSync(out, 'utf8');
    expect((await run(args)).code).toBe(0);
    expect(fs.readFileSync(out, 'utf8')).toBe(first);
    expect(fs.readdirSync(path.dirname(out))).toEqual(['responses.jsonl']); // no temporary files left
  });

  it('osp eval judges two model folders in both orders, with ROUGE-L against the references, lengths and the table', async () => {
    const out = path.join(root, 'eval-models');
    const r = await run(['eval', '--a', modelA, '--b', modelB, '--judge', modelA, '--prompts', data, '--format', 'sft', '--references', '--scorer', 'demo',
      '--out', out, '--max-new-tokens', '6', '--device', 'cpu']);
    expect(r.stderr).not.toMatch(/^osp: /m);
    expect(r.code).toBe(0);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'eval.json'), 'utf8'));
    const tok = await Tokenizer.load(modelA);
    const w = report.winRate;
    expect(w.n).toBe(6);
    expect(w.wins + w.ties + w.losses).toBe(6);
    expect(w.winRate.mean).toBeCloseTo((w.wins + w.ties / 2) / 6, 12);
    expect(w.winRate.lo).toBeLessThanOrEqual(w.winRate.mean);
    expect(w.winRate.hi).toBeGreaterThanOrEqual(w.winRate.mean);
    expect(report.items).toHaveLength(6);
    for (const [i, it] of report.items.entries()) {
      expect(it.prompt).toBe(examples[i].prompt);
      expect(it.reference).toBe(examples[i].response);
      expect(it.p).toBeCloseTo((it.pAB + 1 - it.pBA) / 2, 12);
      expect(it.rougeA).toBeCloseTo(rougeL(it.a, it.reference), 12);
      expect(it.scoreA).toBeGreaterThanOrEqual(0);
      expect(it.scoreA).toBeLessThanOrEqual(1);
      // Lengths in tokens of the judge's tokenizer (here the same as the models'), for both sides alike.
      expect(it.tokensA).toBe((await tok.encode(it.a, { addSpecialTokens: false })).length);
      expect(it.tokensB).toBe((await tok.encode(it.b, { addSpecialTokens: false })).length);
    }
    expect(report.a.rougeL.n).toBe(6);
    expect(report.a.lengthChars.max).toBe(Math.max(...report.items.map((it: { a: string }) => it.a.length)));
    expect(report.settings).toMatchObject({ temperature: 0, judgeTemplate: 'hh' });
    const md = fs.readFileSync(path.join(out, 'eval.md'), 'utf8');
    expect(r.stdout).toBe(md);
    expect(md).toMatch(/\| win rate of A \(ties count half\) \| \d+\.\d% \[\d+\.\d%, \d+\.\d%\] \|/);
    expect(md).toMatch(/\| ROUGE-L F1 vs references \| [0-9.]+ \[/);
    expect(md).toMatch(/\| task score \|/);
    expect(md).toMatch(/\| length, tokens \(mean \/ median \/ p90 \/ max\) \|/);
    expect(md).toContain(`- A: model ${modelA}`);
  });

  it('osp eval reads a responses file matched by prompt: greedy responses of model A against model A itself tie everywhere', async () => {
    const responses = path.join(root, 'greedy.jsonl');
    // Written in a shuffled order: eval matches by prompt, not by line.
    expect((await run(['generate', '--model', modelA, '--prompts', promptsOnly, '--out', responses, '--temperature', '0', '--max-new-tokens', '6', '--device', 'cpu'])).code).toBe(0);
    fs.writeFileSync(responses, fs.readFileSync(responses, 'utf8').trim().split('\n').reverse().join('\n') + '\n');
    const out = path.join(root, 'eval-file');
    const r = await run(['eval', '--a', responses, '--b', modelA, '--judge', modelB, '--prompts', promptsOnly, '--out', out, '--max-new-tokens', '6', '--device', 'cpu']);
    expect(r.code).toBe(0);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'eval.json'), 'utf8'));
    for (const it of report.items) {
      expect(it.a).toBe(it.b);
      expect(it.p).toBeCloseTo(0.5, 12); // the same response in both places: (pAB + 1 - pAB) / 2
      expect(it.outcome).toBe('tie');
    }
    expect(report.winRate).toMatchObject({ wins: 0, ties: 6, losses: 0 });
    expect(report.winRate.winRate.mean).toBe(0.5);
    expect(report.a.rougeL).toBeNull();
    expect(report.a.lengthTokens).toEqual(report.b.lengthTokens);
    expect(r.stdout).toContain(`- A: responses ${responses}`);
    expect(r.stdout).not.toMatch(/ROUGE-L/);
  });

  it('eval.md escapes the names of A and B: a file name cannot add table cells, links or HTML', async () => {
    const weird = path.join(root, 'a|b_[x](y)<i>.jsonl');
    fs.copyFileSync(path.join(root, 'greedy.jsonl'), weird);
    const out = path.join(root, 'eval-weird');
    const r = await run(['eval', '--a', weird, '--b', modelA, '--judge', modelB, '--prompts', promptsOnly, '--out', out, '--max-new-tokens', '6', '--device', 'cpu']);
    expect(r.code).toBe(0);
    const md = fs.readFileSync(path.join(out, 'eval.md'), 'utf8');
    expect(md).toContain(`- A: responses ${root}/a\\|b\\_\\[x\\]\\(y\\)\\<i\\>.jsonl`);
    expect(md).not.toContain('a|b_[x](y)<i>');
  });

  describe('refuses bad settings before any work, with exit code 2 and one line naming the flag', () => {
    const cases: [string, () => string[], RegExp][] = [
      ['a missing --a', () => ['eval', '--a', path.join(root, 'nope'), '--b', modelB, '--judge', modelA, '--prompts', data, '--out', path.join(root, 'x')], /^osp: --a .*nope: no such folder or file/],
      ['a --b file that is not .jsonl', () => ['eval', '--a', modelA, '--b', data.replace('.jsonl', '.txt'), '--judge', modelA, '--prompts', data, '--out', path.join(root, 'x')], /^osp: --b .*sft\.txt: expected a model folder or a responses \.jsonl/],
      ['an unknown template file', () => ['eval', '--a', modelA, '--b', modelB, '--judge', modelA, '--prompts', data, '--out', path.join(root, 'x'), '--template', path.join(root, 'none.txt')], /^osp: --template .*none\.txt: no such file/],
      ['a negative temperature', () => ['eval', '--a', modelA, '--b', modelB, '--judge', modelA, '--prompts', data, '--out', path.join(root, 'x'), '--temperature', '-1'], /^osp: --temperature: expected a number >= 0 \(got "-1"\)/],
      ['a judge max length shorter than the template', () => ['eval', '--a', modelA, '--b', modelB, '--judge', modelA, '--prompts', data, '--out', path.join(root, 'x'), '--judge-max-length', '5'], /^osp: --judge-max-length 5: the judge template alone is \d+ tokens/],
      ['--references with prompt-only data', () => ['eval', '--a', modelA, '--b', modelB, '--judge', modelA, '--prompts', promptsOnly, '--out', path.join(root, 'x'), '--references'], /^osp: --references: /],
      ['a judge folder without tokenizer.json', () => ['eval', '--a', modelA, '--b', modelB, '--judge', path.join(root, 'notok'), '--prompts', data, '--out', path.join(root, 'x')], /^osp: --judge .*notok: no tokenizer\.json/],
      ['a responses file missing a prompt', () => ['eval', '--a', path.join(root, 'partial.jsonl'), '--b', modelB, '--judge', modelA, '--prompts', data, '--out', path.join(root, 'x')], /^osp: --a .*partial\.jsonl: no response for prompt 1 /],
      ['generate with --k 0', () => ['generate', '--model', modelA, '--prompts', data, '--out', path.join(root, 'o.jsonl'), '--k', '0'], /^osp: --k: expected an integer >= 1/],
      ['generate to a file that is not .jsonl', () => ['generate', '--model', modelA, '--prompts', data, '--out', path.join(root, 'o.txt')], /^osp: --out: expected a file name ending in \.jsonl/],
      ['generate with a top-p of 0 from a config file', () => ['generate', '--model', modelA, '--prompts', data, '--out', path.join(root, 'o.jsonl'), '--config', path.join(root, 'bad.json')], /^osp: --top-p: expected a number in \(0, 1\] \(got 0\)/],
      ['generate without --model', () => ['generate', '--prompts', data, '--out', path.join(root, 'o.jsonl')], /^osp: --model: expected a model folder/],
      ['a missing prompts file', () => ['generate', '--model', modelA, '--prompts', path.join(root, 'absent.jsonl'), '--out', path.join(root, 'o.jsonl')], /^osp: --prompts .*absent\.jsonl: no such file/],
    ];
    beforeAll(() => {
      fs.mkdirSync(path.join(root, 'notok'), { recursive: true });
      for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(modelA, f), path.join(root, 'notok', f));
      fs.writeFileSync(path.join(root, 'partial.jsonl'), JSON.stringify({ prompt: examples[0].prompt, response: ' 1 2' }) + '\n');
      fs.writeFileSync(path.join(root, 'bad.json'), JSON.stringify({ 'top-p': 0 }));
      fs.copyFileSync(data, data.replace('.jsonl', '.txt'));
    });

    it.each(cases)('%s', async (_, args, message) => {
      const r = await run(args());
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(fs.existsSync(path.join(root, 'x'))).toBe(false);
      expect(fs.existsSync(path.join(root, 'o.jsonl'))).toBe(false);
    });
  });
});
