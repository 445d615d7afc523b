// preferenceLoss (fused SPCE / DPO / IPO with the gradients of the mean) on the CPU, against a plain
// TypeScript f64 reference of METHOD.md section 3, central finite differences, the loss laws, the
// f32 path and the unfused composition preferenceLossUnfused.
import * as osp from '../src';
import type { PreferenceKind } from '../src';
import { normals, seeded, uniforms } from './helpers/random';
import { expectRel, gradcheck, maxAbs, type FloatType } from './helpers/tensors';

type LossFn = typeof osp.preferenceLoss;

const KINDS: PreferenceKind[] = ['spce', 'dpo', 'ipo'];

/** One batch of B pairs; p is only passed for spce. */
interface Pairs {
  pc: Float64Array;
  pr: Float64Array;
  rc: Float64Array;
  rr: Float64Array;
  p: Float64Array;
}

/** Every output of a call, read back to the host in f64. */
interface Out {
  loss: number;
  losses: number[];
  pHat: number[];
  margins: number[];
  gc: number[];
  gr: number[];
}

const OUTPUT_KEYS = ['losses', 'pHat', 'margins', 'gc', 'gr'] as const;

function run(kind: PreferenceKind, x: Pairs, beta: number, dtype: FloatType = 'f64', fn: LossFn = osp.preferenceLoss): Out {
  return osp.scope(() => {
    const t = (a: Float64Array) => osp.tensor(a, [a.length], { dtype, device: 'cpu' });
    const r = fn(
      kind,
      {
        policyChosen: t(x.pc),
        policyRejected: t(x.pr),
        refChosen: t(x.rc),
        refRejected: t(x.rr),
        ...(kind === 'spce' ? { target: t(x.p) } : {}),
      },
      { beta },
    );
    const a = (v: osp.Tensor) => Array.from(v.toArray());
    return {
      loss: r.loss,
      losses: a(r.losses),
      pHat: a(r.pHat),
      margins: a(r.margins),
      gc: a(r.gradPolicyChosen),
      gr: a(r.gradPolicyRejected),
    };
  });
}

// ---- the f64 reference of METHOD.md section 3 ---------------------------------------------------

function softplus(z: number): number {
  return Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z)));
}

function sigmoid(z: number): number {
  const e = Math.exp(-Math.abs(z));
  return z >= 0 ? 1 / (1 + e) : e / (1 + e);
}

function marginOf(x: Pairs, i: number, beta: number): number {
  const h = (x.pc[i]! - x.rc[i]!) - (x.pr[i]! - x.rr[i]!);
  return beta * h;
}

function reference(kind: PreferenceKind, x: Pairs, beta: number): Out {
  const B = x.pc.length;
  const out: Out = { loss: 0, losses: [], pHat: [], margins: [], gc: [], gr: [] };
  let total = 0;
  for (let i = 0; i < B; i++) {
    const h = (x.pc[i]! - x.rc[i]!) - (x.pr[i]! - x.rr[i]!);
    const z = beta * h;
    let loss: number;
    let g: number;
    if (kind === 'ipo') {
      const d = h - 1 / (2 * beta);
      loss = d * d;
      g = 2 * d;
    } else {
      const p = kind === 'dpo' ? 1 : x.p[i]!;
      // -[p log sigmoid(z) + (1 - p) log(1 - sigmoid(z))] = softplus(z) - p z, in the form that
      // keeps relative precision when the loss is tiny (z >> 0 with p = 1).
      loss = p * softplus(-z) + (1 - p) * softplus(z);
      g = beta * (sigmoid(z) - p);
    }
    out.losses.push(loss);
    out.pHat.push(sigmoid(z));
    out.margins.push(z);
    out.gc.push(g / B);
    out.gr.push(-g / B);
    total += loss;
  }
  out.loss = total / B;
  return out;
}

// ---- inputs and comparisons ---------------------------------------------------------------------

