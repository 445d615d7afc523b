// The unfused reference compositions of the fused kernels: token log-probs as gather(logSoftmax)
// with the [N, V] intermediate, and the preference losses as separate elementwise kernels. They are
// the baselines `npm run bench` measures the fused kernels against and a cross-check of their maths
// in the tests (test/unfused.test.ts); the trainer never uses them. Exported as osp.reference.
import {
  IgnoreOptions, KINDS, PreferenceInputs, PreferenceKind, PreferenceLossResult, PreferenceOptions, PreferenceResult,
  affine, composed, gather, gatherBackward, live, logSoftmax, logSoftmaxBackward, mul, preferenceArgs, sub, sum, unary,
} from '../ops';
import { Tensor, optionsArg } from '../tensor';

/** The unfused composition gather(logSoftmax(logits)), freeing the [N, V] intermediate. */
export function tokenLogprobsUnfused(logits: Tensor, targets: Tensor, opts: IgnoreOptions = {}): Tensor {
  return composed('tokenLogprobsUnfused', { values: 'logits' }, () => {
    const o = optionsArg('gather', opts);
    const y = logSoftmax(logits);
    try {
      return gather(y, targets, o);
    } finally {
      y.dispose();
    }
  });
}

/** The unfused backward: gatherBackward then logSoftmaxBackward (recomputes log_softmax). */
export function tokenLogprobsBackwardUnfused(logits: Tensor, targets: Tensor, gradLogprobs: Tensor, opts: IgnoreOptions = {}): Tensor {
  const op = 'tokenLogprobsBackwardUnfused';
  const o = optionsArg(op, opts);
  const l = live(logits, `${op}: logits`);
  live(targets, `${op}: targets`);
  const g = live(gradLogprobs, `${op}: gradLogprobs`);
  if (l.shape.length !== 2 || l.shape[1] < 1) {
    throw new TypeError(`${op}: logits has shape [${l.shape.join(', ')}]; expected [N, V] with V >= 1`);
  }
  if (g.shape.length !== 1 || g.shape[0] !== l.shape[0]) {
    throw new TypeError(`${op}: gradLogprobs has shape [${g.shape.join(', ')}]; expected [${l.shape[0]}] (one gradient per row of logits)`);
  }
  return composed(op, { grad: 'gradLogprobs', dtype: 'logits dtype' }, () => {
    const temps: Tensor[] = [];
    try {
      const y = logSoftmax(logits);
      temps.push(y);
      const dy = gatherBackward(gradLogprobs, targets, l.shape[1], { ...o, dtype: l.dtype });
      temps.push(dy);
      return logSoftmaxBackward(dy, y);
    } finally {
      for (const t of temps) t.dispose();
    }
  });
}

/**
 * The same losses as preferenceLoss, composed of separate elementwise ops (one kernel each):
 * the baseline the fused kernel is measured against, and a cross-check of its maths. It checks
 * its arguments like the fused op; values (NaN, targets outside [0, 1]) are checked on the host
 * after the fact, which costs the unfused path one extra read-back of the B targets.
 */
export function preferenceLossUnfused(kind: PreferenceKind, inputs: PreferenceInputs, opts: PreferenceOptions): PreferenceLossResult {
  const op = 'preferenceLossUnfused';
  if (!KINDS.includes(kind)) throw new TypeError(`${op}: kind '${String(kind)}' is unknown; expected spce, dpo or ipo`);
  preferenceArgs(op, inputs, opts);
  const { beta } = opts;
  if (!(beta > 0) || !Number.isFinite(beta)) throw new RangeError(`${op}: beta is ${beta}; expected a finite number > 0`);
  if ((kind === 'spce') !== (inputs.target !== undefined)) {
    throw new TypeError(kind === 'spce' ? `${op}: kind spce needs inputs.target` : `${op}: inputs.target is only used by spce; kind ${kind} takes no target`);
  }
  const named = (['policyChosen', 'policyRejected', 'refChosen', 'refRejected', 'target'] as const)
    .filter((k) => inputs[k] !== undefined)
    .map((k) => [k, live(inputs[k] as Tensor, `${op}: inputs.${k}`)] as const);
  const first = inputs.policyChosen;
  for (const [k, t] of named) {
    if (t.shape.length !== 1 || t.shape[0] !== first.shape[0]) {
      throw new TypeError(`${op}: inputs.${k} has shape [${t.shape.join(', ')}]; expected [${first.shape[0]}] like inputs.policyChosen`);
    }
    if (t.dtype !== first.dtype || t.device !== first.device) {
      throw new TypeError(`${op}: inputs.${k} is ${t.dtype} on ${t.device}; expected ${first.dtype} on ${first.device} like inputs.policyChosen`);
    }
  }
  const B = first.shape[0] ?? 0;
  if (B === 0) throw new RangeError(`${op}: no pairs (B = 0); expected at least one`);
  const temps: Tensor[] = [];
  const t = (x: Tensor): Tensor => (temps.push(x), x);
  try {
    const hd = t(sub(t(sub(inputs.policyChosen, inputs.refChosen)), t(sub(inputs.policyRejected, inputs.refRejected))));
    const margins = t(affine(hd, beta));
    const pHat = t(unary('sigmoid', margins));
    let losses: Tensor;
    let gradPolicyChosen: Tensor;
    if (kind === 'ipo') {
      const d = t(affine(hd, 1, -1 / (2 * beta)));
      losses = t(unary('square', d));
      gradPolicyChosen = t(affine(d, 2 / B));
    } else {
      // softplus(z) - p z (DPO: p = 1), then d/dz = sigmoid(z) - p.
      const p = inputs.target;
      const sp = t(unary('softplus', margins));
      losses = t(p ? sub(sp, t(mul(p, margins))) : sub(sp, margins));
      const gz = t(p ? sub(pHat, p) : affine(pHat, 1, -1));
      gradPolicyChosen = t(affine(gz, beta / B));
    }
    const gradPolicyRejected = t(affine(gradPolicyChosen, -1));
    const meanLoss = t(affine(t(sum(losses)), 1 / B));
    const loss = meanLoss.toArray()[0] ?? NaN;
    if (inputs.target) {
      const p = inputs.target.toArray();
      const bad = p.findIndex((v) => !(v >= 0 && v <= 1));
      if (bad >= 0) throw new RangeError(`${op}: target[${bad}] is ${p[bad]}; expected a preference strength in [0, 1]`);
    }
    if (!Number.isFinite(loss)) {
      // Only on this error path: find the offending input on the host to name it.
      for (const [k, x] of named) {
        const v = x.toArray();
        const bad = v.findIndex((e) => !Number.isFinite(e));
        if (bad >= 0) throw new RangeError(`${op}: ${k}[${bad}] is ${v[bad]}; expected finite log-probabilities`);
      }
      throw new RangeError(`${op}: the loss is ${loss} with beta ${beta}; expected finite inputs and a beta that keeps the margins finite`);
    }
    const result = new PreferenceResult(meanLoss, losses, pHat, margins, gradPolicyChosen, gradPolicyRejected);
    const outputs = new Set<Tensor>([meanLoss, losses, pHat, margins, gradPolicyChosen, gradPolicyRejected]);
    for (const x of temps) if (!outputs.has(x)) x.dispose();
    temps.length = 0;
    return result;
  } finally {
    for (const x of temps) x.dispose(); // only reached with tensors left on a throw
  }
}
