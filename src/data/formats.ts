// Record kinds of the data layer and their normalization (zod schemas).
//
// Normalized records:
//   prompts          -> {prompt}
//   pairs, hh, tldr  -> {prompt, chosen, rejected, strength?}
//   sft              -> {prompt, response}
//
// Conventions (all kinds):
// - Prompts (and SFT responses) must be strings that are not empty and not whitespace only. The two
//   responses of a pair may be empty: the blank response "" is a real answer (a model can give it, and
//   ranked pairing scores every response against it). Text is kept verbatim (no trimming), except the
//   one leading space of TL;DR summaries (below).
// - Fields not named here are ignored (datasets carry ids, policies, notes...).
// - `strength` (pairs only) is optional: absent or null means a hard label; otherwise a finite number
//   in [0, 1], the probability that `chosen` is better than `rejected`.
//
// Anthropic HH (`hh`): records {chosen, rejected}, each a whole transcript
// "\n\nHuman: ...\n\nAssistant: ...". Each is split at its LAST "\n\nAssistant:": the prompt is
// everything up to and including that marker, the response is the rest verbatim, so it keeps its
// leading space (" Sure, ...") and prompt + response is the transcript again. This matches how the
// policy continues a prompt ending in "Assistant:" and the judge templates ("RESPONSE A:{a}", no space
// after the colon). The two prompts must be identical, else the record is malformed (field
// `rejected`). A transcript without "\n\nAssistant:" or with nothing but whitespace after the last
// one is malformed.
//
// TL;DR (`tldr`): the OpenAI summarize-from-feedback comparisons,
// {info: {post, title, subreddit}, summaries: [{text}, {text}], choice: 0|1}, or the same fields flat
// {post, title, subreddit, summaries, choice}. The prompt is the paper's
// "SUBREDDIT: r/{subreddit}\nTITLE: {title}\nPOST: {post}\nTL;DR:" (fields verbatim); chosen is
// summaries[choice].text and rejected the other one, each with its leading whitespace replaced by
// exactly one space (" text"), so prompt + response reads "TL;DR: text" whatever the source spacing.
import { z } from 'zod';

export type RecordKind = 'prompts' | 'pairs' | 'sft' | 'hh' | 'tldr';
export const RECORD_KINDS: readonly RecordKind[] = ['prompts', 'pairs', 'sft', 'hh', 'tldr'];

export interface PromptRecord {
  prompt: string;
}
export interface PairRecord {
  prompt: string;
  chosen: string;
  rejected: string;
  /** Soft label: probability in [0, 1] that `chosen` is better; absent means 1 (a hard label). */
  strength?: number;
}
export interface SftRecord {
  prompt: string;
  response: string;
}
export interface RecordOf {
  prompts: PromptRecord;
  pairs: PairRecord;
  sft: SftRecord;
  hh: PairRecord;
  tldr: PairRecord;
}

/** What is wrong with one record: the field (dotted path, '' for the record itself) and why. */
export interface RecordProblem {
  field: string;
  message: string;
}
export type Normalized<R> = { ok: true; record: R } | { ok: false; problem: RecordProblem };

const text = z
  .string({ required_error: 'is missing', invalid_type_error: 'expected a string' })
  .refine((s) => s.trim() !== '', { message: 'must not be empty' });

/** A response of a pair: any string, the blank response included. */
const pairResponse = z.string({ required_error: 'is missing', invalid_type_error: 'expected a string' });

const strength = z
  .number({ invalid_type_error: 'expected a number in [0, 1] or null' })
  .refine((x) => Number.isFinite(x) && x >= 0 && x <= 1, { message: 'must be a finite number in [0, 1]' })
  .nullish();

const promptSchema = z.object({ prompt: text });
const pairSchema = z.object({ prompt: text, chosen: pairResponse, rejected: pairResponse, strength });
const sftSchema = z.object({ prompt: text, response: text });
const hhSchema = z.object({ chosen: text, rejected: text });
const summaries = z
  .array(z.object({ text }, { invalid_type_error: 'expected an object {text}' }), {
    required_error: 'is missing',
    invalid_type_error: 'expected an array of two {text}',
  })
  .length(2, { message: 'must have exactly two summaries' });
const choice = z
  .number({ required_error: 'is missing', invalid_type_error: 'expected 0 or 1' })
  .refine((c) => c === 0 || c === 1, { message: 'must be 0 or 1' });
const postFields = { post: text, title: text, subreddit: text };
const tldrNestedSchema = z.object({
  info: z.object(postFields, { invalid_type_error: 'expected an object {post, title, subreddit}' }),
  summaries,
  choice,
});
const tldrFlatSchema = z.object({ ...postFields, summaries, choice });

/** The marker an HH transcript is split at (its last occurrence). */
export const HH_ASSISTANT = '\n\nAssistant:';