/**
 * Random pairs: reference log-probs in [-40, -5], policy = reference + N(0, spread^2), targets in
 * [0, 1]. With `grid`, every value is a multiple of 2^-10, so that f32 holds them exactly and the
 * differences of log-probs are exact in f32 too.
 */
function drawPairs(next: () => number, B: number, spread = 5, grid = false): Pairs {
  const q = (a: Float64Array) => (grid ? a.map((v) => Math.round(v * 1024) / 1024) : a);
  const rc = q(uniforms(next, B, -40, -5));
  const rr = q(uniforms(next, B, -40, -5));
  const dc = q(normals(next, B, spread));
  const dr = q(normals(next, B, spread));
  const p = uniforms(next, B, 0, 1).map((v) => (grid ? Math.fround(v) : v));
  return { pc: rc.map((v, i) => v + dc[i]!), pr: rr.map((v, i) => v + dr[i]!), rc, rr, p };
}

function drawBeta(next: () => number): number {
  return 0.05 + 0.45 * next();
}

function allFinite(a: ArrayLike<number>): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i] as number)) return false;
  return true;
}

// ---- tests --------------------------------------------------------------------------------------

describe('preferenceLoss f64 values equal the METHOD.md section 3 reference', () => {
  const { next } = seeded('preferenceLoss values');
  const cases = KINDS.flatMap((kind) => [1, 7, 64].map((B) => [kind, B] as const));

  it.each(cases)('%s, B = %i: loss, losses, pHat and margins within 1e-12 relative', (kind, B) => {
    const x = drawPairs(next, B);
    const beta = drawBeta(next);
    const got = run(kind, x, beta);
    const want = reference(kind, x, beta);
    expectRel(got.margins, want.margins, 1e-12, 1e-300, 'margins');
    expectRel(got.pHat, want.pHat, 1e-12, 1e-300, 'pHat');
    expectRel(got.losses, want.losses, 1e-12, 1e-300, 'losses');
    expectRel([got.loss], [want.loss], 1e-12, 1e-300, 'loss');
  });
});

describe('preferenceLoss gradients of the mean match central finite differences (f64)', () => {
  const { next } = seeded('preferenceLoss finite differences');

  // Richardson-extrapolated central differences (error O(h^4)) with a fixed h = 2^-8, so that neither
  // truncation nor the rounding of `loss` comes near 1e-6 of the gradient. Gradients that happen to
  // be near zero (pHat close to the target) are measured against a floor of 1e-3 max |gradient|.
  // Every entry is checked.
  it.each(KINDS)('%s: d loss / d policyChosen and d policyRejected within 1e-6 relative', (kind) => {
    const B = 8;
    const x = drawPairs(next, B);
    const beta = drawBeta(next);
    const got = run(kind, x, beta);
    const loss = (which: 'pc' | 'pr') => (v: Float64Array) => run(kind, { ...x, [which]: v }, beta).loss;
    gradcheck('gradPolicyChosen', got.gc, loss('pc'), x.pc, { entries: x.pc.keys(), step: 2 ** -8, floor: 1e-3 * maxAbs(got.gc) });
    gradcheck('gradPolicyRejected', got.gr, loss('pr'), x.pr, { entries: x.pr.keys(), step: 2 ** -8, floor: 1e-3 * maxAbs(got.gr) });
  });
});

