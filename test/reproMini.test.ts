// npm run repro:mini end to end at toy length (1 seed, 1 step per run, 2 held-out prompts, the
// reward model and the 10% judge at 2% of their steps) on the shipped demo models: every arm of the
// paper the script compares runs through the library and lands in the doc's tables, the claims table
// gives a verdict per claim, and a rerun reuses the runs and keeps a hand-written reading.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const repoRoot = path.join(__dirname, '..');
let work: string;
let docs: string;

function reproduce(): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', path.join('scripts', 'repro-mini.ts'), path.join(work, 'runs')], {
    cwd: repoRoot,
    env: { ...process.env, REPRO_SEEDS: '1', REPRO_STEPS: '1', REPRO_EVAL: '2', REPRO_AUX_SCALE: '0.02', REPRO_DOCS_DIR: docs },
    encoding: 'utf8',
    maxBuffer: 64 * 2 ** 20,
  });
  return { status: r.status, stderr: r.stderr };
}

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-repro-'));
  docs = path.join(work, 'docs');
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const ARMS = [
  'SFT', 'offline DPO', 'offline IPO', 'OSP, SPCE loss', 'OSP, DPO loss', 'OSP, IPO loss', 'OSP, SPCE, random pairing',
  'OSP, SPCE, RAFT pairing (SFT on the best of K)', 'OSP, SPCE, SPIN pairing (data response vs own)', 'OSP, SPCE, SFT sampling',
  'OSP, SPCE, RSO sampling (judge scores)', 'OSP, SPCE, RSO sampling (reward-model scores)', 'self-rewarding',
  'RLHF: reward model + PPO, lr 3e-5', 'RLHF: reward model + PPO, lr 1e-4',
];

test('runs every arm on the demo models and reports each in the tables, with a verdict per claim', () => {
  const r = reproduce();
  if (r.status !== 0) throw new Error(r.stderr.slice(-4000));
  const md = fs.readFileSync(path.join(docs, 'repro-mini.md'), 'utf8');
  for (const arm of ARMS) expect(md).toContain(`| ${arm} | `);
  // The sweeps: the DPO loss by lr and length (1 and 4 steps here), ranked and random at K 8.
  expect(md).toContain('| DPO | 1e-5 | 4 |');
  expect(md).toContain('| SPCE | 1e-4 | 4 |');
  expect(md).toContain('| random | 8 |');
  const claims = md.split('\n').filter((l) => /^\| .* \| (Table|Figure) [^|]* \| .* \| (holds|reversed|not shown)/.test(l));
  expect(claims.length).toBe(16);
  expect(fs.existsSync(path.join(docs, 'repro-mini.html'))).toBe(true);
  expect(fs.existsSync(path.join(work, 'runs', 'rlhf-reward-model-ppo-lr-3e-5-seed1', 'final', 'config.json'))).toBe(true);
}, 600_000);

test('a rerun reuses the finished runs and keeps the hand-written reading', () => {
  const file = path.join(docs, 'repro-mini.md');
  const reading = '<!-- reading: kept by npm run repro:mini -->\nA hand reading.\n<!-- /reading -->';
  const before = fs.readFileSync(file, 'utf8');
  fs.writeFileSync(file, before.replace('## Quality of each method', `${reading}\n\n## Quality of each method`));
  const stamp = fs.statSync(path.join(work, 'runs', 'offline-dpo-seed1', 'final', 'model.safetensors')).mtimeMs;
  const r = reproduce();
  if (r.status !== 0) throw new Error(r.stderr.slice(-4000));
  expect(r.stderr).not.toContain('$ osp ');
  expect(fs.statSync(path.join(work, 'runs', 'offline-dpo-seed1', 'final', 'model.safetensors')).mtimeMs).toBe(stamp);
  const after = fs.readFileSync(file, 'utf8');
  expect(after).toContain(reading);
  expect(after.replace(`${reading}\n\n`, '')).toBe(before);
}, 600_000);
