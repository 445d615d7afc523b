// causalAttention and its backward on the cpu: packed variable-length sequences, grouped-query heads.
// f64 against a plain-TS f64 reference (naive softmax per query over its allowed keys, 1e-12
// relative), packing isolation (each sequence alone gives the same rows, bitwise), the backward
// against central finite differences of L = sum(G ⊙ out) in f64 with Richardson extrapolation,
// f32 against the f64 op (1e-5 relative), bitwise determinism under OSP_NUM_THREADS=1 and 2, the
// argument checks, and the precomputed `spans` option (sequenceSpans' host checks, results bitwise
// equal to the sequenceIds path, bad spans refused).

import { Tensor, scope, tensor } from '../src/tensor';
import * as ops from '../src/ops';
import { caught } from './helpers/errors';
import { normals, seeded } from './helpers/random';
import { expectSameOutputUnderThreads } from './helpers/child';
import { floats, ints, read, f32, maxAbs, dot, expectRel, expectWithin, gradcheck, sampleEntries, cpu, type FloatType } from './helpers/tensors';
import { spawnSync } from 'child_process';
import fs from 'fs';
import os from 'os';
import path from 'path';

interface Problem {
  T: number;
  H: number;
  Hkv: number;
  Dh: number;
  ids: Int32Array;
}

/** Sequence ids for packed lengths; ids deliberately not sorted (7, 3, 9, ...). */
function packedIds(lengths: number[]): Int32Array {
  const labels = [7, 3, 9, 0, 12, 5];
  const ids: number[] = [];
  lengths.forEach((len, s) => {
    for (let i = 0; i < len; i++) ids.push(labels[s % labels.length] + 20 * Math.floor(s / labels.length));
  });
  return Int32Array.from(ids);
}

/** Plain f64 reference: for each (i, h) a naive softmax over the keys j <= i of i's sequence. */
function refAttention(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, p: Problem, scale: number) {
  const { T, H, Hkv, Dh, ids } = p;
  const out = new Float64Array(T * H * Dh);
  const lse = new Float64Array(T * H);
  for (let i = 0; i < T; i++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / Hkv));
      const keys: number[] = [];
      for (let j = 0; j <= i; j++) {
        let same = true;
        for (let t = j; t <= i; t++) if (ids[t] !== ids[i]) same = false;
        if (same) keys.push(j);
      }
      const s = keys.map((j) => {
        let d = 0;
        for (let c = 0; c < Dh; c++) d += q[(i * H + h) * Dh + c] * k[(j * Hkv + g) * Dh + c];
        return scale * d;
      });
      const m = Math.max(...s);
      const e = s.map((x) => Math.exp(x - m));
      const z = e.reduce((a, b) => a + b, 0);
      lse[i * H + h] = m + Math.log(z);
      keys.forEach((j, n) => {
        for (let c = 0; c < Dh; c++) out[(i * H + h) * Dh + c] += (e[n] / z) * v[(j * Hkv + g) * Dh + c];
      });
    }
  }
  return { out, lse };
}

function draw(next: () => number, p: Problem) {
  return {
    q: normals(next, p.T * p.H * p.Dh),
    k: normals(next, p.T * p.Hkv * p.Dh),
    v: normals(next, p.T * p.Hkv * p.Dh),
    G: normals(next, p.T * p.H * p.Dh),
  };
}

function forward(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, p: Problem, dtype: FloatType = 'f64', scale?: number) {
  return scope(() => {
    const r = ops.causalAttention(floats(q, [p.T, p.H, p.Dh], dtype), floats(k, [p.T, p.Hkv, p.Dh], dtype), floats(v, [p.T, p.Hkv, p.Dh], dtype), ints(p.ids), { scale });
    expect(r.out.shape).toEqual([p.T, p.H, p.Dh]);
    expect(r.out.dtype).toBe(dtype);
    expect(r.logsumexp.shape).toEqual([p.T, p.H]);
    expect(r.logsumexp.dtype).toBe(dtype);
    return { out: read(r.out), lse: read(r.logsumexp) };
  });
}

function backward(x: ReturnType<typeof draw>, p: Problem, dtype: FloatType = 'f64', scale?: number) {
  return scope(() => {
    const q = floats(x.q, [p.T, p.H, p.Dh], dtype);
    const k = floats(x.k, [p.T, p.Hkv, p.Dh], dtype);
    const v = floats(x.v, [p.T, p.Hkv, p.Dh], dtype);
    const ids = ints(p.ids);
    const r = ops.causalAttention(q, k, v, ids, { scale });
    const g = ops.causalAttentionBackward(q, k, v, ids, r.out, r.logsumexp, floats(x.G, [p.T, p.H, p.Dh], dtype), { scale });
    expect(g.gradQ.shape).toEqual([p.T, p.H, p.Dh]);
    expect(g.gradK.shape).toEqual([p.T, p.Hkv, p.Dh]);
    expect(g.gradV.shape).toEqual([p.T, p.Hkv, p.Dh]);
    return { out: read(r.out), lse: read(r.logsumexp), dq: read(g.gradQ), dk: read(g.gradK), dv: read(g.gradV) };
  });
}

const HEADS: [number, number][] = [
  [4, 2],
  [4, 4],
  [4, 1],
];
const LENGTHS = [1, 5, 17];

