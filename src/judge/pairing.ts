// Ranked pairing (METHOD.md section 5) and the paper's random-pairing ablation. For one prompt and K
// sampled responses: score each response against the blank response "" (s_k = p(y_k > "")), sort by
// score, pair the highest with the lowest, the second highest with the second lowest, ... (K//2 pairs;
// with odd K the median is unused), and judge each pair on the pair itself, in both orders, for the
// target p(y_high > y_low). Every judge call is batched: one Judge.preferences call for all blank
// comparisons (of all prompts, in judgePairsBatch), then one for all pairs.
import { seededUniform, shuffleInPlace } from '../util/random';
import { Judge, JudgeItem } from './judge';

export interface RankedPair {
  /** Index of the response with the higher blank score. */
  high: number;
  /** Index of the response with the lower blank score. */
  low: number;
}

export interface RandomPair {
  first: number;
  second: number;
}

export interface JudgedPair {
  /** Index of the response in the chosen position: the higher-ranked one (ranked) or the pair's first (random). */
  chosen: number;
  rejected: number;
  /** p(chosen > rejected | prompt) = (pAB + (1 - pBA)) / 2, judged on the pair itself. */
  target: number;
  /** softmax([l_A, l_B])[0] with chosen shown as A. */
  pAB: number;
  /** softmax([l_A, l_B])[0] with rejected shown as A. */
  pBA: number;
}

export interface JudgedPairs {
  /** s_k = p(y_k > "" | prompt) per response (ranked mode); null in random mode, which scores nothing. */
  scores: number[] | null;
  pairs: JudgedPair[];
}

export interface JudgePairsOptions {
  /**
   * 'ranked' (default): the paper's ranked pairing; 'random': the ablation's seeded random pairs;
   * 'best-worst': the self-rewarding baseline's one pair per prompt, the highest against the lowest
   * blank-baseline score (ties: lower index ranks higher, as in rankedPairs).
   */
  mode?: 'ranked' | 'random' | 'best-worst';
  /** Seed of the random pairing (required for mode 'random'); prompt i of a batch uses pairSeed(seed, i). */
  seed?: number;
  /** Ranked / best-worst: blank-baseline scores already computed (blankScores), one array per group. */
  scores?: number[][];
}

/** s_k = p(y_k > "" | prompt) for every response of every group: one judge.preferences call. */
export async function blankScores(judge: Judge, groups: PairingGroup[]): Promise<number[][]> {
  const blank: JudgeItem[] = [];
  for (const g of groups) for (const r of g.responses) blank.push({ prompt: g.prompt, a: r, b: '' });
  const prefs = blank.length ? await judge.preferences(blank) : [];
  let at = 0;
  return groups.map((g) => prefs.slice(at, (at += g.responses.length)).map((q) => q.p));
}

/**
 * Statistical rejection sampling (Liu et al. 2024, RSO, Algorithm 1) of up to k of N candidates with
 * rewards r: towards the optimal policy pi*(y) ~ pi_sft(y) exp(r(y) / beta) from samples of pi_sft.
 * Each round visits the remaining candidates in a random order and accepts one with probability
 * exp((r - max r) / beta), max over the remaining; accepted ones leave the pool. Returns the
 * accepted indices in acceptance order (fewer than k only if N < k).
 */
export function rsoAccept(rewards: ArrayLike<number>, k: number, beta: number, rng: () => number): number[] {
  if (!(beta > 0 && Number.isFinite(beta))) throw new RangeError(`rsoAccept: beta is ${String(beta)}; expected a number > 0`);
  for (let i = 0; i < rewards.length; i++) if (Number.isNaN(rewards[i])) throw new RangeError(`rsoAccept: rewards[${i}] is NaN`);
  const pool = Array.from({ length: rewards.length }, (_, i) => i);
  const accepted: number[] = [];
  while (accepted.length < k && pool.length > 0) {
    const top = Math.max(...pool.map((i) => rewards[i]));
    shuffleInPlace(pool, rng);
    for (let j = 0; j < pool.length && accepted.length < k; ) {
      const i = pool[j];
      // The best remaining candidate is accepted with probability 1, so each round accepts one at least.
      if (rng() < Math.exp((rewards[i] - top) / beta)) {
        accepted.push(i);
        pool.splice(j, 1);
      } else j++;
    }
  }
  return accepted;
}

/** The reward RSO and RAFT read from a blank-baseline score s = p(y > ""): its log-odds. */
export function blankLogOdds(s: number): number {
  const c = Math.min(1 - 1e-12, Math.max(1e-12, s));
  return Math.log(c / (1 - c));
}

/**
 * Ranked pairs from scores: indices sorted by score descending, ties broken by the lower index first
 * (a stable order: among equal scores the earlier response ranks higher); then order[i] is paired
 * with order[K - 1 - i] for i < K//2. With odd K the median order[K//2] is unused. Scores must be
 * finite or ±Infinity (NaN is a RangeError).
 */
export function rankedPairs(scores: ArrayLike<number>): RankedPair[] {
  const K = scores.length;
  for (let k = 0; k < K; k++) {
    if (typeof scores[k] !== 'number' || Number.isNaN(scores[k])) throw new RangeError(`rankedPairs: scores[${k}] is ${scores[k]}; expected a number`);
  }
  const order = Array.from({ length: K }, (_, k) => k).sort((i, j) => (scores[i] > scores[j] ? -1 : scores[i] < scores[j] ? 1 : i - j));
  const pairs: RankedPair[] = [];
  for (let i = 0; i < K >> 1; i++) pairs.push({ high: order[i], low: order[K - 1 - i] });
  return pairs;
}

