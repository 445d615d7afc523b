// The step of each trainer mode (METHOD.md sections 6 and 8), as StepFns for runLoop:
//   online   osp (Algorithm 1) and self-reward: sample K responses per prompt, judge, pair, train
//            on the preference loss. Ablations: loss spce|dpo|ipo, pairing ranked|random, sampling
//            policy|sft. Self-rewarding = best-worst pairing + DPO loss.
//   offline  dpo / ipo / spce on fixed preference pairs (soft labels from the data's strength, or
//            from the judge)
//   reward   a Bradley-Terry reward model on fixed pairs (bradleyTerryStep), with held-out accuracy
//   sft      supervised fine-tuning, prompt tokens masked (also preference augmentation: SFT on
//            judge instructions whose answer is the preferred side's letter)
// Pairs are oriented so that chosen is the judged winner (orientPair in objective.ts).
// Each step function queues its objective on the device and returns the gradients with a
// DeviceRecord; the loop adds the gradient norm, reads the record once, and calls finish().
import { generate } from '../generate';
import { Judge } from '../judge/judge';
import { JudgePairsOptions, judgePairsBatch } from '../judge/pairing';
import { LlamaModel } from '../model/llama';
import { Tokenizer } from '../model/tokenizer';
import { syncStats } from '../sync';
import { DeviceRecord } from './deviceRecord';
import { StepFn } from './loop';
import { RewardModel } from '../model/rewardModel';
import { LossKind, PreferenceValues, RewardPair, ScoredPair, SftExample, bradleyTerryStep, orientPair, preferenceStep, preferenceValues, sftStep } from './objective';

const mean = (a: ArrayLike<number>) => (a.length ? Array.from(a).reduce((s, v) => s + v, 0) / a.length : null);
const now = () => performance.now() / 1e3;

/** The metrics every preference step reports, from its read values and the targets it trained on. */
function preferenceMetrics(res: PreferenceValues, targets: number[]) {
  return {
    loss: res.loss,
    pHatMean: mean(res.pHat),
    targetMean: mean(targets),
    absErrorMean: mean(Array.from(res.pHat, (v, i) => Math.abs(v - targets[i]))),
    marginMean: mean(res.margins),
    chosenLogprobMean: mean(res.policyChosen),
    rejectedLogprobMean: mean(res.policyRejected),
    refChosenLogprobMean: mean(res.refChosen),
    refRejectedLogprobMean: mean(res.refRejected),
  };
}

export interface OnlineOptions {
  loss: LossKind;
  pairing: 'ranked' | 'random' | 'best-worst';
  sampling: 'policy' | 'sft';
  k: number;
  beta: number;
  microBatch: number;
  temperature: number;
  topP: number;
  maxNewTokens: number;
  recompute?: boolean;
  /** A quality scorer for the task (the demo's); when given, samples and judge accuracy are scored. */
  scorer?: (prompt: string, response: string) => number;
}

export interface StageEvents {
  onStage?(stage: 'generate' | 'judge' | 'train', info: { step: number; done?: number; total?: number }): void;
}

