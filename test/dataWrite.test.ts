// JSON Lines writers: writeJsonl replaces a file atomically; JsonlAppender appends whole lines.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { writeJsonl, JsonlAppender, readRecords } from '../src/data';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-write-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('writeJsonl', () => {
  test('writes one JSON object per line that readRecords reads back', async () => {
    const file = path.join(dir, 'out', 'samples.jsonl');
    const records = [{ prompt: 'a\nb', response: ' c' }, { prompt: 'd', response: ' "e"' }];
    await writeJsonl(file, records);
    expect(fs.readFileSync(file, 'utf8')).toBe(records.map((r) => JSON.stringify(r) + '\n').join(''));
    expect((await readRecords(file, 'sft')).records).toEqual(records);
  });

  test('replaces an existing file and leaves no temporary file beside it', async () => {
    const file = path.join(dir, 'metrics.jsonl');
    fs.writeFileSync(file, 'old\n');
    await writeJsonl(file, [{ step: 1 }]);
    expect(fs.readFileSync(file, 'utf8')).toBe('{"step":1}\n');
    expect(fs.readdirSync(dir)).toEqual(['metrics.jsonl']);
  });

  test('an error part way (after more than one chunk was written) leaves the old file intact and no partial file', async () => {
    const file = path.join(dir, 'samples.jsonl');
    fs.writeFileSync(file, '{"keep":true}\n');
    function* records() {
      for (let i = 0; i < 20000; i++) yield { i, text: 'x'.repeat(100) };
      yield { bad: BigInt(1) };
    }
    await expect(writeJsonl(file, records())).rejects.toThrow(`${file}: record 20000 cannot be written as JSON`);
    expect(fs.readFileSync(file, 'utf8')).toBe('{"keep":true}\n');
    expect(fs.readdirSync(dir)).toEqual(['samples.jsonl']);
  });

  test('an error when there was no file leaves no file at all', async () => {
    const file = path.join(dir, 'new.jsonl');
    await expect(writeJsonl(file, [{ a: 1 }, undefined])).rejects.toThrow(TypeError);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

describe('JsonlAppender', () => {
  test('appends one whole line per record, after what the file had', () => {
    const file = path.join(dir, 'log.jsonl');
    fs.writeFileSync(file, '{"step":0}\n');
    const w = new JsonlAppender(file);
    w.append({ step: 1 });
    w.append({ step: 2, loss: 0.5 });
    w.close();
    expect(w.written).toBe(2);
    expect(fs.readFileSync(file, 'utf8')).toBe('{"step":0}\n{"step":1}\n{"step":2,"loss":0.5}\n');
  });

  test('a record with no JSON form throws and writes nothing', () => {
    const file = path.join(dir, 'log.jsonl');
    const w = new JsonlAppender(file);
    w.append({ ok: 1 });
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(() => w.append(circular)).toThrow(`${file}: record 1 cannot be written as JSON`);
    w.append({ ok: 2 });
    w.close();
    expect(fs.readFileSync(file, 'utf8')).toBe('{"ok":1}\n{"ok":2}\n');
  });

  test('an unfinished last line (a run killed mid-write) is ended first, so new records start on their own line', async () => {
    const file = path.join(dir, 'log.jsonl');
    fs.writeFileSync(file, '{"prompt":"a"}\n{"prompt":"b');
    const w = new JsonlAppender(file);
    w.append({ prompt: 'c' });
    w.close();
    const r = await readRecords(file, 'prompts', { skipBad: true });
    expect(r.records).toEqual([{ prompt: 'a' }, { prompt: 'c' }]);
    expect(r.skipped).toBe(1);
  });

  test('truncate starts the file empty; appending after close throws', () => {
    const file = path.join(dir, 'log.jsonl');
    fs.writeFileSync(file, '{"old":1}\n');
    const w = new JsonlAppender(file, { truncate: true });
    w.append({ n: 1 });
    w.close();
    w.close();
    expect(fs.readFileSync(file, 'utf8')).toBe('{"n":1}\n');
    expect(() => w.append({ n: 2 })).toThrow('JsonlAppender is closed');
  });
});
