// The README's library example, run as written (on the shipped demo model), so that it stays true:
// sampling gives non-empty answers, the judge pairs them, and one SPCE step on the device reads its
// values with one host wait.
import * as path from 'path';
import * as osp from '../src';

test("the README's library example runs on the demo model and answers", async () => {
  const demo = path.join(__dirname, '..', 'demo');
  const model = await osp.LlamaModel.load(`${demo}/sft`);
  const tok = await osp.Tokenizer.load(`${demo}/sft`);
  const prompt = 'Sort descending: 6 4 3 3 3 1\nAnswer:';
  const [out] = await osp.generate(model, tok, [prompt], { maxNewTokens: 24, temperature: 0.7, topP: 0.9, seed: 1, numSamples: 4 });
  for (const s of out.samples) expect(s.text.trim()).toMatch(/^[0-9 ]+$/);
  const judgeModel = await osp.LlamaModel.load(`${demo}/judge`);
  const judge = await osp.Judge.create(judgeModel, tok, { template: 'hh' });
  const { pairs } = await osp.judgePairs(judge, prompt, out.samples.map((s) => s.text));
  expect(pairs).toHaveLength(2);

  const policy = await osp.LlamaModel.load(`${demo}/sft`);
  const optimizer = new osp.AdamW(policy.parameters(), { lr: 2e-6 });
  const scoredPairs: osp.ScoredPair[] = pairs.map((p) => ({ prompt: out.promptTokens, chosen: out.samples[p.chosen].tokens, rejected: out.samples[p.rejected].tokens, target: p.target }));
  const step = osp.preferenceStep(policy, model, scoredPairs, { loss: 'spce', beta: 0.001, microBatch: 4 });
  const update = optimizer.step(step.grads);
  for (const g of step.grads.values()) g.dispose();
  step.record.add('gradSumOfSquares', update.gradSumOfSquares.reshape([1]));
  osp.resetSyncStats();
  const { loss, pHat } = osp.preferenceValues(step.record, step.pairs);
  expect(osp.syncStats().hostWaits).toBe(1);
  expect(loss).toBeCloseTo(Math.log(2), 5); // the policy starts as the reference: every margin is 0
  expect(Array.from(pHat)).toEqual([0.5, 0.5]);
  for (const m of [model, judgeModel, policy]) m.dispose();
  optimizer.dispose();
});
