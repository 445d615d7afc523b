// The demo task: sort a short list of small numbers, ascending or descending.
//
// Prompt (one line of instruction, one line that opens the answer):
//
//     Sort descending: 7 3 9 3 1
//     Answer:
//
// i.e. the string "Sort descending: 7 3 9 3 1\nAnswer:". The perfect response is the same numbers in
// the asked order, separated by single spaces, with one leading space, as the responses of the HH
// dialogue data start after "Assistant:": " 9 7 3 3 1". (The leading space keeps the tokens of
// prompt + response the concatenation of the prompt's and the response's tokens.)
//
// Rubric of score(prompt, response), deterministic, in [0, 1]. The numbers of the response are
// read leniently: every run of digits /\d+/ is one number, whatever surrounds it. With t the target
// (the prompt's numbers in the asked order, n of them) and r the response's numbers (m of them):
//
//   content  c = multiset F1 of r against t: overlap = sum over values of min(count in r, count in t),
//              precision = overlap / m, recall = overlap / n, c = 2PR / (P + R) (0 when overlap = 0).
//   sequence s = LCS(r, t) / max(m, n): the longest common subsequence, so one swap, drop or extra
//              number costs about 1/n and a reversed list keeps about 1/n.
//   order    a = fraction of the m - 1 adjacent pairs of r in the asked direction (ties count as in
//              order); 0 when m < 2.
//   format   f = 1 when the trimmed response is numbers separated by single spaces and nothing else;
//              0.5 when it holds only numbers, whitespace and the separators , ; [ ] ( ) -; else 0.
//
//   score = 0                                       when m = 0 or c = 0 (empty, no number, or no
//                                                   right number at all)
//         = 0.25 c + 0.45 s + 0.20 a c + 0.10 f    otherwise,
//
// which is 1 exactly when r = t and the format is plain (c = s = a = f = 1), and gives graded partial
// credit: with t = 1 3 5 7 9, "1 3 5 7 9" 1; "1, 3, 5, 7, 9" 0.95; "1 3 3 5 7 9" (duplicate) 0.88;
// "1 5 3 7 9" (adjacent swap) 0.86; "1 3 7 9" (drop) 0.86; "7 1 9 3 5" (unsorted) 0.72; "1 3 5" 0.71;
// "9 7 5 3 1" (wrong direction) 0.44; "2 4 6" or "hello" or "" 0. Use scoreDetails for the parts.
import { checkSeed, Rng } from '../util/random';

export type Direction = 'ascending' | 'descending';

/** A prompt's content. */
export interface SortProblem {
  direction: Direction;
  numbers: number[];
}

export interface TaskOptions {
  /** Fewest numbers in a prompt (>= 2). Default 3. */
  minLength?: number;
  /** Most numbers in a prompt (>= minLength). Default 7. */
  maxLength?: number;
  /** Numbers are drawn uniformly from 0..maxValue (an integer >= 1). Default 9 (one digit, one token). */
  maxValue?: number;
}

export const DEFAULT_TASK_OPTIONS: Readonly<Required<TaskOptions>> = Object.freeze({ minLength: 3, maxLength: 7, maxValue: 9 });

/** The rubric's weights (see the file's header). */
export const SCORE_WEIGHTS = Object.freeze({ content: 0.25, sequence: 0.45, order: 0.2, format: 0.1 });

/** Task options with their defaults, checked. */
export function taskOptions(opts: TaskOptions = {}): Required<TaskOptions> {
  const o = { ...DEFAULT_TASK_OPTIONS, ...dropUndefined(opts) };
  if (!Number.isInteger(o.minLength) || o.minLength < 2) throw new RangeError(`demo task: minLength is ${o.minLength}; expected an integer >= 2`);
  if (!Number.isInteger(o.maxLength) || o.maxLength < o.minLength) throw new RangeError(`demo task: maxLength is ${o.maxLength}; expected an integer >= minLength (${o.minLength})`);
  if (!Number.isInteger(o.maxValue) || o.maxValue < 1) throw new RangeError(`demo task: maxValue is ${o.maxValue}; expected an integer >= 1`);
  return o;
}

function dropUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The prompt text of a problem. */
export function formatPrompt(problem: SortProblem): string {
  return `Sort ${problem.direction}: ${problem.numbers.join(' ')}\nAnswer:`;
}

const PROMPT_RE = /^Sort (ascending|descending): (\d+(?: \d+)*)\nAnswer:$/;

