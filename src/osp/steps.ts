// The two training steps every trainer mode is made of (METHOD.md sections 2, 3, 6, 8):
//   preferenceStep: pairs (prompt, chosen, rejected, target) -> policy and reference sequence
//     log-probs (response tokens only) -> SPCE / DPO / IPO loss -> gradients of the policy;
//   sftStep: (prompt, response) examples -> mean next-token loss over response tokens -> gradients.
// Both take micro-batches of pairs / examples and sum their gradients in f32 (GradientAccumulator),
// so the step's memory is that of one micro-batch. The loss needs every pair's log-probs before any
// backward: when all pairs fit one micro-batch, its one forward is kept and the backward follows the
// loss; with several, the policy is scored without gradients first, then the forward and backward
// run again per micro-batch with d loss / d logp on each response token (one extra forward, in
// exchange for the activations of one micro-batch at a time).
import { LlamaModel, PackedBatch, packSequences } from '../model/llama';
import { GradientAccumulator } from '../model/optim';
import * as ops from '../ops';
import { Tensor, scope, tensor } from '../tensor';

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
}

export interface PreferenceStepResult {
  loss: number;
  /** Gradients of the mean loss for every policy parameter (the caller's to dispose). */
  grads: Map<string, Tensor>;
  pHat: Float64Array;
  margins: Float64Array;
  policyChosen: Float64Array;
  policyRejected: Float64Array;
  refChosen: Float64Array;
  refRejected: Float64Array;
  /** Tokens that went through the policy's forward + backward. */
  tokens: number;
}

/** Packs (prompt, response) sequences; targets score the response tokens only (position j predicts token j + 1). */
export function packResponses(items: { prompt: Int32Array; response: Int32Array }[]): { batch: PackedBatch; targets: Int32Array } {
  const seqs = items.map((it, i) => {
    if (it.prompt.length === 0) throw new RangeError(`packResponses: item ${i} has an empty prompt; expected at least one token (BOS)`);
    const s = new Int32Array(it.prompt.length + it.response.length);
    s.set(it.prompt, 0);
    s.set(it.response, it.prompt.length);
    return s;
  });
  const batch = packSequences(seqs);
  const targets = new Int32Array(batch.tokens.length).fill(ops.DEFAULT_IGNORE_INDEX);
  let t0 = 0;
  items.forEach((it, i) => {
    const len = seqs[i].length;
    for (let j = it.prompt.length - 1; j + 1 < len; j++) targets[t0 + j] = seqs[i][j + 1];
    t0 += len;
  });
  return { batch, targets };
}

/** Sum of response-token log-probs per item, micro-batched, no gradients. */
export function responseLogprobs(model: LlamaModel, items: { prompt: Int32Array; response: Int32Array }[], microBatch: number): Float64Array {
  const out = new Float64Array(items.length);
  for (let s = 0; s < items.length; s += microBatch) {
    const part = items.slice(s, s + microBatch);
    const { batch, targets } = packResponses(part);
    const lp = model.tokenLogprobs(batch, targets);
    for (let t = 0; t < lp.length; t++) if (targets[t] !== ops.DEFAULT_IGNORE_INDEX) out[s + batch.sequenceIds[t]] += lp[t];
  }
  return out;
}

function checkMicroBatch(op: string, n: number): void {
  if (!(Number.isInteger(n) && n >= 1)) throw new RangeError(`${op}: microBatch is ${String(n)}; expected an integer >= 1`);
}

