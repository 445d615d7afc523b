// The preamble every GPU suite shares: where no GPU answers, the suite is skipped with a one-line
// reason (printed, never passed vacuously); OSP_GPU_TESTS=require (npm run test:gpu,
// scripts/gpu-check.sh) turns a missing GPU into a failure instead. Also the tolerances of the GPU
// suites that are derived rather than chosen, so test/gpuBounds.test.ts can check each derivation
// against a CPU simulation of the device's rounding (no GPU needed).
import * as osp from '../../src';

export function gpuSuite(name: string): { cuda: ReturnType<typeof osp.backends>['cuda']; required: boolean; describeGpu: jest.Describe } {
  const cuda = osp.backends().cuda;
  const required = process.env.OSP_GPU_TESTS === 'require';
  if (!cuda.available) {
    const reason = `${name} skipped: ${cuda.compiled ? cuda.reason : 'osp was built without CUDA'}`;
    if (required) throw new Error(`OSP_GPU_TESTS=require but ${reason}`);
    process.stdout.write(`${reason}\n`);
  }
  return { cuda, required, describeGpu: cuda.available ? describe : describe.skip };
}

/** bf16 rounding of a float64 array, as the device stores it (round to nearest even). */
export function roundBf16(x: Float64Array): Float64Array {
  const t = osp.tensor(x, [x.length], { dtype: 'bf16', device: 'cpu' });
  const r = Float64Array.from(t.toArray());
  t.dispose();
  return r;
}

/** Unit roundoff: round to nearest even keeps |rnd(x) - x| <= u |x| (bf16: 8 significant bits). */
export const U_BF16 = 2 ** -8;
export const U_F32 = 2 ** -24;

/**
 * Bound on |unfused - fused| / max(|fused|, floor) for the bf16 backward of token log-probs on cuda,
 * where g is the incoming gradient and gMax = max |g|.
 *
 * fused (token_logprobs.cu):  F_v = rnd(-g p_v), F_t = rnd(g (1 - p_t)), p_v = exp(x_v - lse) in f32.
 * unfused (log_softmax.cu):   y_v = rnd(x_v - lse) is stored in bf16, dy = rnd(g) at the target
 *                             (bf16), U_v = rnd(dy_v - exp(y_v) dy_t).
 * With L = -ln p_v, y_v's rounding is at most u L, so exp(y_v) = p_v e^d with |d| <= u L (the
 * "about 1.6% on one element" at L = 4), and U_v / F_v = (1 + e1)(1 + e2) e^d / (1 + e3) with
 * |e_i| <= u (g's rounding, and each output's): relative difference r(L) = (1+u)^2 e^(uL) / (1-u) - 1.
 * It grows with L, but |F_v| ~ |g| e^-L, so elements with |F| >= floor have L <= ln(gMax / floor);
 * below the floor r(L) |F| / floor shrinks as L grows (r'/r < 1), so its largest value is at
 * |F| = floor. The target element's difference is smaller (p_t (e^d - 1) / (1 - p_t) <= ~u). The
 * bound is r(ln(gMax / floor)), plus 1e-5 for the f32 arithmetic (__expf: 2 + 1.173 |x| ulps for
 * |x| <= 30 here, under 5e-6). With max |g| ~ 3 and floor 1e-3 that is ~4.4%, above the 2e-2 once used.
 */
export function unfusedBf16BackwardTolerance(gMax: number, floor: number): number {
  const u = U_BF16;
  const L = Math.max(Math.log((gMax * (1 + u)) / floor), 1); // |F| <= |g| (1 + u) p
  return ((1 + u) ** 2 * Math.exp(u * L)) / (1 - u) - 1 + 1e-5;
}

/** The shape and spans of a packed causal attention case (attention.h): token i attends keys [starts[i], i]. */
export interface AttentionShape {
  T: number;
  H: number;
  Hkv: number;
  Dh: number;
  scale: number;
  starts: Int32Array;
  ends: Int32Array;
}

/** The shape of sequences of the given lengths packed back to back, scale 1 / sqrt(Dh), and their sequence ids. */
export function packedAttentionShape(lengths: number[], H: number, Hkv: number, Dh: number): { shape: AttentionShape; ids: Int32Array } {
  const T = lengths.reduce((a, b) => a + b, 0);
  const starts = new Int32Array(T);
  const ends = new Int32Array(T);
  const ids = new Int32Array(T);
  let at = 0;
  lengths.forEach((len, s) => {
    for (let i = at; i < at + len; i++) [starts[i], ends[i], ids[i]] = [at, at + len, s];
    at += len;
  });
  return { shape: { T, H, Hkv, Dh, scale: 1 / Math.sqrt(Dh), starts, ends }, ids };
}

/** Per-element absolute error bounds of the bf16 tensor-core attention (attention_tc.cu), laid out as its outputs. */
export interface AttentionTcBounds {
  out: Float64Array; // [T, H, Dh]
  lse: Float64Array; // [T, H]
  gradQ: Float64Array; // [T, H, Dh]
  gradK: Float64Array; // [T, Hkv, Dh]
  gradV: Float64Array; // [T, Hkv, Dh]
}

