// Training data of the demo task: imperfect demonstrations for SFT and noisily labelled preference
// pairs (the "human preference seed set" of the judge's preference augmentation), all reproducible
// from a seed.
//
// Imperfect responses come from a corruption process applied to the perfect answer. Each corruption
// is drawn with the weight in CORRUPTIONS:
//   swapAdjacent  exchange two neighbours              drop       remove one number
//   duplicate     repeat one number in place            replace    one number becomes a random value
//   extra         append a random value                  swapAny    exchange two random positions
//   reverse       the whole list in the wrong direction  unsorted   the prompt's order (not sorted)
//   format        a wrong separator: "1, 3", "1,3" or "[1 3]"  (also changes nothing else)
// so small slips are common and gross errors rare. A response with k corruptions usually scores lower
// the larger k is, but not always (two swaps can cancel), which is what the scorer is for.
import { checkSeed, Rng, sigmoid } from '../util/random';
import { drawProblem, formatPrompt, score, sortedTarget, SortProblem, taskOptions, TaskOptions } from './task';

/** An SFT demonstration. */
export interface SftExample {
  prompt: string;
  response: string;
}

/** A preference pair; strength is the rater's confidence that chosen is better (see makePreferencePairs). */
export interface PreferencePair {
  prompt: string;
  chosen: string;
  rejected: string;
  strength: number;
}

export type Corruption = 'swapAdjacent' | 'drop' | 'duplicate' | 'replace' | 'extra' | 'swapAny' | 'reverse' | 'unsorted' | 'format';

/** The corruptions and their relative weights. */
export const CORRUPTIONS: Readonly<Record<Corruption, number>> = Object.freeze({
  swapAdjacent: 4,
  drop: 3,
  duplicate: 3,
  replace: 3,
  extra: 2,
  swapAny: 2,
  reverse: 1,
  unsorted: 1,
  format: 2,
});

type Format = 'plain' | 'comma' | 'commaTight' | 'brackets';

function render(numbers: number[], format: Format): string {
  if (numbers.length === 0) return '';
  switch (format) {
    case 'plain':
      return ` ${numbers.join(' ')}`;
    case 'comma':
      return ` ${numbers.join(', ')}`;
    case 'commaTight':
      return ` ${numbers.join(',')}`;
    case 'brackets':
      return ` [${numbers.join(' ')}]`;
  }
}

/**
 * A response to the problem with k corruptions of the perfect answer (k = 0: the perfect answer),
 * drawn from rng. maxValue bounds the values that 'replace' and 'extra' write.
 */
export function corruptedResponse(problem: SortProblem, k: number, rng: Rng, maxValue = 9): string {
  let xs = sortedTarget(problem);
  let format: Format = 'plain';
  const names = Object.keys(CORRUPTIONS) as Corruption[];
  const weights = names.map((c) => CORRUPTIONS[c]);
  for (let step = 0; step < k; step++) {
    const c = names[rng.weighted(weights)];
    const n = xs.length;
    switch (c) {
      case 'swapAdjacent':
        if (n >= 2) {
          const i = rng.int(n - 1);
          [xs[i], xs[i + 1]] = [xs[i + 1], xs[i]];
        }
        break;
      case 'swapAny':
        if (n >= 2) {
          const i = rng.int(n);
          const j = (i + 1 + rng.int(n - 1)) % n;
          [xs[i], xs[j]] = [xs[j], xs[i]];
        }
        break;
      case 'drop':
        if (n >= 2) xs.splice(rng.int(n), 1);
        break;
      case 'duplicate':
        if (n >= 1) {
          const i = rng.int(n);
          xs.splice(i, 0, xs[i]);
        }
        break;
      case 'replace':
        if (n >= 1) xs[rng.int(n)] = rng.int(maxValue + 1);
        break;
      case 'extra':
        xs.push(rng.int(maxValue + 1));
        break;
      case 'reverse':
        xs.reverse();
        break;
      case 'unsorted':
        xs = problem.numbers.slice();
        break;
      case 'format':
        format = rng.pick(['comma', 'commaTight', 'brackets'] as const);
        break;
    }
  }
  return render(xs, format);
}

export interface SftOptions extends TaskOptions {
  /**
   * In [0, 1]: a demonstration gets k corruptions, where k counts the successes of up to 4 draws
   * with probability noise, stopping at the first failure (P(k = 0) = 1 - noise, P(k >= j) =
   * noise^j). 0 gives perfect demonstrations. Default 0.6.
   */
  noise?: number;
  /**
   * In [0, 1]: the demonstrator's habit, a systematic slip on top of the random ones: with this
   * probability a demonstration (of two or more numbers) stops one number short, leaving out the
   * last number of the sorted list. A model fitted to such demonstrations learns the habit; the
   * scorer (and a judge that learned from it) prefers complete answers, which is the room OSP has
   * to improve on. Default 0 (no habit; no extra random draws, so other outputs are unchanged).
   */
  habit?: number;
}

export const DEFAULT_SFT_NOISE = 0.6;
const MAX_SFT_CORRUPTIONS = 4;

function checkCount(n: number, where: string): void {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`${where}: n is ${n}; expected a non-negative integer`);
}

function checkUnit(v: number, name: string, where: string): void {
  if (!(typeof v === 'number' && v >= 0 && v <= 1)) throw new RangeError(`${where}: ${name} is ${v}; expected a number in [0, 1]`);
}

/** The response without its last number (and what separates it), when it has at least two. */
function stopShort(response: string): string {
  const m = /^(.*\d)[^\d]+\d+([^\d]*)$/.exec(response);
  return m ? `${m[1]}${m[2]}` : response;
}

