// Bad input for every public op, as one list shared by test/badInput.test.ts (run in process) and by
// a child process (this file run as main), which prints one JSON line {name, errorClass, message}
// per case so that a crash or abort in native code shows up as a failed exit instead of a lost
// Jest worker. Each case says which error class it must raise and a regex its message must match
// (naming the offending argument). Everything is made on the cpu; values are fixed (what is under
// test is the validation, not the maths).
import * as osp from '../../src';
import * as modelOps from '../../src/ops';

export type ErrorClass = 'TypeError' | 'RangeError' | 'Error';

export interface BadCase {
  name: string;
  errorClass: ErrorClass;
  message: RegExp;
  run: () => unknown;
}

export interface CaseResult {
  name: string;
  /** Constructor name of what was thrown, or null when nothing was. */
  errorClass: string | null;
  message: string;
}

const cpu = { device: 'cpu' } as const;

// ---- valid arguments, made fresh for each case ---------------------------------------------------

const N = 4;
const V = 5;
const B = 3;

const f32 = (values: number[], shape: number[] = [values.length]) => osp.tensor(Float32Array.from(values), shape, cpu);
const f64 = (values: number[], shape: number[] = [values.length]) => osp.tensor(Float64Array.from(values), shape, cpu);
const i32 = (values: number[], shape: number[] = [values.length]) => osp.tensor(Int32Array.from(values), shape, cpu);
const bf16 = (values: number[], shape: number[] = [values.length]) =>
  osp.tensor(Float32Array.from(values), shape, { dtype: 'bf16', device: 'cpu' });
const range = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));

const logits = (dtype: 'f32' | 'bf16' | 'i32' | 'f64' = 'f32', rows = N, cols = V) => {
  const v = range(rows * cols, (i) => ((i * 7) % 11) - 5);
  return { f32, bf16, i32, f64 }[dtype](v, [rows, cols]);
};
/** An [N, V] view that is not contiguous: the transpose of a [V, N] matrix. */
const logitsView = () => f32(range(N * V, (i) => (i % 9) - 4), [V, N]).transpose(0, 1);
const targets = (n = N) => i32(range(n, (i) => i % V));
const gradN = (n = N) => f32(range(n, (i) => 0.5 - i / 4));
const seqIds = () => i32([0, 0, 1, -1]);


interface PrefArgs {
  policyChosen: unknown;
  policyRejected: unknown;
  refChosen: unknown;
  refRejected: unknown;
  target?: unknown;
}
const prefInputs = (withTarget = true): PrefArgs => ({
  policyChosen: f32([-3, -7, -12]),
  policyRejected: f32([-4, -6, -15]),
  refChosen: f32([-3.5, -7, -11]),
  refRejected: f32([-4.5, -6.5, -14]),
  ...(withTarget ? { target: f32([0.8, 0.5, 1]) } : {}),
});

type PrefFn = typeof osp.preferenceLoss;
const PREF_OPS: [string, PrefFn][] = [
  ['preferenceLoss', osp.preferenceLoss],
  ['preferenceLossUnfused', osp.reference.preferenceLossUnfused],
];
/** Calls a preference op with the loosely typed arguments a bad-input case needs. */
const callPref = (fn: PrefFn, kind: unknown, inputs: unknown, opts: unknown = { beta: 0.1 }) =>
  (fn as unknown as (k: unknown, i: unknown, o: unknown) => unknown)(kind, inputs, opts);

// ---- the ops and their tensor arguments, for the disposed / non-Tensor cases ---------------------

interface OpSpec {
  op: string;
  /** Valid tensor arguments by name. */
  make: () => Record<string, unknown>;
  call: (a: Record<string, unknown>) => unknown;
}

type AnyFn = (...args: unknown[]) => unknown;
const loose = (f: unknown) => f as AnyFn;

