// Nothing bad is saved, and a run folder is only made for a run that can start: a weight or optimizer
// value that is not finite is never written to a checkpoint; --resume skips a corrupt newest
// checkpoint for the one before it, and removes what a killed write left behind; config.json is
// written only after the settings, models and data were checked, stores absolute paths, and refuses
// settings of the wrong type; a bf16 model on the cpu says what to do instead of failing deep inside.
import * as fs from 'fs';
import * as path from 'path';
import * as osp from '../src';
import { LlamaModel } from '../src/model/llama';
import { AdamW } from '../src/model/optim';
import { readSafetensors, writeSafetensors } from '../src/model/safetensors';
import { latestCheckpoint, saveCheckpoint } from '../src/osp/run';
import { TinyRun, ctrlCAfterStep, FAST_ONLINE, osp as runOsp, readMetrics, tinyConfig, tinyRun } from './helpers/tinyRun';

let tiny: TinyRun;
beforeAll(async () => {
  tiny = await tinyRun();
});
afterAll(() => tiny.cleanup());
afterEach(() => jest.restoreAllMocks());

const trainFlags = (out: string) => ['train', '--model', tiny.model, '--prompts', tiny.prompts, '--out', out, '--steps', '4', '--save-every', '1', '--seed', '3', ...FAST_ONLINE, '--k', '4', '--lr', '1e-2', '--beta', '0.5', '--temperature', '1'];

describe('checkpoints never hold values that are not finite', () => {
  const model = () => LlamaModel.init(tinyConfig(31), { seed: 7, dtype: 'f32', device: 'cpu' });

  test('a NaN weight: the save fails naming the tensor, and no checkpoint or `latest` is written', async () => {
    const m = model();
    const opt = new AdamW(m.parameters(), { lr: 1e-3 });
    const dir = tiny.out('nan-weights');
    await saveCheckpoint(dir, m, opt, { step: 1, dataPosition: 2, seed: 0 });
    const w = m.parameters().get('model.norm.weight') as osp.Tensor;
    osp.copyInto(w, osp.tensor(Float32Array.from(w.toArray(), (v, i) => (i === 3 ? NaN : v)), w.shape, { device: 'cpu' }));
    await expect(saveCheckpoint(dir, m, opt, { step: 2, dataPosition: 4, seed: 0 })).rejects.toThrow('model.norm.weight[3] is NaN; a weight that is not finite is never saved');
    expect(fs.readdirSync(path.join(dir, 'checkpoints')).sort()).toEqual(['latest', 'step-00000001']);
    expect(latestCheckpoint(dir)).toBe(path.join(dir, 'checkpoints', 'step-00000001'));
    opt.dispose();
    m.dispose();
  });

  test('an infinite optimizer moment: the save fails naming it', async () => {
    const m = model();
    const opt = new AdamW(m.parameters(), { lr: 1e-3 });
    const v = opt.state().tensors.get('model.norm.weight.exp_avg_sq') as osp.Tensor;
    osp.copyInto(v, osp.tensor(new Float32Array(v.size).fill(Infinity), v.shape, { device: 'cpu' }));
    await expect(saveCheckpoint(tiny.out('inf-state'), m, opt, { step: 1, dataPosition: 2, seed: 0 })).rejects.toThrow(
      'optimizer state model.norm.weight.exp_avg_sq[0] is Infinity; a value that is not finite is never saved',
    );
    expect(fs.existsSync(path.join(tiny.out('inf-state'), 'checkpoints', 'step-00000001'))).toBe(false);
    opt.dispose();
    m.dispose();
  });
});

describe('--resume', () => {
  test('falls back to the checkpoint before a corrupt newest one (NaN optimizer state), and says so', async () => {
    const out = tiny.out('resume-corrupt');
    ctrlCAfterStep(3);
    expect((await runOsp(...trainFlags(out))).code).toBe(130);
    jest.restoreAllMocks();
    const newest = path.join(out, 'checkpoints', 'step-00000003', 'optimizer.safetensors');
    const state = readSafetensors(newest);
    const [name, t] = [...state][0];
    const data = Float32Array.from(t.data as Float32Array);
    data[0] = NaN;
    writeSafetensors(newest, new Map([...state].map(([n, x]) => [n, { dtype: 'F32' as const, shape: x.shape, data: n === name ? data : (x.data as Float32Array) }])));

    const r = await runOsp('train', '--resume', out);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`step-00000003 cannot be resumed from (${newest}: ${name}[0] is NaN; the optimizer state is not finite); trying the checkpoint before it`);
    expect(r.stderr).toContain('from step-00000002 (step 2 of 4)');
    expect(readMetrics(out).map((m) => m.step)).toEqual([1, 2, 3, 4]);
  });

  test('removes what a killed write left behind (partial checkpoints, temporary files and folders)', async () => {
    const out = tiny.out('resume-leftovers');
    ctrlCAfterStep(2);
    expect((await runOsp(...trainFlags(out))).code).toBe(130);
    jest.restoreAllMocks();
    const leftovers = ['.metrics.jsonl.4242.00ff.tmp', 'final.tmp-4242', 'checkpoints/.step-00000003.partial'];
    fs.writeFileSync(path.join(out, leftovers[0]), 'half');
    fs.mkdirSync(path.join(out, leftovers[1]));
    fs.mkdirSync(path.join(out, leftovers[2]));
    const r = await runOsp('train', '--resume', out);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`removed what an interrupted run left behind: ${leftovers.join(', ')}`);
    for (const l of leftovers) expect(fs.existsSync(path.join(out, l))).toBe(false);
  });
});

