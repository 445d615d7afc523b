// The seeded fuzz of the public ops (test/fuzz.test.ts): thousands of calls, each a valid call with
// one argument replaced by something wrong (a wrong type, dtype, rank or size, a zero size, a
// disposed or non-contiguous tensor, a bad number or option object), or with every size of one
// symbol set to zero, or an overflowing shape for the ops that make tensors and views. The cases
// run in child processes (test/helpers/isolated.ts); a call may return or throw, but an error must
// start with `<op>:` and name the argument that was replaced, and no call may kill its process.
//
// fuzzCases(`${seed}:${count}`) makes the same list in the parent and in the child; each case draws
// its values from its own generator (seed, index), so one case replays alone as well.
import * as reference from '../../src/reference';
import * as osp from '../../src/tensor';
import * as ops from '../../src/ops';
import type { IsolatedCase } from './isolated';
import { rng } from './random';

type Rand = () => number;
type Args = Record<string, unknown>;
type Sizes = Record<string, number>;
type DType = osp.DType;

const cpu = { device: 'cpu' as const };
const int = (r: Rand, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];

/** A tensor of `shape` on the cpu with values from f(i) (i32 rounded). */
function make(shape: number[], dtype: DType, f: (i: number) => number): osp.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  if (dtype === 'i32') return osp.tensor(Int32Array.from({ length: n }, (_, i) => Math.round(f(i))), shape, cpu);
  return osp.tensor(Float64Array.from({ length: n }, (_, i) => f(i)), shape, { dtype, device: 'cpu' });
}
const normal = (r: Rand) => (shape: number[], dtype: DType = 'f32') => make(shape, dtype, () => r() * 4 - 2);
const ints = (r: Rand) => (shape: number[], lo: number, hi: number) => make(shape, 'i32', () => int(r, lo, Math.max(lo, hi)));
const within = (r: Rand) => (shape: number[], lo: number, hi: number) => make(shape, 'f32', () => lo + (hi - lo) * r());

/** One op: its sizes (symbol -> [lo, hi]), valid arguments for given sizes, and the call. */
interface Spec {
  op: string;
  sizes: Record<string, [number, number]>;
  make: (s: Sizes, r: Rand) => Args;
  call: (a: Args) => unknown;
}

/** The option bag built from named arguments, leaving out those that are undefined. */
const bag = (a: Args, names: string[]): Record<string, unknown> => {
  const o: Record<string, unknown> = {};
  for (const n of names) if (a[n] !== undefined) o[n] = a[n];
  return o;
};
/** The options argument: the mutated `opts` itself if it was replaced, else the bag of the named ones. */
const optsOf = (a: Args, names: string[]) => ('opts' in a ? a.opts : bag(a, names));
type Fn = (...args: unknown[]) => unknown;
const f = (fn: unknown) => fn as Fn;

/** Logits [N, V] with a target per row (and a gradient per row for the backward): the fused and unfused token log-probs share them. */
const ROWS = { N: [1, 4], V: [1, 5] } as Spec['sizes'];
const rowsArgs = (s: Sizes, r: Rand) => ({ logits: normal(r)([s.N, s.V]), targets: ints(r)([s.N], 0, s.V - 1), ignoreIndex: undefined });
const rowsGradArgs = (s: Sizes, r: Rand) => ({ ...rowsArgs(s, r), gradLogprobs: normal(r)([s.N]) });

/** q [T, G Hkv, Dh], k and v [T, Hkv, Dh] over two packed sequences: attention's forward and backward share them. */
const ATTENTION = { T: [1, 4], G: [1, 2], Hkv: [1, 2], Dh: [1, 4] } as Spec['sizes'];
const attentionArgs = (s: Sizes, r: Rand) => ({
  q: normal(r)([s.T, s.G * s.Hkv, s.Dh]),
  k: normal(r)([s.T, s.Hkv, s.Dh]),
  v: normal(r)([s.T, s.Hkv, s.Dh]),
  sequenceIds: make([s.T], 'i32', (i) => (i < s.T / 2 ? 0 : 1)),
});

