// Writes an osp reward model for the parity check against transformers' LlamaForSequenceClassification
// (scripts/gpu-check.sh step 4): ts-node scripts/osp-reward-fixture.ts BASE_DIR OUT_DIR
// The backbone of BASE_DIR (its LM head left out) with a seeded random score head (std 0.5, so the
// rewards are not all near 0); scripts/hf-parity.py --osp-reward-model reads it with transformers.
import * as osp from '../src';
import { RewardModel, loadBackbone } from '../src/model/rewardModel';

async function main(): Promise<void> {
  const [base, out] = process.argv.slice(2);
  if (!base || !out) throw new Error('usage: ts-node scripts/osp-reward-fixture.ts BASE_DIR OUT_DIR');
  const rm = RewardModel.init(await loadBackbone(base, { dtype: 'f32', device: 'cpu' }), { seed: 41 });
  osp.copyInto(rm.score, osp.randn(rm.score.shape, { device: 'cpu', seed: 42, std: 0.5 }));
  rm.save(out, { dtype: 'F32' });
  console.log(`${out}: an osp reward model on ${base}'s backbone`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
