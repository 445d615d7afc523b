// Stopping and resuming: a run stopped after step 2 of 4 (Ctrl-C) and resumed with --resume produces
// the same metrics as the uninterrupted run with the same seed (on the cpu, timings excluded); Ctrl-C
// on the real command checkpoints the step in progress and prints the resume command; a checkpoint
// write that never finished (a kill mid-write) leaves the previous checkpoint the one resumed from.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as safetensors from '../src/model/safetensors';
import { latestCheckpoint, readCheckpointState } from '../src/osp/run';
import { TinyRun, ctrlCAfterStep, FAST_ONLINE, osp, readJsonl, readMetrics, tinyRun, withoutTimings } from './helpers/tinyRun';

let tiny: TinyRun;
let rewardModel: string;
beforeAll(async () => {
  tiny = await tinyRun();
  // ppo's reward model: two Bradley-Terry steps on the tiny model.
  const rmRun = tiny.out('rm');
  expect((await osp('reward-model', '--model', tiny.model, '--pairs', tiny.pairs, '--out', rmRun, '--steps', '2', '--batch-size', '4', '--lr', '1e-2', '--eval-fraction', '0.25', '--device', 'cpu')).code).toBe(0);
  rewardModel = path.join(rmRun, 'final');
});
afterAll(() => tiny.cleanup());
afterEach(() => jest.restoreAllMocks());

const trainFlags = (out: string) => ['train', '--model', tiny.model, '--prompts', tiny.prompts, '--out', out, '--steps', '4', '--save-every', '2', '--seed', '5', ...FAST_ONLINE, '--k', '4', '--lr', '1e-2', '--beta', '0.5', '--temperature', '1'];
const dpoFlags = (out: string) => ['dpo', '--model', tiny.model, '--pairs', tiny.pairs, '--out', out, '--steps', '4', '--save-every', '2', '--seed', '5', '--batch-size', '3', '--lr', '1e-2', '--loss', 'spce', '--device', 'cpu'];

const ppoFlags = (out: string) => ['ppo', '--model', tiny.model, '--reward-model', rewardModel, '--prompts', tiny.prompts, '--out', out, '--steps', '4', '--save-every', '2', '--seed', '5', '--k', '2', '--max-new-tokens', '6', '--batch-size', '2', '--micro-batch', '4', '--device', 'cpu', '--mini-batch', '2', '--ppo-epochs', '2', '--lr', '1e-2', '--temperature', '1'];

describe.each([
  ['train', trainFlags],
  ['dpo', dpoFlags],
  ['ppo', ppoFlags],
])('osp %s stopped after step 2 of 4 and resumed', (command, flags) => {
  test('gives the same metrics (and samples) as the uninterrupted run', async () => {
    const whole = tiny.out(`${command}-whole`);
    expect((await osp(...flags(whole))).code).toBe(0);

    const parts = tiny.out(`${command}-parts`);
    ctrlCAfterStep(2);
    const stopped = await osp(...flags(parts));
    jest.restoreAllMocks();
    expect(stopped.code).toBe(130); // stopped by Ctrl-C
    expect(stopped.stderr).toContain(`stopped after step 2; checkpoint ${path.join(parts, 'checkpoints', 'step-00000002')}`);
    expect(stopped.stderr).toContain(`resume with: osp ${command} --resume ${parts}`);
    expect(readMetrics(parts).map((m) => m.step)).toEqual([1, 2]);
    expect(fs.existsSync(path.join(parts, 'final'))).toBe(false);

    const resumed = await osp(command, '--resume', parts);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain('from step-00000002 (step 2 of 4)');

    const a = readMetrics(whole).map(withoutTimings);
    const b = readMetrics(parts).map(withoutTimings);
    expect(b.map((m) => m.step)).toEqual([1, 2, 3, 4]);
    expect(b).toEqual(a);
    // Nontrivial: the steps after the resume moved the policy (the margins are not all 0).
    const moved = command === 'ppo' ? 'klEstimate' : 'marginMean'; // ppo: the policy left the reference
    expect(a.slice(2).some((m) => Math.abs(m[moved] as number) > 1e-6)).toBe(true);
    if (command === 'train' || command === 'ppo') expect(readJsonl(path.join(parts, 'samples.jsonl'))).toEqual(readJsonl(path.join(whole, 'samples.jsonl')));
    const state = (dir: string) => ({ ...readCheckpointState(latestCheckpoint(dir)!), extra: undefined }); // extra: wall-clock time
    expect(state(parts)).toEqual(state(whole));
    expect(fs.readFileSync(path.join(parts, 'final', 'model.safetensors'))).toEqual(fs.readFileSync(path.join(whole, 'final', 'model.safetensors')));
    if (command === 'ppo') expect(fs.readFileSync(path.join(parts, 'final', 'value_head.safetensors'))).toEqual(fs.readFileSync(path.join(whole, 'final', 'value_head.safetensors')));
  });
});

