// The judge's instructions share long prefixes (the template's opening, then the prompt: every
// instruction of a prompt, in both orders, starts alike), and only the last position's answer logits
// are read. This runs each shared prefix once through the kv-cache forward and every instruction's
// own tail over it: the last-position logits of many token sequences at the cost of the distinct
// prefixes ("the trie of the sequences") instead of all their tokens.
//
// The sharing is planned on the token ids that the unshared path feeds, never on text: sequences are
// sorted lexicographically, and each one reuses the longest run of leading tokens it has in common
// with the one before it (after sorting, that is the longest it shares with any earlier one), at
// most all but its last token (the last must be computed: its hidden state is the output). A
// sequence therefore sees exactly its own tokens at its own positions, whatever the tokenizer merges
// across the template's seams; the results equal LlamaModel.lastLogits's within rounding (the
// cached attention sums in the same order, the matmuls see other row counts).
//
// One forwardCached call per chunk does it all: each sequence has its own cache slot; its tail's
// rows are computed there, and its shared positions are written as copies of the rows that computed
// them (forwardCached's `copies`, as generate shares a prompt across K samples); every layer writes
// all keys and values, copies included, before its attention reads them. Chunks are consecutive
// sorted sequences with at most maxRows computed rows and a cache (slots x longest x bytes per
// position) within maxCacheBytes. A chunk that shares nothing, and a sequence whose cache alone
// exceeds the bound, go through the unshared packed forward (lastLogits) instead.
import { LlamaModel } from '../model/llama';
import * as ops from '../ops';
import { scope, tensor } from '../tensor';
import { allocateKvCache, disposeKvCache, kvCacheBytesPerPosition } from '../generate/kvCache';

/** One forwardCached call: the rows it computes, the copies of shared rows, and each member's last row. */
export interface SharedChunk {
  /** Indices of the input sequences, in slot order (member i uses cache slot i). */
  members: number[];
  /** The computed rows: token, slot and position of each. */
  tokens: Int32Array;
  slots: Int32Array;
  positions: Int32Array;
  /** Row copies.rows[j]'s keys and values also go to (copies.slots[j], copies.positions[j]). */
  copies: { rows: Int32Array; slots: Int32Array; positions: Int32Array };
  /** Per member, the computed row of its last token. */
  lastRows: Int32Array;
  /** Cache positions per slot: the longest member. */
  length: number;
}

export interface SharingPlan {
  chunks: SharedChunk[];
  /** Sequences for the unshared path: chunks that share nothing and sequences too long for the cache bound. */
  unshared: number[];
  /** Tokens of all sequences, and tokens the chunks compute (the unshared ones count in both). */
  totalTokens: number;
  computedTokens: number;
}

export interface SharingLimits {
  /** Computed rows per forward at most (a chunk always takes its first sequence). */
  maxRows: number;
  /** Bytes one cached position takes (kvCacheBytesPerPosition). */
  bytesPerPosition: number;
  /** Bound on a chunk's cache: slots x longest member x bytesPerPosition. */
  maxCacheBytes: number;
}

