// Every public op on inputs with a zero-sized dimension, as isolated cases (test/helpers/isolated.ts)
// for test/zeroSize.test.ts: each case either returns (its result's shapes are summarised as text) or
// throws; a case must never kill the process (rope with no heads died of SIGFPE).
import * as reference from '../../src/reference';
import * as osp from '../../src/tensor';
import * as ops from '../../src/ops';
import type { IsolatedCase } from './isolated';

const cpu = { device: 'cpu' as const };
const z = (shape: number[], dtype: osp.DType = 'f32') => osp.zeros(shape, { dtype, device: 'cpu' });
const i32 = (shape: number[]) => z(shape, 'i32');

export interface ZeroSizeCase {
  op: string;
  /** What is zero, e.g. "N = 0". */
  what: string;
  /** The shapes of the result, or 'refused' when the op must throw an error naming itself. */
  expect: string;
  run: () => unknown;
}

/** The result's tensors as "[shape] [shape] ..." (undefined as "undefined", a number as "number"). */
export function summary(v: unknown): string {
  if (v instanceof osp.Tensor) return `[${v.shape.join(', ')}]`;
  if (v === undefined) return 'undefined';
  if (typeof v === 'number') return 'number';
  if (v instanceof Float64Array || v instanceof Float32Array || v instanceof Int32Array) return `array(${v.length})`;
  if (v && typeof v === 'object') return Object.values(v as Record<string, unknown>).map(summary).join(' ');
  return typeof v;
}

const R = 'refused';

