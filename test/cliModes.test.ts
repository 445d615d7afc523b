// The online trainer wires the right pieces for each loss / pairing / sampling mode (spies on the
// step functions it calls, and the run's samples.jsonl / metrics.jsonl), and a short cpu run of
// `osp train` shows the SPCE loss and the mean |pHat - target| falling.
import * as fs from 'fs';
import * as path from 'path';
import * as generateModule from '../src/generate/generate';
import * as pairing from '../src/judge/pairing';
import { LlamaModel } from '../src/model/llama';
import * as steps from '../src/osp/objective';
import { TinyRun, FAST_ONLINE, mean, osp, readJsonl, readMetrics, tinyConfig, tinyRun } from './helpers/tinyRun';

let tiny: TinyRun;
beforeAll(async () => {
  tiny = await tinyRun();
});
afterAll(() => tiny.cleanup());
afterEach(() => jest.restoreAllMocks());

interface SampleLine {
  step: number;
  responses: { text: string; blankScore: number | null }[];
  pairs: { chosen: number; rejected: number; target: number; pHat: number; margin: number }[];
}

const softplus = (z: number) => Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z)));

/** Runs `osp <command>` for 3 steps with spies on preferenceStep, judgePairsBatch and generate. */
async function spiedRun(command: 'train' | 'self-reward', flags: string[]) {
  const pref = jest.spyOn(steps, 'preferenceStep');
  const judge = jest.spyOn(pairing, 'judgePairsBatch');
  const gen = jest.spyOn(generateModule, 'generate');
  const out = tiny.out(command);
  const r = await osp(command, '--model', tiny.model, '--prompts', tiny.prompts, '--out', out, '--steps', '3', '--save-every', '10', ...FAST_ONLINE, '--k', '4', '--lr', '1e-2', '--beta', '0.5', '--temperature', '1', ...flags);
  expect(r.code).toBe(0);
  expect(pref).toHaveBeenCalledTimes(3);
  return { out, pref, judge, gen, samples: readJsonl<SampleLine>(path.join(out, 'samples.jsonl')), metrics: readMetrics(out) };
}

describe('osp train: --loss', () => {
  test.each(['spce', 'dpo', 'ipo'] as const)('--loss %s trains with that loss on the judged pairs', async (loss) => {
    const { pref, samples, metrics } = await spiedRun('train', ['--loss', loss]);
    for (const call of pref.mock.calls) {
      expect(call[3]).toMatchObject({ loss, beta: 0.5, microBatch: 4 });
      // The pairs carry the judged soft targets (oriented to >= 0.5) whatever the loss: DPO and IPO ignore them.
      expect(call[2]).toHaveLength(4);
      for (const p of call[2]) expect(p.target).toBeGreaterThanOrEqual(0.5);
    }
    // The logged loss is the named loss of the logged margins (and targets) of each step's pairs.
    for (const m of metrics) {
      const pairs = samples.filter((s) => s.step === m.step).flatMap((s) => s.pairs);
      const perPair = pairs.map((p) => (loss === 'spce' ? softplus(p.margin) - p.target * p.margin : loss === 'dpo' ? softplus(-p.margin) : (p.margin / 0.5 - 1 / (2 * 0.5)) ** 2));
      expect(m.loss).toBeCloseTo(mean(perPair), 9);
      expect(m.targetMean).toBeCloseTo(mean(pairs.map((p) => p.target)), 12);
    }
    // After the first update the margins are not 0, so the three losses really differ.
    expect(samples.filter((s) => s.step > 1).some((s) => s.pairs.some((p) => Math.abs(p.margin) > 1e-4))).toBe(true);
  });
});

