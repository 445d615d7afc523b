// The f32 CPU GEMM has one micro-kernel per instruction set (avx512: 14 x 32 tiles, avx2 and
// baseline: 6 x 16; K slices of 256; row blocks of 168 / 120 / 96), chosen by the CPU's features
// or forced with OSP_CPU_ISA (read once per process, so each ISA runs in a child process). For every
// ISA this CPU runs, under 1 and 2 threads, the f32 results match a plain-TS f64 triple loop on the
// values the inputs hold, on shapes at each edge of the tiles and blocks (M, N, K one below, at and
// one above a tile, a K slice or a row block; one row, one column, K = 1, large K, M too small to
// split among threads) in all four transpose combinations. avx512 and avx2 give the same bits
// (same K slices, one fused multiply-add per product, in k order); baseline (no FMA) does not, which
// shows the variable is honoured. An ISA this CPU lacks, or an unknown name, is a clear error.

import * as fs from 'fs';
import * as osp from '../src';
import { seeded } from './helpers/random';
import { cpu, expectWithin, maxAbs } from './helpers/tensors';
import { runWithEnv } from './helpers/child';

type Isa = 'avx512' | 'avx2' | 'baseline';
type Case = [M: number, N: number, K: number, transA: boolean, transB: boolean];

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 33, 7], // one row
  [15, 1, 300], // one column, two K slices
  [13, 31, 1], // K = 1
  [14, 32, 256], // exactly one avx512 tile and one K slice
  [15, 33, 257], // one over each
  [6, 16, 255], // exactly one avx2 tile, one under a K slice
  [7, 17, 513], // one over the avx2 tile, three K slices
  [170, 65, 40], // over a row block (168 avx512, 120 avx2, 96 baseline)
  [169, 100, 300], // two threads share the row blocks
  [121, 97, 260],
  [3, 700, 600], // M too small to give each thread rows: the columns are split
  [1, 1100, 1000], // one row, split by columns
  [200, 3, 2000], // large K, narrow
  [40, 40, 2600], // large K
];
const TRANSPOSES: [boolean, boolean][] = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];
const CASES: Case[] = SHAPES.flatMap(([M, N, K]) => TRANSPOSES.map(([tA, tB]) => [M, N, K, tA, tB] as Case));

const { seed } = seeded('matmul isa');
const baseSeed = seed % 1000000;
const inputSeeds = (i: number) => [baseSeed + 2 * i, baseSeed + 2 * i + 1];

/** The ISAs this CPU runs, read from /proc/cpuinfo's flags (baseline only where it cannot be read). */
function cpuIsas(): Isa[] {
  let flags = '';
  try {
    flags = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1] ?? '';
  } catch {
    return ['baseline'];
  }
  const has = (f: string) => flags.split(/\s+/).includes(f);
  const avx2 = has('avx2') && has('fma');
  if (avx2 && has('avx512f') && has('avx512vl')) return ['avx512', 'avx2', 'baseline'];
  return avx2 ? ['avx2', 'baseline'] : ['baseline'];
}
const AVAILABLE = cpuIsas();
const MISSING = (['avx512', 'avx2'] as Isa[]).filter((i) => !AVAILABLE.includes(i));

/** The child: every case's f32 result (base64 of its bytes), or the error the first matmul threw. */
const CHILD =
  `const o=require('./src');` +
  `const cases=${JSON.stringify(CASES)}, base=${baseSeed};` +
  `let out;try{out={results:cases.map(([M,N,K,tA,tB],i)=>{` +
  `const a=o.randn(tA?[K,M]:[M,K],{device:'cpu',seed:base+2*i}), b=o.randn(tB?[N,K]:[K,N],{device:'cpu',seed:base+2*i+1});` +
  `return Buffer.from(o.matmul(a,b,{transA:tA,transB:tB}).toArray().buffer).toString('base64')})}}` +
  `catch(e){out={error:{errorClass:e.constructor.name,message:e.message}}}` +
  `process.stdout.write(JSON.stringify(out))`;