test('resuming drops metrics and samples lines written after the last checkpoint', async () => {
  const out = tiny.out('train-extra-lines');
  ctrlCAfterStep(2);
  expect((await osp(...trainFlags(out))).code).toBe(130);
  jest.restoreAllMocks();
  // A step 3 that was logged, but whose checkpoint was never written (killed before step 4's save).
  fs.appendFileSync(path.join(out, 'metrics.jsonl'), `${JSON.stringify({ step: 3, loss: 123 })}\n{"step": 4, "lo`);
  fs.appendFileSync(path.join(out, 'samples.jsonl'), `${JSON.stringify({ step: 3, prompt: 'stale' })}\n`);
  expect((await osp('train', '--resume', out)).code).toBe(0);
  const metrics = readMetrics(out);
  expect(metrics.map((m) => m.step)).toEqual([1, 2, 3, 4]);
  expect(metrics[2].loss).not.toBe(123);
  const samples = readJsonl<{ step: number; prompt: string }>(path.join(out, 'samples.jsonl'));
  expect(samples.some((s) => s.prompt === 'stale')).toBe(false);
  expect(samples.map((s) => s.step)).toEqual([1, 1, 2, 2, 3, 3, 4, 4]);
});

describe('a checkpoint write that did not finish', () => {
  test('a stale .partial folder (killed mid-write) is ignored: the previous checkpoint is resumed from', async () => {
    const out = tiny.out('train-partial');
    ctrlCAfterStep(2);
    expect((await osp(...trainFlags(out))).code).toBe(130);
    jest.restoreAllMocks();
    const root = path.join(out, 'checkpoints');
    // What a SIGKILL during the save of step 4 leaves: the temporary folder, half written.
    const partial = path.join(root, '.step-00000004.partial');
    fs.mkdirSync(path.join(partial, 'model'), { recursive: true });
    fs.writeFileSync(path.join(partial, 'model', 'model.safetensors'), 'junk');
    fs.writeFileSync(path.join(partial, 'optimizer.safetensors'), Buffer.alloc(7));
    // And a step folder with no state.json (not complete) must not count either.
    fs.mkdirSync(path.join(root, 'step-00000003', 'model'), { recursive: true });
    expect(latestCheckpoint(out)).toBe(path.join(root, 'step-00000002'));

    const r = await osp('train', '--resume', out);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('from step-00000002 (step 2 of 4)');
    expect(readMetrics(out).map((m) => m.step)).toEqual([1, 2, 3, 4]);
    expect(fs.existsSync(partial)).toBe(false);
    expect(latestCheckpoint(out)).toBe(path.join(root, 'step-00000004'));
  });

  test('a save that fails half-way leaves the previous checkpoint complete and `latest` pointing at it', async () => {
    const out = tiny.out('train-failed-save');
    const write = safetensors.writeSafetensors;
    jest.spyOn(safetensors, 'writeSafetensors').mockImplementation((file, tensors, meta) => {
      if (file.includes('.step-00000004.partial')) throw new Error('disk full (simulated)');
      return write(file, tensors, meta);
    });
    const r = await osp(...trainFlags(out));
    jest.restoreAllMocks();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('disk full (simulated)');
    const root = path.join(out, 'checkpoints');
    expect(fs.readdirSync(root).sort()).toEqual(['latest', 'step-00000002']);
    expect(fs.readFileSync(path.join(root, 'latest'), 'utf8').trim()).toBe('step-00000002');
    expect(readCheckpointState(path.join(root, 'step-00000002'))).toMatchObject({ step: 2 });

    const resumed = await osp('train', '--resume', out);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain('from step-00000002 (step 2 of 4)');
    expect(readMetrics(out).map((m) => m.step)).toEqual([1, 2, 3, 4]);
  });
});