const OPS: OpSpec[] = [
  { op: 'tokenLogprobs', make: () => ({ logits: logits(), targets: targets() }), call: (a) => loose(osp.tokenLogprobs)(a.logits, a.targets) },
  {
    op: 'tokenLogprobsBackward',
    make: () => ({ logits: logits(), targets: targets(), gradLogprobs: gradN() }),
    call: (a) => loose(osp.tokenLogprobsBackward)(a.logits, a.targets, a.gradLogprobs),
  },
  { op: 'tokenLogprobsUnfused', make: () => ({ logits: logits(), targets: targets() }), call: (a) => loose(osp.reference.tokenLogprobsUnfused)(a.logits, a.targets) },
  {
    op: 'tokenLogprobsBackwardUnfused',
    make: () => ({ logits: logits(), targets: targets(), gradLogprobs: gradN() }),
    call: (a) => loose(osp.reference.tokenLogprobsBackwardUnfused)(a.logits, a.targets, a.gradLogprobs),
  },
  { op: 'logSoftmax', make: () => ({ logits: logits() }), call: (a) => loose(osp.logSoftmax)(a.logits) },
  {
    op: 'logSoftmaxBackward',
    make: () => ({ gradOut: logits(), logSoftmaxOut: logits() }),
    call: (a) => loose(osp.logSoftmaxBackward)(a.gradOut, a.logSoftmaxOut),
  },
  { op: 'gather', make: () => ({ values: logits(), targets: targets() }), call: (a) => loose(osp.gather)(a.values, a.targets) },
  { op: 'gatherBackward', make: () => ({ grad: gradN(), targets: targets() }), call: (a) => loose(osp.gatherBackward)(a.grad, a.targets, V) },
  {
    op: 'sequenceLogprobs',
    make: () => ({ tokenLogprobs: gradN(), sequenceIds: seqIds() }),
    call: (a) => loose(osp.sequenceLogprobs)(a.tokenLogprobs, a.sequenceIds, 2),
  },
  {
    op: 'sequenceLogprobsBackward',
    make: () => ({ gradSequences: f32([1, 2]), sequenceIds: seqIds() }),
    call: (a) => loose(osp.sequenceLogprobsBackward)(a.gradSequences, a.sequenceIds),
  },
  ...PREF_OPS.map(
    ([op, fn]): OpSpec => ({
      op,
      make: () => ({ ...prefInputs() }),
      call: (a) => callPref(fn, 'spce', a),
    }),
  ),
  ...(['add', 'sub', 'mul'] as const).map((op): OpSpec => ({ op, make: () => ({ a: gradN(), b: gradN() }), call: (a) => loose(osp[op])(a.a, a.b) })),
  { op: 'unary', make: () => ({ x: gradN() }), call: (a) => loose(osp.unary)('exp', a.x) },
  { op: 'affine', make: () => ({ x: gradN() }), call: (a) => loose(osp.affine)(a.x, 2, 1) },
  { op: 'sum', make: () => ({ x: gradN() }), call: (a) => loose(osp.sum)(a.x) },
  // model ops (src/ops.ts: rmsNorm, swiglu, rope, embedding)
  { op: 'rmsNorm', make: () => ({ x: logits(), weight: f32(range(V, () => 1)) }), call: (a) => loose(modelOps.rmsNorm)(a.x, a.weight) },
  {
    op: 'rmsNormBackward',
    make: () => ({ x: logits(), weight: f32(range(V, () => 1)), gradOut: logits() }),
    call: (a) => loose(modelOps.rmsNormBackward)(a.x, a.weight, a.gradOut),
  },
  { op: 'swiglu', make: () => ({ gate: logits(), up: logits() }), call: (a) => loose(modelOps.swiglu)(a.gate, a.up) },
  {
    op: 'swigluBackward',
    make: () => ({ gate: logits(), up: logits(), gradOut: logits() }),
    call: (a) => loose(modelOps.swigluBackward)(a.gate, a.up, a.gradOut),
  },
  {
    op: 'rope',
    make: () => ({ x: f32(range(N * 2 * 4, (i) => i % 3), [N, 2, 4]), positions: i32(range(N, (i) => i)) }),
    call: (a) => loose(modelOps.rope)(a.x, a.positions, { theta: 10000 }),
  },
  {
    op: 'ropeBackward',
    make: () => ({ gradOut: f32(range(N * 2 * 4, (i) => i % 3), [N, 2, 4]), positions: i32(range(N, (i) => i)) }),
    call: (a) => loose(modelOps.ropeBackward)(a.gradOut, a.positions, { theta: 10000 }),
  },
  { op: 'embedding', make: () => ({ table: logits(), ids: targets() }), call: (a) => loose(modelOps.embedding)(a.table, a.ids) },
  {
    op: 'embeddingBackward',
    make: () => ({ gradOut: logits(), ids: targets() }),
    call: (a) => loose(modelOps.embeddingBackward)(a.gradOut, a.ids, V),
  },
];

const names = (arg: string) => new RegExp(`\\b${arg}\\b`);
const namesAnd = (arg: string, what: string) => new RegExp(`\\b${arg}\\b.*${what}|${what}.*\\b${arg}\\b`);

function argumentCases(): BadCase[] {
  const out: BadCase[] = [];
  for (const spec of OPS) {
    for (const arg of Object.keys(spec.make())) {
      const replaced = (bad: () => unknown) => () => spec.call({ ...spec.make(), [arg]: bad() });
      out.push(
        {
          name: `${spec.op}: disposed ${arg}`,
          errorClass: 'TypeError',
          message: namesAnd(arg, 'disposed'),
          run: replaced(() => {
            const t = (spec.make()[arg] as osp.Tensor);
            t.dispose();
            return t;
          }),
        },
        { name: `${spec.op}: null ${arg}`, errorClass: 'TypeError', message: namesAnd(arg, 'not a Tensor'), run: replaced(() => null) },
        { name: `${spec.op}: plain array ${arg}`, errorClass: 'TypeError', message: namesAnd(arg, 'not a Tensor'), run: replaced(() => [1, 2, 3, 4]) },
      );
    }
  }
  return out;
}

// ---- the cases -----------------------------------------------------------------------------------