interface ChildOutput {
  results?: string[];
  error?: { errorClass: string; message: string };
}
function runChild(isa: string, threads: string): ChildOutput {
  const r = runWithEnv(CHILD, { OSP_CPU_ISA: isa, OSP_NUM_THREADS: threads });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout) as ChildOutput;
}
const decode = (b64: string) => new Float32Array(new Uint8Array(Buffer.from(b64, 'base64')).buffer);

/** The plain-TS f64 triple loop on the inputs' values: c[i, j] = sum_k op(a)[i, k] op(b)[k, j]. */
function reference([M, N, K, transA, transB]: Case, a: Float64Array, b: Float64Array): Float64Array {
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += (transA ? a[k * M + i] : a[i * K + k]) * (transB ? b[j * K + k] : b[k * N + j]);
      c[i * N + j] = s;
    }
  return c;
}

/** The inputs the child drew (randn is the same on every ISA), as f64, and the f64 reference. */
const references = CASES.map((p, i) => {
  const [M, N, K, tA, tB] = p;
  const [sa, sb] = inputSeeds(i);
  return osp.scope(() => {
    const a = Float64Array.from(osp.randn(tA ? [K, M] : [M, K], { ...cpu, seed: sa }).toArray());
    const b = Float64Array.from(osp.randn(tB ? [N, K] : [K, N], { ...cpu, seed: sb }).toArray());
    // Tolerance as in matmul.test.ts: 1e-5 relative, floored at the size of a K-term random sum.
    const floor = Math.sqrt(K) * maxAbs(a) * maxAbs(b);
    return { want: reference(p, a, b), floor };
  });
});

const outputs = new Map<string, string[]>();
const resultsOf = (isa: Isa, threads: string) => {
  const key = `${isa}/${threads}`;
  if (!outputs.has(key)) {
    const out = runChild(isa, threads);
    expect(out.error).toBeUndefined();
    outputs.set(key, out.results!);
  }
  return outputs.get(key)!;
};

describe.each(AVAILABLE)('OSP_CPU_ISA=%s', (isa) => {
  it.each(['1', '2'])('under OSP_NUM_THREADS=%s every case matches the f64 triple loop to 1e-5', (threads) => {
    const results = resultsOf(isa, threads);
    expect(results.length).toBe(CASES.length);
    CASES.forEach(([M, N, K, tA, tB], i) => {
      const { want, floor } = references[i];
      const got = decode(results[i]);
      expectWithin(got, want, (j) => 1e-5 * Math.max(Math.abs(want[j]), floor), `${isa} M=${M} N=${N} K=${K} transA=${tA} transB=${tB}`);
    });
  });

  it('gives the same bits under 1 and 2 threads', () => {
    expect(resultsOf(isa, '2')).toEqual(resultsOf(isa, '1'));
  });
});

describe('the ISA paths side by side', () => {
  (AVAILABLE.includes('avx512') ? it : it.skip)('avx512 and avx2 give the same bits (same K slices, one FMA per product)', () => {
    expect(resultsOf('avx512', '2')).toEqual(resultsOf('avx2', '2'));
  });

  (AVAILABLE.includes('avx2') ? it : it.skip)('baseline (no FMA) differs from avx2 in some bits: OSP_CPU_ISA is honoured', () => {
    const fused = resultsOf('avx2', '1'), unfused = resultsOf('baseline', '1');
    const differing = CASES.filter((_, i) => fused[i] !== unfused[i]).length;
    expect(differing).toBeGreaterThan(0);
  });

  if (MISSING.length)
    it.each(MISSING)('an ISA this CPU lacks (%s) is a RangeError naming the best it has', (isa) => {
      expect(runChild(isa, '1').error).toEqual({
        errorClass: 'RangeError',
        message: `OSP_CPU_ISA is '${isa}' but this CPU's best is ${AVAILABLE[0]}; expected ${AVAILABLE[0]} or lower`,
      });
    });
  else it.skip('an ISA this CPU lacks is a RangeError (this CPU runs every path)', () => undefined);

  it('an unknown OSP_CPU_ISA is a RangeError naming the choices', () => {
    expect(runChild('sse9', '1').error).toEqual({
      errorClass: 'RangeError',
      message: "OSP_CPU_ISA is 'sse9'; expected avx512, avx2 or baseline (or unset for the best this CPU has)",
    });
  });
});
