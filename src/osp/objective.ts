// The training objectives on the device (METHOD.md sections 2, 3, 6, 8), and the reward model's
// Bradley-Terry loss (bradleyTerryStep, at the end). A step's token log-probs,
// sequence sums, preference loss and per-token gradients never leave the device: the host uploads
// token ids and reads back, once per optimizer step, the values it reports (a DeviceRecord).
//
//   preferenceStep: pairs (prompt, chosen, rejected, target) -> policy and reference sequence
//     log-probs of the response tokens (lmHead's linear log-probs, then sequenceLogprobs) ->
//     preferenceLoss (SPCE / DPO / IPO, fused) -> d loss / d sequence log-prob ->
//     sequenceLogprobsBackward -> per-token gradients -> the policy's backward.
//   sftStep: (prompt, response) examples -> mean next-token loss over response tokens -> gradients.
//
// Sequence slots: pair i's chosen response sums into slot i, its rejected into slot B + i, so the
// [2B] sums split into contiguous [B] views (policyChosen, policyRejected) with no gather. A pair's
// two responses go through the same micro-batch (they share the prompt), 2 x microBatch sequences
// per forward. When all pairs fit one micro-batch, its one forward serves the backward once the
// loss is known; with several, the policy is scored without gradients first and each micro-batch's
// forward runs again with its backward (one extra forward for the memory of one micro-batch).
//
// Per-pair precision: f64 on the CPU (the token log-probs of an f32 model converted exactly, then
// summed in order: the same numbers as the host f64 arithmetic this replaced), f32 on CUDA (the
// kernels' precision there).
import { PromptResponse, packResponses, packSequences } from '../model/batch';
import { ForwardResult, LlamaModel } from '../model/llama';
import { RewardModel, SCORE_WEIGHT, lastRowsOf } from '../model/rewardModel';
import { GradientAccumulator } from '../model/optim';
import * as ops from '../ops';
import { Tensor, keep, scope, tensor, zeros } from '../tensor';
import { DeviceRecord } from './deviceRecord';

export type LossKind = 'spce' | 'dpo' | 'ipo';

export interface ScoredPair {
  prompt: Int32Array;
  chosen: Int32Array;
  rejected: Int32Array;
  /** p(chosen > rejected) in [0, 1]; SPCE uses it, DPO and IPO treat every pair as p = 1. */
  target: number;
}

export interface PreferenceStepOptions {
  loss: LossKind;
  beta: number;
  /** Pairs per micro-batch (each pair is two sequences). */
  microBatch: number;
  recompute?: boolean;
  /**
   * The step's LoRA dropout seed (a policy with adapter dropout; absent: no dropout). Micro-batch m
   * draws its masks from microSeed(dropoutSeed, m) in its scoring pass and its gradient pass alike.
   */
  dropoutSeed?: number;
}

/** Micro-batch m's dropout seed of a step's (undefined stays undefined: no dropout). */
export function microSeed(dropoutSeed: number | undefined, m: number): number | undefined {
  return dropoutSeed === undefined ? undefined : (dropoutSeed * 1009 + m) % 9007199254740881;
}

/** What a preference step leaves on the device for the step's one read. */
export interface PreferenceStepResult {
  /** Gradients of the mean loss for every policy parameter (the caller's to dispose). */
  grads: Map<string, Tensor>;
  /** loss [1], pHat [B], margins [B], policy [2B] and reference [2B] sequence log-probs (chosen slots first). */
  record: DeviceRecord;
  pairs: number;
  /** Tokens that went through the policy's forward + backward. */
  tokens: number;
}

/** The host values of a preference step, from its record after the read. */
export interface PreferenceValues {
  loss: number;
  pHat: Float64Array;
  margins: Float64Array;
  policyChosen: Float64Array;
  policyRejected: Float64Array;
  refChosen: Float64Array;
  refRejected: Float64Array;
}

