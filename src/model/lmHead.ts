// The chunked LM head, DESIGN.md's "linear log-probs": per-token log-probs of targets through the
// head, log softmax(hidden W^T)[t, target[t]], without ever holding the [T, V] logits. Rows go
// through in chunks (256 by default): matmul -> fused tokenLogprobs, each chunk's [C] result copied
// into its rows of the [T] output on the device. The backward recomputes each chunk's logits and
// turns them in place into d logits = g (onehot - softmax) (tokenLogprobsBackward), then
// d hidden[chunk] = d logits W and d W += d logits^T hidden[chunk] (one GEMM with beta 1).
//
// The forward can also keep each row's logsumexp ([T], linearLogprobsWithLogsumexp); given it, the
// backward turns each chunk's logits into d logits in one read and one write instead of two reads
// and a write. The recomputed logits are the same GEMM on the same inputs (the same hidden rows,
// weight and chunk size), so they are the forward's bit for bit and its logsumexp is exact for them,
// not an approximation (tests: test/lmHead.test.ts).
//
// Memory: one chunk's [C, V] logits at a time (C = 256, V = 32000: 32 MB in f32) instead of [T, V];
// the logsumexp kept between forward and backward is T floats.
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

export interface LinearLogprobsBackwardOptions extends LmHeadOptions {
  /**
   * The forward's row logsumexp ([T], f64 for f64 hidden, else f32; linearLogprobsWithLogsumexp)
   * for these hidden, weight, targets and chunk size: each chunk's logits are then read once, not twice.
   */
  logsumexp?: Tensor;
}

export interface LinearLogprobsResult {
  /** log softmax(hidden W^T)[t, targets[t]], [T] (f64 for f64 hidden, else f32); 0 on ignored rows. */
  logprobs: Tensor;
  /** logsumexp(hidden W^T [t, :]), [T], same dtype; 0 on ignored rows. For linearLogprobsBackward. */
  logsumexp: Tensor;
}

/** LmHeadOptions.chunkSize when not given. */
export const DEFAULT_HEAD_CHUNK = 256;

function chunkOf(op: string, opts: LmHeadOptions): number {
  const chunk = opts.chunkSize ?? DEFAULT_HEAD_CHUNK;
  if (!(Number.isInteger(chunk) && chunk > 0)) throw new RangeError(`${op}: chunkSize is ${String(chunk)}; expected a positive integer`);
  return chunk;
}

function checkRows(op: string, hidden: Tensor, targets: Tensor, grad?: Tensor, logsumexp?: Tensor): number {
  const T = hidden.shape[0];
  if (hidden.shape.length !== 2) throw new TypeError(`${op}: hidden has shape [${hidden.shape.join(', ')}]; expected [T, D]`);
  if (targets.shape.length !== 1 || targets.shape[0] !== T) throw new RangeError(`${op}: targets has shape [${targets.shape.join(', ')}]; expected [${T}] (one per row of hidden)`);
  if (grad && (grad.shape.length !== 1 || grad.shape[0] !== T)) throw new RangeError(`${op}: gradLogprobs has shape [${grad.shape.join(', ')}]; expected [${T}]`);
  if (logsumexp && (logsumexp.shape.length !== 1 || logsumexp.shape[0] !== T))
    throw new RangeError(`${op}: logsumexp has shape [${logsumexp.shape.join(', ')}]; expected [${T}] (the forward's, one per row of hidden)`);
  return T;
}

/** log softmax(hidden W^T)[t, targets[t]] for every row t, [T] (f64 for f64 hidden, else f32), on hidden's device. */
export function linearLogprobs(hidden: Tensor, weight: Tensor, targets: Tensor, opts: LmHeadOptions = {}): Tensor {
  return chunkedForward('linearLogprobs', hidden, weight, targets, opts, false).logprobs;
}

/** linearLogprobs that also keeps each row's logsumexp ([T], same dtype), for linearLogprobsBackward. */
export function linearLogprobsWithLogsumexp(hidden: Tensor, weight: Tensor, targets: Tensor, opts: LmHeadOptions = {}): LinearLogprobsResult {
  const r = chunkedForward('linearLogprobs', hidden, weight, targets, opts, true);
  return { logprobs: r.logprobs, logsumexp: r.logsumexp as Tensor };
}

function chunkedForward(op: string, hidden: Tensor, weight: Tensor, targets: Tensor, opts: LmHeadOptions, keepLse: boolean): { logprobs: Tensor; logsumexp: Tensor | null } {
  const T = checkRows(op, hidden, targets);
  const chunk = chunkOf(op, opts);
  const dtype = hidden.dtype === 'f64' ? 'f64' : 'f32';
  const out = zeros([T], { dtype, device: hidden.device });
  const lse = keepLse ? zeros([T], { dtype, device: hidden.device }) : null;
  const ignoreIndex = opts.ignoreIndex ?? DEFAULT_IGNORE_INDEX;
  try {
    for (let s = 0; s < T; s += chunk) {
      const n = Math.min(chunk, T - s);
      scope(() => {
        const logits = ops.matmul(hidden.narrow(0, s, n), weight, { transB: true });
        const rows = targets.narrow(0, s, n);
        if (lse === null) {
          ops.copyInto(out.narrow(0, s, n), ops.tokenLogprobs(logits, rows, { ignoreIndex }));
        } else {
          const r = ops.tokenLogprobsWithLogsumexp(logits, rows, { ignoreIndex });
          ops.copyInto(out.narrow(0, s, n), r.logprobs);
          ops.copyInto(lse.narrow(0, s, n), r.logsumexp);
        }
      });
    }
  } catch (e) {
    out.dispose();
    lse?.dispose();
    throw e;
  }
  return { logprobs: out, logsumexp: lse };
}

/**
 * Backward of linearLogprobs for L = sum_t gradLogprobs[t] logprob[t]: d hidden [T, D] (hidden's
 * dtype) and d W [V, D] (W's dtype; null with weightGrad false), recomputing each chunk's logits. gradLogprobs is [T] on the
 * device (f64 for f64 hidden, else f32). With opts.logsumexp (the forward's) each chunk's logits are read once.
 */
export function linearLogprobsBackward(
  hidden: Tensor,
  weight: Tensor,
  targets: Tensor,
  gradLogprobs: Tensor,
  opts: LinearLogprobsBackwardOptions = {},
): { gradHidden: Tensor; gradWeight: Tensor | null } {
  const op = 'linearLogprobsBackward';
  const T = checkRows(op, hidden, targets, gradLogprobs, opts.logsumexp);
  const chunk = chunkOf(op, opts);
  const gradHidden = zeros(hidden.shape, { dtype: hidden.dtype, device: hidden.device });
  const gradWeight: Tensor | null = opts.weightGrad === false ? null : zeros(weight.shape, { dtype: weight.dtype, device: weight.device });
  try {
    for (let s = 0; s < T; s += chunk) {
      const n = Math.min(chunk, T - s);
      scope(() => {
        const hc = hidden.narrow(0, s, n);
        const logits = ops.matmul(hc, weight, { transB: true });
        ops.tokenLogprobsBackward(logits, targets.narrow(0, s, n), gradLogprobs.narrow(0, s, n), {
          inPlace: true,
          ignoreIndex: opts.ignoreIndex ?? DEFAULT_IGNORE_INDEX,
          logsumexp: opts.logsumexp?.narrow(0, s, n),
        });
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