function compareTokens(x: Int32Array, y: Int32Array): number {
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

function commonPrefix(x: Int32Array, y: Int32Array): number {
  const n = Math.min(x.length, y.length);
  let i = 0;
  while (i < n && x[i] === y[i]) i++;
  return i;
}

/**
 * The chunks that compute the last positions of non-empty `sequences` with shared prefixes (see the
 * file comment). A pure function of the token ids and the limits.
 */
export function planSharedPrefixes(sequences: Int32Array[], limits: SharingLimits): SharingPlan {
  const { maxRows, bytesPerPosition, maxCacheBytes } = limits;
  if (!(Number.isInteger(maxRows) && maxRows >= 1)) throw new RangeError(`planSharedPrefixes: maxRows is ${maxRows}; expected an integer >= 1`);
  if (!(bytesPerPosition > 0 && maxCacheBytes > 0)) throw new RangeError(`planSharedPrefixes: bytesPerPosition ${bytesPerPosition} and maxCacheBytes ${maxCacheBytes} must be > 0`);
  sequences.forEach((s, i) => {
    if (s.length === 0) throw new RangeError(`planSharedPrefixes: sequences[${i}] is empty; expected at least one token`);
  });
  const unshared: number[] = [];
  const order: number[] = [];
  sequences.forEach((s, i) => (s.length * bytesPerPosition > maxCacheBytes ? unshared : order).push(i));
  order.sort((i, j) => compareTokens(sequences[i], sequences[j]) || i - j);

  const chunks: SharedChunk[] = [];
  let computedTokens = 0;
  let at = 0;
  while (at < order.length) {
    // Grow the chunk while its computed rows and its cache fit; the first member always fits.
    const members: number[] = [];
    const shared: number[] = []; // leading tokens each member takes from the member before it
    let rows = 0;
    let longest = 0;
    for (; at < order.length; at++) {
      const s = sequences[order[at]];
      const k = members.length === 0 ? 0 : Math.min(commonPrefix(sequences[members[members.length - 1]], s), s.length - 1);
      const newLongest = Math.max(longest, s.length);
      const fits = rows + (s.length - k) <= maxRows && (members.length + 1) * newLongest * bytesPerPosition <= maxCacheBytes;
      if (members.length > 0 && !fits) break;
      members.push(order[at]);
      shared.push(k);
      rows += s.length - k;
      longest = newLongest;
    }
    if (shared.every((k) => k === 0)) {
      unshared.push(...members);
      continue;
    }
    const tokens = new Int32Array(rows);
    const slots = new Int32Array(rows);
    const positions = new Int32Array(rows);
    const lastRows = new Int32Array(members.length);
    const copyRows: number[] = [];
    const copySlots: number[] = [];
    const copyPositions: number[] = [];
    let row = 0;
    let previous: Int32Array = new Int32Array(0); // the computed row of each position of the member before
    members.forEach((m, slot) => {
      const s = sequences[m];
      const k = shared[slot];
      const rowOf = new Int32Array(s.length);
      for (let p = 0; p < k; p++) {
        rowOf[p] = previous[p];
        copyRows.push(previous[p]);
        copySlots.push(slot);
        copyPositions.push(p);
      }
      for (let p = k; p < s.length; p++, row++) {
        tokens[row] = s[p];
        slots[row] = slot;
        positions[row] = p;
        rowOf[p] = row;
      }
      lastRows[slot] = row - 1;
      previous = rowOf;
    });
    computedTokens += rows;
    chunks.push({
      members,
      tokens,
      slots,
      positions,
      copies: { rows: Int32Array.from(copyRows), slots: Int32Array.from(copySlots), positions: Int32Array.from(copyPositions) },
      lastRows,
      length: longest,
    });
  }
  unshared.sort((i, j) => i - j);
  for (const i of unshared) computedTokens += sequences[i].length;
  return { chunks, unshared, totalTokens: sequences.reduce((n, s) => n + s.length, 0), computedTokens };
}

export interface SharedLastLogitsOptions {
  /** Computed rows per forward at most. */
  maxRows: number;
  /** Bound on one chunk's kv cache in bytes. */
  maxCacheBytes: number;
  /** Sequences per packed forward of the unshared remainder (lastLogits). */
  batchSize: number;
}

/**
 * LlamaModel.lastLogits(sequences, columns) computed over shared prefixes: the last position's logits
 * of the given vocabulary columns for each non-empty sequence (Float64Array for an f64 model, else
 * Float32Array), one host read per chunk.
 */
export function sharedLastLogits(model: LlamaModel, sequences: Int32Array[], columns: Int32Array, opts: SharedLastLogitsOptions): (Float32Array | Float64Array)[] {
  const V = model.config.vocabSize;
  sequences.forEach((s, i) => {
    for (let j = 0; j < s.length; j++) {
      if (!(s[j] >= 0 && s[j] < V)) throw new RangeError(`sharedLastLogits: sequences[${i}][${j}] is ${s[j]}; expected a token id in [0, ${V})`);
    }
  });
  const plan = planSharedPrefixes(sequences, { maxRows: opts.maxRows, bytesPerPosition: kvCacheBytesPerPosition(model), maxCacheBytes: opts.maxCacheBytes });
  const out: (Float32Array | Float64Array)[] = new Array(sequences.length);
  const C = columns.length;
  for (const chunk of plan.chunks) {
    const cache = allocateKvCache(model, chunk.members.length, chunk.length);
    try {
      const logits = scope(() => {
        const hidden = model.forwardCached(cache, chunk.tokens, chunk.slots, chunk.positions, { copies: chunk.copies, outputRows: chunk.lastRows });
        const W = ops.embedding(model.lmHead, tensor(columns, [C], { dtype: 'i32', device: model.device }));
        const a = ops.matmul(hidden, W, { transB: true }).toArray();
        return a instanceof Float64Array ? a : Float32Array.from(a);
      });
      chunk.members.forEach((m, i) => {
        out[m] = logits.slice(i * C, (i + 1) * C);
      });
    } finally {
      disposeKvCache(cache);
    }
  }
  for (let start = 0; start < plan.unshared.length; start += opts.batchSize) {
    const members = plan.unshared.slice(start, start + opts.batchSize);
    const rest = model.lastLogits(members.map((i) => sequences[i]), columns);
    members.forEach((m, i) => {
      out[m] = rest[i];
    });
  }
  return out;
}
