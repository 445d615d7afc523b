// The kernels as typed functions. Each one checks that its tensor arguments are Tensors and passes
// them to the native op, which validates dtypes, shapes, devices and values (see native/kernels).
import { native, NativeRopeOptions, NativeTensor } from './native';
import { DType, optionsArg, Tensor } from './tensor';

import { DEFAULT_IGNORE_INDEX } from './model/batch';

export { DEFAULT_IGNORE_INDEX };

function h(t: unknown, what: string): NativeTensor {
  // isTensor: a Tensor-like object whose handle only inherits from a native one is refused here
  // (its native getters would throw "Invalid argument", its methods "Illegal invocation").
  if (!(t instanceof Tensor) || !native.isTensor(t.handle)) throw new TypeError(`${what} is not a Tensor; expected a Tensor made by osp.tensor()`);
  return t.handle;
}

/** The tensor itself, after checking it is one and is not disposed (for TS-side compositions). */
/** @internal the Tensor an argument must be (shared with src/reference). */
export function live(t: unknown, what: string): Tensor {
  h(t, what);
  if ((t as Tensor).disposed) throw new TypeError(`${what} has been disposed; expected a live tensor`);
  return t as Tensor;
}

function wrap(n: NativeTensor): Tensor {
  return new Tensor(n);
}

/**
 * Runs a composition of other ops as `op`: an error of an inner op ("logSoftmax: logits ...") is
 * rethrown, same class, as op's own ("tokenLogprobsUnfused: logits ..."), with the inner argument
 * names that differ from op's renamed (`rename`: inner name -> op's name).
 */
/** @internal */
export function composed<T>(op: string, rename: Record<string, string>, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof TypeError || e instanceof RangeError)) throw e;
    const m = /^(\w+): (\w+)([^]*)$/.exec(e.message);
    if (!m || m[1] === op) throw e;
    let rest = m[3];
    for (const [from, to] of Object.entries(rename)) if (from !== 'dtype') rest = rest.replace(new RegExp(`\\b${from}\\b`, 'g'), to);
    throw new (e instanceof RangeError ? RangeError : TypeError)(`${op}: ${rename[m[2]] ?? m[2]}${rest}`);
  }
}

export interface IgnoreOptions {
  /** Rows whose target equals this give 0 and get no gradient. Default -100. */
  ignoreIndex?: number;
}

/**
 * Fused token log-probs: out[n] = logits[n, t_n] - logsumexp(logits[n, :]), one pass per row,
 * never storing the [N, V] log-softmax. logits [N, V] (cpu: f32, f64; cuda: f32, bf16),
 * targets [N] i32. Returns [N] (f64 for f64 logits, else f32).
 */
export function tokenLogprobs(logits: Tensor, targets: Tensor, opts: IgnoreOptions = {}): Tensor {
  opts = optionsArg('tokenLogprobs', opts);
  return wrap(
    native.tokenLogprobs(h(logits, 'tokenLogprobs: logits'), h(targets, 'tokenLogprobs: targets'), {
      ignoreIndex: opts.ignoreIndex ?? DEFAULT_IGNORE_INDEX,
    }),
  );
}

export interface TokenLogprobsResult {
  /** logits[n, t_n] - logsumexp(logits[n, :]), [N] (f64 for f64 logits, else f32); 0 on ignored rows. */
  logprobs: Tensor;
  /** logsumexp(logits[n, :]), [N], same dtype; 0 on ignored rows (not computed). Give it to tokenLogprobsBackward. */
  logsumexp: Tensor;
}

/**
 * tokenLogprobs that also returns each row's logsumexp, which the forward computes anyway (N more
 * floats written): with it tokenLogprobsBackward reads each row once instead of twice.
 */
export function tokenLogprobsWithLogsumexp(logits: Tensor, targets: Tensor, opts: IgnoreOptions = {}): TokenLogprobsResult {
  opts = optionsArg('tokenLogprobs', opts);
  const r = native.tokenLogprobsWithLogsumexp(h(logits, 'tokenLogprobs: logits'), h(targets, 'tokenLogprobs: targets'), {
    ignoreIndex: opts.ignoreIndex ?? DEFAULT_IGNORE_INDEX,
  });
  return { logprobs: wrap(r.logprobs), logsumexp: wrap(r.logsumexp) };
}

export interface BackwardOptions extends IgnoreOptions {
  /** Overwrite the logits buffer with the gradient (saves an [N, V] allocation). Default false. */
  inPlace?: boolean;
  /**
   * The forward's row logsumexp ([N], f64 for f64 logits, else f32; tokenLogprobsWithLogsumexp) of
   * these same logits: each row is then read once and written once, instead of read twice. Without
   * it the backward recomputes it. A non-finite entry on a row that is not ignored is a RangeError.
   */
  logsumexp?: Tensor;
}

