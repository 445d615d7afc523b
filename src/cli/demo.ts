// `osp demo` (npm run demo): the whole OSP pipeline on the embedded task, on a CPU in minutes.
//   1. the shipped SFT model (demo/sft: a tiny Llama trained from scratch by osp on imperfect
//      demonstrations of the sorting task, see scripts/build-demo.ts) and its judge (demo/judge: the
//      same model after preference augmentation on scorer-labelled pairs with label noise); with
//      --augment (or when demo/judge is absent) the augmentation runs here;
//   2. OSP training (osp train) of the SFT model with that judge on task prompts;
//   3. evaluation on held-out prompts: the scorer's quality of SFT and OSP samples (mean and a 95%
//      bootstrap interval), the judge's accuracy against the scorer on held-out pairs (before and
//      after augmentation), response lengths; a table on stdout and in RUN/demo.md (+ demo.json).
import * as fs from 'fs';
import * as path from 'path';
import { Command, Option } from 'commander';
import { z } from 'zod';
import { generate } from '../generate';
import { Judge } from '../judge/judge';
import { LlamaModel } from '../model/llama';
import { Tokenizer } from '../model/tokenizer';
import { makePreferencePairs, makePrompts, score } from '../demo';
import { MetricsLog } from '../osp/metrics';
import { writeFileAtomicSync } from '../util/atomicWrite';
import { escapeControl, escapeMarkdown } from '../util/escape';
import { meanWithCi, winRate } from '../osp/eval';
import * as trainer from '../osp/trainer';
import { loadModelFolder } from '../osp/models';
import { runWithProgress } from './train';
import { UsageError, deviceOption, int, mergeConfig, num, positiveInt, resolveDevice, validate } from './common';

