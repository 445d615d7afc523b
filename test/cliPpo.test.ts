// osp ppo end to end on the tiny demo model and data, against a tiny reward model made first with
// osp reward-model: every step's PPO metrics in metrics.jsonl (reward, KL, entropy, clip fraction,
// losses, approx KL, length), the host reads it counts (one per training micro-batch per epoch and
// the loop's one), final/ with its value head; with --lora and --adaptive-kl, stopped by Ctrl-C
// and resumed it gives the uninterrupted run's metrics (the KL coefficient included) and adapter;
// --dry-run prints the plan; a bad --reward-model is refused naming the flag. (Resume of the full
// fine-tuning run: test/cliResume.test.ts.)
import * as fs from 'fs';
import * as path from 'path';
import { readSafetensors } from '../src/model/safetensors';
import { TinyRun, ctrlCAfterStep, makeTinyRun, osp, readJsonl, readMetrics, withoutTimings } from './helpers/tinyRun';

let tiny: TinyRun;
let rm: string;
beforeAll(async () => {
  tiny = await makeTinyRun({ size: 16 });
  const rmRun = tiny.out('rm');
  const r = await osp('reward-model', '--model', tiny.model, '--pairs', tiny.pairs, '--out', rmRun, '--steps', '2', '--batch-size', '4', '--micro-batch', '4', '--lr', '1e-2', '--eval-fraction', '0.25', '--seed', '1', '--device', 'cpu');
  expect(r.code).toBe(0);
  rm = path.join(rmRun, 'final');
});
afterAll(() => tiny.cleanup());
afterEach(() => jest.restoreAllMocks());

/** 2 prompts x K 2 = 4 samples a step; mini-batches of 2, micro-batches of 2: 2 epochs x 2 updates. */
const flags = (out: string, ...more: string[]) => [
  'ppo', '--model', tiny.model, '--reward-model', rm, '--prompts', tiny.prompts, '--out', out, '--steps', '4', '--save-every', '2', '--seed', '4',
  '--batch-size', '2', '--k', '2', '--max-new-tokens', '6', '--micro-batch', '2', '--mini-batch', '2', '--ppo-epochs', '2', '--lr', '1e-2', '--temperature', '1', '--device', 'cpu', ...more,
];

