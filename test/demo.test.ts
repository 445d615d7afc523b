// npm run demo, shortened: `osp demo --quick` on the shipped demo models (demo/sft, demo/judge) runs
// every stage (OSP training with the judge, evaluation of SFT and OSP against the task scorer, judge
// accuracy) and writes the run folder, its report and the table.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { main } from '../src/cli';
import { demoAssetsDir } from '../src/cli/demo';
import { ctrlCAfterStep } from './helpers/tinyRun';

jest.setTimeout(120_000);

test('the shipped demo models are a Hugging Face SFT folder and an augmented judge', () => {
  for (const d of ['sft', 'judge']) {
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) {
      expect(fs.existsSync(path.join(demoAssetsDir(), d, f))).toBe(true);
    }
  }
});

/** Runs a shortened `osp demo` into a fresh folder, capturing stdout and stderr; returns the exit code, the folder and the text. */
async function quickDemo(...extra: string[]): Promise<{ code: number; out: string; stdout: string; stderr: string }> {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'osp-demo-')), 'run');
  const stdout: string[] = [];
  const stderr: string[] = [];
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => (stdout.push(String(s)), true));
  const errSpy = jest.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => (stderr.push(String(s)), true));
  try {
    const code = await main(['node', 'osp', 'demo', '--quick', '--steps', '3', '--batch-size', '2', '--k', '2', '--eval-prompts', '8', '--device', 'cpu', '--out', out, ...extra]);
    return { code, out, stdout: stdout.join(''), stderr: stderr.join('') };
  } finally {
    spy.mockRestore();
    errSpy.mockRestore();
  }
}

test('a shortened demo runs OSP, evaluates SFT against OSP and the judge, and writes the report and the table', async () => {
  const { code, out, stdout } = await quickDemo();
  expect(code).toBe(0);
  const metrics = fs.readFileSync(path.join(out, 'osp', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  expect(metrics.map((m) => m.step)).toEqual([1, 2, 3]);
  expect(Number.isFinite(metrics[0].sampleScoreMean)).toBe(true);
  expect(fs.existsSync(path.join(out, 'osp', 'report.html'))).toBe(true);
  expect(fs.existsSync(path.join(out, 'osp', 'final', 'model.safetensors'))).toBe(true);
  const table = fs.readFileSync(path.join(out, 'demo.md'), 'utf8');
  expect(table).toContain('| scorer quality, sampled (T 0.7, top-p 0.9) |');
  expect(table).toContain('| augmented judge');
  // It says how to read itself: the terms, why the loss stays near log 2 (with the measured values), and who judged the head-to-head.
  expect(table).toContain('How to read this:');
  expect(table).toMatch(/- scorer quality: the task's own score of an answer in \[0, 1\]/);
  expect(table).toMatch(/- target: the judge's preference p\(chosen > rejected\).*pHat = sigmoid\(margin\)/);
  expect(table).toMatch(/stays near log 2 = 0\.693 \(last 10 steps: \d\.\d{3}; mean pHat \d\.\d{3}, mean target \d\.\d{3}\)/);
  expect(table).toContain('This is the judge that made the training targets');
  expect(stdout).toContain(table.trim());
  const json = JSON.parse(fs.readFileSync(path.join(out, 'demo.json'), 'utf8'));
  for (const m of ['SFT', 'OSP']) expect(json.results[m].sampled.score.mean).toBeGreaterThanOrEqual(0);
  expect(json.judge.after.accuracy.mean).toBeGreaterThanOrEqual(0);
});

test('the demo with --lora trains an adapter, evaluates it on the SFT base and says so in its settings', async () => {
  const { code, out } = await quickDemo('--lora', 'r=4,alpha=8', '--lr', '1e-3');
  expect(code).toBe(0);
  expect(fs.existsSync(path.join(out, 'osp', 'final', 'adapter_config.json'))).toBe(true);
  expect(fs.existsSync(path.join(out, 'osp', 'final', 'model.safetensors'))).toBe(false);
  const json = JSON.parse(fs.readFileSync(path.join(out, 'demo.json'), 'utf8'));
  expect(json.results.OSP.sampled.score.mean).toBeGreaterThanOrEqual(0);
  expect(fs.readFileSync(path.join(out, 'demo.md'), 'utf8')).toContain('lr 0.001, LoRA r=4,alpha=8');
});

test('Ctrl-C during the demo\'s training ends it with exit 130 and the run folder, not "training failed"', async () => {
  // The Ctrl-C arrives after the first metrics line of the OSP run.
  const appendSpy = ctrlCAfterStep(1);
  let run: Awaited<ReturnType<typeof quickDemo>>;
  try {
    run = await quickDemo();
  } finally {
    appendSpy.mockRestore();
  }
  const { code, out, stderr } = run;
  expect(code).toBe(130);
  expect(stderr).toContain(`the demo stopped during train; its run folder is ${path.join(out, 'osp')}`);
  expect(stderr).not.toMatch(/failed/);
  expect(fs.existsSync(path.join(out, 'demo.md'))).toBe(false);
});
