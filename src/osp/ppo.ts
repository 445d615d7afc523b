// PPO for RLHF (METHOD.md section 9), the paper's RLHF baseline: the policy samples K responses per
// prompt, a frozen Bradley-Terry reward model scores each at its last token (EOS), a frozen reference
// adds a per-token KL penalty, a value head V(s_t) on the policy's own trunk gives GAE advantages,
// and several epochs of mini-batches train the clipped policy objective and the clipped value loss.
// Defaults and losses follow TRL's PPOTrainer, OpenRLHF and "The N+ implementation details of RLHF
// with PPO" (Huang et al. 2024): per-token reward -kl_coef (log pi - log pi_ref) plus the score at
// the last token, gamma 1, lambda 0.95, advantages whitened over the batch, clip 0.2 for both
// losses, vf_coef 0.1, 4 epochs, log-probs of the temperature-scaled distribution (as sampled).
//
// Where the numbers live. The rollout's forwards (policy with its value head, reference, reward
// model) run without gradients on the device and are read once per step (one DeviceRecord). The
// per-token math that follows -- KL, rewards, GAE, whitening, the adaptive KL controller -- runs in
// f64 on the host: it is O(tokens), tiny beside a forward. The clipped losses choose a branch per
// token (min / max / clamp), for which osp's device ops have no primitive, so each training
// micro-batch reads its new log-probs and values (one host wait, [tokens] numbers), the host forms
// the loss and d loss / d (log-prob, value) in f64 (ppoTokenLoss), and uploads them for the
// backward. Host waits per step: generation's, 1 for the rollout, ppoEpochs x micro-batches, and
// the loop's 1 (metrics hostWaits / hostWaitsTrain count them).
//
// The value model: a scalar linear head (no bias, as OpenRLHF's critic head and the reward model's
// score) on the policy's final hidden state, sharing the trunk (TRL's classic
// AutoModelForCausalLMWithValueHead). Chosen over a separate critic for memory: no second model,
// optimizer state or activations; with --lora the value loss trains the same adapter. Its weight
// starts at normal(0, 1/sqrt(D + 1)) (the N+ details' head initialisation), seeded.
//
// A step of runLoop is one rollout: ppoEpochs x mini-batches optimizer updates, all but the last
// taken here (the step function holds the optimizer), the last by the loop, so checkpoints and
// resume fall on rollout boundaries; the AdamW step count (bias correction) is saved with the
// optimizer state. The KL coefficient (adaptive) is saved beside the weights (ppo_state.json).
import * as fs from 'fs';
import * as path from 'path';
import { generate } from '../generate';
import { DEFAULT_IGNORE_INDEX, PromptResponse, packResponses, packSequences } from '../model/batch';
import { LlamaModel } from '../model/llama';
import { AdamW, GradientAccumulator } from '../model/optim';
import { RewardModel, lastRowsOf } from '../model/rewardModel';
import { readSafetensors, writeSafetensors } from '../model/safetensors';
import { Tokenizer } from '../model/tokenizer';
import * as ops from '../ops';
import { syncStats } from '../sync';
import { Tensor, keep, randn, scope, tensor } from '../tensor';
import { writeFileAtomicSync } from '../util/atomicWrite';
import { seededUniform, shuffleInPlace } from '../util/random';
import { DeviceRecord } from './deviceRecord';
import { StepFn } from './loop';
import { microSeed } from './objective';
import { StageEvents } from './modes';
import { PolicyTrainee, Trainee, loadCheckpointPolicy } from './run';

// ---- the host math (f64) -------------------------------------------------------------------------

/**
 * Generalised advantage estimation over one response: delta_t = r_t + gamma V_{t+1} - V_t (V after
 * the last token is 0: the episode ends), A_t = delta_t + gamma lambda A_{t+1}, returns R_t = A_t + V_t.
 */
export function gae(rewards: ArrayLike<number>, values: ArrayLike<number>, gamma: number, lam: number): { advantages: Float64Array; returns: Float64Array } {
  const L = rewards.length;
  if (values.length !== L) throw new RangeError(`gae: ${L} rewards but ${values.length} values`);
  const advantages = new Float64Array(L);
  const returns = new Float64Array(L);
  let last = 0;
  for (let t = L - 1; t >= 0; t--) {
    const next = t + 1 < L ? values[t + 1] : 0;
    const delta = rewards[t] + gamma * next - values[t];
    last = delta + gamma * lam * last;
    advantages[t] = last;
    returns[t] = last + values[t];
  }
  return { advantages, returns };
}

