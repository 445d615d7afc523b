// Every op with a zero-sized dimension (issue 14: rope and ropeBackward with no heads or a zero head
// dimension died of SIGFPE). Each case runs in a child process (test/helpers/isolated.ts): it returns
// results of the expected (empty) shapes, or, where an empty input has no meaning (no columns to take
// a target from, no kv heads, no slot to write), throws an error that starts with the op's name.
import path from 'path';
import { IsolatedResult, runIsolated } from './helpers/isolated';
import { ZERO_SIZE_CASES } from './helpers/zeroSizeCases';

describe('zero-sized dimensions, each case in a child process', () => {
  let results: IsolatedResult[] = [];
  beforeAll(() => {
    results = runIsolated(path.join(__dirname, 'helpers', 'zeroSizeCases.ts'), 'zeroSizeCases', '');
  });

  it('runs every case once, in order', () => {
    expect(results.map((r) => r.name)).toEqual(ZERO_SIZE_CASES.map((c) => `${c.op}: ${c.what}`));
  });

  it.each(ZERO_SIZE_CASES.map((c) => [`${c.op}: ${c.what}`, c.expect, c.op]))('%s -> %s', (name, expected, op) => {
    const r = results.find((x) => x.name === name);
    const got = r && (r.outcome === 'returned' ? { outcome: 'returned', shapes: r.message } : { outcome: r.outcome, errorClass: r.errorClass, message: r.message });
    if (expected === 'refused') {
      expect(got).toEqual({ outcome: 'threw', errorClass: expect.stringMatching(/^(TypeError|RangeError)$/), message: expect.stringMatching(new RegExp(`^${op}: `)) });
    } else {
      expect(got).toEqual({ outcome: 'returned', shapes: expected });
    }
  });
});
