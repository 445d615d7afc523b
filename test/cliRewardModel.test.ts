// osp reward-model end to end on the tiny demo model and data: it trains with the held-out accuracy
// in metrics.jsonl; stopped by Ctrl-C after step 2 of 4 and resumed it gives the uninterrupted run's
// metrics and final weights; final/ is a LlamaForSequenceClassification folder that RewardModel
// loads (a PEFT SEQ_CLS folder with --lora); --dry-run prints the plan; and osp eval --reward-model
// reports the mean rewards and the win rate by reward, with or without a judge, naming each scorer.
import * as fs from 'fs';
import * as path from 'path';
import { RewardModel } from '../src/model/rewardModel';
import { readSafetensors } from '../src/model/safetensors';
import { TinyRun, ctrlCAfterStep, makeTinyRun, osp, readJsonl, readMetrics, withoutTimings } from './helpers/tinyRun';

let tiny: TinyRun;
beforeAll(async () => {
  tiny = await makeTinyRun({ size: 24 });
});
afterAll(() => tiny.cleanup());
afterEach(() => jest.restoreAllMocks());

const flags = (out: string, ...more: string[]) => ['reward-model', '--model', tiny.model, '--pairs', tiny.pairs, '--out', out, '--steps', '4', '--save-every', '2', '--eval-every', '2', '--seed', '3', '--batch-size', '4', '--micro-batch', '2', '--lr', '1e-2', '--eval-fraction', '0.25', '--device', 'cpu', ...more];

