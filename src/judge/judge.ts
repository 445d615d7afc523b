// The self-preferring judge (METHOD.md section 4): fill the instruction template with a prompt and
// two responses, run the frozen model once, and read the last position's logits of the two answer
// tokens ("A", "B" as the tokenizer spells them after the template's last word). With the responses
// in order (a, b) pAB = softmax([l_A, l_B])[0]; swapped (b, a) pBA = softmax([l_A, l_B])[0]; and
// p(a > b) = (pAB + (1 - pBA)) / 2, which undoes the judge's position bias.
//
// Instructions are encoded whole (the filled template as one string, with the tokenizer's special
// tokens, e.g. Llama's BOS), exactly as a Hugging Face `tokenizer(text)` would. Only instructions
// longer than maxLength tokens are truncated, see Judge.instructions. By default the instructions'
// common token prefixes (the template's opening and the prompt) run once through the kv-cache
// forward and each instruction's own tail over them (sharedPrefix.ts); with sharePrefix false every
// instruction runs whole, up to batchSize per packed LlamaModel.lastLogits call. Either way only the
// two answer rows of the LM head are computed.
import { LlamaModel } from '../model/llama';
import { Tokenizer } from '../model/tokenizer';
import { defaultMaxCacheBytes } from '../generate/kvCache';
import { sharedLastLogits } from './sharedPrefix';
import { fillJudgeTemplate, JudgeTemplate, ParsedJudgeTemplate, resolveJudgeTemplate } from './templates';

export interface JudgeItem {
  prompt: string;
  a: string;
  b: string;
}

export interface Preference {
  /** p(a > b) = (pAB + (1 - pBA)) / 2. */
  p: number;
  /** softmax([l_A, l_B])[0] with a shown as A and b as B. */
  pAB: number;
  /** softmax([l_A, l_B])[0] with b shown as A and a as B. */
  pBA: number;
}

export interface JudgeOptions {
  /** A built-in template ('hh', the default, or 'tldr') or a JudgeTemplate (e.g. from loadJudgeTemplate). */
  template?: 'hh' | 'tldr' | JudgeTemplate;
  /**
   * Longest instruction in tokens, special tokens included. Default: the paper's cap for the built-in
   * templates (768 for hh, 1124 for tldr; METHOD.md's table of settings), never past the model's
   * max_position_embeddings; the model's context for a custom template.
   */
  maxLength?: number;
  /**
   * Instructions per forward pass (each item is two instructions). Default 8. With sharePrefix, a
   * forward computes at most batchSize x maxLength rows (the unshared path's largest) over as many
   * instructions as their shared prefixes let fit.
   */
  batchSize?: number;
  /**
   * Run the instructions' shared token prefixes once through the kv-cache forward and only each
   * instruction's own tail over them (src/judge/sharedPrefix.ts). Default true; false runs every
   * instruction whole in packed forwards (the reference the tests compare with). Same logits
   * within rounding.
   */
  sharePrefix?: boolean;
  /** Bound on the kv cache of one shared forward, in bytes. Default as generate's (defaultMaxCacheBytes). */
  maxCacheBytes?: number;
}

/** The paper's longest judge instruction per built-in template (METHOD.md: 768 for HH, 1124 for TL;DR). */
export const PAPER_JUDGE_MAX_LENGTH = { hh: 768, tldr: 1124 } as const;

/** The default judge instruction cap: the paper's for hh and tldr, within the model's context; the context otherwise. */
export function defaultJudgeMaxLength(template: 'hh' | 'tldr' | JudgeTemplate | undefined, context: number): number {
  const name = template ?? 'hh';
  return typeof name === 'string' ? Math.min(PAPER_JUDGE_MAX_LENGTH[name], context) : context;
}

export interface AnswerTokens {
  /** Token id of the letter A after the template's last word (e.g. the id of '▁A' or 'ĠA'). */
  a: number;
  b: number;
  /** The tokens themselves, as in the vocabulary. */
  aToken: string;
  bToken: string;
}

/** How many tokens of each piece an instruction keeps (see splitBudget). */
export interface PieceBudget {
  prompt: number;
  a: number;
  b: number;
}

export const DEFAULT_JUDGE_BATCH_SIZE = 8;