/**
 * Whitening over all tokens of a batch (TRL's masked whiten): (x - mean) / sqrt(var + 1e-8) with the
 * unbiased variance; shiftMean false adds the mean back (rewards keep their level). Fewer than two
 * values: returned unchanged (no variance to scale by).
 */
export function whiten(values: Float64Array, shiftMean = true): Float64Array {
  const n = values.length;
  if (n < 2) return Float64Array.from(values);
  let mean = 0;
  for (const v of values) mean += v;
  mean /= n;
  let ss = 0;
  for (const v of values) ss += (v - mean) * (v - mean);
  const scale = 1 / Math.sqrt(ss / (n - 1) + 1e-8);
  return values.map((v) => (v - mean) * scale + (shiftMean ? 0 : mean));
}

export interface PpoLossOptions {
  clipRange: number;
  clipRangeValue: number;
  vfCoef: number;
  /** The mean's denominator: the response tokens of the whole mini-batch (a micro-batch's share is summed). */
  tokens: number;
}

export interface PpoTokenInputs {
  logprobs: ArrayLike<number>;
  oldLogprobs: ArrayLike<number>;
  advantages: ArrayLike<number>;
  values: ArrayLike<number>;
  oldValues: ArrayLike<number>;
  returns: ArrayLike<number>;
}

/**
 * The clipped PPO objective over tokens, divided by o.tokens (TRL's masked means):
 *   policy  max(-A ratio, -A clip(ratio, 1 - eps, 1 + eps)),  ratio = exp(logp - logp_old)
 *   value   0.5 max((V - R)^2, (V_old + clip(V - V_old, -eps_v, eps_v) - R)^2)
 *   loss    policy + vfCoef value
 * and d loss / d logp, d loss / d V (the clipped branch, where it wins, is constant: 0). Also the
 * sums behind the metrics: tokens whose policy / value term was clipped, and 0.5 (logp - logp_old)^2.
 */
export function ppoTokenLoss(x: PpoTokenInputs, o: PpoLossOptions) {
  const n = x.logprobs.length;
  const gradLogprobs = new Float64Array(n);
  const gradValues = new Float64Array(n);
  let policy = 0;
  let value = 0;
  let clipped = 0;
  let valueClipped = 0;
  let approxKl = 0;
  for (let t = 0; t < n; t++) {
    const d = x.logprobs[t] - x.oldLogprobs[t];
    const ratio = Math.exp(d);
    const A = x.advantages[t];
    const pg1 = -A * ratio;
    const pg2 = -A * Math.min(Math.max(ratio, 1 - o.clipRange), 1 + o.clipRange);
    if (pg1 >= pg2) {
      policy += pg1;
      gradLogprobs[t] = -A * ratio / o.tokens;
    } else {
      policy += pg2;
      clipped++;
    }
    const v = x.values[t];
    const R = x.returns[t];
    const vClip = x.oldValues[t] + Math.min(Math.max(v - x.oldValues[t], -o.clipRangeValue), o.clipRangeValue);
    const l1 = (v - R) * (v - R);
    const l2 = (vClip - R) * (vClip - R);
    if (l1 >= l2) {
      value += 0.5 * l1;
      gradValues[t] = (o.vfCoef * (v - R)) / o.tokens;
    } else {
      value += 0.5 * l2;
      valueClipped++;
    }
    approxKl += 0.5 * d * d;
  }
  const policyLoss = policy / o.tokens;
  const valueLoss = value / o.tokens;
  return { loss: policyLoss + o.vfCoef * valueLoss, policyLoss, valueLoss, gradLogprobs, gradValues, clipped, valueClipped, approxKlSum: approxKl };
}

/** Ziegler et al.'s adaptive KL controller: coef x (1 + clip(KL / target - 1, -0.2, 0.2) x n / horizon). */
export function adaptiveKlCoef(coef: number, klMean: number, o: { target: number; horizon: number; samples: number }): number {
  const err = Math.min(Math.max(klMean / o.target - 1, -0.2), 0.2);
  return coef * (1 + (err * o.samples) / o.horizon);
}

