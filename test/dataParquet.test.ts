// Parquet reading (hyparquet, an ES module, loaded from this CommonJS package): each record kind
// from a .parquet fixture gives the same records as its .jsonl twin (make-parquet.mjs made them).
import * as path from 'path';
import { readRecords, type RecordKind } from '../src/data';

const fixture = (name: string) => path.join(__dirname, 'fixtures', 'data', name);

describe('readRecords on Parquet files', () => {
  test.each<[string, RecordKind, string]>([
    ['prompts.parquet', 'prompts', 'prompts.jsonl'],
    ['pairs.parquet', 'pairs', 'pairs.jsonl'],
    ['sft.parquet', 'sft', 'sft.jsonl'],
    ['hh.parquet', 'hh', 'hh.jsonl'],
  ])('%s reads as %s records equal to those of %s', async (parquet, kind, jsonl) => {
    const fromParquet = await readRecords(fixture(parquet), kind);
    const fromJsonl = await readRecords(fixture(jsonl), kind);
    expect(fromParquet.records.length).toBeGreaterThan(0);
    expect({ ...fromParquet, where: undefined }).toEqual({ ...fromJsonl, where: undefined });
    expect(fromParquet.where).toEqual(fromParquet.records.map((_, i) => `${fixture(parquet)}: row ${i} (0-based)`));
  });

  test('TL;DR with a nested info struct and a list of summary structs (int64 choice) reads like the JSONL', async () => {
    const { records } = await readRecords(fixture('tldr.parquet'), 'tldr');
    const fromJsonl = await readRecords(fixture('tldr.jsonl'), 'tldr');
    expect(records).toEqual(fromJsonl.records.slice(0, 2));
  });

  test('TL;DR with flat post, title, subreddit columns reads like the JSONL', async () => {
    const { records } = await readRecords(fixture('tldr-flat.parquet'), 'tldr');
    expect(records).toEqual((await readRecords(fixture('tldr.jsonl'), 'tldr')).records);
  });

  test('a null strength is a hard label (no strength field)', async () => {
    const { records } = await readRecords(fixture('pairs.parquet'), 'pairs');
    expect(records[2]).toEqual({ prompt: '\n\nHuman: Pick a colour.\n\nAssistant:', chosen: ' Blue.', rejected: ' Green.' });
  });

  test('a malformed row throws naming the file, the 0-based row index and the field', async () => {
    const file = fixture('pairs-bad.parquet');
    await expect(readRecords(file, 'pairs')).rejects.toThrow(`${file}: row 1 (0-based): field 'strength': must be a finite number, got NaN`);
  });

  test('skipBad skips NaN and out-of-range strength and a null text, keeps a blank response, and reports each row', async () => {
    const file = fixture('pairs-bad.parquet');
    const r = await readRecords(file, 'pairs', { skipBad: true });
    expect(r.records.map((x) => x.prompt)).toEqual(['P0', 'P2', 'P4']);
    expect(r.records[1].chosen).toBe('');
    expect(r.skipped).toBe(3);
    expect(r.problems).toEqual([
      `${file}: row 1 (0-based): field 'strength': must be a finite number, got NaN`,
      `${file}: row 3 (0-based): field 'strength': must be a finite number in [0, 1]`,
      `${file}: row 5 (0-based): field 'prompt': expected a string, got null`,
    ]);
  });

  test('limit stops after that many good rows', async () => {
    const r = await readRecords(fixture('pairs.parquet'), 'pairs', { limit: 2 });
    expect(r.records).toHaveLength(2);
  });

  test('a Parquet file without any column of the kind is a clear error naming its columns', async () => {
    const file = fixture('sft.parquet');
    await expect(readRecords(file, 'hh')).rejects.toThrow(`${file}: has none of the columns chosen, rejected; its columns are prompt, response`);
  });

  test('a file named .parquet that is not Parquet is a clear error naming it', async () => {
    const file = fixture('not-parquet.parquet');
    await expect(readRecords(file, 'prompts')).rejects.toThrow(`${file}: not a readable Parquet file`);
  });
});