function tokenCases(): BadCase[] {
  const T = 'TypeError' as const;
  const R = 'RangeError' as const;
  return [
    // wrong dtype
    { name: 'tokenLogprobs: f32 targets', errorClass: T, message: namesAnd('targets', 'f32'), run: () => osp.tokenLogprobs(logits(), f32([0, 1, 2, 3])) },
    { name: 'tokenLogprobs: i32 logits', errorClass: T, message: namesAnd('logits', 'i32'), run: () => osp.tokenLogprobs(logits('i32'), targets()) },
    { name: 'tokenLogprobs: bf16 logits on cpu', errorClass: T, message: namesAnd('logits', 'bf16'), run: () => osp.tokenLogprobs(logits('bf16'), targets()) },
    { name: 'tokenLogprobsBackward: f32 targets', errorClass: T, message: namesAnd('targets', 'f32'), run: () => osp.tokenLogprobsBackward(logits(), f32([0, 1, 2, 3]), gradN()) },
    { name: 'tokenLogprobsBackward: bf16 logits on cpu', errorClass: T, message: namesAnd('logits', 'bf16'), run: () => osp.tokenLogprobsBackward(logits('bf16'), targets(), gradN()) },
    { name: 'tokenLogprobsBackward: f64 gradLogprobs for f32 logits', errorClass: T, message: namesAnd('gradLogprobs', 'f64'), run: () => osp.tokenLogprobsBackward(logits(), targets(), f64([1, 1, 1, 1])) },
    { name: 'tokenLogprobsUnfused: i32 logits', errorClass: T, message: namesAnd('logits', 'i32'), run: () => osp.reference.tokenLogprobsUnfused(logits('i32'), targets()) },
    { name: 'tokenLogprobsUnfused: f32 targets', errorClass: T, message: namesAnd('targets', 'f32'), run: () => osp.reference.tokenLogprobsUnfused(logits(), f32([0, 1, 2, 3])) },
    { name: 'tokenLogprobsBackwardUnfused: bf16 logits on cpu', errorClass: T, message: namesAnd('logits', 'bf16'), run: () => osp.reference.tokenLogprobsBackwardUnfused(logits('bf16'), targets(), gradN()) },
    { name: 'tokenLogprobsBackwardUnfused: f32 targets', errorClass: T, message: namesAnd('targets', 'f32'), run: () => osp.reference.tokenLogprobsBackwardUnfused(logits(), f32([0, 1, 2, 3]), gradN()) },
    { name: 'logSoftmax: i32 logits', errorClass: T, message: namesAnd('logits', 'i32'), run: () => osp.logSoftmax(logits('i32')) },
    { name: 'logSoftmax: bf16 logits on cpu', errorClass: T, message: namesAnd('logits', 'bf16'), run: () => osp.logSoftmax(logits('bf16')) },
    { name: 'logSoftmaxBackward: f64 gradOut with f32 logSoftmaxOut', errorClass: T, message: namesAnd('gradOut', 'f64'), run: () => osp.logSoftmaxBackward(logits('f64'), logits()) },
    { name: 'gather: i32 values', errorClass: T, message: namesAnd('values', 'i32'), run: () => osp.gather(logits('i32'), targets()) },
    { name: 'gather: f32 targets', errorClass: T, message: namesAnd('targets', 'f32'), run: () => osp.gather(logits(), f32([0, 1, 2, 3])) },
    { name: 'gatherBackward: f32 targets', errorClass: T, message: namesAnd('targets', 'f32'), run: () => osp.gatherBackward(gradN(), f32([0, 1, 2, 3]), V) },
    { name: 'gatherBackward: i32 grad', errorClass: T, message: namesAnd('grad', 'i32'), run: () => osp.gatherBackward(i32([1, 1, 1, 1]), targets(), V) },
    { name: 'gatherBackward: bf16 output dtype on cpu', errorClass: T, message: namesAnd('dtype', 'bf16'), run: () => osp.gatherBackward(gradN(), targets(), V, { dtype: 'bf16' }) },
    { name: 'sequenceLogprobs: f32 sequenceIds', errorClass: T, message: namesAnd('sequenceIds', 'f32'), run: () => osp.sequenceLogprobs(gradN(), f32([0, 0, 1, 1]), 2) },
    { name: 'sequenceLogprobs: i32 tokenLogprobs', errorClass: T, message: namesAnd('tokenLogprobs', 'i32'), run: () => osp.sequenceLogprobs(i32([0, 0, 0, 0]), seqIds(), 2) },
    { name: 'sequenceLogprobsBackward: f32 sequenceIds', errorClass: T, message: namesAnd('sequenceIds', 'f32'), run: () => osp.sequenceLogprobsBackward(f32([1, 2]), f32([0, 0, 1, 1])) },

    // mismatched lengths and shapes
    { name: 'tokenLogprobs: N + 1 targets', errorClass: T, message: names('targets'), run: () => osp.tokenLogprobs(logits(), targets(N + 1)) },
    { name: 'tokenLogprobs: 1-D logits', errorClass: T, message: names('logits'), run: () => osp.tokenLogprobs(gradN(), targets()) },
    { name: 'tokenLogprobsBackward: N - 1 gradLogprobs', errorClass: T, message: names('gradLogprobs'), run: () => osp.tokenLogprobsBackward(logits(), targets(), gradN(N - 1)) },
    { name: 'tokenLogprobsBackwardUnfused: N - 1 gradLogprobs', errorClass: T, message: names('gradLogprobs'), run: () => osp.reference.tokenLogprobsBackwardUnfused(logits(), targets(), gradN(N - 1)) },
    { name: 'logSoftmaxBackward: gradOut [N, V + 1]', errorClass: T, message: /\bgradOut\b.*\blogSoftmaxOut\b/, run: () => osp.logSoftmaxBackward(logits('f32', N, V + 1), logits()) },
    { name: 'gather: N - 1 targets', errorClass: T, message: names('targets'), run: () => osp.gather(logits(), targets(N - 1)) },
    { name: 'gatherBackward: N + 1 targets', errorClass: T, message: names('targets'), run: () => osp.gatherBackward(gradN(), targets(N + 1), V) },
    { name: 'sequenceLogprobs: N + 1 sequenceIds', errorClass: T, message: names('sequenceIds'), run: () => osp.sequenceLogprobs(gradN(), i32([0, 0, 1, 1, 1]), 2) },

    // non-contiguous views
    { name: 'tokenLogprobs: non-contiguous logits', errorClass: T, message: namesAnd('logits', 'non-contiguous'), run: () => osp.tokenLogprobs(logitsView(), targets()) },
    { name: 'tokenLogprobsBackward: non-contiguous logits', errorClass: T, message: namesAnd('logits', 'non-contiguous'), run: () => osp.tokenLogprobsBackward(logitsView(), targets(), gradN()) },
    { name: 'tokenLogprobsUnfused: non-contiguous logits', errorClass: T, message: namesAnd('logits', 'non-contiguous'), run: () => osp.reference.tokenLogprobsUnfused(logitsView(), targets()) },
    { name: 'logSoftmax: non-contiguous logits', errorClass: T, message: namesAnd('logits', 'non-contiguous'), run: () => osp.logSoftmax(logitsView()) },
    { name: 'logSoftmaxBackward: non-contiguous logSoftmaxOut', errorClass: T, message: namesAnd('logSoftmaxOut', 'non-contiguous'), run: () => osp.logSoftmaxBackward(logits(), logitsView()) },
    { name: 'gather: non-contiguous values', errorClass: T, message: namesAnd('values', 'non-contiguous'), run: () => osp.gather(logitsView(), targets()) },

    // values out of range
    { name: 'tokenLogprobs: target V (outside [0, V))', errorClass: R, message: /targets\[2\]/, run: () => osp.tokenLogprobs(logits(), i32([0, 1, V, 2])) },
    { name: 'tokenLogprobs: NaN in a logits row', errorClass: R, message: /logits row 1/, run: () => osp.tokenLogprobs(f32(range(N * V, (i) => (i === 7 ? NaN : 0)), [N, V]), targets()) },
    { name: 'gather: target -1 (not ignoreIndex)', errorClass: R, message: /targets\[0\]/, run: () => osp.gather(logits(), i32([-1, 0, 0, 0])) },
    { name: 'sequenceLogprobs: sequence id 2 with count 2', errorClass: R, message: /sequenceIds\[3\]/, run: () => osp.sequenceLogprobs(gradN(), i32([0, 0, 1, 2]), 2) },
    { name: 'gatherBackward: vocab 0', errorClass: R, message: names('vocab'), run: () => osp.gatherBackward(gradN(), targets(), 0) },
    { name: 'gatherBackward: vocab -3', errorClass: R, message: names('vocab'), run: () => osp.gatherBackward(gradN(), targets(), -3) },
    { name: 'gatherBackward: vocab 2.5', errorClass: R, message: names('vocab'), run: () => osp.gatherBackward(gradN(), targets(), 2.5) },

    // ignoreIndex must be an integer, count a non-negative integer
    { name: 'tokenLogprobs: ignoreIndex 0.5', errorClass: R, message: names('ignoreIndex'), run: () => osp.tokenLogprobs(logits(), targets(), { ignoreIndex: 0.5 }) },
    { name: 'tokenLogprobs: ignoreIndex NaN', errorClass: R, message: names('ignoreIndex'), run: () => osp.tokenLogprobs(logits(), targets(), { ignoreIndex: NaN }) },
    { name: 'tokenLogprobs: ignoreIndex 2^31 (outside 32 bits)', errorClass: R, message: names('ignoreIndex'), run: () => osp.tokenLogprobs(logits(), targets(), { ignoreIndex: 2 ** 31 }) },
    { name: 'tokenLogprobs: ignoreIndex as a string', errorClass: T, message: names('ignoreIndex'), run: () => osp.tokenLogprobs(logits(), targets(), { ignoreIndex: '-100' as unknown as number }) },
    { name: 'tokenLogprobsBackward: ignoreIndex -1.5', errorClass: R, message: names('ignoreIndex'), run: () => osp.tokenLogprobsBackward(logits(), targets(), gradN(), { ignoreIndex: -1.5 }) },
    { name: 'tokenLogprobsUnfused: ignoreIndex 0.5', errorClass: R, message: names('ignoreIndex'), run: () => osp.reference.tokenLogprobsUnfused(logits(), targets(), { ignoreIndex: 0.5 }) },
    { name: 'tokenLogprobsBackwardUnfused: ignoreIndex 0.5', errorClass: R, message: names('ignoreIndex'), run: () => osp.reference.tokenLogprobsBackwardUnfused(logits(), targets(), gradN(), { ignoreIndex: 0.5 }) },
    { name: 'gather: ignoreIndex Infinity', errorClass: R, message: names('ignoreIndex'), run: () => osp.gather(logits(), targets(), { ignoreIndex: Infinity }) },
    { name: 'gatherBackward: ignoreIndex 3.25', errorClass: R, message: names('ignoreIndex'), run: () => osp.gatherBackward(gradN(), targets(), V, { ignoreIndex: 3.25 }) },
    { name: 'sequenceLogprobs: ignoreIndex 0.5', errorClass: R, message: names('ignoreIndex'), run: () => osp.sequenceLogprobs(gradN(), seqIds(), 2, { ignoreIndex: 0.5 }) },
    { name: 'sequenceLogprobsBackward: ignoreIndex 0.5', errorClass: R, message: names('ignoreIndex'), run: () => osp.sequenceLogprobsBackward(f32([1, 2]), seqIds(), { ignoreIndex: 0.5 }) },
    { name: 'sequenceLogprobs: count -1', errorClass: R, message: names('count'), run: () => osp.sequenceLogprobs(gradN(), seqIds(), -1) },
    { name: 'sequenceLogprobs: count 1.5', errorClass: R, message: names('count'), run: () => osp.sequenceLogprobs(gradN(), seqIds(), 1.5) },
    { name: 'sequenceLogprobs: count NaN', errorClass: R, message: names('count'), run: () => osp.sequenceLogprobs(gradN(), seqIds(), NaN) },
    { name: 'tokenLogprobsBackward: inPlace as a string', errorClass: T, message: names('inPlace'), run: () => osp.tokenLogprobsBackward(logits(), targets(), gradN(), { inPlace: 'yes' as unknown as boolean }) },
  ];
}