// ---- the value head ------------------------------------------------------------------------------

export const VALUE_HEAD_WEIGHT = 'v_head.weight';
export const VALUE_HEAD_FILE = 'value_head.safetensors';
const PPO_STATE_FILE = 'ppo_state.json';

/** A scalar linear head [1, D] (f32; f64 on an f64 model) read on final hidden states. */
export class ValueHead {
  constructor(readonly weight: Tensor) {}

  static init(model: LlamaModel, seed: number): ValueHead {
    const D = model.config.hiddenSize;
    return new ValueHead(keep(randn([1, D], { dtype: model.dtype === 'f64' ? 'f64' : 'f32', device: model.device, seed: (seed ^ 0x7a1e) >>> 0, std: 1 / Math.sqrt(D + 1) })));
  }

  static load(file: string, model: LlamaModel): ValueHead {
    const t = readSafetensors(file, { names: [VALUE_HEAD_WEIGHT] }).get(VALUE_HEAD_WEIGHT);
    const D = model.config.hiddenSize;
    if (!t || t.shape.join(',') !== `1,${D}`) throw new Error(`${file}: expected ${VALUE_HEAD_WEIGHT} of shape [1, ${D}]`);
    const bad = Array.from(t.data as Float32Array).findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new Error(`${file}: ${VALUE_HEAD_WEIGHT}[${bad}] is not finite`);
    const f64 = model.dtype === 'f64';
    return new ValueHead(keep(tensor(f64 ? Float64Array.from(t.data as Float32Array) : Float32Array.from(t.data as Float32Array), [1, D], { dtype: f64 ? 'f64' : 'f32', device: model.device })));
  }

  save(file: string): void {
    const data = Float32Array.from(this.weight.toArray());
    const bad = data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new Error(`${VALUE_HEAD_WEIGHT}[${bad}] is ${data[bad]}; a weight that is not finite is never saved`);
    writeSafetensors(file, new Map([[VALUE_HEAD_WEIGHT, { dtype: 'F32' as const, shape: [1, this.weight.shape[1]], data }]]), { format: 'pt' });
  }

  /** V at the rows [n] (i32) of hidden [T, D]: [n] in the head's dtype. */
  values(hidden: Tensor, rows: Tensor): Tensor {
    return scope(() => {
      const h = ops.embedding(hidden, rows);
      const x = h.dtype === this.weight.dtype ? h : h.to({ dtype: this.weight.dtype as 'f32' | 'f64' });
      return ops.matmul(x, this.weight, { transB: true }).reshape([rows.shape[0]]).contiguous();
    });
  }

  /** Backward of values for L = sum_i g[i] V_i: d L / d hidden [T, D] (hidden's dtype, 0 off the rows) and d L / d weight [1, D]. */
  backward(hidden: Tensor, rows: Tensor, g: Tensor): { gradHidden: Tensor; gradWeight: Tensor } {
    return scope(() => {
      const n = rows.shape[0];
      const gc = g.reshape([n, 1]).contiguous();
      const h = ops.embedding(hidden, rows);
      const x = h.dtype === this.weight.dtype ? h : h.to({ dtype: this.weight.dtype as 'f32' | 'f64' });
      const gradWeight = ops.matmul(gc, x, { transA: true });
      const dh = ops.matmul(gc, this.weight);
      const dl = dh.dtype === hidden.dtype ? dh : dh.to({ dtype: hidden.dtype as 'f32' | 'f64' | 'bf16' });
      return { gradHidden: ops.embeddingBackward(dl, rows, hidden.shape[0]), gradWeight };
    });
  }

  dispose(): void {
    this.weight.dispose();
  }
}

/** What a PPO run trains and checkpoints: the policy (full or LoRA), its value head, and the KL coefficient. */
export class PpoTrainee implements Trainee {
  constructor(readonly policy: LlamaModel, readonly valueHead: ValueHead, readonly state: { klCoef: number }) {}

  get device(): 'cpu' | 'cuda' {
    return this.policy.device;
  }

  trainableParameters(): Map<string, Tensor> {
    return new Map([...this.policy.trainableParameters(), [VALUE_HEAD_WEIGHT, this.valueHead.weight]]);
  }

