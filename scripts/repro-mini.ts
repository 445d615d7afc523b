// npm run repro:mini: the paper's comparisons in miniature on the embedded sorting task (demo/), with
// 3 seeds each, on the cpu:
//   methods  SFT (no further training), offline DPO and IPO on scorer-labelled pairs with label noise,
//            OSP with the SPCE / DPO / IPO loss (ranked pairing), OSP SPCE with random pairing, and
//            the self-rewarding baseline (best vs worst, DPO loss)
//   quality  the task scorer's mean on held-out prompts (sampled at T 0.7, top-p 0.9, 4 per prompt)
//   curves   the online runs' scorer quality of their own samples per step, per loss (Figure 5a's
//            question: does the DPO loss overfit online while SPCE does not?)
//   judge    judge accuracy against the scorer with 0%, 10% and 100% of the preference data used for
//            augmentation (Table 3's question)
// Writes docs/repro-mini.md (tables and the exact command) and docs/repro-mini.html (the curves,
// drawn by Chart.js), and keeps every run under runs/repro-mini/. Results are reported as they come.
import * as fs from 'fs';
import * as path from 'path';
import * as trainer from '../src/osp/trainer';
import { DEMO_DEFAULTS, demoAssetsDir } from '../src/cli/demo';
import { makePreferencePairs, makePrompts, score } from '../src/demo';
import { generate } from '../src/generate';
import { Judge } from '../src/judge/judge';
import { LlamaModel } from '../src/model/llama';
import { Tokenizer } from '../src/model/tokenizer';
import { meanWithCi } from '../src/osp/eval';
import { MetricsLog } from '../src/osp/metrics';
import { chartJsCode, escapeHtml, jsonForScript } from '../src/osp/report';

const root = path.resolve(process.argv[2] ?? path.join('runs', 'repro-mini'));
const seeds = (process.env.REPRO_SEEDS ?? '1,2,3').split(',').map(Number);
const STEPS = Number(process.env.REPRO_STEPS ?? DEMO_DEFAULTS.steps);
const EVAL_PROMPTS = Number(process.env.REPRO_EVAL ?? 200);
const assets = demoAssetsDir();
const sft = path.join(assets, 'sft');
const judgeDir = path.join(assets, 'judge');
const started = Date.now();

/** Runs a library trainer call, logging it; a stopped or failed run stops the script. */
async function osp<S>(what: string, fn: (settings: S, hooks: trainer.TrainerHooks) => Promise<trainer.RunResult>, settings: S): Promise<void> {
  process.stderr.write(`\n$ osp ${what} ${JSON.stringify(settings)}\n`);
  const r = await fn(settings, { onStepDone: (m, line) => process.stderr.write(`  step ${m.step}: ${line}\n`) });
  if (r.stopped) throw new Error(`osp ${what} stopped at step ${r.lastStep}`);
}