/** softmax([x, y])[0] = sigmoid(x - y), in double, without overflow. */
export function softmax2(x: number, y: number): number {
  const d = x - y;
  if (Number.isNaN(d)) return NaN;
  if (d >= 0) return 1 / (1 + Math.exp(-d));
  const e = Math.exp(d);
  return e / (1 + e);
}

function describeTokens(tokenizer: Tokenizer, ids: Int32Array, last: number): string {
  const tail = Array.from(ids.subarray(Math.max(0, ids.length - last)), (id) => JSON.stringify(tokenizer.idToToken(id) ?? `#${id}`));
  return `[${ids.length > last ? '..., ' : ''}${tail.join(', ')}]`;
}

/**
 * The answer tokens of a template under a tokenizer, found by encoding the (empty-filled) instruction
 * with and without " A" / " B" appended: each letter must add exactly one token at the end, leaving
 * the instruction's own tokens unchanged, and the two tokens must differ. Otherwise an Error names the
 * template, the tokenizer (by vocabulary size) and the tokens it produced.
 */
export async function findAnswerTokens(tokenizer: Tokenizer, template: ParsedJudgeTemplate): Promise<AnswerTokens> {
  const base = fillJudgeTemplate(template, '', '', '');
  const [plain, withA, withB] = await tokenizer.encodeBatch([base, `${base} A`, `${base} B`]);
  const tail = base.slice(-24);
  const label = `judge template '${template.name}' with this tokenizer (vocabulary ${tokenizer.vocabSize})`;
  const one = (ids: Int32Array, letter: string): number => {
    const prefixKept = ids.length === plain.length + 1 && plain.every((t, i) => ids[i] === t);
    if (!prefixKept) {
      throw new Error(
        `${label}: the answer " ${letter}" is not exactly one token after the instruction: ` +
          `"...${tail}" encodes as ${describeTokens(tokenizer, plain, 4)} and "...${tail} ${letter}" as ${describeTokens(tokenizer, ids, 5)}`,
      );
    }
    return ids[ids.length - 1];
  };
  const a = one(withA, 'A');
  const b = one(withB, 'B');
  if (a === b) throw new Error(`${label}: the answers " A" and " B" are the same token ${a}`);
  return { a, b, aToken: tokenizer.idToToken(a) ?? `#${a}`, bToken: tokenizer.idToToken(b) ?? `#${b}` };
}

/**
 * Splits `available` tokens among the prompt and the two responses of an instruction that does not
 * fit (lengths in tokens, each piece encoded alone). Max-min fair ("water-filling"): the largest level
 * L is found such that min(prompt, L) + min(a, L) + min(b, L) <= available; each piece keeps
 * min(length, L) tokens, so a piece shorter than its fair share stays whole and gives the rest to
 * the others, and each response keeps at least a third of the budget (or all of itself). What is
 * left (fewer tokens than the pieces being cut) goes to the prompt when it is cut; otherwise it stays
 * unused, so the two responses are always treated alike and (a, b) and (b, a) are cut the same way.
 * When everything fits, nothing is cut.
 */
export function splitBudget(lengths: PieceBudget, available: number): PieceBudget {
  const { prompt: P, a: A, b: B } = lengths;
  for (const [k, v] of Object.entries({ prompt: P, a: A, b: B, available })) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`splitBudget: ${k} is ${v}; expected a non-negative integer`);
  }
  if (P + A + B <= available) return { prompt: P, a: A, b: B };
  const used = (L: number) => Math.min(P, L) + Math.min(A, L) + Math.min(B, L);
  let lo = 0; // used(lo) <= available
  let hi = Math.max(P, A, B); // used(hi) > available
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (used(mid) <= available) lo = mid;
    else hi = mid;
  }
  const out = { prompt: Math.min(P, lo), a: Math.min(A, lo), b: Math.min(B, lo) };
  if (P > lo) out.prompt = Math.min(P, out.prompt + (available - used(lo)));
  return out;
}

function checkItems(items: JudgeItem[]): void {
  items.forEach((it, i) => {
    if (!it || typeof it.prompt !== 'string' || typeof it.a !== 'string' || typeof it.b !== 'string') {
      throw new TypeError(`Judge: items[${i}] is not {prompt: string, a: string, b: string}`);
    }
  });
}

const leadingSpace = (s: string) => /^\s*/.exec(s)![0];