const SPECS: Spec[] = [
  { op: 'tokenLogprobs', sizes: ROWS, make: rowsArgs, call: (a) => f(ops.tokenLogprobs)(a.logits, a.targets, optsOf(a, ['ignoreIndex'])) },
  {
    op: 'tokenLogprobsBackward',
    sizes: ROWS,
    make: (s, r) => ({ ...rowsGradArgs(s, r), inPlace: false }),
    call: (a) => f(ops.tokenLogprobsBackward)(a.logits, a.targets, a.gradLogprobs, optsOf(a, ['ignoreIndex', 'inPlace'])),
  },
  { op: 'tokenLogprobsUnfused', sizes: ROWS, make: rowsArgs, call: (a) => f(reference.tokenLogprobsUnfused)(a.logits, a.targets, optsOf(a, ['ignoreIndex'])) },
  {
    op: 'tokenLogprobsBackwardUnfused',
    sizes: ROWS,
    make: rowsGradArgs,
    call: (a) => f(reference.tokenLogprobsBackwardUnfused)(a.logits, a.targets, a.gradLogprobs, optsOf(a, ['ignoreIndex'])),
  },
  { op: 'logSoftmax', sizes: { N: [1, 4], V: [1, 5] }, make: (s, r) => ({ logits: normal(r)([s.N, s.V]) }), call: (a) => f(ops.logSoftmax)(a.logits) },
  {
    op: 'logSoftmaxBackward',
    sizes: { N: [1, 4], V: [1, 5] },
    make: (s, r) => ({ gradOut: normal(r)([s.N, s.V]), logSoftmaxOut: normal(r)([s.N, s.V]) }),
    call: (a) => f(ops.logSoftmaxBackward)(a.gradOut, a.logSoftmaxOut),
  },
  {
    op: 'gather',
    sizes: { N: [1, 4], V: [1, 5] },
    make: (s, r) => ({ values: normal(r)([s.N, s.V]), targets: ints(r)([s.N], 0, s.V - 1), ignoreIndex: undefined }),
    call: (a) => f(ops.gather)(a.values, a.targets, optsOf(a, ['ignoreIndex'])),
  },
  {
    op: 'gatherBackward',
    sizes: { N: [1, 4], V: [1, 5] },
    make: (s, r) => ({ grad: normal(r)([s.N]), targets: ints(r)([s.N], 0, s.V - 1), vocab: s.V, ignoreIndex: undefined, dtype: undefined }),
    call: (a) => f(ops.gatherBackward)(a.grad, a.targets, a.vocab, optsOf(a, ['ignoreIndex', 'dtype'])),
  },
  {
    op: 'sequenceLogprobs',
    sizes: { N: [1, 5], C: [1, 3] },
    make: (s, r) => ({ tokenLogprobs: normal(r)([s.N]), sequenceIds: ints(r)([s.N], -1, s.C - 1), count: s.C, ignoreIndex: undefined }),
    call: (a) => f(ops.sequenceLogprobs)(a.tokenLogprobs, a.sequenceIds, a.count, optsOf(a, ['ignoreIndex'])),
  },
  {
    op: 'sequenceLogprobsBackward',
    sizes: { N: [1, 5], C: [1, 3] },
    make: (s, r) => ({ gradSequences: normal(r)([s.C]), sequenceIds: ints(r)([s.N], -1, s.C - 1), ignoreIndex: undefined }),
    call: (a) => f(ops.sequenceLogprobsBackward)(a.gradSequences, a.sequenceIds, optsOf(a, ['ignoreIndex'])),
  },
  ...(['preferenceLoss', 'preferenceLossUnfused'] as const).map(
    (op): Spec => ({
      op,
      sizes: { B: [1, 4] },
      make: (s, r) => ({
        kind: 'spce',
        policyChosen: normal(r)([s.B]),
        policyRejected: normal(r)([s.B]),
        refChosen: normal(r)([s.B]),
        refRejected: normal(r)([s.B]),
        target: within(r)([s.B], 0, 1),
        beta: 0.1,
      }),
      call: (a) =>
        f(op === 'preferenceLoss' ? ops.preferenceLoss : reference.preferenceLossUnfused)(a.kind, 'inputs' in a ? a.inputs : bag(a, ['policyChosen', 'policyRejected', 'refChosen', 'refRejected', 'target']), optsOf(a, ['beta'])),
    }),
  ),
  ...(['add', 'sub', 'mul'] as const).map(
    (op): Spec => ({ op, sizes: { N: [1, 4], M: [1, 3] }, make: (s, r) => ({ a: normal(r)([s.N, s.M]), b: normal(r)([s.N, s.M]) }), call: (a) => f(ops[op])(a.a, a.b) }),
  ),
  { op: 'unary', sizes: { N: [1, 6] }, make: (s, r) => ({ op: pick(r, ['neg', 'sigmoid', 'softplus', 'logSigmoid', 'square', 'exp', 'log']), x: normal(r)([s.N]) }), call: (a) => f(ops.unary)(a.op, a.x) },
  { op: 'affine', sizes: { N: [1, 6] }, make: (s, r) => ({ x: normal(r)([s.N]), scale: 2, shift: -1 }), call: (a) => f(ops.affine)(a.x, a.scale, a.shift) },
  { op: 'sum', sizes: { N: [1, 6] }, make: (s, r) => ({ x: normal(r)([s.N]) }), call: (a) => f(ops.sum)(a.x) },
  {
    op: 'copyInto',
    sizes: { N: [1, 4], M: [1, 3] },
    make: (s, r) => ({ dst: normal(r)([s.N, s.M]), src: normal(r)([s.N, s.M], 'f64') }),
    call: (a) => f(ops.copyInto)(a.dst, a.src),
  },
  {
    op: 'matmul',
    sizes: { M: [1, 4], K: [1, 4], N: [1, 4] },
    make: (s, r) => ({ a: normal(r)([s.M, s.K]), b: normal(r)([s.K, s.N]), transA: undefined, transB: undefined, impl: undefined }),
    call: (a) => f(ops.matmul)(a.a, a.b, optsOf(a, ['transA', 'transB', 'impl'])),
  },
  {
    op: 'rmsNorm',
    sizes: { T: [1, 4], D: [1, 5] },
    make: (s, r) => ({ x: normal(r)([s.T, s.D]), weight: normal(r)([s.D]), eps: undefined }),
    call: (a) => f(ops.rmsNorm)(a.x, a.weight, optsOf(a, ['eps'])),
  },
  {
    op: 'rmsNormBackward',
    sizes: { T: [1, 4], D: [1, 5] },
    make: (s, r) => ({ x: normal(r)([s.T, s.D]), weight: normal(r)([s.D]), gradOut: normal(r)([s.T, s.D]), eps: undefined }),
    call: (a) => f(ops.rmsNormBackward)(a.x, a.weight, a.gradOut, optsOf(a, ['eps'])),
  },
  { op: 'swiglu', sizes: { T: [1, 4], F: [1, 5] }, make: (s, r) => ({ gate: normal(r)([s.T, s.F]), up: normal(r)([s.T, s.F]) }), call: (a) => f(ops.swiglu)(a.gate, a.up) },
  {
    op: 'swigluBackward',
    sizes: { T: [1, 4], F: [1, 5] },
    make: (s, r) => ({ gate: normal(r)([s.T, s.F]), up: normal(r)([s.T, s.F]), gradOut: normal(r)([s.T, s.F]) }),
    call: (a) => f(ops.swigluBackward)(a.gate, a.up, a.gradOut),
  },
  ...(['rope', 'ropeBackward'] as const).map(
    (op): Spec => ({
      op,
      sizes: { T: [1, 4], H: [1, 3], P: [1, 3] },
      make: (s, r) => ({ [op === 'rope' ? 'x' : 'gradOut']: normal(r)([s.T, s.H, 2 * s.P]), positions: ints(r)([s.T], 0, 50), theta: 10000, scalingFactor: undefined }),
      call: (a) => f(ops[op])(op === 'rope' ? a.x : a.gradOut, a.positions, optsOf(a, ['theta', 'scalingFactor', 'invFreq'])),
    }),
  ),
  {
    op: 'ropeInvFreqTable',
    sizes: { P: [0, 8] },
    make: (s) => ({ theta: 10000, scalingFactor: 1, headDim: 2 * s.P }),
    call: (a) => f(ops.ropeInvFreqTable)(a.theta, a.scalingFactor, a.headDim),
  },
  {
    op: 'embedding',
    sizes: { V: [1, 5], D: [1, 4], T: [1, 4] },
    make: (s, r) => ({ table: normal(r)([s.V, s.D]), ids: ints(r)([s.T], 0, s.V - 1) }),
    call: (a) => f(ops.embedding)(a.table, a.ids),
  },
  {
    op: 'embeddingBackward',
    sizes: { V: [1, 5], D: [1, 4], T: [1, 4] },
    make: (s, r) => ({ gradOut: normal(r)([s.T, s.D]), ids: ints(r)([s.T], 0, s.V - 1), vocab: s.V }),
    call: (a) => f(ops.embeddingBackward)(a.gradOut, a.ids, a.vocab),
  },
  {
    op: 'causalAttention',
    sizes: ATTENTION,
    make: (s, r) => ({ ...attentionArgs(s, r), scale: undefined }),
    call: (a) => f(ops.causalAttention)(a.q, a.k, a.v, a.sequenceIds, optsOf(a, ['scale', 'spans'])),
  },
  {
    op: 'causalAttentionBackward',
    sizes: ATTENTION,
    make: (s, r) => ({
      ...attentionArgs(s, r),
      out: normal(r)([s.T, s.G * s.Hkv, s.Dh]),
      logsumexp: normal(r)([s.T, s.G * s.Hkv]),
      gradOut: normal(r)([s.T, s.G * s.Hkv, s.Dh]),
      scale: undefined,
    }),
    call: (a) => f(ops.causalAttentionBackward)(a.q, a.k, a.v, a.sequenceIds, a.out, a.logsumexp, a.gradOut, optsOf(a, ['scale', 'spans'])),
  },
  {
    op: 'sequenceSpans',
    sizes: { T: [0, 5] },
    make: (s) => ({ sequenceIds: Int32Array.from({ length: s.T }, (_, i) => (i < 2 ? 0 : 1)), device: 'cpu' }),
    call: (a) => f(ops.sequenceSpans)(a.sequenceIds, a.device),
  },
  {
    op: 'kvCacheWrite',
    sizes: { S: [1, 3], L: [1, 4], Hkv: [1, 2], Dh: [1, 4], N: [1, 3] },
    make: (s, r) => ({
      cache: normal(r)([s.S, s.L, s.Hkv, s.Dh]),
      values: normal(r)([s.N, s.Hkv, s.Dh]),
      slots: ints(r)([s.N], 0, s.S - 1),
      positions: ints(r)([s.N], 0, s.L - 1),
    }),
    call: (a) => f(ops.kvCacheWrite)(a.cache, a.values, a.slots, a.positions),
  },
  {
    op: 'cachedAttention',
    sizes: { S: [1, 3], L: [1, 4], G: [1, 2], Hkv: [1, 2], Dh: [1, 4], N: [1, 3] },
    make: (s, r) => ({
      q: normal(r)([s.N, s.G * s.Hkv, s.Dh]),
      kCache: normal(r)([s.S, s.L, s.Hkv, s.Dh]),
      vCache: normal(r)([s.S, s.L, s.Hkv, s.Dh]),
      slots: ints(r)([s.N], 0, s.S - 1),
      positions: ints(r)([s.N], 0, s.L - 1),
      scale: undefined,
    }),
    call: (a) => f(ops.cachedAttention)(a.q, a.kCache, a.vCache, a.slots, a.positions, optsOf(a, ['scale'])),
  },
  { op: 'sumOfSquares', sizes: { N: [1, 6] }, make: (s, r) => ({ x: normal(r)([s.N]) }), call: (a) => f(ops.sumOfSquares)(a.x) },
  {
    op: 'adamwStep',
    sizes: { N: [1, 3], M: [1, 3] },
    make: (s, r) => ({
      param: normal(r)([s.N, s.M]),
      grad: normal(r)([s.N, s.M]),
      m: normal(r)([s.N, s.M]),
      v: within(r)([s.N, s.M], 0, 1),
      lr: 1e-3,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0.01,
      step: 1,
    }),
    call: (a) => f(ops.adamwStep)(a.param, a.grad, a.m, a.v, optsOf(a, ['lr', 'beta1', 'beta2', 'eps', 'weightDecay', 'step', 'gradScale', 'checkFinite'])),
  },
  {
    op: 'sampleTokens',
    sizes: { B: [1, 4], V: [1, 6] },
    make: (s, r) => ({ logits: normal(r)([s.B, s.V]), streams: ints(r)([s.B], 0, 9), steps: ints(r)([s.B], 0, 9), seed: 7, temperature: 0.8, topP: undefined, topK: undefined }),
    call: (a) => f(ops.sampleTokens)(a.logits, a.streams, a.steps, optsOf(a, ['seed', 'temperature', 'topP', 'topK'])),
  },
  // making tensors and views
  {
    op: 'tensor',
    sizes: { N: [1, 4], M: [1, 3] },
    make: (s) => ({ data: new Float32Array(s.N * s.M), shape: [s.N, s.M], dtype: undefined, device: 'cpu' }),
    call: (a) => f(osp.tensor)(a.data, a.shape, optsOf(a, ['dtype', 'device'])),
  },
  { op: 'zeros', sizes: { N: [1, 4], M: [1, 3] }, make: (s) => ({ shape: [s.N, s.M], dtype: 'f32', device: 'cpu' }), call: (a) => f(osp.zeros)(a.shape, optsOf(a, ['dtype', 'device'])) },
  {
    op: 'randn',
    sizes: { N: [1, 4], M: [1, 3] },
    make: () => ({ shape: [2, 3], seed: 1, mean: 0, std: 1, device: 'cpu' }),
    call: (a) => f(osp.randn)(a.shape, optsOf(a, ['seed', 'mean', 'std', 'dtype', 'device'])),
  },
  {
    op: 'randu',
    sizes: { N: [1, 4], M: [1, 3] },
    make: () => ({ shape: [2, 3], seed: 1, low: -1, high: 1, device: 'cpu' }),
    call: (a) => f(osp.randu)(a.shape, optsOf(a, ['seed', 'low', 'high', 'dtype', 'device'])),
  },
  {
    op: 'dropoutMask',
    sizes: { N: [1, 4], M: [1, 3] },
    make: () => ({ shape: [2, 3], p: 0.25, seed: 1, device: 'cpu' }),
    call: (a) => f(osp.dropoutMask)(a.shape, a.p as number, optsOf(a, ['seed', 'dtype', 'device'])),
  },
  // Tensor methods, called through Function.prototype.call so that a replaced receiver (`tensor`) reaches them.
  ...(
    [
      ['reshape', {}, (t: osp.Tensor, a: Args) => osp.Tensor.prototype.reshape.call(t, a.shape as number[])],
      ['narrow', { dim: 0, start: 0, length: 1 }, (t: osp.Tensor, a: Args) => osp.Tensor.prototype.narrow.call(t, a.dim as number, a.start as number, a.length as number)],
      ['transpose', { dim0: 0, dim1: 1 }, (t: osp.Tensor, a: Args) => osp.Tensor.prototype.transpose.call(t, a.dim0 as number, a.dim1 as number)],
      ['toArray', {}, (t: osp.Tensor) => osp.Tensor.prototype.toArray.call(t)],
      ['contiguous', {}, (t: osp.Tensor) => osp.Tensor.prototype.contiguous.call(t)],
      ['dispose', {}, (t: osp.Tensor) => osp.Tensor.prototype.dispose.call(t)],
      ['to', { dtype: 'f64', device: 'cpu' }, (t: osp.Tensor, a: Args) => osp.Tensor.prototype.to.call(t, optsOf(a, ['dtype', 'device']) as osp.TensorOptions)],
    ] as const
  ).map(
    ([op, extra, method]): Spec => ({
      op,
      sizes: { N: [1, 4], M: [1, 3] },
      make: (s, r) => ({ tensor: normal(r)([s.N, s.M]), ...extra, ...(op === 'reshape' ? { shape: [s.M, s.N] } : {}) }),
      call: (a) => (method as (t: unknown, a: Args) => unknown)(a.tensor, a),
    }),
  ),
];