/** A model's answer inside a Markdown code span: one line, no backtick to end the span early. */
const codeSpan = (text: string) => escapeControl(text.trim()).replace(/`/g, "'");

function readMetricsLines(file: string) {
  return fs.existsSync(file) ? MetricsLog.read(file) : [];
}

/** Where the shipped demo models live (the package's demo/ folder; src/cli and dist/cli are both two levels down). */
export function demoAssetsDir(): string {
  return process.env.OSP_DEMO_ASSETS ?? path.resolve(__dirname, '..', '..', 'demo');
}

/** The settings the demo trains with (also written into demo/README.md by the build script). */
export const DEMO_DEFAULTS = {
  steps: 60,
  k: 4,
  batchSize: 8,
  microBatch: 16,
  lr: 1e-4,
  beta: 0.1,
  temperature: 0.7,
  topP: 0.9,
  maxNewTokens: 24,
  evalPrompts: 200,
  evalSamples: 4,
  judgePairs: 400,
  seed: 1,
  augmentSteps: 400,
  augmentPairs: 4000,
  habit: 0.5,
};

/** What --quick changes of the defaults (flags given on the command line still win). */
const QUICK = { steps: 10, evalPrompts: 50 };

const schema = z.object({
  out: z.string().optional(),
  device: z.enum(['cpu', 'cuda']).optional(),
  steps: positiveInt(),
  k: int().refine((v) => v >= 2, 'K must be at least 2'),
  batchSize: positiveInt(),
  evalPrompts: positiveInt(),
  seed: int().refine((v) => v >= 0, 'expected an integer >= 0'),
  augment: z.boolean().optional(),
  augmentSteps: positiveInt(),
  quick: z.boolean().optional(),
  loss: z.enum(['spce', 'dpo', 'ipo']),
  pairing: z.enum(['ranked', 'random']),
  lr: num().refine((v) => v > 0, 'expected a learning rate > 0').optional(),
  lora: z.string().optional(),
  config: z.string().optional(),
});

type DemoSettings = z.infer<typeof schema>;

function jsonl(file: string, rows: object[]): void {
  writeFileAtomicSync(file, rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
}

async function qualityOf(model: LlamaModel, tok: Tokenizer, prompts: string[], s: { temperature: number; seed: number; samples: number }) {
  const out = await generate(model, tok, prompts, { maxNewTokens: DEMO_DEFAULTS.maxNewTokens, temperature: s.temperature, topP: DEMO_DEFAULTS.topP, seed: s.seed, numSamples: s.samples });
  const perPrompt = out.map((o, i) => o.samples.reduce((a, x) => a + score(prompts[i], x.text), 0) / o.samples.length);
  const perfect = out.map((o, i) => o.samples.filter((x) => score(prompts[i], x.text) === 1).length / o.samples.length);
  const lengths = out.flatMap((o) => o.samples.map((x) => x.tokens.length));
  const texts = out.map((o) => o.samples[0].text);
  return { score: meanWithCi(perPrompt, { seed: s.seed }), perfect: meanWithCi(perfect, { seed: s.seed }), length: lengths.reduce((a, b) => a + b, 0) / lengths.length, texts };
}

async function judgeAccuracy(dir: string, device: 'cpu' | 'cuda', n: number, seed: number) {
  const model = await LlamaModel.load(dir, { device });
  const tok = await Tokenizer.load(dir);
  const judge = await Judge.create(model, tok, { batchSize: 64 });
  // Held-out pairs labelled by the scorer without noise: the judge's accuracy is agreement with the scorer.
  const pairs = makePreferencePairs(n, seed + 7777, { flipNoise: 0, habit: DEMO_DEFAULTS.habit });
  const prefs = await judge.preferences(pairs.map((p) => ({ prompt: p.prompt, a: p.chosen, b: p.rejected })));
  const correct = prefs.map((q) => (q.p > 0.5 ? 1 : q.p === 0.5 ? 0.5 : 0));
  const disagreement = prefs.reduce((a, q) => a + Math.abs(q.pAB - (1 - q.pBA)), 0) / prefs.length;
  model.dispose();
  return { accuracy: meanWithCi(correct, { seed }), disagreement };
}

const pct = (c: { mean: number; lo: number; hi: number }) => `${(100 * c.mean).toFixed(1)}% [${(100 * c.lo).toFixed(1)}, ${(100 * c.hi).toFixed(1)}]`;
const num3 = (c: { mean: number; lo: number; hi: number }) => `${c.mean.toFixed(3)} [${c.lo.toFixed(3)}, ${c.hi.toFixed(3)}]`;

export async function runDemo(s: DemoSettings): Promise<void> {
  const assets = demoAssetsDir();
  const sft = path.join(assets, 'sft');
  if (!fs.existsSync(path.join(sft, 'config.json'))) throw new UsageError(`the demo model is missing (${sft}); rebuild it with: npm run demo:build`);
  const device = resolveDevice(s.device);
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const out = path.resolve(s.out ?? path.join('runs', `demo-${stamp}`));
  if (fs.existsSync(out) && fs.readdirSync(out).length > 0) throw new UsageError(`--out ${out} exists and is not empty`);
  fs.mkdirSync(path.join(out, 'data'), { recursive: true });
  const quick = Boolean(s.quick);
  const t0 = Date.now();
  const log = (m: string) => process.stderr.write(`\n== ${m}\n`);
  const common = { device, seed: s.seed };
  /** A stopped (Ctrl-C) training ends the demo with the run's resume hint, not an error. */
  const stoppedAt = (r: trainer.RunResult) => {
    if (r.stopped) process.stderr.write(`the demo stopped during ${r.command}; its run folder is ${r.runDir}\n`);
    return r.stopped;
  };

  // 1. The judge.
  let judgeDir = path.join(assets, 'judge');
  if (s.augment || !fs.existsSync(path.join(judgeDir, 'config.json'))) {
    log('preference augmentation: fine-tuning the SFT model on judge instructions from scorer-labelled pairs (both orders)');
    jsonl(path.join(out, 'data', 'pairs.jsonl'), makePreferencePairs(quick ? 64 : DEMO_DEFAULTS.augmentPairs, s.seed + 5, { habit: DEMO_DEFAULTS.habit }));
    const r = await runWithProgress('augment', (hooks) => trainer.augment({
      model: sft, pairs: path.join(out, 'data', 'pairs.jsonl'), out: path.join(out, 'augment'),
      steps: quick ? 2 : s.augmentSteps, batchSize: 32, microBatch: 32, lr: 2e-3, schedule: 'cosine', warmupSteps: quick ? 0 : 20, saveEvery: 100000, ...common,
    }, hooks));
    if (stoppedAt(r)) return;
    judgeDir = path.join(out, 'augment', 'final');
  } else {
    log(`judge: the shipped augmented model ${judgeDir} (pass --augment to redo the augmentation here)`);
  }

  // 2. OSP.
  log(`online self-preferring: ${s.steps} steps x ${s.batchSize} prompts x K ${s.k} samples, ${s.loss} loss, ${s.pairing} pairing`);
  jsonl(path.join(out, 'data', 'prompts.jsonl'), makePrompts(Math.max(s.batchSize, s.steps * s.batchSize), s.seed + 11).map((prompt) => ({ prompt })));
  const trained = await runWithProgress('train', (hooks) => trainer.train({
    model: sft, judge: judgeDir, prompts: path.join(out, 'data', 'prompts.jsonl'), out: path.join(out, 'osp'),
    k: s.k, batchSize: s.batchSize, microBatch: DEMO_DEFAULTS.microBatch, lr: s.lr ?? DEMO_DEFAULTS.lr, beta: DEMO_DEFAULTS.beta, lora: s.lora,
    loss: s.loss, pairing: s.pairing, temperature: DEMO_DEFAULTS.temperature, topP: DEMO_DEFAULTS.topP,
    maxNewTokens: DEMO_DEFAULTS.maxNewTokens, steps: s.steps, saveEvery: Math.max(10, Math.ceil(s.steps / 3)), scorer: 'demo', ...common,
  }, hooks));
  if (stoppedAt(trained)) return;

  // 3. Evaluation.
  log(`evaluation on ${s.evalPrompts} held-out prompts`);
  const evalPrompts = makePrompts(s.evalPrompts, s.seed + 999);
  const tok = await Tokenizer.load(sft);
  const results: Record<string, { sampled: Awaited<ReturnType<typeof qualityOf>>; greedy: Awaited<ReturnType<typeof qualityOf>> }> = {};
  for (const [name, dir] of [['SFT', sft], ['OSP', path.join(out, 'osp', 'final')]] as const) {
    const { model } = await loadModelFolder('model', dir, { device, dtype: 'f32' }); // final/ is an adapter folder with --lora
    results[name] = {
      sampled: await qualityOf(model, tok, evalPrompts, { temperature: DEMO_DEFAULTS.temperature, seed: s.seed + 3, samples: quick ? 1 : DEMO_DEFAULTS.evalSamples }),
      greedy: await qualityOf(model, tok, evalPrompts, { temperature: 0, seed: s.seed + 3, samples: 1 }),
    };
    model.dispose();
  }
  const nPairs = quick ? 40 : DEMO_DEFAULTS.judgePairs;
  const judgeBefore = await judgeAccuracy(sft, device, nPairs, s.seed);
  const judgeAfter = judgeDir === sft ? judgeBefore : await judgeAccuracy(judgeDir, device, nPairs, s.seed);
  // The paper's head-to-head: the judge compares OSP's and SFT's greedy answers in both orders.
  const h2hModel = await LlamaModel.load(judgeDir, { device });
  const h2hJudge = await Judge.create(h2hModel, await Tokenizer.load(judgeDir), { batchSize: 64 });
  const h2h = (await winRate(h2hJudge, evalPrompts.map((prompt, i) => ({ prompt, a: results.OSP.greedy.texts[i], b: results.SFT.greedy.texts[i] })), { seed: s.seed })).summary;
  h2hModel.dispose();
  const minutes = (Date.now() - t0) / 60000;
  const rows = [
    ['scorer quality, sampled (T 0.7, top-p 0.9)', num3(results.SFT.sampled.score), num3(results.OSP.sampled.score)],
    ['perfect answers, sampled', pct(results.SFT.sampled.perfect), pct(results.OSP.sampled.perfect)],
    ['scorer quality, greedy', num3(results.SFT.greedy.score), num3(results.OSP.greedy.score)],
    ['perfect answers, greedy', pct(results.SFT.greedy.perfect), pct(results.OSP.greedy.perfect)],
    ['mean response length (tokens, sampled)', results.SFT.sampled.length.toFixed(2), results.OSP.sampled.length.toFixed(2)],
  ];
  const h2hLine = `Head to head (the judge, both orders, greedy answers): OSP wins ${h2h.wins}, ties ${h2h.ties}, loses ${h2h.losses} of ${h2h.n}; win rate of OSP over SFT ${pct(h2h.winRate)} (ties count half). ` +
    'This is the judge that made the training targets, so it favours what it taught; the scorer above is the independent measure.';
  // Two prompts where the greedy answers differ: what changed, in the task's own words.
  const examples = evalPrompts
    .map((prompt, i) => ({ prompt, sft: results.SFT.greedy.texts[i], osp: results.OSP.greedy.texts[i] }))
    .filter((e) => e.sft.trim() !== e.osp.trim())
    .slice(0, 2)
    .flatMap((e) => [
      `- ${escapeMarkdown(e.prompt.replace(/\n/g, ' '))}`,
      `  - SFT: \`${codeSpan(e.sft)}\` (score ${score(e.prompt, e.sft).toFixed(2)})`,
      `  - OSP: \`${codeSpan(e.osp)}\` (score ${score(e.prompt, e.osp).toFixed(2)})`,
    ]);
  const metrics = readMetricsLines(path.join(out, 'osp', 'metrics.jsonl'));
  const last = metrics.slice(-10);
  const meanOf = (k: 'loss' | 'pHatMean' | 'targetMean') => last.reduce((a, m) => a + (m[k] ?? 0), 0) / Math.max(1, last.length);
  const table = [
    `# osp demo: online self-preferring on the embedded sorting task`,
    '',
    `${s.evalPrompts} held-out prompts; 95% bootstrap intervals over prompts. Run folder: \`${codeSpan(out)}\``,
    '',
    '| | SFT model | OSP model |',
    '| --- | --- | --- |',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
    h2hLine,
    '',
    '| judge (held-out pairs, scorer as truth) | accuracy | position disagreement |',
    '| --- | --- | --- |',
    `| SFT model as judge (no augmentation) | ${pct(judgeBefore.accuracy)} | ${judgeBefore.disagreement.toFixed(3)} |`,
    `| augmented judge (\`${codeSpan(path.relative(process.cwd(), judgeDir) || judgeDir)}\`) | ${pct(judgeAfter.accuracy)} | ${judgeAfter.disagreement.toFixed(3)} |`,
    '',
    ...(examples.length ? ['Two held-out prompts, greedy answers before and after OSP:', '', ...examples, ''] : []),
    'How to read this:',
    '- scorer quality: the task\'s own score of an answer in [0, 1] (the right numbers, in order, complete and well formatted); 1 only for the perfect answer.',
    '- target: the judge\'s preference p(chosen > rejected) for a pair of sampled answers; pHat = sigmoid(margin) is the policy\'s own implied preference.',
    `- the SPCE loss softplus(z) - target z stays near log 2 = 0.693 (last 10 steps: ${meanOf('loss').toFixed(3)}; mean pHat ${meanOf('pHatMean').toFixed(3)}, ` +
      `mean target ${meanOf('targetMean').toFixed(3)}): each step's pairs are new samples with soft targets near 0.5, and beta keeps the margins small, so the loss ` +
      'measures how well pHat follows the judge on fresh pairs, not quality; quality shows in the scorer rows above and in report.html.',
    '',
    `Settings: ${s.steps} OSP steps, ${s.batchSize} prompts x K ${s.k}, loss ${s.loss}, pairing ${s.pairing}, beta ${DEMO_DEFAULTS.beta}, lr ${s.lr ?? DEMO_DEFAULTS.lr}${s.lora ? `, LoRA ${s.lora}` : ''}, device ${device}, seed ${s.seed}; ${minutes.toFixed(1)} minutes.`,
    `Report with plots: ${path.join(out, 'osp', 'report.html')}`,
  ].join('\n');
  writeFileAtomicSync(path.join(out, 'demo.md'), `${table}\n`);
  writeFileAtomicSync(path.join(out, 'demo.json'), `${JSON.stringify({ settings: s, device, minutes, results, headToHead: h2h, judge: { before: judgeBefore, after: judgeAfter, dir: judgeDir } }, null, 2)}\n`);
  process.stdout.write(`\n${table}\n`);
}

