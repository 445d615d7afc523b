// The demo task's tokenizer: a small BPE (vocabulary < 512) trained on generated task text and the
// judge's HH instructions, written as a Hugging Face tokenizer.json + tokenizer_config.json that
// src/model/tokenizer.ts loads (the Hugging Face format; Python `transformers` was not tried here).
//
// Why our own BPE trainer: the `tokenizers` npm package (0.23) exposes Tokenizer.train(files) only
// with the model's default trainer (vocab_size 30000, no special tokens, no control over ids), so
// the merges are learned here (plain BPE on word counts, ties broken by the pair's text, so the
// result is a pure function of the seed), and the package builds and checks the tokenizer from
// them (pre-tokenizer for the training words, Tokenizer.fromString to check the written JSON).
//
// Layout, Llama-like:
//   ids 0, 1, 2        <unk>, <s> (BOS), </s> (EOS): special added tokens
//   ids 3 ...          the alphabet: "▁" (a space), "\n", and the printable ASCII characters
//   then               one token per learned merge, in merge order
//   pre-tokenizer      each digit with its optional preceding space isolated (" 7" -> "▁7", "8,6"
//                      -> "8", ",", "6"), newlines isolated, then Metaspace (spaces become "▁",
//                      split before each "▁", nothing prepended), so a word never merges with the
//                      next one, a number is one token per digit, and " A" after "RESPONSE" is the
//                      single token "▁A"
//   post-processor     TemplateProcessing "<s> $A" (BOS first, as Llama)
//   decoder            Metaspace ("▁" back to " ", nothing stripped): decode(encode(text)) === text
//                      for any text of the alphabet (e.g. all task text); other characters are <unk>.
import * as fs from 'fs';
import * as path from 'path';
import { Tokenizer as HfTokenizer } from 'tokenizers';
import { fillJudgeTemplate, resolveJudgeTemplate } from '../judge/templates';
import { makePreferencePairs, makeSftExamples } from './data';
import { checkSeed } from '../util/random';
import { bestResponse, makePrompts } from './task';

export const UNK_TOKEN = '<unk>';
export const BOS_TOKEN = '<s>';
export const EOS_TOKEN = '</s>';
export const SPECIAL_TOKENS = [UNK_TOKEN, BOS_TOKEN, EOS_TOKEN] as const;
export const SPACE_MARK = '\u2581'; // ▁

/** "▁", "\n" and the printable ASCII characters other than the space. */
export function demoAlphabet(): string[] {
  const out = [SPACE_MARK, '\n'];
  for (let c = 0x21; c <= 0x7e; c++) out.push(String.fromCharCode(c));
  return out;
}

export interface DemoTokenizerOptions {
  /** Largest vocabulary, special tokens included (< 512 keeps the demo model small). Default 384. */
  vocabSize?: number;
  /** A pair must occur at least this often in the corpus to be merged. Default 2. */
  minFrequency?: number;
  /** Task examples generated for the corpus (each of prompts, demonstrations, judge instructions). Default 1000. */
  corpusSize?: number;
  /** Longest context the tokenizer config advertises (model_max_length). Default 256. */
  modelMaxLength?: number;
}

const DEFAULTS: Required<DemoTokenizerOptions> = { vocabSize: 384, minFrequency: 2, corpusSize: 1000, modelMaxLength: 256 };

/** The corpus the merges are learned from: task text and HH judge instructions with their answers. */
export function demoCorpus(seed: number, corpusSize = DEFAULTS.corpusSize): string[] {
  checkSeed(seed, 'demoCorpus');
  const texts: string[] = [];
  for (const p of makePrompts(corpusSize, seed)) texts.push(p + bestResponse(p));
  for (const e of makeSftExamples(corpusSize, seed)) texts.push(e.prompt + e.response);
  const hh = resolveJudgeTemplate('hh');
  makePreferencePairs(corpusSize, seed).forEach((pair, i) => {
    // Half the instructions show the chosen response first; the answer names the chosen side.
    const first = i % 2 === 0;
    texts.push(fillJudgeTemplate(hh, pair.prompt, first ? pair.chosen : pair.rejected, first ? pair.rejected : pair.chosen) + (first ? ' A' : ' B'));
  });
  return texts;
}