/** The ops whose last argument is an options object (replaceable as a whole: `opts`). */
const WITH_OPTS = new Set([
  'tokenLogprobs', 'tokenLogprobsBackward', 'tokenLogprobsUnfused', 'tokenLogprobsBackwardUnfused', 'gather', 'gatherBackward',
  'sequenceLogprobs', 'sequenceLogprobsBackward', 'preferenceLoss', 'preferenceLossUnfused', 'matmul', 'rmsNorm', 'rmsNormBackward',
  'rope', 'ropeBackward', 'causalAttention', 'causalAttentionBackward', 'cachedAttention', 'adamwStep', 'sampleTokens', 'tensor',
  'zeros', 'randn', 'randu', 'dropoutMask', 'to',
]);

// ---- mutations ------------------------------------------------------------------------------------

const DTYPES: DType[] = ['f32', 'f64', 'bf16', 'i32'];
const WRAPPED = 'a view of 2^64 elements';
const HUGE = 2 ** 31 - 1;

/** Replacements for a tensor argument (given the valid one, made in the case's scope). */
function tensorMutations(t: osp.Tensor, r: Rand): [string, () => unknown][] {
  const shape = t.shape;
  const out: [string, () => unknown][] = [
    ['null', () => null],
    ['undefined', () => undefined],
    ['a number', () => 3],
    ['a string', () => 'tensor'],
    ['a plain array', () => Array.from({ length: Math.max(1, t.size) }, () => 1)],
    ['an empty object', () => ({})],
    ['a Float32Array', () => new Float32Array(Math.max(1, t.size))],
    ['its native handle', () => t.handle],
    ['an object shaped like a Tensor', () => ({ shape, dtype: t.dtype, device: 'cpu', handle: {} })],
    // A Tensor whose handle only inherits from a native one: native methods called on it were
    // "Illegal invocation", and unwrapping it "Invalid argument".
    ['a Tensor with a forged handle', () => Object.assign(Object.create(osp.Tensor.prototype), { handle: Object.create(t.handle) })],
    ['an object inheriting from a Tensor', () => Object.create(t)],
    ['a disposed tensor', () => (t.dispose(), t)],
    ['rank + 1', () => normal(r)([...shape, 2], t.dtype)],
    ['rank - 1', () => normal(r)(shape.length > 1 ? shape.slice(1) : [], t.dtype)],
    ['a size + 1', () => normal(r)(shape.map((d, i) => (i === shape.length - 1 ? d + 1 : d)), t.dtype)],
    ['a size of 0', () => {
      const at = int(r, 0, shape.length - 1);
      return normal(r)(shape.map((d, i) => (i === at ? 0 : d)), t.dtype);
    }],
  ];
  for (const d of DTYPES) if (d !== t.dtype) out.push([`dtype ${d}`, () => make(shape, d, () => 1)]);
  if (shape.length >= 3) {
    // zeros([0]) viewed with 2^64 elements, a product that wrapped to 0: the view must be refused
    // where it is made (by reshape, naming its shape); ops on it crashed or wrote past the buffer.
    const wrapped = shape.length === 3 ? [2 ** 30, 2 ** 30, 16] : [2 ** 30, 2 ** 30, ...shape.slice(2, -1).map(() => 1), 16];
    out.push([WRAPPED, () => osp.zeros([0], { dtype: t.dtype, device: 'cpu' }).reshape(wrapped)]);
  }
  if (shape.length >= 2) {
    out.push(['a transposed view', () => normal(r)([...shape].reverse(), t.dtype).transpose(0, shape.length - 1)]);
    out.push(['a column view', () => normal(r)([...shape.slice(0, -1), shape[shape.length - 1] + 1], t.dtype).narrow(shape.length - 1, 1, shape[shape.length - 1])]);
  }
  return out;
}