/** dlogits[n, v] = g[n] * (onehot(t_n) - softmax(logits[n]))[v]; zero on ignored rows. */
export function tokenLogprobsBackward(logits: Tensor, targets: Tensor, gradLogprobs: Tensor, opts: BackwardOptions = {}): Tensor {
  const op = 'tokenLogprobsBackward';
  opts = optionsArg(op, opts);
  const out = native.tokenLogprobsBackward(
    h(logits, `${op}: logits`),
    h(targets, `${op}: targets`),
    h(gradLogprobs, `${op}: gradLogprobs`),
    {
      ignoreIndex: opts.ignoreIndex ?? DEFAULT_IGNORE_INDEX,
      inPlace: opts.inPlace ?? false,
      logsumexp: opts.logsumexp === undefined ? undefined : h(opts.logsumexp, `${op}: logsumexp`),
    },
  );
  if (!opts.inPlace) return wrap(out);
  out.dispose(); // the native result shares the logits' buffer: drop its reference now, not at GC
  return logits;
}

/** Unfused reference: log_softmax of each row, written out as [N, V]. */
export function logSoftmax(logits: Tensor): Tensor {
  return wrap(native.logSoftmax(h(logits, 'logSoftmax: logits')));
}

/** Backward of logSoftmax: dx = dy - exp(y) * rowsum(dy). */
export function logSoftmaxBackward(gradOut: Tensor, logSoftmaxOut: Tensor): Tensor {
  return wrap(native.logSoftmaxBackward(h(gradOut, 'logSoftmaxBackward: gradOut'), h(logSoftmaxOut, 'logSoftmaxBackward: logSoftmaxOut')));
}

/** out[n] = values[n, t_n] (0 on ignored rows). */
export function gather(values: Tensor, targets: Tensor, opts: IgnoreOptions = {}): Tensor {
  opts = optionsArg('gather', opts);
  return wrap(
    native.gather(h(values, 'gather: values'), h(targets, 'gather: targets'), { ignoreIndex: opts.ignoreIndex ?? DEFAULT_IGNORE_INDEX }),
  );
}

/** Backward of gather: a [N, vocab] tensor with g[n] at (n, t_n). dtype: cuda may write bf16. */
export function gatherBackward(grad: Tensor, targets: Tensor, vocab: number, opts: IgnoreOptions & { dtype?: DType } = {}): Tensor {
  opts = optionsArg('gatherBackward', opts);
  return wrap(
    native.gatherBackward(h(grad, 'gatherBackward: grad'), h(targets, 'gatherBackward: targets'), {
      vocab,
      ignoreIndex: opts.ignoreIndex ?? DEFAULT_IGNORE_INDEX,
      dtype: opts.dtype,
    }),
  );
}

/**
 * Per-sequence sums of token log-probs: out[s] = sum of tokenLogprobs[n] with sequenceIds[n] == s.
 * Ids -1 and ignoreIndex (prompt tokens, padding) count nowhere. Returns [count].
 */
export function sequenceLogprobs(tokenLogprobs: Tensor, sequenceIds: Tensor, count: number, opts: IgnoreOptions = {}): Tensor {
  const op = 'sequenceLogprobs';
  opts = optionsArg(op, opts);
  return wrap(
    native.sequenceLogprobs(h(tokenLogprobs, `${op}: tokenLogprobs`), h(sequenceIds, `${op}: sequenceIds`), {
      count,
      ignoreIndex: opts.ignoreIndex ?? DEFAULT_IGNORE_INDEX,
    }),
  );
}

/** Backward of sequenceLogprobs: dTokens[n] = g[sequenceIds[n]] (0 for uncounted tokens). */
export function sequenceLogprobsBackward(gradSequences: Tensor, sequenceIds: Tensor, opts: IgnoreOptions = {}): Tensor {
  const op = 'sequenceLogprobsBackward';
  opts = optionsArg(op, opts);
  return wrap(
    native.sequenceLogprobsBackward(h(gradSequences, `${op}: gradSequences`), h(sequenceIds, `${op}: sequenceIds`), {
      ignoreIndex: opts.ignoreIndex ?? DEFAULT_IGNORE_INDEX,
    }),
  );
}

export type PreferenceKind = 'spce' | 'dpo' | 'ipo';

export interface PreferenceInputs {
  /** Sequence log-probs of the higher-ranked response under the policy, [B]. */
  policyChosen: Tensor;
  policyRejected: Tensor;
  /** The same under the frozen reference model (constants). */
  refChosen: Tensor;
  refRejected: Tensor;
  /** spce only: the judged preference strength p(chosen > rejected) in [0, 1], [B]. */
  target?: Tensor;
}

export interface PreferenceOptions {
  /** Scale of the difference of log-ratios (METHOD.md section 3). Finite, > 0. */
  beta: number;
}

export interface PreferenceLossResult {
  /** Mean loss over the B pairs, read from meanLoss on first access (on cuda: one host wait). */
  readonly loss: number;
  /** The mean loss as a [1] tensor on the inputs' device: a training step keeps it there. */
  meanLoss: Tensor;
  losses: Tensor;
  /** sigmoid(margins): the policy's implicit preference strength. */
  pHat: Tensor;
  /** z = beta * ((policyChosen - refChosen) - (policyRejected - refRejected)). */
  margins: Tensor;
  /** d loss / d policyChosen (of the mean). */
  gradPolicyChosen: Tensor;
  gradPolicyRejected: Tensor;
}

