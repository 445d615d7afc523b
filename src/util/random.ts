// The one seeded random source on the host (the kernels have their own, native/kernels/random):
// mulberry32 (32-bit state, period 2^32) and the FNV-1a hash that derives streams. Everything that
// must be reproducible from an integer seed draws from here, never from Math.random:
//   Rng            the demo task's prompts, demonstrations, pairs and tokenizer (a murmur3-style mix
//                  of the seed's two 32-bit halves and a stream label picks the state, so the
//                  streams of one seed, 'prompts', 'sft', 'pairs' ..., are unrelated);
//   seededUniform  random pairing and the trainer's data order and per-step seeds (raw state);
//   fnv1a32        the sampling stream of a generated sample (src/generate).
// A maintained package would add a dependency for these fifteen lines; the demo's bit-for-bit
// rebuild (demo/README.md checksums) depends on this exact generator.

/** One mulberry32 step: advances the state and returns 32 random bits. */
function mulberry32(state: { s: number }): number {
  state.s = (state.s + 0x6d2b79f5) >>> 0;
  let t = state.s;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return (t ^ (t >>> 14)) >>> 0;
}

/** Uniforms in [0, 1) from mulberry32 seeded with the raw 32-bit state `seed`. */
export function seededUniform(seed: number): () => number {
  const state = { s: seed >>> 0 };
  return () => mulberry32(state) / 4294967296;
}

/**
 * Fisher-Yates in place, from the last element down (j = floor(u (i + 1)) swapped with i): the one
 * shuffle of the data order, PPO's mini-batches, random pairing, RSO and the held-out splits.
 */
export function shuffleInPlace<T extends unknown[] | Int32Array>(a: T, next: () => number): T {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}

/** 32-bit FNV-1a over the bytes of 32-bit words (little-endian), continuing from `h`. */
export function fnv1a32(words: Iterable<number>, h = 0x811c9dc5): number {
  for (const v of words) {
    for (let b = 0; b < 4; b++) {
      h ^= (v >>> (8 * b)) & 0xff;
      h = Math.imul(h, 0x01000193);
    }
  }
  return h >>> 0;
}

/** murmur3's 32-bit finaliser: a bijective avalanche mix. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** 32-bit FNV-1a hash of a string's UTF-16 code units. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Checks that a seed is a safe integer (negative seeds are allowed). */
export function checkSeed(seed: number, where: string): void {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`${where}: seed is ${seed}; expected a safe integer`);
}

/** Seeded generator: mulberry32 over a state derived from (seed, stream). */
export class Rng {
  private readonly state: { s: number };

  constructor(seed: number, stream = '') {
    checkSeed(seed, 'Rng');
    const lo = seed >>> 0; // low 32 bits (two's complement for negative seeds)
    const hi = Math.floor(seed / 2 ** 32) >>> 0;
    this.state = { s: fmix32(fmix32(lo ^ 0x9e3779b9) ^ fmix32(hi + 0x7f4a7c15) ^ hashString(stream)) };
  }

  /** The next 32-bit unsigned integer. */
  nextUint32(): number {
    return mulberry32(this.state);
  }

  /** A double in [0, 1) (32 random bits). */
  next(): number {
    return this.nextUint32() / 2 ** 32;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`Rng.int: n is ${n}; expected a positive integer`);
    return Math.floor(this.next() * n);
  }

  /** An integer in [lo, hi], both included. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** true with probability p. */
  bernoulli(p: number): boolean {
    return this.next() < p;
  }

  /** A uniformly chosen element. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** An index drawn with probability proportional to its (non-negative) weight. */
  weighted(weights: readonly number[]): number {
    const total = weights.reduce((a, b) => a + b, 0);
    let u = this.next() * total;
    for (let i = 0; i < weights.length; i++) {
      u -= weights[i];
      if (u < 0) return i;
    }
    return weights.length - 1;
  }

  /** A new array: the items in a uniformly random order (Fisher-Yates). */
  shuffled<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }
}

/** The logistic function, without overflow. */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}
