// Parity with PyTorch (issue 3): scripts/torch-parity.py (Debian's python3-torch; run with
// `npm run parity:torch`) wrote tiny random Hugging Face folders (2 layers, hidden 32, 4 heads,
// 2 KV heads, head_dim 8, FFN 48, vocab 97, weights N(0, 0.2^2) in F32; untied and tied
// embeddings) and what PyTorch autograd in float64 gives for three sequences of lengths 1, 5 and
// 17: the logits of every position, the mean next-token cross-entropy and its gradient for every
// parameter. CI needs only the committed output in test/fixtures/torch-parity/.
//
// osp loads each folder with loadLlama in f64 and in f32 (cpu) and must match, elementwise per tensor:
//   |osp - torch| <= TOL * max(|torch_i|, FLOOR * max_j |torch_j|)
// f64: TOL 1e-10, FLOOR 1e-2 (observed: worst ratio ~2e-13; without any floor ~7e-11, too close
//   to call: entries far below their tensor's scale carry rounding of that scale).
// f32: TOL 1e-5, FLOOR 1, i.e. |osp - torch| <= 1e-5 * max_j |torch_j| (normwise relative: osp's
//   f32 against torch's f64, where an entry much smaller than its tensor's scale carries f32
//   rounding of that scale; observed worst ~2e-6).
// The loss is a scalar: plain relative error. Set OSP_PARITY_REPORT=1 to print the worst ratios.
import * as fs from 'fs';
import * as path from 'path';
import { LoraAdapter } from '../src/model/lora';
import { RewardModel } from '../src/model/rewardModel';
import { loadLlama } from '../src/model/llama';
import { LlamaModel, packSequences } from '../src/model/llama';
import { DEFAULT_IGNORE_INDEX } from '../src/ops';

const FIXTURES = path.join(__dirname, 'fixtures', 'torch-parity');
/** osp f64 against transformers' float32-internal f64 (see below). */
const TRANSFORMERS_F64_TOL = 1e-4;
const TOL = { f64: 1e-10, f32: 1e-5 } as const;
const FLOOR = { f64: 1e-2, f32: 1 } as const;

interface Expected {
  torch: string;
  sequences: number[][];
  logits: number[][][];
  loss: number;
  grads: Record<string, number[]>;
}

/** The largest error ratio |a - e| / max(|e_i|, floor * max|e|) over a tensor (must be <= TOL). */
function worst(which: string, floor: number, actual: ArrayLike<number>, expected: ArrayLike<number>): { ratio: number; at: number } {
  expect(actual.length).toBe(expected.length);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  let ratio = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const r = Math.abs(actual[i] - expected[i]) / Math.max(Math.abs(expected[i]), floor * scale);
    if (!(r <= ratio)) {
      ratio = r;
      at = i;
    }
  }
  if (!Number.isFinite(ratio)) throw new Error(`${which}: non-finite error at ${at} (osp ${actual[at]}, torch ${expected[at]})`);
  return { ratio, at };
}

function check(which: string, tol: number, floor: number, actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  const { ratio, at } = worst(which, floor, actual, expected);
  if (!(ratio <= tol)) {
    throw new Error(`${which}: error ratio ${ratio.toExponential(3)} > ${tol} at [${at}] (osp ${actual[at]}, torch ${expected[at]})`);
  }
  return ratio;
}

const models: LlamaModel[] = [];
afterAll(() => {
  for (const m of models.splice(0)) m.dispose();
});

// The committed fixtures (scripts/torch-parity.py), and on the GPU machine those that transformers'
// own LlamaForCausalLM gives (scripts/hf-parity.py OUT; OSP_HF_PARITY_DIR=OUT, see gpu-check.sh).
const sources: [string, string][] = [['PyTorch', FIXTURES]];
if (process.env.OSP_HF_PARITY_DIR) sources.push(['transformers', process.env.OSP_HF_PARITY_DIR]);