export const ZERO_SIZE_CASES: ZeroSizeCase[] = [
  { op: 'tensor', what: 'shape [0, 3]', expect: '[0, 3]', run: () => osp.tensor(new Float32Array(0), [0, 3], cpu) },
  { op: 'zeros', what: 'shape [3, 0]', expect: '[3, 0]', run: () => z([3, 0]) },
  { op: 'randn', what: 'shape [0]', expect: '[0]', run: () => osp.randn([0], cpu) },
  { op: 'toArray', what: 'a [0, 4] tensor', expect: 'array(0)', run: () => z([0, 4]).toArray() },
  { op: 'contiguous', what: 'a transposed [0, 4] tensor', expect: '[4, 0]', run: () => z([0, 4]).transpose(0, 1).contiguous() },
  { op: 'to', what: 'a [2, 0] tensor to f64', expect: '[2, 0]', run: () => z([2, 0]).to({ dtype: 'f64' }) },
  { op: 'reshape', what: '[0, 4] to [4, 0, 7]', expect: '[4, 0, 7]', run: () => z([0, 4]).reshape([4, 0, 7]) },
  { op: 'narrow', what: 'length 0', expect: '[0, 4]', run: () => z([3, 4]).narrow(0, 3, 0) },
  { op: 'tokenLogprobs', what: 'N = 0', expect: '[0]', run: () => ops.tokenLogprobs(z([0, 5]), i32([0])) },
  { op: 'tokenLogprobs', what: 'V = 0', expect: R, run: () => ops.tokenLogprobs(z([2, 0]), i32([2])) },
  { op: 'tokenLogprobs', what: 'N = 0 and V = 0', expect: R, run: () => ops.tokenLogprobs(z([0, 0]), i32([0])) },
  { op: 'tokenLogprobsBackward', what: 'N = 0', expect: '[0, 5]', run: () => ops.tokenLogprobsBackward(z([0, 5]), i32([0]), z([0])) },
  { op: 'tokenLogprobsBackward', what: 'V = 0', expect: R, run: () => ops.tokenLogprobsBackward(z([2, 0]), i32([2]), z([2])) },
  { op: 'tokenLogprobsUnfused', what: 'N = 0', expect: '[0]', run: () => reference.tokenLogprobsUnfused(z([0, 5]), i32([0])) },
  { op: 'tokenLogprobsBackwardUnfused', what: 'N = 0', expect: '[0, 5]', run: () => reference.tokenLogprobsBackwardUnfused(z([0, 5]), i32([0]), z([0])) },
  { op: 'logSoftmax', what: 'N = 0', expect: '[0, 5]', run: () => ops.logSoftmax(z([0, 5])) },
  { op: 'logSoftmax', what: 'V = 0', expect: '[3, 0]', run: () => ops.logSoftmax(z([3, 0])) },
  { op: 'logSoftmaxBackward', what: 'N = 0', expect: '[0, 5]', run: () => ops.logSoftmaxBackward(z([0, 5]), z([0, 5])) },
  { op: 'logSoftmaxBackward', what: 'V = 0', expect: '[3, 0]', run: () => ops.logSoftmaxBackward(z([3, 0]), z([3, 0])) },
  { op: 'gather', what: 'N = 0', expect: '[0]', run: () => ops.gather(z([0, 5]), i32([0])) },
  { op: 'gather', what: 'V = 0', expect: R, run: () => ops.gather(z([2, 0]), i32([2])) },
  { op: 'gatherBackward', what: 'N = 0', expect: '[0, 5]', run: () => ops.gatherBackward(z([0]), i32([0]), 5) },
  { op: 'sequenceLogprobs', what: 'N = 0', expect: '[2]', run: () => ops.sequenceLogprobs(z([0]), i32([0]), 2) },
  { op: 'sequenceLogprobs', what: 'count = 0', expect: '[0]', run: () => ops.sequenceLogprobs(z([0]), i32([0]), 0) },
  { op: 'sequenceLogprobsBackward', what: 'N = 0', expect: '[0]', run: () => ops.sequenceLogprobsBackward(z([2]), i32([0])) },
  { op: 'sequenceLogprobsBackward', what: 'no sequences', expect: '[0]', run: () => ops.sequenceLogprobsBackward(z([0]), i32([0])) },
  {
    op: 'preferenceLoss',
    what: 'B = 0',
    expect: R,
    run: () => ops.preferenceLoss('dpo', { policyChosen: z([0]), policyRejected: z([0]), refChosen: z([0]), refRejected: z([0]) }, { beta: 0.1 }),
  },
  {
    op: 'preferenceLossUnfused',
    what: 'B = 0',
    expect: R,
    run: () => reference.preferenceLossUnfused('dpo', { policyChosen: z([0]), policyRejected: z([0]), refChosen: z([0]), refRejected: z([0]) }, { beta: 0.1 }),
  },
  { op: 'add', what: 'shape [0, 3]', expect: '[0, 3]', run: () => ops.add(z([0, 3]), z([0, 3])) },
  { op: 'sub', what: 'shape [0]', expect: '[0]', run: () => ops.sub(z([0]), z([0])) },
  { op: 'mul', what: 'shape [3, 0]', expect: '[3, 0]', run: () => ops.mul(z([3, 0]), z([3, 0])) },
  { op: 'unary', what: 'shape [0]', expect: '[0]', run: () => ops.unary('exp', z([0])) },
  { op: 'affine', what: 'shape [0, 2]', expect: '[0, 2]', run: () => ops.affine(z([0, 2]), 2, 1) },
  { op: 'sum', what: 'shape [0]', expect: '[1]', run: () => ops.sum(z([0])) },
  { op: 'copyInto', what: 'shape [0, 4]', expect: 'undefined', run: () => ops.copyInto(z([0, 4]), z([0, 4], 'f64')) },
  { op: 'matmul', what: 'M = 0', expect: '[0, 3]', run: () => ops.matmul(z([0, 2]), z([2, 3])) },
  { op: 'matmul', what: 'K = 0', expect: '[2, 3]', run: () => ops.matmul(z([2, 0]), z([0, 3])) },
  { op: 'matmul', what: 'N = 0', expect: '[2, 0]', run: () => ops.matmul(z([2, 2]), z([2, 0])) },
  { op: 'rmsNorm', what: 'T = 0', expect: '[0, 4]', run: () => ops.rmsNorm(z([0, 4]), z([4])) },
  { op: 'rmsNorm', what: 'D = 0', expect: '[3, 0]', run: () => ops.rmsNorm(z([3, 0]), z([0])) },
  { op: 'rmsNormBackward', what: 'T = 0', expect: '[0, 4] [4]', run: () => ops.rmsNormBackward(z([0, 4]), z([4]), z([0, 4])) },
  { op: 'rmsNormBackward', what: 'D = 0', expect: '[3, 0] [0]', run: () => ops.rmsNormBackward(z([3, 0]), z([0]), z([3, 0])) },
  { op: 'swiglu', what: 'T = 0', expect: '[0, 4]', run: () => ops.swiglu(z([0, 4]), z([0, 4])) },
  { op: 'swiglu', what: 'F = 0', expect: '[2, 0]', run: () => ops.swiglu(z([2, 0]), z([2, 0])) },
  { op: 'swigluBackward', what: 'F = 0', expect: '[2, 0] [2, 0]', run: () => ops.swigluBackward(z([2, 0]), z([2, 0]), z([2, 0])) },
  { op: 'rope', what: 'T = 0', expect: '[0, 2, 4]', run: () => ops.rope(z([0, 2, 4]), i32([0]), { theta: 10000 }) },
  { op: 'rope', what: 'H = 0', expect: '[2, 0, 4]', run: () => ops.rope(z([2, 0, 4]), i32([2]), { theta: 10000 }) },
  { op: 'rope', what: 'Dh = 0', expect: '[2, 3, 0]', run: () => ops.rope(z([2, 3, 0]), i32([2]), { theta: 10000 }) },
  { op: 'ropeBackward', what: 'H = 0', expect: '[2, 0, 4]', run: () => ops.ropeBackward(z([2, 0, 4]), i32([2]), { theta: 10000 }) },
  { op: 'ropeBackward', what: 'Dh = 0', expect: '[2, 3, 0]', run: () => ops.ropeBackward(z([2, 3, 0]), i32([2]), { theta: 10000 }) },
  { op: 'ropeInvFreqTable', what: 'headDim = 0', expect: 'array(0)', run: () => ops.ropeInvFreqTable(10000, 1, 0) },
  { op: 'embedding', what: 'T = 0', expect: '[0, 4]', run: () => ops.embedding(z([5, 4]), i32([0])) },
  { op: 'embedding', what: 'D = 0', expect: '[2, 0]', run: () => ops.embedding(z([5, 0]), i32([2])) },
  { op: 'embedding', what: 'V = 0', expect: R, run: () => ops.embedding(z([0, 4]), i32([2])) },
  { op: 'embeddingBackward', what: 'T = 0', expect: '[5, 4]', run: () => ops.embeddingBackward(z([0, 4]), i32([0]), 5) },
  { op: 'embeddingBackward', what: 'vocab = 0, T = 0', expect: '[0, 4]', run: () => ops.embeddingBackward(z([0, 4]), i32([0]), 0) },
  { op: 'causalAttention', what: 'T = 0', expect: '[0, 2, 4] [0, 2]', run: () => ops.causalAttention(z([0, 2, 4]), z([0, 1, 4]), z([0, 1, 4]), i32([0])) },
  { op: 'causalAttention', what: 'H = 0', expect: R, run: () => ops.causalAttention(z([3, 0, 4]), z([3, 0, 4]), z([3, 0, 4]), i32([3])) },
  { op: 'causalAttention', what: 'Dh = 0', expect: '[3, 2, 0] [3, 2]', run: () => ops.causalAttention(z([3, 2, 0]), z([3, 1, 0]), z([3, 1, 0]), i32([3])) },
  {
    op: 'causalAttentionBackward',
    what: 'T = 0',
    expect: '[0, 2, 4] [0, 1, 4] [0, 1, 4]',
    run: () => ops.causalAttentionBackward(z([0, 2, 4]), z([0, 1, 4]), z([0, 1, 4]), i32([0]), z([0, 2, 4]), z([0, 2]), z([0, 2, 4])),
  },
  {
    op: 'causalAttentionBackward',
    what: 'Dh = 0',
    expect: '[3, 2, 0] [3, 1, 0] [3, 1, 0]',
    run: () => ops.causalAttentionBackward(z([3, 2, 0]), z([3, 1, 0]), z([3, 1, 0]), i32([3]), z([3, 2, 0]), z([3, 2]), z([3, 2, 0])),
  },
  { op: 'sequenceSpans', what: 'T = 0', expect: '[2, 0]', run: () => ops.sequenceSpans(new Int32Array(0), 'cpu') },
  { op: 'kvCacheWrite', what: 'N = 0', expect: 'undefined', run: () => ops.kvCacheWrite(z([2, 3, 1, 4]), z([0, 1, 4]), i32([0]), i32([0])) },
  { op: 'kvCacheWrite', what: 'S = 0', expect: R, run: () => ops.kvCacheWrite(z([0, 3, 1, 4]), z([1, 1, 4]), i32([1]), i32([1])) },
  { op: 'kvCacheWrite', what: 'L = 0', expect: R, run: () => ops.kvCacheWrite(z([2, 0, 1, 4]), z([1, 1, 4]), i32([1]), i32([1])) },
  { op: 'kvCacheWrite', what: 'Hkv = 0', expect: 'undefined', run: () => ops.kvCacheWrite(z([2, 3, 0, 4]), z([1, 0, 4]), i32([1]), i32([1])) },
  { op: 'kvCacheWrite', what: 'Dh = 0', expect: 'undefined', run: () => ops.kvCacheWrite(z([2, 3, 1, 0]), z([1, 1, 0]), i32([1]), i32([1])) },
  {
    op: 'cachedAttention',
    what: 'N = 0',
    expect: '[0, 2, 4]',
    run: () => ops.cachedAttention(z([0, 2, 4]), z([2, 3, 1, 4]), z([2, 3, 1, 4]), i32([0]), i32([0])),
  },
  {
    op: 'cachedAttention',
    what: 'S = 0',
    expect: R,
    run: () => ops.cachedAttention(z([1, 2, 4]), z([0, 3, 1, 4]), z([0, 3, 1, 4]), i32([1]), i32([1])),
  },
  {
    op: 'cachedAttention',
    what: 'L = 0',
    expect: R,
    run: () => ops.cachedAttention(z([1, 2, 4]), z([2, 0, 1, 4]), z([2, 0, 1, 4]), i32([1]), i32([1])),
  },
  {
    op: 'cachedAttention',
    what: 'Dh = 0',
    expect: '[1, 2, 0]',
    run: () => ops.cachedAttention(z([1, 2, 0]), z([2, 3, 1, 0]), z([2, 3, 1, 0]), i32([1]), i32([1])),
  },
  {
    op: 'cachedAttention',
    what: 'H = 0 and Hkv = 0',
    expect: R,
    run: () => ops.cachedAttention(z([1, 0, 4]), z([2, 3, 0, 4]), z([2, 3, 0, 4]), i32([1]), i32([1])),
  },
  { op: 'sumOfSquares', what: 'shape [0]', expect: '[1]', run: () => ops.sumOfSquares(z([0])) },
  {
    op: 'adamwStep',
    what: 'shape [0, 3]',
    expect: 'undefined',
    run: () => ops.adamwStep(z([0, 3]), z([0, 3]), z([0, 3]), z([0, 3]), { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 1 }),
  },
  { op: 'clipGradNorm', what: 'a [0] gradient', expect: 'number number', run: () => ops.clipGradNorm([z([0])], 1) },
  { op: 'sampleTokens', what: 'B = 0', expect: '[0] [0] [0]', run: () => ops.sampleTokens(z([0, 5]), i32([0]), i32([0]), { seed: 1, temperature: 1 }) },
  { op: 'sampleTokens', what: 'V = 0', expect: R, run: () => ops.sampleTokens(z([2, 0]), i32([2]), i32([2]), { seed: 1, temperature: 1 }) },
];

export function zeroSizeCases(): IsolatedCase[] {
  return ZERO_SIZE_CASES.map((c) => ({ name: `${c.op}: ${c.what}`, run: () => osp.scope(() => summary(c.run())) }));
}