describe('causalAttention forward', () => {
  const { next } = seeded('attention forward');

  for (const [H, Hkv] of HEADS) {
    it(`f64 matches the plain-TS reference to 1e-12 (lengths ${LENGTHS.join(', ')}, H=${H}, Hkv=${Hkv}, Dh=8)`, () => {
      const ids = packedIds(LENGTHS);
      const p: Problem = { T: ids.length, H, Hkv, Dh: 8, ids };
      const x = draw(next, p);
      const got = forward(x.q, x.k, x.v, p);
      const want = refAttention(x.q, x.k, x.v, p, 1 / Math.sqrt(8));
      // Floor 1e-3: entries of out that cancel to ~0 carry roundings of the size of the N(0, 1) terms.
      expectRel(got.out, want.out, 1e-12, 1e-3, `out H=${H} Hkv=${Hkv}`);
      expectRel(got.lse, want.lse, 1e-12, 1e-3, `logsumexp H=${H} Hkv=${Hkv}`);
    });
  }

  it('scale overrides 1/sqrt(Dh); the default equals passing 1/sqrt(Dh)', () => {
    const ids = packedIds([3, 6]);
    const p: Problem = { T: ids.length, H: 2, Hkv: 1, Dh: 5, ids };
    const x = draw(next, p);
    expectRel(forward(x.q, x.k, x.v, p, 'f64', 0.7).out, refAttention(x.q, x.k, x.v, p, 0.7).out, 1e-12, 1e-3, 'scale 0.7');
    expect(forward(x.q, x.k, x.v, p, 'f64', 1 / Math.sqrt(5)).out).toEqual(forward(x.q, x.k, x.v, p).out);
  });

  it('the first token of each sequence attends only to itself: out = v, logsumexp = its own score', () => {
    const ids = packedIds([1, 1, 4]);
    const p: Problem = { T: ids.length, H: 2, Hkv: 2, Dh: 3, ids };
    const x = draw(next, p);
    const got = forward(x.q, x.k, x.v, p);
    for (const i of [0, 1, 2]) {
      for (let h = 0; h < 2; h++) {
        for (let c = 0; c < 3; c++) expect(got.out[(i * 2 + h) * 3 + c]).toBe(x.v[(i * 2 + h) * 3 + c]);
      }
    }
  });

  it('packing does not leak across sequences: each sequence alone gives the same rows, bitwise', () => {
    for (const [H, Hkv] of HEADS) {
      const lengths = [5, 1, 17, 4];
      const ids = packedIds(lengths);
      const p: Problem = { T: ids.length, H, Hkv, Dh: 8, ids };
      const x = draw(next, p);
      const packed = forward(x.q, x.k, x.v, p);
      let t0 = 0;
      for (const len of lengths) {
        const sq = { T: len, H, Hkv, Dh: 8, ids: new Int32Array(len) };
        const slice = (a: Float64Array, w: number) => a.subarray(t0 * w, (t0 + len) * w);
        const alone = forward(slice(x.q, H * 8), slice(x.k, Hkv * 8), slice(x.v, Hkv * 8), sq);
        expect(Array.from(alone.out)).toEqual(Array.from(slice(packed.out, H * 8)));
        expect(Array.from(alone.lse)).toEqual(Array.from(slice(packed.lse, H)));
        t0 += len;
      }
    }
  });

  it('T = 0 gives empty outputs', () => {
    const p: Problem = { T: 0, H: 4, Hkv: 2, Dh: 8, ids: new Int32Array(0) };
    const got = forward([], [], [], p);
    expect(got.out.length).toBe(0);
    expect(got.lse.length).toBe(0);
  });
});

/**
 * Rule for the backward (gradcheck, Richardson with a fixed step 1e-3):
 * |fd - analytic| <= 1e-6 * max(|fd|, |analytic|, 1e-3), on SAMPLES entries (or all) per gradient.
 */
const FD = { step: 1e-3, floor: 1e-3 };
const SAMPLES = 12;

describe('causalAttentionBackward', () => {
  const { next } = seeded('attention backward');

  for (const [H, Hkv] of HEADS) {
    it(`dq, dk, dv match finite differences of sum(G * out) in f64 (H=${H}, Hkv=${Hkv})`, () => {
      const ids = packedIds(LENGTHS);
      const p: Problem = { T: ids.length, H, Hkv, Dh: 8, ids };
      const x = draw(next, p);
      const g = backward(x, p);
      const L = (q: Float64Array, k: Float64Array, v: Float64Array) => dot(x.G, forward(q, k, v, p).out);
      gradcheck(`dq H=${H} Hkv=${Hkv}`, g.dq, (q) => L(q, x.k, x.v), x.q, { ...FD, entries: sampleEntries(next, x.q.length, SAMPLES) });
      gradcheck(`dk H=${H} Hkv=${Hkv}`, g.dk, (k) => L(x.q, k, x.v), x.k, { ...FD, entries: sampleEntries(next, x.k.length, SAMPLES) });
      gradcheck(`dv H=${H} Hkv=${Hkv}`, g.dv, (v) => L(x.q, x.k, v), x.v, { ...FD, entries: sampleEntries(next, x.v.length, SAMPLES) });
      // The same differences of the plain-TS reference's L (the native forward is not checking itself).
      const Lref = (k: Float64Array) => dot(x.G, refAttention(x.q, k, x.v, p, 1 / Math.sqrt(8)).out);
      gradcheck(`dk (TS reference) H=${H} Hkv=${Hkv}`, g.dk, Lref, x.k, { ...FD, entries: sampleEntries(next, x.k.length, 4) });
    });
  }

  it('with a scale override, the gradients match finite differences', () => {
    const ids = packedIds([2, 7]);
    const p: Problem = { T: ids.length, H: 3, Hkv: 1, Dh: 6, ids };
    const x = draw(next, p);
    const g = backward(x, p, 'f64', 0.3);
    const L = (q: Float64Array, k: Float64Array) => dot(x.G, forward(q, k, x.v, p, 'f64', 0.3).out);
    gradcheck('dq scale 0.3', g.dq, (q) => L(q, x.k), x.q, { ...FD, entries: sampleEntries(next, x.q.length, SAMPLES) });
    gradcheck('dk scale 0.3', g.dk, (k) => L(x.q, k), x.k, { ...FD, entries: sampleEntries(next, x.k.length, SAMPLES) });
  });
});