function jsonl(file: string, rows: object[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
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

interface MethodSpec {
  name: string;
  run: (seed: number, out: string) => Promise<void>;
}

const common = (seed: number) => ({ device: 'cpu' as const, seed, saveEvery: 100000 });
const onlineSettings = (seed: number, prompts: string, out: string) => ({
  model: sft, judge: judgeDir, prompts, out, k: DEMO_DEFAULTS.k, batchSize: DEMO_DEFAULTS.batchSize, microBatch: DEMO_DEFAULTS.microBatch, lr: DEMO_DEFAULTS.lr,
  beta: DEMO_DEFAULTS.beta, temperature: DEMO_DEFAULTS.temperature, topP: DEMO_DEFAULTS.topP, maxNewTokens: DEMO_DEFAULTS.maxNewTokens, steps: STEPS, scorer: 'demo' as const, ...common(seed),
});
const promptsFile = (seed: number) => {
  const prompts = path.join(root, 'data', `prompts-${seed}.jsonl`);
  jsonl(prompts, makePrompts(STEPS * DEMO_DEFAULTS.batchSize, 100 + seed).map((prompt) => ({ prompt })));
  return prompts;
};
const online = (extra: Pick<trainer.TrainSettings, 'loss' | 'pairing'>) => async (seed: number, out: string) => {
  await osp('train', trainer.train, { ...onlineSettings(seed, promptsFile(seed), out), ...extra });
};
const offline = (loss: 'dpo' | 'ipo') => async (seed: number, out: string) => {
  const pairs = path.join(root, 'data', `pairs-${seed}.jsonl`);
  jsonl(pairs, makePreferencePairs(STEPS * DEMO_DEFAULTS.batchSize * 2, 200 + seed, { habit: DEMO_DEFAULTS.habit }));
  await osp('dpo', trainer.dpo, { model: sft, pairs, out, loss, beta: DEMO_DEFAULTS.beta, batchSize: DEMO_DEFAULTS.batchSize * 2, microBatch: DEMO_DEFAULTS.microBatch, lr: DEMO_DEFAULTS.lr, steps: STEPS, ...common(seed) });
};

const methods: MethodSpec[] = [
  { name: 'SFT', run: async () => undefined },
  { name: 'offline DPO', run: offline('dpo') },
  { name: 'offline IPO', run: offline('ipo') },
  { name: 'OSP, SPCE loss', run: online({ loss: 'spce' }) },
  { name: 'OSP, DPO loss', run: online({ loss: 'dpo' }) },
  { name: 'OSP, IPO loss', run: online({ loss: 'ipo' }) },
  { name: 'OSP, SPCE, random pairing', run: online({ loss: 'spce', pairing: 'random' }) },
  { name: 'self-rewarding', run: async (seed, out) => osp('self-reward', trainer.selfReward, onlineSettings(seed, promptsFile(seed), out)) },
];

const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');

async function reproduce(): Promise<void> {
  if (!fs.existsSync(path.join(sft, 'config.json'))) throw new Error(`no demo model in ${assets}; run npm run demo:build`);
  fs.mkdirSync(root, { recursive: true });
  const quality_: Record<string, number[]> = {};
  const curves: Record<string, number[][]> = {};
  for (const m of methods) {
    quality_[m.name] = [];
    for (const seed of seeds) {
      const out = path.join(root, `${slug(m.name)}-seed${seed}`);
      if (m.name !== 'SFT') {
        if (!fs.existsSync(path.join(out, 'final', 'config.json'))) {
          fs.rmSync(out, { recursive: true, force: true });
          await m.run(seed, out);
        }
        const metrics = MetricsLog.read(path.join(out, 'metrics.jsonl'));
        const curve = metrics.map((x) => x.sampleScoreMean ?? NaN);
        if (curve.some(Number.isFinite)) (curves[m.name] ??= []).push(curve);
      }
      quality_[m.name].push(await quality(m.name === 'SFT' ? sft : path.join(out, 'final'), seed));
      process.stderr.write(`${m.name} seed ${seed}: quality ${quality_[m.name][quality_[m.name].length - 1].toFixed(4)}\n`);
    }
  }
  // Judge accuracy with 0%, 10% and 100% of the augmentation data.
  const judge: Record<string, number[]> = { '0% (the SFT model)': [await judgeAccuracy(sft)], '100% (the shipped judge, demo/judge)': [await judgeAccuracy(judgeDir)] };
  const tenPct: number[] = [];
  for (const seed of seeds) {
    const out = path.join(root, `augment-10pct-seed${seed}`);
    if (!fs.existsSync(path.join(out, 'final', 'config.json'))) {
      fs.rmSync(out, { recursive: true, force: true });
      const pairs = path.join(root, 'data', `augment-10pct-${seed}.jsonl`);
      jsonl(pairs, makePreferencePairs(1200, 300 + seed, { habit: DEMO_DEFAULTS.habit }));
      await osp('augment', trainer.augment, { model: sft, pairs, out, steps: 200, batchSize: 32, microBatch: 32, lr: 1e-3, schedule: 'cosine', minLrRatio: 0.1, warmupSteps: 20, ...common(seed) });
    }
    tenPct.push(await judgeAccuracy(path.join(out, 'final')));
  }
  judge['10% (1200 pairs, 200 steps)'] = tenPct;
  writeDocs(quality_, curves, judge);
}

function stats(v: number[]): string {
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const sd = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : 0;
  return `${mean.toFixed(4)} ± ${sd.toFixed(4)}`;
}

function writeDocs(q: Record<string, number[]>, curves: Record<string, number[][]>, judge: Record<string, number[]>): void {
  const minutes = ((Date.now() - started) / 60000).toFixed(1);
  const docs = path.join(__dirname, '..', 'docs');
  fs.mkdirSync(docs, { recursive: true });
  const ci = (v: number[]) => {
    const c = meanWithCi(v, { seed: 1 });
    return `[${c.lo.toFixed(4)}, ${c.hi.toFixed(4)}]`;
  };
  const md = [
    '# The paper\'s comparisons in miniature (`npm run repro:mini`)',
    '',
    `The embedded sorting task (demo/), ${seeds.length} seeds per method, ${STEPS} optimizer steps per trained method, on the cpu (${minutes} minutes).`,
    `Quality is the task scorer's mean on ${EVAL_PROMPTS} held-out prompts, 4 samples each at temperature ${DEMO_DEFAULTS.temperature}, top-p ${DEMO_DEFAULTS.topP}.`,
    'Every trained method starts from the same shipped SFT model (demo/sft); online methods judge with the shipped augmented judge (demo/judge).',
    '',
    'Command: `npm run repro:mini` (runs kept under runs/repro-mini/; an interrupted reproduction reuses finished runs).',
    '',
    '| method | quality: mean ± sd over seeds | per seed |',
    '| --- | --- | --- |',
    ...Object.entries(q).map(([m, v]) => `| ${m} | ${stats(v)} | ${v.map((x) => x.toFixed(4)).join(', ')} |`),
    '',
    '## Judge accuracy against the scorer (Table 3\'s question)',
    '',
    `Held-out pairs labelled by the scorer without noise (${DEMO_DEFAULTS.judgePairs} pairs), both orders averaged.`,
    '',
    '| augmentation data | accuracy | per seed |',
    '| --- | --- | --- |',
    ...Object.entries(judge).map(([k, v]) => `| ${k} | ${stats(v)} | ${v.map((x) => x.toFixed(3)).join(', ')} |`),
    '',
    '## Quality of the samples over training steps, per loss (Figure 5a\'s question)',
    '',
    'Plotted in [repro-mini.html](repro-mini.html) (mean over seeds of the scorer quality of each step\'s own samples). Last-10-step means:',
    '',
    '| online method | first 10 steps | last 10 steps |',
    '| --- | --- | --- |',
    ...Object.entries(curves).map(([m, cs]) => {
      const avg = (from: number, to: number) => cs.map((c) => c.slice(from, to).reduce((a, b) => a + b, 0) / c.slice(from, to).length);
      return `| ${m} | ${stats(avg(0, 10))} | ${stats(avg(-10, undefined as unknown as number))} |`;
    }),
    '',
    `Bootstrap intervals of the quality means over seeds: ${Object.entries(q).map(([m, v]) => `${m} ${ci(v)}`).join('; ')}.`,
    '',
  ].join('\n');
  fs.writeFileSync(path.join(docs, 'repro-mini.md'), md);
  const series = Object.entries(curves).map(([m, cs]) => ({ label: m, data: cs[0].map((_, i) => cs.reduce((a, c) => a + c[i], 0) / cs.length) }));
  const html = `<!doctype html><meta charset="utf-8"><title>osp repro:mini</title>
<h1>${escapeHtml('Sample quality over training steps, per method (mean over seeds)')}</h1><div style="height:480px"><canvas id="c"></canvas></div>
<script type="application/json" id="d">${jsonForScript(series)}</script><script>${chartJsCode()}</script>
<script>const s=JSON.parse(document.getElementById('d').textContent);new Chart(document.getElementById('c'),{type:'line',data:{labels:s[0]?s[0].data.map((_,i)=>i+1):[],datasets:s.map(x=>({label:x.label,data:x.data,pointRadius:0,borderWidth:1.5}))},options:{maintainAspectRatio:false,animation:false,scales:{x:{title:{display:true,text:'step'}},y:{title:{display:true,text:'scorer quality of the samples'}}}}});</script>`;
  fs.writeFileSync(path.join(docs, 'repro-mini.html'), html);
  process.stdout.write(`${md}\nwrote docs/repro-mini.md and docs/repro-mini.html\n`);
}

reproduce().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
