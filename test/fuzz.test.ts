// The seeded fuzz (issue 14): a few thousand calls of the public ops with one argument wrong (type,
// dtype, rank, size, zero size, disposed, transposed or narrowed views, bad numbers and options),
// zero-sized dimensions, and overflowing shapes, run in child processes (test/helpers/fuzzCases.ts).
// It fails on any call that kills its process, and on any error that does not start with the op's
// name and name the argument. Fresh seed every run, printed; OSP_TEST_SEED=<seed> replays it, and
// OSP_FUZZ_CALLS=<n> sets the number of calls (default 4000).
import path from 'path';
import { FuzzCase, fuzzCases, violation } from './helpers/fuzzCases';
import { IsolatedResult, runIsolated } from './helpers/isolated';
import { seeded } from './helpers/random';

const CALLS = Number(process.env.OSP_FUZZ_CALLS ?? 4000);

describe('fuzz of the public ops, in child processes', () => {
  const { seed } = seeded('fuzz');
  const arg = `${seed}:${CALLS}`;
  let cases: FuzzCase[] = [];
  let results: IsolatedResult[] = [];
  beforeAll(() => {
    cases = fuzzCases(arg);
    results = runIsolated(path.join(__dirname, 'helpers', 'fuzzCases.ts'), 'fuzzCases', arg, { timeoutMs: 100_000 });
  });

  const offenders = (pred: (v: string) => boolean) =>
    cases.flatMap((c, i) => {
      const v = results[i] && violation(c, results[i]);
      return v !== undefined && pred(v) ? [`${c.name} -> ${v}`] : [];
    });

  it(`runs every call, in order (${CALLS} calls)`, () => {
    expect(results.map((r) => r.name)).toEqual(cases.map((c) => c.name));
  });

  it('no call kills its process (signal or abort)', () => {
    expect(offenders((v) => v.startsWith('died'))).toEqual([]);
  });

  it('every error is a TypeError or RangeError that starts with the op and names the argument', () => {
    expect(offenders((v) => !v.startsWith('died'))).toEqual([]);
  });
});