describe('causalAttention f32 against f64', () => {
  const { next } = seeded('attention f32');

  for (const [H, Hkv] of HEADS) {
    it(`forward and backward f32 match the f64 op to 1e-5 (H=${H}, Hkv=${Hkv})`, () => {
      const ids = packedIds([1, 5, 17, 40]);
      const p: Problem = { T: ids.length, H, Hkv, Dh: 16, ids };
      const raw = draw(next, p);
      // Both ops see the values an f32 tensor holds, so only the arithmetic differs.
      const x = { q: f32(raw.q), k: f32(raw.k), v: f32(raw.v), G: f32(raw.G) };
      const want = backward(x, p, 'f64');
      const got = backward(x, p, 'f32');
      // Floors: each output's largest magnitude (entries that cancel carry roundings of that size).
      for (const key of ['out', 'lse', 'dq', 'dk', 'dv'] as const) {
        expectRel(got[key], want[key], 1e-5, maxAbs(want[key]), `${key} f32 H=${H} Hkv=${Hkv}`);
      }
    });
  }
});

// ---- the tiled f32 kernels against their derived error bound ----------------------------------
//
// The f32 cpu op (attention_cpu_tiles.h) rounds at u = 2^-24 and its exp is a polynomial with
// relative error E < 2e-7. First-order bounds against the f64 op on the same (f32-held) inputs, per
// row i of head h with n = i - s(i) + 1 keys and nb <= ceil(n / 64) + 1 key blocks:
//   score error  eps_i = (Dh + 2) u scale max_j sum_d |q_id k_jd|     (pre-scaling, Dh FMAs)
//   lse          2 eps + E + (n + 2 nb + 4) u + u (2 |lse| + 2 log n + 2)
//                (the max itself, exp, the running sum, nb rescales, log and the final rounding)
//   out          r_i maxV_i + u |o|,  r_i = 4 eps + 2 E + (2 n + 4 nb + 4) u
//                (weights p e^delta renormalised move o by <= 2 delta maxV; f32 sums of P V and l)
// Backward, with P from the f64 op, delta_i = eps_i + lseBound_i + E (P's relative error) and
// rho_i = delta_i + r_i + (2 Dh + 8) u (dP and D = dO.o in f32, o's own error, dP - D, P (dP - D)):
//   |dS_ij - exact| <= 2 P_ij |dO_i|_1 maxV_i rho_i,  |dS_ij| <= 2 P_ij |dO_i|_1 maxV_i
//   dq_id   2 scale |dO_i|_1 maxV_i sum_j P_ij |k_jd| (rho_i + n u)
//   dk_jd   2 scale sum_{h in g, i >= j} P_ij |dO_i|_1 maxV_i |q_id| (rho_i + m u)
//   dv_jd   sum_{h in g, i >= j} P_ij |dO_id| (delta_i + m u),  m = group x (e(j) - j) terms
// each plus u |value| (the final rounding), and all times 1.1 for the second-order terms. The exp
// flushes to 0 below e^-87: every P_ij in the sums above also carries an absolute TINY = e^-87.
const U = 2 ** -24;
const EXP_ERR = 2e-7;
const TINY = Math.exp(-87);

function seqStarts(ids: Int32Array): Int32Array {
  const s = new Int32Array(ids.length);
  for (let i = 1; i < ids.length; i++) s[i] = ids[i] === ids[i - 1] ? s[i - 1] : i;
  return s;
}

interface F64Result {
  out: Float64Array;
  lse: Float64Array;
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
}