/** The problem of a prompt made by makePrompts / formatPrompt; throws a RangeError on anything else. */
export function parsePrompt(prompt: string): SortProblem {
  if (typeof prompt !== 'string') throw new TypeError('demo task: prompt is not a string');
  const m = PROMPT_RE.exec(prompt);
  if (!m) throw new RangeError(`demo task: ${JSON.stringify(prompt.slice(0, 60))} is not a prompt of the sorting task ("Sort ascending|descending: <numbers>\\nAnswer:")`);
  return { direction: m[1] as Direction, numbers: m[2].split(' ').map(Number) };
}

/** One problem drawn from rng. */
export function drawProblem(rng: Rng, opts: TaskOptions = {}): SortProblem {
  const o = taskOptions(opts);
  const direction: Direction = rng.bernoulli(0.5) ? 'ascending' : 'descending';
  const length = rng.range(o.minLength, o.maxLength);
  const numbers = Array.from({ length }, () => rng.int(o.maxValue + 1));
  return { direction, numbers };
}

/** n prompts, reproducible from the seed (the same seed and options give the same prompts). */
export function makePrompts(n: number, seed: number, opts: TaskOptions = {}): string[] {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`makePrompts: n is ${n}; expected a non-negative integer`);
  checkSeed(seed, 'makePrompts');
  taskOptions(opts);
  const rng = new Rng(seed, 'prompts');
  return Array.from({ length: n }, () => formatPrompt(drawProblem(rng, opts)));
}

/** The prompt's numbers in the asked order. */
export function sortedTarget(problem: SortProblem): number[] {
  const t = problem.numbers.slice().sort((x, y) => x - y);
  return problem.direction === 'ascending' ? t : t.reverse();
}

/** The text of a list of numbers as a response: a leading space, then the numbers separated by spaces. */
export function formatResponse(numbers: readonly number[]): string {
  return numbers.length === 0 ? '' : ` ${numbers.join(' ')}`;
}

/** The perfect response (score 1): e.g. " 9 7 3 3 1". */
export function bestResponse(prompt: string): string {
  return formatResponse(sortedTarget(parsePrompt(prompt)));
}

export interface ScoreDetails {
  /** The response's numbers, as read. */
  numbers: number[];
  /** The target, in the asked order. */
  target: number[];
  content: number;
  sequence: number;
  order: number;
  format: number;
  /** The score, as score() returns it. */
  score: number;
}

function multisetF1(r: readonly number[], t: readonly number[]): number {
  if (r.length === 0 || t.length === 0) return 0;
  const counts = new Map<number, number>();
  for (const x of t) counts.set(x, (counts.get(x) ?? 0) + 1);
  let overlap = 0;
  for (const x of r) {
    const c = counts.get(x) ?? 0;
    if (c > 0) {
      overlap++;
      counts.set(x, c - 1);
    }
  }
  if (overlap === 0) return 0;
  const p = overlap / r.length;
  const q = overlap / t.length;
  return (2 * p * q) / (p + q);
}

function lcs(a: readonly number[], b: readonly number[]): number {
  let prev = new Int32Array(b.length + 1);
  let cur = new Int32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length];
}

function adjacentOrder(r: readonly number[], direction: Direction): number {
  if (r.length < 2) return 0;
  let ok = 0;
  for (let i = 0; i + 1 < r.length; i++) {
    if (direction === 'ascending' ? r[i] <= r[i + 1] : r[i] >= r[i + 1]) ok++;
  }
  return ok / (r.length - 1);
}

function formatCredit(response: string): number {
  const s = response.trim();
  if (/^\d+( \d+)*$/.test(s)) return 1;
  if (/^[\d\s,;[\]()-]*$/.test(s)) return 0.5;
  return 0;
}

/** The rubric's parts and the score of a response (see the file's header). */
export function scoreDetails(prompt: string, response: string): ScoreDetails {
  if (typeof response !== 'string') throw new TypeError('demo task: response is not a string');
  const target = sortedTarget(parsePrompt(prompt));
  const numbers = (response.match(/\d+/g) ?? []).map(Number);
  const content = multisetF1(numbers, target);
  const sequence = numbers.length === 0 ? 0 : lcs(numbers, target) / Math.max(numbers.length, target.length);
  const order = adjacentOrder(numbers, parsePrompt(prompt).direction);
  const format = numbers.length === 0 ? 0 : formatCredit(response);
  let score: number;
  if (content === 0) score = 0;
  else if (content === 1 && sequence === 1 && order === 1 && format === 1) score = 1;
  else {
    const w = SCORE_WEIGHTS;
    score = Math.min(1, Math.max(0, w.content * content + w.sequence * sequence + w.order * order * content + w.format * format));
  }
  return { numbers, target, content, sequence, order, format, score };
}

/** The quality of a response to a prompt, in [0, 1]; 1 only for the perfect answer. Deterministic. */
export function score(prompt: string, response: string): number {
  return scoreDetails(prompt, response).score;
}
