// npx ts-node --transpile-only bench/logprobsBandwidth.ts
//
// The fused token log-probs forward against the read bandwidth, round by round (issue 16's goal:
// at least 85% of the two-thread read bandwidth). 2048 x 32000 f32 logits; each of 25 rounds times
// a parallel read of the same 250 MiB (native/core/bandwidth.h, the kernels' threads) and then the
// forward, and the ratio of the two within a round is taken, so a shared machine's drifting load
// cancels as far as it can; prints the medians and the best of each.
import * as osp from '../src';
import { native } from '../src/native';
const N = 2048, V = 32000;
const x = osp.randn([N, V], { seed: 1, std: 2 });
const t = osp.tensor(Int32Array.from({ length: N }, (_, i) => (i * 7919) % V), [N]);
const flat = x.reshape([N * V]);
const read = () => void native.hostParallelReadSum(flat.handle);
const fwd = () => osp.scope(() => void osp.tokenLogprobs(x, t));
read(); fwd();
const ratios: number[] = [], rs: number[] = [], fs: number[] = [];
for (let r = 0; r < 25; r++) {
  let t0 = performance.now(); read(); const a = performance.now() - t0;
  t0 = performance.now(); fwd(); const b = performance.now() - t0;
  ratios.push(a / b); rs.push(a); fs.push(b);
}
const med = (v: number[]) => [...v].sort((p, q) => p - q)[12]!;
console.log(`read ${med(rs).toFixed(2)} ms (${(N * V * 4 / med(rs) / 1e6).toFixed(1)} GB/s), fwd ${med(fs).toFixed(2)} ms (${(N * V * 4 / med(fs) / 1e6).toFixed(1)} GB/s), per-round fwd/read bandwidth ratio median ${(100 * med(ratios)).toFixed(0)}%, best-of fwd ${(N * V * 4 / Math.min(...fs) / 1e6).toFixed(1)} GB/s vs best-of read ${(N * V * 4 / Math.min(...rs) / 1e6).toFixed(1)} GB/s`);