function errorBounds(x: ReturnType<typeof draw>, p: Problem, scale: number, want: F64Result) {
  const { T, H, Hkv, Dh, ids } = p;
  const group = H / Hkv;
  const starts = seqStarts(ids);
  const ends = new Int32Array(T);
  for (let i = T - 1; i >= 0; i--) ends[i] = i + 1 < T && starts[i + 1] === starts[i] ? ends[i + 1] : i + 1;
  const bound = {
    out: new Float64Array(T * H * Dh),
    lse: new Float64Array(T * H),
    dq: new Float64Array(T * H * Dh),
    dk: new Float64Array(T * Hkv * Dh),
    dv: new Float64Array(T * Hkv * Dh),
  };
  for (let i = 0; i < T; i++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / group);
      const qi = (i * H + h) * Dh;
      const n = i - starts[i] + 1;
      const nb = Math.ceil(n / 64) + 1;
      const m = group * (ends[i] - starts[i]);
      let qk = 0;
      let maxV = 0;
      for (let j = starts[i]; j <= i; j++) {
        let s = 0;
        for (let d = 0; d < Dh; d++) {
          s += Math.abs(x.q[qi + d] * x.k[(j * Hkv + g) * Dh + d]);
          maxV = Math.max(maxV, Math.abs(x.v[(j * Hkv + g) * Dh + d]));
        }
        qk = Math.max(qk, s);
      }
      const eps = (Dh + 2) * U * scale * qk;
      const lse = want.lse[i * H + h];
      const lseB = 2 * eps + EXP_ERR + (n + 2 * nb + 4) * U + U * (2 * Math.abs(lse) + 2 * Math.log(n) + 2);
      const r = 4 * eps + 2 * EXP_ERR + (2 * n + 4 * nb + 4) * U;
      bound.lse[i * H + h] = 1.1 * lseB;
      for (let d = 0; d < Dh; d++) bound.out[qi + d] = 1.1 * ((r + n * TINY) * maxV + U * Math.abs(want.out[qi + d]));
      const delta = eps + lseB + EXP_ERR;
      const rho = delta + r + (2 * Dh + 8) * U;
      let g1 = 0;
      for (let d = 0; d < Dh; d++) g1 += Math.abs(x.G[qi + d]);
      for (let j = starts[i]; j <= i; j++) {
        const kj = (j * Hkv + g) * Dh;
        let s = 0;
        for (let d = 0; d < Dh; d++) s += x.q[qi + d] * x.k[kj + d];
        const P = Math.exp(scale * s - lse);
        for (let d = 0; d < Dh; d++) {
          bound.dq[qi + d] += 2 * scale * g1 * maxV * Math.abs(x.k[kj + d]) * (P * (rho + n * U) + TINY);
          bound.dk[kj + d] += 2 * scale * g1 * maxV * Math.abs(x.q[qi + d]) * (P * (rho + m * U) + TINY);
          bound.dv[kj + d] += Math.abs(x.G[qi + d]) * (P * (delta + m * U) + TINY);
        }
      }
    }
  }
  for (const key of ['dq', 'dk', 'dv'] as const) {
    const b = bound[key];
    for (let e = 0; e < b.length; e++) b[e] = 1.1 * (b[e] + U * Math.abs(want[key][e]));
  }
  return bound;
}

interface BoundCase {
  name: string;
  lengths: number[];
  H: number;
  Hkv: number;
  Dh: number;
  /** q drawn from N(0, qScale^2): scores of tens, so exp overflows without the running max. */
  qScale?: number;
}

const BOUND_CASES: BoundCase[] = [
  { name: 'one token', lengths: [1], H: 2, Hkv: 1, Dh: 32 },
  { name: 'lengths around the 64-token tile (63, 64, 65, 129)', lengths: [63, 64, 65, 129], H: 2, Hkv: 1, Dh: 64 },
  { name: 'many short sequences packed (40 of 1..6 tokens)', lengths: Array.from({ length: 40 }, (_, i) => 1 + ((i * 7) % 6)), H: 4, Hkv: 4, Dh: 32 },
  { name: 'GQA ratio 4, Dh 96', lengths: [70, 9], H: 4, Hkv: 1, Dh: 96 },
  { name: 'GQA ratio 2, Dh 80 (not a multiple of the vector width)', lengths: [100], H: 2, Hkv: 1, Dh: 80 },
  { name: 'GQA ratio 1, Dh 128', lengths: [129], H: 2, Hkv: 2, Dh: 128 },
  { name: 'Dh 5 (padding inside one vector), 3 heads', lengths: [17, 3], H: 3, Hkv: 3, Dh: 5 },
  { name: 'large-magnitude scores (q ~ N(0, 40^2)): the online max matters', lengths: [150, 20], H: 2, Hkv: 1, Dh: 64, qScale: 40 },
];

function boundCaseInputs(next: () => number, c: BoundCase) {
  const ids = packedIds(c.lengths);
  const p: Problem = { T: ids.length, H: c.H, Hkv: c.Hkv, Dh: c.Dh, ids };
  const raw = draw(next, p);
  const qs = c.qScale ?? 1;
  // Both ops see the values an f32 tensor holds, so only the arithmetic differs.
  const x = { q: f32(raw.q.map((a) => a * qs)), k: f32(raw.k), v: f32(raw.v), G: f32(raw.G) };
  return { p, x };
}

function expectWithinBound(got: F64Result, want: F64Result, bound: ReturnType<typeof errorBounds>, what: string) {
  for (const key of ['out', 'lse', 'dq', 'dk', 'dv'] as const) {
    expectWithin(got[key], want[key], (i) => bound[key][i], `${key} ${what}`);
  }
}

function expectTypicalError(got: F64Result, want: F64Result, rel: number, what: string) {
  for (const key of ['out', 'lse', 'dq', 'dk', 'dv'] as const) {
    // Floor 1: inputs are N(0, 1)-sized, so an output that cancels to 0 (dq of a lone token) still
    // carries roundings of terms of order 1.
    const tol = rel * Math.max(maxAbs(want[key]), 1);
    expectWithin(got[key], want[key], () => tol, `${key} ${what} (within ${rel} of the largest or of 1)`);
  }
}