function preferenceCases(): BadCase[] {
  const T = 'TypeError' as const;
  const R = 'RangeError' as const;
  const out: BadCase[] = [];
  for (const [op, fn] of PREF_OPS) {
    const with_ = (patch: Partial<PrefArgs>, kind: unknown = 'spce', withTarget = true) => () =>
      callPref(fn, kind, { ...prefInputs(withTarget), ...patch });
    const beta = (b: unknown) => () => callPref(fn, 'spce', prefInputs(), { beta: b });
    out.push(
      // wrong dtype
      { name: `${op}: f64 target with f32 policy log-probs`, errorClass: T, message: namesAnd('target', 'f64'), run: with_({ target: f64([0.8, 0.5, 1]) }) },
      { name: `${op}: i32 policyChosen`, errorClass: T, message: namesAnd('policyChosen', 'i32'), run: with_({ policyChosen: i32([-3, -7, -12]) }) },
      { name: `${op}: bf16 refRejected on cpu`, errorClass: T, message: namesAnd('refRejected', 'bf16'), run: with_({ refRejected: bf16([-4, -6, -15]) }) },
      // mismatched lengths and shapes
      { name: `${op}: B + 1 policyRejected`, errorClass: T, message: names('policyRejected'), run: with_({ policyRejected: f32([-4, -6, -15, -1]) }) },
      { name: `${op}: B - 1 target`, errorClass: T, message: names('target'), run: with_({ target: f32([0.8, 0.5]) }) },
      { name: `${op}: 2-D refChosen (a transposed [B, 1] view)`, errorClass: T, message: names('refChosen'), run: with_({ refChosen: f32([-3.5, -7, -11], [B, 1]).transpose(0, 1) }) },
      // not an object / not a Tensor
      { name: `${op}: inputs null`, errorClass: T, message: names('inputs'), run: () => callPref(fn, 'spce', null) },
      { name: `${op}: opts null`, errorClass: T, message: names('beta'), run: () => callPref(fn, 'spce', prefInputs(), null) },
      // beta
      { name: `${op}: beta 0`, errorClass: R, message: names('beta'), run: beta(0) },
      { name: `${op}: beta -0.1`, errorClass: R, message: names('beta'), run: beta(-0.1) },
      { name: `${op}: beta NaN`, errorClass: R, message: names('beta'), run: beta(NaN) },
      { name: `${op}: beta Infinity`, errorClass: R, message: names('beta'), run: beta(Infinity) },
      { name: `${op}: beta as a string`, errorClass: T, message: names('beta'), run: beta('0.1') },
      // target values
      { name: `${op}: spce target 1.5`, errorClass: R, message: /\btarget\[1\]/, run: with_({ target: f32([0.5, 1.5, 0.2]) }) },
      { name: `${op}: spce target -0.1`, errorClass: R, message: /\btarget\[2\]/, run: with_({ target: f32([0.5, 1, -0.1]) }) },
      { name: `${op}: NaN in spce target`, errorClass: R, message: /\btarget\[0\]/, run: with_({ target: f32([NaN, 0.5, 0.5]) }) },
      { name: `${op}: NaN in policyChosen`, errorClass: R, message: /\bpolicyChosen\[1\]/, run: with_({ policyChosen: f32([-3, NaN, -12]) }) },
      { name: `${op}: -Infinity in refRejected`, errorClass: R, message: /\brefRejected\[0\]/, run: with_({ refRejected: f32([-Infinity, -6.5, -14]) }) },
      // kind and target
      { name: `${op}: spce without a target`, errorClass: T, message: names('target'), run: with_({}, 'spce', false) },
      { name: `${op}: dpo given a target`, errorClass: T, message: names('target'), run: with_({}, 'dpo', true) },
      { name: `${op}: ipo given a target`, errorClass: T, message: names('target'), run: with_({}, 'ipo', true) },
      { name: `${op}: unknown kind 'kto'`, errorClass: T, message: names('kind'), run: with_({}, 'kto', false) },
      { name: `${op}: kind not a string`, errorClass: T, message: names('kind'), run: with_({}, 1, false) },
    );
  }
  return out;
}