export function preferenceValues(record: DeviceRecord, pairs: number): PreferenceValues {
  const pol = record.get('policyLogprobs');
  const ref = record.get('refLogprobs');
  return {
    loss: record.get('loss')[0],
    pHat: record.get('pHat'),
    margins: record.get('margins'),
    policyChosen: pol.subarray(0, pairs),
    policyRejected: pol.subarray(pairs, 2 * pairs),
    refChosen: ref.subarray(0, pairs),
    refRejected: ref.subarray(pairs, 2 * pairs),
  };
}

/** The dtype of per-sequence arithmetic: f64 on the cpu, f32 on cuda (see the file comment). */
function sequenceDtype(model: LlamaModel): 'f32' | 'f64' {
  return model.device === 'cpu' ? 'f64' : 'f32';
}

/** t in another dtype (Tensor.to converts on the device); t itself when it already is. */
function cast(t: Tensor, dtype: 'f32' | 'f64'): Tensor {
  return t.dtype === dtype ? t : t.to({ dtype });
}

function ids(model: LlamaModel, a: Int32Array): Tensor {
  return tensor(a, [a.length], { dtype: 'i32', device: model.device });
}

/** Sums of response-token log-probs into `count` slots for one packed micro-batch (forward given). */
function slotSums(model: LlamaModel, hidden: Tensor, count: number, targets: Tensor, scoreIds: Tensor): Tensor {
  const lp = model.headLogprobs(hidden, targets);
  return ops.sequenceLogprobs(cast(lp, sequenceDtype(model)), scoreIds, count);
}

/** Per-token d loss / d logprob of one micro-batch from d loss / d slot sums, in the model's head dtype. */
function tokenGrads(model: LlamaModel, gradSlots: Tensor, scoreIds: Tensor): Tensor {
  return cast(ops.sequenceLogprobsBackward(gradSlots, scoreIds), model.dtype === 'f64' ? 'f64' : 'f32');
}

/**
 * Slot sums of response log-probs over micro-batches of items, without gradients: a [count] tensor
 * on the model's device (nothing is read back).
 */
export function responseLogprobSums(model: LlamaModel, items: PromptResponse[], slots: ArrayLike<number>, count: number, microBatch: number, dropoutSeed?: number): Tensor {
  let total: Tensor | null = null;
  try {
    for (let s = 0; s < items.length; s += microBatch) {
      const part = items.slice(s, s + microBatch);
      const rb = packResponses(part, Array.from({ length: part.length }, (_, i) => slots[s + i]));
      const fwd = { dropoutSeed: microSeed(dropoutSeed, s / microBatch), inference: true };
      const sums = scope(() => slotSums(model, model.forward(rb.batch, fwd).hidden, count, ids(model, rb.targets), ids(model, rb.scoreIds)));
      if (total === null) total = sums;
      else {
        const next: Tensor = ops.add(total, sums);
        total.dispose();
        sums.dispose();
        total = next;
      }
    }
  } catch (e) {
    total?.dispose();
    throw e;
  }
  return total ?? zeros([count], { dtype: sequenceDtype(model), device: model.device });
}

function checkMicroBatch(op: string, n: number): void {
  if (!(Number.isInteger(n) && n >= 1)) throw new RangeError(`${op}: microBatch is ${String(n)}; expected an integer >= 1`);
}