/** Splits an HH transcript at its last "\n\nAssistant:" (kept in the prompt); undefined without one. */
export function splitHHTranscript(transcript: string): { prompt: string; response: string } | undefined {
  const at = transcript.lastIndexOf(HH_ASSISTANT);
  if (at < 0) return undefined;
  const end = at + HH_ASSISTANT.length;
  return { prompt: transcript.slice(0, end), response: transcript.slice(end) };
}

/** The paper's TL;DR prompt: "SUBREDDIT: r/{subreddit}\nTITLE: {title}\nPOST: {post}\nTL;DR:". */
export function tldrPrompt(post: { subreddit: string; title: string; post: string }): string {
  return `SUBREDDIT: r/${post.subreddit}\nTITLE: ${post.title}\nPOST: ${post.post}\nTL;DR:`;
}

/** A TL;DR summary as a response: leading whitespace replaced by exactly one space. */
export function tldrResponse(summary: string): string {
  return ' ' + summary.replace(/^\s+/, '');
}

function firstProblem(error: z.ZodError): RecordProblem {
  const issue = error.issues[0];
  const field = issue.path.join('.');
  let message = issue.message;
  if (issue.code === 'invalid_type') {
    if (issue.received === 'undefined') message = 'is missing';
    else if (issue.received === 'nan') message = 'must be a finite number, got NaN';
    else message = `${issue.message}, got ${issue.received}`;
  }
  return { field, message };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function parse<T>(schema: z.ZodType<T>, value: unknown): Normalized<T> {
  const r = schema.safeParse(value);
  return r.success ? { ok: true, record: r.data } : { ok: false, problem: firstProblem(r.error) };
}

/**
 * Checks one raw record (a parsed JSON object or a Parquet row) of the given kind and returns the
 * normalized record, or the first problem found (field and reason).
 */
export function normalizeRecord<K extends RecordKind>(kind: K, value: unknown): Normalized<RecordOf[K]>;
export function normalizeRecord(kind: RecordKind, value: unknown): Normalized<PromptRecord | PairRecord | SftRecord> {
  if (!isObject(value)) {
    const got = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
    return { ok: false, problem: { field: '', message: `expected an object, got ${got}` } };
  }
  switch (kind) {
    case 'prompts': {
      const r = parse(promptSchema, value);
      return r.ok ? { ok: true, record: { prompt: r.record.prompt } } : r;
    }
    case 'sft': {
      const r = parse(sftSchema, value);
      return r.ok ? { ok: true, record: { prompt: r.record.prompt, response: r.record.response } } : r;
    }
    case 'pairs': {
      const r = parse(pairSchema, value);
      if (!r.ok) return r;
      const { prompt, chosen, rejected } = r.record;
      const s = r.record.strength;
      return { ok: true, record: s === null || s === undefined ? { prompt, chosen, rejected } : { prompt, chosen, rejected, strength: s } };
    }
    case 'hh': {
      const r = parse(hhSchema, value);
      if (!r.ok) return r;
      const c = splitHHTranscript(r.record.chosen);
      const j = splitHHTranscript(r.record.rejected);
      for (const [field, split] of [['chosen', c], ['rejected', j]] as const) {
        if (!split) return { ok: false, problem: { field, message: 'has no "\\n\\nAssistant:" turn to split at' } };
        if (split.response.trim() === '') return { ok: false, problem: { field, message: 'the last "\\n\\nAssistant:" turn is empty' } };
      }
      if (c!.prompt !== j!.prompt) {
        return { ok: false, problem: { field: 'rejected', message: 'the dialogue before the last "\\n\\nAssistant:" differs from that of chosen (the two prompts must agree)' } };
      }
      return { ok: true, record: { prompt: c!.prompt, chosen: c!.response, rejected: j!.response } };
    }
    case 'tldr': {
      const nested = 'info' in value;
      const r = nested ? parse(tldrNestedSchema, value) : parse(tldrFlatSchema, value);
      if (!r.ok) return r;
      const post = 'info' in r.record ? r.record.info : r.record;
      const { summaries: s, choice: k } = r.record;
      return { ok: true, record: { prompt: tldrPrompt(post), chosen: tldrResponse(s[k].text), rejected: tldrResponse(s[1 - k].text) } };
    }
    default:
      throw new RangeError(`record kind '${String(kind)}' is not known; expected one of ${RECORD_KINDS.join(', ')}`);
  }
}

/** The top-level fields (Parquet columns) a kind reads. */
export const KIND_FIELDS: Readonly<Record<RecordKind, readonly string[]>> = {
  prompts: ['prompt'],
  pairs: ['prompt', 'chosen', 'rejected', 'strength'],
  sft: ['prompt', 'response'],
  hh: ['chosen', 'rejected'],
  tldr: ['info', 'post', 'title', 'subreddit', 'summaries', 'choice'],
};