/** The loss getter lives on the prototype so that scope() (which walks own properties) never reads it. */
/** @internal */
export class PreferenceResult implements PreferenceLossResult {
  private cached: number | undefined;
  constructor(
    public meanLoss: Tensor,
    public losses: Tensor,
    public pHat: Tensor,
    public margins: Tensor,
    public gradPolicyChosen: Tensor,
    public gradPolicyRejected: Tensor,
  ) {}

  get loss(): number {
    this.cached ??= this.meanLoss.toArray()[0];
    return this.cached;
  }
}

/** @internal */
export const KINDS: readonly PreferenceKind[] = ['spce', 'dpo', 'ipo'];

/** @internal */
export function preferenceArgs(op: string, inputs: PreferenceInputs, opts: PreferenceOptions) {
  if (inputs === null || typeof inputs !== 'object') throw new TypeError(`${op}: inputs must be an object of tensors`);
  if (opts === null || typeof opts !== 'object' || typeof opts.beta !== 'number') {
    throw new TypeError(`${op}: opts.beta must be a number (e.g. { beta: 0.1 })`);
  }
  return [
    h(inputs.policyChosen, `${op}: inputs.policyChosen`),
    h(inputs.policyRejected, `${op}: inputs.policyRejected`),
    h(inputs.refChosen, `${op}: inputs.refChosen`),
    h(inputs.refRejected, `${op}: inputs.refRejected`),
    inputs.target === undefined ? undefined : h(inputs.target, `${op}: inputs.target`),
  ] as const;
}

/**
 * SPCE, DPO or IPO loss over B pairs with the gradients of the mean, in one fused pass
 * (METHOD.md section 3): SPCE softplus(z) - p z, DPO -log sigmoid(z), IPO (h - 1/(2 beta))^2.
 */
export function preferenceLoss(kind: PreferenceKind, inputs: PreferenceInputs, opts: PreferenceOptions): PreferenceLossResult {
  const [pc, pr, rc, rr, target] = preferenceArgs('preferenceLoss', inputs, opts);
  const r = native.preferenceLoss(pc, pr, rc, rr, { kind, beta: opts.beta, target });
  return new PreferenceResult(wrap(r.loss), wrap(r.losses), wrap(r.pHat), wrap(r.margins), wrap(r.gradPolicyChosen), wrap(r.gradPolicyRejected));
}

// ---- elementwise ops (for the unfused compositions) -------------------------------------------

export const add = (a: Tensor, b: Tensor): Tensor => wrap(native.binary(h(a, 'add: a'), h(b, 'add: b'), { op: 'add' }));
export const sub = (a: Tensor, b: Tensor): Tensor => wrap(native.binary(h(a, 'sub: a'), h(b, 'sub: b'), { op: 'sub' }));
export const mul = (a: Tensor, b: Tensor): Tensor => wrap(native.binary(h(a, 'mul: a'), h(b, 'mul: b'), { op: 'mul' }));
export type UnaryOp = 'neg' | 'sigmoid' | 'softplus' | 'logSigmoid' | 'square' | 'exp' | 'log';
export const unary = (op: UnaryOp, x: Tensor): Tensor => wrap(native.unary(h(x, 'unary: x'), { op }));
/** scale * x + shift */
export const affine = (x: Tensor, scale: number, shift = 0): Tensor => wrap(native.affine(h(x, 'affine: x'), { scale, shift }));
/** Sum of all elements, as a [1] tensor. */
export const sum = (x: Tensor): Tensor => wrap(native.sum(h(x, 'sum: x')));

/**
 * dst <- src, converted to dst's dtype (round to nearest even into bf16), in place. Same shape and
 * device, both contiguous; dst may be a contiguous view (narrow along dim 0) so a chunk's result
 * lands in its rows of a bigger tensor. cpu: f32, f64, bf16 in any pair; cuda: f32, bf16.
 */
export function copyInto(dst: Tensor, src: Tensor): void {
  native.copyInto(h(dst, 'copyInto: dst'), h(src, 'copyInto: src'));
}

// ---- matmul -----------------------------------------------------------------------------------

export interface MatmulOptions {
  /** Use a^T: a is then [K, M]. Default false. */
  transA?: boolean;
  /** Use b^T: b is then [N, K] (a Linear layer's weight [out, in]). Default false. */
  transB?: boolean;
  /**
   * On cuda, which GEMM: 'auto' (cuBLAS when it loaded at run time, see backends().cuda.blas; else
   * osp's own tiled kernel), or one of them forced (tests, bench). Ignored on the cpu. Default 'auto'.
   */
  impl?: 'auto' | 'own' | 'cublas';
  /**
   * C += op(a) op(b) into this [M, N] tensor (contiguous, a's dtype and device), which is returned:
   * a GEMM with beta 1 (the LM head sums its weight gradient over row chunks this way).
   */
  accumulate?: Tensor;
  /**
   * f32 on cuda through cuBLAS: products on TF32 tensor cores (inputs rounded to 10 mantissa bits,
   * f32 accumulation), several times faster on A100 / H100 class cards. Off by default: the f32
   * tests compare against f64. osp's own CUDA kernel and the cpu compute in f32 whatever it says.
   */
  tf32?: boolean;
}

