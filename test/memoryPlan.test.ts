// The memory plan (src/model/memoryPlan.ts) as a specification: the paper's two models on a 48 GB
// card from their configurations alone, the plan against what real training steps allocate on the
// cpu (memoryStats), `--dry-run` on a folder without weights, and a run refused before loading.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { memoryStats, resetPeakMemory } from '../src/device';
import { writeDemoTokenizer } from '../src/demo';
import { LlamaConfig, loadLlamaConfig } from '../src/model/config';
import { LlamaModel } from '../src/model/llama';
import { LORA_TARGETS, MemoryPlanInput, formatPlan, planMemory, suggestFit } from '../src/model/memoryPlan';
import { AdamW } from '../src/model/optim';
import { dryRunPlan } from '../src/osp/memoryCheck';
import { preferenceStep, sftStep } from '../src/osp/objective';
import { parseBytes, parseLora, resolveSettings } from '../src/osp/settings';
import { osp, tinyConfig, tinyRun } from './helpers/tinyRun';
import { Rng } from '../src/util/random';

const FIXTURES = path.join(__dirname, 'fixtures', 'plan');
const CARD_48GB = parseBytes('48GB') as number;

/** The paper's Table 4 online settings on cuda (bf16), HH prompts taken as 512 tokens. */
function table4(config: LlamaConfig, over: Partial<MemoryPlanInput> = {}): MemoryPlanInput {
  return { config, command: 'train', device: 'cuda', dtype: 'bf16', batchSize: 16, microBatch: 8, recompute: false, k: 7, promptLength: 512, responseLength: 512, judgeMaxLength: 768, deviceMemory: CARD_48GB, ...over };
}

describe('planMemory: the paper\'s models on a 48 GB card (shapes only)', () => {
  const mistral = loadLlamaConfig(path.join(FIXTURES, 'mistral-7b-v0.1'));
  const tinyllama = loadLlamaConfig(path.join(FIXTURES, 'tinyllama-1.1b'));

  test('Mistral-7B v0.1 with LoRA r 64 on all seven projections fits, with the micro-batch the plan chooses', () => {
    const input = table4(mistral, { lora: { r: 64, targets: LORA_TARGETS } });
    const fit = suggestFit(input);
    expect(fit).not.toBeNull();
    expect(fit!.plan.fits).toBe(true);
    expect(fit!.plan.totalBytes).toBeLessThanOrEqual(CARD_48GB);
    console.log(`Mistral-7B LoRA r 64 with ${JSON.stringify(fit!.change)}:\n${formatPlan(fit!.plan)}`);
    // 7.24e9 bf16 weights once, 64 x 81920 x 32 adapter values in f32 with two AdamW moments.
    expect(fit!.plan.rows.find((r) => r.label.startsWith('base weights'))!.bytes).toBe(7241732096 * 2);
    expect(fit!.plan.rows.find((r) => r.label.startsWith('LoRA adapters'))!.bytes).toBe(64 * 81920 * 32 * 4);
  });

  test('Mistral-7B in full fine-tuning does not fit, whatever recompute, micro-batch, judge batch or batch size', () => {
    const input = table4(mistral);
    expect(planMemory(input).fits).toBe(false);
    expect(suggestFit(input)).toBeNull();
    // Weights, reference, f32 masters and AdamW alone are over the card.
    expect(planMemory(input).persistentBytes).toBeGreaterThan(CARD_48GB);
  });

  test('TinyLlama-1.1B in full fine-tuning fits', () => {
    const fit = suggestFit(table4(tinyllama));
    expect(fit).not.toBeNull();
    expect(fit!.plan.totalBytes).toBeLessThanOrEqual(CARD_48GB);
    console.log(`TinyLlama full with ${JSON.stringify(fit!.change)}:\n${formatPlan(fit!.plan)}`);
  });

  test('recompute shrinks the activations, and a plan without a card always fits', () => {
    const off = planMemory(table4(tinyllama, { command: 'sft', microBatch: 4 }));
    const on = planMemory(table4(tinyllama, { command: 'sft', microBatch: 4, recompute: true }));
    expect(on.phaseBytes.train).toBeLessThan(off.phaseBytes.train);
    expect(planMemory(table4(mistral, { deviceMemory: undefined })).fits).toBe(true);
  });
});

