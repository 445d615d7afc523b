// Judge pairs/s with and without shared prefixes (Judge's sharePrefix) on the demo's own workload:
// the shipped demo judge (demo/judge), 8 prompts x K 4 samples of the SFT model (T 0.7, top-p 0.9, 24
// new tokens, as a demo step), judged as a demo step judges them (judgePairsBatch, ranked: every
// sample against the blank response, then the K/2 ranked pairs; each pair in both orders; the
// trainer's batchSize 16). The two judges run interleaved (A, B, A, B ...) in one process after a
// warm-up; the median of the repeats is reported, with the largest difference of any probability.
//   npx ts-node --transpile-only scripts/judge-prefix-speed.ts [repeats=7] [prompts=8]
import * as path from 'path';
import { DEMO_DEFAULTS, demoAssetsDir } from '../src/cli/demo';
import { makePrompts } from '../src/demo';
import { generate } from '../src/generate';
import { Judge } from '../src/judge/judge';
import { JudgedPairs, judgePairsBatch } from '../src/judge/pairing';
import { planSharedPrefixes } from '../src/judge/sharedPrefix';
import { kvCacheBytesPerPosition } from '../src/generate/kvCache';
import { LlamaModel } from '../src/model/llama';
import { Tokenizer } from '../src/model/tokenizer';

async function main(): Promise<void> {
  const repeats = Number(process.argv[2] ?? 7);
  const nPrompts = Number(process.argv[3] ?? DEMO_DEFAULTS.batchSize);
  const assets = demoAssetsDir();
  const sft = await LlamaModel.load(path.join(assets, 'sft'));
  const tok = await Tokenizer.load(path.join(assets, 'sft'));
  const prompts = makePrompts(nPrompts, 12345);
  const out = await generate(sft, tok, prompts, { maxNewTokens: DEMO_DEFAULTS.maxNewTokens, temperature: DEMO_DEFAULTS.temperature, topP: DEMO_DEFAULTS.topP, seed: 7, numSamples: DEMO_DEFAULTS.k });
  const groups = out.map((o, i) => ({ prompt: prompts[i], responses: o.samples.map((s) => s.text) }));
  const judgeModel = await LlamaModel.load(path.join(assets, 'judge'));
  const judgeTok = await Tokenizer.load(path.join(assets, 'judge'));
  const judges = {
    shared: await Judge.create(judgeModel, judgeTok, { batchSize: 16, sharePrefix: true }),
    unshared: await Judge.create(judgeModel, judgeTok, { batchSize: 16, sharePrefix: false }),
  };
  const K = DEMO_DEFAULTS.k;
  const pairsPerCall = nPrompts * (K + Math.floor(K / 2)); // blank comparisons + ranked pairs, each in both orders
  const results: Record<string, JudgedPairs[]> = {};
  const times: Record<string, number[]> = { shared: [], unshared: [] };
  for (let r = -1; r < repeats; r++) {
    for (const name of ['unshared', 'shared'] as const) {
      const t0 = process.hrtime.bigint();
      results[name] = await judgePairsBatch(judges[name], groups, { mode: 'ranked' });
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (r >= 0) times[name].push(ms); // r = -1 is the warm-up
    }
  }
  let maxDiff = 0;
  results.shared.forEach((g, i) => {
    const u = results.unshared[i];
    g.scores!.forEach((s, k) => (maxDiff = Math.max(maxDiff, Math.abs(s - u.scores![k]))));
    g.pairs.forEach((p, k) => (maxDiff = Math.max(maxDiff, Math.abs(p.pAB - u.pairs[k].pAB), Math.abs(p.pBA - u.pairs[k].pBA))));
  });
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const line = (name: string) => {
    const ms = median(times[name]);
    return `${name.padEnd(9)} ${ms.toFixed(1).padStart(7)} ms per step's judge calls  ${(pairsPerCall / (ms / 1000)).toFixed(0).padStart(6)} pairs/s  (times ${times[name].map((t) => t.toFixed(0)).join(' ')})`;
  };
  console.log(`${nPrompts} prompts x K ${K}: ${pairsPerCall} pairs (${2 * pairsPerCall} instructions) per step, median of ${repeats}, interleaved`);
  console.log(line('unshared'));
  console.log(line('shared'));
  // Tokens the two judge calls of the step feed whole, and those the shared path computes.
  const j = judges.shared;
  const calls = [
    groups.flatMap((g) => g.responses.map((r) => ({ prompt: g.prompt, a: r, b: '' }))),
    groups.flatMap((g, i) => results.shared[i].pairs.map((p) => ({ prompt: g.prompt, a: g.responses[p.chosen], b: g.responses[p.rejected] }))),
  ];
  let total = 0;
  let computed = 0;
  for (const items of calls) {
    const ins = await j.instructions(items.flatMap((it) => [it, { prompt: it.prompt, a: it.b, b: it.a }]));
    const plan = planSharedPrefixes(ins, { maxRows: j.batchSize * j.maxLength, bytesPerPosition: kvCacheBytesPerPosition(judgeModel), maxCacheBytes: j.maxCacheBytes });
    total += plan.totalTokens;
    computed += plan.computedTokens;
  }
  console.log(`tokens per step: ${total} fed whole, ${computed} computed with shared prefixes (${(total / computed).toFixed(2)}x fewer)`);
  console.log(`speed-up ${(median(times.unshared) / median(times.shared)).toFixed(2)}x; largest |difference| of any probability ${maxDiff.toExponential(2)}`);
  judgeModel.dispose();
  sft.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