/**
 * Plain BPE on word counts: repeatedly merge the most frequent adjacent pair of symbols (ties: the
 * smaller left symbol, then the smaller right one, by code units) until the vocabulary has
 * maxVocab - reserved tokens or no pair occurs minFrequency times. Returns the merges in order.
 */
export function learnMerges(wordCounts: Map<string, number>, alphabet: readonly string[], maxMerges: number, minFrequency: number): [string, string][] {
  const known = new Set(alphabet);
  const words: { symbols: string[]; count: number }[] = [];
  for (const [w, count] of [...wordCounts.entries()].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))) {
    const symbols = Array.from(w);
    if (symbols.every((s) => known.has(s))) words.push({ symbols, count });
  }
  const merges: [string, string][] = [];
  const vocab = new Set(alphabet);
  let added = 0;
  while (added < maxMerges) {
    const counts = new Map<string, { l: string; r: string; n: number }>();
    for (const { symbols, count } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = symbols[i] + '\u0000' + symbols[i + 1];
        const e = counts.get(key);
        if (e) e.n += count;
        else counts.set(key, { l: symbols[i], r: symbols[i + 1], n: count });
      }
    }
    let best: { l: string; r: string; n: number } | undefined;
    for (const e of counts.values()) {
      if (!best || e.n > best.n || (e.n === best.n && (e.l < best.l || (e.l === best.l && e.r < best.r)))) best = e;
    }
    if (!best || best.n < minFrequency) break;
    const { l, r } = best;
    const merged = l + r;
    merges.push([l, r]);
    if (!vocab.has(merged)) {
      vocab.add(merged);
      added++;
    }
    for (const w of words) {
      const s = w.symbols;
      const out: string[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === l && s[i + 1] === r) {
          out.push(merged);
          i++;
        } else out.push(s[i]);
      }
      w.symbols = out;
    }
  }
  return merges;
}

/** A tokenizer.json object with the demo's added tokens, post-processor, decoder and a BPE model. */
function tokenizerJson(preTokenizer: object, vocab: Record<string, number>, merges: [string, string][]): Record<string, unknown> {
  const added = SPECIAL_TOKENS.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: preTokenizer,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: BOS_TOKEN, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: BOS_TOKEN, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: BOS_TOKEN, type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { [BOS_TOKEN]: { id: BOS_TOKEN, ids: [vocab[BOS_TOKEN]], tokens: [BOS_TOKEN] } },
    },
    decoder: { type: 'Metaspace', replacement: SPACE_MARK, prepend_scheme: 'never', split: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: UNK_TOKEN,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

/** The tokenizer.json object (Hugging Face format) and the tokenizer_config.json object for a seed. */
export function buildDemoTokenizer(seed: number, opts: DemoTokenizerOptions = {}): { tokenizer: Record<string, unknown>; config: Record<string, unknown> } {
  checkSeed(seed, 'buildDemoTokenizer');
  const o = { ...DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) } as Required<DemoTokenizerOptions>;
  const alphabet = demoAlphabet();
  const base = SPECIAL_TOKENS.length + alphabet.length;
  if (!Number.isInteger(o.vocabSize) || o.vocabSize < base) throw new RangeError(`writeDemoTokenizer: vocabSize is ${o.vocabSize}; expected an integer >= ${base} (special tokens and alphabet)`);
  if (!Number.isInteger(o.minFrequency) || o.minFrequency < 1) throw new RangeError(`writeDemoTokenizer: minFrequency is ${o.minFrequency}; expected an integer >= 1`);
  if (!Number.isInteger(o.corpusSize) || o.corpusSize < 1) throw new RangeError(`writeDemoTokenizer: corpusSize is ${o.corpusSize}; expected an integer >= 1`);

  const preTokenizer = {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: ' ?[0-9]' }, behavior: 'Isolated', invert: false },
      { type: 'Split', pattern: { String: '\n' }, behavior: 'Isolated', invert: false },
      { type: 'Metaspace', replacement: SPACE_MARK, prepend_scheme: 'never', split: true },
    ],
  };
  // The training words come from the package's own pre-tokenizer (the one the JSON describes).
  const base0: Record<string, number> = {};
  [...SPECIAL_TOKENS, ...alphabet].forEach((t, i) => (base0[t] = i));
  const pre = HfTokenizer.fromString(JSON.stringify(tokenizerJson(preTokenizer, base0, []))).getPreTokenizer();
  if (!pre) throw new Error('buildDemoTokenizer: the tokenizers package lost the pre-tokenizer');
  const wordCounts = new Map<string, number>();
  for (const text of demoCorpus(seed, o.corpusSize)) {
    for (const [word] of pre.preTokenizeString(text)) wordCounts.set(word, (wordCounts.get(word) ?? 0) + 1);
  }
  const merges = learnMerges(wordCounts, alphabet, o.vocabSize - base, o.minFrequency);

  const vocab: Record<string, number> = {};
  let next = 0;
  for (const t of [...SPECIAL_TOKENS, ...alphabet]) vocab[t] = next++;
  for (const [l, r] of merges) if (!(l + r in vocab)) vocab[l + r] = next++;

  const tokenizer = tokenizerJson(preTokenizer, vocab, merges);
  const config = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: BOS_TOKEN,
    eos_token: EOS_TOKEN,
    unk_token: UNK_TOKEN,
    add_bos_token: true,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    model_max_length: o.modelMaxLength,
  };
  return { tokenizer, config };
}