  async saveCheckpointModel(dir: string, tokenizerFrom: string | undefined): Promise<void> {
    await new PolicyTrainee(this.policy).saveCheckpointModel(dir, tokenizerFrom);
    this.valueHead.save(path.join(dir, VALUE_HEAD_FILE));
    writeFileAtomicSync(path.join(dir, PPO_STATE_FILE), `${JSON.stringify(this.state)}\n`);
  }

  /** final/: the policy's folder (a Hugging Face model, or with LoRA a PEFT adapter) and value_head.safetensors beside it. */
  async saveFinal(dir: string, tokenizerDir: string): Promise<void> {
    await new PolicyTrainee(this.policy).saveFinal(dir, tokenizerDir);
    this.valueHead.save(path.join(dir, VALUE_HEAD_FILE));
  }

  async loadCheckpoint(dir: string): Promise<PpoTrainee> {
    const file = path.join(dir, PPO_STATE_FILE);
    const state = JSON.parse(fs.readFileSync(file, 'utf8')) as { klCoef: number };
    if (!(typeof state.klCoef === 'number' && Number.isFinite(state.klCoef))) throw new Error(`${file}: klCoef is not a finite number`);
    const policy = await loadCheckpointPolicy(dir, this.policy);
    try {
      return new PpoTrainee(policy, ValueHead.load(path.join(dir, VALUE_HEAD_FILE), policy), state);
    } catch (e) {
      new PolicyTrainee(policy).release();
      throw e;
    }
  }

  release(): void {
    new PolicyTrainee(this.policy).release();
    this.valueHead.dispose();
  }
}

// ---- the step ------------------------------------------------------------------------------------

export interface PpoOptions {
  k: number;
  temperature: number;
  topP: number;
  maxNewTokens: number;
  /** Sequences per forward / backward. */
  microBatch: number;
  /** Sequences per optimizer update (default: the whole rollout). */
  miniBatch?: number;
  ppoEpochs: number;
  gamma: number;
  lam: number;
  clipRange: number;
  clipRangeValue: number;
  vfCoef: number;
  whitenRewards: boolean;
  adaptiveKl: { target: number; horizon: number } | null;
  recompute?: boolean;
  /** The learning rate of loop step `step` (the inner updates use their rollout's). */
  lrAt: (step: number) => number;
  scorer?: (prompt: string, response: string) => number;
}

interface Packed {
  rb: ReturnType<typeof packResponses>;
  /** Packed rows whose target is a response token, in order (item by item). */
  rows: Int32Array;
}

function packItems(items: PromptResponse[]): Packed {
  const rb = packResponses(items);
  const rows: number[] = [];
  rb.targets.forEach((t, r) => {
    if (t !== DEFAULT_IGNORE_INDEX) rows.push(r);
  });
  return { rb, rows: Int32Array.from(rows) };
}

const mean = (a: ArrayLike<number>) => (a.length ? Array.from(a).reduce((s, v) => s + v, 0) / a.length : null);
const now = () => performance.now() / 1e3;

/** What the loss compares a micro-batch's new log-probs and values with, per response token (items in order). */
export interface PpoTokenTargets {
  oldLogprobs: Float64Array;
  advantages: Float64Array;
  oldValues: Float64Array;
  returns: Float64Array;
}

/**
 * One training micro-batch: the policy's forward, one read of its new log-probs (of the tempered
 * distribution) and values at the response tokens, ppoTokenLoss on the host, and the backward of
 * the loss through the LM head (x 1 / temperature), the value head and the trunk. Returns the
 * gradients of `names` (the trainee's trainable parameters, the value head's last) and the loss terms.
 */
