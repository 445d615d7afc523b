// Bad input for every public op must raise the right error class (TypeError for the wrong kind of
// argument, RangeError for a value out of range, Error for a missing device) with a message naming
// the argument. The same case list (test/helpers/badInputCases.ts) runs here in process and in a
// child process, whose exit status shows that no case crashes or aborts native code.
import { spawnSync } from 'child_process';
import path from 'path';
import { BAD_CASES, CaseResult, runCase } from './helpers/badInputCases';

describe('bad input, in process', () => {
  it('the case names are unique', () => {
    const names = BAD_CASES.map((c) => c.name);
    expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([]);
  });

  it.each(BAD_CASES)('$name -> $errorClass', (c) => {
    const r = runCase(c);
    expect({ errorClass: r.errorClass, message: r.message }).toEqual({ errorClass: c.errorClass, message: expect.stringMatching(c.message) });
  });
});

describe('bad input, in a child process', () => {
  const script = path.join(__dirname, 'helpers', 'badInputCases.ts');
  let child: ReturnType<typeof spawnSync>;
  let results: CaseResult[] = [];

  beforeAll(() => {
    const env = { ...process.env };
    delete env.OSP_DEVICE;
    child = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', script], {
      cwd: path.join(__dirname, '..'),
      env,
      encoding: 'utf8',
      timeout: 60_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    results = String(child.stdout ?? '')
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as CaseResult);
  });

  it('exits with status 0 and no signal (no case crashes the process)', () => {
    expect({ status: child.status, signal: child.signal, error: child.error?.message, stderr: String(child.stderr ?? '').slice(-2000) }).toEqual({
      status: 0,
      signal: null,
      error: undefined,
      stderr: expect.any(String),
    });
  });

  it('reports every case, in order, once', () => {
    expect(results.map((r) => r.name)).toEqual(BAD_CASES.map((c) => c.name));
  });

  it('every case raised the expected error class with a message naming the argument', () => {
    const byName = new Map(results.map((r) => [r.name, r]));
    const wrong = BAD_CASES.flatMap((c) => {
      const r = byName.get(c.name);
      if (r && r.errorClass === c.errorClass && c.message.test(r.message)) return [];
      return [{ name: c.name, expected: `${c.errorClass} matching ${c.message}`, got: r ? `${r.errorClass}: ${r.message}` : 'not reported' }];
    });
    expect(wrong).toEqual([]);
  });
});
