// Evaluation (METHOD.md section 9): head-to-head win rates of two systems judged by a frozen model in
// both orders, ROUGE-L against reference responses, and response-length statistics (the judge is
// known to prefer longer responses, so length is always reported beside the win rate).
//
// Definitions used throughout:
// - p(a > b) is the judge's position-debiased preference (pAB + (1 - pBA)) / 2 (judge.ts).
// - An item is a win of A when p > 0.5 + tieMargin, a loss when p < 0.5 - tieMargin, otherwise a tie
//   (|p - 0.5| <= tieMargin). Default tieMargin 0.05: a judge that is at most 55/45 sure has not
//   decided. The win rate counts a tie as half a win: (wins + ties / 2) / n.
// - Confidence intervals are 95% percentile bootstrap intervals over items (meanWithCi: 2000
//   resamples of the items with replacement, a seeded generator, so the same inputs give the same
//   interval). The win-rate interval resamples the per-item scores 1 / 0.5 / 0.
// - Position disagreement of an item is |pAB - (1 - pBA)|: 0 when the judge says the same thing in
//   both orders. The orders disagree on the winner when the first order's winner (A when pAB > 0.5,
//   B when pAB < 0.5, none at exactly 0.5) differs from the second's (A when pBA < 0.5, ...).
// - ROUGE-L is js-rouge's summary-level ROUGE-L F1 (beta 1): both texts are split into sentences and
//   Penn-Treebank tokens (punctuation marks are tokens), compared case-insensitively by union
//   longest common subsequence; for single-sentence texts it is the plain LCS F1
//   2 P R / (P + R), P = LCS / candidate tokens, R = LCS / reference tokens. An empty (or
//   whitespace-only) candidate or reference scores 0.
// - With a reward model (an independent scorer, as the paper used SteamSHP and GPT-J reward models):
//   r(A) and r(B) of each item; A wins when r(A) > r(B) + tolerance, loses when r(A) < r(B) -
//   tolerance, else a tie (default tolerance 1e-6: equal up to f32 rounding). Win rate by reward =
//   (wins + ties / 2) / n, mean rewards with bootstrap intervals like the judge's.
// - Percentiles (median, p90) interpolate linearly between order statistics (numpy's default).
import { escapeMarkdown } from '../util/escape';
import { l as rougeLScore } from 'js-rouge';
import type { JudgeItem, Preference } from '../judge/judge';

/** Default half-width of the tie band around 0.5. */
export const DEFAULT_TIE_MARGIN = 0.05;
/** Default bootstrap resamples and confidence level. */
export const DEFAULT_BOOTSTRAP = Object.freeze({ resamples: 2000, level: 0.95, seed: 0 });

export interface CiOptions {
  /** Seed of the resampling (an integer). Default 0. */
  seed?: number;
  /** Bootstrap resamples. Default 2000. */
  resamples?: number;
  /** Confidence level in (0, 1). Default 0.95. */
  level?: number;
}

export interface MeanWithCi {
  n: number;
  mean: number;
  /** Lower and upper ends of the percentile bootstrap interval (NaN when n = 0; the mean when n = 1). */
  lo: number;
  hi: number;
  level: number;
}

function checkFinite(values: ArrayLike<number>, where: string): void {
  for (let i = 0; i < values.length; i++) {
    if (typeof values[i] !== 'number' || !Number.isFinite(values[i])) throw new RangeError(`${where}: value ${i} is ${String(values[i])}; expected a finite number`);
  }
}