describe('planMemory against memoryStats() of real training steps on the cpu', () => {
  const seed = Number(process.env.OSP_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
  beforeAll(() => console.log(`memoryPlan seed ${seed} (replay with OSP_TEST_SEED=${seed})`));
  const shapes = {
    untied: { ...tinyConfig(512), maxPositionEmbeddings: 512, hiddenSize: 64, intermediateSize: 160, numHiddenLayers: 3, numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 16, tieWordEmbeddings: false },
    tied: { ...tinyConfig(384), maxPositionEmbeddings: 512, hiddenSize: 96, intermediateSize: 256, numHiddenLayers: 4, numAttentionHeads: 6, numKeyValueHeads: 2, headDim: 16 },
  };
  test.each([
    ['dpo, 2 micro-batches', 'untied', 'dpo', 4, 2, false],
    ['dpo, 2 micro-batches, recompute', 'untied', 'dpo', 4, 2, true],
    ['dpo, one micro-batch', 'tied', 'dpo', 2, 2, false],
    ['sft, 2 micro-batches', 'tied', 'sft', 8, 4, false],
    ['sft, 2 micro-batches, recompute', 'tied', 'sft', 8, 4, true],
  ] as const)('%s: within 15%% of the measured peak', (_name, shape, command, batchSize, microBatch, recompute) => {
    const config = shapes[shape] as LlamaConfig;
    const rng = new Rng(seed);
    const P = 16 + Math.floor(rng.next() * 16);
    const R = 32 + Math.floor(rng.next() * 32);
    const ids = (n: number) => Int32Array.from({ length: n }, () => Math.floor(rng.next() * config.vocabSize));
    const before = memoryStats().cpu.currentBytes;
    const policy = LlamaModel.init(config, { seed, dtype: 'f32', device: 'cpu' });
    const reference = command === 'dpo' ? LlamaModel.init(config, { seed, dtype: 'f32', device: 'cpu' }) : null;
    const optimizer = new AdamW(policy.parameters(), { lr: 1e-3 });
    try {
      resetPeakMemory();
      for (let step = 0; step < 2; step++) {
        const r = command === 'dpo'
          ? preferenceStep(policy, reference!, Array.from({ length: batchSize }, () => ({ prompt: ids(P), chosen: ids(R), rejected: ids(R), target: rng.next() })), { loss: 'spce', beta: 0.1, microBatch, recompute })
          : sftStep(policy, Array.from({ length: batchSize }, () => ({ prompt: ids(P), response: ids(R) })), { microBatch, recompute });
        optimizer.step(r.grads).gradNorm;
        for (const g of r.grads.values()) g.dispose();
        r.record.dispose();
      }
      const measured = memoryStats().cpu.peakBytes - before;
      const plan = planMemory({ config, command, device: 'cpu', dtype: 'f32', batchSize, microBatch, recompute, promptLength: P, responseLength: R });
      console.log(`${_name}: planned ${plan.totalBytes} B, measured ${measured} B, ratio ${(plan.totalBytes / measured).toFixed(4)}`);
      expect(Math.abs(plan.totalBytes / measured - 1)).toBeLessThan(0.15);
    } finally {
      optimizer.dispose();
      policy.dispose();
      reference?.dispose();
    }
  });
});

describe('settings: --lora and --device-memory', () => {
  test('--lora parses r, alpha, dropout and targets (all seven by default)', () => {
    expect(parseLora('r=64,alpha=32')).toEqual({ r: 64, alpha: 32, dropout: 0, targets: [...LORA_TARGETS] });
    expect(parseLora('r=8,alpha=16,dropout=0.05,targets=q,v')).toEqual({ r: 8, alpha: 16, dropout: 0.05, targets: ['q', 'v'] });
    expect(parseLora({ r: 4, alpha: 8, targets: ['down'] })).toEqual({ r: 4, alpha: 8, dropout: 0, targets: ['down'] });
  });
  test.each([
    ['r=0,alpha=32', /r is "0"; expected an integer >= 1/],
    ['r=6.5,alpha=32', /expected an integer >= 1/],
    ['r=8', /alpha is missing/],
    ['r=8,alpha=-1', /alpha is "-1"; expected a number > 0/],
    ['r=8,alpha=16,dropout=1', /dropout is "1"; expected a number in \[0, 1\)/],
    ['r=8,alpha=16,targets=q,x', /'x' is not a projection; expected some of q, k, v, o, gate, up, down/],
    ['r=8,alpha=16,rank=3', /'rank' is not a LoRA field/],
    ['64', /'64' is not key=value/],
  ])('--lora %s is refused naming the part', (spec, message) => {
    expect(parseLora(spec)).toMatch(message);
    expect(() => resolveSettings('sft', { model: 'm', data: 'd', lora: spec })).toThrow(expect.objectContaining({ name: 'SettingsError', setting: 'lora', message: expect.stringMatching(message) }));
  });
  test('--device-memory takes GB, GiB, MB and bytes', () => {
    expect(parseBytes('48GB')).toBe(48e9);
    expect(parseBytes('48 GiB')).toBe(48 * 2 ** 30);
    expect(parseBytes('512MB')).toBe(512e6);
    expect(parseBytes('1000')).toBe(1000);
    expect(parseBytes('48XB')).toMatch(/expected a size/);
    expect(() => resolveSettings('sft', { model: 'm', data: 'd', deviceMemory: 'lots' })).toThrow(expect.objectContaining({ setting: 'deviceMemory' }));
  });
});

describe('osp --dry-run and the check before a run', () => {
  let root: string;
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-plan-'));
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  async function withStdout(run: () => Promise<{ code: number; stderr: string }>) {
    const chunks: string[] = [];
    const write = process.stdout.write;
    process.stdout.write = ((c: string | Uint8Array) => (chunks.push(String(c)), true)) as typeof process.stdout.write;
    try {
      const r = await run();
      return { ...r, stdout: chunks.join('') };
    } finally {
      process.stdout.write = write;
    }
  }

  test('--dry-run on a folder with only config.json and a tokenizer prints the table and exits 0', async () => {
    const dir = path.join(root, 'mistral-shapes');
    await writeDemoTokenizer(dir, 1);
    fs.copyFileSync(path.join(FIXTURES, 'mistral-7b-v0.1', 'config.json'), path.join(dir, 'config.json'));
    const r = await withStdout(() => osp('train', '--model', dir, '--prompts', path.join(root, 'absent.jsonl'), '--dry-run', '--device', 'cuda', '--device-memory', '48GB', '--lora', 'r=64,alpha=32', '--recompute', '--micro-batch', '2', '--judge-batch', '4'));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/memory plan: osp train, mistral-shapes .* bf16 on cuda, LoRA r 64 on q,k,v,o,gate,up,down/);
    expect(r.stdout).toMatch(/base weights \(bf16, frozen; one copy for policy, reference and judge\)\s+13\.49 GiB/);
    expect(r.stdout).toMatch(/kv cache: 16 prompts x K 7 slots x 1024 positions/);
    expect(r.stdout).toMatch(/card memory\s+44\.70 GiB/);
    expect(r.stdout).toMatch(/fits, .* to spare/);
    expect(fs.readdirSync(root)).toEqual(['mistral-shapes']); // no run folder
  });

  test('a run that does not fit the card is refused before loading, with the table and the setting that fits', async () => {
    const tiny = await tinyRun();
    const settings = resolveSettings('sft', { model: tiny.model, data: tiny.sft, batchSize: 8, microBatch: 8, device: 'cpu' });
    const { plan } = await dryRunPlan('sft', settings); // the data's lengths, as the run plans them
    const big = plan.totalBytes;
    const small = planMemory({ ...plan.input, microBatch: 1, recompute: true }).totalBytes;
    expect(small).toBeLessThan(big);
    const card = Math.floor((small + big) / 2);
    const out = tiny.out('refused');
    const load = jest.spyOn(LlamaModel, 'load');
    const r = await osp('sft', '--model', tiny.model, '--data', tiny.sft, '--out', out, '--batch-size', '8', '--micro-batch', '8', '--device', 'cpu', '--device-memory', String(card));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/osp: the run needs .* at its peak \(train\), more than the card's .*; try (--recompute )?--micro-batch \d/);
    expect(r.stderr).toMatch(/held throughout/);
    expect(r.stderr).toMatch(/does not fit, .* over/);
    expect(load).not.toHaveBeenCalled();
    load.mockRestore();
    expect(fs.existsSync(out)).toBe(false);
  });
});
