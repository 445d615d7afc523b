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
import { blankLogOdds, blankScores, judgePairsBatch, pairSeed, rsoAccept, seededUniform } from '../judge/pairing';
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
  /**
   * ranked (OSP), random, best-worst (self-rewarding), and the pairing ablations: raft (SFT on the
   * best of K by the judge's blank-baseline score) and spin (the data's response as chosen against
   * each of the policy's first K//2 samples as rejected, target 1).
   */
  pairing: 'ranked' | 'random' | 'best-worst' | 'raft' | 'spin';
  /** policy (on-policy), sft (the frozen SFT model), rso (statistical rejection sampling of the SFT model's samples). */
  sampling: 'policy' | 'sft' | 'rso';
  k: number;
  beta: number;
  microBatch: number;
  temperature: number;
  topP: number;
  maxNewTokens: number;
  recompute?: boolean;
  /** rso: candidates sampled per prompt (K of them are accepted) and the temperature beta of pi* ~ pi_sft exp(r / beta). */
  rsoCandidates?: number;
  rsoBeta?: number;
  /**
   * rso: the rewards of responses to prompts (one per pair of arguments), e.g. a reward model's
   * (RewardModel.rewards). Absent: the judge's blank-baseline log-odds are the rewards.
   */
  rsoRewards?: (prompts: string[], responses: string[]) => Promise<ArrayLike<number>>;
  /** spin: each prompt's response from the data, tokenized (EOS included), by prompt index. */
  references?: Int32Array[];
  /** A quality scorer for the task (the demo's); when given, samples and judge accuracy are scored. */
  scorer?: (prompt: string, response: string) => number;
}

export interface StageEvents {
  onStage?(stage: 'generate' | 'judge' | 'train', info: { step: number; done?: number; total?: number }): void;
}

/**
 * Online self-preferring (and self-rewarding with pairing 'best-worst' and loss 'dpo'), with the
 * sampling ablations (policy, sft, rso) and the pairing ablations (ranked, random, raft, spin).
 */