export { seededUniform };

/** The seed of prompt i of a batch seeded with `seed` (a 32-bit mix, so neighbouring prompts differ). */
export function pairSeed(seed: number, i: number): number {
  let h = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The random-pairing ablation: a Fisher-Yates shuffle of 0..K-1 driven by `rng` (a seed for
 * seededUniform, or a function returning uniforms in [0, 1)), then consecutive pairs
 * (perm[0], perm[1]), (perm[2], perm[3]), ... : K//2 pairs, with odd K the last one unused.
 */
export function randomPairs(K: number, rng: number | (() => number)): RandomPair[] {
  if (!Number.isInteger(K) || K < 0) throw new RangeError(`randomPairs: K is ${K}; expected a non-negative integer`);
  if (typeof rng !== 'function' && !(typeof rng === 'number' && Number.isFinite(rng))) throw new TypeError('randomPairs: rng is not a numeric seed or a function returning uniforms in [0, 1)');
  const next = typeof rng === 'function' ? rng : seededUniform(rng);
  const perm = shuffleInPlace(Array.from({ length: K }, (_, k) => k), () => {
    const u = next();
    if (!(u >= 0 && u < 1)) throw new RangeError(`randomPairs: rng returned ${u}; expected a number in [0, 1)`);
    return u;
  });
  const pairs: RandomPair[] = [];
  for (let i = 0; i + 1 < K; i += 2) pairs.push({ first: perm[i], second: perm[i + 1] });
  return pairs;
}

export interface PairingGroup {
  prompt: string;
  responses: string[];
}

/**
 * judgePairs over many prompts at once: one judge.preferences call for every blank comparison of
 * every prompt (ranked mode), then one for every pair of every prompt. Result i is that of groups[i]
 * (in random mode its pairs come from randomPairs(K_i, pairSeed(seed, i))).
 */
export async function judgePairsBatch(judge: Judge, groups: PairingGroup[], opts: JudgePairsOptions = {}): Promise<JudgedPairs[]> {
  const mode = opts.mode ?? 'ranked';
  if (mode !== 'ranked' && mode !== 'random' && mode !== 'best-worst') throw new RangeError(`judgePairs: mode is ${String(mode)}; expected 'ranked', 'random' or 'best-worst'`);
  if (mode === 'random' && !(typeof opts.seed === 'number' && Number.isFinite(opts.seed))) throw new TypeError("judgePairs: mode 'random' needs a numeric seed");
  if (!Array.isArray(groups)) throw new TypeError('judgePairs: groups is not an array of {prompt, responses}');
  groups.forEach((g, i) => {
    if (!g || typeof g.prompt !== 'string' || !Array.isArray(g.responses) || g.responses.some((r) => typeof r !== 'string')) {
      throw new TypeError(`judgePairs: groups[${i}] is not {prompt: string, responses: string[]}`);
    }
  });

  let scores: (number[] | null)[];
  let pairIndex: { chosen: number; rejected: number }[][];
  if (mode === 'ranked' || mode === 'best-worst') {
    if (opts.scores && (opts.scores.length !== groups.length || opts.scores.some((s, i) => s.length !== groups[i].responses.length))) {
      throw new RangeError('judgePairs: scores does not hold one score per response of every group');
    }
    scores = opts.scores ?? (await blankScores(judge, groups));
    pairIndex = scores.map((s) => rankedPairs(s!).map(({ high, low }) => ({ chosen: high, rejected: low })));
    if (mode === 'best-worst') pairIndex = pairIndex.map((p) => p.slice(0, 1)); // rankedPairs' first pair is (best, worst)
  } else {
    scores = groups.map(() => null);
    pairIndex = groups.map((g, i) => randomPairs(g.responses.length, pairSeed(opts.seed!, i)).map(({ first, second }) => ({ chosen: first, rejected: second })));
  }

  const items: JudgeItem[] = [];
  groups.forEach((g, i) => {
    for (const { chosen, rejected } of pairIndex[i]) items.push({ prompt: g.prompt, a: g.responses[chosen], b: g.responses[rejected] });
  });
  const prefs = items.length ? await judge.preferences(items) : [];
  let at = 0;
  return groups.map((_, i) => ({
    scores: scores[i],
    pairs: pairIndex[i].map(({ chosen, rejected }) => {
      const q = prefs[at++];
      return { chosen, rejected, target: q.p, pAB: q.pAB, pBA: q.pBA };
    }),
  }));
}

/**
 * Pairs for one prompt's responses: ranked mode scores every response against "" (one batched
 * preferences call), forms rankedPairs, and judges each pair on itself (one more call); random mode
 * uses randomPairs(K, pairSeed(seed, 0)), the same pairs as prompt 0 of judgePairsBatch.
 */
export async function judgePairs(judge: Judge, prompt: string, responses: string[], opts: JudgePairsOptions = {}): Promise<JudgedPairs> {
  return (await judgePairsBatch(judge, [{ prompt, responses }], opts))[0];
}
