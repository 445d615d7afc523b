// Tokenizer: a thin wrapper over the Hugging Face `tokenizers` package (Rust, prebuilt Node-API
// binaries) reading a folder's tokenizer.json, with the BOS / EOS ids of tokenizer_config.json when
// present. The package's encode and decode run on its thread pool and return promises, so these do
// too.
import * as fs from 'fs';
import * as path from 'path';
import { Tokenizer as HfTokenizer } from 'tokenizers';

export interface EncodeOptions {
  /** Add the special tokens of the tokenizer's post-processor (Llama: BOS). Default true. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Leave special tokens (BOS, EOS, ...) out of the text. Default true. */
  skipSpecialTokens?: boolean;
}

interface AddedToken {
  id: number;
  content: string;
  special?: boolean;
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `${file}: no such file` : `${file}: cannot read: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON: ${(e as Error).message}`);
  }
}

/** A token given in tokenizer_config.json: a string or an AddedToken-like {content}. */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

/**
 * The most tokens a tokenizer.json may pad or truncate to: far above any model's context, far below
 * what would exhaust memory (the Rust binding aborts the process when an allocation fails).
 */
export const MAX_TOKENIZER_LENGTH = 1 << 20;

/**
 * Refuses padding and truncation settings that would make the binding allocate absurd amounts
 * (padding fixed at 1e8 tokens aborted the process), before the binding reads the file.
 */
function checkLengths(file: string, json: Record<string, unknown>): void {
  const within = (name: string, v: unknown, min: number, nullable: boolean) => {
    if (v === null || v === undefined) {
      if (nullable) return;
    } else if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= MAX_TOKENIZER_LENGTH) return;
    throw new RangeError(`${file}: ${name} is ${JSON.stringify(v)}; expected an integer in [${min}, ${MAX_TOKENIZER_LENGTH}]${nullable ? ' or null' : ''}`);
  };
  const padding = json.padding as Record<string, unknown> | null | undefined;
  if (padding !== null && padding !== undefined) {
    if (typeof padding !== 'object') throw new TypeError(`${file}: padding is ${JSON.stringify(padding)}; expected an object or null`);
    const strategy = padding.strategy as unknown;
    if (strategy !== null && typeof strategy === 'object' && 'Fixed' in (strategy as object)) {
      within('padding.strategy.Fixed', (strategy as { Fixed: unknown }).Fixed, 0, false);
    }
    within('padding.pad_to_multiple_of', padding.pad_to_multiple_of, 1, true);
  }
  const truncation = json.truncation as Record<string, unknown> | null | undefined;
  if (truncation !== null && truncation !== undefined) {
    if (typeof truncation !== 'object') throw new TypeError(`${file}: truncation is ${JSON.stringify(truncation)}; expected an object or null`);
    within('truncation.max_length', truncation.max_length, 0, false);
    within('truncation.stride', truncation.stride ?? 0, 0, false);
  }
}

const BOS_NAMES = ['<s>', '<|begin_of_text|>', '<bos>', '<|startoftext|>', '<|endoftext|>'];
const EOS_NAMES = ['</s>', '<|end_of_text|>', '<|eot_id|>', '<eos>', '<|endoftext|>', '<|im_end|>'];

export class Tokenizer {
  private readonly tok: HfTokenizer;
  /** The id of the beginning-of-sequence token, if the tokenizer has one. */
  readonly bosTokenId: number | undefined;
  /** The id of the end-of-sequence token, if the tokenizer has one. */
  readonly eosTokenId: number | undefined;
  /** Vocabulary size, added tokens included. */
  readonly vocabSize: number;

  private constructor(tok: HfTokenizer, bos: number | undefined, eos: number | undefined) {
    this.tok = tok;
    this.bosTokenId = bos;
    this.eosTokenId = eos;
    this.vocabSize = tok.getVocabSize(true);
  }