/** The preference loss of the pairs and the policy's gradients, all on the device (see the file comment). */
export function preferenceStep(policy: LlamaModel, reference: LlamaModel, pairs: ScoredPair[], opts: PreferenceStepOptions): PreferenceStepResult {
  const op = 'preferenceStep';
  checkMicroBatch(op, opts.microBatch);
  if (pairs.length === 0) throw new RangeError(`${op}: no pairs`);
  pairs.forEach((p, i) => {
    if (!(p.target >= 0 && p.target <= 1)) throw new RangeError(`${op}: pairs[${i}].target is ${p.target}; expected a number in [0, 1]`);
  });
  const B = pairs.length;
  const dtype = sequenceDtype(policy);
  const items = pairs.flatMap((p) => [{ prompt: p.prompt, response: p.chosen }, { prompt: p.prompt, response: p.rejected }]);
  const slots = pairs.flatMap((_, i) => [i, B + i]);
  const seqMicro = 2 * opts.microBatch;
  const record = new DeviceRecord();
  const acc = new GradientAccumulator();
  let tokens = 0;
  try {
    const ref = keep(responseLogprobSums(reference, items, slots, 2 * B, seqMicro));
    record.add('refLogprobs', ref);
    const target = opts.loss === 'spce' ? tensor(Float64Array.from(pairs, (p) => p.target), [B], { dtype, device: policy.device }) : undefined;
    /** The loss from the policy's [2B] sums: records loss, pHat, margins and returns d loss / d sums [2B]. */
    const objective = (pol: Tensor): Tensor =>
      scope(() => {
        const r = ops.preferenceLoss(
          opts.loss,
          { policyChosen: pol.narrow(0, 0, B), policyRejected: pol.narrow(0, B, B), refChosen: ref.narrow(0, 0, B), refRejected: ref.narrow(0, B, B), target },
          { beta: opts.beta },
        );
        record.add('loss', r.meanLoss).add('pHat', r.pHat).add('margins', r.margins);
        const g = zeros([2 * B], { dtype, device: policy.device });
        ops.copyInto(g.narrow(0, 0, B), r.gradPolicyChosen);
        ops.copyInto(g.narrow(0, B, B), r.gradPolicyRejected);
        return g;
      });
    if (items.length <= seqMicro) {
      // One micro-batch: one forward whose cache serves the backward once the loss is known.
      const rb = packResponses(items, slots);
      const grads = scope(() => {
        const fwd = policy.forward(rb.batch, { recompute: opts.recompute, dropoutSeed: microSeed(opts.dropoutSeed, 0) });
        const tg = ids(policy, rb.targets);
        const sid = ids(policy, rb.scoreIds);
        const pol = slotSums(policy, fwd.hidden, 2 * B, tg, sid);
        record.add('policyLogprobs', pol);
        return policy.gradientsFromHead(fwd, tg, tokenGrads(policy, objective(pol), sid)).grads;
      });
      target?.dispose();
      return { grads, record, pairs: B, tokens: rb.targets.length };
    }
    // Several micro-batches: score without gradients first, then forward + backward per micro-batch.
    const pol = responseLogprobSums(policy, items, slots, 2 * B, seqMicro, opts.dropoutSeed);
    record.add('policyLogprobs', pol);
    const gradSlots = keep(objective(pol));
    target?.dispose();
    try {
      for (let s = 0; s < items.length; s += seqMicro) {
        const rb = packResponses(items.slice(s, s + seqMicro), slots.slice(s, s + seqMicro));
        const grads = scope(() => {
          const fwd = policy.forward(rb.batch, { recompute: opts.recompute, dropoutSeed: microSeed(opts.dropoutSeed, s / seqMicro) });
          const sid = ids(policy, rb.scoreIds);
          return policy.gradientsFromHead(fwd, ids(policy, rb.targets), tokenGrads(policy, gradSlots, sid)).grads;
        });
        acc.add(grads);
        tokens += rb.targets.length;
      }
    } finally {
      gradSlots.dispose();
    }
    return { grads: acc.take(), record, pairs: B, tokens };
  } catch (e) {
    acc.dispose();
    record.dispose();
    throw e;
  }
}

export interface SftExample {
  prompt: Int32Array;
  response: Int32Array;
}

