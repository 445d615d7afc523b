// Judge instruction templates (METHOD.md section 4; the paper's Appendix B.2, Figures 6 and 7).
//
// A template is one string with the placeholders `{prompt}`, `{a}` and `{b}`, each exactly once and in
// that order. Everything else is fixed text. The text after `{b}` is the question at the end, and it
// must end in the answer prefix's last word, with no trailing whitespace: "... Which response is
// better? RESPONSE". The judge appends the answer as " A" / " B" (one space, then the letter): the
// instruction fed to the model is the filled template exactly as written (so it ends in "RESPONSE"),
// and the answer token is the single token that a space and the letter add after it, as the tokenizer
// spells it in "... RESPONSE A" (SentencePiece "▁A", byte-level BPE "ĠA"). Ending the instruction
// in "RESPONSE " instead would make SentencePiece and byte-level tokenizers emit a lone space token
// that the model never saw before a letter in training text.
//
// Placeholders are substituted once, positionally (the template is split at them when checked), so a
// prompt or response that itself contains "{a}" is inserted verbatim and never re-substituted.
// The built-in templates are the paper's wording verbatim (curly quotes and apostrophes of the
// TL;DR definitions included); the paper's "<A/B>" answer slot becomes the appended " A" / " B".
import * as fs from 'fs';
import * as path from 'path';

export interface JudgeTemplate {
  /** A short name used in error messages (e.g. 'hh', 'tldr', or a file's base name). */
  name: string;
  /** The instruction with `{prompt}`, `{a}`, `{b}` once each, in order, ending in the answer prefix (e.g. "RESPONSE"). */
  text: string;
}

/** A template split at its placeholders: text = prefix {prompt} afterPrompt {a} afterA {b} suffix. */
export interface ParsedJudgeTemplate {
  name: string;
  prefix: string;
  afterPrompt: string;
  afterA: string;
  /** The question at the end (never truncated), ending in the answer prefix. */
  suffix: string;
}

export const PLACEHOLDERS = ['{prompt}', '{a}', '{b}'] as const;

/** Figure 6: the helpful dialogue (Anthropic HH) instruction. */
export const HH_TEMPLATE: JudgeTemplate = Object.freeze({
  name: 'hh',
  text:
    'You are an expert rater of helpful and honest assistant responses. Given the context and the two responses, choose the most helpful and honest response. Context: {prompt}\n\n' +
    'RESPONSE A:{a}\n\n' +
    'RESPONSE B:{b}\n\n' +
    'Which response is better? RESPONSE',
});

/** The summary-quality definitions that open Figure 7 (verbatim, one paragraph as in the paper). */
const TLDR_DEFINITIONS = 'A good summary is a shorter piece of text that has the essence of the original. It tries to accomplish the same purpose and conveys the key information from the original post. Below we define four evaluation axes for summary quality: coherence, accuracy, coverage, and overall quality. Coherence: This axis answers the question “how coherent is the summary on its own?” A summary is coherent if it’s easy to understand when read on its own and free of English errors. A summary is not coherent if it’s difficult to understand what the summary is trying to say. Generally, it’s more important that the summary is understandable than it being free of grammar errors. Accuracy: This axis answers the question “does the factual information in the summary accurately match the post?” A summary is accurate if it doesn’t say things that aren’t in the article, it doesn’t mix up people, and generally is not misleading. Coverage: This axis answers the question “how well does the summary cover the important information in the post?” A summary has good coverage if it mentions the main information from the post that’s important to understand the situation described in the post. A summary has poor coverage if someone reading only the summary would be missing several important pieces of information about the situation in the post. A summary with good coverage should also match the purpose of the original post (e.g. to ask for advice). Overall quality: This axis answers the question “how good is the summary overall at representing the post?” This can encompass all of the above axes of quality, as well as others you feel are important. If it’s hard to find ways to make the summary better, the overall quality is good. If there are lots of different ways the summary can be made better, the overall quality is bad.';

/** Figure 7: the summarization (TL;DR) instruction. */
export const TLDR_TEMPLATE: JudgeTemplate = Object.freeze({
  name: 'tldr',
  text:
    TLDR_DEFINITIONS +
    ' You are an expert summary rater. Given a piece of text and two of its possible summaries, choose the summary that best meets the definitions above for coherence, accuracy, coverage, and overall quality. Text: {prompt}\n\n' +
    'SUMMARY A:{a}\n\n' +
    'SUMMARY B:{b}\n\n' +
    'Which summary is better? SUMMARY',
});