describe('osp train: --pairing', () => {
  test('ranked (the default) pairs highest with lowest blank score, second with third', async () => {
    const { judge, samples } = await spiedRun('train', []);
    for (const call of judge.mock.calls) expect(call[2]).toMatchObject({ mode: 'ranked' });
    for (const s of samples) {
      const scores = s.responses.map((r) => r.blankScore as number);
      for (const v of scores) expect(typeof v).toBe('number');
      const byScore = scores.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0]).map((x) => x[1]);
      const asSets = s.pairs.map((p) => [p.chosen, p.rejected].sort().join(','));
      expect(asSets.sort()).toEqual([[byScore[0], byScore[3]], [byScore[1], byScore[2]]].map((p) => p.sort().join(',')).sort());
    }
  });

  test('random pairs the responses by the step seed, with no blank-response scores', async () => {
    const { judge, samples } = await spiedRun('train', ['--pairing', 'random']);
    for (const call of judge.mock.calls) expect(call[2]).toMatchObject({ mode: 'random', seed: expect.any(Number) });
    const seeds = new Set(judge.mock.calls.map((c) => c[2]!.seed));
    expect(seeds.size).toBe(3);
    for (const s of samples) {
      for (const r of s.responses) expect(r.blankScore).toBeNull();
      // Every response is in exactly one pair (K = 4 -> 2 disjoint pairs).
      expect(s.pairs.flatMap((p) => [p.chosen, p.rejected]).sort()).toEqual([0, 1, 2, 3]);
    }
  });
});

describe('osp train: --sampling', () => {
  test('policy (the default) samples from the model being trained', async () => {
    const { pref, gen } = await spiedRun('train', []);
    expect(gen).toHaveBeenCalledTimes(3);
    gen.mock.calls.forEach((c, i) => expect(c[0]).toBe(pref.mock.calls[i][0]));
  });

  test('sft samples from the frozen reference model, not the policy', async () => {
    const { pref, gen } = await spiedRun('train', ['--sampling', 'sft']);
    expect(gen).toHaveBeenCalledTimes(3);
    gen.mock.calls.forEach((c, i) => {
      expect(c[0]).toBe(pref.mock.calls[i][1]); // the reference
      expect(c[0]).not.toBe(pref.mock.calls[i][0]);
    });
  });

  test('sft sampling gives the same responses as an untrained policy would (the frozen model, the same step seeds)', async () => {
    // --lr tiny vs large: with --sampling sft the samples cannot depend on the updates.
    const a = await spiedRun('train', ['--sampling', 'sft', '--lr', '1e-1']);
    jest.restoreAllMocks();
    const b = await spiedRun('train', ['--sampling', 'sft', '--lr', '1e-6']);
    expect(a.samples.map((s) => s.responses.map((r) => r.text))).toEqual(b.samples.map((s) => s.responses.map((r) => r.text)));
    jest.restoreAllMocks();
    // On-policy sampling draws the same first step (same weights, same seed), then follows the updates.
    const c = await spiedRun('train', ['--sampling', 'policy', '--lr', '1e-1']);
    const texts = (x: { samples: SampleLine[] }, step: number) => x.samples.filter((s) => s.step === step).map((s) => s.responses.map((r) => r.text));
    expect(texts(c, 1)).toEqual(texts(a, 1));
    expect([texts(c, 2), texts(c, 3)]).not.toEqual([texts(a, 2), texts(a, 3)]);
  });
});

describe('osp self-reward', () => {
  test('trains with the DPO loss on one best-vs-worst pair per prompt', async () => {
    const { pref, judge, samples, metrics } = await spiedRun('self-reward', []);
    for (const call of judge.mock.calls) expect(call[2]).toMatchObject({ mode: 'best-worst' });
    for (const call of pref.mock.calls) {
      expect(call[3]).toMatchObject({ loss: 'dpo', beta: 0.5 });
      expect(call[2]).toHaveLength(2); // batch of 2 prompts, one pair each
    }
    for (const s of samples) {
      expect(s.pairs).toHaveLength(1);
      const scores = s.responses.map((r) => r.blankScore as number);
      const best = scores.indexOf(Math.max(...scores));
      const worst = scores.indexOf(Math.min(...scores));
      expect([s.pairs[0].chosen, s.pairs[0].rejected].sort()).toEqual([best, worst].sort());
    }
    for (const m of metrics) {
      const pairs = samples.filter((s) => s.step === m.step).flatMap((s) => s.pairs);
      expect(m.loss).toBeCloseTo(mean(pairs.map((p) => softplus(-p.margin))), 9);
    }
  });
});

