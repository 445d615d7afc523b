// Training state around the native adamwStep: gradient accumulation over micro-batches, global-norm
// clipping, and AdamW with f32 master weights for a bf16 model (as mixed-precision training in
// PyTorch keeps them): the optimizer updates the f32 copy, then writes it back into the model's bf16
// tensor (copyInto rounds to nearest even). For f32 and f64 models the parameters are updated in
// place and no copy is kept. Moments m and v are f32 (f64 for an f64 model).
import * as ops from '../ops';
import { Tensor, keep, scope, zeros } from '../tensor';

function accumulationDtype(t: Tensor): 'f32' | 'f64' {
  return t.dtype === 'f64' ? 'f64' : 'f32';
}

/**
 * Sums gradients over micro-batches in f32 (f64 for f64 gradients), whatever their dtype, so that a
 * bf16 model's micro-batch gradients lose nothing when added. add() takes the caller's gradients and
 * disposes them (pass dispose: false to keep them); take() hands the sums over and starts again.
 */
export class GradientAccumulator {
  private sums = new Map<string, Tensor>();
  private count = 0;

  /** sums[n] += scale * grads[n] for every name (names must be the same on every call). */
  add(grads: Map<string, Tensor>, opts: { scale?: number; dispose?: boolean } = {}): void {
    const scale = opts.scale ?? 1;
    if (typeof scale !== 'number' || !Number.isFinite(scale)) throw new RangeError(`GradientAccumulator.add: scale is ${String(scale)}; expected a finite number`);
    if (this.count > 0) {
      for (const n of grads.keys()) if (!this.sums.has(n)) throw new RangeError(`GradientAccumulator.add: gradient ${n} was not in the first micro-batch`);
      for (const n of this.sums.keys()) if (!grads.has(n)) throw new RangeError(`GradientAccumulator.add: gradient ${n} is missing from this micro-batch`);
    }
    for (const [n, g] of grads) {
      const next = scope(() => {
        let v = g;
        const dtype = accumulationDtype(g);
        if (g.dtype !== dtype) v = g.to({ dtype });
        if (scale !== 1) v = ops.affine(v, scale);
        const prev = this.sums.get(n);
        if (!prev) return v === g ? ops.affine(g, 1) : v;
        return ops.add(prev, v);
      });
      keep(next);
      this.sums.get(n)?.dispose();
      this.sums.set(n, next);
      if (opts.dispose ?? true) g.dispose();
    }
    this.count++;
  }

  /** Micro-batches added since the last take(). */
  get microBatches(): number {
    return this.count;
  }

  /** The sums (the caller's to dispose); the accumulator is empty afterwards. */
  take(): Map<string, Tensor> {
    const out = this.sums;
    this.sums = new Map();
    this.count = 0;
    return out;
  }

  dispose(): void {
    for (const t of this.sums.values()) t.dispose();
    this.sums.clear();
    this.count = 0;
  }
}

export interface AdamWConfig {
  /** Learning rate, finite and >= 0 (change it per step with step({lr})). */
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Global-norm clipping threshold (> 0), or null for none. Default 1.0. */
  maxGradNorm?: number | null;
  /** Parameters whose names match are not decayed (default: norm weights, 1-D tensors). */
  noDecay?: (name: string, param: Tensor) => boolean;
}

/**
 * What an update leaves for the host. The gradient norm stays on the device (gradSumOfSquares) until
 * someone reads it: the getters read it once (one host wait), or a trainer reads it with the rest
 * of its step's values (DeviceRecord) and passes the number to `settle`.
 */
export class StepResult {
  private total: number | undefined;
  constructor(
    /** The 1-based count of this update. */
    readonly step: number,
    readonly lr: number,
    /** Sum of squares of all the gradients, [1] on the device (the optimizer's until the next step). */
    readonly gradSumOfSquares: Tensor,
    private readonly maxGradNorm: number | null,
  ) {}