describe('the run folder', () => {
  test('is not made when the model cannot be loaded (a corrupt weights file): exit 1, no config.json', async () => {
    const broken = tiny.out('broken-model');
    fs.cpSync(tiny.model, broken, { recursive: true });
    fs.writeFileSync(path.join(broken, 'model.safetensors'), Buffer.from('not a safetensors file'));
    const out = tiny.out('never-made');
    const r = await runOsp(...trainFlags(out).map((a) => (a === tiny.model ? broken : a)));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('model.safetensors');
    expect(fs.existsSync(path.join(out, 'config.json'))).toBe(false);
  });

  test('config.json stores absolute paths, so the run resumes from any working folder', async () => {
    const out = tiny.out('relative');
    const rel = (p: string) => path.relative(process.cwd(), p);
    const r = await runOsp('sft', '--model', rel(tiny.model), '--data', rel(tiny.sft), '--out', rel(out), '--steps', '1', '--batch-size', '2', '--device', 'cpu');
    expect(r.code).toBe(0);
    const settings = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).settings;
    expect([settings.model, settings.data, settings.out]).toEqual([tiny.model, tiny.sft, out]);
  });

  test.each([
    [{ temperature: null }, /^osp: --temperature: expected a number \(got null\)/],
    [{ 'max-grad-norm': true }, /^osp: --max-grad-norm: expected a number \(got true\)/],
    [{ k: [4] }, /^osp: --k: expected a number \(got \[4\]\)/],
  ])('a --config value of the wrong type is refused, not coerced: %j', async (config, message) => {
    const file = path.join(tiny.root, `config-${Object.keys(config)[0]}.json`);
    fs.writeFileSync(file, JSON.stringify(config));
    const out = tiny.out(`config-${Object.keys(config)[0]}`);
    const r = await runOsp('train', '--model', tiny.model, '--prompts', tiny.prompts, '--out', out, '--config', file, '--device', 'cpu');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(fs.existsSync(out)).toBe(false);
  });
});

test('a bf16 model on the cpu is refused at its first forward with what to do instead', async () => {
  const model = await LlamaModel.load(tiny.model, { dtype: 'bf16', device: 'cpu' });
  const tok = await osp.Tokenizer.load(tiny.model);
  await expect(osp.generate(model, tok, ['a'], { maxNewTokens: 2, temperature: 0, seed: 1 })).rejects.toThrow(
    /the weights are bf16 on the cpu, which osp stores but does not compute with; load with \{ dtype: 'f32' \}/,
  );
  model.dispose();
});

test('--resume with a larger --steps extends the run: the data order continues, the schedule spans the new total, config.json says so', async () => {
  const out = tiny.out('extend');
  const sft = ['sft', '--model', tiny.model, '--data', tiny.sft, '--out', out, '--steps', '2', '--batch-size', '2', '--device', 'cpu', '--schedule', 'linear', '--lr', '1e-3'];
  expect((await runOsp(...sft)).code).toBe(0);
  const r = await runOsp('sft', '--resume', out, '--steps', '4');
  expect(r.code).toBe(0);
  expect(r.stderr).toContain(`extending ${out} from 2 to 4 steps; the learning-rate schedule now spans 4 steps`);
  expect(r.stderr).toContain('from step-00000002 (step 2 of 4)');
  const metrics = readMetrics(out);
  expect(metrics.map((m) => m.step)).toEqual([1, 2, 3, 4]);
  // Linear decay to 0 over 4 steps from step 3 on: lr(3) = 1e-3 * (1 - 2/4), lr(4) = 1e-3 * (1 - 3/4).
  expect(metrics[2].lr).toBeCloseTo(osp.learningRate(3, { kind: 'linear', peak: 1e-3, warmupSteps: 0, totalSteps: 4, minRatio: 0 }), 15);
  expect(metrics[3].lr).toBeCloseTo(osp.learningRate(4, { kind: 'linear', peak: 1e-3, warmupSteps: 0, totalSteps: 4, minRatio: 0 }), 15);
  const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
  expect(config.settings.steps).toBe(4);
  expect(config.totalSteps).toBe(4);
  expect(config.extended).toMatchObject([{ from: 2, to: 4 }]);
  expect((await runOsp('sft', '--resume', out, '--steps', '3')).stderr).toContain('--steps 3: the run already took 4 steps; expected at least that many');
});
