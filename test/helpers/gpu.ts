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