const BAD_NUMBERS: [string, unknown][] = [
  ['NaN', NaN],
  ['Infinity', Infinity],
  ['-1', -1],
  ['0.5', 0.5],
  ['2^53', 2 ** 53],
  ['1e300', 1e300],
  ['a numeric string', '1'],
  ['null', null],
  ['a boolean', true],
  ['an object', {}],
];

function valueMutations(name: string, v: unknown): [string, () => unknown][] {
  if (name === 'opts' || name === 'inputs') return [['null', () => null], ['a number', () => 5], ['a string', () => 'x']];
  if (typeof v === 'boolean') return [['a string', () => 'yes'], ['a number', () => 1], ['null', () => null]];
  if (typeof v === 'string' || ['dtype', 'device', 'impl'].includes(name)) {
    return [['an unknown string', () => 'nonsense'], ['a number', () => 1], ['null', () => null], ['an object', () => ({})]];
  }
  if (name === 'shape') {
    return [
      ['null', () => null],
      ['a string', () => '2,3'],
      ['[-1]', () => [-1]],
      ['[1.5]', () => [1.5]],
      ['[NaN]', () => [NaN]],
      ['[\'2\']', () => ['2']],
      ['2^31', () => [2 ** 31]],
      ['an overflowing shape [2^30, 2^30, 1, 16]', () => [2 ** 30, 2 ** 30, 1, 16]],
      ['an overflowing shape [0, 2^31 - 1 x 3]', () => [0, HUGE, HUGE, HUGE]],
      ['a shape of 2^53 bytes', () => [2 ** 21, 2 ** 21, 2 ** 10]],
    ];
  }
  if (name === 'sequenceIds' && v instanceof Int32Array) return [['a Float64Array', () => new Float64Array(v.length)], ['null', () => null], ['a plain array', () => Array.from(v)]];
  if (name === 'invFreq') return [['a Float32Array', () => new Float32Array(2)], ['a plain array', () => [1]]];
  return BAD_NUMBERS.map(([label, x]) => [label, () => x]);
}

