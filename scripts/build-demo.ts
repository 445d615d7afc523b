// Rebuilds the embedded demo models in demo/ from seeds, with osp itself (npm run demo:build):
//   1. the task tokenizer (src/demo/tokenizer.ts, seed 1);
//   2. a randomly initialised tiny Llama (seed 1), trained from scratch by `osp sft` on imperfect
//      demonstrations of the sorting task (random slips plus the habit of stopping one number short)
//      -> demo/sft;
//   3. preference augmentation of that model by `osp augment` on scorer-labelled pairs with label noise
//      -> demo/judge.
// `npm run demo:build -- --check` rebuilds into a temporary folder and compares the checksums (CI).
// Everything runs on the cpu, whose kernels give the same bits for any thread count, so the files
// are the same bytes on every run with the same CPU instruction set; demo/README.md records the recipe and the files' SHA-256.
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { main } from '../src/cli';
import { backends } from '../src/device';
import { makePreferencePairs, makeSftExamples, writeDemoTokenizer } from '../src/demo';
import { LlamaModel } from '../src/model/llama';
import { Tokenizer } from '../src/model/tokenizer';
import { LlamaConfig } from '../src/model/config';

export const RECIPE = {
  tokenizerSeed: 1,
  modelSeed: 1,
  model: { hiddenSize: 96, intermediateSize: 256, numHiddenLayers: 4, numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 24, maxPositionEmbeddings: 128 },
  sft: { examples: 16000, seed: 2, noise: 0.3, habit: 0.5, steps: 500, batchSize: 32, lr: 3e-3, warmupSteps: 50 },
  augment: { pairs: 12000, seed: 5, habit: 0.5, steps: 2000, batchSize: 32, lr: 1e-3, warmupSteps: 50 },
};

async function run(argv: string[]): Promise<void> {
  process.stderr.write(`\n$ osp ${argv.join(' ')}\n`);
  const code = await main(['node', 'osp', ...argv]);
  if (code !== 0) throw new Error(`osp ${argv[0]} failed with exit code ${code}`);
}

function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