export function onlineStep(
  models: { policy: LlamaModel; reference: LlamaModel; judge: Judge; tokenizer: Tokenizer },
  prompts: string[],
  o: OnlineOptions,
  events: StageEvents = {},
): StepFn {
  if (o.pairing === 'spin' && (!o.references || o.references.length !== prompts.length)) throw new RangeError('onlineStep: spin pairing needs one reference response per prompt');
  return async (step, indices, seed) => {
    const batchPrompts = indices.map((i) => prompts[i]);
    const t0 = now();
    const drawn = o.sampling === 'rso' ? (o.rsoCandidates ?? 4 * o.k) : o.k;
    events.onStage?.('generate', { step, done: 0, total: batchPrompts.length * drawn * o.maxNewTokens });
    const sampler = o.sampling === 'policy' ? models.policy : models.reference;
    const gen = await generate(sampler, models.tokenizer, batchPrompts, {
      maxNewTokens: o.maxNewTokens,
      temperature: o.temperature,
      topP: o.topP,
      seed,
      numSamples: drawn,
      onStep: (i) => events.onStage?.('generate', { step, done: i.generatedTokens, total: batchPrompts.length * drawn * o.maxNewTokens }),
    });
    const t1 = now();
    events.onStage?.('judge', { step });
    // The samples each prompt trains on: all of them, or RSO's accepted K of the candidates.
    let scores: number[][] | null = null;
    let kept = gen.map((g) => g.samples.map((_, k) => k));
    // RSO's reward of each kept sample (recorded in samples.jsonl).
    let rsoRewards: number[][] | null = null;
    if (o.sampling === 'rso') {
      let rewards: number[][];
      if (o.rsoRewards) {
        // One call over every candidate of the batch, then split per prompt.
        const flat = await o.rsoRewards(gen.flatMap((g, i) => g.samples.map(() => batchPrompts[i])), gen.flatMap((g) => g.samples.map((x) => x.text)));
        let at = 0;
        rewards = gen.map((g) => Array.from({ length: g.samples.length }, () => flat[at++]));
      } else {
        scores = await blankScores(models.judge, gen.map((g, i) => ({ prompt: batchPrompts[i], responses: g.samples.map((x) => x.text) })));
        rewards = scores.map((sc) => sc.map(blankLogOdds));
      }
      kept = rewards.map((r, i) => rsoAccept(r, o.k, o.rsoBeta ?? 0.5, seededUniform(pairSeed(seed, i))));
      rsoRewards = rewards.map((r, i) => kept[i].map((k) => r[k]));
      if (scores) scores = scores.map((sc, i) => kept[i].map((k) => sc[k]));
    }
    const samplesOf = (i: number) => kept[i].map((k) => gen[i].samples[k]);
    const groups = gen.map((_, i) => ({ prompt: batchPrompts[i], responses: samplesOf(i).map((x) => x.text) }));
    const pairs: ScoredPair[] = [];
    const pairInfo: { prompt: number; chosen: number; rejected: number; target: number; disagreement: number }[] = [];
    let best: number[] | null = null;
    let judged: { scores: number[] | null }[] = groups.map(() => ({ scores: null }));
    if (o.pairing === 'raft') {
      scores ??= await blankScores(models.judge, groups);
      best = scores.map((sc) => sc.reduce((b, v, k) => (v > sc[b] ? k : b), 0));
      judged = scores.map((sc) => ({ scores: sc }));
    } else if (o.pairing === 'spin') {
      // SPIN: the data's response is y^h, the policy's own samples y^l; no judge.
      groups.forEach((g, i) => {
        for (let k = 0; k < Math.max(1, Math.floor(g.responses.length / 2)); k++) {
          pairs.push({ prompt: gen[i].promptTokens, chosen: (o.references as Int32Array[])[indices[i]], rejected: samplesOf(i)[k].tokens, target: 1 });
          pairInfo.push({ prompt: i, chosen: -1, rejected: k, target: 1, disagreement: 0 });
        }
      });
    } else {
      const j = await judgePairsBatch(models.judge, groups, { mode: o.pairing, seed, scores: scores ?? undefined });
      judged = j;
      j.forEach((jj, i) => {
        for (const p of jj.pairs) {
          const { chosen: c, rejected: r, target } = orientPair(p);
          pairs.push({ prompt: gen[i].promptTokens, chosen: samplesOf(i)[c].tokens, rejected: samplesOf(i)[r].tokens, target });
          pairInfo.push({ prompt: i, chosen: c, rejected: r, target, disagreement: Math.abs(p.pAB - (1 - p.pBA)) });
        }
      });
    }
    const t2 = now();
    const trainWaits = syncStats().hostWaits;
    events.onStage?.('train', { step });
    const lengths = gen.flatMap((_, i) => samplesOf(i).map((x) => x.tokens.length));
    const generated = gen.reduce((n, g) => n + g.samples.reduce((m, x) => m + x.tokens.length, 0), 0);
    const sampleScores = o.scorer ? gen.map((_, i) => samplesOf(i).map((x) => o.scorer!(batchPrompts[i], x.text))) : null;
    const common = (secondsTrain: number) => ({
      responseLengthMean: mean(lengths),
      sampleScoreMean: sampleScores ? mean(sampleScores.flat()) : null,
      secondsGenerate: t1 - t0,
      secondsJudge: t2 - t1,
      secondsTrain,
      tokensPerSecond: generated / Math.max(1e-9, t1 - t0),
      samples: lengths.length,
      ...(o.sampling === 'rso' ? { rsoAccepted: mean(kept.map((k) => k.length)) } : {}),
    });
    const sampleRecords = (extra: (i: number) => object) =>
      gen.map((_, i) => ({
        prompt: batchPrompts[i],
        responses: samplesOf(i).map((x, k) => ({
          text: x.text, tokens: x.tokens.length, finish: x.finishReason, blankScore: judged[i].scores?.[k] ?? null, score: sampleScores?.[i][k] ?? null,
          ...(rsoRewards ? { rsoReward: rsoRewards[i][k] } : {}),
        })),
        ...extra(i),
      }));
    if (best) {
      // RAFT: supervised fine-tuning on each prompt's best sample.
      const examples: SftExample[] = best.map((b, i) => ({ prompt: gen[i].promptTokens, response: samplesOf(i)[b].tokens }));
      const res = sftStep(models.policy, examples, { microBatch: o.microBatch, recompute: o.recompute, dropoutSeed: seed });
      const finish = (record: DeviceRecord, secondsTrain: number) => ({
        metrics: { loss: record.get('loss')[0], bestScoreMean: mean(best!.map((b, i) => (judged[i].scores as number[])[b])), bestSampleScoreMean: sampleScores ? mean(best!.map((b, i) => sampleScores[i][b])) : null, ...common(secondsTrain), pairs: 0 },
        samples: sampleRecords((i) => ({ best: best![i] })),
      });
      return { grads: res.grads, record: res.record, trainStarted: t2, trainWaits, finish };
    }
    if (pairs.length === 0) throw new Error(`step ${step}: no pairs were formed (K = ${o.k}); expected K >= 2`);
    const step0 = preferenceStep(models.policy, models.reference, pairs, { loss: o.pairing === 'best-worst' ? 'dpo' : o.loss, beta: o.beta, microBatch: o.microBatch, recompute: o.recompute, dropoutSeed: seed });
    const finish = (record: DeviceRecord, secondsTrain: number) => {
      const res = preferenceValues(record, step0.pairs);
      const kl: number[] = [];
      for (let i = 0; i < pairs.length; i++) kl.push(res.policyChosen[i] - res.refChosen[i], res.policyRejected[i] - res.refRejected[i]);
      let judgeAccuracy: number | null = null;
      if (sampleScores && o.pairing !== 'spin') {
        const decided = pairInfo.filter((p) => sampleScores[p.prompt][p.chosen] !== sampleScores[p.prompt][p.rejected]);
        judgeAccuracy = decided.length ? decided.filter((p) => sampleScores[p.prompt][p.chosen] > sampleScores[p.prompt][p.rejected]).length / decided.length : null;
      }
      const metrics = {
        ...preferenceMetrics(res, pairs.map((p) => p.target)),
        klEstimate: mean(kl),
        judgeDisagreementMean: mean(pairInfo.map((p) => p.disagreement)),
        judgeAccuracy,
        ...common(secondsTrain),
        pairsPerSecond: pairs.length / Math.max(1e-9, t2 - t1),
        pairs: pairs.length,
      };
      const samples = sampleRecords((i) => ({
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
