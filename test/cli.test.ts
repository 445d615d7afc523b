// End-to-end: every training command runs in-process through main([...]) on a tiny model for a few
// steps on the cpu and leaves a complete run folder: config.json (the resolved settings),
// metrics.jsonl (one line per step with the fields of its mode), samples.jsonl (online modes),
// checkpoints/step-N/{model/, optimizer.safetensors, state.json} and checkpoints/latest,
// report.html, and final/ (a Hugging Face folder LlamaModel.load reads).
import * as fs from 'fs';
import * as path from 'path';
import { LlamaModel } from '../src/model/llama';
import { readSafetensors } from '../src/model/safetensors';
import { TinyRun, FAST_ONLINE, osp, readJsonl, readMetrics, tinyRun } from './helpers/tinyRun';

let tiny: TinyRun;
beforeAll(async () => {
  tiny = await tinyRun();
});
afterAll(() => tiny.cleanup());

const ONLINE_FIELDS = [
  'step', 'epoch', 'lr', 'gradNorm', 'loss', 'pHatMean', 'targetMean', 'absErrorMean', 'marginMean',
  'chosenLogprobMean', 'rejectedLogprobMean', 'refChosenLogprobMean', 'refRejectedLogprobMean',
  'klEstimate', 'responseLengthMean', 'judgeDisagreementMean', 'pairs', 'samples', 'hostWaits', 'hostWaitsTrain',
];
const OFFLINE_FIELDS = [
  'step', 'epoch', 'lr', 'gradNorm', 'loss', 'pHatMean', 'targetMean', 'absErrorMean', 'marginMean',
  'chosenLogprobMean', 'rejectedLogprobMean', 'refChosenLogprobMean', 'refRejectedLogprobMean', 'pairs', 'hostWaits', 'hostWaitsTrain',
];
const SFT_FIELDS = ['step', 'epoch', 'lr', 'gradNorm', 'loss', 'hostWaits', 'hostWaitsTrain'];

/** Checks the folder layout every finished run shares; returns the metrics lines. */
async function expectCompleteRun(out: string, o: { command: string; steps: number; batchSize: number; saveEvery: number; fields: string[]; absent?: string[] }) {
  const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
  expect(config.command).toBe(o.command);
  expect(config.settings).toMatchObject({ steps: o.steps, batchSize: o.batchSize, saveEvery: o.saveEvery, seed: 0, device: 'cpu' });
  expect(config.totalSteps).toBe(o.steps);

  const metrics = readMetrics(out);
  expect(metrics.map((m) => m.step)).toEqual(Array.from({ length: o.steps }, (_, i) => i + 1));
  for (const m of metrics) {
    for (const f of o.fields) {
      expect(typeof (m as unknown as Record<string, unknown>)[f]).toBe('number');
      expect(Number.isFinite((m as unknown as Record<string, number>)[f])).toBe(true);
    }
    for (const f of o.absent ?? []) expect(m).not.toHaveProperty(f);
    // The training part of every step waits on the device once: the one read of its values.
    expect(m.hostWaitsTrain).toBe(1);
  }

  // Checkpoints at every saveEvery and at the end; `latest` names the last.
  const ckptRoot = path.join(out, 'checkpoints');
  const expected = [...new Set([...Array.from({ length: Math.floor(o.steps / o.saveEvery) }, (_, i) => (i + 1) * o.saveEvery), o.steps])].slice(-2);
  const names = expected.map((s) => `step-${String(s).padStart(8, '0')}`);
  expect(fs.readdirSync(ckptRoot).filter((n) => n.startsWith('step-')).sort()).toEqual(names);
  expect(fs.readFileSync(path.join(ckptRoot, 'latest'), 'utf8').trim()).toBe(names[names.length - 1]);
  for (const [i, name] of names.entries()) {
    const dir = path.join(ckptRoot, name);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) expect(fs.existsSync(path.join(dir, 'model', f))).toBe(true);
    const state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8'));
    expect(state).toMatchObject({ step: expected[i], dataPosition: expected[i] * o.batchSize, seed: 0 });
    const opt = readSafetensors(path.join(dir, 'optimizer.safetensors'));
    expect(opt.size).toBeGreaterThan(0);
  }

  expect(fs.readFileSync(path.join(out, 'report.html'), 'utf8')).toMatch(/<html/i);

  const final = await LlamaModel.load(path.join(out, 'final'), { device: 'cpu', dtype: 'f32' });
  try {
    expect(final.config.hiddenSize).toBe(32);
    expect(fs.existsSync(path.join(out, 'final', 'tokenizer.json'))).toBe(true);
    // final/ holds the weights of the last step, the same as the last checkpoint's.
    const last = readSafetensors(path.join(ckptRoot, names[names.length - 1], 'model', 'model.safetensors'));
    const w = final.parameters().get('model.norm.weight')!;
    expect(Array.from(w.toArray())).toEqual(Array.from(last.get('model.norm.weight')!.data as Float32Array));
  } finally {
    final.dispose();
  }
  return metrics;
}