async function build(outDir: string): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-demo-build-'));
  const r = RECIPE;
  const tokDir = path.join(work, 'tokenizer');
  await writeDemoTokenizer(tokDir, r.tokenizerSeed);
  const tok = await Tokenizer.load(tokDir);
  const config: LlamaConfig = {
    architecture: 'LlamaForCausalLM', modelType: 'llama', ...r.model, rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: null,
    vocabSize: tok.vocabSize, tieWordEmbeddings: true, bosTokenId: 1, eosTokenId: 2, hiddenAct: 'silu', attentionBias: false, mlpBias: false,
  };
  await LlamaModel.init(config, { seed: r.modelSeed, dtype: 'f32', device: 'cpu' }).save(path.join(work, 'init'), { tokenizerFrom: tokDir });
  const sftData = path.join(work, 'sft.jsonl');
  fs.writeFileSync(sftData, makeSftExamples(r.sft.examples, r.sft.seed, { noise: r.sft.noise, habit: r.sft.habit }).map((e) => JSON.stringify(e)).join('\n') + '\n');
  const pairsData = path.join(work, 'pairs.jsonl');
  fs.writeFileSync(pairsData, makePreferencePairs(r.augment.pairs, r.augment.seed, { habit: r.augment.habit }).map((e) => JSON.stringify(e)).join('\n') + '\n');
  const common = ['--device', 'cpu', '--save-every', '100000', '--schedule', 'cosine', '--min-lr-ratio', '0.1', '--seed', '1'];
  await run(['sft', '--model', path.join(work, 'init'), '--data', sftData, '--out', path.join(work, 'sft'), '--steps', String(r.sft.steps), '--batch-size', String(r.sft.batchSize),
    '--micro-batch', String(r.sft.batchSize), '--lr', String(r.sft.lr), '--warmup-steps', String(r.sft.warmupSteps), '--weight-decay', '0.01', ...common]);
  await run(['augment', '--model', path.join(work, 'sft', 'final'), '--pairs', pairsData, '--out', path.join(work, 'augment'), '--steps', String(r.augment.steps),
    '--batch-size', String(r.augment.batchSize), '--micro-batch', String(r.augment.batchSize), '--lr', String(r.augment.lr), '--warmup-steps', String(r.augment.warmupSteps), ...common]);
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(outDir, { recursive: true });
  for (const [name, from] of [['sft', path.join(work, 'sft', 'final')], ['judge', path.join(work, 'augment', 'final')]]) {
    fs.cpSync(from, path.join(outDir, name), { recursive: true });
  }
  const files = ['sft', 'judge'].flatMap((d) => fs.readdirSync(path.join(outDir, d)).sort().map((f) => `${d}/${f}`));
  const readme = [
    '# The embedded demo models',
    '',
    'Made by `npm run demo:build` (scripts/build-demo.ts) on the cpu, bit for bit the same on every run with the same CPU kernels',
    `(the instruction set that \`OSP_CPU_ISA\` names or the CPU picks: avx512, avx2 or baseline sum in different orders). These files: ${backends().cpu.isa}.`,
    '',
    '- `sft/`: a tiny Llama (' + `hidden ${r.model.hiddenSize}, ${r.model.numHiddenLayers} layers, ${r.model.numAttentionHeads} heads, ${r.model.numKeyValueHeads} KV heads, FFN ${r.model.intermediateSize}, context ${r.model.maxPositionEmbeddings}, vocabulary ${tok.vocabSize}` + ') initialised with seed',
    `  ${r.modelSeed} and trained from scratch by \`osp sft\` for ${r.sft.steps} steps of ${r.sft.batchSize} imperfect demonstrations of the sorting task`,
    `  (noise ${r.sft.noise}; the demonstrators stop one number short with probability ${r.sft.habit}).`,
    `- \`judge/\`: \`sft/\` after preference augmentation by \`osp augment\`: ${r.augment.steps} steps of ${r.augment.batchSize} judge instructions built from`,
    `  ${r.augment.pairs} scorer-labelled pairs with Bradley-Terry label noise (each pair in both orders).`,
    '',
    'Recipe (scripts/build-demo.ts):',
    '',
    '```json',
    JSON.stringify(RECIPE, null, 2),
    '```',
    '',
    '| file | SHA-256 |',
    '| --- | --- |',
    ...files.map((f) => `| ${f} | ${sha256(path.join(outDir, f))} |`),
    '',
  ].join('\n');
  fs.writeFileSync(path.join(outDir, 'README.md'), readme);
  fs.rmSync(work, { recursive: true, force: true });
  process.stderr.write(`\nwrote ${outDir}\n`);
}

/**
 * --check: rebuilds into a temporary folder and compares every file's SHA-256 with the shipped
 * demo/ (its README's table), so stale demo models fail CI. The bits depend on the CPU kernels'
 * instruction set, so on a machine whose ISA is not the one the README names it says so and
 * passes without building.
 */
async function check(): Promise<void> {
  const shipped = path.join(__dirname, '..', 'demo');
  const readme = fs.readFileSync(path.join(shipped, 'README.md'), 'utf8');
  const isa = /These files: (\w+)\./.exec(readme)?.[1];
  if (isa !== backends().cpu.isa) {
    process.stdout.write(`demo:build --check: skipped: demo/ was built with the ${isa ?? 'unnamed'} CPU kernels and this machine runs ${backends().cpu.isa}, which sum in another order\n`);
    return;
  }
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-demo-check-'));
  try {
    await build(out);
    const table = (text: string) => new Map([...text.matchAll(/^\| (\S+) \| ([0-9a-f]{64}) \|$/gm)].map((m) => [m[1], m[2]]));
    const want = table(readme);
    const got = table(fs.readFileSync(path.join(out, 'README.md'), 'utf8'));
    const bad = [...new Set([...want.keys(), ...got.keys()])].filter((f) => want.get(f) !== got.get(f));
    if (bad.length > 0) throw new Error(`demo:build --check: the rebuilt demo differs from demo/ in ${bad.join(', ')}; run npm run demo:build and commit demo/`);
    process.stdout.write(`demo:build --check: the rebuild matches demo/ (${want.size} files, ${isa})\n`);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

const arg = process.argv[2];
(arg === '--check' ? check() : build(path.resolve(arg ?? path.join(__dirname, '..', 'demo')))).catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
