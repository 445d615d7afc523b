// Views whose shapes overflow 64 bits, and the ops of issue 14 that crashed on them, as isolated
// cases (test/helpers/isolated.ts) for test/views.test.ts: before the checked shapes, some of these
// killed the process with SIGSEGV, one wrote past its buffer and one read neighbouring heap memory.
import * as osp from '../../src/tensor';
import * as ops from '../../src/ops';
import type { IsolatedCase } from './isolated';

const cpu = { device: 'cpu' as const };
const i32 = (v: number[]) => osp.tensor(Int32Array.from(v), [v.length], cpu);
/** zeros([0]) viewed as [2^30, 2^30, 1, 16]: 2^64 elements, a product that wraps to 0 in int64. */
const wrapped = () => osp.zeros([0], cpu).reshape([2 ** 30, 2 ** 30, 1, 16]);

export const OVERFLOW_VIEW_CASES: { name: string; run: () => unknown }[] = [
  { name: 'reshape of zeros([0]) to [2^30, 2^30, 1, 16]', run: () => wrapped() },
  { name: 'kvCacheWrite into slot 1 of the wrapped view', run: () => ops.kvCacheWrite(wrapped(), osp.zeros([1, 1, 16], cpu), i32([1]), i32([0])) },
  { name: 'kvCacheWrite into slot 0 of the wrapped view', run: () => ops.kvCacheWrite(wrapped(), osp.zeros([1, 1, 16], cpu), i32([0]), i32([1])) },
  {
    name: 'cachedAttention over the wrapped view',
    run: () => ops.cachedAttention(osp.zeros([1, 1, 16], cpu), wrapped(), wrapped(), i32([1]), i32([5])),
  },
  { name: 'narrow(0, 1, 1).toArray() of the wrapped view', run: () => wrapped().narrow(0, 1, 1).toArray() },
  {
    name: 'copyInto a narrowed wrapped view',
    run: () => ops.copyInto(wrapped().narrow(0, 1, 1).narrow(1, 0, 1), osp.zeros([1, 1, 1, 16], cpu)),
  },
  { name: 'narrow(0, 0, 1).narrow(1, 1, 1).toArray() of the wrapped view', run: () => wrapped().narrow(0, 0, 1).narrow(1, 1, 1).toArray() },
];

export function overflowViewCases(): IsolatedCase[] {
  return OVERFLOW_VIEW_CASES.map((c) => ({ name: c.name, run: () => osp.scope(c.run) }));
}
