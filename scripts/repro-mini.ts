// npm run repro:mini: the paper's comparisons in miniature on the embedded sorting task (demo/), with
// 3 seeds each, on the cpu, and a claim-by-claim reading of them:
//   methods  SFT (no further training); offline DPO and IPO on rater-labelled pairs (label noise
//            included); OSP with the SPCE / DPO / IPO loss (ranked pairing); the paper's ablations:
//            random, RAFT and SPIN pairing, SFT and RSO sampling (RSO by the judge's blank-baseline
//            log-odds, and by a reward model's scores); self-rewarding (best vs worst, DPO loss);
//            RLHF: a Bradley-Terry reward model, then PPO (at two learning rates)
//   quality  the task scorer's mean on held-out prompts (sampled at T 0.7, top-p 0.9, 4 per prompt):
//            the scorer is independent of the judge that made OSP's training targets
//   sweeps   the DPO loss against SPCE online at lr 1e-5 and 1e-4, over 60 and 240 steps (Figure
//            5a's question: does the DPO loss overfit online while SPCE does not?); ranked against
//            random pairing at K 4 and K 8 (Figure 5b's)
//   judge    judge accuracy against the scorer with 0%, 10% and 100% of the augmentation data
//            (Table 3's question)
//   claims   each claim of the paper this miniature can test, with the paired difference over seeds
//            (seed s of two methods shares its prompts) and its 95% t-interval: "holds" when the
//            interval is above 0, "reversed" when below, "not shown" when it spans 0
// Writes docs/repro-mini.md and docs/repro-mini.html (the curves, drawn by Chart.js), and keeps every
// run under runs/repro-mini/ (an interrupted reproduction reuses finished runs). REPRO_DOCS=0 prints
// the results as JSON instead; REPRO_DOCS_DIR=DIR writes the docs there (for trial runs).
import * as fs from 'fs';
import * as path from 'path';
import * as trainer from '../src/osp/trainer';
import { DEMO_DEFAULTS, demoAssetsDir } from '../src/cli/demo';
import { makePreferencePairs, makePrompts, makeSftExamples, score } from '../src/demo';
import { generate } from '../src/generate';
import { Judge } from '../src/judge/judge';
import { LlamaModel } from '../src/model/llama';
import { Tokenizer } from '../src/model/tokenizer';
import { MetricsLog } from '../src/osp/metrics';
import { chartJsCode, escapeHtml, jsonForScript } from '../src/osp/report';

const root = path.resolve(process.argv[2] ?? path.join('runs', 'repro-mini'));
const seeds = (process.env.REPRO_SEEDS ?? '1,2,3').split(',').map(Number);
const STEPS = Number(process.env.REPRO_STEPS ?? DEMO_DEFAULTS.steps);
const LONG_STEPS = 4 * STEPS;
const EVAL_PROMPTS = Number(process.env.REPRO_EVAL ?? 200);
/** REPRO_AUX_SCALE scales the reward models' and the 10% judges' steps (the test runs at 0.02). */
const AUX_SCALE = Number(process.env.REPRO_AUX_SCALE ?? 1);
const auxSteps = (n: number) => Math.max(1, Math.round(n * AUX_SCALE));
const LOW_LR = 1e-5;
const PPO_LR = 3e-5;
const assets = demoAssetsDir();
const sft = path.join(assets, 'sft');
const judgeDir = path.join(assets, 'judge');
const docsDir = path.resolve(process.env.REPRO_DOCS_DIR ?? path.join(__dirname, '..', 'docs'));
/** A learning rate as written on the command line (3e-5, not 0.00003). */
const lrText = (lr: number) => lr.toExponential();
/** Training minutes per method, all seeds: the elapsed time each run's metrics record (kept across reruns). */
const minutesOf: Record<string, number> = {};
const trainingMinutes = (runDir: string) => {
  const m = MetricsLog.read(path.join(runDir, 'metrics.jsonl'));
  return m.length ? (m[m.length - 1].elapsedSeconds ?? 0) / 60 : 0;
};
/** Each seed's reward model's accuracy on its held-out pairs (against their noisy labels). */
const rewardModelAccuracy: Record<number, number> = {};

