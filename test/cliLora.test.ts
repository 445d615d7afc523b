// LoRA from the command line on the tiny demo model: osp train --lora trains only the adapter (the
// base stays as it was), writes PEFT folders in its checkpoints and final/, resumes bit-exact after
// Ctrl-C (dropout included), and final/ loads back onto the base for generate and merges with
// osp merge into a model whose logits equal base + adapter. dpo, sft and augment take --lora too,
// and an augmented judge adapter serves as --judge on the same base.
import * as fs from 'fs';
import * as path from 'path';
import { LlamaModel } from '../src/model/llama';
import { LoraAdapter, readAdapterConfig } from '../src/model/lora';
import { TinyRun, ctrlCAfterStep, FAST_ONLINE, osp, readJsonl, readMetrics, tinyRun, withoutTimings } from './helpers/tinyRun';

let tiny: TinyRun;
beforeAll(async () => {
  tiny = await tinyRun();
});
afterAll(() => tiny.cleanup());
afterEach(() => jest.restoreAllMocks());

const LORA = ['--lora', 'r=8,alpha=16,dropout=0.1'];
const trainFlags = (out: string) => ['train', '--model', tiny.model, '--prompts', tiny.prompts, '--out', out, '--steps', '4', '--save-every', '2', '--seed', '5', ...FAST_ONLINE, '--k', '4', '--lr', '1e-2', '--beta', '0.5', '--temperature', '1', ...LORA];

describe('osp train --lora r=8,alpha=16', () => {
  let whole: string;
  beforeAll(async () => {
    whole = tiny.out('lora-whole');
    const r = await osp(...trainFlags(whole));
    if (r.code !== 0) throw new Error(r.stderr);
  });

  test('writes PEFT adapter folders in the checkpoints and in final/, naming the base', () => {
    for (const dir of [path.join(whole, 'final'), path.join(whole, 'checkpoints', 'step-00000004', 'adapter')]) {
      const { spec, baseModel } = readAdapterConfig(dir);
      expect(spec).toEqual({ r: 8, alpha: 16, dropout: 0.1, targets: ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] });
      expect(baseModel).toBe(path.resolve(tiny.model));
      expect(fs.existsSync(path.join(dir, 'adapter_model.safetensors'))).toBe(true);
    }
    expect(fs.existsSync(path.join(whole, 'final', 'model.safetensors'))).toBe(false);
  });

  test('trains the adapter: B moved away from zero and the margins are not all 0', async () => {
    const base = await LlamaModel.load(tiny.model);
    const a = LoraAdapter.load(path.join(whole, 'final'), base.config);
    const B = a.weights(1, 'v')!.B.toArray();
    expect(Math.max(...Array.from(B, Math.abs))).toBeGreaterThan(1e-4);
    expect(readMetrics(whole).some((m) => Math.abs(m.marginMean as number) > 1e-6)).toBe(true);
    a.dispose();
    base.dispose();
  });

  test('stopped after step 2 and resumed gives the same metrics, samples and adapter as the uninterrupted run', async () => {
    const parts = tiny.out('lora-parts');
    ctrlCAfterStep(2);
    expect((await osp(...trainFlags(parts))).code).toBe(130);
    jest.restoreAllMocks();
    expect((await osp('train', '--resume', parts)).code).toBe(0);
    expect(readMetrics(parts).map(withoutTimings)).toEqual(readMetrics(whole).map(withoutTimings));
    expect(readJsonl(path.join(parts, 'samples.jsonl'))).toEqual(readJsonl(path.join(whole, 'samples.jsonl')));
    const weights = (d: string) => fs.readFileSync(path.join(d, 'final', 'adapter_model.safetensors'));
    expect(weights(parts).equals(weights(whole))).toBe(true);
  });

  test('final/ generates on its base (the folder alone, or --model BASE --adapter final/)', async () => {
    const a = `${tiny.out('gen-a')}.jsonl`;
    const b = `${tiny.out('gen-b')}.jsonl`;
    expect((await osp('generate', '--model', path.join(whole, 'final'), '--prompts', tiny.prompts, '--out', a, '--max-new-tokens', '5', '--device', 'cpu', '--limit', '3')).code).toBe(0);
    expect((await osp('generate', '--model', tiny.model, '--adapter', path.join(whole, 'final'), '--prompts', tiny.prompts, '--out', b, '--max-new-tokens', '5', '--device', 'cpu', '--limit', '3')).code).toBe(0);
    expect(readJsonl(a)).toEqual(readJsonl(b));
    expect(readJsonl(a)).toHaveLength(3);
  });

  test('osp merge writes a model whose logits equal base + adapter', async () => {
    const merged = tiny.out('merged');
    const r = await osp('merge', '--model', tiny.model, '--adapter', path.join(whole, 'final'), '--out', merged);
    expect(r.code).toBe(0);
    const base = await LlamaModel.load(tiny.model);
    const adapter = LoraAdapter.load(path.join(whole, 'final'), base.config);
    const m = await LlamaModel.load(merged);
    const seq = [Int32Array.of(1, 5, 9, 13, 7, 2)];
    const x = base.withAdapter(adapter).logits(seq)[0];
    const y = m.logits(seq)[0];
    let worst = 0;
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
    expect(worst).toBeLessThan(1e-4); // f32: the merge rounds W + s B A once
    expect(fs.existsSync(path.join(merged, 'tokenizer.json'))).toBe(true);
    adapter.dispose();
    base.dispose();
    m.dispose();
  });
});

test('osp merge refuses an adapter folder that is not one, naming it', async () => {
  const r = await osp('merge', '--model', tiny.model, '--adapter', tiny.model, '--out', tiny.out('m'));
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/adapter .*no adapter_config\.json/);
});

test('--lora with a bad spec is a usage error naming the part', async () => {
  const r = await osp('sft', '--model', tiny.model, '--data', tiny.sft, '--out', tiny.out('bad'), '--lora', 'r=8,alpha=8,targets=q,zz', '--device', 'cpu');
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("targets: 'zz' is not a projection");
});

test('sft, dpo and augment train adapters; an augmented judge adapter judges on the same base', async () => {
  const common = ['--device', 'cpu', '--steps', '2', '--batch-size', '2', '--lr', '1e-2', '--lora', 'r=4,alpha=8,targets=q,v'];
  const sft = tiny.out('sft-lora');
  expect((await osp('sft', '--model', tiny.model, '--data', tiny.sft, '--out', sft, ...common)).code).toBe(0);
  const dpo = tiny.out('dpo-lora');
  expect((await osp('dpo', '--model', tiny.model, '--pairs', tiny.pairs, '--out', dpo, ...common)).code).toBe(0);
  const aug = tiny.out('aug-lora');
  expect((await osp('augment', '--model', tiny.model, '--pairs', tiny.pairs, '--out', aug, ...common)).code).toBe(0);
  for (const d of [sft, dpo, aug]) expect(readAdapterConfig(path.join(d, 'final')).spec.targets).toEqual(['q', 'v']);
  const online = tiny.out('judge-adapter');
  const r = await osp('train', '--model', tiny.model, '--prompts', tiny.prompts, '--out', online, ...FAST_ONLINE, '--steps', '1', '--lora', 'r=2,alpha=2', '--judge', path.join(aug, 'final'));
  expect(r.code).toBe(0);
  expect(readMetrics(online)).toHaveLength(1);
});