/**
 * C = op(a) · op(b), op(x) = x^T where its flag is set: op(a) [M, K], op(b) [K, N], C [M, N] in
 * the inputs' dtype. a and b are contiguous 2-D tensors of one dtype and device (cpu: f32, f64;
 * cuda: f32, bf16 with f32 accumulation). K = 0 gives zeros. A Linear layer y = x W^T is
 * matmul(x, W, { transB: true }); its backward dX = matmul(dY, W), dW = matmul(dY, x, { transA: true }).
 * On the cpu the f32 result is bitwise the same for any OSP_NUM_THREADS.
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  opts = optionsArg('matmul', opts);
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  const impl = opts.impl ?? 'auto';
  const tf32 = opts.tf32 ?? false;
  if (typeof tf32 !== 'boolean') throw new TypeError(`matmul: tf32 is ${String(tf32)}; expected true or false`);
  if (!['auto', 'own', 'cublas'].includes(impl)) throw new TypeError(`matmul: impl is ${String(impl)}; expected 'auto', 'own' or 'cublas'`);
  if (opts.accumulate !== undefined) {
    native.matmul(h(a, 'matmul: a'), h(b, 'matmul: b'), { transA, transB, impl, tf32, accumulate: h(opts.accumulate, 'matmul: accumulate') });
    return opts.accumulate;
  }
  return wrap(native.matmul(h(a, 'matmul: a'), h(b, 'matmul: b'), { transA, transB, impl, tf32 }));
}

// ---- model ops: rms_norm, swiglu, rope, embedding ----------------------------------------------

export interface RmsNormOptions {
  /** Added to the mean square before the square root. Default 1e-6 (Llama's rms_norm_eps). */
  eps?: number;
}

/**
 * RMS norm: y[t, :] = x[t, :] / sqrt(mean(x[t, :]^2) + eps) * weight. x [T, D], weight [D], both
 * contiguous, one dtype and device (cpu: f32, f64; cuda: f32, bf16 with f32 arithmetic). Returns
 * [T, D] in x's dtype.
 */
export function rmsNorm(x: Tensor, weight: Tensor, opts: RmsNormOptions = {}): Tensor {
  opts = optionsArg('rmsNorm', opts);
  return wrap(native.rmsNorm(h(x, 'rmsNorm: x'), h(weight, 'rmsNorm: weight'), { eps: opts.eps ?? 1e-6 }));
}

export interface RmsNormGrads {
  /** d loss / d x, [T, D]. */
  gradInput: Tensor;
  /** d loss / d weight, [D], summed over rows in a fixed order (deterministic). */
  gradWeight: Tensor;
}

/** Backward of rmsNorm given gradOut = d loss / d y [T, D]; same eps as the forward. */
export function rmsNormBackward(x: Tensor, weight: Tensor, gradOut: Tensor, opts: RmsNormOptions = {}): RmsNormGrads {
  const op = 'rmsNormBackward';
  opts = optionsArg(op, opts);
  const r = native.rmsNormBackward(h(x, `${op}: x`), h(weight, `${op}: weight`), h(gradOut, `${op}: gradOut`), { eps: opts.eps ?? 1e-6 });
  return { gradInput: wrap(r.gradInput), gradWeight: wrap(r.gradWeight) };
}

/**
 * SwiGLU: out = silu(gate) * up, silu(g) = g * sigmoid(g). gate and up [T, F], contiguous, one
 * dtype and device (cpu: f32, f64; cuda: f32, bf16). Returns [T, F] in their dtype.
 */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  return wrap(native.swiglu(h(gate, 'swiglu: gate'), h(up, 'swiglu: up')));
}

export interface SwigluGrads {
  gradGate: Tensor;
  gradUp: Tensor;
}

/** Backward of swiglu: dgate = dout * up * s * (1 + g (1 - s)) with s = sigmoid(g); dup = dout * silu(g). */
export function swigluBackward(gate: Tensor, up: Tensor, gradOut: Tensor): SwigluGrads {
  const op = 'swigluBackward';
  const r = native.swigluBackward(h(gate, `${op}: gate`), h(up, `${op}: up`), h(gradOut, `${op}: gradOut`));
  return { gradGate: wrap(r.gradGate), gradUp: wrap(r.gradUp) };
}