/**
 * tokenizer.json's text: JSON with two-space indents, the vocabulary in id order (JSON.stringify
 * would put integer-like keys such as "0".."9" first).
 */
function serialize(tokenizer: Record<string, unknown>): string {
  const model = tokenizer.model as { vocab: Record<string, number> };
  // JSON.stringify writes a unique marker string where the vocabulary goes; the marker is then
  // swapped for the vocabulary written in id order.
  const vocabSlot = '\u0000vocab\u0000';
  const text = JSON.stringify({ ...tokenizer, model: { ...model, vocab: vocabSlot } }, null, 2);
  const entries = Object.entries(model.vocab).sort((x, y) => x[1] - y[1]);
  const vocab = `{\n${entries.map(([t, id]) => `      ${JSON.stringify(t)}: ${id}`).join(',\n')}\n    }`;
  return text.replace(JSON.stringify(vocabSlot), () => vocab) + '\n';
}

/**
 * Writes dir/tokenizer.json and dir/tokenizer_config.json for the demo task (creating dir). The
 * same seed and options give the same bytes. The tokenizer is checked by loading it with the
 * `tokenizers` package before anything is written.
 */
export async function writeDemoTokenizer(dir: string, seed: number, opts: DemoTokenizerOptions = {}): Promise<void> {
  if (typeof dir !== 'string' || dir === '') throw new TypeError('writeDemoTokenizer: dir must be a non-empty path');
  const { tokenizer, config } = buildDemoTokenizer(seed, opts);
  const json = serialize(tokenizer);
  let hf: HfTokenizer;
  try {
    hf = HfTokenizer.fromString(json);
  } catch (e) {
    throw new Error(`writeDemoTokenizer: the tokenizers package rejects the built tokenizer.json: ${(e as Error).message}`);
  }
  const bos = hf.tokenToId(BOS_TOKEN);
  if (bos !== 1 || hf.tokenToId(EOS_TOKEN) !== 2 || hf.tokenToId(UNK_TOKEN) !== 0) throw new Error('writeDemoTokenizer: special token ids are not <unk> 0, <s> 1, </s> 2');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), json);
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config, null, 2) + '\n');
}