function elementwiseCases(): BadCase[] {
  const T = 'TypeError' as const;
  const R = 'RangeError' as const;
  const view23 = () => f32([1, 2, 3, 4, 5, 6], [3, 2]).transpose(0, 1);
  return [
    { name: 'add: shapes [4] and [3]', errorClass: T, message: /\ba\b.*\bb\b/, run: () => osp.add(gradN(), gradN(3)) },
    { name: 'sub: shapes [2, 3] and [3, 2]', errorClass: T, message: /\ba\b.*\bb\b/, run: () => osp.sub(f32([1, 2, 3, 4, 5, 6], [2, 3]), f32([1, 2, 3, 4, 5, 6], [3, 2])) },
    { name: 'mul: f32 a and f64 b', errorClass: T, message: /\bb\b.*f64/, run: () => osp.mul(gradN(), f64([1, 2, 3, 4])) },
    { name: 'add: i32 a', errorClass: T, message: namesAnd('a', 'i32'), run: () => osp.add(i32([1, 2, 3, 4]), i32([1, 2, 3, 4])) },
    { name: 'add: bf16 b on cpu', errorClass: T, message: namesAnd('b', 'bf16'), run: () => osp.add(gradN(), bf16([1, 2, 3, 4])) },
    { name: 'add: non-contiguous a', errorClass: T, message: namesAnd('a', 'non-contiguous'), run: () => osp.add(view23(), f32([1, 2, 3, 4, 5, 6], [2, 3])) },
    { name: 'unary: i32 x', errorClass: T, message: namesAnd('x', 'i32'), run: () => osp.unary('exp', i32([1, 2])) },
    { name: 'unary: non-contiguous x', errorClass: T, message: namesAnd('x', 'non-contiguous'), run: () => osp.unary('sigmoid', view23()) },
    { name: "unary: unknown op 'relu'", errorClass: T, message: /\bop\b.*relu|relu.*\bop\b/, run: () => osp.unary('relu' as osp.UnaryOp, gradN()) },
    { name: 'affine: scale NaN', errorClass: R, message: names('scale'), run: () => osp.affine(gradN(), NaN) },
    { name: 'affine: shift Infinity', errorClass: R, message: names('shift'), run: () => osp.affine(gradN(), 1, Infinity) },
    { name: 'affine: scale as a string', errorClass: T, message: names('scale'), run: () => osp.affine(gradN(), '2' as unknown as number) },
    { name: 'affine: bf16 x on cpu', errorClass: T, message: namesAnd('x', 'bf16'), run: () => osp.affine(bf16([1, 2]), 2) },
    { name: 'sum: i32 x', errorClass: T, message: namesAnd('x', 'i32'), run: () => osp.sum(i32([1, 2])) },
    { name: 'sum: non-contiguous x', errorClass: T, message: namesAnd('x', 'non-contiguous'), run: () => osp.sum(view23()) },
  ];
}