export function demoCommand(program: Command): void {
  const cmd = program
    .command('demo')
    .description('the whole OSP pipeline on the embedded sorting task (shipped tiny SFT model and judge): OSP training, then evaluation against the task scorer')
    .option('--out <dir>', 'run folder (default runs/demo-<time>)')
    .addOption(deviceOption())
    .option('--steps <n>', 'OSP steps', String(DEMO_DEFAULTS.steps))
    .option('--k <n>', 'samples per prompt', String(DEMO_DEFAULTS.k))
    .option('--batch-size <n>', 'prompts per step', String(DEMO_DEFAULTS.batchSize))
    .option('--eval-prompts <n>', 'held-out prompts for the evaluation', String(DEMO_DEFAULTS.evalPrompts))
    .option('--seed <n>', 'seed', String(DEMO_DEFAULTS.seed))
    .option('--augment', 'redo the preference augmentation of the judge here instead of using the shipped judge')
    .option('--augment-steps <n>', 'steps of the augmentation with --augment', String(DEMO_DEFAULTS.augmentSteps))
    .addOption(new Option('--loss <kind>', 'preference loss').choices(['spce', 'dpo', 'ipo']).default('spce'))
    .addOption(new Option('--pairing <kind>', 'pairing').choices(['ranked', 'random']).default('ranked'))
    .option('--lr <x>', `OSP learning rate (default ${DEMO_DEFAULTS.lr})`)
    .option('--lora <spec>', 'train LoRA adapters instead of the whole model, e.g. r=8,alpha=16 (final/ is then an adapter folder)')
    .option('--quick', `a shortened run, about 2 s on 2 cores: ${QUICK.steps} steps and ${QUICK.evalPrompts} evaluation prompts unless given, one sample each`)
    .option('--config <file>', 'JSON file giving any of these settings');
  cmd.action(async (raw: Record<string, unknown>) => {
    if (raw.quick) for (const [k, v] of Object.entries(QUICK)) if (cmd.getOptionValueSource(k) === 'default') raw[k] = String(v);
    const s = validate(schema, mergeConfig(cmd, raw));
    await runDemo(s);
  });
}