describe('a short cpu run of osp train learns the judged soft preferences', () => {
  test('the SPCE loss and mean |pHat - target| of the last 4 of 16 steps are below those of the first 4', async () => {
    // What makes this robust on a 2-layer model: one-token responses sampled from the frozen
    // reference (--sampling sft; on-policy sampling on so small a model collapses to identical
    // responses, whose pairs teach nothing) of a model peaked enough (init std 0.6) that the same
    // few responses recur, so pairs recur; one prompt; and a separate frozen judge (init std 2) with
    // a short template, so that its targets are far from 0.5 (a random model judging the long hh
    // template has almost only position bias, which the two orders cancel). Checked over sampling
    // seeds 0..7 when written; the run itself is deterministic on the cpu.
    const root = tiny.out('learning');
    const model = path.join(root, 'policy');
    const judge = path.join(root, 'judge');
    fs.mkdirSync(root);
    const vocab = (JSON.parse(fs.readFileSync(path.join(tiny.model, 'config.json'), 'utf8')) as { vocab_size: number }).vocab_size;
    for (const [dir, seed, std] of [[model, 3, 0.6], [judge, 7, 2]] as const) {
      const m = LlamaModel.init(tinyConfig(vocab), { seed, dtype: 'f32', device: 'cpu', std });
      try {
        await m.save(dir, { tokenizerFrom: tiny.model });
      } finally {
        m.dispose();
      }
    }
    const prompts = path.join(root, 'prompts.jsonl');
    fs.writeFileSync(prompts, `${JSON.stringify({ prompt: 'Sort ascending: 3 1 2\nAnswer:' })}\n`.repeat(8));
    const template = path.join(root, 'judge.txt');
    fs.writeFileSync(template, '{prompt} A:{a} B:{b} RESPONSE');
    const out = path.join(root, 'run');
    const r = await osp('train', '--model', model, '--judge', judge, '--template', template, '--prompts', prompts, '--out', out,
      '--steps', '16', '--save-every', '100', '--batch-size', '4', '--micro-batch', '16', '--k', '4', '--max-new-tokens', '1',
      '--temperature', '1', '--sampling', 'sft', '--loss', 'spce', '--lr', '1e-3', '--beta', '1', '--seed', '0', '--device', 'cpu');
    expect(r.code).toBe(0);
    const metrics = readMetrics(out);
    expect(metrics).toHaveLength(16);
    expect(metrics[0].loss).toBeCloseTo(Math.log(2), 10); // the policy starts as the reference
    const first = (k: 'loss' | 'absErrorMean') => mean(metrics.slice(0, 4).map((m) => m[k] as number));
    const last = (k: 'loss' | 'absErrorMean') => mean(metrics.slice(-4).map((m) => m[k] as number));
    expect(last('loss')).toBeLessThan(first('loss') - 0.05);
    expect(last('loss')).toBeLessThan(Math.log(2));
    expect(last('absErrorMean')).toBeLessThan(0.75 * first('absErrorMean'));
    // The judge's targets are informative (far from 0.5), so falling error is learning, not collapse.
    expect(mean(metrics.map((m) => m.targetMean as number))).toBeGreaterThan(0.6);
  });
});

describe('--reference', () => {
  test('names the frozen reference: the SFT model by default (KL 0 at step 1), another folder when given (and shared with an equal --judge)', async () => {
    // A second model: the tiny one after one SFT step.
    const other = tiny.out('reference-sft');
    expect((await osp('sft', '--model', tiny.model, '--data', tiny.sft, '--out', other, '--steps', '1', '--batch-size', '2', '--lr', '1e-2', '--device', 'cpu')).code).toBe(0);
    const run = async (name: string, extra: string[]) => {
      const out = tiny.out(name);
      const load = jest.spyOn(LlamaModel, 'load');
      const r = await osp('train', '--model', tiny.model, '--prompts', tiny.prompts, '--out', out, '--steps', '1', ...FAST_ONLINE, '--k', '4', '--temperature', '1', ...extra);
      const loads = load.mock.calls.length;
      load.mockRestore();
      expect(r.code).toBe(0);
      return { metrics: readMetrics(out), config: JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')), loads };
    };
    const plain = await run('reference-default', []);
    expect(plain.metrics[0].klEstimate).toBe(0); // policy and reference are the same weights at step 1
    const given = await run('reference-given', ['--reference', path.join(other, 'final'), '--judge', path.join(other, 'final')]);
    expect(Math.abs(given.metrics[0].klEstimate as number)).toBeGreaterThan(0);
    expect(given.config.settings.reference).toBe(path.join(other, 'final'));
    expect(given.loads).toBe(2); // the policy, and one model serving as reference and judge
  });
});