/** Linear-interpolation quantile q in [0, 1] of sorted values (numpy's default 'linear' method). */
function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = (n - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

/** The mean of values with a seeded percentile-bootstrap confidence interval (see the file header). */
export function meanWithCi(values: ArrayLike<number>, opts: CiOptions = {}): MeanWithCi {
  const seed = opts.seed ?? DEFAULT_BOOTSTRAP.seed;
  const resamples = opts.resamples ?? DEFAULT_BOOTSTRAP.resamples;
  const level = opts.level ?? DEFAULT_BOOTSTRAP.level;
  if (!Number.isInteger(seed)) throw new RangeError(`meanWithCi: seed is ${seed}; expected an integer`);
  if (!(Number.isInteger(resamples) && resamples >= 1)) throw new RangeError(`meanWithCi: resamples is ${resamples}; expected an integer >= 1`);
  if (!(level > 0 && level < 1)) throw new RangeError(`meanWithCi: level is ${level}; expected a number in (0, 1)`);
  checkFinite(values, 'meanWithCi');
  const n = values.length;
  if (n === 0) return { n, mean: NaN, lo: NaN, hi: NaN, level };
  let sum = 0;
  for (let i = 0; i < n; i++) sum += values[i];
  const mean = sum / n;
  if (n === 1) return { n, mean, lo: mean, hi: mean, level };
  // xorshift32 seeded by the seed: shifts and xors only, so the resampling loop (resamples x n
  // draws) stays fast even where Math builtins are slow (Jest's vm contexts).
  let state = (seed ^ 0x9e3779b9) | 0 || 1;
  for (let w = 0; w < 8; w++) { state ^= state << 13; state ^= state >>> 17; state ^= state << 5; }
  const means = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    let s = 0;
    for (let i = 0; i < n; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      s += values[(((state >>> 0) / 4294967296) * n) | 0];
    }
    means[r] = s / n;
  }
  means.sort();
  const alpha = (1 - level) / 2;
  // The interval always contains the estimate (a percentile interval of a skewed statistic may not).
  return { n, mean, lo: Math.min(mean, quantileSorted(means, alpha)), hi: Math.max(mean, quantileSorted(means, 1 - alpha)), level };
}

// ---- win rate ---------------------------------------------------------------------------------------

export type Outcome = 'win' | 'tie' | 'loss';

export interface WinRateItem {
  /** p(a > b) = (pAB + (1 - pBA)) / 2. */
  p: number;
  pAB: number;
  pBA: number;
  outcome: Outcome;
  /** |pAB - (1 - pBA)|. */
  positionDisagreement: number;
  /** The two orders name different winners. */
  ordersDisagree: boolean;
}

export interface WinRateSummary {
  n: number;
  wins: number;
  ties: number;
  losses: number;
  tieMargin: number;
  /** (wins + ties / 2) / n with its bootstrap interval. */
  winRate: MeanWithCi;
  /** Mean p(a > b) with its bootstrap interval. */
  meanPreference: MeanWithCi;
  /** Mean |pAB - (1 - pBA)|. */
  positionDisagreement: number;
  /** Fraction of items whose two orders name different winners. */
  orderDisagreement: number;
}

export interface WinRateOptions extends CiOptions {
  /** Half-width of the tie band around 0.5, in [0, 0.5). Default 0.05. */
  tieMargin?: number;
  /** Items per judge call (progress granularity). Default 64. */
  chunkSize?: number;
  /** Called after each chunk with the items judged so far. */
  onProgress?: (done: number, total: number) => void;
}

/** Anything that judges items in both orders (a Judge; a stand-in in tests). */
export interface PreferenceSource {
  preferences(items: JudgeItem[]): Promise<Preference[]>;
}

function winnerOf(pFirstShownWins: number): 1 | 0 | -1 {
  return pFirstShownWins > 0.5 ? 1 : pFirstShownWins < 0.5 ? -1 : 0;
}