/**
 * Bounds on |device - f64 op| for the bf16 tensor-core attention, on the same (bf16) inputs, with
 * the f64 backward fed the device's own out and lse (so D = dO . o and P = exp(s - lse) start from
 * the same values on both sides). `ref` holds the f64 op's outputs (its out, gradQ, gradK, gradV).
 *
 * Derivation, u = 2^-8 (bf16), P_ij = exp(s_ij - lse_i) computed here in f64:
 * - The products of bf16 values are exact in f32 and the mma sums them in f32, so the scores,
 *   dP = dO . v, D and every accumulation carry only f32 error: relative (n + Dh) 2^-23 of the sum
 *   of the terms' magnitudes (2^-23: allowing for a tensor core that truncates), n the terms of a
 *   sum, plus __expf's few ulps: under c = 1e-3 of the magnitude sums below for n <= 4096 (the GPU
 *   suite's sequences are shorter; 5e-4 at n = 4096 and Dh = 128).
 * - forward: P is rounded to bf16 before P V (relative u each; the running-max rescaling is in f32),
 *   the sum l is not: |dev - ref| <= u sum_j P_ij |v_j,d| + u |o| (out's own rounding)
 *   + c sum_j P_ij |v_j,d|. Bounded with max_d |v_j,d|: out <= (u + c) A_i + u |o_i,d|, A_i = sum_j P_ij max|v_j|.
 * - lse = m + log l in f32: the score error (Dh + 2) 2^-23 scale max_j sum_d |q_d k_jd| plus the
 *   sum's relative error (n + 2) 2^-24 plus 2^-18 for __expf (2 + 1.2 |x| ulps) and logf.
 * - dV_j = sum_{h in g, i} P_ij dO_i: P rounded to bf16: (u + c) sum P_ij max|dO_i| + u |dV|.
 * - dS_ij = P_ij (dP_ij - D_i) is rounded to bf16 before dS^T Q and dS K; with the magnitude sum
 *   B_ij = P_ij (sum_d |dO_i,d v_j,d| + sum_d |dO_i,d o_i,d|) >= |dS_ij| its f32 error (dP and D
 *   may cancel) is within c B_ij, so dK_j <= (u + c) scale sum_{h, i} B_ij max|q_i| + u |dK|
 *   and dQ_i <= (u + c) scale sum_j B_ij max|k_j| + u |dQ|.
 * Checked against a step-by-step simulation of the device's roundings in test/gpuBounds.test.ts.
 */
export function attentionTcBounds(
  s: AttentionShape,
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  dO: Float64Array,
  out: Float64Array,
  lse: Float64Array,
  ref: { out: Float64Array; gradQ: Float64Array; gradK: Float64Array; gradV: Float64Array },
): AttentionTcBounds {
  const { T, H, Hkv, Dh, scale, starts } = s;
  const u = U_BF16;
  const c = 1e-3;
  const group = H / Hkv;
  const rowMax = (a: Float64Array, r: number) => {
    let m = 0;
    for (let d = 0; d < Dh; d++) m = Math.max(m, Math.abs(a[r * Dh + d] as number));
    return m;
  };
  const qMax = Float64Array.from({ length: T * H }, (_, r) => rowMax(q, r));
  const gMax = Float64Array.from({ length: T * H }, (_, r) => rowMax(dO, r));
  const kMax = Float64Array.from({ length: T * Hkv }, (_, r) => rowMax(k, r));
  const vMax = Float64Array.from({ length: T * Hkv }, (_, r) => rowMax(v, r));
  const A = new Float64Array(T * H); // sum_j P max|v_j|
  const Q = new Float64Array(T * H); // scale sum_j B max|k_j|
  const K = new Float64Array(T * Hkv); // scale sum_{h,i} B max|q_i|
  const V = new Float64Array(T * Hkv); // sum_{h,i} P max|dO_i|
  const lseB = new Float64Array(T * H);
  for (let h = 0; h < H; h++) {
    const g = Math.floor(h / group);
    for (let i = 0; i < T; i++) {
      const r = i * H + h;
      let absD = 0;
      for (let d = 0; d < Dh; d++) absD += Math.abs((dO[r * Dh + d] as number) * (out[r * Dh + d] as number));
      let absScore = 0;
      const n = i - (starts[i] as number) + 1;
      for (let j = starts[i] as number; j <= i; j++) {
        const kr = j * Hkv + g;
        let sc = 0;
        let absDp = 0;
        let abs = 0;
        for (let d = 0; d < Dh; d++) {
          const qd = q[r * Dh + d] as number;
          const kd = k[kr * Dh + d] as number;
          sc += qd * kd;
          abs += Math.abs(qd * kd);
          absDp += Math.abs((dO[r * Dh + d] as number) * (v[kr * Dh + d] as number));
        }
        absScore = Math.max(absScore, scale * abs);
        const p = Math.exp(scale * sc - (lse[r] as number));
        const b = p * (absDp + absD);
        A[r] = (A[r] as number) + p * (vMax[kr] as number);
        Q[r] = (Q[r] as number) + scale * b * (kMax[kr] as number);
        K[kr] = (K[kr] as number) + scale * b * (qMax[r] as number);
        V[kr] = (V[kr] as number) + p * (gMax[r] as number);
      }
      lseB[r] = (Dh + 2) * 2 * U_F32 * absScore + (n + 2) * U_F32 + 2 ** -18;
    }
  }
  const per = (mass: Float64Array, want: Float64Array) =>
    Float64Array.from(want, (w, e) => (u + c) * (mass[Math.floor(e / Dh)] as number) + u * Math.abs(w));
  return { out: per(A, ref.out), lse: lseB, gradQ: per(Q, ref.gradQ), gradK: per(K, ref.gradK), gradV: per(V, ref.gradV) };
}

/** The worst ratio |got - want| / bound over the elements (<= 1: within the bound). */
export function worstBoundRatio(got: ArrayLike<number>, want: ArrayLike<number>, bound: ArrayLike<number>): number {
  let worst = 0;
  for (let e = 0; e < want.length; e++) {
    const err = Math.abs((got[e] as number) - (want[e] as number));
    worst = Math.max(worst, err === 0 ? 0 : err / (bound[e] as number));
    if (Number.isNaN(got[e] as number)) return Infinity;
  }
  return worst;
}