  /** Records the total read elsewhere, so the getters need no read of their own. */
  settle(total: number): void {
    this.total = total;
  }

  /** Global L2 norm of the gradients before clipping; NaN or Infinity when the update was skipped. */
  get gradNorm(): number {
    this.total ??= this.gradSumOfSquares.toArray()[0];
    return Math.sqrt(this.total);
  }

  /** The factor clipping applied (1 within bounds; NaN when the norm was not finite and nothing was written). */
  get clipScale(): number {
    const n = this.gradNorm;
    if (!Number.isFinite(n)) return NaN;
    return this.maxGradNorm === null ? 1 : Math.min(1, this.maxGradNorm / (n + 1e-6));
  }
}

interface Slot {
  param: Tensor;
  master: Tensor | null;
  m: Tensor;
  v: Tensor;
  decay: boolean;
}

/** torch.optim.AdamW over a named parameter map, with clipping and bf16 master weights. */
export class AdamW {
  readonly config: Required<Omit<AdamWConfig, 'noDecay'>>;
  private readonly slots = new Map<string, Slot>();
  private steps = 0;
  private lastTotal: Tensor | null = null;

  constructor(params: Map<string, Tensor>, config: AdamWConfig) {
    const c = {
      lr: config.lr,
      beta1: config.beta1 ?? 0.9,
      beta2: config.beta2 ?? 0.999,
      eps: config.eps ?? 1e-8,
      weightDecay: config.weightDecay ?? 0.0,
      maxGradNorm: config.maxGradNorm === undefined ? 1.0 : config.maxGradNorm,
    };
    const bad = (name: string, v: unknown, want: string) => new RangeError(`AdamW: ${name} is ${String(v)}; expected ${want}`);
    if (!(Number.isFinite(c.lr) && c.lr >= 0)) throw bad('lr', c.lr, 'a finite number >= 0');
    if (!(c.beta1 >= 0 && c.beta1 < 1)) throw bad('beta1', c.beta1, 'a number in [0, 1)');
    if (!(c.beta2 >= 0 && c.beta2 < 1)) throw bad('beta2', c.beta2, 'a number in [0, 1)');
    if (!(Number.isFinite(c.eps) && c.eps > 0)) throw bad('eps', c.eps, 'a finite number > 0');
    if (!(Number.isFinite(c.weightDecay) && c.weightDecay >= 0)) throw bad('weightDecay', c.weightDecay, 'a finite number >= 0');
    if (c.maxGradNorm !== null && !(Number.isFinite(c.maxGradNorm) && c.maxGradNorm > 0)) throw bad('maxGradNorm', c.maxGradNorm, 'a finite number > 0 or null');
    this.config = c;
    const noDecay = config.noDecay ?? ((_n: string, p: Tensor) => p.shape.length < 2);
    for (const [name, p] of params) {
      if (p.dtype === 'i32') throw new TypeError(`AdamW: parameter ${name} is i32; expected a floating tensor`);
      const stateDtype = accumulationDtype(p);
      let master: Tensor | null = null;
      if (p.dtype === 'bf16') {
        master = keep(zeros(p.shape, { dtype: 'f32', device: p.device }));
        ops.copyInto(master, p);
      }
      this.slots.set(name, {
        param: p,
        master,
        m: keep(zeros(p.shape, { dtype: stateDtype, device: p.device })),
        v: keep(zeros(p.shape, { dtype: stateDtype, device: p.device })),
        decay: !noDecay(name, p),
      });
    }
  }

  /** Updates taken so far. */
  get stepCount(): number {
    return this.steps;
  }