export class Judge {
  readonly model: LlamaModel;
  readonly tokenizer: Tokenizer;
  readonly template: ParsedJudgeTemplate;
  readonly answerTokens: AnswerTokens;
  readonly maxLength: number;
  readonly batchSize: number;
  readonly sharePrefix: boolean;
  readonly maxCacheBytes: number;
  /** Tokens of the template filled with empty strings (the fixed text, special tokens included). */
  readonly fixedLength: number;
  private readonly columns: Int32Array;

  private constructor(
    model: LlamaModel,
    tokenizer: Tokenizer,
    template: ParsedJudgeTemplate,
    answer: AnswerTokens,
    sizes: { maxLength: number; batchSize: number; fixedLength: number; sharePrefix: boolean; maxCacheBytes: number },
  ) {
    const { maxLength, batchSize, fixedLength } = sizes;
    this.sharePrefix = sizes.sharePrefix;
    this.maxCacheBytes = sizes.maxCacheBytes;
    this.model = model;
    this.tokenizer = tokenizer;
    this.template = template;
    this.answerTokens = answer;
    this.maxLength = maxLength;
    this.batchSize = batchSize;
    this.fixedLength = fixedLength;
    this.columns = Int32Array.from([answer.a, answer.b]);
  }

  /**
   * A judge over a (frozen) model and its tokenizer. Finds the answer tokens (findAnswerTokens),
   * checks that they are in the model's vocabulary and that the template's fixed text fits maxLength.
   */
  static async create(model: LlamaModel, tokenizer: Tokenizer, opts: JudgeOptions = {}): Promise<Judge> {
    if (!(model instanceof LlamaModel)) throw new TypeError('Judge.create: model is not a LlamaModel');
    if (!(tokenizer instanceof Tokenizer)) throw new TypeError('Judge.create: tokenizer is not a Tokenizer');
    const template = resolveJudgeTemplate(opts.template);
    const maxLength = opts.maxLength ?? defaultJudgeMaxLength(opts.template, model.config.maxPositionEmbeddings);
    if (!Number.isInteger(maxLength) || maxLength < 1) throw new RangeError(`Judge.create: maxLength is ${maxLength}; expected a positive integer`);
    const batchSize = opts.batchSize ?? DEFAULT_JUDGE_BATCH_SIZE;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`Judge.create: batchSize is ${batchSize}; expected a positive integer`);
    const sharePrefix = opts.sharePrefix ?? true;
    if (typeof sharePrefix !== 'boolean') throw new TypeError(`Judge.create: sharePrefix is ${JSON.stringify(sharePrefix)}; expected true or false`);
    const maxCacheBytes = opts.maxCacheBytes ?? defaultMaxCacheBytes(model.device);
    if (!(typeof maxCacheBytes === 'number' && Number.isFinite(maxCacheBytes) && maxCacheBytes > 0)) throw new RangeError(`Judge.create: maxCacheBytes is ${String(maxCacheBytes)}; expected a number > 0`);
    const answer = await findAnswerTokens(tokenizer, template);
    const V = model.config.vocabSize;
    if (answer.a >= V || answer.b >= V) {
      throw new RangeError(`Judge.create: the answer tokens ${answer.aToken} (${answer.a}) and ${answer.bToken} (${answer.b}) of judge template '${template.name}' are not all in the model's vocabulary of ${V}; is this the model's tokenizer?`);
    }
    const fixedLength = (await tokenizer.encode(fillJudgeTemplate(template, '', '', ''))).length;
    if (fixedLength > maxLength) {
      throw new RangeError(
        `Judge.create: judge template '${template.name}' alone is ${fixedLength} tokens (its fixed text and special tokens, with an empty prompt and responses), more than maxLength ${maxLength}; no instruction can fit`,
      );
    }
    return new Judge(model, tokenizer, template, answer, { maxLength, batchSize, fixedLength, sharePrefix, maxCacheBytes });
  }

  /**
   * Token ids of the instruction for each item (the model's input; the answer token would follow).
   * An instruction of at most maxLength tokens is the whole filled template, encoded. A longer one
   * is rebuilt with its pieces cut at their own token boundaries: the prompt loses tokens from its
   * start (keeping its end), each response from its end (keeping its start), by splitBudget over
   * maxLength - fixedLength tokens; the template's fixed text and the question at the end are never
   * cut. The kept tokens are decoded back to text (a response keeps its original leading whitespace,
   * the prompt's kept tail starts at its first non-space character, and broken characters at the cuts
   * are dropped), the template refilled and encoded whole; if token merges across the cuts make it
   * still too long, the budget shrinks by the excess and the piece is rebuilt (an empty-filled
   * template always fits, Judge.create checked it).
   */
  async instructions(items: JudgeItem[]): Promise<Int32Array[]> {
    if (!Array.isArray(items)) throw new TypeError('Judge.instructions: items is not an array of {prompt, a, b}');
    checkItems(items);
    if (items.length === 0) return [];
    const out = await this.tokenizer.encodeBatch(items.map((it) => fillJudgeTemplate(this.template, it.prompt, it.a, it.b)));
    await Promise.all(
      out.map(async (ids, i) => {
        if (ids.length > this.maxLength) out[i] = await this.truncated(items[i]);
      }),
    );
    return out;
  }

  /** The instruction's token ids for one prompt and (a, b) in that order. */
  async instruction(prompt: string, a: string, b: string): Promise<Int32Array> {
    return (await this.instructions([{ prompt, a, b }]))[0];
  }

  private async truncated(item: JudgeItem): Promise<Int32Array> {
    const tok = this.tokenizer;
    const [P, A, B] = await tok.encodeBatch([item.prompt, item.a, item.b], { addSpecialTokens: false });
    let available = this.maxLength - this.fixedLength;
    for (;;) {
      const keep = splitBudget({ prompt: P.length, a: A.length, b: B.length }, available);
      const prompt = keep.prompt === P.length ? item.prompt : (await tok.decode(P.subarray(P.length - keep.prompt))).replace(/^[\s\uFFFD]+/, '');
      const head = async (ids: Int32Array, n: number, original: string) =>
        n === ids.length ? original : n === 0 ? '' : leadingSpace(original) + (await tok.decode(ids.subarray(0, n))).trimStart().replace(/\uFFFD+$/, '');
      const a = await head(A, keep.a, item.a);
      const b = await head(B, keep.b, item.b);
      const ids = await tok.encode(fillJudgeTemplate(this.template, prompt, a, b));
      if (ids.length <= this.maxLength) return ids;
      if (available === 0) {
        // Unreachable while the empty-filled template fits (checked in create); kept as a guard.
        throw new RangeError(`Judge: the instruction for judge template '${this.template.name}' is ${ids.length} tokens with nothing left of its pieces; maxLength is ${this.maxLength}`);
      }
      available = Math.max(0, available - (ids.length - this.maxLength));
    }
  }

  /**
   * pAB = softmax([l_A, l_B])[0] of each instruction's last position, in double: the model's answer
   * logits over shared prefixes (sharedLastLogits), or over packed forwards of batchSize instructions each.
   */
  private answerProbabilities(instructions: Int32Array[]): Float64Array {
    const out = new Float64Array(instructions.length);
    if (this.sharePrefix) {
      const logits = sharedLastLogits(this.model, instructions, this.columns, { maxRows: this.batchSize * this.maxLength, maxCacheBytes: this.maxCacheBytes, batchSize: this.batchSize });
      logits.forEach((l, i) => {
        out[i] = softmax2(l[0], l[1]);
      });
      return out;
    }
    for (let start = 0; start < instructions.length; start += this.batchSize) {
      const chunk = instructions.slice(start, start + this.batchSize);
      const logits = this.model.lastLogits(chunk, this.columns);
      logits.forEach((l, i) => {
        out[start + i] = softmax2(l[0], l[1]);
      });
    }
    return out;
  }

  /**
   * p(a > b) of each item with both position orders: 2 * items.length instructions, judged in packed
   * forwards of batchSize instructions.
   */
  async preferences(items: JudgeItem[]): Promise<Preference[]> {
    if (!Array.isArray(items)) throw new TypeError('Judge.preferences: items is not an array of {prompt, a, b}');
    checkItems(items);
    const both: JudgeItem[] = [];
    for (const it of items) both.push(it, { prompt: it.prompt, a: it.b, b: it.a });
    const probs = this.answerProbabilities(await this.instructions(both));
    return items.map((_, i) => {
      const pAB = probs[2 * i];
      const pBA = probs[2 * i + 1];
      return { p: (pAB + (1 - pBA)) / 2, pAB, pBA };
    });
  }

  /** p(a > b | prompt) for one pair. */
  async preference(prompt: string, a: string, b: string): Promise<Preference> {
    return (await this.preferences([{ prompt, a, b }]))[0];
  }
}