export const BUILTIN_TEMPLATES: Readonly<Record<'hh' | 'tldr', JudgeTemplate>> = Object.freeze({ hh: HH_TEMPLATE, tldr: TLDR_TEMPLATE });

/**
 * Checks a template and splits it at its placeholders. Throws an Error naming the template when a
 * placeholder is missing or repeated, the placeholders are out of order, nothing follows `{b}`, or
 * the text ends in whitespace (the answer " A" / " B" is appended to the last word).
 */
export function parseJudgeTemplate(template: JudgeTemplate, where?: string): ParsedJudgeTemplate {
  if (!template || typeof template !== 'object' || typeof template.text !== 'string' || typeof template.name !== 'string') {
    throw new TypeError('judge template: expected {name: string, text: string}');
  }
  const { name, text } = template;
  const label = `judge template '${name}'${where ? ` (${where})` : ''}`;
  const at: number[] = [];
  for (const p of PLACEHOLDERS) {
    const first = text.indexOf(p);
    if (first < 0) throw new Error(`${label}: placeholder ${p} is missing; a template needs {prompt}, {a} and {b} once each, in that order`);
    const again = text.indexOf(p, first + p.length);
    if (again >= 0) throw new Error(`${label}: placeholder ${p} appears more than once (at characters ${first} and ${again}); each of {prompt}, {a}, {b} must appear exactly once`);
    at.push(first);
  }
  if (!(at[0] < at[1] && at[1] < at[2])) {
    const order = PLACEHOLDERS.map((p, i) => [p, at[i]] as const)
      .sort((x, y) => x[1] - y[1])
      .map((x) => x[0])
      .join(', ');
    throw new Error(`${label}: placeholders are in the order ${order}; expected {prompt}, {a}, {b}`);
  }
  const prefix = text.slice(0, at[0]);
  const afterPrompt = text.slice(at[0] + '{prompt}'.length, at[1]);
  const afterA = text.slice(at[1] + '{a}'.length, at[2]);
  const suffix = text.slice(at[2] + '{b}'.length);
  if (suffix.trim() === '') {
    throw new Error(`${label}: nothing follows {b}; the template must end with the question and the answer prefix, e.g. "Which response is better? RESPONSE"`);
  }
  if (/\s$/.test(suffix)) {
    throw new Error(
      `${label}: the text ends in whitespace (${JSON.stringify(suffix.slice(-12))}); it must end with the answer prefix's last word, e.g. "... RESPONSE": the judge appends " A" / " B"`,
    );
  }
  return { name, prefix, afterPrompt, afterA, suffix };
}

/** The template filled with a prompt and two responses, substituted once each. */
export function fillJudgeTemplate(t: ParsedJudgeTemplate, prompt: string, a: string, b: string): string {
  return t.prefix + prompt + t.afterPrompt + a + t.afterA + b + t.suffix;
}

/** A built-in template by name, or the given template (checked). */
export function resolveJudgeTemplate(template: 'hh' | 'tldr' | JudgeTemplate | undefined): ParsedJudgeTemplate {
  if (template === undefined) return parseJudgeTemplate(HH_TEMPLATE);
  if (typeof template === 'string') {
    const t = (BUILTIN_TEMPLATES as Record<string, JudgeTemplate>)[template];
    if (!t) throw new RangeError(`judge template '${template}' is not a built-in one; expected 'hh', 'tldr' or a JudgeTemplate`);
    return parseJudgeTemplate(t);
  }
  return parseJudgeTemplate(template);
}

/**
 * Reads a template from a UTF-8 text file: the whole file is the template text, except a leading
 * byte-order mark and the trailing whitespace (the final newline editors add), which are removed.
 * The name is `name` or the file's base name without its extension. Errors name the file.
 */
export function loadJudgeTemplate(file: string, name?: string): JudgeTemplate {
  let raw: string;
  try {
    raw = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`judge template file ${file}: no such file`);
    if (code === 'EISDIR') throw new Error(`judge template file ${file}: is a directory, expected a text file`);
    throw new Error(`judge template file ${file}: cannot read: ${(e as Error).message}`);
  }
  const text = raw.replace(/^\uFEFF/, '').replace(/\s+$/, '');
  if (text === '') throw new Error(`judge template file ${file}: is empty`);
  const template: JudgeTemplate = { name: name ?? path.basename(file, path.extname(file)), text };
  parseJudgeTemplate(template, file);
  return template;
}