function tensorCases(): BadCase[] {
  const T = 'TypeError' as const;
  const R = 'RangeError' as const;
  const cases: BadCase[] = [
    { name: 'tensor: 5 values for shape [2, 3]', errorClass: R, message: namesAnd('data', '5 elements'), run: () => osp.tensor(new Float32Array(5), [2, 3], cpu) },
    { name: 'tensor: shape [-1]', errorClass: R, message: /shape\[0\]/, run: () => osp.tensor(new Float32Array(0), [-1], cpu) },
    { name: 'tensor: shape [1.5]', errorClass: R, message: /shape\[0\]/, run: () => osp.tensor(new Float32Array(1), [1.5], cpu) },
    { name: 'tensor: shape not an array', errorClass: T, message: names('shape'), run: () => osp.tensor(new Float32Array(1), 1 as unknown as number[], cpu) },
    { name: 'tensor: data a string', errorClass: T, message: names('data'), run: () => osp.tensor('abc' as unknown as number[], [3], cpu) },
    { name: 'tensor: Uint16Array without dtype bf16', errorClass: T, message: /Uint16Array.*bf16/, run: () => osp.tensor(new Uint16Array(2), [2], cpu) },
    { name: "tensor: dtype 'f16'", errorClass: T, message: namesAnd('dtype', 'f16'), run: () => osp.tensor(new Float32Array(2), [2], { dtype: 'f16' as osp.DType, device: 'cpu' }) },
    { name: "tensor: device 'tpu'", errorClass: T, message: namesAnd('device', 'tpu'), run: () => osp.tensor(new Float32Array(2), [2], { device: 'tpu' as osp.Device }) },
    { name: 'tensor: dtype i32 from a Float32Array', errorClass: T, message: /\bi32\b.*Int32Array/, run: () => osp.tensor(new Float32Array(2), [2], { dtype: 'i32', device: 'cpu' }) },
    { name: 'to: f32 -> i32', errorClass: T, message: /\bi32\b/, run: () => f32([1, 2]).to({ dtype: 'i32' }) },
    { name: 'transpose: dimension 2 of a 2-D tensor', errorClass: R, message: /dimensions 0, 2/, run: () => logits().transpose(0, 2) },
    { name: 'transpose: dimension 0.5', errorClass: R, message: names('dim0'), run: () => logits().transpose(0.5, 1) },
    { name: 'randn: seed -1', errorClass: R, message: names('seed'), run: () => osp.randn([2], { seed: -1, device: 'cpu' }) },
    { name: 'randn: shape [2.5]', errorClass: R, message: /shape\[0\]/, run: () => osp.randn([2.5], { device: 'cpu' }) },
  ];
  if (!osp.backends().cuda.available) {
    cases.push({
      name: 'tensor: device cuda without a CUDA device',
      errorClass: 'Error',
      message: /\bcuda\b/,
      run: () => osp.tensor(new Float32Array(2), [2], { device: 'cuda' }),
    });
  }
  return cases;
}

