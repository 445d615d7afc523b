// The LoRA bench rows (issue 12): one decoder layer at the Mistral-7B shape (hidden 4096, FFN 14336,
// 32 heads, 8 KV heads, head dim 128), a forward and backward over T tokens, three ways in one run,
// interleaved (A, B, C, A, B, C ...), median of the repeats:
//   full    every weight gets its gradient (full fine-tuning of the layer)
//   frozen  the frozen layer's forward and input-gradient backward only (what LoRA cannot avoid)
//   lora    the frozen layer plus adapters r 64 (alpha 32) on all seven linears: A and B gradients
// and the same with dropout 0.05. The goal: lora / frozen <= 1.15. f32 on the cpu, bf16 on cuda.
import * as osp from '../src';
import type { Device } from '../src';
import { LlamaModel, packSequences } from '../src/model/llama';
import { LORA_TARGETS, LoraAdapter } from '../src/model/lora';
import { LlamaConfig } from '../src/model/config';

export interface LoraRow {
  variant: string;
  device: Device;
  dtype: string;
  tokens: number;
  medianMs: number;
  /** medianMs / the frozen baseline's. */
  vsFrozen: number;
}

export function mistralLayerConfig(): LlamaConfig {
  return {
    architecture: 'MistralForCausalLM', modelType: 'mistral', hiddenSize: 4096, intermediateSize: 14336, numHiddenLayers: 1,
    numAttentionHeads: 32, numKeyValueHeads: 8, headDim: 128, rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: null, vocabSize: 256,
    tieWordEmbeddings: false, maxPositionEmbeddings: 32768, bosTokenId: 1, eosTokenId: 2, hiddenAct: 'silu', attentionBias: false, mlpBias: false,
  };
}

/** Runs the rows; `tokens` per step (one packed sequence per 512 tokens). */
export function benchLoraStep(device: Device, tokens: number, repeats: number): LoraRow[] {
  const dtype = device === 'cuda' ? 'bf16' : 'f32';
  const config = mistralLayerConfig();
  const model = LlamaModel.init(config, { seed: 1, dtype, device });
  const spec = { r: 64, alpha: 32, dropout: 0, targets: LORA_TARGETS };
  const adapterDtype = 'f32';
  const adapter = LoraAdapter.init(config, spec, { seed: 2, dtype: adapterDtype, device });
  // B random (not the zero init) so every product is a real one.
  for (const [k, t] of adapter.parameters()) if (k.endsWith('lora_B.weight')) osp.copyInto(t, osp.randn(t.shape, { device, seed: 3, std: 0.01 }));
  const withDropout = LoraAdapter.init(config, { ...spec, dropout: 0.05 }, { seed: 2, dtype: adapterDtype, device });
  const lengths = Array.from({ length: Math.ceil(tokens / 512) }, (_, i) => Math.min(512, tokens - 512 * i));
  const batch = packSequences(lengths.map((n) => Int32Array.from({ length: n }, (_, j) => (j * 7919) % config.vocabSize)));
  const gradHidden = osp.keep(osp.randn([tokens, config.hiddenSize], { device, dtype, seed: 4 }));
  const step = (m: LlamaModel, weightGrads = true, dropoutSeed?: number) => () =>
    osp.scope(() => {
      const fwd = m.forward(batch, { dropoutSeed });
      const g = m.backward(fwd.cache, gradHidden, { weightGrads });
      void g;
    });
  const variants: [string, () => void][] = [
    ['frozen (fwd + input-grad bwd)', step(model, false)],
    ['full (all weight grads)', step(model, true)],
    ['lora r64 all 7 targets', step(model.withAdapter(adapter))],
    ['lora r64 + dropout 0.05', step(model.withAdapter(withDropout), true, 7)],
  ];
  for (const [, fn] of variants) fn(); // warm-up
  osp.synchronize();
  const ms: number[][] = variants.map(() => []);
  for (let r = 0; r < repeats; r++) {
    variants.forEach(([, fn], i) => {
      const t0 = process.hrtime.bigint();
      fn();
      osp.synchronize();
      ms[i].push(Number(process.hrtime.bigint() - t0) / 1e6);
    });
  }
  const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const frozen = median(ms[0]);
  const rows = variants.map(([variant], i) => ({ variant, device, dtype, tokens, medianMs: median(ms[i]), vsFrozen: median(ms[i]) / frozen }));
  gradHidden.dispose();
  adapter.dispose();
  withDropout.dispose();
  model.dispose();
  return rows;
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const flag = (n: string) => (argv.includes(`--${n}`) ? argv[argv.indexOf(`--${n}`) + 1] : undefined);
  const device = (flag('device') ?? 'cpu') as Device;
  const rows = benchLoraStep(device, Number(flag('tokens') ?? (device === 'cuda' ? 4096 : 256)), Number(flag('repeats') ?? 5));
  console.log(`LoRA step, one Mistral-7B layer, ${rows[0].tokens} tokens, ${rows[0].dtype} on ${device} (interleaved, median)`);
  for (const r of rows) console.log(`  ${r.variant.padEnd(32)} ${r.medianMs.toFixed(1).padStart(9)} ms   ${r.vsFrozen.toFixed(3)}x frozen`);
}