/** n imperfect demonstrations {prompt, response}, reproducible from the seed. */
export function makeSftExamples(n: number, seed: number, opts: SftOptions = {}): SftExample[] {
  checkCount(n, 'makeSftExamples');
  checkSeed(seed, 'makeSftExamples');
  const noise = opts.noise ?? DEFAULT_SFT_NOISE;
  checkUnit(noise, 'noise', 'makeSftExamples');
  const habit = opts.habit ?? 0;
  checkUnit(habit, 'habit', 'makeSftExamples');
  const o = taskOptions(opts);
  const rng = new Rng(seed, 'sft');
  const out: SftExample[] = [];
  for (let i = 0; i < n; i++) {
    const problem = drawProblem(rng, o);
    let k = 0;
    while (k < MAX_SFT_CORRUPTIONS && rng.bernoulli(noise)) k++;
    let response = corruptedResponse(problem, k, rng, o.maxValue);
    if (habit > 0 && rng.bernoulli(habit)) response = stopShort(response);
    out.push({ prompt: formatPrompt(problem), response });
  }
  return out;
}

export interface PreferenceOptions extends TaskOptions {
  /**
   * The raters' noise: the temperature T of a Bradley-Terry choice on the scores. The better
   * response (higher score) is labelled chosen with probability sigmoid(gap / T), gap = the score
   * difference, so close calls are often flipped and clear ones rarely. 0: never flipped. Default 0.1.
   */
  flipNoise?: number;
  /** The temperature of the returned strength; default flipNoise, or 0.1 when flipNoise is 0. */
  strengthTemperature?: number;
  /** Fraction of pairs whose worse response is the blank response "" (what ranked pairing compares against). Default 0.1. */
  emptyRate?: number;
  /** Each candidate gets a uniform 0..maxCorruptions corruptions. Default 3. */
  maxCorruptions?: number;
  /**
   * In [0, 1]: with this probability a candidate also stops one number short (the demonstrators'
   * habit, see SftOptions.habit), so that raters compare complete answers with short ones as often
   * as the policy's samples will. Default 0 (no extra random draws).
   */
  habit?: number;
}

export const DEFAULT_FLIP_NOISE = 0.1;

/**
 * n preference pairs, reproducible from the seed. For each prompt two different responses with
 * different scores are drawn (corruptions of the perfect answer; with probability emptyRate one of
 * them is ""); chosen is the higher-scored one, except that the label is flipped with probability
 * 1 - sigmoid(gap / flipNoise). strength is the rater's confidence in the label it gave,
 * sigmoid(|gap| / T) with T = strengthTemperature: above 0.5 for every pair, flipped or not, so a
 * consumer that orients pairs by strength (osp augment, osp dpo) trains on the noisy labels as
 * given, as the paper's methods do with human labels.
 */
export function makePreferencePairs(n: number, seed: number, opts: PreferenceOptions = {}): PreferencePair[] {
  checkCount(n, 'makePreferencePairs');
  checkSeed(seed, 'makePreferencePairs');
  const flipNoise = opts.flipNoise ?? DEFAULT_FLIP_NOISE;
  if (!(typeof flipNoise === 'number' && flipNoise >= 0 && Number.isFinite(flipNoise))) throw new RangeError(`makePreferencePairs: flipNoise is ${flipNoise}; expected a finite number >= 0`);
  const strengthT = opts.strengthTemperature ?? (flipNoise > 0 ? flipNoise : DEFAULT_FLIP_NOISE);
  if (!(typeof strengthT === 'number' && strengthT > 0 && Number.isFinite(strengthT))) throw new RangeError(`makePreferencePairs: strengthTemperature is ${strengthT}; expected a finite number > 0`);
  const emptyRate = opts.emptyRate ?? 0.1;
  checkUnit(emptyRate, 'emptyRate', 'makePreferencePairs');
  const maxCorruptions = opts.maxCorruptions ?? 3;
  if (!Number.isInteger(maxCorruptions) || maxCorruptions < 1) throw new RangeError(`makePreferencePairs: maxCorruptions is ${maxCorruptions}; expected an integer >= 1`);
  const habit = opts.habit ?? 0;
  checkUnit(habit, 'habit', 'makePreferencePairs');
  const o = taskOptions(opts);
  const rng = new Rng(seed, 'pairs');
  const candidate = (problem: SortProblem) => {
    const r = corruptedResponse(problem, rng.int(maxCorruptions + 1), rng, o.maxValue);
    return habit > 0 && rng.bernoulli(habit) ? stopShort(r) : r;
  };
  const out: PreferencePair[] = [];
  for (let i = 0; i < n; i++) {
    const problem = drawProblem(rng, o);
    const prompt = formatPrompt(problem);
    const blank = rng.bernoulli(emptyRate);
    let a = '';
    let b = '';
    let sa = 0;
    let sb = 0;
    for (let attempt = 0; ; attempt++) {
      a = candidate(problem);
      b = blank ? '' : candidate(problem);
      sa = score(prompt, a);
      sb = score(prompt, b);
      if (a !== b && sa !== sb) break;
      if (attempt >= 50) {
        // A problem whose corruptions keep tying (never seen in practice): the perfect answer against blank.
        a = corruptedResponse(problem, 0, rng, o.maxValue);
        b = '';
        sa = 1;
        sb = 0;
        break;
      }
    }
    const [hi, lo, shi, slo] = sa > sb ? [a, b, sa, sb] : [b, a, sb, sa];
    const flip = flipNoise > 0 && rng.bernoulli(sigmoid(-(shi - slo) / flipNoise));
    const [chosen, rejected] = flip ? [lo, hi] : [hi, lo];
    out.push({ prompt, chosen, rejected, strength: sigmoid((shi - slo) / strengthT) });
  }
  return out;
}