function modelOpCases(): BadCase[] {
  const T = 'TypeError' as const;
  const R = 'RangeError' as const;
  const w = () => f32(range(V, () => 1));
  const heads = (dh = 4) => f32(range(N * 2 * dh, (i) => i % 3), [N, 2, dh]);
  const pos = () => i32(range(N, (i) => i));
  return [
    { name: 'rmsNorm: bf16 x on cpu', errorClass: T, message: namesAnd('x', 'bf16'), run: () => modelOps.rmsNorm(logits('bf16'), w()) },
    { name: 'rmsNorm: weight [V + 1]', errorClass: T, message: names('weight'), run: () => modelOps.rmsNorm(logits(), f32(range(V + 1, () => 1))) },
    { name: 'rmsNorm: eps NaN', errorClass: R, message: names('eps'), run: () => modelOps.rmsNorm(logits(), w(), { eps: NaN }) },
    { name: 'rmsNormBackward: f64 gradOut for f32 x', errorClass: T, message: namesAnd('gradOut', 'f64'), run: () => modelOps.rmsNormBackward(logits(), w(), logits('f64')) },
    { name: 'swiglu: up [N, V + 1]', errorClass: T, message: names('up'), run: () => modelOps.swiglu(logits(), logits('f32', N, V + 1)) },
    { name: 'swiglu: non-contiguous gate', errorClass: T, message: namesAnd('gate', 'non-contiguous'), run: () => modelOps.swiglu(logitsView(), logits()) },
    { name: 'swigluBackward: i32 gradOut', errorClass: T, message: namesAnd('gradOut', 'i32'), run: () => modelOps.swigluBackward(logits(), logits(), logits('i32')) },
    { name: 'rope: odd head dimension', errorClass: T, message: namesAnd('x', 'even'), run: () => modelOps.rope(heads(3), pos(), { theta: 10000 }) },
    { name: 'rope: negative position', errorClass: R, message: /positions\[2\] = -1/, run: () => modelOps.rope(heads(), i32([0, 1, -1, 3]), { theta: 10000 }) },
    { name: 'rope: f32 positions', errorClass: T, message: namesAnd('positions', 'f32'), run: () => modelOps.rope(heads(), f32([0, 1, 2, 3]), { theta: 10000 }) },
    { name: 'rope: theta Infinity', errorClass: R, message: names('theta'), run: () => modelOps.rope(heads(), pos(), { theta: Infinity }) },
    { name: 'ropeBackward: N - 1 positions', errorClass: T, message: names('positions'), run: () => modelOps.ropeBackward(heads(), i32([0, 1, 2]), { theta: 10000 }) },
    { name: 'embedding: id V', errorClass: R, message: /ids\[1\] = 5/, run: () => modelOps.embedding(logits(), i32([0, V, 1, 2])) },
    { name: 'embedding: f32 ids', errorClass: T, message: namesAnd('ids', 'f32'), run: () => modelOps.embedding(logits(), f32([0, 1])) },
    { name: 'embeddingBackward: id -1', errorClass: R, message: /ids\[3\] = -1/, run: () => modelOps.embeddingBackward(logits(), i32([0, 1, 2, -1]), V) },
    { name: 'embeddingBackward: vocab 2.5', errorClass: R, message: names('vocab'), run: () => modelOps.embeddingBackward(logits(), targets(), 2.5) },
  ];
}