/** Runs a library trainer call, logging it; a stopped or failed run stops the script. */
async function osp<S>(what: string, fn: (settings: S, hooks: trainer.TrainerHooks) => Promise<trainer.RunResult>, settings: S): Promise<void> {
  process.stderr.write(`\n$ osp ${what} ${JSON.stringify(settings)}\n`);
  const r = await fn(settings, { onStepDone: (m, line) => (m.step % 10 === 0 ? process.stderr.write(`  step ${m.step}: ${line}\n`) : undefined) });
  if (r.stopped) throw new Error(`osp ${what} stopped at step ${r.lastStep}`);
}

function jsonl(file: string, rows: object[]): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
  return file;
}

async function quality(dir: string, seed: number): Promise<number> {
  const model = await LlamaModel.load(dir, { device: 'cpu' });
  const tok = await Tokenizer.load(dir);
  const prompts = makePrompts(EVAL_PROMPTS, 999);
  const out = await generate(model, tok, prompts, { maxNewTokens: DEMO_DEFAULTS.maxNewTokens, temperature: DEMO_DEFAULTS.temperature, topP: DEMO_DEFAULTS.topP, seed: 1000 + seed, numSamples: 4 });
  const scores = out.map((o, i) => o.samples.reduce((a, s) => a + score(prompts[i], s.text), 0) / o.samples.length);
  model.dispose();
  return scores.reduce((a, b) => a + b, 0) / scores.length;
}

async function judgeAccuracy(dir: string): Promise<number> {
  const model = await LlamaModel.load(dir, { device: 'cpu' });
  const judge = await Judge.create(model, await Tokenizer.load(dir), { batchSize: 64 });
  const pairs = makePreferencePairs(DEMO_DEFAULTS.judgePairs, 7778, { flipNoise: 0, habit: DEMO_DEFAULTS.habit });
  const prefs = await judge.preferences(pairs.map((p) => ({ prompt: p.prompt, a: p.chosen, b: p.rejected })));
  model.dispose();
  return prefs.reduce((a, q) => a + (q.p > 0.5 ? 1 : q.p === 0.5 ? 0.5 : 0), 0) / prefs.length;
}

const common = (seed: number) => ({ device: 'cpu' as const, seed, saveEvery: 100000 });
const data = (name: string) => path.join(root, 'data', name);
const promptsFile = (seed: number, steps: number) => jsonl(data(`prompts-${seed}-${steps}.jsonl`), makePrompts(steps * DEMO_DEFAULTS.batchSize, 100 + seed).map((prompt) => ({ prompt })));
// SPIN's data: prompts with the demonstrators' own responses (the noise and habit of demo/sft's
// recipe in scripts/build-demo.ts), which SPIN takes as chosen against the policy's samples.
const spinFile = (seed: number) => jsonl(data(`spin-${seed}.jsonl`), makeSftExamples(STEPS * DEMO_DEFAULTS.batchSize, 500 + seed, { noise: 0.3, habit: 0.5 }));