/** Per-item outcomes and the summary of judged preferences (the arithmetic of winRate). */
export function summarizePreferences(prefs: Preference[], opts: WinRateOptions = {}): { items: WinRateItem[]; summary: WinRateSummary } {
  const tieMargin = opts.tieMargin ?? DEFAULT_TIE_MARGIN;
  if (!(typeof tieMargin === 'number' && tieMargin >= 0 && tieMargin < 0.5)) throw new RangeError(`winRate: tieMargin is ${tieMargin}; expected a number in [0, 0.5)`);
  const items = prefs.map((q, i): WinRateItem => {
    for (const k of ['p', 'pAB', 'pBA'] as const) {
      if (!(typeof q[k] === 'number' && q[k] >= 0 && q[k] <= 1)) throw new RangeError(`winRate: preference ${i}.${k} is ${String(q[k])}; expected a probability in [0, 1]`);
    }
    const outcome: Outcome = q.p > 0.5 + tieMargin ? 'win' : q.p < 0.5 - tieMargin ? 'loss' : 'tie';
    // Order 1 shows a first (pAB: a wins); order 2 shows b first (pBA: b wins, so a wins when pBA < 0.5).
    const ordersDisagree = winnerOf(q.pAB) !== winnerOf(1 - q.pBA);
    return { p: q.p, pAB: q.pAB, pBA: q.pBA, outcome, positionDisagreement: Math.abs(q.pAB - (1 - q.pBA)), ordersDisagree };
  });
  const n = items.length;
  const count = (o: Outcome) => items.filter((it) => it.outcome === o).length;
  const scores = items.map((it) => (it.outcome === 'win' ? 1 : it.outcome === 'tie' ? 0.5 : 0));
  const mean = (xs: number[]) => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length);
  const ci = { seed: opts.seed, resamples: opts.resamples, level: opts.level };
  return {
    items,
    summary: {
      n,
      wins: count('win'),
      ties: count('tie'),
      losses: count('loss'),
      tieMargin,
      winRate: meanWithCi(scores, ci),
      meanPreference: meanWithCi(items.map((it) => it.p), ci),
      positionDisagreement: mean(items.map((it) => it.positionDisagreement)),
      orderDisagreement: mean(items.map((it) => (it.ordersDisagree ? 1 : 0))),
    },
  };
}

/** Judges a against b on every item in both orders and summarizes (see the file header). */
export async function winRate(judge: PreferenceSource, items: JudgeItem[], opts: WinRateOptions = {}): Promise<{ items: WinRateItem[]; summary: WinRateSummary }> {
  const chunk = opts.chunkSize ?? 64;
  if (!(Number.isInteger(chunk) && chunk >= 1)) throw new RangeError(`winRate: chunkSize is ${chunk}; expected an integer >= 1`);
  const prefs: Preference[] = [];
  for (let i = 0; i < items.length; i += chunk) {
    prefs.push(...(await judge.preferences(items.slice(i, i + chunk))));
    opts.onProgress?.(Math.min(items.length, i + chunk), items.length);
  }
  return summarizePreferences(prefs, opts);
}

// ---- reward-model scoring ---------------------------------------------------------------------------

/** Default tolerance within which two rewards tie. */
export const DEFAULT_REWARD_TOLERANCE = 1e-6;

export interface RewardSummary {
  /** The reward model that produced these numbers (a folder). */
  scorer: string;
  n: number;
  meanA: MeanWithCi;
  meanB: MeanWithCi;
  /** Mean r(A) - r(B). */
  meanDifference: MeanWithCi;
  wins: number;
  ties: number;
  losses: number;
  tolerance: number;
  /** (wins + ties / 2) / n with its bootstrap interval. */
  winRate: MeanWithCi;
}