/**
 * The rotary frequencies, one of:
 * - `{ theta, scalingFactor? }`: inv_freq_i = theta^(-2i/Dh) / scalingFactor (HF's default and
 *   "linear" rope scaling). theta is rope_theta (Llama 2: 10000, Llama 3: 500000); scalingFactor
 *   defaults to 1 (none).
 * - `{ invFreq }`: the Dh/2 inverse frequencies themselves (finite, > 0), e.g. ropeInvFreq's table for
 *   a config's rope_scaling ("llama3" included). With ropeInvFreqTable(theta, scalingFactor, Dh)'s
 *   values the result is bit-identical to the `{ theta, scalingFactor }` form.
 */
export type RopeOptions =
  | { theta: number; scalingFactor?: number; invFreq?: undefined }
  | { invFreq: Float64Array; theta?: undefined; scalingFactor?: undefined };

function ropeArgs(op: string, opts: RopeOptions): NativeRopeOptions {
  if (opts === null || typeof opts !== 'object') {
    throw new TypeError(`${op}: opts is ${opts === null ? 'null' : typeof opts}; expected { theta, scalingFactor? } or { invFreq }`);
  }
  if (opts?.invFreq !== undefined) {
    if (opts.theta !== undefined || opts.scalingFactor !== undefined) {
      throw new TypeError(`${op}: pass either invFreq or theta (and scalingFactor), not both`);
    }
    return { invFreq: opts.invFreq };
  }
  return { theta: opts?.theta, scalingFactor: opts?.scalingFactor ?? 1 };
}

/**
 * Rotary position embedding, Hugging Face rotate-half convention: x [T, H, Dh] (Dh even),
 * positions [T] i32 (>= 0). For i < Dh/2, angle = pos * inv_freq_i (see RopeOptions) and the
 * pair (x_i, x_{i+Dh/2}) is rotated by +angle: out_i = x_i cos - x_{i+Dh/2} sin,
 * out_{i+Dh/2} = x_{i+Dh/2} cos + x_i sin. The table is built in f64 on the host; angles are
 * computed in f64 on the cpu and in f32 on cuda (the table rounded to f32, as HF's float32
 * inv_freq; Dh <= 1024 there). cpu: f32, f64; cuda: f32, bf16.
 */
export function rope(x: Tensor, positions: Tensor, opts: RopeOptions): Tensor {
  return wrap(native.rope(h(x, 'rope: x'), h(positions, 'rope: positions'), ropeArgs('rope', opts)));
}

/** Backward of rope: gradOut rotated by -angle (the transpose of the rotation). Same options as the forward. */
export function ropeBackward(gradOut: Tensor, positions: Tensor, opts: RopeOptions): Tensor {
  const op = 'ropeBackward';
  return wrap(native.ropeBackward(h(gradOut, `${op}: gradOut`), h(positions, `${op}: positions`), ropeArgs(op, opts)));
}

/**
 * The default rotary table, computed natively (the same code the `{ theta, scalingFactor }` form of
 * rope uses): inv_freq_i = theta^(-2i/headDim) / scalingFactor for i < headDim/2, in f64.
 */
export function ropeInvFreqTable(theta: number, scalingFactor: number, headDim: number): Float64Array {
  return native.ropeInvFreq({ theta, scalingFactor, headDim });
}

/**
 * Embedding lookup: out[t, :] = table[ids[t], :]. table [V, D] (cpu: f32, f64; cuda: f32, bf16),
 * ids [T] i32 on the same device. An id outside [0, V) is a RangeError naming ids[t].
 */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  return wrap(native.embedding(h(table, 'embedding: table'), h(ids, 'embedding: ids')));
}

/**
 * Backward of embedding: dTable [vocab, D] in gradOut's dtype, dTable[v] = sum of gradOut[t] over
 * the t with ids[t] = v, added in order of t (deterministic on cpu and cuda; no atomics).
 */
export function embeddingBackward(gradOut: Tensor, ids: Tensor, vocab: number): Tensor {
  const op = 'embeddingBackward';
  return wrap(native.embeddingBackward(h(gradOut, `${op}: gradOut`), h(ids, `${op}: ids`), { vocab }));
}

// ---- optimizer: adamw, sumOfSquares, clipGradNorm -----------------------------------------------

/**
 * sum_i x_i^2 as a [1] tensor on x's device: f64 for f64 x, else f32. cpu: f32, f64 (accumulated
 * in double over fixed chunks); cuda: f32, bf16 (f32 per-block partials added in a fixed order).
 * The same bits for any thread count.
 */
export function sumOfSquares(x: Tensor): Tensor {
  return wrap(native.sumOfSquares(h(x, 'sumOfSquares: x')));
}