for (const [source, root] of sources) for (const folder of ['untied', 'tied'] as const) {
  const dir = path.join(root, folder);
  const expected: Expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8'));
  const sequences = expected.sequences.map((s) => Int32Array.from(s));

  describe(`${source} parity (${folder} embeddings)`, () => {
    it('the fixture is the issue-3 tiny config with sequences of lengths 1, 5 and 17', () => {
      expect(sequences.map((s) => s.length)).toEqual([1, 5, 17]);
      const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
      expect(config).toMatchObject({
        hidden_size: 32,
        intermediate_size: 48,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: 8,
        vocab_size: 97,
        tie_word_embeddings: folder === 'tied',
      });
    });

    for (const dtype of ['f64', 'f32'] as const) {
      // transformers computes in float32 inside a float64 model: the rotary angles, and LlamaRMSNorm,
      // which casts its input to float32 (a downcast for f64) before normalising. Against
      // transformers 5.18 that leaves osp's f64 within 5.9e-6 of its logits and 1.7e-5 of its
      // gradients (first run, 2026-11-30, scripts/hf-parity.py on the cpu), so f64 is held to the
      // f32 bound there; the hand-written PyTorch fixture holds f64 to 1e-6.
      const tol = source === 'transformers' && dtype === 'f64' ? TRANSFORMERS_F64_TOL : TOL[dtype];
      const floor = FLOOR[dtype];
      let model: LlamaModel;
      beforeAll(async () => {
        model = await loadLlama(dir, { dtype, device: 'cpu' });
        models.push(model);
      });

      it(`${dtype}: logits match PyTorch's to ${tol} relative`, () => {
        const logits = model.logits(sequences);
        expect(logits.length).toBe(sequences.length);
        let ratio = 0;
        logits.forEach((l, s) => {
          expect(l.length).toBe(sequences[s].length * 97);
          ratio = Math.max(ratio, check(`${folder} ${dtype} logits[${s}]`, tol, floor, l, expected.logits[s].flat()));
        });
        if (process.env.OSP_PARITY_REPORT) console.log(`${folder} ${dtype} logits: worst ratio ${ratio.toExponential(3)}`);
      });

      it(`${dtype}: the mean next-token cross-entropy and its gradients match PyTorch's to ${tol} relative`, () => {
        const batch = packSequences(sequences);
        // Target of each token: the next token of the same sequence; the last token of each sequence is ignored.
        const targets = new Int32Array(batch.tokens.length).fill(DEFAULT_IGNORE_INDEX);
        let t = 0;
        for (const s of sequences) {
          for (let i = 0; i + 1 < s.length; i++) targets[t + i] = s[i + 1];
          t += s.length;
        }
        const count = targets.filter((x) => x !== DEFAULT_IGNORE_INDEX).length;
        expect(count).toBe(20);
        // L = sum(g * logp) with g = -1/count on counted tokens: the mean cross-entropy.
        const g = Float64Array.from(targets, (x) => (x === DEFAULT_IGNORE_INDEX ? 0 : -1 / count));
        const { tokenLogprobs, grads, gradInputEmbeddings } = model.lossAndGrads(batch, targets, g);
        try {
          let loss = 0;
          for (let i = 0; i < g.length; i++) loss += g[i] * tokenLogprobs[i];
          const lossRatio = Math.abs(loss - expected.loss) / Math.abs(expected.loss);
          if (!(lossRatio <= tol)) throw new Error(`${folder} ${dtype} loss: osp ${loss}, torch ${expected.loss} (relative ${lossRatio})`);

          expect([...grads.keys()].sort()).toEqual(Object.keys(expected.grads).sort());
          let ratio = 0;
          let worstName = '';
          for (const [name, grad] of grads) {
            const r = check(`${folder} ${dtype} grad ${name}`, tol, floor, grad.toArray() as ArrayLike<number>, expected.grads[name]);
            if (r >= ratio) [ratio, worstName] = [r, name];
          }
          if (process.env.OSP_PARITY_REPORT) {
            console.log(`${folder} ${dtype}: loss relative ${lossRatio.toExponential(3)}; grads worst ratio ${ratio.toExponential(3)} (${worstName})`);
          }
        } finally {
          for (const x of grads.values()) x.dispose();
          gradInputEmbeddings.dispose();
        }
      });
    }
  });
}

