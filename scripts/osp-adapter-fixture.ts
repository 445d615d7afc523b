// Writes an osp LoRA adapter for the parity check against peft (scripts/gpu-check.sh step 4):
//   ts-node scripts/osp-adapter-fixture.ts BASE_DIR OUT_DIR
// r 4, alpha 8, all seven linears, A as osp initialises it and B random (seeded), so peft (or a
// merge in transformers, see scripts/hf-parity.py --osp-adapter) loads what osp wrote.
import { LlamaModel } from '../src/model/llama';
import { LORA_TARGETS, LoraAdapter } from '../src/model/lora';
import * as osp from '../src';

async function main(): Promise<void> {
  const [base, out] = process.argv.slice(2);
  if (!base || !out) throw new Error('usage: ts-node scripts/osp-adapter-fixture.ts BASE_DIR OUT_DIR');
  const model = await LlamaModel.load(base, { dtype: 'f32', device: 'cpu' });
  const adapter = LoraAdapter.init(model.config, { r: 4, alpha: 8, dropout: 0, targets: LORA_TARGETS }, { seed: 31, device: 'cpu' });
  for (const [k, t] of adapter.parameters()) if (k.endsWith('lora_B.weight')) osp.copyInto(t, osp.randn(t.shape, { device: 'cpu', seed: 32, std: 0.1 }));
  adapter.save(out, { baseModel: base });
  console.log(`${out}: an osp adapter for ${base}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