export interface AdamWOptions {
  /** Learning rate, >= 0. */
  lr: number;
  /** Decay of the first moment, in [0, 1) (torch default 0.9). */
  beta1: number;
  /** Decay of the second moment, in [0, 1) (torch default 0.999). */
  beta2: number;
  /** Added to sqrt(vhat), > 0 (torch default 1e-8). */
  eps: number;
  /** Decoupled weight decay, >= 0 (torch default 0.01): param -= lr * weightDecay * param. */
  weightDecay: number;
  /** The 1-based step count of this update (for the bias corrections). */
  step: number;
  /** The gradient is multiplied by this first, >= 0. Default 1. */
  gradScale?: number;
  /**
   * Check grad for NaN / Inf first (default true). Pass false only when the gradients are known to be
   * finite (e.g. their global norm is): on cuda the check costs one synchronisation per call.
   */
  checkFinite?: boolean;
  /**
   * Global-norm clipping on the device: gradSumOfSquares(allGrads), a [1] tensor the kernel reads
   * itself (no host round trip). The gradient is also multiplied by min(1, maxGradNorm / (norm +
   * 1e-6)); a non-finite total skips the update (nothing is written).
   */
  gradSumOfSquares?: Tensor;
  /** Threshold of that clipping, >= 0 (0: none, the total then only guards against NaN). Default 0. */
  maxGradNorm?: number;
}

/**
 * One torch.optim.AdamW step, in place on param, m and v (same shape, contiguous, one device):
 * g = grad * gradScale * clip; param -= lr * weightDecay * param; m = beta1 m + (1 - beta1) g;
 * v = beta2 v + (1 - beta2) g^2; param -= lr * mhat / (sqrt(vhat) + eps) with
 * mhat = m / (1 - beta1^step), vhat = v / (1 - beta2^step). cpu: all f32 or all f64; cuda: param,
 * m, v f32 and grad f32 or bf16. With checkFinite, a NaN or Inf in grad is a RangeError naming
 * grad[i], raised before anything is written.
 */
export function adamwStep(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, opts: AdamWOptions): void {
  const op = 'adamwStep';
  if (typeof opts !== 'object' || opts === null) throw new TypeError(`${op}: opts is ${String(opts)}; expected {lr, beta1, beta2, eps, weightDecay, step}`);
  const { gradSumOfSquares, ...numbers } = opts;
  native.adamwStep(h(param, `${op}: param`), h(grad, `${op}: grad`), h(m, `${op}: m`), h(v, `${op}: v`), {
    ...numbers,
    gradSumOfSquares: gradSumOfSquares === undefined ? undefined : h(gradSumOfSquares, `${op}: gradSumOfSquares`),
  });
}

/**
 * The sum of squares of every element of every gradient, a [1] tensor on their device (f64 for f64
 * gradients, else f32): per-tensor sumOfSquares added in list order on the device, so nothing is
 * read back. Its square root is the global norm that clipping uses (adamwStep's gradSumOfSquares).
 */
export function gradSumOfSquares(grads: Tensor[], op = 'gradSumOfSquares'): Tensor {
  if (!Array.isArray(grads) || grads.length === 0) throw new TypeError(`${op}: grads is not a non-empty array of Tensors`);
  grads.forEach((g, i) => {
    live(g, `${op}: grads[${i}]`);
    // The per-tensor kernel's own checks, named here so that an error names this op and the gradient.
    if (g.dtype === 'i32' || (g.dtype === 'bf16' && g.device === 'cpu') || (g.dtype === 'f64' && g.device !== 'cpu')) {
      throw new TypeError(`${op}: grads[${i}] has dtype ${g.dtype} on ${g.device}; expected f32 or f64 on the cpu, f32 or bf16 on cuda`);
    }
    if (!g.isContiguous) throw new TypeError(`${op}: grads[${i}] is a non-contiguous view; expected contiguous memory (call .contiguous())`);
  });
  // f64 as soon as one gradient is f64 (cpu only: mixed f32/f64 lists are a cpu reference case).
  const dtype = grads.some((g) => g.dtype === 'f64') ? 'f64' : undefined;
  const squares = (g: Tensor) => {
    const s = sumOfSquares(g);
    if (!dtype || s.dtype === dtype) return s;
    const c = s.to({ dtype });
    s.dispose();
    return c;
  };
  let total = squares(grads[0]);
  for (let i = 1; i < grads.length; i++) {
    const s = squares(grads[i]);
    const next = add(total, s);
    total.dispose();
    s.dispose();
    total = next;
  }
  return total;
}

export interface ClipResult {
  /** The global L2 norm of all the gradients together: sqrt(sum of sumOfSquares). */
  norm: number;
  /** min(1, maxNorm / (norm + 1e-6)), the factor clipping applies. NaN when norm is not finite. */
  scale: number;
}

/**
 * Global-norm gradient clipping (torch.nn.utils.clip_grad_norm_) as numbers on the host: the total
 * is summed on the device and read once. For training, pass gradSumOfSquares to adamwStep instead.
 */
export function clipGradNorm(grads: Tensor[], maxNorm: number): ClipResult {
  if (!Array.isArray(grads)) throw new TypeError(`clipGradNorm: grads is not an array; expected an array of Tensors`);
  if (typeof maxNorm !== 'number' || !Number.isFinite(maxNorm) || !(maxNorm > 0))
    throw new RangeError(`clipGradNorm: maxNorm is ${String(maxNorm)}; expected a finite number > 0`);
  if (grads.length === 0) return { norm: 0, scale: 1 };
  const total = gradSumOfSquares(grads, 'clipGradNorm');
  let norm: number;
  try {
    norm = Math.sqrt(total.toArray()[0]);
  } finally {
    total.dispose();
  }
  return { norm, scale: Number.isFinite(norm) ? Math.min(1, maxNorm / (norm + 1e-6)) : NaN };
}

