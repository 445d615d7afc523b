// Plain-TS float64 reference of sampleTokens (native/kernels/sampling/sampling.h): the kept set by
// sorting, the probabilities, the counter-based uniform (splitmix64 with BigInt) and the draw.
const M64 = (1n << 64n) - 1n;

function splitmix64(x: bigint): bigint {
  x = (x + 0x9e3779b97f4a7c15n) & M64;
  x = ((x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  x = ((x ^ (x >> 27n)) * 0x94d049bb133111ebn) & M64;
  return x ^ (x >> 31n);
}

/** The row's uniform in [0, 1) from (seed, stream, step): 24 bits of splitmix64. */
export function uniformAt(seed: number, stream: number, step: number): number {
  const key = (BigInt(stream >>> 0) << 32n) | BigInt(step >>> 0);
  const r = splitmix64(splitmix64(BigInt(seed) ^ 0x5a4d504c45n) ^ ((key * 0xd1b54a32d192ed03n) & M64));
  return Number(r >> 40n) / 16777216;
}

export interface SampleSettings {
  temperature: number;
  topP?: number;
  topK?: number;
}

export interface RefDistribution {
  /** Probability of each token under the distribution sampled from (0 outside the kept set). */
  probs: number[];
  /** log of probs (-Infinity outside the kept set); 0 at the argmax when greedy. */
  logprobs: number[];
  /** log_softmax of the raw logits. */
  modelLogprobs: number[];
  /** Greedy: the argmax (lowest index on ties); else -1. */
  greedy: number;
  /**
   * How far (as a fraction of the top-k mass) topP is from the nucleus masses either side of the
   * cut (Infinity without top-p): a cut that close may move under f32 rounding.
   */
  cutMargin: number;
}

/** The distribution sampleTokens draws row `row` from, in f64 with sorts (ties at a cut-off kept). */
export function refDistribution(row: ArrayLike<number>, s: SampleSettings): RefDistribution {
  const V = row.length;
  const finite = Array.from(row).filter((v) => v > -Infinity);
  const m = finite.reduce((a, v) => Math.max(a, v), -Infinity);
  let se = 0;
  for (const v of finite) se += Math.exp(v - m);
  const lse = m + Math.log(se);
  const modelLogprobs = Array.from(row, (v) => v - lse);
  if (s.temperature === 0) {
    const greedy = Array.from(row).indexOf(m);
    const probs = Array.from(row, (_, i) => (i === greedy ? 1 : 0));
    return { probs, logprobs: probs.map((p) => Math.log(p)), modelLogprobs, greedy, cutMargin: Infinity };
  }
  const topK = s.topK ?? 0;
  const topP = s.topP ?? 1;
  const desc = [...finite].sort((a, b) => b - a);
  let cut = topK > 0 && topK < finite.length ? desc[topK - 1] : -Infinity;
  const w = (v: number) => Math.exp((v - m) / s.temperature);
  const keptK = (v: number) => v > -Infinity && v >= cut;
  let cutMargin = Infinity;
  if (topP < 1) {
    const kept = desc.filter(keptK);
    const zk = kept.reduce((a, v) => a + w(v), 0);
    let cum = 0;
    for (const v of kept) {
      const before = cum;
      cum += w(v);
      if (cum >= topP * zk) {
        cut = Math.max(cut, v);
        cutMargin = Math.min(topP - before / zk, cum / zk - topP);
        break;
      }
    }
  }
  let z = 0;
  for (let i = 0; i < V; i++) if (keptK(row[i])) z += w(row[i]);
  const probs = Array.from(row, (v) => (keptK(v) ? w(v) / z : 0));
  const logprobs = Array.from(row, (v) => (keptK(v) ? (v - m) / s.temperature - Math.log(z) : -Infinity));
  return { probs, logprobs, modelLogprobs, greedy: -1, cutMargin };
}

/**
 * The reference draw for uniform u: the first token in index order whose running probability
 * exceeds u, and how far u is from the nearest boundary of the cumulative distribution (a draw
 * that close to a boundary may go either way under rounding).
 */
export function refDraw(d: RefDistribution, u: number): { token: number; margin: number } {
  if (d.greedy >= 0) return { token: d.greedy, margin: Infinity };
  let cum = 0;
  let margin = Infinity;
  let token = -1;
  for (let i = 0; i < d.probs.length; i++) {
    if (d.probs[i] === 0) continue;
    const before = cum;
    cum += d.probs[i];
    if (token < 0 && cum > u) {
      token = i;
      margin = Math.min(u - before, cum - u);
    }
  }
  if (token < 0) token = d.probs.reduce((last, p, i) => (p > 0 ? i : last), -1);
  return { token, margin };
}

// ---- chi-square ------------------------------------------------------------------------------

function lnGamma(z: number): number {
  const g = 7;
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  z -= 1;
  let x = c[0];
  for (let i = 1; i < g + 2; i++) x += c[i] / (z + i);
  const t = z + g + 0.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(x);
}

/** Regularised upper incomplete gamma Q(a, x) (series below a + 1, continued fraction above). */
function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const lead = Math.exp(-x + a * Math.log(x) - lnGamma(a));
  if (x < a + 1) {
    let sum = 1 / a;
    let term = sum;
    for (let n = 1; n < 1000; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-15) break;
    }
    return 1 - sum * lead;
  }
  let b = x + 1 - a;
  let c = 1e300;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return lead * h;
}

/** Pearson's statistic of observed counts against expected ones and its p-value (df = cells - 1). */
export function chiSquare(observed: number[], expected: number[]): { statistic: number; df: number; p: number } {
  let statistic = 0;
  for (let i = 0; i < observed.length; i++) statistic += (observed[i] - expected[i]) ** 2 / expected[i];
  const df = observed.length - 1;
  return { statistic, df, p: gammaQ(df / 2, statistic / 2) };
}