  /**
   * Reads dir/tokenizer.json; BOS / EOS come from dir/tokenizer_config.json (bos_token, eos_token)
   * when present, else from the special added tokens of tokenizer.json with the usual names.
   */
  static async load(dir: string): Promise<Tokenizer> {
    const file = path.join(dir, 'tokenizer.json');
    const json = readJson(file) as { added_tokens?: AddedToken[] };
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new TypeError(`${file}: expected a JSON object`);
    checkLengths(file, json as Record<string, unknown>);
    let tok: HfTokenizer;
    try {
      tok = HfTokenizer.fromFile(file);
    } catch (e) {
      throw new Error(`${file}: not a tokenizer the tokenizers package reads: ${(e as Error).message}`);
    }
    const id = (t: string | undefined) => (t === undefined ? undefined : (tok.tokenToId(t) ?? undefined));
    let bos: number | undefined;
    let eos: number | undefined;
    const configFile = path.join(dir, 'tokenizer_config.json');
    if (fs.existsSync(configFile)) {
      const cfg = readJson(configFile) as Record<string, unknown>;
      if (cfg && typeof cfg === 'object') {
        const b = tokenContent(cfg.bos_token);
        const e = tokenContent(cfg.eos_token);
        bos = id(b);
        eos = id(e);
        if (b !== undefined && bos === undefined) throw new Error(`${configFile}: bos_token ${JSON.stringify(b)} is not in ${file}`);
        if (e !== undefined && eos === undefined) throw new Error(`${configFile}: eos_token ${JSON.stringify(e)} is not in ${file}`);
      }
    }
    const special = (json.added_tokens ?? []).filter((t) => t.special);
    const find = (names: string[]) => names.map((n) => special.find((t) => t.content === n)).find((t) => t !== undefined)?.id;
    bos ??= find(BOS_NAMES);
    eos ??= find(EOS_NAMES);
    return new Tokenizer(tok, bos, eos);
  }

  /** Token ids of `text`. */
  async encode(text: string, opts: EncodeOptions = {}): Promise<Int32Array> {
    if (typeof text !== 'string') throw new TypeError('Tokenizer.encode: text must be a string');
    const enc = await this.tok.encode(text, null, { addSpecialTokens: opts.addSpecialTokens ?? true });
    return Int32Array.from(enc.getIds());
  }

  /** Token ids of each text (encoded in parallel by the native pool). */
  async encodeBatch(texts: string[], opts: EncodeOptions = {}): Promise<Int32Array[]> {
    if (!Array.isArray(texts) || texts.some((t) => typeof t !== 'string')) throw new TypeError('Tokenizer.encodeBatch: texts must be an array of strings');
    const encs = await this.tok.encodeBatch(texts, { addSpecialTokens: opts.addSpecialTokens ?? true });
    return encs.map((e) => Int32Array.from(e.getIds()));
  }

  /** The text of token ids. */
  async decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): Promise<string> {
    const list = Array.from(ids);
    for (const i of list) {
      if (!Number.isInteger(i) || i < 0 || i >= this.vocabSize) throw new RangeError(`Tokenizer.decode: id ${i} is not in [0, ${this.vocabSize})`);
    }
    return this.tok.decode(list, opts.skipSpecialTokens ?? true);
  }

  /** The text of each list of token ids (decoded in parallel by the native pool). */
  async decodeBatch(ids: ArrayLike<number>[], opts: DecodeOptions = {}): Promise<string[]> {
    const lists = ids.map((l) => Array.from(l));
    for (const list of lists) {
      for (const i of list) {
        if (!Number.isInteger(i) || i < 0 || i >= this.vocabSize) throw new RangeError(`Tokenizer.decodeBatch: id ${i} is not in [0, ${this.vocabSize})`);
      }
    }
    if (lists.length === 0) return [];
    return this.tok.decodeBatch(lists, opts.skipSpecialTokens ?? true);
  }

  /** The id of a token (as in the vocabulary, e.g. '▁A'), or undefined. */
  tokenToId(token: string): number | undefined {
    return this.tok.tokenToId(token) ?? undefined;
  }

  /** The token of an id, or undefined. */
  idToToken(id: number): string | undefined {
    return this.tok.idToToken(id) ?? undefined;
  }
}