test('Ctrl-C on `osp train` (a child process) checkpoints the step in progress, prints the resume command; --resume finishes the run', async () => {
  const out = tiny.out('train-sigint');
  const metricsFile = path.join(out, 'metrics.jsonl');
  const child = spawn(process.execPath, [path.join(__dirname, '..', 'bin', 'osp.js'), 'train', '--model', tiny.model, '--prompts', tiny.prompts, '--out', out, '--steps', '30', '--save-every', '100', ...FAST_ONLINE, '--k', '4', '--max-new-tokens', '12'], {
    cwd: path.join(__dirname, '..'),
    env: { ...process.env, OSP_FROM_SOURCE: '1', OSP_NO_PROGRESS: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let sent = false;
  const deadline = Date.now() + 60_000;
  while (!sent && Date.now() < deadline && child.exitCode === null) {
    if (fs.existsSync(metricsFile) && fs.readFileSync(metricsFile, 'utf8').includes('\n')) {
      child.kill('SIGINT');
      sent = true;
    } else await new Promise((r) => setTimeout(r, 5));
  }
  expect(sent).toBe(true);
  const { code, signal } = await exited;
  expect(signal).toBeNull();
  expect(code).toBe(130); // the conventional status of a run ended by Ctrl-C

  const steps = readMetrics(out).map((m) => m.step);
  const last = steps[steps.length - 1];
  expect(last).toBeLessThan(30);
  expect(steps).toEqual(Array.from({ length: last }, (_, i) => i + 1));
  const ckpt = latestCheckpoint(out)!;
  expect(path.basename(ckpt)).toBe(`step-${String(last).padStart(8, '0')}`);
  expect(readCheckpointState(ckpt)).toMatchObject({ step: last, dataPosition: 2 * last });
  expect(stderr).toContain('osp train: stopping after the current step');
  expect(stderr).toContain(`resume with: osp train --resume ${out}`);
  expect(fs.existsSync(path.join(out, 'final'))).toBe(false);

  const r = await osp('train', '--resume', out);
  expect(r.code).toBe(0);
  expect(readMetrics(out).map((m) => m.step)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
  expect(fs.existsSync(path.join(out, 'final', 'model.safetensors'))).toBe(true);
}, 90_000);

test('--resume uses the saved settings and says which flags it ignores (--steps extends the run)', async () => {
  const out = tiny.out('dpo-resume-flags');
  expect((await osp(...dpoFlags(out), '--schedule', 'constant')).code).toBe(0);
  const r = await osp('dpo', '--resume', out, '--lr', '5', '--steps', '9');
  expect(r.code).toBe(0);
  expect(r.stderr).toContain(`--resume continues ${out} with its saved settings (config.json); ignoring --lr\n`);
  expect(readMetrics(out).map((m) => m.lr)).toEqual(Array(9).fill(1e-2)); // the saved --lr 1e-2, constant schedule
});

test('elapsedSeconds runs on across a resume (the checkpoint keeps the time spent)', async () => {
  const out = tiny.out('dpo-elapsed');
  ctrlCAfterStep(2);
  expect((await osp(...dpoFlags(out))).code).toBe(130);
  jest.restoreAllMocks();
  const before = readCheckpointState(latestCheckpoint(out)!).extra?.elapsedSeconds as number;
  expect(before).toBeGreaterThan(0);
  expect((await osp('dpo', '--resume', out)).code).toBe(0);
  const m = readMetrics(out);
  expect(m[2].elapsedSeconds).toBeGreaterThanOrEqual(before);
});
