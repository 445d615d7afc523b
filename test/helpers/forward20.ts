// A small Llama-style forward of exactly 20 ops (embedding to a summed token log-prob) with no host
// read inside: sync tests run it on the cpu and on cuda and count the host waits around it.
import * as osp from '../../src';
import type { Device, Tensor } from '../../src';

export interface Forward20 {
  /** Runs the 20 ops; returns the [1] sum of the token log-probs (not read). */
  run(): Tensor;
}

/** Inputs are uploaded here, before the caller resets the counters. Call inside osp.scope. */
export function forward20(device: Device): Forward20 {
  const T = 6, D = 8, H = 2, Dh = 4, F = 12, V = 11;
  let seed = 1;
  const rand = (n: number) => Float32Array.from({ length: n }, () => ((seed = (seed * 48271) % 2147483647) / 2147483647 - 0.5) * 0.5);
  const t = (n: number, shape: number[]) => osp.tensor(rand(n), shape, { device });
  const ints = (a: number[]) => osp.tensor(Int32Array.from(a), [a.length], { dtype: 'i32', device });
  const table = t(V * D, [V, D]);
  const norm = osp.tensor(new Float32Array(D).fill(1), [D], { device });
  const [wq, wk, wv, wo] = [0, 1, 2, 3].map(() => t(D * D, [D, D]));
  const wg = t(D * F, [D, F]);
  const wu = t(D * F, [D, F]);
  const wd = t(F * D, [F, D]);
  const head = t(D * V, [D, V]);
  const ids = ints([1, 4, 2, 9, 0, 3]);
  const targets = ints([4, 2, 9, 0, 3, -100]);
  const positions = ints([0, 1, 2, 0, 1, 2]);
  const seqIds = ints([0, 0, 0, 1, 1, 1]);
  const spans = osp.sequenceSpans(Int32Array.from([0, 0, 0, 1, 1, 1]), device);
  const rope = { theta: 10000 };
  return {
    run(): Tensor {
      const x = osp.embedding(table, ids); // 1
      const n = osp.rmsNorm(x, norm); // 2
      const q = osp.rope(osp.matmul(n, wq).reshape([T, H, Dh]), positions, rope); // 3, 4
      const k = osp.rope(osp.matmul(n, wk).reshape([T, H, Dh]), positions, rope); // 5, 6
      const v = osp.matmul(n, wv).reshape([T, H, Dh]); // 7
      const a = osp.causalAttention(q, k, v, seqIds, { spans }).out.reshape([T, D]); // 8
      const h1 = osp.add(x, osp.matmul(a, wo)); // 9, 10
      const n2 = osp.rmsNorm(h1, norm); // 11
      const g = osp.swiglu(osp.matmul(n2, wg), osp.matmul(n2, wu)); // 12, 13, 14
      const h2 = osp.add(h1, osp.matmul(g, wd)); // 15, 16
      const logits = osp.matmul(osp.rmsNorm(h2, norm), head); // 17, 18
      return osp.sum(osp.tokenLogprobs(logits, targets)); // 19, 20
    },
  };
}