// ---- attention ----------------------------------------------------------------------------------

export interface CausalAttentionOptions {
  /** Multiplies q . k before the softmax. Default 1 / sqrt(Dh); finite and > 0. */
  scale?: number;
  /**
   * The batch's sequence spans from sequenceSpans (i32 [2, T] on q's device). When given, the op
   * reads them instead of copying sequenceIds to the host (on cuda: no round trip and no
   * synchronisation for the ids); sequenceIds is then checked only for shape, dtype and device.
   * A column that is not a valid span is a RangeError naming it.
   */
  spans?: Tensor;
}

export { sequenceSpans } from './model/batch';

export interface CausalAttentionResult {
  /** softmax(scale q k^T + causal/segment mask) v, [T, H, Dh] in q's dtype. */
  out: Tensor;
  /** Per (token, head) log of the softmax denominator, [T, H] (f64 for f64 inputs, else f32); the backward needs it. */
  logsumexp: Tensor;
}

/**
 * Causal self-attention with grouped-query heads over a packed batch of sequences (no padding).
 * q [T, H, Dh], k and v [T, Hkv, Dh] with H % Hkv == 0 (query head h reads kv head h / (H / Hkv)),
 * sequenceIds [T] i32: each sequence's tokens are contiguous and in order, and token i attends to
 * the tokens j <= i of its own sequence. All on one device, contiguous (cpu: f32, f64; cuda: f32,
 * bf16 with f32 arithmetic). A sequence id that reappears after another sequence started is a
 * RangeError naming it. Without opts.spans the dispatch reads sequenceIds on the host (one small
 * copy, and a synchronisation, per call on cuda); pass sequenceSpans(ids) to avoid it.
 */
export function causalAttention(q: Tensor, k: Tensor, v: Tensor, sequenceIds: Tensor, opts: CausalAttentionOptions = {}): CausalAttentionResult {
  const op = 'causalAttention';
  opts = optionsArg(op, opts);
  const r = native.causalAttention(h(q, `${op}: q`), h(k, `${op}: k`), h(v, `${op}: v`), h(sequenceIds, `${op}: sequenceIds`), {
    scale: opts?.scale,
    spans: spansArg(opts, op),
  });
  return { out: wrap(r.out), logsumexp: wrap(r.logsumexp) };
}

function spansArg(opts: CausalAttentionOptions | undefined, op: string): NativeTensor | undefined {
  return opts?.spans === undefined ? undefined : h(opts.spans, `${op}: spans`);
}

export interface CausalAttentionGrads {
  gradQ: Tensor;
  /** Summed over the query heads of each kv group and the queries, in a fixed order (deterministic). */
  gradK: Tensor;
  gradV: Tensor;
}

/**
 * Backward of causalAttention (FlashAttention-2's, recomputing the probabilities from logsumexp):
 * takes the forward's inputs, its out and logsumexp, and gradOut = d loss / d out [T, H, Dh].
 * Same options as the forward.
 */
export function causalAttentionBackward(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  sequenceIds: Tensor,
  out: Tensor,
  logsumexp: Tensor,
  gradOut: Tensor,
  opts: CausalAttentionOptions = {},
): CausalAttentionGrads {
  const op = 'causalAttentionBackward';
  opts = optionsArg(op, opts);
  const r = native.causalAttentionBackward(
    h(q, `${op}: q`),
    h(k, `${op}: k`),
    h(v, `${op}: v`),
    h(sequenceIds, `${op}: sequenceIds`),
    h(out, `${op}: out`),
    h(logsumexp, `${op}: logsumexp`),
    h(gradOut, `${op}: gradOut`),
    { scale: opts?.scale, spans: spansArg(opts, op) },
  );
  return { gradQ: wrap(r.gradQ), gradK: wrap(r.gradK), gradV: wrap(r.gradV) };
}

// ---- kv cache (inference) -----------------------------------------------------------------------

/**
 * Writes rows into a key or value cache, in place: cache [S, L, Hkv, Dh] (S sequence slots of at
 * most L positions), values [N, Hkv, Dh] in cache's dtype, slots and positions [N] i32;
 * cache[slots[i], positions[i]] = values[i]. All on one device, contiguous (cpu: f32, f64; cuda:
 * f32, bf16). A slot outside [0, S) or a position outside [0, L) is a RangeError naming slots[i] or
 * positions[i] (on cpu nothing is written then; on cuda the valid rows are). Duplicate
 * (slot, position) pairs: the last one wins on cpu; on cuda the row is unspecified (it may mix them).
 */