/** Receivers and handles that are not what they claim, options that are not objects, and ops whose errors named another op (issue 14). */
function namingCases(): BadCase[] {
  const T = 'TypeError' as const;
  const R = 'RangeError' as const;
  /** A Tensor whose handle only inherits from a native one (native methods: "Illegal invocation"). */
  const forged = () => Object.assign(Object.create(osp.Tensor.prototype), { handle: Object.create(logits().handle) }) as osp.Tensor;
  const opts = (v: unknown) => v as Record<string, never>;
  return [
    { name: 'toArray: on a Tensor with a forged handle', errorClass: T, message: /^toArray: tensor\b/, run: () => forged().toArray() },
    { name: 'reshape: called on a plain object', errorClass: T, message: /^reshape: tensor\b/, run: () => osp.Tensor.prototype.reshape.call({} as osp.Tensor, [2]) },
    { name: 'toArray: on a disposed tensor', errorClass: T, message: /^toArray: tensor has been disposed/, run: () => { const t = logits(); t.dispose(); return t.toArray(); } },
    { name: 'tokenLogprobs: logits a Tensor with a forged handle', errorClass: T, message: /^tokenLogprobs: logits is not a Tensor/, run: () => osp.tokenLogprobs(forged(), targets()) },
    { name: 'Tensor: constructed from a plain object', errorClass: T, message: /^Tensor: handle\b/, run: () => new osp.Tensor({} as osp.Tensor['handle']) },
    { name: 'tokenLogprobs: opts null', errorClass: T, message: /^tokenLogprobs: opts is null/, run: () => osp.tokenLogprobs(logits(), targets(), opts(null)) },
    { name: 'zeros: opts a number', errorClass: T, message: /^zeros: opts is number/, run: () => osp.zeros([2], opts(5)) },
    { name: 'rope: opts a string', errorClass: T, message: /^rope: opts is string/, run: () => modelOps.rope(f32(range(8, () => 1), [1, 2, 4]), i32([0]), 'x' as unknown as modelOps.RopeOptions) },
    { name: 'add: shapes [4] and [3] name add', errorClass: T, message: /^add: a has shape \[4\] but b has shape \[3\]/, run: () => osp.add(gradN(), gradN(3)) },
    { name: 'unary: null x names unary', errorClass: T, message: /^unary: x is not a Tensor/, run: () => osp.unary('exp', null as unknown as osp.Tensor) },
    { name: 'randn: std -1 names randn', errorClass: R, message: /^randn: std is -1/, run: () => osp.randn([2], { std: -1, device: 'cpu' }) },
    { name: 'ropeInvFreqTable: headDim 3 names ropeInvFreqTable', errorClass: R, message: /^ropeInvFreqTable: headDim is 3/, run: () => modelOps.ropeInvFreqTable(10000, 1, 3) },
    { name: 'to: f32 -> i32 names to', errorClass: T, message: /^to: dtype i32\b/, run: () => f32([1, 2]).to({ dtype: 'i32' }) },
    { name: 'tokenLogprobsUnfused: i32 logits names tokenLogprobsUnfused', errorClass: T, message: /^tokenLogprobsUnfused: logits has dtype i32/, run: () => osp.reference.tokenLogprobsUnfused(logits('i32'), targets()) },
    { name: 'tokenLogprobsBackwardUnfused: i32 gradLogprobs names it', errorClass: T, message: /^tokenLogprobsBackwardUnfused: gradLogprobs has dtype i32/, run: () => osp.reference.tokenLogprobsBackwardUnfused(logits(), targets(), i32([1, 1, 1, 1])) },
    { name: 'preferenceLossUnfused: inputs null names preferenceLossUnfused', errorClass: T, message: /^preferenceLossUnfused: inputs\b/, run: () => callPref(osp.reference.preferenceLossUnfused, 'dpo', null) },
    { name: 'sequenceSpans: device tpu', errorClass: T, message: /^sequenceSpans: device is 'tpu'/, run: () => osp.sequenceSpans(new Int32Array(2), 'tpu' as osp.Device) },
    { name: 'embedding: id past the rows of table', errorClass: R, message: /^embedding: ids\[0\] = 5 is outside \[0, 4\) \(the rows of table\)/, run: () => modelOps.embedding(logits(), i32([V])) },
  ];
}

export const BAD_CASES: BadCase[] = [
  ...tokenCases(),
  ...preferenceCases(),
  ...elementwiseCases(),
  ...tensorCases(),
  ...modelOpCases(),
  ...namingCases(),
  ...argumentCases(),
];

/** Runs one case inside a scope (its tensors are freed) and reports what it threw. */
export function runCase(c: BadCase): CaseResult {
  try {
    osp.scope(() => {
      c.run();
    });
  } catch (e) {
    const err = e as { constructor?: { name?: string }; message?: unknown } | null;
    return { name: c.name, errorClass: err?.constructor?.name ?? typeof e, message: String(err?.message ?? e) };
  }
  return { name: c.name, errorClass: null, message: '' };
}

if (require.main === module) {
  for (const c of BAD_CASES) process.stdout.write(`${JSON.stringify(runCase(c))}\n`);
}
