// The sampling and pairing ablations of the paper's Figure 5: RSO's statistical rejection sampling
// (rsoAccept), RAFT (SFT on the judge's best of K) and SPIN (the data's response against the
// policy's own samples), as pairs and as whole `osp train` runs on the tiny demo data.
import * as fs from 'fs';
import * as path from 'path';
import { blankLogOdds, rsoAccept, seededUniform } from '../src/judge/pairing';
import { RewardModel } from '../src/model/rewardModel';
import { TinyRun, FAST_ONLINE, osp, readJsonl, readMetrics, tinyRun } from './helpers/tinyRun';
import { seeded } from './helpers/random';

describe('rsoAccept (statistical rejection sampling)', () => {
  it('accepts k distinct candidates', () => {
    const { seed, next } = seeded('rso distinct');
    for (let trial = 0; trial < 50; trial++) {
      const r = Array.from({ length: 12 }, () => 4 * next() - 2);
      const got = rsoAccept(r, 5, 0.5, seededUniform(seed + trial));
      expect(got).toHaveLength(5);
      expect(new Set(got).size).toBe(5);
      expect(got.every((i) => i >= 0 && i < 12)).toBe(true);
    }
  });

  it('with a tiny beta takes the top k by reward, in order; with fewer candidates than k, all of them', () => {
    const r = [0.1, 2, -1, 1.5, 0.7];
    expect(rsoAccept(r, 3, 1e-6, seededUniform(1))).toEqual([1, 3, 4]);
    expect(rsoAccept(r, 9, 0.5, seededUniform(1)).sort()).toEqual([0, 1, 2, 3, 4]);
  });

  it('accepts the first draw of a round with probability exp((r - max) / beta): the frequencies match', () => {
    // Two candidates, k = 1: the better is always accepted eventually; the worse wins only if it is
    // visited first and accepted: P = 1/2 exp(-(gap) / beta).
    const gap = 0.4;
    const beta = 0.5;
    const rng = seededUniform(7);
    let worse = 0;
    const n = 40000;
    for (let i = 0; i < n; i++) if (rsoAccept([0, -gap], 1, beta, rng)[0] === 1) worse++;
    const p = 0.5 * Math.exp(-gap / beta);
    expect(Math.abs(worse / n - p)).toBeLessThan(4 * Math.sqrt((p * (1 - p)) / n));
  });

  it('refuses a beta that is not > 0 and NaN rewards', () => {
    expect(() => rsoAccept([1, 2], 1, 0, seededUniform(1))).toThrow(/beta is 0/);
    expect(() => rsoAccept([1, NaN], 1, 1, seededUniform(1))).toThrow(/rewards\[1\] is NaN/);
  });

  it('reads rewards as the log-odds of the blank-baseline score', () => {
    expect(blankLogOdds(0.5)).toBe(0);
    expect(blankLogOdds(0.75)).toBeCloseTo(Math.log(3), 12);
    expect(Number.isFinite(blankLogOdds(1))).toBe(true);
  });
});