interface OnlineExtra {
  loss?: 'spce' | 'dpo' | 'ipo';
  pairing?: 'ranked' | 'random' | 'raft' | 'spin';
  sampling?: 'policy' | 'sft' | 'rso';
  lr?: number;
  steps?: number;
  k?: number;
  rsoRewardModel?: string;
}
const online = (extra: OnlineExtra = {}) => async (seed: number, out: string) => {
  const steps = extra.steps ?? STEPS;
  const spin = extra.pairing === 'spin';
  await osp('train', trainer.train, {
    model: sft, judge: judgeDir, prompts: spin ? spinFile(seed) : promptsFile(seed, steps), format: spin ? ('sft' as const) : ('prompts' as const), out,
    k: DEMO_DEFAULTS.k, batchSize: DEMO_DEFAULTS.batchSize, microBatch: DEMO_DEFAULTS.microBatch, lr: DEMO_DEFAULTS.lr, beta: DEMO_DEFAULTS.beta,
    temperature: DEMO_DEFAULTS.temperature, topP: DEMO_DEFAULTS.topP, maxNewTokens: DEMO_DEFAULTS.maxNewTokens, scorer: 'demo' as const, ...common(seed), ...extra, steps,
  });
};
const offline = (loss: 'dpo' | 'ipo') => async (seed: number, out: string) => {
  const pairs = jsonl(data(`pairs-${seed}.jsonl`), makePreferencePairs(STEPS * DEMO_DEFAULTS.batchSize * 2, 200 + seed, { habit: DEMO_DEFAULTS.habit }));
  await osp('dpo', trainer.dpo, { model: sft, pairs, out, loss, beta: DEMO_DEFAULTS.beta, batchSize: DEMO_DEFAULTS.batchSize * 2, microBatch: DEMO_DEFAULTS.microBatch, lr: DEMO_DEFAULTS.lr, steps: STEPS, ...common(seed) });
};
/** The seed's Bradley-Terry reward model (trained once, on rater-labelled pairs with their noise). */
async function rewardModel(seed: number): Promise<string> {
  const out = path.join(root, `reward-model-seed${seed}`);
  if (!fs.existsSync(path.join(out, 'final', 'config.json'))) {
    fs.rmSync(out, { recursive: true, force: true });
    const pairs = jsonl(data(`reward-pairs-${seed}.jsonl`), makePreferencePairs(4000, 400 + seed, { habit: DEMO_DEFAULTS.habit }));
    await osp('reward-model', trainer.rewardModel, { model: sft, pairs, out, steps: auxSteps(250), batchSize: 32, microBatch: 32, lr: 1e-3, ...common(seed) });
  }
  if (!(seed in rewardModelAccuracy)) minutesOf['reward model'] = (minutesOf['reward model'] ?? 0) + trainingMinutes(out);
  const evals = MetricsLog.read(path.join(out, 'metrics.jsonl')).filter((m) => typeof m.evalAccuracy === 'number');
  rewardModelAccuracy[seed] = evals.length ? (evals[evals.length - 1].evalAccuracy as number) : NaN;
  return path.join(out, 'final');
}
const ppo = (lr: number) => async (seed: number, out: string) => {
  const rm = await rewardModel(seed);
  await osp('ppo', trainer.ppo, {
    model: sft, rewardModel: rm, prompts: promptsFile(seed, STEPS), out, k: DEMO_DEFAULTS.k, batchSize: DEMO_DEFAULTS.batchSize, microBatch: DEMO_DEFAULTS.microBatch, lr,
    temperature: DEMO_DEFAULTS.temperature, topP: DEMO_DEFAULTS.topP, maxNewTokens: DEMO_DEFAULTS.maxNewTokens, steps: STEPS, scorer: 'demo' as const, ...common(seed),
  });
};
const rsoByRewardModel = async (seed: number, out: string) => online({ sampling: 'rso', rsoRewardModel: await rewardModel(seed) })(seed, out);

interface MethodSpec {
  name: string;
  run?: (seed: number, out: string) => Promise<void>;
}

const SPCE = 'OSP, SPCE loss';
const methods: MethodSpec[] = [
  { name: 'SFT' },
  { name: 'offline DPO', run: offline('dpo') },
  { name: 'offline IPO', run: offline('ipo') },
  { name: SPCE, run: online({ loss: 'spce' }) },
  { name: 'OSP, DPO loss', run: online({ loss: 'dpo' }) },
  { name: 'OSP, IPO loss', run: online({ loss: 'ipo' }) },
  { name: 'OSP, SPCE, random pairing', run: online({ pairing: 'random' }) },
  { name: 'OSP, SPCE, RAFT pairing (SFT on the best of K)', run: online({ pairing: 'raft' }) },
  { name: 'OSP, SPCE, SPIN pairing (data response vs own)', run: online({ pairing: 'spin' }) },
  { name: 'OSP, SPCE, SFT sampling', run: online({ sampling: 'sft' }) },
  { name: 'OSP, SPCE, RSO sampling (judge scores)', run: online({ sampling: 'rso' }) },
  { name: 'OSP, SPCE, RSO sampling (reward-model scores)', run: rsoByRewardModel },
  { name: 'self-rewarding', run: async (seed, out) => osp('self-reward', trainer.selfReward, { model: sft, judge: judgeDir, prompts: promptsFile(seed, STEPS), out, k: DEMO_DEFAULTS.k, batchSize: DEMO_DEFAULTS.batchSize, microBatch: DEMO_DEFAULTS.microBatch, lr: DEMO_DEFAULTS.lr, beta: DEMO_DEFAULTS.beta, temperature: DEMO_DEFAULTS.temperature, topP: DEMO_DEFAULTS.topP, maxNewTokens: DEMO_DEFAULTS.maxNewTokens, steps: STEPS, scorer: 'demo' as const, ...common(seed) }) },
  { name: `RLHF: reward model + PPO, lr ${lrText(PPO_LR)}`, run: ppo(PPO_LR) },
  { name: `RLHF: reward model + PPO, lr ${lrText(DEMO_DEFAULTS.lr)}`, run: ppo(DEMO_DEFAULTS.lr) },
];
// The sweeps' extra runs (their lr 1e-4, 60-step and K 4 corners are rows of the main table).
const sweepDpo = (['spce', 'dpo'] as const).flatMap((loss) =>
  [[LOW_LR, STEPS], [LOW_LR, LONG_STEPS], [DEMO_DEFAULTS.lr, LONG_STEPS]].map(([lr, steps]) => ({ name: `OSP, ${loss.toUpperCase()} loss, lr ${lrText(lr)}, ${steps} steps`, run: online({ loss, lr, steps }), loss, lr, steps })),
);
const sweepK = (['ranked', 'random'] as const).map((pairing) => ({ name: `OSP, SPCE, ${pairing} pairing, K 8`, run: online({ pairing, k: 8 }), pairing }));