/** Online self-preferring (and self-rewarding with pairing 'best-worst' and loss 'dpo'). */
export function onlineStep(
  models: { policy: LlamaModel; reference: LlamaModel; judge: Judge; tokenizer: Tokenizer },
  prompts: string[],
  o: OnlineOptions,
  events: StageEvents = {},
): StepFn {
  return async (step, indices, seed) => {
    const batchPrompts = indices.map((i) => prompts[i]);
    const t0 = now();
    events.onStage?.('generate', { step, done: 0, total: batchPrompts.length * o.k * o.maxNewTokens });
    const sampler = o.sampling === 'sft' ? models.reference : models.policy;
    const gen = await generate(sampler, models.tokenizer, batchPrompts, {
      maxNewTokens: o.maxNewTokens,
      temperature: o.temperature,
      topP: o.topP,
      seed,
      numSamples: o.k,
      onStep: (i) => events.onStage?.('generate', { step, done: i.generatedTokens, total: batchPrompts.length * o.k * o.maxNewTokens }),
    });
    const t1 = now();
    events.onStage?.('judge', { step });
    const groups = gen.map((g, i) => ({ prompt: batchPrompts[i], responses: g.samples.map((s) => s.text) }));
    const judged = await judgePairsBatch(models.judge, groups, { mode: o.pairing as JudgePairsOptions['mode'], seed });
    const t2 = now();
    const trainWaits = syncStats().hostWaits;
    events.onStage?.('train', { step });
    const pairs: ScoredPair[] = [];
    const pairInfo: { prompt: number; chosen: number; rejected: number; target: number; disagreement: number }[] = [];
    judged.forEach((j, i) => {
      for (const p of j.pairs) {
        const { chosen: c, rejected: r, target } = orientPair(p);
        pairs.push({ prompt: gen[i].promptTokens, chosen: gen[i].samples[c].tokens, rejected: gen[i].samples[r].tokens, target });
        pairInfo.push({ prompt: i, chosen: c, rejected: r, target, disagreement: Math.abs(p.pAB - (1 - p.pBA)) });
      }
    });
    if (pairs.length === 0) throw new Error(`step ${step}: no pairs were formed (K = ${o.k}); expected K >= 2`);
    const step0 = preferenceStep(models.policy, models.reference, pairs, { loss: o.pairing === 'best-worst' ? 'dpo' : o.loss, beta: o.beta, microBatch: o.microBatch, recompute: o.recompute, dropoutSeed: seed });
    const finish = (record: DeviceRecord, secondsTrain: number) => {
      const res = preferenceValues(record, step0.pairs);
      const lengths = gen.flatMap((g) => g.samples.map((s) => s.tokens.length));
      const generated = lengths.reduce((a, b) => a + b, 0);
      const kl: number[] = [];
      for (let i = 0; i < pairs.length; i++) kl.push(res.policyChosen[i] - res.refChosen[i], res.policyRejected[i] - res.refRejected[i]);
      let judgeAccuracy: number | null = null;
      let sampleScores: number[][] | null = null;
      if (o.scorer) {
        const sc = o.scorer;
        sampleScores = gen.map((g, i) => g.samples.map((s) => sc(batchPrompts[i], s.text)));
        const decided = pairInfo.filter((p) => sampleScores![p.prompt][p.chosen] !== sampleScores![p.prompt][p.rejected]);
        judgeAccuracy = decided.length ? decided.filter((p) => sampleScores![p.prompt][p.chosen] > sampleScores![p.prompt][p.rejected]).length / decided.length : null;
      }
      const metrics = {
        ...preferenceMetrics(res, pairs.map((p) => p.target)),
        klEstimate: mean(kl),
        responseLengthMean: mean(lengths),
        judgeDisagreementMean: mean(pairInfo.map((p) => p.disagreement)),
        judgeAccuracy,
        sampleScoreMean: sampleScores ? mean(sampleScores.flat()) : null,
        secondsGenerate: t1 - t0,
        secondsJudge: t2 - t1,
        secondsTrain,
        tokensPerSecond: generated / Math.max(1e-9, t1 - t0),
        pairsPerSecond: pairs.length / Math.max(1e-9, t2 - t1),
        pairs: pairs.length,
        samples: lengths.length,
      };
      const samples = gen.map((g, i) => ({
        prompt: batchPrompts[i],
        responses: g.samples.map((s, k) => ({ text: s.text, tokens: s.tokens.length, finish: s.finishReason, blankScore: judged[i].scores?.[k] ?? null, score: sampleScores?.[i][k] ?? null })),
        pairs: pairInfo
          .map((p, n) => ({ ...p, n }))
          .filter((p) => p.prompt === i)
          .map((p) => ({ chosen: p.chosen, rejected: p.rejected, target: p.target, pHat: res.pHat[p.n], margin: res.margins[p.n] })),
      }));
      return { metrics, samples };
    };
    return { grads: step0.grads, record: step0.record, trainStarted: t2, trainWaits, finish };
  };
}

export interface OfflineOptions {
  loss: LossKind;
  beta: number;
  microBatch: number;
  recompute?: boolean;
}

/** Offline DPO / IPO / SPCE on fixed pairs (already tokenized; targets from the data or the judge). */
export function offlineStep(models: { policy: LlamaModel; reference: LlamaModel }, pairs: ScoredPair[], o: OfflineOptions): StepFn {
  return async (_step, indices, seed) => {
    const t0 = now();
    const trainWaits = syncStats().hostWaits;
    const batch = indices.map((i) => pairs[i]);
    const step0 = preferenceStep(models.policy, models.reference, batch, { loss: o.loss, beta: o.beta, microBatch: o.microBatch, recompute: o.recompute, dropoutSeed: seed });
    const finish = (record: DeviceRecord, secondsTrain: number) => {
      // DPO and IPO train every pair as p = 1.
      const targets = batch.map((p) => (o.loss === 'spce' ? p.target : 1));
      const metrics = { ...preferenceMetrics(preferenceValues(record, step0.pairs), targets), secondsTrain, tokensPerSecond: step0.tokens / Math.max(1e-9, secondsTrain), pairs: batch.length };
      return { metrics };
    };
    return { grads: step0.grads, record: step0.record, trainStarted: t0, trainWaits, finish };
  };
}