// ---- the cases -------------------------------------------------------------------------------------

export interface FuzzCase extends IsolatedCase {
  /** The op whose name the error must start with. */
  op: string;
  /** The argument the error must name, or undefined when every argument is valid (zero sizes). */
  arg: string | undefined;
  /** The call must throw (returning is a failure too). */
  mustThrow?: boolean;
}

function drawSizes(spec: Spec, r: Rand, zero?: string): Sizes {
  const s: Sizes = {};
  for (const [k, [lo, hi]] of Object.entries(spec.sizes)) s[k] = k === zero ? 0 : int(r, lo, hi);
  return s;
}

/** `${seed}:${count}` -> count cases drawn from seed. */
export function fuzzCases(arg: string): FuzzCase[] {
  const [seedText, countText] = arg.split(':');
  const seed = Number(seedText) >>> 0;
  const count = Number(countText);
  const plan = rng(seed);
  const cases: FuzzCase[] = [];
  for (let i = 0; i < count; i++) {
    const spec = pick(plan, SPECS);
    // The plan fixes the op, the argument and the mutation's index; the values come from the case's
    // own generator, seeded by (seed, i), so that a case replays alone.
    const caseSeed = (seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0;
    const symbols = Object.keys(spec.sizes);
    if (plan() < 0.12 && symbols.length > 0) {
      const zero = pick(plan, symbols);
      cases.push({
        name: `#${i} ${spec.op}: ${zero} = 0`,
        op: spec.op,
        arg: undefined,
        run: () => osp.scope(() => void spec.call(spec.make(drawSizes(spec, rng(caseSeed), zero), rng(caseSeed + 1)))),
      });
      continue;
    }
    // Which argument (and which of its mutations) is decided by the case's generator inside run();
    // the name is worked out here the same way, from a throwaway draw of the same generator.
    const probe = describeCase(spec, caseSeed);
    const wrapped = probe.label === WRAPPED; // refused by the reshape that makes it
    cases.push({
      name: `#${i} ${spec.op}: ${probe.arg} ${probe.label}`,
      op: wrapped ? 'reshape' : spec.op,
      arg: wrapped ? 'shape' : probe.arg,
      mustThrow: wrapped,
      run: () => osp.scope(() => void runMutated(spec, caseSeed)),
    });
  }
  return cases;
}

/** The argument names of a spec, from one valid draw (freed at once). */
const NAMES = new Map<Spec, string[]>();
function namesOf(spec: Spec): string[] {
  let names = NAMES.get(spec);
  if (!names) {
    names = osp.scope(() => Object.keys(spec.make(drawSizes(spec, rng(1)), rng(2))));
    if (WITH_OPTS.has(spec.op)) names.push('opts');
    if (spec.op.startsWith('preferenceLoss')) names.push('inputs');
    NAMES.set(spec, names);
  }
  return names;
}

function choose(spec: Spec, caseSeed: number, a: Args): { arg: string; label: string; value: () => unknown } {
  const r = rng(caseSeed + 2);
  const arg = pick(r, namesOf(spec));
  const v = a[arg];
  const options = v instanceof osp.Tensor ? tensorMutations(v, rng(caseSeed + 3)) : valueMutations(arg, v);
  const [label, value] = pick(r, options);
  return { arg, label, value };
}

function describeCase(spec: Spec, caseSeed: number): { arg: string; label: string } {
  return osp.scope(() => {
    const a = spec.make(drawSizes(spec, rng(caseSeed)), rng(caseSeed + 1));
    const { arg, label } = choose(spec, caseSeed, a);
    return { arg, label };
  });
}

function runMutated(spec: Spec, caseSeed: number): unknown {
  const a = spec.make(drawSizes(spec, rng(caseSeed)), rng(caseSeed + 1));
  const { arg, value } = choose(spec, caseSeed, a);
  return spec.call({ ...a, [arg]: value() });
}

/** The fuzz's rule for one result: no death, and an error starts with `<op>:` and names the argument. */
export function violation(c: Pick<FuzzCase, 'op' | 'arg' | 'mustThrow'>, r: { outcome: string; errorClass: string; message: string }): string | undefined {
  if (r.outcome === 'died') return `died: ${r.errorClass}`;
  if (r.outcome === 'returned' && c.mustThrow) return 'returned; expected an error';
  if (r.outcome !== 'threw') return undefined;
  const starts = r.message.startsWith(`${c.op}: `);
  const names = c.arg === undefined || new RegExp(`(^|[^A-Za-z0-9_])${c.arg}([^A-Za-z0-9_]|$)`).test(r.message);
  const cls = r.errorClass === 'TypeError' || r.errorClass === 'RangeError';
  if (starts && names && cls) return undefined;
  return [!starts && 'op', !names && 'argument', !cls && 'class'].filter(Boolean).join(' and ') + ` not named: ${r.errorClass}: ${r.message}`;
}