/** The preference loss of the pairs and the policy's gradients (see the file comment). */
export function preferenceStep(policy: LlamaModel, reference: LlamaModel, pairs: ScoredPair[], opts: PreferenceStepOptions): PreferenceStepResult {
  const op = 'preferenceStep';
  checkMicroBatch(op, opts.microBatch);
  if (pairs.length === 0) throw new RangeError(`${op}: no pairs`);
  pairs.forEach((p, i) => {
    if (!(p.target >= 0 && p.target <= 1)) throw new RangeError(`${op}: pairs[${i}].target is ${p.target}; expected a number in [0, 1]`);
  });
  const B = pairs.length;
  const items = pairs.flatMap((p) => [{ prompt: p.prompt, response: p.chosen }, { prompt: p.prompt, response: p.rejected }]);
  const seqMicro = 2 * opts.microBatch;
  const pick = (a: Float64Array, k: number) => Float64Array.from({ length: B }, (_, i) => a[2 * i + k]);
  const ref = responseLogprobs(reference, items, seqMicro);
  const lossOf = (pol: Float64Array) => preferenceLossOf(opts, pairs, pick(pol, 0), pick(pol, 1), pick(ref, 0), pick(ref, 1));
  /** d loss / d logp of each scored token of a micro-batch starting at item s. */
  const tokenGrads = (l: ReturnType<typeof lossOf>, s: number, batch: PackedBatch, tg: Int32Array) => {
    const g = new Float64Array(tg.length);
    for (let t = 0; t < tg.length; t++) {
      if (tg[t] === ops.DEFAULT_IGNORE_INDEX) continue;
      const k = s + batch.sequenceIds[t];
      g[t] = k % 2 === 0 ? l.gc[k >> 1] : l.gr[k >> 1];
    }
    return g;
  };
  const finish = (l: ReturnType<typeof lossOf>, pol: Float64Array, grads: Map<string, Tensor>, tokens: number): PreferenceStepResult => ({
    loss: l.loss, grads, pHat: l.pHat, margins: l.margins, policyChosen: pick(pol, 0), policyRejected: pick(pol, 1), refChosen: pick(ref, 0), refRejected: pick(ref, 1), tokens,
  });
  if (items.length <= seqMicro) {
    // One micro-batch: one forward whose cache serves the backward once the loss is known.
    const { batch, targets: tg } = packResponses(items);
    return scope(() => {
      const fwd = policy.forward(batch, { recompute: opts.recompute });
      const lp = policy.headLogprobs(fwd.hidden, tg);
      const pol = new Float64Array(items.length);
      for (let t = 0; t < lp.length; t++) if (tg[t] !== ops.DEFAULT_IGNORE_INDEX) pol[batch.sequenceIds[t]] += lp[t];
      const l = lossOf(pol);
      const { grads } = policy.gradientsFromHead(fwd, tg, tokenGrads(l, 0, batch, tg));
      return finish(l, pol, grads, tg.length);
    });
  }
  // Several micro-batches: score without gradients first, then forward + backward per micro-batch.
  const pol = responseLogprobs(policy, items, seqMicro);
  const l = lossOf(pol);
  const acc = new GradientAccumulator();
  let tokens = 0;
  try {
    for (let s = 0; s < items.length; s += seqMicro) {
      const { batch, targets: tg } = packResponses(items.slice(s, s + seqMicro));
      const r = policy.lossAndGrads(batch, tg, tokenGrads(l, s, batch, tg), { recompute: opts.recompute });
      r.gradInputEmbeddings.dispose();
      acc.add(r.grads);
      tokens += tg.length;
    }
  } catch (e) {
    acc.dispose();
    throw e;
  }
  return finish(l, pol, acc.take(), tokens);
}

/** The preference loss of METHOD.md section 3 on the host (f64): loss, pHat, margins and d loss / d policy logps. */
function preferenceLossOf(opts: PreferenceStepOptions, pairs: ScoredPair[], pc: Float64Array, pr: Float64Array, rc: Float64Array, rr: Float64Array) {
  const B = pairs.length;
  return scope(() => {
    const t = (a: Float64Array) => tensor(a, [B], { dtype: 'f64', device: 'cpu' });
    const target = opts.loss === 'spce' ? t(Float64Array.from(pairs, (p) => p.target)) : undefined;
    const r = ops.preferenceLoss(opts.loss, { policyChosen: t(pc), policyRejected: t(pr), refChosen: t(rc), refRejected: t(rr), target }, { beta: opts.beta });
    return {
      loss: r.loss,
      pHat: Float64Array.from(r.pHat.toArray()),
      margins: Float64Array.from(r.margins.toArray()),
      gc: Float64Array.from(r.gradPolicyChosen.toArray()),
      gr: Float64Array.from(r.gradPolicyRejected.toArray()),
    };
  });
}

export interface SftExample {
  prompt: Int32Array;
  response: Int32Array;
}

/** Mean next-token loss over all response tokens of the examples (prompt tokens masked) and its gradients. */
export function sftStep(model: LlamaModel, examples: SftExample[], opts: { microBatch: number; recompute?: boolean }): { loss: number; grads: Map<string, Tensor>; tokens: number } {
  const op = 'sftStep';
  checkMicroBatch(op, opts.microBatch);
  if (examples.length === 0) throw new RangeError(`${op}: no examples`);
  const counted = examples.reduce((n, e) => n + e.response.length, 0);
  if (counted === 0) throw new RangeError(`${op}: every response is empty; nothing to learn`);
  const acc = new GradientAccumulator();
  let loss = 0;
  let tokens = 0;
  try {
    for (let s = 0; s < examples.length; s += opts.microBatch) {
      const { batch, targets } = packResponses(examples.slice(s, s + opts.microBatch));
      const g = Float64Array.from(targets, (t) => (t === ops.DEFAULT_IGNORE_INDEX ? 0 : -1 / counted));
      const r = model.lossAndGrads(batch, targets, g, { recompute: opts.recompute });
      r.gradInputEmbeddings.dispose();
      for (let t = 0; t < targets.length; t++) if (targets[t] !== ops.DEFAULT_IGNORE_INDEX) loss -= r.tokenLogprobs[t] / counted;
      acc.add(r.grads);
      tokens += targets.length;
    }
  } catch (e) {
    acc.dispose();
    throw e;
  }
  return { loss, grads: acc.take(), tokens };
}
