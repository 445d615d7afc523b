// npx ts-node --transpile-only bench/hostAllocator.ts
//
// The host allocator's cliff (issue 16) on its own: with earlier [2048, 32000] shapes freed into the
// host cache (as the bench's first section leaves it), tokenLogprobsBackward on [8192, 32000] at a
// fixed T, alternating with T changing on every call (8 lengths from 6400 to 8192, as packed batch
// lengths do in training); median of 8 each. An allocator that reuses only exact sizes page-faults
// a fresh ~1 GB output on every variable call once the cache is full (there: 2.7-3.4x the fixed
// call's time); size classes reuse one buffer per class. OSP_CPU_ISA=avx2 keeps the kernel the same
// as older builds when comparing allocators across builds.
import * as osp from '../src';
const V = 32000, Tmax = 8192;
// earlier shapes, as the bench's first section leaves them: [2048, V] buffers freed
const early = Array.from({ length: 4 }, () => osp.zeros([2048, V]));
for (const t of early) t.dispose();
const logits = osp.randn([Tmax, V], { seed: 51, std: 2 });
const tgt = osp.tensor(Int32Array.from({ length: Tmax }, (_, i) => (i * 2654435761) % V), [Tmax]);
const g = osp.randn([Tmax], { seed: 52 });
const lengths = Array.from({ length: 8 }, (_, i) => Tmax - Math.round((i * Tmax) / 32));
let call = 0;
const fixed = () => osp.scope(() => void osp.tokenLogprobsBackward(logits, tgt, g));
const variable = () => osp.scope(() => { const T = lengths[call++ % 8]!; void osp.tokenLogprobsBackward(logits.narrow(0, 0, T), tgt.narrow(0, 0, T), g.narrow(0, 0, T)); });
for (let i = 0; i < 8; i++) variable();
const f: number[] = [], v: number[] = [];
for (let r = 0; r < 8; r++) {
  let t0 = performance.now(); fixed(); f.push(performance.now() - t0);
  t0 = performance.now(); variable(); v.push(performance.now() - t0);
}
const med = (a: number[]) => a.sort((x, y) => x - y)[4]!.toFixed(0);
console.log(`fixed T ${med(f)} ms, variable T ${med(v)} ms (mean rows ${(lengths.reduce((a, b) => a + b) / 8).toFixed(0)}), cached ${((osp.memoryStats().cpu as { cachedBytes?: number }).cachedBytes ?? NaN) / 2 ** 20} MiB`);