/** Supervised fine-tuning on tokenized examples (prompt tokens masked). */
export function sftStepFn(model: LlamaModel, examples: SftExample[], o: { microBatch: number; recompute?: boolean }): StepFn {
  return async (_step, indices, seed) => {
    const t0 = now();
    const trainWaits = syncStats().hostWaits;
    const res = sftStep(model, indices.map((i) => examples[i]), { ...o, dropoutSeed: seed });
    return {
      grads: res.grads,
      record: res.record,
      trainStarted: t0,
      trainWaits,
      finish: (record: DeviceRecord, secondsTrain: number) => ({ metrics: { loss: record.get('loss')[0], secondsTrain, tokensPerSecond: res.tokens / Math.max(1e-9, secondsTrain) } }),
    };
  };
}

/** Accuracy (r(chosen) > r(rejected)), mean Bradley-Terry loss and mean margin of a reward model on pairs, in f64 on the host. */
export function pairAccuracy(chosen: ArrayLike<number>, rejected: ArrayLike<number>): { accuracy: number; loss: number; margin: number } {
  let right = 0;
  let loss = 0;
  let margin = 0;
  for (let i = 0; i < chosen.length; i++) {
    const d = chosen[i] - rejected[i];
    if (d > 0) right++;
    loss += d > 0 ? Math.log1p(Math.exp(-d)) : -d + Math.log1p(Math.exp(d)); // -log sigmoid(d), stable
    margin += d;
  }
  const n = Math.max(1, chosen.length);
  return { accuracy: right / n, loss: loss / n, margin: margin / n };
}

/** A reward model on held-out pairs: their rewards by inference forwards (one read per micro-batch), then pairAccuracy. */
export function evaluateRewardModel(model: RewardModel, pairs: RewardPair[], microBatch: number): { accuracy: number; loss: number; margin: number } {
  const seq = (p: Int32Array, r: Int32Array) => Int32Array.from([...p, ...r]);
  const rewards = model.sequenceRewards(pairs.flatMap((p) => [seq(p.prompt, p.chosen), seq(p.prompt, p.rejected)]), { microBatch: 2 * microBatch });
  return pairAccuracy(Array.from(pairs, (_, i) => rewards[2 * i]), Array.from(pairs, (_, i) => rewards[2 * i + 1]));
}

export interface RewardModelStepOptions {
  microBatch: number;
  recompute?: boolean;
  /** Evaluate the held-out pairs after every evalEvery steps and after the last step. */
  evalEvery: number;
  totalSteps: number;
}

/** Bradley-Terry steps on the training pairs; the held-out pairs are scored (after the update) every evalEvery steps and at the end. */
export function rewardModelStepFn(model: RewardModel, pairs: RewardPair[], heldOut: RewardPair[], o: RewardModelStepOptions): StepFn {
  return async (step, indices, seed) => {
    const t0 = now();
    const trainWaits = syncStats().hostWaits;
    const batch = indices.map((i) => pairs[i]);
    const res = bradleyTerryStep(model, batch, { microBatch: o.microBatch, recompute: o.recompute, dropoutSeed: seed });
    const finish = (record: DeviceRecord, secondsTrain: number) => {
      const B = batch.length;
      const r = record.get('rewards');
      const chosen = r.subarray(0, B);
      const rejected = r.subarray(B, 2 * B);
      const train = pairAccuracy(chosen, rejected);
      // finish runs after the optimizer's update: the held-out figures are those of the weights after this step.
      const ev = step % o.evalEvery === 0 || step === o.totalSteps ? evaluateRewardModel(model, heldOut, o.microBatch) : null;
      const metrics = {
        loss: record.get('loss')[0],
        accuracy: train.accuracy,
        marginMean: train.margin,
        rewardChosenMean: mean(chosen),
        rewardRejectedMean: mean(rejected),
        evalAccuracy: ev?.accuracy,
        evalLoss: ev?.loss,
        secondsTrain,
        tokensPerSecond: res.tokens / Math.max(1e-9, secondsTrain),
        pairs: B,
      };
      return { metrics };
    };
    return { grads: res.grads, record: res.record, trainStarted: t0, trainWaits, finish };
  };
}
