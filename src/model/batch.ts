// Batch packing, in one place: sequences laid one after another with no padding (PackedBatch), the
// spans every attention layer reads (sequenceSpans), and response batches for training objectives
// (packResponses): targets that score only response tokens, and per-token "score ids" that say
// which output slot a token's log-prob is summed into (sequenceLogprobs), prompt tokens excluded.
import { Device, Tensor, tensor } from '../tensor';

/** Targets equal to this count nowhere (the kernels' default ignoreIndex, as in PyTorch). */
export const DEFAULT_IGNORE_INDEX = -100;

/** A packed batch: the tokens of several sequences one after another, no padding. */
export interface PackedBatch {
  /** Token ids [T]. */
  tokens: Int32Array;
  /** The sequence each token belongs to [T]; each sequence's tokens are contiguous. */
  sequenceIds: Int32Array;
  /** Position of each token within its sequence [T] (0 at each sequence's first token). */
  positions: Int32Array;
}

/** Packs sequences one after another: sequence s gets id s, positions restart at 0 per sequence. */
export function packSequences(seqs: Int32Array[]): PackedBatch {
  const T = seqs.reduce((n, s) => n + s.length, 0);
  const tokens = new Int32Array(T);
  const sequenceIds = new Int32Array(T);
  const positions = new Int32Array(T);
  let t = 0;
  seqs.forEach((s, id) => {
    tokens.set(s, t);
    for (let i = 0; i < s.length; i++) {
      sequenceIds[t + i] = id;
      positions[t + i] = i;
    }
    t += s.length;
  });
  return { tokens, sequenceIds, positions };
}

/**
 * The per-token sequence spans of a packed batch, for causalAttention's `spans` option: i32 [2, T]
 * on `device` (default: the default device), row 0 the first token of each token's sequence, row 1
 * one past its last. Validated on the host like the op validates sequenceIds: each sequence's tokens
 * are contiguous and in order (ids need not be sorted), and an id that reappears after another
 * sequence started is a RangeError naming it. Compute it once per batch and pass it to every layer.
 */
export function sequenceSpans(sequenceIds: Int32Array, device?: Device): Tensor {
  const op = 'sequenceSpans';
  if (!(sequenceIds instanceof Int32Array)) throw new TypeError(`${op}: sequenceIds is not an Int32Array; expected the batch's host sequence ids`);
  if (device !== undefined && device !== 'cpu' && device !== 'cuda') {
    throw new TypeError(`${op}: device is ${typeof device === 'string' ? `'${device}'` : String(device)}; expected 'cpu', 'cuda' or undefined`);
  }
  const T = sequenceIds.length;
  const spans = new Int32Array(2 * T);
  const done = new Set<number>();
  let start = 0;
  for (let i = 0; i <= T; i++) {
    if (i < T && i > 0 && sequenceIds[i] === sequenceIds[i - 1]) continue;
    spans.fill(start, start, i);
    spans.fill(i, T + start, T + i);
    if (i === T) break;
    if (i > 0) done.add(sequenceIds[i - 1]);
    if (done.has(sequenceIds[i])) {
      throw new RangeError(
        `${op}: sequenceIds[${i}] = ${sequenceIds[i]} reappears after sequence ${sequenceIds[i - 1]} started; expected the tokens of each sequence to be contiguous`,
      );
    }
    start = i;
  }
  return tensor(spans, [2, T], { dtype: 'i32', device });
}

/** A prompt and its response, as token ids. */
export interface PromptResponse {
  prompt: Int32Array;
  response: Int32Array;
}

export interface ResponseBatch {
  batch: PackedBatch;
  /** Next-token targets [T]: the response tokens (position j predicts token j + 1); DEFAULT_IGNORE_INDEX elsewhere. */
  targets: Int32Array;
  /** Per token, the slot its target's log-prob is summed into (slots[i] of item i), DEFAULT_IGNORE_INDEX where it is not scored. */
  scoreIds: Int32Array;
}

/**
 * Packs (prompt, response) items; the response tokens are scored, each from the position before
 * it, so a prompt needs at least one token. `slots[i]` (default i) names item i's output slot.
 */
export function packResponses(items: PromptResponse[], slots?: ArrayLike<number>): ResponseBatch {
  const seqs = items.map((it, i) => {
    if (it.prompt.length === 0) throw new RangeError(`packResponses: item ${i} has an empty prompt; expected at least one token (BOS)`);
    const s = new Int32Array(it.prompt.length + it.response.length);
    s.set(it.prompt, 0);
    s.set(it.response, it.prompt.length);
    return s;
  });
  const batch = packSequences(seqs);
  const targets = new Int32Array(batch.tokens.length).fill(DEFAULT_IGNORE_INDEX);
  const scoreIds = new Int32Array(batch.tokens.length).fill(DEFAULT_IGNORE_INDEX);
  let t0 = 0;
  items.forEach((it, i) => {
    const len = seqs[i].length;
    const slot = slots ? slots[i] : i;
    for (let j = it.prompt.length - 1; j + 1 < len; j++) {
      targets[t0 + j] = seqs[i][j + 1];
      scoreIds[t0 + j] = slot;
    }
    t0 += len;
  });
  return { batch, targets, scoreIds };
}