export function ppoMicroBatch(
  policy: LlamaModel,
  head: ValueHead,
  items: PromptResponse[],
  x: PpoTokenTargets,
  o: PpoLossOptions & { temperature: number; recompute?: boolean; dropoutSeed?: number },
  names: string[],
): { grads: Map<string, Tensor>; loss: ReturnType<typeof ppoTokenLoss> } {
  const device = policy.device;
  const lpDtype = policy.dtype === 'f64' ? 'f64' : 'f32';
  const p = packItems(items);
  let loss: ReturnType<typeof ppoTokenLoss> | null = null;
  const grads = scope(() => {
    const fwd = policy.forward(p.rb.batch, { recompute: o.recompute, dropoutSeed: o.dropoutSeed });
    const tg = tensor(p.rb.targets, [p.rb.targets.length], { dtype: 'i32', device });
    const rows = tensor(p.rows, [p.rows.length], { dtype: 'i32', device });
    const hidden = o.temperature === 1 ? fwd.hidden : ops.affine(fwd.hidden, 1 / o.temperature);
    const T = tg.shape[0];
    // The micro-batch's one read.
    const got = new DeviceRecord();
    got.add('lp', ops.embedding(policy.headLogprobs(hidden, tg).reshape([T, 1]), rows)).add('v', head.values(fwd.hidden, rows));
    const r = ppoTokenLoss({ logprobs: got.get('lp'), oldLogprobs: x.oldLogprobs, advantages: x.advantages, values: got.get('v'), oldValues: x.oldValues, returns: x.returns }, o);
    loss = r;
    // d loss / d logp at the packed rows (0 elsewhere), back through the head; the scaled hidden's gradient x 1 / T.
    const gFull = lpDtype === 'f64' ? new Float64Array(T) : new Float32Array(T);
    p.rows.forEach((row, j) => (gFull[row] = r.gradLogprobs[j]));
    const hb = policy.headBackward(hidden, tg, tensor(gFull, [T], { dtype: lpDtype, device }), { weightGrad: policy.adapter === null });
    const gradHead = o.temperature === 1 ? hb.gradHidden : ops.affine(hb.gradHidden, 1 / o.temperature);
    const vd = head.weight.dtype as 'f32' | 'f64';
    const gv = tensor(vd === 'f64' ? Float64Array.from(r.gradValues) : Float32Array.from(r.gradValues), [r.gradValues.length], { dtype: vd, device });
    const vb = head.backward(fwd.hidden, rows, gv);
    const { grads: g } = policy.backward(fwd.cache, ops.add(gradHead, vb.gradHidden));
    if (hb.gradWeight) {
      const name = policy.config.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
      const prev = g.get(name);
      g.set(name, prev ? ops.add(prev, hb.gradWeight) : hb.gradWeight);
    }
    g.set(VALUE_HEAD_WEIGHT, vb.gradWeight);
    return new Map(
      names.map((n) => {
        const t = g.get(n);
        if (!t) throw new Error(`ppoMicroBatch: the backward gave no gradient for ${n}`);
        return [n, keep(t)];
      }),
    );
  });
  return { grads, loss: loss as unknown as ReturnType<typeof ppoTokenLoss> };
}