describe('osp train (online self-preferring)', () => {
  test('runs 3 steps and writes config, metrics, samples, checkpoints, report and final model', async () => {
    const out = tiny.out('train');
    const r = await osp('train', '--model', tiny.model, '--prompts', tiny.prompts, '--out', out, '--steps', '3', '--save-every', '2', ...FAST_ONLINE, '--k', '4');
    expect(r).toEqual({ code: 0, stderr: expect.stringContaining('done: 3 steps') });
    const metrics = await expectCompleteRun(out, { command: 'train', steps: 3, batchSize: 2, saveEvery: 2, fields: ONLINE_FIELDS });
    const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(config.settings).toMatchObject({ loss: 'spce', pairing: 'ranked', sampling: 'policy', k: 4, beta: 0.001, maxNewTokens: 6, model: tiny.model, prompts: tiny.prompts });
    // K = 4 responses per prompt -> 2 pairs per prompt.
    for (const m of metrics) expect(m).toMatchObject({ pairs: 4, samples: 8 });

    const samples = readJsonl<{ step: number; prompt: string; responses: { text: string; tokens: number; blankScore: number | null }[]; pairs: { chosen: number; rejected: number; target: number; pHat: number; margin: number }[] }>(path.join(out, 'samples.jsonl'));
    expect(samples.map((s) => s.step)).toEqual([1, 1, 2, 2, 3, 3]);
    const prompts = new Set(readJsonl<{ prompt: string }>(tiny.prompts).map((p) => p.prompt));
    for (const s of samples) {
      expect(prompts.has(s.prompt)).toBe(true);
      expect(s.responses).toHaveLength(4);
      for (const resp of s.responses) {
        expect(typeof resp.text).toBe('string');
        expect(resp.tokens).toBeLessThanOrEqual(6);
        expect(resp.blankScore).toBeGreaterThanOrEqual(0);
        expect(resp.blankScore).toBeLessThanOrEqual(1);
      }
      expect(s.pairs).toHaveLength(2);
      for (const p of s.pairs) {
        expect(p.chosen).not.toBe(p.rejected);
        // Pairs are oriented so that chosen is the judged winner.
        expect(p.target).toBeGreaterThanOrEqual(0.5);
        expect(p.target).toBeLessThanOrEqual(1);
        expect(p.pHat).toBeGreaterThan(0);
      }
    }
  });

  test('self-reward runs and writes the same run folder, one best-vs-worst pair per prompt', async () => {
    const out = tiny.out('self-reward');
    const r = await osp('self-reward', '--model', tiny.model, '--prompts', tiny.prompts, '--out', out, '--steps', '2', '--save-every', '1', ...FAST_ONLINE, '--k', '4');
    expect(r.code).toBe(0);
    const metrics = await expectCompleteRun(out, { command: 'self-reward', steps: 2, batchSize: 2, saveEvery: 1, fields: ONLINE_FIELDS });
    for (const m of metrics) expect(m).toMatchObject({ pairs: 2, samples: 8 });
    const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(config.settings.beta).toBe(0.1);
    // config.json says what ran: best vs worst with the DPO loss on the policy's samples.
    expect(config.settings).toMatchObject({ pairing: 'best-worst', loss: 'dpo', sampling: 'policy' });
    const samples = readJsonl<{ pairs: unknown[] }>(path.join(out, 'samples.jsonl'));
    expect(samples).toHaveLength(4);
    for (const s of samples) expect(s.pairs).toHaveLength(1);
  });
});