// LoRA adapters for the untied model, both directions (scripts/hf-parity.py): lora/ made by peft (or
// in PEFT's format, merged by transformers) and read by osp; osp-lora/ written by osp
// (scripts/osp-adapter-fixture.ts) and read by peft (or merged by transformers). osp's base + adapter
// gives the reference's logits either way.
const parityRoot = process.env.OSP_HF_PARITY_DIR;
// The references compute the same float32 RMSNorm and rotary angles as above (peft wraps
// transformers' model): max |osp f64 - reference| was 5.4e-6 (peft's adapter) and 1.3e-6 (osp's).
for (const which of ['lora', 'osp-lora']) {
  const dir = parityRoot ? path.join(parityRoot, which) : null;
  const ready = dir !== null && fs.existsSync(path.join(dir, 'expected.json'));
  (ready ? describe : describe.skip)(`transformers parity of a LoRA adapter (${which})${ready ? '' : ' (skipped: OSP_HF_PARITY_DIR has no such folder; scripts/gpu-check.sh makes it)'}`, () => {
    it('base + adapter logits equal the reference within the f64 bound', async () => {
      const d = dir as string;
      const expected = JSON.parse(fs.readFileSync(path.join(d, 'expected.json'), 'utf8')) as { sequences: number[][]; logits: number[][][]; madeBy: string };
      const base = await loadLlama(path.join(parityRoot as string, 'untied'), { dtype: 'f64', device: 'cpu' });
      const adapter = LoraAdapter.load(d, base.config, { dtype: 'f64' });
      const got = base.withAdapter(adapter).logits(expected.sequences.map((q) => Int32Array.from(q)));
      let worst = 0;
      got.forEach((l, i) => l.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - expected.logits[i].flat()[j])))));
      console.log(`LoRA parity, ${which} (${expected.madeBy}): max |osp - reference| = ${worst.toExponential(2)}`);
      expect(worst).toBeLessThan(TRANSFORMERS_F64_TOL);
      adapter.dispose();
      base.dispose();
    });
  });
}

// A reward model osp wrote (scripts/osp-reward-fixture.ts), read by transformers'
// LlamaForSequenceClassification (scripts/hf-parity.py --osp-reward-model): the same rewards.
const rmDir = parityRoot ? path.join(parityRoot, 'osp-rm') : null;
const rmReady = rmDir !== null && fs.existsSync(path.join(rmDir, 'expected.json'));
(rmReady ? describe : describe.skip)(`transformers parity of an osp reward model${rmReady ? '' : ' (skipped: OSP_HF_PARITY_DIR has no osp-rm folder; scripts/gpu-check.sh makes it)'}`, () => {
  it('LlamaForSequenceClassification gives osp\'s rewards within the f64 bound', async () => {
    const d = rmDir as string;
    const expected = JSON.parse(fs.readFileSync(path.join(d, 'expected.json'), 'utf8')) as { sequences: number[][]; rewards: number[]; madeBy: string };
    const rm = await RewardModel.load(d, { dtype: 'f64', device: 'cpu' });
    const got = rm.sequenceRewards(expected.sequences.map((q) => Int32Array.from(q)));
    const scale = Math.max(1, ...expected.rewards.map(Math.abs));
    const worst = Math.max(...expected.rewards.map((r, i) => Math.abs(got[i] - r)));
    console.log(`reward-model parity (${expected.madeBy}): max |osp - reference| = ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(TRANSFORMERS_F64_TOL * scale);
    rm.dispose();
  });
});
