// --sample N: a random subset of N records, seeded by --seed, in the file's order (issue 13).
import * as fs from 'fs';
import * as path from 'path';
import { sampleIndices } from '../src/osp/trainer';
import { TinyRun, osp, tinyRun } from './helpers/tinyRun';

describe('sampleIndices', () => {
  it('picks n distinct indices in increasing order, the same for the same seed', () => {
    const a = sampleIndices(100, 10, 7);
    expect(a).toHaveLength(10);
    expect(new Set(a).size).toBe(10);
    expect(a).toEqual([...a].sort((x, y) => x - y));
    expect(a.every((i) => i >= 0 && i < 100)).toBe(true);
    expect(sampleIndices(100, 10, 7)).toEqual(a);
    expect(sampleIndices(100, 10, 8)).not.toEqual(a);
  });

  it('chooses every index about equally often (uniform subsets)', () => {
    const counts = new Array(20).fill(0);
    for (let s = 0; s < 4000; s++) for (const i of sampleIndices(20, 5, s)) counts[i]++;
    // Each index: Binomial(4000, 1/4): mean 1000, sd 27.4.
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(5 * 27.4);
  });
});

describe('osp sft --sample', () => {
  let tiny: TinyRun;
  beforeAll(async () => {
    tiny = await tinyRun();
  });
  afterAll(() => tiny.cleanup());

  test('trains on N records chosen by --seed and records the count', async () => {
    const out = tiny.out('sample');
    const r = await osp('sft', '--model', tiny.model, '--data', tiny.sft, '--out', out, '--sample', '3', '--seed', '4', '--steps', '1', '--batch-size', '2', '--device', 'cpu');
    expect(r.code).toBe(0);
    const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(config.dataRecords).toBe(3);
    expect(config.settings.sample).toBe(3);
  });
});