/** Mean next-token loss over all response tokens of the examples (prompt tokens masked) and its gradients; the loss stays on the device (record 'loss'). */
export function sftStep(model: LlamaModel, examples: SftExample[], opts: { microBatch: number; recompute?: boolean; dropoutSeed?: number }): { grads: Map<string, Tensor>; record: DeviceRecord; tokens: number } {
  const op = 'sftStep';
  checkMicroBatch(op, opts.microBatch);
  if (examples.length === 0) throw new RangeError(`${op}: no examples`);
  const counted = examples.reduce((n, e) => n + e.response.length, 0);
  if (counted === 0) throw new RangeError(`${op}: every response is empty; nothing to learn`);
  const dtype = sequenceDtype(model);
  const acc = new GradientAccumulator();
  const record = new DeviceRecord();
  let sum: Tensor | null = null;
  let tokens = 0;
  try {
    // d loss / d (sum of response log-probs) = -1 / counted: one slot for every example.
    const gradSlot = keep(tensor(Float64Array.of(-1 / counted), [1], { dtype, device: model.device }));
    try {
      for (let s = 0; s < examples.length; s += opts.microBatch) {
        const part = examples.slice(s, s + opts.microBatch);
        const rb = packResponses(part, new Int32Array(part.length));
        const out = scope(() => {
          const fwd = model.forward(rb.batch, { recompute: opts.recompute, dropoutSeed: microSeed(opts.dropoutSeed, s / opts.microBatch) });
          const tg = ids(model, rb.targets);
          const sid = ids(model, rb.scoreIds);
          const lpSum = slotSums(model, fwd.hidden, 1, tg, sid);
          return { lpSum, grads: model.gradientsFromHead(fwd, tg, tokenGrads(model, gradSlot, sid)).grads };
        });
        acc.add(out.grads);
        if (sum === null) sum = out.lpSum;
        else {
          const next: Tensor = ops.add(sum, out.lpSum);
          sum.dispose();
          out.lpSum.dispose();
          sum = next;
        }
        tokens += rb.targets.length;
      }
    } finally {
      gradSlot.dispose();
    }
    record.add('loss', ops.affine(sum as Tensor, -1 / counted));
    (sum as Tensor).dispose();
    return { grads: acc.take(), record, tokens };
  } catch (e) {
    sum?.dispose();
    acc.dispose();
    record.dispose();
    throw e;
  }
}

/**
 * The one place that orients a pair: chosen becomes the preferred side, so target >= 0.5. This
 * changes nothing for SPCE (symmetric under the swap with p -> 1 - p) and gives DPO / IPO, which
 * treat every pair as p = 1, the right direction. A target of exactly 0.5 keeps its order.
 */
export function orientPair<T>(p: { chosen: T; rejected: T; target: number }): { chosen: T; rejected: T; target: number } {
  return p.target < 0.5 ? { chosen: p.rejected, rejected: p.chosen, target: 1 - p.target } : { chosen: p.chosen, rejected: p.rejected, target: p.target };
}

/** A preference pair for a reward model: chosen is the preferred side (orientPair). */
export interface RewardPair {
  prompt: Int32Array;
  chosen: Int32Array;
  rejected: Int32Array;
}

/**
 * The Bradley-Terry loss of a reward model (METHOD.md section 3), mean over pairs of
 * -log sigmoid(r(chosen) - r(rejected)), and its gradients (the backbone's trainable tensors, then
 * score.weight), all on the device. The loss is the fused preferenceLoss('dpo') with beta 1 and a
 * zero reference, whose gradPolicyChosen / Rejected are d loss / d r. Each reward is read on the
 * final hidden state at its sequence's last token (ops.embedding of those rows); d hidden is the
 * scatter of d r times the head (ops.embeddingBackward), then the backbone's backward. Record:
 * loss [1] and rewards [2B] (chosen first). Micro-batching as preferenceStep's: one forward when
 * all pairs fit, else an inference scoring pass first, then forward + backward per micro-batch.
 */