describe('causalAttention f32 (tiled SIMD kernels) within the derived error bound of the f64 op', () => {
  const { next } = seeded('attention f32 bound');

  for (const c of BOUND_CASES) {
    it(`${c.name} (H=${c.H}, Hkv=${c.Hkv}, Dh=${c.Dh})`, () => {
      const { p, x } = boundCaseInputs(next, c);
      const scale = 1 / Math.sqrt(c.Dh);
      const want = backward(x, p, 'f64');
      const got = backward(x, p, 'f32');
      const bound = errorBounds(x, p, scale, want);
      expectWithinBound(got, want, bound, c.name);
      // The bound is worst-case (|dO|_1 max|v| for every dot product) and loose for dq and dk (up to
      // a few % of their scale); the observed error is ~1e-7..1e-6 of each output's scale, so the
      // check that catches a subtly wrong tile is this one (score errors grow with the scores).
      expectTypicalError(got, want, 1e-5 * (c.qScale ?? 1), c.name);
    });
  }

  it('the AVX2 and baseline copies (OSP_CPU_ISA) are within the same bound', () => {
    const c: BoundCase = { name: 'isa', lengths: [70, 1, 33], H: 4, Hkv: 2, Dh: 40 };
    const { p, x } = boundCaseInputs(next, c);
    const want = backward(x, p, 'f64');
    const bound = errorBounds(x, p, 1 / Math.sqrt(c.Dh), want);
    // The child reads the inputs from a JSON file and prints the f32 outputs as JSON.
    const file = path.join(os.tmpdir(), `osp-attention-isa-${process.pid}.json`);
    fs.writeFileSync(file, JSON.stringify({ p: { ...p, ids: Array.from(p.ids) }, x: { q: Array.from(x.q), k: Array.from(x.k), v: Array.from(x.v), G: Array.from(x.G) } }));
    const script =
      `const t=require('./src/tensor'), o=require('./src/ops'), {p,x}=JSON.parse(require('fs').readFileSync(${JSON.stringify(file)},'utf8'));` +
      `const f=(a,s)=>t.tensor(Float32Array.from(a),s,{device:'cpu'});` +
      `const q=f(x.q,[p.T,p.H,p.Dh]), k=f(x.k,[p.T,p.Hkv,p.Dh]), v=f(x.v,[p.T,p.Hkv,p.Dh]), g=f(x.G,[p.T,p.H,p.Dh]);` +
      `const ids=t.tensor(Int32Array.from(p.ids),[p.T],{device:'cpu'});` +
      `const r=o.causalAttention(q,k,v,ids), b=o.causalAttentionBackward(q,k,v,ids,r.out,r.logsumexp,g);` +
      `const a=(z)=>Array.from(z.toArray());` +
      `process.stdout.write(JSON.stringify({out:a(r.out),lse:a(r.logsumexp),dq:a(b.gradQ),dk:a(b.gradK),dv:a(b.gradV)}))`;
    try {
      for (const isa of ['avx2', 'baseline']) {
        const run = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], {
          cwd: path.join(__dirname, '..'),
          env: { ...process.env, OSP_CPU_ISA: isa },
          encoding: 'utf8',
          maxBuffer: 64 * 2 ** 20,
        });
        expect(run.stderr).toBe('');
        expect(run.status).toBe(0);
        const got = JSON.parse(run.stdout) as Record<keyof F64Result, number[]>;
        const asF64 = Object.fromEntries(Object.entries(got).map(([key, val]) => [key, Float64Array.from(val)])) as unknown as F64Result;
        expectWithinBound(asF64, want, bound, `OSP_CPU_ISA=${isa}`);
        expectTypicalError(asF64, want, 1e-5, `OSP_CPU_ISA=${isa}`);
      }
    } finally {
      fs.rmSync(file, { force: true });
    }
  });
});

describe('causalAttention f32 is bitwise the same under any thread count', () => {
  const { seed } = seeded('attention determinism');

  it('forward and backward under OSP_NUM_THREADS=1 and 2', () => {
    const script =
      `const t=require('./src/tensor'), o=require('./src/ops');` +
      `const s=${seed % 1000000}, T=300, H=4, Hkv=2, Dh=32;` +
      `const q=t.randn([T,H,Dh],{device:'cpu',seed:s}), k=t.randn([T,Hkv,Dh],{device:'cpu',seed:s+1}), v=t.randn([T,Hkv,Dh],{device:'cpu',seed:s+2}), g=t.randn([T,H,Dh],{device:'cpu',seed:s+3});` +
      `const ids=t.tensor(Int32Array.from({length:T},(_,i)=>i<7?0:i<150?1:i<151?2:3),[T],{device:'cpu'});` +
      `const r=o.causalAttention(q,k,v,ids), b=o.causalAttentionBackward(q,k,v,ids,r.out,r.logsumexp,g);` +
      `const parts=[r.out,r.logsumexp,b.gradQ,b.gradK,b.gradV].map((a)=>Buffer.from(a.toArray().buffer).toString('base64'));` +
      `process.stdout.write(parts.join('|'))`;
    expectSameOutputUnderThreads(script, 300 * 4 * 32 * 4);
  });
});

