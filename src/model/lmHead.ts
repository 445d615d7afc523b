// The chunked LM head, DESIGN.md's "linear log-probs": per-token log-probs of targets through the
// head, log softmax(hidden W^T)[t, target[t]], without ever holding the [T, V] logits. Rows go
// through in chunks (256 by default): matmul -> fused tokenLogprobs, each chunk's [C] result copied
// into its rows of the [T] output on the device. The backward recomputes each chunk's logits and
// turns them in place into d logits = g (onehot - softmax) (tokenLogprobsBackward), then
// d hidden[chunk] = d logits W and d W += d logits^T hidden[chunk] (one GEMM with beta 1).
//
// Memory: one chunk's [C, V] logits at a time (C = 256, V = 32000: 32 MB in f32) instead of [T, V].
// Nothing here reads back to the host: inputs and outputs are device tensors, so a training step's
// objective (src/osp/objective.ts) stays on the device.
import * as ops from '../ops';
import { DEFAULT_IGNORE_INDEX } from '../ops';
import { Tensor, scope, zeros } from '../tensor';

export interface LmHeadOptions {
  /** Rows of logits computed at a time. Default 256. */
  chunkSize?: number;
  /** Targets equal to this count nowhere (log-prob 0, no gradient). Default -100. */
  ignoreIndex?: number;
  /** Backward only: form d W (default true). False for a frozen head (LoRA): gradWeight is null. */
  weightGrad?: boolean;
}

function chunkOf(op: string, opts: LmHeadOptions): number {
  const chunk = opts.chunkSize ?? 256;
  if (!(Number.isInteger(chunk) && chunk > 0)) throw new RangeError(`${op}: chunkSize is ${String(chunk)}; expected a positive integer`);
  return chunk;
}

function checkRows(op: string, hidden: Tensor, targets: Tensor, grad?: Tensor): number {
  const T = hidden.shape[0];
  if (hidden.shape.length !== 2) throw new TypeError(`${op}: hidden has shape [${hidden.shape.join(', ')}]; expected [T, D]`);
  if (targets.shape.length !== 1 || targets.shape[0] !== T) throw new RangeError(`${op}: targets has shape [${targets.shape.join(', ')}]; expected [${T}] (one per row of hidden)`);
  if (grad && (grad.shape.length !== 1 || grad.shape[0] !== T)) throw new RangeError(`${op}: gradLogprobs has shape [${grad.shape.join(', ')}]; expected [${T}]`);
  return T;
}

/** log softmax(hidden W^T)[t, targets[t]] for every row t, [T] (f64 for f64 hidden, else f32), on hidden's device. */
export function linearLogprobs(hidden: Tensor, weight: Tensor, targets: Tensor, opts: LmHeadOptions = {}): Tensor {
  const op = 'linearLogprobs';
  const T = checkRows(op, hidden, targets);
  const chunk = chunkOf(op, opts);
  const out = zeros([T], { dtype: hidden.dtype === 'f64' ? 'f64' : 'f32', device: hidden.device });
  try {
    for (let s = 0; s < T; s += chunk) {
      const n = Math.min(chunk, T - s);
      scope(() => {
        const logits = ops.matmul(hidden.narrow(0, s, n), weight, { transB: true });
        ops.copyInto(out.narrow(0, s, n), ops.tokenLogprobs(logits, targets.narrow(0, s, n), { ignoreIndex: opts.ignoreIndex ?? DEFAULT_IGNORE_INDEX }));
      });
    }
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

/**
 * Backward of linearLogprobs for L = sum_t gradLogprobs[t] logprob[t]: d hidden [T, D] (hidden's
 * dtype) and d W [V, D] (W's dtype; null with weightGrad false), recomputing each chunk's logits. gradLogprobs is [T] on the
 * device (f64 for f64 hidden, else f32).
 */
export function linearLogprobsBackward(hidden: Tensor, weight: Tensor, targets: Tensor, gradLogprobs: Tensor, opts: LmHeadOptions = {}): { gradHidden: Tensor; gradWeight: Tensor | null } {
  const op = 'linearLogprobsBackward';
  const T = checkRows(op, hidden, targets, gradLogprobs);
  const chunk = chunkOf(op, opts);
  const gradHidden = zeros(hidden.shape, { dtype: hidden.dtype, device: hidden.device });
  const gradWeight: Tensor | null = opts.weightGrad === false ? null : zeros(weight.shape, { dtype: weight.dtype, device: weight.device });
  try {
    for (let s = 0; s < T; s += chunk) {
      const n = Math.min(chunk, T - s);
      scope(() => {
        const hc = hidden.narrow(0, s, n);
        const logits = ops.matmul(hc, weight, { transB: true });
        ops.tokenLogprobsBackward(logits, targets.narrow(0, s, n), gradLogprobs.narrow(0, s, n), { inPlace: true, ignoreIndex: opts.ignoreIndex ?? DEFAULT_IGNORE_INDEX });
        ops.copyInto(gradHidden.narrow(0, s, n), ops.matmul(logits, weight));
        // d W += d logits^T hidden[chunk] inside the GEMM (beta 1): no [V, D] pass per chunk.
        if (gradWeight !== null) ops.matmul(logits, hc, { transA: true, accumulate: gradWeight });
      });
    }
  } catch (e) {
    gradHidden.dispose();
    gradWeight?.dispose();
    throw e;
  }
  return { gradHidden, gradWeight };
}