export function bradleyTerryStep(model: RewardModel, pairs: RewardPair[], opts: { microBatch: number; recompute?: boolean; dropoutSeed?: number }): { grads: Map<string, Tensor>; record: DeviceRecord; tokens: number } {
  const op = 'bradleyTerryStep';
  checkMicroBatch(op, opts.microBatch);
  if (pairs.length === 0) throw new RangeError(`${op}: no pairs`);
  const B = pairs.length;
  const backbone = model.backbone;
  const dtype = sequenceDtype(backbone);
  const device = backbone.device;
  const record = new DeviceRecord();
  const acc = new GradientAccumulator();
  // A micro-batch of pairs s..s+m: its 2m sequences packed chosen first, so its rewards are [chosen m, rejected m].
  const packed = (s: number, m: number) => {
    const seqs = pairs.slice(s, s + m).map((p) => concat(p.prompt, p.chosen)).concat(pairs.slice(s, s + m).map((p) => concat(p.prompt, p.rejected)));
    return { batch: packSequences(seqs), rows: lastRowsOf(seqs), tokens: seqs.reduce((n, q) => n + q.length, 0) };
  };
  const rowsTensor = (rows: Int32Array) => tensor(rows, [rows.length], { dtype: 'i32', device });
  /** d loss / d rewards [2B] from the [2B] rewards; records loss and rewards. */
  const objective = (rewards: Tensor): Tensor =>
    scope(() => {
      record.add('rewards', rewards);
      const zero = zeros([B], { dtype, device });
      const r = ops.preferenceLoss('dpo', { policyChosen: rewards.narrow(0, 0, B), policyRejected: rewards.narrow(0, B, B), refChosen: zero, refRejected: zero }, { beta: 1 });
      record.add('loss', r.meanLoss);
      const g = zeros([2 * B], { dtype, device });
      ops.copyInto(g.narrow(0, 0, B), r.gradPolicyChosen);
      ops.copyInto(g.narrow(0, B, B), r.gradPolicyRejected);
      return g;
    });
  /** The gradients of one micro-batch's forward given d loss / d its rewards [2m]. */
  const gradients = (fwd: ForwardResult, rows: Tensor, gradRewards: Tensor): Map<string, Tensor> =>
    scope(() => {
      const { gradHidden, gradScore } = model.rewardsBackward(fwd.hidden, rows, gradRewards);
      const grads = backbone.backward(fwd.cache, gradHidden).grads;
      grads.set(SCORE_WEIGHT, gradScore);
      return grads;
    });
  try {
    if (B <= opts.microBatch) {
      const mb = packed(0, B);
      const grads = scope(() => {
        const fwd = backbone.forward(mb.batch, { recompute: opts.recompute, dropoutSeed: microSeed(opts.dropoutSeed, 0) });
        const rows = rowsTensor(mb.rows);
        return gradients(fwd, rows, objective(cast(model.rewardsOf(fwd.hidden, rows), dtype)));
      });
      return { grads, record, tokens: mb.tokens };
    }
    // Several micro-batches: every reward first (inference forwards), then forward + backward per micro-batch.
    const rewards = keep(zeros([2 * B], { dtype, device }));
    let gradRewards: Tensor;
    try {
      for (let s = 0, m = 0; s < B; s += opts.microBatch, m++) {
        const n = Math.min(opts.microBatch, B - s);
        const mb = packed(s, n);
        scope(() => {
          const fwd = backbone.forward(mb.batch, { inference: true, dropoutSeed: microSeed(opts.dropoutSeed, m) });
          const r = cast(model.rewardsOf(fwd.hidden, rowsTensor(mb.rows)), dtype);
          ops.copyInto(rewards.narrow(0, s, n), r.narrow(0, 0, n));
          ops.copyInto(rewards.narrow(0, B + s, n), r.narrow(0, n, n));
        });
      }
      gradRewards = keep(objective(rewards));
    } catch (e) {
      rewards.dispose();
      throw e;
    }
    let tokens = 0;
    try {
      for (let s = 0, m = 0; s < B; s += opts.microBatch, m++) {
        const n = Math.min(opts.microBatch, B - s);
        const mb = packed(s, n);
        acc.add(
          scope(() => {
            const fwd = backbone.forward(mb.batch, { recompute: opts.recompute, dropoutSeed: microSeed(opts.dropoutSeed, m) });
            const g = zeros([2 * n], { dtype, device });
            ops.copyInto(g.narrow(0, 0, n), gradRewards.narrow(0, s, n));
            ops.copyInto(g.narrow(0, n, n), gradRewards.narrow(0, B + s, n));
            return gradients(fwd, rowsTensor(mb.rows), g);
          }),
        );
        tokens += mb.tokens;
      }
    } finally {
      gradRewards.dispose();
    }
    return { grads: acc.take(), record, tokens };
  } catch (e) {
    acc.dispose();
    record.dispose();
    throw e;
  }
}

function concat(a: Int32Array, b: Int32Array): Int32Array {
  const out = new Int32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