export function kvCacheWrite(cache: Tensor, values: Tensor, slots: Tensor, positions: Tensor): void {
  const op = 'kvCacheWrite';
  native.kvCacheWrite(h(cache, `${op}: cache`), h(values, `${op}: values`), h(slots, `${op}: slots`), h(positions, `${op}: positions`));
}

export interface CachedAttentionOptions {
  /** Multiplies q . k before the softmax. Default 1 / sqrt(Dh); finite and > 0. */
  scale?: number;
}

/**
 * Attention of new queries over a kv cache: q [N, H, Dh], kCache and vCache [S, L, Hkv, Dh] in q's
 * dtype with H % Hkv == 0 (query head h reads kv head h / (H / Hkv)), slots and positions [N] i32.
 * Query i attends to the cached positions 0..positions[i] (inclusive) of slot slots[i], so it
 * serves prefill of prompts already written with kvCacheWrite as well as one-token decode steps.
 * Returns [N, H, Dh] in q's dtype (cpu: f32, f64 with the softmax in double; cuda: f32, bf16 with
 * f32 arithmetic). Out-of-range slots or positions are RangeErrors naming them.
 */
export function cachedAttention(
  q: Tensor,
  kCache: Tensor,
  vCache: Tensor,
  slots: Tensor,
  positions: Tensor,
  opts: CachedAttentionOptions = {},
): Tensor {
  const op = 'cachedAttention';
  opts = optionsArg(op, opts);
  return wrap(
    native.cachedAttention(
      h(q, `${op}: q`),
      h(kCache, `${op}: kCache`),
      h(vCache, `${op}: vCache`),
      h(slots, `${op}: slots`),
      h(positions, `${op}: positions`),
      { scale: opts?.scale },
    ),
  );
}

// ---- sampling -----------------------------------------------------------------------------------

export interface SampleOptions {
  /** Integer in [0, 2^53). With (stream, step) it fixes each row's uniform draw. */
  seed: number;
  /** >= 0; 0 is greedy (argmax, lowest index on ties). */
  temperature: number;
  /** Nucleus mass in (0, 1]; 1 (the default) is off. */
  topP?: number;
  /** Keep the k largest logits (ties with the k-th kept); 0 (the default) is off. */
  topK?: number;
}

export interface SampleResult {
  /** [B] i32: the sampled token of each row. */
  tokens: Tensor;
  /** [B]: log-probability of the token under the distribution sampled from (after temperature, top-k, top-p); 0 when greedy. f64 for f64 logits, else f32. */
  logprobs: Tensor;
  /** [B]: log_softmax of the raw logits at the token (temperature 1, no truncation). */
  modelLogprobs: Tensor;
}

function checkSampleOptions(opts: SampleOptions): { seed: number; temperature: number; topP: number; topK: number } {
  const op = 'sampleTokens';
  if (opts === null || typeof opts !== 'object') throw new TypeError(`${op}: opts must be an object (e.g. { seed: 1, temperature: 0.8 })`);
  const { seed, temperature } = opts;
  const topP = opts.topP ?? 1;
  const topK = opts.topK ?? 0;
  for (const [name, v] of [['seed', seed], ['temperature', temperature], ['topP', topP], ['topK', topK]] as const) {
    if (typeof v !== 'number') throw new TypeError(`${op}: opts.${name} must be a number`);
  }
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 53) throw new RangeError(`${op}: seed is ${seed}; expected an integer in [0, 2^53)`);
  if (!(temperature >= 0) || !Number.isFinite(temperature)) {
    throw new RangeError(`${op}: temperature is ${temperature}; expected a finite number >= 0 (0 = greedy)`);
  }
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`${op}: topP is ${topP}; expected a number in (0, 1] (1 = off)`);
  if (!Number.isSafeInteger(topK) || topK < 0) throw new RangeError(`${op}: topK is ${topK}; expected an integer >= 0 (0 = off)`);
  return { seed, temperature, topP, topK };
}

/**
 * Samples one token per row of logits [B, V] (cpu: f32, f64; cuda: f32, bf16 with f32 arithmetic)
 * with temperature, top-k and top-p (nucleus; ties at a cut-off are kept). Row b's uniform draw is
 * a pure function of (seed, streams[b], steps[b]) (streams, steps: [B] i32), so a row gives the same
 * token whatever its position in the batch, the batch size or the thread count. NaN or +Inf
 * logits, or a row with no finite logit, are a RangeError naming the row; -Inf excludes a token.
 * Maths and cost: native/kernels/sampling/sampling.h.
 */
export function sampleTokens(logits: Tensor, streams: Tensor, steps: Tensor, opts: SampleOptions): SampleResult {
  const op = 'sampleTokens';
  const l = h(logits, `${op}: logits`);
  const s = h(streams, `${op}: streams`);
  const st = h(steps, `${op}: steps`);
  const o = checkSampleOptions(opts);
  const r = native.sampleTokens(l, s, st, o);
  return { tokens: wrap(r.tokens), logprobs: wrap(r.logprobs), modelLogprobs: wrap(r.modelLogprobs) };
}