/** Outcomes of A vs B by reward, and their summary (see the file header). */
export function summarizeRewards(a: ArrayLike<number>, b: ArrayLike<number>, scorer: string, opts: CiOptions & { tolerance?: number } = {}): { outcomes: Outcome[]; summary: RewardSummary } {
  const tolerance = opts.tolerance ?? DEFAULT_REWARD_TOLERANCE;
  if (!(typeof tolerance === 'number' && tolerance >= 0 && Number.isFinite(tolerance))) throw new RangeError(`summarizeRewards: tolerance is ${tolerance}; expected a number >= 0`);
  if (a.length !== b.length) throw new RangeError(`summarizeRewards: ${a.length} rewards of A but ${b.length} of B`);
  checkFinite(a, 'summarizeRewards: A');
  checkFinite(b, 'summarizeRewards: B');
  const outcomes = Array.from(a, (ra, i): Outcome => (ra > b[i] + tolerance ? 'win' : ra < b[i] - tolerance ? 'loss' : 'tie'));
  const ci = { seed: opts.seed, resamples: opts.resamples, level: opts.level };
  const count = (o: Outcome) => outcomes.filter((x) => x === o).length;
  return {
    outcomes,
    summary: {
      scorer,
      n: a.length,
      meanA: meanWithCi(a, ci),
      meanB: meanWithCi(b, ci),
      meanDifference: meanWithCi(Array.from(a, (v, i) => v - b[i]), ci),
      wins: count('win'),
      ties: count('tie'),
      losses: count('loss'),
      tolerance,
      winRate: meanWithCi(outcomes.map((o) => (o === 'win' ? 1 : o === 'tie' ? 0.5 : 0)), ci),
    },
  };
}

// ---- ROUGE-L ----------------------------------------------------------------------------------------

/** ROUGE-L F1 of candidate against reference (js-rouge, case-insensitive; empty text scores 0). */
export function rougeL(candidate: string, reference: string): number {
  if (typeof candidate !== 'string' || typeof reference !== 'string') throw new TypeError('rougeL: candidate and reference must be strings');
  if (candidate.trim() === '' || reference.trim() === '') return 0;
  return rougeLScore(candidate, reference, { caseSensitive: false });
}

/** Per-item ROUGE-L and their mean with a bootstrap interval. */
export function meanRougeL(pairs: { candidate: string; reference: string }[], opts: CiOptions = {}): { scores: number[]; mean: MeanWithCi } {
  const scores = pairs.map((q) => rougeL(q.candidate, q.reference));
  return { scores, mean: meanWithCi(scores, opts) };
}

// ---- lengths ----------------------------------------------------------------------------------------

export interface LengthStats {
  n: number;
  mean: number;
  median: number;
  p90: number;
  max: number;
}

/** mean, median, 90th percentile (linear interpolation) and max of lengths (NaN for no lengths). */
export function lengthStats(lengths: ArrayLike<number>): LengthStats {
  checkFinite(lengths, 'lengthStats');
  const n = lengths.length;
  if (n === 0) return { n, mean: NaN, median: NaN, p90: NaN, max: NaN };
  const sorted = Float64Array.from(lengths).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return { n, mean: sum / n, median: quantileSorted(sorted, 0.5), p90: quantileSorted(sorted, 0.9), max: sorted[n - 1] };
}

// ---- a whole head-to-head evaluation ----------------------------------------------------------------

export interface SideStats {
  /** Where the responses came from (a model folder or a responses file). */
  source: string;
  rougeL: MeanWithCi | null;
  /** Mean programmatic task score (e.g. the demo scorer), when a scorer was given. */
  score: MeanWithCi | null;
  lengthTokens: LengthStats;
  lengthChars: LengthStats;
}

/** One prompt of an evaluation: the judged outcome (WinRateItem, with a judge) with the texts and their measures. */
export interface EvalItem extends Partial<WinRateItem> {
  prompt: string;
  a: string;
  b: string;
  reference?: string;
  tokensA: number;
  tokensB: number;
  rougeA?: number;
  rougeB?: number;
  scoreA?: number;
  scoreB?: number;
  /** With a reward model: r(A), r(B) and A's outcome by reward. */
  rewardA?: number;
  rewardB?: number;
  rewardOutcome?: Outcome;
}

export interface EvalReport {
  /** Which scorer produced each number: the judge's win rate, the reward model's rewards (null: not run). */
  scorers: { judge: string | null; rewardModel: string | null };
  /** A vs B by the judge: wins are wins of A (null without a judge). */
  winRate: WinRateSummary | null;
  /** A vs B by the reward model (null without one). */
  rewardModel: RewardSummary | null;
  a: SideStats;
  b: SideStats;
  settings: Record<string, unknown>;
  items: EvalItem[];
}

