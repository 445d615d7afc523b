// tokenizer.json padding and truncation settings that would make the tokenizers binding allocate
// absurd amounts are refused by Tokenizer.load before the binding reads the file (issue 14: padding
// fixed at 1e8 tokens aborted the process inside the Rust binding, which cannot be caught).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { MAX_TOKENIZER_LENGTH, Tokenizer } from '../src/model/tokenizer';
import { writeByteLevelTokenizer } from './helpers/byteTokenizer';

let root: string;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-tokenizer-limits-'));
});
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

/** A tiny tokenizer folder whose tokenizer.json has `patch` merged in. */
function tokenizerWith(name: string, patch: Record<string, unknown>): string {
  const dir = path.join(root, name);
  writeByteLevelTokenizer(dir, []);
  const file = path.join(dir, 'tokenizer.json');
  fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), ...patch }));
  return dir;
}

const padding = (strategy: unknown, padToMultipleOf: unknown = null) => ({
  padding: { strategy, direction: 'Right', pad_to_multiple_of: padToMultipleOf, pad_id: 0, pad_type_id: 0, pad_token: 'a' },
});
const truncation = (maxLength: unknown, stride = 0) => ({ truncation: { direction: 'Right', max_length: maxLength, strategy: 'LongestFirst', stride } });

describe('Tokenizer.load refuses absurd padding and truncation', () => {
  it('padding fixed at 1e8 tokens is a RangeError naming padding.strategy.Fixed', async () => {
    const dir = tokenizerWith('fixed', padding({ Fixed: 1e8 }));
    await expect(Tokenizer.load(dir)).rejects.toThrow(/tokenizer\.json: padding\.strategy\.Fixed is 100000000; expected an integer in \[0, 1048576\]/);
  });

  it('padding to a multiple of 1e9 is a RangeError naming padding.pad_to_multiple_of', async () => {
    const dir = tokenizerWith('multiple', padding('BatchLongest', 1e9));
    await expect(Tokenizer.load(dir)).rejects.toThrow(/padding\.pad_to_multiple_of is 1000000000/);
  });

  it('truncation at 1e12 tokens is a RangeError naming truncation.max_length', async () => {
    const dir = tokenizerWith('truncation', truncation(1e12));
    await expect(Tokenizer.load(dir)).rejects.toThrow(/truncation\.max_length is 1000000000000/);
  });

  it('a negative truncation stride is a RangeError naming truncation.stride', async () => {
    const dir = tokenizerWith('stride', truncation(8, -1));
    await expect(Tokenizer.load(dir)).rejects.toThrow(/truncation\.stride is -1/);
  });

  it('sensible padding and truncation load and apply', async () => {
    const dir = tokenizerWith('sensible', { ...padding({ Fixed: 6 }), ...truncation(MAX_TOKENIZER_LENGTH) });
    const tok = await Tokenizer.load(dir);
    expect((await tok.encode('hi')).length).toBe(6);
  });

  it('padding fixed at 1e10 tokens does not abort the process (in a child process)', () => {
    const dir = tokenizerWith('abort', padding({ Fixed: 1e10 }));
    const script =
      `require('./src/model/tokenizer').Tokenizer.load(${JSON.stringify(dir)})` +
      `.then((t) => t.encode('hi')).then((ids) => console.log('encoded ' + ids.length), (e) => console.log('refused: ' + e.message))`;
    const child = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], {
      cwd: path.join(__dirname, '..'),
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect({ status: child.status, signal: child.signal, stdout: child.stdout.trim() }).toEqual({
      status: 0,
      signal: null,
      stdout: expect.stringMatching(/^refused: .*padding\.strategy\.Fixed is 10000000000/),
    });
  });
});