describe('preferenceLoss laws', () => {
  const { next } = seeded('preferenceLoss laws');

  it('SPCE with target 1 equals DPO (values and gradients)', () => {
    const B = 33;
    const x = drawPairs(next, B);
    x.p.fill(1);
    const beta = drawBeta(next);
    const spce = run('spce', x, beta);
    const dpo = run('dpo', x, beta);
    for (const k of OUTPUT_KEYS) expectRel(spce[k], dpo[k], 1e-14, 1e-300, k);
    expectRel([spce.loss], [dpo.loss], 1e-14, 1e-300, 'loss');
  });

  it("SPCE's gradient is zero where pHat equals the target", () => {
    const B = 17;
    const x = drawPairs(next, B);
    const beta = drawBeta(next);
    // Pair 0 has h = 0 exactly, so sigmoid(z) = 1/2 exactly; the others get p = sigmoid(z) in f64.
    x.pc[0] = x.rc[0]!;
    x.pr[0] = x.rr[0]!;
    for (let i = 0; i < B; i++) x.p[i] = sigmoid(marginOf(x, i, beta));
    expect(x.p[0]).toBe(0.5);
    const got = run('spce', x, beta);
    expect(got.gc[0]! + 0).toBe(0);
    expect(got.gr[0]! + 0).toBe(0);
    // Elsewhere pHat and p can differ by the last bit of exp(): allow a few ulps of sigmoid.
    const bound = (beta / B) * 1e-15;
    expect(maxAbs(got.gc)).toBeLessThanOrEqual(bound);
    expect(maxAbs(got.gr)).toBeLessThanOrEqual(bound);
  });

  it('SPCE(target p) equals SPCE with chosen and rejected swapped and target 1 - p (losses equal, gradients swapped)', () => {
    const B = 40;
    const x = drawPairs(next, B);
    const beta = drawBeta(next);
    const swapped: Pairs = { pc: x.pr, pr: x.pc, rc: x.rr, rr: x.rc, p: x.p.map((v) => 1 - v) };
    const a = run('spce', x, beta);
    const b = run('spce', swapped, beta);
    expectRel(b.losses, a.losses, 1e-12, 1e-300, 'losses');
    expectRel([b.loss], [a.loss], 1e-12, 1e-300, 'loss');
    // The gradients pass through sigmoid(-z) = 1 - sigmoid(z), exact only to the rounding of 1 - p
    // and of sigmoid: near-zero gradients are held to 1e-12 of the largest.
    expectRel(b.gc, a.gr, 1e-12, 1e-3 * maxAbs(a.gr), 'swapped gradPolicyChosen vs gradPolicyRejected');
    expectRel(b.gr, a.gc, 1e-12, 1e-3 * maxAbs(a.gc), 'swapped gradPolicyRejected vs gradPolicyChosen');
  });

  // Margins z in +-{1e4, 1e3, 100, 1} and 0, built with beta = 1/2 from log-probs that f32 holds exactly.
  const EXTREME_Z = [-1e4, -1e3, -100, -1, 0, 1, 100, 1e3, 1e4];
  const extremePairs = (p: Float64Array): Pairs => {
    const B = EXTREME_Z.length;
    const x: Pairs = { pc: new Float64Array(B), pr: new Float64Array(B), rc: new Float64Array(B).fill(-10), rr: new Float64Array(B).fill(-10), p };
    EXTREME_Z.forEach((z, i) => {
      x.pc[i] = z < 0 ? -10 + 2 * z : -10;
      x.pr[i] = z < 0 ? -10 : -10 - 2 * z;
    });
    return x;
  };
  const extremeCases = (['f32', 'f64'] as const).flatMap((dtype) => KINDS.map((kind) => [kind, dtype] as const));

  it.each(extremeCases)('%s in %s: margins up to +-1e4 give finite loss, losses, pHat and gradients', (kind, dtype) => {
    const x = extremePairs(uniforms(next, EXTREME_Z.length).map((v) => Math.fround(v)));
    const got = run(kind, x, 0.5, dtype);
    expect(got.margins).toEqual(EXTREME_Z.map((z) => z + 0));
    expect(Number.isFinite(got.loss)).toBe(true);
    for (const k of OUTPUT_KEYS) expect({ [k]: allFinite(got[k]) }).toEqual({ [k]: true });
  });

  it.each(['f32', 'f64'] as const)('DPO in %s: loss_i is 1e4 at z = -1e4 and 0 at z = +1e4', (dtype) => {
    const x = extremePairs(new Float64Array(EXTREME_Z.length));
    const got = run('dpo', x, 0.5, dtype);
    const lo = got.losses[0]!;
    const hi = got.losses[EXTREME_Z.length - 1]!;
    expect(Math.abs(lo - 1e4) / 1e4).toBeLessThanOrEqual(1e-7);
    expect(hi).toBeGreaterThanOrEqual(0);
    expect(hi).toBeLessThanOrEqual(1e-30);
  });

  it('SPCE mean reduction: sum_i gradPolicyChosen equals beta * mean_i(sigmoid(z_i) - p_i)', () => {
    const B = 64;
    const x = drawPairs(next, B);
    const beta = drawBeta(next);
    const got = run('spce', x, beta);
    let sumG = 0;
    let want = 0;
    for (let i = 0; i < B; i++) {
      sumG += got.gc[i]!;
      want += sigmoid(marginOf(x, i, beta)) - x.p[i]!;
    }
    want = (beta * want) / B;
    expect(Math.abs(sumG - want)).toBeLessThanOrEqual(1e-14 * beta);
  });

  const signCases = (['f32', 'f64'] as const).flatMap((dtype) => KINDS.map((kind) => [kind, dtype] as const));
  it.each(signCases)('%s in %s: gradPolicyRejected is exactly -gradPolicyChosen', (kind, dtype) => {
    const x = drawPairs(next, 23);
    const got = run(kind, x, drawBeta(next), dtype);
    expect(got.gr).toEqual(got.gc.map((g) => -g));
  });
});