/** The rollout, then the PPO epochs; the last mini-batch's gradients go to the loop's optimizer step. */
export function ppoStepFn(
  models: { trainee: PpoTrainee; reference: LlamaModel; rewardModel: RewardModel; tokenizer: Tokenizer },
  prompts: string[],
  o: PpoOptions,
  optimizer: AdamW,
  events: StageEvents = {},
): StepFn {
  const { trainee, reference, rewardModel, tokenizer } = models;
  const policy = trainee.policy;
  const head = trainee.valueHead;
  const device = policy.device;
  const i32 = (a: Int32Array) => tensor(a, [a.length], { dtype: 'i32', device });
  /** Per-token log-probs [T] of the temperature-scaled distribution (logits / T = (hidden / T) W). */
  const logprobs = (model: LlamaModel, hidden: Tensor, targets: Tensor) => model.headLogprobs(o.temperature === 1 ? hidden : ops.affine(hidden, 1 / o.temperature), targets);
  return async (step, indices, seed) => {
    const batchPrompts = indices.map((i) => prompts[i]);
    const t0 = now();
    const total = batchPrompts.length * o.k * o.maxNewTokens;
    events.onStage?.('generate', { step, done: 0, total });
    const gen = await generate(policy, tokenizer, batchPrompts, {
      maxNewTokens: o.maxNewTokens, temperature: o.temperature, topP: o.topP, seed, numSamples: o.k,
      onStep: (i) => events.onStage?.('generate', { step, done: i.generatedTokens, total }),
    });
    const t1 = now();
    events.onStage?.('train', { step });
    const all = gen.flatMap((g) => g.samples.map((s) => ({ prompt: g.promptTokens, response: s.tokens })));
    const N = all.length;
    all.forEach((it, i) => {
      if (it.response.length === 0) throw new Error(`step ${step}: sample ${i} is empty; expected at least one generated token`);
    });
    const lengths = all.map((it) => it.response.length);

    // ---- rollout scores: old log-probs and values, reference log-probs, rewards (one read)
    const rollout = new DeviceRecord();
    for (let s = 0, m = 0; s < N; s += o.microBatch, m++) {
      const part = all.slice(s, s + o.microBatch);
      const p = packItems(part);
      scope(() => {
        const tg = i32(p.rb.targets);
        const rows = i32(p.rows);
        const pol = policy.forward(p.rb.batch, { inference: true }).hidden;
        rollout.add(`old${m}`, ops.embedding(logprobs(policy, pol, tg).reshape([tg.shape[0], 1]), rows));
        rollout.add(`value${m}`, head.values(pol, rows));
        const ref = reference.forward(p.rb.batch, { inference: true }).hidden;
        rollout.add(`ref${m}`, ops.embedding(logprobs(reference, ref, tg).reshape([tg.shape[0], 1]), rows));
        const seqs = part.map((it) => Int32Array.from([...it.prompt, ...it.response]));
        const rh = rewardModel.backbone.forward(packSequences(seqs), { inference: true }).hidden;
        rollout.add(`score${m}`, rewardModel.rewardsOf(rh, i32(lastRowsOf(seqs))));
      });
    }
    const oldLp: Float64Array[] = [];
    const refLp: Float64Array[] = [];
    const oldV: Float64Array[] = [];
    const scores = new Float64Array(N);
    for (let s = 0, m = 0; s < N; s += o.microBatch, m++) {
      const n = Math.min(o.microBatch, N - s);
      const [a, b, c] = [rollout.get(`old${m}`), rollout.get(`ref${m}`), rollout.get(`value${m}`)];
      let off = 0;
      for (let j = 0; j < n; j++) {
        const L = lengths[s + j];
        oldLp.push(a.slice(off, off + L));
        refLp.push(b.slice(off, off + L));
        oldV.push(c.slice(off, off + L));
        off += L;
      }
      scores.set(rollout.get(`score${m}`), s);
    }

    // ---- rewards, GAE, whitening on the host (f64)
    const klCoef = trainee.state.klCoef;
    const kl = oldLp.map((lp, i) => lp.map((v, t) => v - refLp[i][t]));
    let rewards = kl.map((k, i) => {
      const r = k.map((v) => -klCoef * v);
      r[r.length - 1] += scores[i];
      return r;
    });
    const flat = (a: Float64Array[]) => {
      const out = new Float64Array(a.reduce((n, x) => n + x.length, 0));
      let off = 0;
      for (const x of a) {
        out.set(x, off);
        off += x.length;
      }
      return out;
    };
    const unflat = (f: Float64Array) => {
      let off = 0;
      return lengths.map((L) => f.slice(off, (off += L)));
    };
    if (o.whitenRewards) rewards = unflat(whiten(flat(rewards), false));
    const est = rewards.map((r, i) => gae(r, oldV[i], o.gamma, o.lam));
    const advantages = unflat(whiten(flat(est.map((e) => e.advantages))));
    const returns = est.map((e) => e.returns);
    const seqKl = kl.map((k) => k.reduce((a, b) => a + b, 0));
    const klMean = mean(seqKl) as number;
    if (o.adaptiveKl) trainee.state.klCoef = adaptiveKlCoef(klCoef, klMean, { ...o.adaptiveKl, samples: N });

    // ---- PPO epochs over mini-batches
    const trainWaits = syncStats().hostWaits;
    const t2 = now();
    const mb = Math.min(o.miniBatch ?? N, N);
    const miniBatches = Math.ceil(N / mb);
    const updates = o.ppoEpochs * miniBatches;
    const record = new DeviceRecord();
    const inner: Tensor[] = [];
    const sums = { policy: 0, value: 0, clipped: 0, valueClipped: 0, approxKl: 0, tokens: 0 };
    let lastGrads: Map<string, Tensor> | null = null;
    const rnd = seededUniform((seed ^ 0x3c6ef372) >>> 0);
    try {
      for (let e = 0, u = 0; e < o.ppoEpochs; e++) {
        const order = shuffleInPlace(Array.from({ length: N }, (_, i) => i), rnd);
        for (let s = 0; s < N; s += mb, u++) {
          const mini = order.slice(s, s + mb);
          const tokens = mini.reduce((n, i) => n + lengths[i], 0);
          const acc = new GradientAccumulator();
          try {
            for (let q = 0; q < mini.length; q += o.microBatch) {
              const part = mini.slice(q, q + o.microBatch);
              const pick = (src: Float64Array[]) => flat(part.map((i) => src[i]));
              const { grads, loss: r } = ppoMicroBatch(
                policy, head, part.map((i) => all[i]),
                { oldLogprobs: pick(oldLp), advantages: pick(advantages), oldValues: pick(oldV), returns: pick(returns) },
                { temperature: o.temperature, clipRange: o.clipRange, clipRangeValue: o.clipRangeValue, vfCoef: o.vfCoef, tokens, recompute: o.recompute, dropoutSeed: microSeed(seed, u * 1000 + q) },
                [...trainee.trainableParameters().keys()],
              );
              sums.policy += r.policyLoss * tokens;
              sums.value += r.valueLoss * tokens;
              sums.clipped += r.clipped;
              sums.valueClipped += r.valueClipped;
              sums.approxKl += r.approxKlSum;
              sums.tokens += r.gradLogprobs.length;
              acc.add(grads);
            }
          } catch (e) {
            acc.dispose();
            throw e;
          }
          const g = acc.take();
          if (u === updates - 1) {
            lastGrads = g;
          } else {
            try {
              const res = optimizer.step(g, { lr: o.lrAt(step) });
              inner.push(keep(ops.affine(res.gradSumOfSquares, 1)));
            } finally {
              for (const t of g.values()) t.dispose();
            }
          }
        }
      }
    } catch (e) {
      for (const t of inner) t.dispose();
      record.dispose();
      throw e;
    }
    inner.forEach((t, i) => record.add(`inner${i}`, t));
    const finish = (rec: DeviceRecord, secondsTrain: number) => {
      const innerNorms = inner.map((_, i) => rec.get(`inner${i}`)[0]);
      const bad = innerNorms.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) throw new Error(`step ${step}: the gradient norm of PPO update ${bad + 1} of ${updates} is ${Math.sqrt(innerNorms[bad])}; that update was skipped and the run stopped`);
      let sampleScores: number[][] | null = null;
      if (o.scorer) {
        const sc = o.scorer;
        sampleScores = gen.map((g, i) => g.samples.map((s) => sc(batchPrompts[i], s.text)));
      }
      const allLp = flat(oldLp);
      const allKl = flat(kl);
      const policyLoss = sums.policy / (sums.tokens || 1);
      const valueLoss = sums.value / (sums.tokens || 1);
      const metrics = {
        loss: policyLoss + o.vfCoef * valueLoss,
        policyLoss,
        valueLoss,
        rewardMean: mean(scores),
        klEstimate: klMean,
        klPerTokenMean: mean(allKl),
        klCoef,
        entropyMean: mean(allLp.map((v) => -v)),
        clipFraction: sums.clipped / (sums.tokens || 1),
        valueClipFraction: sums.valueClipped / (sums.tokens || 1),
        approxKl: sums.approxKl / (sums.tokens || 1),
        valueMean: mean(flat(oldV)),
        returnMean: mean(flat(returns)),
        responseLengthMean: mean(lengths),
        sampleScoreMean: sampleScores ? mean(sampleScores.flat()) : null,
        secondsGenerate: t1 - t0,
        secondsTrain,
        tokensPerSecond: lengths.reduce((a, b) => a + b, 0) / Math.max(1e-9, t1 - t0),
        samples: N,
        ppoUpdates: updates,
      };
      const samples = gen.map((g, i) => ({
        prompt: batchPrompts[i],
        responses: g.samples.map((s, k) => ({ text: s.text, tokens: s.tokens.length, finish: s.finishReason, reward: scores[i * o.k + k], score: sampleScores?.[i][k] ?? null })),
      }));
      return { metrics, samples };
    };
    return { grads: lastGrads as unknown as Map<string, Tensor>, record, trainStarted: t2, trainWaits, finish };
  };
}