const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');

interface Result {
  quality: number[];
  curves: number[][];
}

async function runMethod(m: MethodSpec): Promise<Result> {
  const r: Result = { quality: [], curves: [] };
  minutesOf[m.name] = 0;
  for (const seed of seeds) {
    const out = path.join(root, `${slug(m.name)}-seed${seed}`);
    if (m.run) {
      if (!fs.existsSync(path.join(out, 'final', 'config.json'))) {
        fs.rmSync(out, { recursive: true, force: true });
        await m.run(seed, out);
      }
      minutesOf[m.name] += trainingMinutes(out);
      const curve = MetricsLog.read(path.join(out, 'metrics.jsonl')).map((x) => x.sampleScoreMean ?? NaN);
      if (curve.some(Number.isFinite)) r.curves.push(curve);
    }
    r.quality.push(await quality(m.run ? path.join(out, 'final') : sft, seed));
    process.stderr.write(`${m.name} seed ${seed}: quality ${r.quality[r.quality.length - 1].toFixed(4)}\n`);
  }
  return r;
}

async function reproduce(): Promise<void> {
  if (!fs.existsSync(path.join(sft, 'config.json'))) throw new Error(`no demo model in ${assets}; run npm run demo:build`);
  fs.mkdirSync(root, { recursive: true });
  const results: Record<string, Result> = {};
  for (const m of [...methods, ...sweepDpo, ...sweepK]) results[m.name] = await runMethod(m);
  for (const seed of seeds) await rewardModel(seed); // their accuracy and minutes, also when every run was reused
  // Judge accuracy with 0%, 10% and 100% of the augmentation data.
  const judge: Record<string, number[]> = { '0% (the SFT model)': [await judgeAccuracy(sft)], '100% (the shipped judge, demo/judge: 12000 pairs, 2000 steps)': [await judgeAccuracy(judgeDir)] };
  const tenPct: number[] = [];
  for (const seed of seeds) {
    const out = path.join(root, `augment-10pct-seed${seed}`);
    if (!fs.existsSync(path.join(out, 'final', 'config.json'))) {
      fs.rmSync(out, { recursive: true, force: true });
      const pairs = jsonl(data(`augment-10pct-${seed}.jsonl`), makePreferencePairs(1200, 300 + seed, { habit: DEMO_DEFAULTS.habit }));
      await osp('augment', trainer.augment, { model: sft, pairs, out, steps: auxSteps(200), batchSize: 32, microBatch: 32, lr: 1e-3, minLrRatio: 0.1, warmupSteps: auxSteps(20), ...common(seed) });
    }
    tenPct.push(await judgeAccuracy(path.join(out, 'final')));
  }
  judge['10% (1200 pairs, 200 steps)'] = tenPct;
  if (process.env.REPRO_DOCS === '0') {
    process.stdout.write(`${JSON.stringify({ results, judge }, null, 1)}\n`);
    return;
  }
  writeDocs(results, judge);
}

const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
const sd = (v: number[]) => (v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean(v)) ** 2, 0) / (v.length - 1)) : 0);
const stats = (v: number[]) => `${mean(v).toFixed(4)} ± ${sd(v).toFixed(4)}`;
// Two-sided 95% Student t quantiles by degrees of freedom (1..9).
const T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262];