export interface EvaluateInput {
  prompts: string[];
  a: string[];
  b: string[];
  /** Token lengths of the responses (same tokenizer for both sides, so the numbers compare). */
  tokensA: number[];
  tokensB: number[];
  references?: string[];
  sourceA: string;
  sourceB: string;
  /** A programmatic scorer of (prompt, response) (e.g. the demo task's score). */
  scorer?: (prompt: string, response: string) => number;
  /** Rewards of A's and B's responses by a reward model, and the folder they came from. */
  rewards?: { scorer: string; a: ArrayLike<number>; b: ArrayLike<number>; tolerance?: number };
  /** The judge's name in the report (a folder). */
  judgeName?: string;
  settings?: Record<string, unknown>;
}

/** Judges A vs B (with a judge) and scores them by reward (with rewards), and gathers ROUGE-L, task scores and lengths into one report. */
export async function evaluateHeadToHead(judge: PreferenceSource | null, input: EvaluateInput, opts: WinRateOptions = {}): Promise<EvalReport> {
  const n = input.prompts.length;
  for (const k of ['a', 'b', 'tokensA', 'tokensB'] as const) {
    if (input[k].length !== n) throw new RangeError(`evaluateHeadToHead: ${k} has ${input[k].length} entries for ${n} prompts`);
  }
  if (input.references && input.references.length !== n) throw new RangeError(`evaluateHeadToHead: references has ${input.references.length} entries for ${n} prompts`);
  if (!judge && !input.rewards) throw new RangeError('evaluateHeadToHead: neither a judge nor rewards; expected at least one scorer');
  const judged = judge ? await winRate(judge, input.prompts.map((prompt, i) => ({ prompt, a: input.a[i], b: input.b[i] })), opts) : null;
  const items = judged?.items;
  const rw = input.rewards;
  if (rw && (rw.a.length !== n || rw.b.length !== n)) throw new RangeError(`evaluateHeadToHead: rewards for ${rw.a.length} / ${rw.b.length} responses, ${n} prompts`);
  const byReward = rw ? summarizeRewards(rw.a, rw.b, rw.scorer, { tolerance: rw.tolerance, seed: opts.seed, resamples: opts.resamples, level: opts.level }) : null;
  const ci: CiOptions = { seed: opts.seed, resamples: opts.resamples, level: opts.level };
  const side = (texts: string[], tokens: number[], source: string) => {
    const rouge = input.references ? meanRougeL(texts.map((candidate, i) => ({ candidate, reference: input.references![i] })), ci) : null;
    const scores = input.scorer ? texts.map((t, i) => input.scorer!(input.prompts[i], t)) : null;
    const stats: SideStats = {
      source,
      rougeL: rouge ? rouge.mean : null,
      score: scores ? meanWithCi(scores, ci) : null,
      lengthTokens: lengthStats(tokens),
      lengthChars: lengthStats(texts.map((t) => t.length)),
    };
    return { stats, rouge: rouge?.scores, scores };
  };
  const A = side(input.a, input.tokensA, input.sourceA);
  const B = side(input.b, input.tokensB, input.sourceB);
  return {
    scorers: { judge: judge ? (input.judgeName ?? 'judge') : null, rewardModel: rw ? rw.scorer : null },
    winRate: judged ? judged.summary : null,
    rewardModel: byReward ? byReward.summary : null,
    a: A.stats,
    b: B.stats,
    settings: input.settings ?? {},
    items: input.prompts.map((_, i) => ({
      prompt: input.prompts[i],
      a: input.a[i],
      b: input.b[i],
      ...(input.references ? { reference: input.references[i] } : {}),
      ...(items
        ? { p: items[i].p, pAB: items[i].pAB, pBA: items[i].pBA, outcome: items[i].outcome, positionDisagreement: items[i].positionDisagreement, ordersDisagree: items[i].ordersDisagree }
        : {}),
      ...(rw && byReward ? { rewardA: rw.a[i], rewardB: rw.b[i], rewardOutcome: byReward.outcomes[i] } : {}),
      tokensA: input.tokensA[i],
      tokensB: input.tokensB[i],
      ...(A.rouge ? { rougeA: A.rouge[i], rougeB: B.rouge![i] } : {}),
      ...(A.scores ? { scoreA: A.scores[i], scoreB: B.scores![i] } : {}),
    })),
  };
}