  /**
   * One update from grads (every parameter's gradient, same names; f32/bf16 on cuda, f32/f64 on cpu):
   * global-norm clipping and AdamW with nothing read back to the host. The sum of squares of all the
   * gradients is formed on the device and each parameter's kernel reads it to scale its gradient;
   * a non-finite norm skips the update inside the kernels (nothing is written), and the result's
   * gradNorm then reads NaN or Infinity: check it (trainers do, with their step's one read).
   */
  step(grads: Map<string, Tensor>, opts: { lr?: number } = {}): StepResult {
    const lr = opts.lr ?? this.config.lr;
    if (!(Number.isFinite(lr) && lr >= 0)) throw new RangeError(`AdamW.step: lr is ${String(lr)}; expected a finite number >= 0`);
    for (const n of this.slots.keys()) if (!grads.has(n)) throw new RangeError(`AdamW.step: no gradient for parameter ${n}`);
    for (const n of grads.keys()) if (!this.slots.has(n)) throw new RangeError(`AdamW.step: gradient ${n} has no parameter`);
    const list = Array.from(this.slots.keys(), (n) => grads.get(n) as Tensor);
    this.lastTotal?.dispose();
    this.lastTotal = keep(ops.gradSumOfSquares(list));
    this.steps++;
    for (const [n, s] of this.slots) {
      const target = s.master ?? s.param;
      ops.adamwStep(target, grads.get(n) as Tensor, s.m, s.v, {
        lr,
        beta1: this.config.beta1,
        beta2: this.config.beta2,
        eps: this.config.eps,
        weightDecay: s.decay ? this.config.weightDecay : 0,
        step: this.steps,
        checkFinite: false, // the kernel skips the whole update when the global norm is not finite
        gradSumOfSquares: this.lastTotal,
        maxGradNorm: this.config.maxGradNorm ?? 0,
      });
      if (s.master) ops.copyInto(s.param, s.master);
    }
    return new StepResult(this.steps, lr, this.lastTotal, this.config.maxGradNorm);
  }

  /** The optimizer state for a checkpoint: step count and, per parameter, m, v and the f32 master (bf16 models). */
  state(): { step: number; tensors: Map<string, Tensor> } {
    const tensors = new Map<string, Tensor>();
    for (const [n, s] of this.slots) {
      tensors.set(`${n}.exp_avg`, s.m);
      tensors.set(`${n}.exp_avg_sq`, s.v);
      if (s.master) tensors.set(`${n}.master`, s.master);
    }
    return { step: this.steps, tensors };
  }

  /** Restores a state() (same parameter names and shapes); copies the values in. */
  loadState(state: { step: number; tensors: Map<string, Tensor> }): void {
    if (!(Number.isInteger(state.step) && state.step >= 0)) throw new RangeError(`AdamW.loadState: step is ${String(state.step)}; expected an integer >= 0`);
    const pairs: [Tensor, Tensor, string][] = [];
    for (const [n, s] of this.slots) {
      const want: [string, Tensor][] = [[`${n}.exp_avg`, s.m], [`${n}.exp_avg_sq`, s.v]];
      if (s.master) want.push([`${n}.master`, s.master]);
      for (const [key, dst] of want) {
        const src = state.tensors.get(key);
        if (!src) throw new RangeError(`AdamW.loadState: the state has no tensor ${key}`);
        if (src.shape.join(',') !== dst.shape.join(',')) throw new RangeError(`AdamW.loadState: ${key} has shape [${src.shape.join(', ')}]; expected [${dst.shape.join(', ')}]`);
        pairs.push([dst, src, key]);
      }
    }
    for (const [dst, src] of pairs) {
      scope(() => ops.copyInto(dst, src.device === dst.device ? src : src.to({ device: dst.device })));
    }
    for (const s of this.slots.values()) if (s.master) ops.copyInto(s.param, s.master);
    this.steps = state.step;
  }

  dispose(): void {
    this.lastTotal?.dispose();
    this.lastTotal = null;
    for (const s of this.slots.values()) {
      s.m.dispose();
      s.v.dispose();
      s.master?.dispose();
    }
    this.slots.clear();
  }
}