/** The paired difference a - b over seeds, its 95% t-interval and the verdict it supports. */
function paired(a: number[], b: number[]): { text: string; verdict: string } {
  const d = a.map((x, i) => x - b[i]);
  const m = mean(d);
  const half = d.length > 1 ? T95[Math.min(d.length - 2, T95.length - 1)] * (sd(d) / Math.sqrt(d.length)) : Infinity;
  const verdict = m - half > 0 ? 'holds' : m + half < 0 ? 'reversed' : 'not shown (the interval spans 0)';
  return { text: `${m >= 0 ? '+' : ''}${m.toFixed(4)} [${(m - half).toFixed(4)}, ${(m + half).toFixed(4)}]`, verdict };
}

function writeDocs(r: Record<string, Result>, judge: Record<string, number[]>): void {
  const minutes = Object.values(minutesOf).reduce((a, b) => a + b, 0).toFixed(1);
  const docs = docsDir;
  fs.mkdirSync(docs, { recursive: true });
  const q = (name: string) => r[name].quality;
  const lastMean = (cs: number[][], n = 10) => cs.map((c) => mean(c.slice(-n)));
  const firstMean = (cs: number[][], n = 10) => cs.map((c) => mean(c.slice(0, n)));
  const peakOfMean = (cs: number[][]) => {
    // The mean-over-seeds curve, smoothed over 10 steps; its peak and the step where it is.
    const avg = cs[0].map((_, i) => mean(cs.map((c) => c[i])));
    const smooth = avg.map((_, i) => mean(avg.slice(Math.max(0, i - 9), i + 1)));
    // The peak after the first 10 steps (the running mean is over fewer steps before).
    const first = Math.min(9, smooth.length - 1);
    const at = smooth.reduce((b, v, i) => (i > first && v > smooth[b] ? i : b), first);
    return `${smooth[at].toFixed(4)} at step ${at + 1}`;
  };
  const claims: [string, string, string, string][] = [
    ['OSP improves on the SFT model', 'Table 1', SPCE, 'SFT'],
    ['OSP beats offline DPO', 'Table 1', SPCE, 'offline DPO'],
    ['OSP beats offline IPO', 'Table 1', SPCE, 'offline IPO'],
    ['OSP beats RLHF (reward model + PPO)', 'Table 1', SPCE, `RLHF: reward model + PPO, lr ${lrText(PPO_LR)}`],
    ['OSP beats self-rewarding', 'Table 2', SPCE, 'self-rewarding'],
    ['the SPCE loss beats the DPO loss online', 'Figure 5(a)', SPCE, 'OSP, DPO loss'],
    ['the SPCE loss beats the IPO loss online', 'Figure 5(a)', SPCE, 'OSP, IPO loss'],
    [`the SPCE loss beats the DPO loss online at lr ${lrText(LOW_LR)} over ${LONG_STEPS} steps`, 'Figure 5(a)', `OSP, SPCE loss, lr ${lrText(LOW_LR)}, ${LONG_STEPS} steps`, `OSP, DPO loss, lr ${lrText(LOW_LR)}, ${LONG_STEPS} steps`],
    ['ranked pairing beats random pairing (K 4)', 'Figure 5(b)', SPCE, 'OSP, SPCE, random pairing'],
    ['ranked pairing beats random pairing (K 8)', 'Figure 5(b)', 'OSP, SPCE, ranked pairing, K 8', 'OSP, SPCE, random pairing, K 8'],
    ['ranked pairing beats RAFT', 'Figure 5(b)', SPCE, 'OSP, SPCE, RAFT pairing (SFT on the best of K)'],
    ['ranked pairing beats SPIN pairing', 'Figure 5(b)', SPCE, 'OSP, SPCE, SPIN pairing (data response vs own)'],
    ['on-policy sampling beats SFT sampling', 'Figure 5(c)', SPCE, 'OSP, SPCE, SFT sampling'],
    ['on-policy sampling beats RSO sampling (judge scores)', 'Figure 5(c)', SPCE, 'OSP, SPCE, RSO sampling (judge scores)'],
    ['on-policy sampling beats RSO sampling (reward-model scores)', 'Figure 5(c)', SPCE, 'OSP, SPCE, RSO sampling (reward-model scores)'],
  ];
  const online = Object.entries(r).filter(([, v]) => v.curves.length > 0);
  const md = [
    "# The paper's comparisons in miniature (`npm run repro:mini`)",
    '',
    `The embedded sorting task (demo/), ${seeds.length} seeds per method, ${STEPS} optimizer steps per trained method unless a row says otherwise, on the cpu: ${minutes} minutes of training in all (the elapsed time in the runs' metrics; evaluation comes on top).`,
    `Quality is the task scorer's mean on ${EVAL_PROMPTS} held-out prompts, 4 samples each at temperature ${DEMO_DEFAULTS.temperature}, top-p ${DEMO_DEFAULTS.topP}; the scorer is the task's own (src/demo/task.ts), not the judge that made OSP's targets.`,
    `Every trained method starts from the same shipped SFT model (demo/sft); online methods judge with the shipped augmented judge (demo/judge). Settings: the demo's (K ${DEMO_DEFAULTS.k}, ${DEMO_DEFAULTS.batchSize} prompts per step, lr ${lrText(DEMO_DEFAULTS.lr)}, beta ${DEMO_DEFAULTS.beta}), cosine decay after a 10% linear warm-up (osp's default, as the paper's DeepSpeed-Chat setup).`,
    'Offline DPO and IPO train on rater-labelled pairs whose labels are flipped by Bradley-Terry noise (src/demo/data.ts); the reward model trains on 4000 such pairs (250 steps, lr 1e-3).',
    `PPO's learning rate: ${lrText(PPO_LR)} was the best of 1e-5, 3e-5 and 1e-4 in a one-seed trial on other prompts; both it and the demo's lr are rows.`,
    '',
    'Command: `npm run repro:mini` (runs kept under runs/repro-mini/; an interrupted reproduction reuses finished runs).',
    '',
    '## Quality of each method',
    '',
    '| method | quality: mean ± sd over seeds | per seed | training minutes (all seeds) |',
    '| --- | --- | --- | --- |',
    ...methods.map((m) => `| ${m.name} | ${stats(q(m.name))} | ${q(m.name).map((x) => x.toFixed(4)).join(', ')} | ${(minutesOf[m.name] ?? NaN).toFixed(1)} |`),
    '',
    `The reward models' accuracy on their held-out pairs (5%, against the raters' noisy labels): ${seeds.map((x) => (rewardModelAccuracy[x] ?? NaN).toFixed(3)).join(', ')}.` +
      (minutesOf['reward model'] !== undefined ? ` They trained for ${minutesOf['reward model'].toFixed(1)} minutes (all seeds).` : ''),
    '',
    "## The paper's claims, one by one",
    '',
    'Difference of quality (first method minus second), paired by seed, with its 95% t-interval over the seeds.',
    '',
    '| claim | paper | difference [95% interval] | in the miniature |',
    '| --- | --- | --- | --- |',
    ...claims.map(([claim, where, a, b]) => {
      const p = paired(q(a), q(b));
      return `| ${claim} | ${where} | ${p.text} | ${p.verdict} |`;
    }),
    (() => {
      const j0 = judge['0% (the SFT model)'][0];
      const j10 = mean(judge['10% (1200 pairs, 200 steps)']);
      const j100 = judge['100% (the shipped judge, demo/judge: 12000 pairs, 2000 steps)'][0];
      const below = judge['10% (1200 pairs, 200 steps)'].filter((x) => x <= j0).length;
      const verdict = j0 < j10 && j10 < j100 ? `holds on the means${below ? ` (${below} of ${seeds.length} seeds of the 10% judge are not above the SFT model)` : ''}` : 'not shown';
      return `| preference augmentation raises the judge's accuracy, more data more so | Table 3 | 0%: ${j0.toFixed(3)}, 10%: ${j10.toFixed(3)}, 100%: ${j100.toFixed(3)} | ${verdict} |`;
    })(),
    '',
    "## The DPO loss online against SPCE, by learning rate and length (Figure 5(a)'s question)",
    '',
    'Final quality (held-out, as above); the peak of the mean-over-seeds sample-quality curve (10-step running mean) and the mean of the last 10 steps of each run.',
    '',
    '| loss | lr | steps | final quality | peak of the training curve | last 10 steps |',
    '| --- | --- | --- | --- | --- | --- |',
    ...(['spce', 'dpo'] as const).flatMap((loss) =>
      [[LOW_LR, STEPS], [LOW_LR, LONG_STEPS], [DEMO_DEFAULTS.lr, STEPS], [DEMO_DEFAULTS.lr, LONG_STEPS]].map(([lr, steps]) => {
        const name = lr === DEMO_DEFAULTS.lr && steps === STEPS ? (loss === 'spce' ? SPCE : 'OSP, DPO loss') : `OSP, ${loss.toUpperCase()} loss, lr ${lrText(lr)}, ${steps} steps`;
        const x = r[name];
        return `| ${loss.toUpperCase()} | ${lrText(lr)} | ${steps} | ${stats(x.quality)} | ${peakOfMean(x.curves)} | ${stats(lastMean(x.curves))} |`;
      }),
    ),
    '',
    "## Ranked against random pairing, by K (Figure 5(b)'s question)",
    '',
    '| pairing | K | final quality | per seed |',
    '| --- | --- | --- | --- |',
    ...[[SPCE, 'ranked', 4], ['OSP, SPCE, random pairing', 'random', 4], ['OSP, SPCE, ranked pairing, K 8', 'ranked', 8], ['OSP, SPCE, random pairing, K 8', 'random', 8]].map(
      ([name, pairing, k]) => `| ${pairing} | ${k} | ${stats(q(String(name)))} | ${q(String(name)).map((x) => x.toFixed(4)).join(', ')} |`,
    ),
    '',
    "## Judge accuracy against the scorer (Table 3's question)",
    '',
    `Held-out pairs labelled by the scorer without noise (${DEMO_DEFAULTS.judgePairs} pairs), both orders averaged. Augmentation trains on rater-labelled pairs with their label noise.`,
    '',
    '| augmentation data | accuracy | per seed |',
    '| --- | --- | --- |',
    ...Object.entries(judge).map(([k, v]) => `| ${k} | ${stats(v)} | ${v.map((x) => x.toFixed(3)).join(', ')} |`),
    '',
    '## Sample quality over training, per online method',
    '',
    'Plotted in [repro-mini.html](repro-mini.html) (mean over seeds of the scorer quality of each step\'s own samples; for RSO and SFT sampling these are the SFT model\'s samples, not the policy\'s).',
    '',
    '| online method | first 10 steps | last 10 steps |',
    '| --- | --- | --- |',
    ...online.map(([m, v]) => `| ${m} | ${stats(firstMean(v.curves))} | ${stats(lastMean(v.curves))} |`),
    '',
  ].join('\n');
  // The reading of the results is written by hand between these markers; a rerun keeps it, so it
  // names the run it reads, and a reader can compare that with the tables' run.
  const [open, close] = ['<!-- reading: kept by npm run repro:mini -->', '<!-- /reading -->'];
  const file = path.join(docs, 'repro-mini.md');
  const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const reading = old.includes(open) && old.includes(close) ? old.slice(old.indexOf(open), old.indexOf(close) + close.length) : '';
  fs.writeFileSync(file, reading ? md.replace('## Quality of each method', `${reading}\n\n## Quality of each method`) : md);
  const series = online.map(([m, v]) => ({ label: m, data: v.curves[0].map((_, i) => mean(v.curves.filter((c) => i < c.length).map((c) => c[i]))) }));
  const html = `<!doctype html><meta charset="utf-8"><title>osp repro:mini</title>
<h1>${escapeHtml('Sample quality over training steps, per method (mean over seeds)')}</h1><div style="height:560px"><canvas id="c"></canvas></div>
<script type="application/json" id="d">${jsonForScript(series)}</script><script>${chartJsCode()}</script>
<script>const s=JSON.parse(document.getElementById('d').textContent);const n=Math.max(...s.map(x=>x.data.length));new Chart(document.getElementById('c'),{type:'line',data:{labels:Array.from({length:n},(_,i)=>i+1),datasets:s.map(x=>({label:x.label,data:x.data,pointRadius:0,borderWidth:1.5}))},options:{maintainAspectRatio:false,animation:false,scales:{x:{title:{display:true,text:'step'}},y:{title:{display:true,text:'scorer quality of the samples'}}}}});</script>`;
  fs.writeFileSync(path.join(docs, 'repro-mini.html'), html);
  process.stdout.write(`${md}\nwrote docs/repro-mini.md and docs/repro-mini.html\n`);
}

reproduce().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