describe('osp dpo (offline pairs)', () => {
  test.each(['dpo', 'ipo', 'spce'])('--loss %s runs 3 steps and writes the run folder without samples', async (loss) => {
    const out = tiny.out(`dpo-${loss}`);
    const r = await osp('dpo', '--model', tiny.model, '--pairs', tiny.pairs, '--loss', loss, '--out', out, '--steps', '3', '--save-every', '2', '--batch-size', '4', '--micro-batch', '2', '--lr', '1e-3', '--device', 'cpu');
    expect(r.code).toBe(0);
    const metrics = await expectCompleteRun(out, { command: 'dpo', steps: 3, batchSize: 4, saveEvery: 2, fields: OFFLINE_FIELDS, absent: ['klEstimate', 'responseLengthMean'] });
    expect(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).settings).toMatchObject({ loss, labels: 'data', beta: 0.1 });
    expect(fs.existsSync(path.join(out, 'samples.jsonl'))).toBe(false);
    for (const m of metrics) expect(m.pairs).toBe(4);
    // The policy starts as the reference: margin 0 at step 1.
    expect(metrics[0].marginMean).toBeCloseTo(0, 12);
    expect(metrics[0].pHatMean).toBeCloseTo(0.5, 12);
    if (loss === 'dpo') {
      expect(metrics[0].loss).toBeCloseTo(Math.log(2), 10);
      for (const m of metrics) expect(m.targetMean).toBe(1);
    }
    if (loss === 'ipo') expect(metrics[0].loss).toBeCloseTo((1 / (2 * 0.1)) ** 2, 8);
    if (loss === 'spce') {
      const strengths = readJsonl<{ strength: number }>(tiny.pairs).map((p) => Math.max(p.strength, 1 - p.strength));
      for (const m of metrics) {
        expect(m.targetMean).toBeGreaterThanOrEqual(Math.min(...strengths) - 1e-12);
        expect(m.targetMean).toBeLessThan(1);
      }
    }
  });
});

describe('osp sft and osp augment', () => {
  test('sft runs 3 steps and writes the run folder; the loss is the masked next-token loss', async () => {
    const out = tiny.out('sft');
    const r = await osp('sft', '--model', tiny.model, '--data', tiny.sft, '--out', out, '--steps', '3', '--save-every', '2', '--batch-size', '4', '--micro-batch', '2', '--lr', '1e-2', '--device', 'cpu');
    expect(r.code).toBe(0);
    const metrics = await expectCompleteRun(out, { command: 'sft', steps: 3, batchSize: 4, saveEvery: 2, fields: SFT_FIELDS, absent: ['pHatMean', 'pairs'] });
    // An untrained model over ~226 tokens: the first loss is about log(vocabulary).
    expect(metrics[0].loss).toBeGreaterThan(Math.log(226) - 0.5);
    expect(metrics[0].loss).toBeLessThan(Math.log(226) + 0.5);
    expect(fs.existsSync(path.join(out, 'samples.jsonl'))).toBe(false);
  });

  test('augment runs 2 steps on judge instructions (two per pair) and writes the run folder', async () => {
    const out = tiny.out('augment');
    const r = await osp('augment', '--model', tiny.model, '--pairs', tiny.pairs, '--out', out, '--steps', '2', '--save-every', '5', '--batch-size', '4', '--micro-batch', '4', '--device', 'cpu');
    expect(r.code).toBe(0);
    await expectCompleteRun(out, { command: 'augment', steps: 2, batchSize: 4, saveEvery: 5, fields: SFT_FIELDS, absent: ['pHatMean'] });
    const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    const strengths = readJsonl<{ strength: number }>(tiny.pairs).map((p) => p.strength);
    expect(config.examples).toBe(2 * strengths.filter((s) => s !== 0.5).length);
  });
});