function f(v: number, digits = 3): string {
  return Number.isFinite(v) ? v.toFixed(digits) : '-';
}

function withCi(m: MeanWithCi | null, digits = 3): string {
  if (!m || m.n === 0) return '-';
  return `${f(m.mean, digits)} [${f(m.lo, digits)}, ${f(m.hi, digits)}]`;
}

/** The report as Markdown: the head-to-head summary, then one row per metric with A and B side by side. */
export function formatEvalTable(r: EvalReport): string {
  const w = r.winRate;
  const rm = r.rewardModel;
  const pct = (x: number) => `${f(100 * x, 1)}%`;
  const lines = [
    `# osp eval: A vs B (${r.items.length} prompts)`,
    '',
    `- A: ${escapeMarkdown(r.a.source)}`,
    `- B: ${escapeMarkdown(r.b.source)}`,
    `- judge: ${r.scorers.judge === null ? 'none' : escapeMarkdown(r.scorers.judge)}`,
    `- reward model: ${r.scorers.rewardModel === null ? 'none' : escapeMarkdown(r.scorers.rewardModel)}`,
    '',
  ];
  if (w) {
    lines.push(
      '| head to head, by the judge | value |',
      '| --- | --- |',
      `| win rate of A (ties count half) | ${pct(w.winRate.mean)} [${pct(w.winRate.lo)}, ${pct(w.winRate.hi)}] |`,
      `| A wins / ties / B wins | ${w.wins} / ${w.ties} / ${w.losses} (tie: abs(p - 0.5) <= ${w.tieMargin}) |`,
      `| mean p(A > B) | ${withCi(w.meanPreference)} |`,
      `| position disagreement abs(pAB - (1 - pBA)) | ${f(w.positionDisagreement)} |`,
      `| orders disagree on the winner | ${pct(w.orderDisagreement)} |`,
      '',
    );
  }
  if (rm) {
    lines.push(
      '| head to head, by the reward model | value |',
      '| --- | --- |',
      `| win rate of A by reward (ties count half) | ${pct(rm.winRate.mean)} [${pct(rm.winRate.lo)}, ${pct(rm.winRate.hi)}] |`,
      `| A wins / ties / B wins | ${rm.wins} / ${rm.ties} / ${rm.losses} (tie: abs(r(A) - r(B)) <= ${rm.tolerance}) |`,
      `| mean reward of A | ${withCi(rm.meanA)} |`,
      `| mean reward of B | ${withCi(rm.meanB)} |`,
      `| mean r(A) - r(B) | ${withCi(rm.meanDifference)} |`,
      '',
    );
  }
  lines.push(
    '| metric | A | B |',
    '| --- | --- | --- |',
  );
  if (r.a.rougeL) lines.push(`| ROUGE-L F1 vs references | ${withCi(r.a.rougeL)} | ${withCi(r.b.rougeL)} |`);
  if (r.a.score) lines.push(`| task score | ${withCi(r.a.score)} | ${withCi(r.b.score)} |`);
  const len = (s: LengthStats) => `${f(s.mean, 1)} / ${f(s.median, 1)} / ${f(s.p90, 1)} / ${f(s.max, 0)}`;
  lines.push(`| length, tokens (mean / median / p90 / max) | ${len(r.a.lengthTokens)} | ${len(r.b.lengthTokens)} |`);
  lines.push(`| length, characters (mean / median / p90 / max) | ${len(r.a.lengthChars)} | ${len(r.b.lengthChars)} |`);
  lines.push('', `Intervals: ${Math.round(100 * (w ?? rm)!.winRate.level)}% percentile bootstrap over prompts (seeded).`);
  return lines.join('\n') + '\n';
}
