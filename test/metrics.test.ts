// MetricsLog: metrics.jsonl of a run, one whole JSON line per optimizer step; read() ignores a last
// line cut short by a kill; truncateAfter() drops the steps after a resumed checkpoint atomically.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { MetricsLog, STEP_METRIC_FIELDS } from '../src/osp/metrics';
import { writeFileAtomicSync } from '../src/util/atomicWrite';
import type { StepMetrics } from '../src/osp/metrics';

// The module object itself (an `import * as` namespace is read-only, so it cannot be spied on).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeFs: typeof fs = require('fs');

let dir: string;
let file: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-metrics-'));
  file = path.join(dir, 'metrics.jsonl');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const step = (n: number, extra: Partial<StepMetrics> = {}): StepMetrics => ({ step: n, loss: 1 / n, pHatMean: 0.5, targetMean: 0.6, ...extra });
const lines = (f: string) => fs.readFileSync(f, 'utf8').split('\n');

describe('MetricsLog.append and read', () => {
  it('appends exactly one whole line per call, and read() returns the records in order', () => {
    const log = new MetricsLog(file);
    log.append(step(1));
    expect(lines(file)).toEqual([JSON.stringify(step(1)), '']);
    log.append(step(2, { secondsGenerate: 1.5, pairs: 8 }));
    log.append({ step: 3 });
    const text = fs.readFileSync(file, 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    expect(text.split('\n')).toHaveLength(4);
    expect(MetricsLog.read(file)).toEqual([step(1), step(2, { secondsGenerate: 1.5, pairs: 8 }), { step: 3 }]);
  });

  it('writes each line, newline included, with a single write call', () => {
    const log = new MetricsLog(file);
    log.append(step(1));
    const spy = jest.spyOn(nodeFs, 'writeSync');
    try {
      log.append(step(2, { marginMean: 0.25 }));
      expect(spy).toHaveBeenCalledTimes(1);
      expect(Buffer.from(spy.mock.calls[0][1] as unknown as Uint8Array).toString('utf8')).toBe(JSON.stringify(step(2, { marginMean: 0.25 })) + '\n');
    } finally {
      spy.mockRestore();
    }
  });

  it('writes step first, keeps null, drops undefined and stores NaN/Infinity as null', () => {
    const log = new MetricsLog(file, { fsync: true });
    log.append({ loss: NaN, step: 4, gradNorm: Infinity, lr: null, klEstimate: undefined });
    expect(lines(file)[0]).toBe('{"step":4,"loss":null,"gradNorm":null,"lr":null}');
  });

  it('appends to an existing file from a new MetricsLog (a resumed process)', () => {
    new MetricsLog(file).append(step(1));
    new MetricsLog(file).append(step(2));
    expect(MetricsLog.read(file).map((m) => m.step)).toEqual([1, 2]);
  });

  it('rejects a step that is not an integer >= 1 and non-numeric fields, writing nothing', () => {
    const log = new MetricsLog(file);
    expect(() => log.append({ step: 0 })).toThrow(RangeError);
    expect(() => log.append({ step: 1.5 })).toThrow(/step must be an integer >= 1/);
    expect(() => log.append({ step: 1, loss: '0.3' as unknown as number })).toThrow(/loss must be a number or null/);
    expect(fs.existsSync(file)).toBe(false);
  });

  it('reads a missing file as no records, and skips blank lines', () => {
    expect(MetricsLog.read(file)).toEqual([]);
    fs.writeFileSync(file, '{"step":1}\n\n{"step":2}\n');
    expect(MetricsLog.read(file)).toEqual([{ step: 1 }, { step: 2 }]);
  });

  it('throws naming the file and line for a malformed complete line', () => {
    fs.writeFileSync(file, '{"step":1}\n{"step":\n{"step":3}\n');
    expect(() => MetricsLog.read(file)).toThrow(`${file}:2: not valid JSON`);
    fs.writeFileSync(file, '{"loss":1}\n');
    expect(() => MetricsLog.read(file)).toThrow(/:1: step must be an integer >= 1/);
  });

  it('documents one field per StepMetrics key', () => {
    const src = fs.readFileSync(path.join(__dirname, '../src/osp/metrics.ts'), 'utf8');
    for (const key of ['step', ...STEP_METRIC_FIELDS]) {
      expect(src).toMatch(new RegExp(`/\\*\\* [^\\n]+ \\*/\\n  ${key}\\??: number`));
    }
  });
});

describe('a truncated last line (run killed mid-write)', () => {
  it('is ignored by read()', () => {
    fs.writeFileSync(file, '{"step":1,"loss":0.7}\n{"step":2,"loss":0.6}\n{"step":3,"lo');
    expect(MetricsLog.read(file)).toEqual([{ step: 1, loss: 0.7 }, { step: 2, loss: 0.6 }]);
  });

  it('is ignored even when the cut fell just before the newline', () => {
    fs.writeFileSync(file, '{"step":1}\n{"step":2}');
    expect(MetricsLog.read(file)).toEqual([{ step: 1 }]);
  });

  it('is cut off by the next append, so the new line is not glued to it', () => {
    fs.writeFileSync(file, '{"step":1}\n{"step":2,"lo');
    new MetricsLog(file).append({ step: 2, loss: 0.5 });
    expect(fs.readFileSync(file, 'utf8')).toBe('{"step":1}\n{"step":2,"loss":0.5}\n');
  });

  it('is cut off even when the file holds no complete line', () => {
    fs.writeFileSync(file, '{"step":1,"lo');
    expect(MetricsLog.read(file)).toEqual([]);
    new MetricsLog(file).append({ step: 1 });
    expect(MetricsLog.read(file)).toEqual([{ step: 1 }]);
  });
});

describe('truncateAfter (resume from a checkpoint)', () => {
  it('drops the lines of later steps, keeps the rest byte for byte, and returns the count', () => {
    const log = new MetricsLog(file);
    for (let s = 1; s <= 5; s++) log.append(step(s));
    const before = lines(file);
    expect(log.truncateAfter(3)).toBe(2);
    expect(lines(file)).toEqual([...before.slice(0, 3), '']);
    log.append(step(4, { loss: 9 }));
    expect(MetricsLog.read(file).map((m) => [m.step, m.loss])).toEqual([[1, 1], [2, 0.5], [3, 1 / 3], [4, 9]]);
  });

  it('also drops a truncated tail, and truncateAfter(0) empties the log', () => {
    fs.writeFileSync(file, '{"step":1}\n{"step":2}\n{"step":3,"lo');
    const log = new MetricsLog(file);
    expect(log.truncateAfter(2)).toBe(0);
    expect(fs.readFileSync(file, 'utf8')).toBe('{"step":1}\n{"step":2}\n');
    expect(log.truncateAfter(0)).toBe(2);
    expect(fs.readFileSync(file, 'utf8')).toBe('');
  });

  it('rewrites atomically: a new file renamed over the old one, no temp files left behind', () => {
    const log = new MetricsLog(file);
    for (let s = 1; s <= 3; s++) log.append(step(s));
    const inodeBefore = fs.statSync(file).ino;
    const renames: [string, string][] = [];
    const spy = jest.spyOn(nodeFs, 'renameSync').mockImplementation(((a: fs.PathLike, b: fs.PathLike) => {
      renames.push([String(a), String(b)]);
      // At rename time the old content is still intact and the temp file holds the new content.
      expect(MetricsLog.read(file).map((m) => m.step)).toEqual([1, 2, 3]);
      expect(MetricsLog.read(String(a)).map((m) => m.step)).toEqual([1]);
      spy.mockRestore();
      nodeFs.renameSync(a, b);
    }) as typeof fs.renameSync);
    log.truncateAfter(1);
    expect(renames).toHaveLength(1);
    expect(path.dirname(renames[0][0])).toBe(dir);
    expect(renames[0][1]).toBe(file);
    expect(fs.statSync(file).ino).not.toBe(inodeBefore);
    expect(fs.readdirSync(dir)).toEqual(['metrics.jsonl']);
  });

  it('leaves the original untouched and removes its temp file when the rewrite fails', () => {
    const log = new MetricsLog(file);
    for (let s = 1; s <= 3; s++) log.append(step(s));
    const spy = jest.spyOn(nodeFs, 'renameSync').mockImplementation(() => { throw new Error('disk on fire'); });
    try {
      expect(() => log.truncateAfter(1)).toThrow('disk on fire');
    } finally {
      spy.mockRestore();
    }
    expect(MetricsLog.read(file).map((m) => m.step)).toEqual([1, 2, 3]);
    expect(fs.readdirSync(dir)).toEqual(['metrics.jsonl']);
  });

  it('is a no-op on a missing file and rejects a negative or fractional step', () => {
    const log = new MetricsLog(file);
    expect(log.truncateAfter(3)).toBe(0);
    expect(fs.existsSync(file)).toBe(false);
    expect(() => log.truncateAfter(-1)).toThrow(RangeError);
    expect(() => log.truncateAfter(1.5)).toThrow(RangeError);
  });
});

describe('writeFileAtomicSync', () => {
  it('replaces the content of a file', () => {
    fs.writeFileSync(file, 'old');
    writeFileAtomicSync(file, 'new');
    expect(fs.readFileSync(file, 'utf8')).toBe('new');
    expect(fs.readdirSync(dir)).toEqual(['metrics.jsonl']);
  });
});
