// Reading record files (JSON Lines): each kind's normalized records, the HH split, the TL;DR prompt,
// and malformed records reported with file, line and field (or skipped and counted with skipBad).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readRecords, normalizeRecord, splitHHTranscript, tldrPrompt, MAX_PROBLEMS } from '../src/data';

const fixture = (name: string) => path.join(__dirname, 'fixtures', 'data', name);
let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-data-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
function tempFile(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

describe('readRecords: each format parses to normalized records', () => {
  test('prompts give {prompt} only, text verbatim, extra fields dropped', async () => {
    const r = await readRecords(fixture('prompts.jsonl'), 'prompts');
    expect(r).toEqual({
      records: [
        { prompt: '\n\nHuman: How do I keep basil alive indoors?\n\nAssistant:' },
        { prompt: 'SUBREDDIT: r/cooking\nTITLE: Rice always sticks\nPOST: Every time I cook rice it sticks to the pot.\nTL;DR:' },
        { prompt: 'Name three prime numbers. Réponse en français: « trois »' },
      ],
      where: [1, 2, 3].map((line) => `${fixture('prompts.jsonl')}:${line}`),
      skipped: 0,
      problems: [],
    });
  });

  test('pairs give {prompt, chosen, rejected} with strength only where it is a number', async () => {
    const { records } = await readRecords(fixture('pairs.jsonl'), 'pairs');
    expect(records).toEqual([
      { prompt: '\n\nHuman: What is 2 + 2?\n\nAssistant:', chosen: ' 2 + 2 = 4.', rejected: ' 5.' },
      { prompt: '\n\nHuman: Say hi.\n\nAssistant:', chosen: ' Hi!', rejected: ' No.', strength: 0.8 },
      { prompt: '\n\nHuman: Pick a colour.\n\nAssistant:', chosen: ' Blue.', rejected: ' Green.' },
      { prompt: '\n\nHuman: Any tips for sleep?\n\nAssistant:', chosen: ' Keep a regular schedule.', rejected: ' Drink coffee at night.', strength: 0 },
    ]);
  });

  test('sft gives {prompt, response}', async () => {
    const { records } = await readRecords(fixture('sft.jsonl'), 'sft');
    expect(records).toEqual([
      { prompt: "\n\nHuman: Translate 'cat' into French.\n\nAssistant:", response: ' Chat.' },
      { prompt: '\n\nHuman: What colour is the sky?\n\nAssistant:', response: ' Usually blue, because of Rayleigh scattering.' },
    ]);
  });

  test('hh splits each transcript at the LAST "\\n\\nAssistant:", keeping earlier turns in the prompt and the leading space in the response', async () => {
    const { records } = await readRecords(fixture('hh.jsonl'), 'hh');
    expect(records[0]).toEqual({
      prompt:
        '\n\nHuman: I want to start running. Where should I begin?\n\nAssistant: Start slowly: walk and run in intervals three times a week.' +
        '\n\nHuman: How long should each session be?\n\nAssistant:',
      chosen: ' About 20 to 30 minutes, including a warm-up.',
      rejected: ' Run a marathon on day one.',
    });
    expect(records[1]).toEqual({
      prompt: '\n\nHuman: Can you recommend a book about the sea?\n\nAssistant:',
      chosen: ' Try "The Sea Around Us" by Rachel Carson.',
      rejected: " I don't read.",
    });
  });

  test('hh prompt + response is the original transcript', () => {
    const t = '\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d';
    const s = splitHHTranscript(t)!;
    expect(s).toEqual({ prompt: '\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:', response: ' d' });
    expect(s.prompt + s.response).toBe(t);
  });

  test('tldr builds the paper prompt exactly, chosen = summaries[choice] and rejected = the other, each with one leading space', async () => {
    const { records } = await readRecords(fixture('tldr.jsonl'), 'tldr');
    expect(records).toEqual([
      {
        prompt:
          "SUBREDDIT: r/relationships\nTITLE: Roommate never does the dishes\nPOST: My roommate keeps leaving dishes in the sink for days. I've asked twice politely.\nTL;DR:",
        chosen: ' roommate leaves dishes, asked twice, what now?',
        rejected: ' dishes.',
      },
      {
        prompt: 'SUBREDDIT: r/AskReddit\nTITLE: Should I take a job abroad?\nPOST: I (25F) got a job offer abroad but my family wants me to stay.\nTL;DR:',
        chosen: ' got an offer abroad; my family wants me home, should I go?',
        rejected: ' job abroad, family disagrees',
      },
      {
        prompt: 'SUBREDDIT: r/AskReddit\nTITLE: Should I take a job abroad?\nPOST: I (25F) got a job offer abroad but my family wants me to stay.\nTL;DR:',
        chosen: ' flat shape works',
        rejected: ' other',
      },
    ]);
  });

  test('tldrPrompt is "SUBREDDIT: r/{subreddit}\\nTITLE: {title}\\nPOST: {post}\\nTL;DR:"', () => {
    expect(tldrPrompt({ subreddit: 's', title: 't', post: 'p' })).toBe('SUBREDDIT: r/s\nTITLE: t\nPOST: p\nTL;DR:');
  });

  test('a .json file holding a JSON array is read item by item', async () => {
    const file = tempFile('array.json', JSON.stringify([{ prompt: 'a' }, { prompt: 'b' }]));
    expect((await readRecords(file, 'prompts')).records).toEqual([{ prompt: 'a' }, { prompt: 'b' }]);
  });

  test('a .json file of JSON lines, with CRLF ends, a byte-order mark and blank lines, is read as JSON Lines', async () => {
    const file = tempFile('lines.json', '\uFEFF{"prompt":"a"}\r\n\r\n{"prompt":"b"}\r\n');
    expect((await readRecords(file, 'prompts')).records).toEqual([{ prompt: 'a' }, { prompt: 'b' }]);
  });

  test('limit stops after that many good records', async () => {
    const { records } = await readRecords(fixture('pairs.jsonl'), 'pairs', { limit: 1 });
    expect(records).toHaveLength(1);
  });
});

describe('readRecords: malformed records name the file, the 1-based line and the field', () => {
  const good = '{"prompt":"P","chosen":" a","rejected":" b"}';
  test.each<[string, string, string]>([
    ['bad JSON', '{"prompt": "P", "chosen"', 'invalid JSON'],
    ['a JSON value that is not an object', '[1, 2]', 'expected an object, got an array'],
    ['a missing field', '{"prompt":"P","chosen":" a"}', "field 'rejected': is missing"],
    ['a wrong type', '{"prompt":"P","chosen":7,"rejected":" b"}', "field 'chosen': expected a string, got number"],
    ['an empty string', '{"prompt":"","chosen":" a","rejected":" b"}', "field 'prompt': must not be empty"],
    ['a whitespace-only string', '{"prompt":" \\n ","chosen":" a","rejected":" b"}', "field 'prompt': must not be empty"],
    ['strength above 1', '{"prompt":"P","chosen":" a","rejected":" b","strength":1.5}', "field 'strength': must be a finite number in [0, 1]"],
    ['strength below 0', '{"prompt":"P","chosen":" a","rejected":" b","strength":-0.1}', "field 'strength': must be a finite number in [0, 1]"],
    ['strength as a string', '{"prompt":"P","chosen":" a","rejected":" b","strength":"0.3"}', "field 'strength': expected a number in [0, 1] or null, got string"],
  ])('%s', async (_what, line, reason) => {
    const file = tempFile('bad.jsonl', `${good}\n\n${line}\n${good}\n`);
    await expect(readRecords(file, 'pairs')).rejects.toThrow(`${file}:3: ${reason}`);
  });

  test('strength NaN (only possible from Parquet or in memory) is malformed', () => {
    expect(normalizeRecord('pairs', { prompt: 'P', chosen: ' a', rejected: ' b', strength: NaN })).toEqual({
      ok: false,
      problem: { field: 'strength', message: 'must be a finite number, got NaN' },
    });
  });

  test.each<[string, string]>([
    ['prompts', "field 'prompt': is missing"],
    ['sft', "field 'prompt': is missing"],
  ])('%s: a missing field', async (kind, reason) => {
    const file = tempFile('missing.jsonl', '{"text":"x"}\n');
    await expect(readRecords(file, kind as 'prompts' | 'sft')).rejects.toThrow(`${file}:1: ${reason}`);
  });

  test('sft: an empty response', async () => {
    const file = tempFile('sft-bad.jsonl', '{"prompt":"P","response":""}\n');
    await expect(readRecords(file, 'sft')).rejects.toThrow(`${file}:1: field 'response': must not be empty`);
  });

  test('hh: the two prompts disagree, no Assistant turn, and an empty last turn are each malformed', async () => {
    const file = fixture('hh-bad.jsonl');
    await expect(readRecords(file, 'hh')).rejects.toThrow(`${file}:2: field 'rejected': the dialogue before the last "\\n\\nAssistant:" differs from that of chosen`);
    const r = await readRecords(file, 'hh', { skipBad: true });
    expect(r.records).toHaveLength(1);
    expect(r.problems).toEqual([
      `${file}:2: field 'rejected': the dialogue before the last "\\n\\nAssistant:" differs from that of chosen (the two prompts must agree)`,
      `${file}:3: field 'chosen': has no "\\n\\nAssistant:" turn to split at`,
      `${file}:4: field 'rejected': the last "\\n\\nAssistant:" turn is empty`,
    ]);
  });

  test('tldr: a choice other than 0 or 1, one summary only, a missing nested title, an empty summary', async () => {
    const file = fixture('tldr-bad.jsonl');
    const r = await readRecords(file, 'tldr', { skipBad: true });
    expect(r.records).toEqual([]);
    expect(r.problems).toEqual([
      `${file}:1: field 'choice': must be 0 or 1`,
      `${file}:2: field 'summaries': must have exactly two summaries`,
      `${file}:3: field 'info.title': is missing`,
      `${file}:4: field 'summaries.1.text': must not be empty`,
    ]);
  });

  test('the thrown error also says the kind and how to skip', async () => {
    await expect(readRecords(fixture('pairs-bad.jsonl'), 'pairs')).rejects.toThrow(/\(pairs record; skip malformed records with skipBad: true, on the command line --skip-bad\)$/);
  });
});

describe('readRecords: skipBad', () => {
  test('skips and counts malformed records, keeping the good ones and the messages in file order', async () => {
    const file = fixture('pairs-bad.jsonl');
    const r = await readRecords(file, 'pairs', { skipBad: true });
    expect(r.records.map((x) => x.prompt)).toEqual(['P1', 'P8']);
    expect(r.records[1].strength).toBe(0.25);
    expect(r.skipped).toBe(6);
    expect(r.problems).toHaveLength(6);
    expect(r.problems[0]).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: invalid JSON`));
    expect(r.problems.slice(1)).toEqual([
      `${file}:3: field 'rejected': is missing`,
      `${file}:4: field 'chosen': expected a string, got number`,
      `${file}:5: field 'prompt': must not be empty`,
      `${file}:6: field 'strength': must be a finite number in [0, 1]`,
      `${file}:9: expected an object, got an array`,
    ]);
  });

  test(`keeps only the first ${MAX_PROBLEMS} messages but counts every skipped record`, async () => {
    const file = tempFile('many-bad.jsonl', '{"prompt":""}\n'.repeat(25) + '{"prompt":"ok"}\n');
    const r = await readRecords(file, 'prompts', { skipBad: true });
    expect(r.records).toEqual([{ prompt: 'ok' }]);
    expect(r.skipped).toBe(25);
    expect(r.problems).toHaveLength(MAX_PROBLEMS);
  });
});

describe('readRecords: files', () => {
  test('a missing file is an error naming the path', async () => {
    const file = path.join(dir, 'nope.jsonl');
    await expect(readRecords(file, 'prompts')).rejects.toThrow(`${file}: no such file`);
  });

  test('an unknown extension is an error naming the file and the extensions it accepts', async () => {
    const file = tempFile('prompts.csv', 'prompt\nx\n');
    await expect(readRecords(file, 'prompts')).rejects.toThrow(`${file}: unknown file extension '.csv'; expected .jsonl or .json (JSON Lines) or .parquet`);
  });

  test('an unknown kind is a RangeError', async () => {
    await expect(readRecords(fixture('prompts.jsonl'), 'chat' as 'prompts')).rejects.toThrow(RangeError);
  });
});

describe('the blank response', () => {
  it('a pair may have an empty chosen or rejected response (the blank response ranked pairing compares against)', () => {
    const r = normalizeRecord('pairs', { prompt: 'P', chosen: ' 1 2', rejected: '' });
    expect(r).toEqual({ ok: true, record: { prompt: 'P', chosen: ' 1 2', rejected: '' } });
  });

  it('an SFT response may not be empty', () => {
    const r = normalizeRecord('sft', { prompt: 'P', response: '' });
    expect(r.ok).toBe(false);
  });
});

describe('invalid UTF-8', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-utf8-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const bad = Buffer.concat([Buffer.from('{"prompt": "ok"}\n{"prompt": "caf'), Buffer.from([0xe9]), Buffer.from('"}\n{"prompt": "also ok"}\n')]);

  test('is refused naming file:line and the byte, not replaced with U+FFFD', async () => {
    const file = path.join(dir, 'latin1.jsonl');
    fs.writeFileSync(file, bad);
    await expect(readRecords(file, 'prompts')).rejects.toThrow(`${file}:2: invalid UTF-8 at byte 15 of the line; expected UTF-8 text`);
  });

  test('with skipBad the line is skipped and counted', async () => {
    const file = path.join(dir, 'latin1-skip.jsonl');
    fs.writeFileSync(file, bad);
    const r = await readRecords(file, 'prompts', { skipBad: true });
    expect(r.records.map((x) => x.prompt)).toEqual(['ok', 'also ok']);
    expect(r.skipped).toBe(1);
  });

  test('a valid U+FFFD, multi-byte text across read chunks, CRLF and a BOM are read as they are', async () => {
    const file = path.join(dir, 'valid.jsonl');
    const long = 'é'.repeat(70000); // 140 kB: spans the 64 KiB chunks of the stream
    fs.writeFileSync(file, `\uFEFF{"prompt": "\uFFFD"}\r\n{"prompt": "${long}"}\n`);
    const r = await readRecords(file, 'prompts');
    expect(r.records.map((x) => x.prompt)).toEqual(['\uFFFD', long]);
  });
});