describe('preferenceLoss f32 agrees with f64', () => {
  const { next } = seeded('preferenceLoss f32 vs f64');

  // Inputs on a 2^-10 grid (exact in f32, and so are their differences) and beta rounded to f32, so
  // both runs see the same numbers. Tolerance 1e-5 relative, with an absolute floor of
  // 5e-2 * max |f64 output| per output (so near-zero entries are held to 5e-7 of the output's
  // scale, ~8 f32 ulps): an f32 sigmoid near 1 carries ~1e-7 absolute error, which is the whole of
  // a gradient beta (pHat - p) / B whose pHat is close to p.
  it.each(KINDS)('%s: every output within 1e-5 relative of f64', (kind) => {
    const x = drawPairs(next, 64, 5, true);
    const beta = Math.fround(drawBeta(next));
    const f32 = run(kind, x, beta, 'f32');
    const f64 = run(kind, x, beta, 'f64');
    for (const k of OUTPUT_KEYS) expectRel(f32[k], f64[k], 1e-5, 5e-2 * maxAbs(f64[k]), k);
    expectRel([f32.loss], [f64.loss], 1e-5, 1e-300, 'loss');
  });
});

describe('preferenceLoss equals the unfused composition preferenceLossUnfused', () => {
  const { next } = seeded('preferenceLoss fused vs unfused');
  const cases = (['f64', 'f32'] as const).flatMap((dtype) => KINDS.map((kind) => [kind, dtype] as const));

  // The unfused losses are softplus(z) - p z, which loses the low digits of a loss much smaller than
  // |z|: entries are compared relative to max(|value|, floor) with the absolute floor
  // 1e-2 * max |output| in f64 and 5e-2 * max |output| in f32.
  it.each(cases)('%s in %s: same outputs (f64 1e-12, f32 1e-5 relative)', (kind, dtype) => {
    const x = drawPairs(next, 48, 5, dtype === 'f32');
    const beta = dtype === 'f32' ? Math.fround(drawBeta(next)) : drawBeta(next);
    const fused = run(kind, x, beta, dtype);
    const unfused = run(kind, x, beta, dtype, osp.reference.preferenceLossUnfused);
    const tol = dtype === 'f64' ? 1e-12 : 1e-5;
    const floorScale = dtype === 'f64' ? 1e-2 : 5e-2;
    for (const k of OUTPUT_KEYS) expectRel(unfused[k], fused[k], tol, floorScale * maxAbs(fused[k]), k);
    expectRel([unfused.loss], [fused.loss], tol, 1e-300, 'loss');
  });
});