describe('osp ppo', () => {
  let whole: string;
  beforeAll(async () => {
    whole = tiny.out('ppo-whole');
    const r = await osp(...flags(whole, '--scorer', 'demo'));
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
  });

  test('trains: the PPO metrics of every step, and the host reads they count', () => {
    const m = readMetrics(whole);
    expect(m.map((x) => x.step)).toEqual([1, 2, 3, 4]);
    for (const x of m) {
      for (const k of ['rewardMean', 'klEstimate', 'klPerTokenMean', 'entropyMean', 'policyLoss', 'valueLoss', 'approxKl', 'responseLengthMean', 'sampleScoreMean', 'gradNorm'] as const) {
        expect(Number.isFinite(x[k])).toBe(true);
      }
      expect(x.clipFraction).toBeGreaterThanOrEqual(0);
      expect(x.clipFraction).toBeLessThanOrEqual(1);
      expect(x.entropyMean).toBeGreaterThan(0);
      expect(x.samples).toBe(4);
      expect(x.ppoUpdates).toBe(4);
      expect(x.klCoef).toBe(0.05);
      // 2 epochs x 2 mini-batches x 1 micro-batch: one read each, then the loop's.
      expect(x.hostWaitsTrain).toBe(5);
    }
    // The policy moved away from the reference after the first step (a fresh rollout scores KL 0 at step 1).
    expect(m[0].klEstimate).toBe(0);
    expect(m.slice(1).some((x) => Math.abs(x.klEstimate as number) > 1e-6)).toBe(true);
    // The epochs after the first move the policy away from its rollout: ratios differ from 1.
    expect(m.every((x) => (x.approxKl as number) > 0)).toBe(true);
    const samples = readJsonl<{ step: number; responses: { reward: number; score: number }[] }>(path.join(whole, 'samples.jsonl'));
    expect(samples.map((s) => s.step)).toEqual([1, 1, 2, 2, 3, 3, 4, 4]);
    expect(samples[0].responses.length).toBe(2);
    expect(samples.every((s) => s.responses.every((r) => Number.isFinite(r.reward) && Number.isFinite(r.score)))).toBe(true);
    const config = JSON.parse(fs.readFileSync(path.join(whole, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ command: 'ppo', totalSteps: 4, settings: { klCoef: 0.05, gamma: 1, lam: 0.95, clipRange: 0.2, clipRangeValue: 0.2, vfCoef: 0.1, rewardModel: rm } });
  });

  test('final/ is the policy (a Hugging Face folder) with value_head.safetensors beside it', () => {
    const final = path.join(whole, 'final');
    expect(fs.existsSync(path.join(final, 'model.safetensors'))).toBe(true);
    const head = readSafetensors(path.join(final, 'value_head.safetensors'));
    expect(head.get('v_head.weight')?.shape).toEqual([1, 32]);
  });

  test('with --lora and --adaptive-kl: stopped after step 2 of 4 and resumed, the same metrics (KL coefficient included) and adapter', async () => {
    const more = ['--lora', 'r=2,alpha=4,targets=q,v', '--adaptive-kl', '--kl-target', '0.5', '--kl-horizon', '20'];
    const straight = tiny.out('ppo-lora-whole');
    expect((await osp(...flags(straight, ...more))).code).toBe(0);
    const parts = tiny.out('ppo-lora-parts');
    ctrlCAfterStep(2);
    expect((await osp(...flags(parts, ...more))).code).toBe(130);
    jest.restoreAllMocks();
    const resumed = await osp('ppo', '--resume', parts);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain('from step-00000002 (step 2 of 4)');
    const a = readMetrics(straight).map(withoutTimings);
    expect(readMetrics(parts).map(withoutTimings)).toEqual(a);
    // The controller moved the coefficient (KL below the target: it falls), and the resumed run continued from the saved one.
    expect(a[0].klCoef).toBe(0.05);
    expect(a[3].klCoef as number).toBeLessThan(a[1].klCoef as number);
    const final = path.join(parts, 'final');
    expect(JSON.parse(fs.readFileSync(path.join(final, 'adapter_config.json'), 'utf8'))).toMatchObject({ peft_type: 'LORA', base_model_name_or_path: tiny.model });
    for (const f of ['adapter_model.safetensors', 'value_head.safetensors']) expect(fs.readFileSync(path.join(final, f))).toEqual(fs.readFileSync(path.join(straight, 'final', f)));
  });

  test('--dry-run prints the memory plan with the reward model and writes nothing', async () => {
    const chunks: string[] = [];
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => {
      chunks.push(String(c));
      return true;
    });
    const out = tiny.out('ppo-dry');
    const r = await osp(...flags(out, '--dry-run'));
    spy.mockRestore();
    expect(r.code).toBe(0);
    const table = chunks.join('');
    expect(table).toContain('memory plan: osp ppo');
    expect(table).toContain('reward model weights');
    expect(table).toContain('K 2');
    expect(fs.existsSync(out)).toBe(false);
  });

  test('a --reward-model that is not a reward model is refused, naming the flag', async () => {
    const missing = await osp(...flags(tiny.out('ppo-bad'), '--reward-model', path.join(tiny.root, 'nothing-here')));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--reward-model .*nothing-here: no such folder/);
    const causal = await osp(...flags(tiny.out('ppo-bad'), '--reward-model', tiny.model));
    expect(causal.code).toBe(1);
    expect(causal.stderr).toMatch(/--reward-model .*: .*names no ForSequenceClassification architecture/);
  });
});
