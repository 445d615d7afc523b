// Seeded randomness for the tests: every run draws fresh inputs from a new seed, prints it, and
// OSP_TEST_SEED=<seed> replays a run exactly.
import { seededUniform } from '../../src/judge/pairing';
export function testSeed(): number {
  const fixed = process.env.OSP_TEST_SEED;
  return fixed !== undefined && fixed !== '' ? Number(fixed) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
}

/** mulberry32: small, fast, good enough for test data (the generator the pairing and the data order use). */
export const rng = seededUniform;

/** Standard normal draws (Box-Muller). */
export function normals(next: () => number, n: number, scale = 1): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(next(), 1e-12);
    const v = next();
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

export function uniforms(next: () => number, n: number, lo = 0, hi = 1): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * next();
  return out;
}

export function integers(next: () => number, n: number, lo: number, hi: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + Math.floor(next() * (hi - lo));
  return out;
}

/** A seeded generator for one describe block; logs the seed so a failure can be replayed. */
export function seeded(label: string): { seed: number; next: () => number } {
  const seed = testSeed();
  // Straight to stdout: console.log inside Jest adds a stack line to every seed.
  process.stdout.write(`[${label}] seed ${seed} (replay with OSP_TEST_SEED=${seed})\n`);
  return { seed, next: rng(seed) };
}