describe('osp reward-model', () => {
  let whole: string;
  beforeAll(async () => {
    whole = tiny.out('rm-whole');
    const r = await osp(...flags(whole));
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
  });

  test('trains: training accuracy every step, held-out accuracy and loss every --eval-every steps and at the end', () => {
    const m = readMetrics(whole);
    expect(m.map((x) => x.step)).toEqual([1, 2, 3, 4]);
    for (const x of m) {
      expect(x.accuracy).toBeGreaterThanOrEqual(0);
      expect(x.accuracy).toBeLessThanOrEqual(1);
      expect(Number.isFinite(x.loss)).toBe(true);
    }
    expect(m.filter((x) => x.evalAccuracy !== undefined).map((x) => x.step)).toEqual([2, 4]);
    // One read of the device per training step (the held-out scoring of steps 2 and 4 reads once per micro-batch more).
    expect([m[0].hostWaitsTrain, m[2].hostWaitsTrain]).toEqual([1, 1]);
    expect(m[3].evalLoss).toBeGreaterThan(0);
    const config = JSON.parse(fs.readFileSync(path.join(whole, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ command: 'reward-model', dataRecords: 24, trainPairs: 18, heldOutPairs: 6, totalSteps: 4 });
  });

  test('final/ is a LlamaForSequenceClassification folder that RewardModel loads and scores', async () => {
    const final = path.join(whole, 'final');
    const cfg = JSON.parse(fs.readFileSync(path.join(final, 'config.json'), 'utf8'));
    expect(cfg.architectures).toEqual(['LlamaForSequenceClassification']);
    expect(cfg.num_labels).toBe(1);
    const names = Array.from(readSafetensors(path.join(final, 'model.safetensors')).keys());
    expect(names).toContain('score.weight');
    expect(names).not.toContain('lm_head.weight');
    const rm = await RewardModel.load(final, { device: 'cpu' });
    const pairs = readJsonl<{ prompt: string; chosen: string; rejected: string }>(tiny.pairs).slice(0, 4);
    const r = await rm.rewards(pairs.map((p) => p.prompt), pairs.map((p) => p.chosen), { microBatch: 3 });
    expect(r.length).toBe(4);
    expect(r.every(Number.isFinite)).toBe(true);
    expect(new Set(r).size).toBe(4);
    rm.dispose();
  });

  test('stopped after step 2 of 4 and resumed gives the same metrics and final weights', async () => {
    const parts = tiny.out('rm-parts');
    ctrlCAfterStep(2);
    const stopped = await osp(...flags(parts));
    jest.restoreAllMocks();
    expect(stopped.code).toBe(130);
    expect(fs.existsSync(path.join(parts, 'checkpoints', 'step-00000002', 'model', 'config.json'))).toBe(true);
    const resumed = await osp('reward-model', '--resume', parts);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain('from step-00000002 (step 2 of 4)');
    expect(readMetrics(parts).map(withoutTimings)).toEqual(readMetrics(whole).map(withoutTimings));
    // Nontrivial: the steps after the resume moved the model.
    expect(readMetrics(whole)[3].gradNorm).toBeGreaterThan(0);
    expect(fs.readFileSync(path.join(parts, 'final', 'model.safetensors'))).toEqual(fs.readFileSync(path.join(whole, 'final', 'model.safetensors')));
  });

  test('with --lora: final/ is a PEFT SEQ_CLS adapter with the score head, loaded on its base; resume is exact', async () => {
    const out = tiny.out('rm-lora');
    const lora = ['--lora', 'r=2,alpha=4,targets=q,v'];
    ctrlCAfterStep(2);
    expect((await osp(...flags(out, ...lora))).code).toBe(130);
    jest.restoreAllMocks();
    expect((await osp('reward-model', '--resume', out)).code).toBe(0);
    const straight = tiny.out('rm-lora-whole');
    expect((await osp(...flags(straight, ...lora))).code).toBe(0);
    expect(readMetrics(out).map(withoutTimings)).toEqual(readMetrics(straight).map(withoutTimings));
    const final = path.join(out, 'final');
    const cfg = JSON.parse(fs.readFileSync(path.join(final, 'adapter_config.json'), 'utf8'));
    expect(cfg).toMatchObject({ peft_type: 'LORA', task_type: 'SEQ_CLS', modules_to_save: ['score'], base_model_name_or_path: tiny.model });
    expect(Array.from(readSafetensors(path.join(final, 'adapter_model.safetensors')).keys())).toContain('base_model.model.score.weight');
    const rm = await RewardModel.load(final, { device: 'cpu' });
    expect(rm.backbone.adapter).not.toBeNull();
    const r = await rm.rewards(['3 1 2'], ['1 2 3']);
    expect(Number.isFinite(r[0])).toBe(true);
    rm.dispose();
  });

  test('--dry-run prints the memory plan and writes nothing', async () => {
    const chunks: string[] = [];
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => {
      chunks.push(String(c));
      return true;
    });
    const out = tiny.out('rm-dry');
    const r = await osp(...flags(out, '--dry-run'));
    spy.mockRestore();
    expect(r.code).toBe(0);
    expect(chunks.join('')).toContain('memory plan: osp reward-model');
    expect(fs.existsSync(out)).toBe(false);
  });

  test('a pairs file with one usable pair is refused, naming --pairs', async () => {
    const one = path.join(tiny.root, 'one-pair.jsonl');
    fs.writeFileSync(one, `${fs.readFileSync(tiny.pairs, 'utf8').split('\n')[0]}\n`);
    const r = await osp('reward-model', '--model', tiny.model, '--pairs', one, '--out', tiny.out('rm-one'), '--device', 'cpu');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--pairs .*one-pair\.jsonl: 1 usable pair\(s\); a reward model needs at least 2/);
  });

  describe('osp eval --reward-model', () => {
    const evalFlags = (out: string, ...more: string[]) => ['eval', '--a', tiny.sft, '--b', tiny.model, '--prompts', tiny.sft, '--format', 'sft', '--out', out, '--max-new-tokens', '6', '--device', 'cpu', ...more];

    test('without a judge: mean rewards of A and B and the win rate by reward, the scorer named', async () => {
      const out = tiny.out('eval-rm');
      const final = path.join(whole, 'final');
      const r = await osp(...evalFlags(out, '--reward-model', final));
      expect(r.stderr).not.toMatch(/osp: /);
      expect(r.code).toBe(0);
      const report = JSON.parse(fs.readFileSync(path.join(out, 'eval.json'), 'utf8'));
      expect(report.scorers).toEqual({ judge: null, rewardModel: final });
      expect(report.winRate).toBeNull();
      const rm = report.rewardModel;
      expect(rm.scorer).toBe(final);
      expect(rm.n).toBe(24);
      expect(rm.wins + rm.ties + rm.losses).toBe(24);
      expect(rm.winRate.mean).toBeCloseTo((rm.wins + rm.ties / 2) / 24, 12);
      // The numbers are the reward model's: recompute A's mean reward directly.
      const model = await RewardModel.load(final, { device: 'cpu' });
      const items = report.items as { prompt: string; a: string; rewardA: number; rewardB: number; rewardOutcome: string }[];
      const direct = await model.rewards(items.map((i) => i.prompt), items.map((i) => i.a));
      model.dispose();
      items.forEach((it, i) => expect(it.rewardA).toBe(direct[i]));
      expect(rm.meanA.mean).toBeCloseTo(Array.from(direct).reduce((s, v) => s + v, 0) / 24, 10);
      items.forEach((it) => expect(it.rewardOutcome).toBe(it.rewardA > it.rewardB + 1e-6 ? 'win' : it.rewardA < it.rewardB - 1e-6 ? 'loss' : 'tie'));
      const md = fs.readFileSync(path.join(out, 'eval.md'), 'utf8');
      expect(md).toContain(`- reward model: ${final}`);
      expect(md).toContain('- judge: none');
      expect(md).toContain('| mean reward of A |');
      expect(md).not.toContain('by the judge');
    });

    test('with a judge too: both scorers side by side', async () => {
      const out = tiny.out('eval-rm-judge');
      const final = path.join(whole, 'final');
      const r = await osp(...evalFlags(out, '--reward-model', final, '--judge', tiny.model));
      expect(r.code).toBe(0);
      const report = JSON.parse(fs.readFileSync(path.join(out, 'eval.json'), 'utf8'));
      expect(report.scorers).toEqual({ judge: tiny.model, rewardModel: final });
      expect(report.winRate.n).toBe(24);
      expect(report.rewardModel.n).toBe(24);
      const md = fs.readFileSync(path.join(out, 'eval.md'), 'utf8');
      expect(md).toContain('head to head, by the judge');
      expect(md).toContain('head to head, by the reward model');
    });

    test('neither --judge nor --reward-model, or a causal LM as --reward-model, is a usage error', async () => {
      const none = await osp(...evalFlags(tiny.out('eval-none')));
      expect(none.code).toBe(2);
      expect(none.stderr).toMatch(/--judge: expected the judge model folder, a --reward-model folder, or both/);
      const causal = await osp(...evalFlags(tiny.out('eval-causal'), '--reward-model', tiny.model));
      expect(causal.code).toBe(2);
      expect(causal.stderr).toMatch(/--reward-model .*: config.json names no ForSequenceClassification architecture/);
    });
  });
});