describe('osp train with the pairing and sampling ablations', () => {
  let tiny: TinyRun;
  beforeAll(async () => {
    tiny = await tinyRun();
  });
  afterAll(() => tiny.cleanup());
  const run = async (name: string, ...flags: string[]) => {
    const out = tiny.out(name);
    const r = await osp('train', '--model', tiny.model, '--prompts', tiny.prompts, '--out', out, ...FAST_ONLINE, '--k', '4', '--steps', '2', '--seed', '3', ...flags);
    if (r.code !== 0) throw new Error(r.stderr);
    return { out, metrics: readMetrics(out), samples: readJsonl<{ prompt: string; responses: { blankScore: number | null; text: string }[]; best?: number; pairs?: { chosen: number; rejected: number; target: number }[] }>(path.join(out, 'samples.jsonl')) };
  };

  test('raft trains on each prompt\'s best sample by the judge\'s blank-baseline score (an SFT loss, no pairs)', async () => {
    const { out, metrics, samples } = await run('raft', '--pairing', 'raft');
    expect(metrics).toHaveLength(2);
    for (const m of metrics) {
      expect(m.pairs).toBe(0);
      expect(Number.isFinite(m.loss as number)).toBe(true);
    }
    for (const s of samples) {
      const scores = s.responses.map((r) => r.blankScore as number);
      expect(s.best).toBe(scores.indexOf(Math.max(...scores)));
    }
    expect(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).settings.pairing).toBe('raft');
  });

  test('spin pairs the data\'s response (chosen) against each of the first K//2 samples (rejected), target 1', async () => {
    const { metrics, samples } = await run('spin', '--pairing', 'spin', '--prompts', tiny.sft, '--format', 'sft');
    for (const m of metrics) expect(m.pairs).toBe(2 * 2); // batch 2 x K//2
    for (const s of samples) expect(s.pairs).toEqual([0, 1].map((k) => expect.objectContaining({ chosen: -1, rejected: k, target: 1 })));
  });

  test('spin without responses in the data is a usage error naming the setting', async () => {
    const r = await osp('train', '--model', tiny.model, '--prompts', tiny.prompts, '--out', tiny.out('spin-bad'), ...FAST_ONLINE, '--pairing', 'spin');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("spin needs the data's responses");
  });

  test('rso samples candidates from the SFT model, accepts K of them and ranks those', async () => {
    const { metrics, samples } = await run('rso', '--sampling', 'rso', '--rso-candidates', '8', '--rso-beta', '0.5');
    for (const m of metrics) {
      expect(m.rsoAccepted).toBe(4);
      expect(m.samples).toBe(2 * 4);
      expect(m.pairs).toBe(2 * 2);
    }
    for (const s of samples) expect(s.responses).toHaveLength(4);
  });

  test('rso with --rso-reward-model accepts by the reward model\'s scores, and records each kept sample\'s reward', async () => {
    const rmRun = tiny.out('rso-rm');
    expect((await osp('reward-model', '--model', tiny.model, '--pairs', tiny.pairs, '--out', rmRun, '--steps', '2', '--batch-size', '4', '--micro-batch', '4', '--lr', '1e-2', '--seed', '1', '--device', 'cpu')).code).toBe(0);
    const rmDir = path.join(rmRun, 'final');
    const { out, metrics, samples } = await run('rso-by-rm', '--sampling', 'rso', '--rso-candidates', '8', '--rso-reward-model', rmDir);
    for (const m of metrics) expect(m.rsoAccepted).toBe(4);
    const rm = await RewardModel.load(rmDir, { device: 'cpu' });
    try {
      for (const s of samples) {
        const kept = s.responses as unknown as { text: string; rsoReward: number }[];
        expect(kept).toHaveLength(4);
        const again = await rm.rewards(kept.map(() => s.prompt), kept.map((r) => r.text));
        kept.forEach((r, k) => expect(r.rsoReward).toBeCloseTo(again[k], 5));
      }
    } finally {
      rm.dispose();
    }
    expect(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).settings.rsoRewardModel).toBe(rmDir);
  });

  test('--rso-reward-model without --sampling rso is a usage error naming the flag', async () => {
    const r = await osp('train', '--model', tiny.model, '--prompts', tiny.prompts, '--out', tiny.out('rso-rm-bad'), ...FAST_ONLINE, '--rso-reward-model', tiny.model);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--rso-reward-model .*is used only with --sampling rso/);
  });

  test('split uses each pair once: the first half with the preferred answer as A, the second half as B (the paper\'s two 1% slices)', async () => {
    const both = tiny.out('aug-both');
    const split = tiny.out('aug-split');
    const flags = ['--model', tiny.model, '--pairs', tiny.pairs, '--steps', '1', '--batch-size', '2', '--device', 'cpu'];
    expect((await osp('augment', ...flags, '--out', both)).code).toBe(0);
    expect((await osp('augment', ...flags, '--out', split, '--orders', 'split')).code).toBe(0);
    const cfg = (d: string) => JSON.parse(fs.readFileSync(path.join(d, 'config.json'), 'utf8'));
    const pairs = cfg(both).dataRecords as number;
    expect(cfg(both).examples).toBe(2 * pairs);
    expect(cfg(split).examples).toBe(pairs);
    expect(cfg(split).settings.orders).toBe('split');
  });
});