describe('causalAttention argument checks', () => {
  const ok = (T = 4, H = 4, Hkv = 2, Dh = 8, dtype: FloatType = 'f64') => ({
    q: floats(new Float64Array(T * H * Dh), [T, H, Dh], dtype),
    k: floats(new Float64Array(T * Hkv * Dh), [T, Hkv, Dh], dtype),
    v: floats(new Float64Array(T * Hkv * Dh), [T, Hkv, Dh], dtype),
    ids: ints(new Int32Array(T)),
  });
  const fwd = (a: ReturnType<typeof ok>) => () => ops.causalAttention(a.q, a.k, a.v, a.ids);

  it('H not divisible by Hkv is a TypeError naming k', () => {
    scope(() => {
      const a = ok(4, 4, 3);
      expect(caught(fwd(a))).toEqual({ errorClass: 'TypeError', message: expect.stringMatching(/^causalAttention: k has shape \[4, 3, 8\].*divides q's 4 heads/) });
    });
  });

  it('a head-dimension or token-count mismatch is a TypeError naming the argument', () => {
    scope(() => {
      const a = ok();
      const kBad = floats(new Float64Array(4 * 2 * 7), [4, 2, 7]);
      expect(caught(() => ops.causalAttention(a.q, kBad, a.v, a.ids))).toEqual({ errorClass: 'TypeError', message: expect.stringMatching(/^causalAttention: k has shape \[4, 2, 7\].*head dimension/) });
      const vBad = floats(new Float64Array(5 * 2 * 8), [5, 2, 8]);
      expect(caught(() => ops.causalAttention(a.q, a.k, vBad, a.ids))).toEqual({ errorClass: 'TypeError', message: expect.stringMatching(/^causalAttention: v has shape \[5, 2, 8\].*one row per token/) });
      const vHeads = floats(new Float64Array(4 * 1 * 8), [4, 1, 8]);
      expect(caught(() => ops.causalAttention(a.q, a.k, vHeads, a.ids))).toEqual({ errorClass: 'TypeError', message: expect.stringMatching(/^causalAttention: v has shape \[4, 1, 8\].*kv heads of k/) });
      expect(caught(() => ops.causalAttention(a.q, a.k, a.v, ints([0, 0, 0])))).toEqual({ errorClass: 'TypeError', message: expect.stringMatching(/^causalAttention: sequenceIds has shape \[3\]/) });
      const q2 = floats(new Float64Array(32), [4, 8]);
      expect(caught(() => ops.causalAttention(q2, a.k, a.v, a.ids))).toEqual({ errorClass: 'TypeError', message: expect.stringMatching(/^causalAttention: q has shape \[4, 8\]; expected 3 dimensions/) });
    });
  });

  it('wrong dtypes are TypeErrors naming the argument', () => {
    scope(() => {
      const a = ok();
      const k32 = floats(new Float64Array(4 * 2 * 8), [4, 2, 8], 'f32');
      expect(caught(() => ops.causalAttention(a.q, k32, a.v, a.ids))?.message).toMatch(/^causalAttention: q has dtype f64 but k has dtype f32/);
      const idsF = floats([0, 0, 0, 0], [4]);
      expect(caught(() => ops.causalAttention(a.q, a.k, a.v, idsF))).toEqual({ errorClass: 'TypeError', message: expect.stringMatching(/^causalAttention: sequenceIds has dtype f64/) });
      const qi = tensor(new Int32Array(4 * 4 * 8), [4, 4, 8], cpu);
      expect(caught(() => ops.causalAttention(qi, a.k, a.v, a.ids))).toEqual({ errorClass: 'TypeError', message: expect.stringMatching(/^causalAttention: q has dtype i32/) });
      const r = ops.causalAttention(a.q, a.k, a.v, a.ids);
      const lse32 = floats(new Float64Array(16), [4, 4], 'f32');
      const g = floats(new Float64Array(4 * 4 * 8), [4, 4, 8]);
      expect(caught(() => ops.causalAttentionBackward(a.q, a.k, a.v, a.ids, r.out, lse32, g))).toEqual({ errorClass: 'TypeError', message: expect.stringMatching(/^causalAttentionBackward: logsumexp has dtype f32/) });
      const gBad = floats(new Float64Array(4 * 4 * 7), [4, 4, 7]);
      expect(caught(() => ops.causalAttentionBackward(a.q, a.k, a.v, a.ids, r.out, r.logsumexp, gBad))).toEqual({ errorClass: 'TypeError', message: expect.stringMatching(/^causalAttentionBackward: gradOut has shape \[4, 4, 7\]/) });
    });
  });

  it('a sequence id that reappears after another sequence started is a RangeError naming sequenceIds[i]', () => {
    scope(() => {
      const a = ok();
      const ids = ints([0, 0, 1, 0]);
      expect(caught(() => ops.causalAttention(a.q, a.k, a.v, ids))).toEqual({
        errorClass: 'RangeError',
        message: 'causalAttention: sequenceIds[3] = 0 reappears after sequence 1 started; expected the tokens of each sequence to be contiguous',
      });
      const r = ops.causalAttention(a.q, a.k, a.v, a.ids);
      const g = floats(new Float64Array(4 * 4 * 8), [4, 4, 8]);
      expect(caught(() => ops.causalAttentionBackward(a.q, a.k, a.v, ints([2, 5, 2, 2]), r.out, r.logsumexp, g))?.message).toMatch(/^causalAttentionBackward: sequenceIds\[2\] = 2 reappears/);
      // Unsorted but contiguous ids are fine.
      expect(caught(() => ops.causalAttention(a.q, a.k, a.v, ints([5, 5, 1, -3])))).toBeUndefined();
    });
  });

  it('a non-contiguous view, a bad scale and a non-tensor argument are refused', () => {
    scope(() => {
      const a = ok(4, 4, 4);
      const kt = a.k.transpose(0, 1);
      expect(caught(() => ops.causalAttention(a.q, kt, a.v, a.ids))).toEqual({ errorClass: 'TypeError', message: expect.stringMatching(/^causalAttention: k is a non-contiguous view/) });
      for (const scale of [0, -1, NaN, Infinity]) {
        expect(caught(() => ops.causalAttention(a.q, a.k, a.v, a.ids, { scale }))).toEqual({ errorClass: 'RangeError', message: expect.stringMatching(/^causalAttention: scale is /) });
      }
      expect(caught(() => ops.causalAttention(a.q, a.k, a.v, [0, 0, 0, 0] as unknown as Tensor))).toEqual({ errorClass: 'TypeError', message: expect.stringMatching(/^causalAttention: sequenceIds is not a Tensor/) });
    });
  });
});

describe('sequenceSpans', () => {
  const spansOf = (ids: number[]) => {
    const t = ops.sequenceSpans(Int32Array.from(ids), 'cpu');
    try {
      expect(t.dtype).toBe('i32');
      expect(t.device).toBe('cpu');
      expect(t.shape).toEqual([2, ids.length]);
      const a = Array.from(t.toArray());
      return [a.slice(0, ids.length), a.slice(ids.length)];
    } finally {
      t.dispose();
    }
  };

  it('row 0 holds the first token of each token\'s sequence, row 1 one past its last', () => {
    expect(spansOf([7, 7, 3, 3, 3, 9])).toEqual([
      [0, 0, 2, 2, 2, 5],
      [2, 2, 5, 5, 5, 6],
    ]);
    expect(spansOf([4])).toEqual([[0], [1]]);
    expect(spansOf([1, 2, 3])).toEqual([
      [0, 1, 2],
      [1, 2, 3],
    ]);
    expect(spansOf([])).toEqual([[], []]);
  });

  it('unsorted and negative ids are fine as long as each sequence is contiguous', () => {
    expect(spansOf([5, 5, 1, -3])).toEqual([
      [0, 0, 2, 3],
      [2, 2, 3, 4],
    ]);
  });

  it('an id that reappears after another sequence started is a RangeError worded like the op\'s', () => {
    expect(caught(() => ops.sequenceSpans(Int32Array.from([0, 0, 1, 0]), 'cpu'))).toEqual({
      errorClass: 'RangeError',
      message: 'sequenceSpans: sequenceIds[3] = 0 reappears after sequence 1 started; expected the tokens of each sequence to be contiguous',
    });
    expect(caught(() => ops.sequenceSpans(Int32Array.from([2, 5, 2, 2]), 'cpu'))?.message).toMatch(/^sequenceSpans: sequenceIds\[2\] = 2 reappears after sequence 5/);
  });

  it('anything but an Int32Array is a TypeError', () => {
    expect(caught(() => ops.sequenceSpans([0, 0, 1] as unknown as Int32Array, 'cpu'))).toEqual({
      errorClass: 'TypeError',
      message: expect.stringMatching(/^sequenceSpans: sequenceIds is not an Int32Array/),
    });
  });
});

describe('causalAttention with precomputed spans', () => {
  const { next } = seeded('attention spans');
  const bits = (t: Tensor) => Buffer.from(t.toArray().buffer).toString('base64');

  /** Forward and backward outputs, as bytes, with or without spans. */
  function run(x: ReturnType<typeof draw>, p: Problem, dtype: FloatType, withSpans: boolean): string[] {
    return scope(() => {
      const q = floats(x.q, [p.T, p.H, p.Dh], dtype);
      const k = floats(x.k, [p.T, p.Hkv, p.Dh], dtype);
      const v = floats(x.v, [p.T, p.Hkv, p.Dh], dtype);
      const ids = ints(p.ids);
      const opts = withSpans ? { spans: ops.sequenceSpans(p.ids, 'cpu') } : {};
      const r = ops.causalAttention(q, k, v, ids, opts);
      const g = ops.causalAttentionBackward(q, k, v, ids, r.out, r.logsumexp, floats(x.G, [p.T, p.H, p.Dh], dtype), opts);
      return [r.out, r.logsumexp, g.gradQ, g.gradK, g.gradV].map(bits);
    });
  }

  for (const dtype of ['f64', 'f32'] as const) {
    for (const [H, Hkv] of HEADS) {
      it(`${dtype} forward and backward are bitwise the same as with sequenceIds alone (H=${H}, Hkv=${Hkv})`, () => {
        for (const lengths of [[1], [5, 1, 17, 4], [1, 1, 1], [40]]) {
          const ids = packedIds(lengths);
          const p: Problem = { T: ids.length, H, Hkv, Dh: 8, ids };
          const x = draw(next, p);
          const want = run(x, p, dtype, false);
          expect(want[0].length).toBeGreaterThan(0);
          expect(run(x, p, dtype, true)).toEqual(want);
        }
      });
    }
  }

  it('T = 0 with [2, 0] spans gives empty outputs', () => {
    scope(() => {
      const z = floats([], [0, 2, 4]);
      const r = ops.causalAttention(z, z, z, ints([]), { spans: ops.sequenceSpans(new Int32Array(0), 'cpu') });
      expect(r.out.shape).toEqual([0, 2, 4]);
      expect(r.logsumexp.shape).toEqual([0, 2]);
    });
  });

  it('with spans, sequenceIds is checked for shape, dtype and device but its values are not read', () => {
    scope(() => {
      const p: Problem = { T: 4, H: 2, Hkv: 1, Dh: 4, ids: Int32Array.from([0, 0, 1, 1]) };
      const x = draw(next, p);
      const [q, k, v] = [floats(x.q, [4, 2, 4]), floats(x.k, [4, 1, 4]), floats(x.v, [4, 1, 4])];
      const spans = ops.sequenceSpans(p.ids, 'cpu');
      const a = ops.causalAttention(q, k, v, ints(p.ids), { spans });
      const b = ops.causalAttention(q, k, v, ints([0, 0, 1, 0]), { spans });
      expect(bits(b.out)).toBe(bits(a.out));
      expect(caught(() => ops.causalAttention(q, k, v, ints([0, 0, 1]), { spans }))?.message).toMatch(/^causalAttention: sequenceIds has shape \[3\]/);
    });
  });

  describe('a bad spans tensor is a clear error', () => {
    const T = 4;
    const ok = () => {
      const q = floats(new Float64Array(T * 2 * 4), [T, 2, 4]);
      const kv = floats(new Float64Array(T * 1 * 4), [T, 1, 4]);
      return { q, kv, ids: ints([0, 0, 1, 1]) };
    };
    const spansT = (rows: number[][]) => tensor(Int32Array.from(rows.flat()), [rows.length, rows[0].length], cpu);
    const both = (a: ReturnType<typeof ok>, spans: Tensor) => {
      const fwd = caught(() => ops.causalAttention(a.q, a.kv, a.kv, a.ids, { spans }));
      const r = ops.causalAttention(a.q, a.kv, a.kv, a.ids);
      const bwd = caught(() => ops.causalAttentionBackward(a.q, a.kv, a.kv, a.ids, r.out, r.logsumexp, a.q, { spans }));
      return { fwd, bwd };
    };

    it('a wrong shape or dtype is a TypeError naming spans', () => {
      scope(() => {
        const a = ok();
        const cases: [Tensor, RegExp][] = [
          [ints([0, 0, 2, 2]), /^causalAttention(Backward)?: spans has shape \[4\]; expected 2 dimensions/],
          [spansT([[0, 0, 2, 2, 4], [2, 2, 4, 4, 5]]), /^causalAttention(Backward)?: spans has shape \[2, 5\].*one column per token of q/],
          [spansT([[0, 0, 2, 2], [2, 2, 4, 4], [0, 0, 0, 0]]), /^causalAttention(Backward)?: spans has shape \[3, 4\].*starts.*ends/],
          [floats([0, 0, 2, 2, 2, 2, 4, 4], [2, 4]), /^causalAttention(Backward)?: spans has dtype f64/],
        ];
        for (const [spans, re] of cases) {
          const { fwd, bwd } = both(a, spans);
          expect(fwd).toEqual({ errorClass: 'TypeError', message: expect.stringMatching(re) });
          expect(bwd).toEqual({ errorClass: 'TypeError', message: expect.stringMatching(re) });
          expect(fwd?.message.startsWith('causalAttention: ')).toBe(true);
          expect(bwd?.message.startsWith('causalAttentionBackward: ')).toBe(true);
        }
        expect(caught(() => ops.causalAttention(a.q, a.kv, a.kv, a.ids, { spans: [[0], [1]] as unknown as Tensor }))).toEqual({
          errorClass: 'TypeError',
          message: expect.stringMatching(/^causalAttention: spans is not a Tensor/),
        });
      });
    });

    it('a start or end out of range is a RangeError naming the column', () => {
      scope(() => {
        const a = ok();
        const cases: [number[][], string][] = [
          [[[0, 0, 2, 2], [2, 2, 4, 5]], 'spans[:, 3] = [2, 5]; expected a start and an end with 0 <= start <= 3 < end <= 4'],
          [[[-1, 0, 2, 2], [2, 2, 4, 4]], 'spans[:, 0] = [-1, 2]; expected a start and an end with 0 <= start <= 0 < end <= 4'],
          [[[0, 0, 3, 2], [2, 2, 4, 4]], 'spans[:, 2] = [3, 4]; expected a start and an end with 0 <= start <= 2 < end <= 4'],
          [[[0, 0, 2, 2], [2, 1, 4, 4]], 'spans[:, 1] = [0, 1]; expected a start and an end with 0 <= start <= 1 < end <= 4'],
          [[[0, 0, 2, 2], [2, 2, 4, 2147483647]], 'spans[:, 3] = [2, 2147483647]; expected a start and an end with 0 <= start <= 3 < end <= 4'],
        ];
        for (const [rows, msg] of cases) {
          const { fwd, bwd } = both(a, spansT(rows));
          expect(fwd).toEqual({ errorClass: 'RangeError', message: `causalAttention: ${msg}` });
          expect(bwd).toEqual({ errorClass: 'RangeError', message: `causalAttentionBackward: ${msg}` });
        }
      });
    });

    it('columns that are in range but do not describe contiguous sequences are a RangeError naming the column', () => {
      scope(() => {
        const a = ok();
        const cases: [number[][], string][] = [
          // token 1 opens a sequence while token 0's runs to 2
          [[[0, 1, 2, 2], [2, 2, 4, 4]], 'spans[:, 1] = [1, 2] follows spans[:, 0] = [0, 2]'],
          // token 2 continues token 1's start with another end
          [[[0, 0, 0, 3], [3, 3, 4, 4]], 'spans[:, 2] = [0, 4] follows spans[:, 1] = [0, 3]'],
        ];
        for (const [rows, msg] of cases) {
          const { fwd, bwd } = both(a, spansT(rows));
          expect(fwd).toEqual({ errorClass: 'RangeError', message: expect.stringContaining(`causalAttention: ${msg}; expected the same span`) });
          expect(bwd?.message).toMatch(/^causalAttentionBackward: spans\[:, \d\]/);
        }
      });
    });
  });
});
