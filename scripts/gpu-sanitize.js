#!/usr/bin/env node
// The short workload scripts/gpu-check.sh runs under compute-sanitizer (memcheck, then racecheck):
// every CUDA kernel family once, on small uneven shapes (rows that are not a multiple of the block
// or the 16-byte pack, a ragged attention batch), in f32 and bf16, so out-of-bounds accesses and
// shared-memory races show up in seconds rather than in a long run. Small on purpose: the sanitizer
// slows kernels 10-100x. `node scripts/gpu-sanitize.js cpu` runs the same calls on the CPU backend
// (the dry run uses it to catch a broken workload without a GPU). Needs dist/ (npm run build).
'use strict';
const o = require('../dist');

const device = process.argv[2] || 'cuda';
if (!['cuda', 'cpu'].includes(device)) throw new Error(`device is ${device}; expected cuda or cpu`);
let seed = 1;
const rnd = (shape, dtype = 'f32', std = 1) => o.randn(shape, { device, dtype, seed: seed++, std });
const ints = (values) => o.tensor(Int32Array.from(values), [values.length], { device });
const started = Date.now();
const ran = [];
function run(name, fn) {
  o.scope(fn);
  o.synchronize();
  ran.push(name);
}

// The CPU backend has no bf16 kernels: there only the f32 pass runs (the calls' shapes and options are the same).
for (const dtype of device === 'cuda' ? ['f32', 'bf16'] : ['f32']) {
  // V 32001 misses the 16-byte pack (scalar path), 32000 takes it; row 1 is ignored (-100).
  for (const [N, V] of [[3, 97], [5, 32001], [4, 32000]]) {
    run(`tokenLogprobs ${dtype} [${N}, ${V}]`, () => {
      const x = rnd([N, V], dtype, 3);
      const t = ints(Array.from({ length: N }, (_, i) => (i === 1 ? -100 : (i * 7919) % V)));
      const g = rnd([N]);
      o.tokenLogprobs(x, t);
      o.tokenLogprobsBackward(x, t, g);
      o.reference.tokenLogprobsUnfused(x, t);
      o.reference.tokenLogprobsBackwardUnfused(x, t, g);
      o.tokenLogprobsBackward(x, t, g, { inPlace: true });
    });
  }
  run(`rmsNorm, swiglu, rope, embedding ${dtype}`, () => {
    const [T, D, F, H, Dh] = [37, 515, 300, 3, 10];
    const x = rnd([T, D], dtype);
    const w = rnd([D], dtype);
    o.rmsNorm(x, w, { eps: 1e-5 });
    o.rmsNormBackward(x, w, rnd([T, D], dtype), { eps: 1e-5 });
    const gate = rnd([T, F], dtype);
    const up = rnd([T, F], dtype);
    o.swiglu(gate, up);
    o.swigluBackward(gate, up, rnd([T, F], dtype));
    const pos = ints(Array.from({ length: T }, (_, i) => (i * 37) % 4096));
    o.rope(rnd([T, H, Dh], dtype), pos, { theta: 500000 });
    o.ropeBackward(rnd([T, H, Dh], dtype), pos, { theta: 500000 });
    const ids = ints(Array.from({ length: T }, (_, i) => (i * 13) % 50));
    o.embedding(rnd([50, 37], dtype), ids);
    o.embeddingBackward(rnd([T, 37], dtype), ids, 50);
  });
  run(`causalAttention and the kv cache ${dtype}`, () => {
    const lengths = [1, 5, 60, 3];
    const T = lengths.reduce((a, b) => a + b, 0);
    const [H, Hkv, Dh] = [8, 2, 64];
    const ids = ints(lengths.flatMap((n, s) => Array(n).fill(s)));
    const [q, k, v, g] = [rnd([T, H, Dh], dtype), rnd([T, Hkv, Dh], dtype), rnd([T, Hkv, Dh], dtype), rnd([T, H, Dh], dtype)];
    const r = o.causalAttention(q, k, v, ids);
    o.causalAttentionBackward(q, k, v, ids, r.out, r.logsumexp, g);
    const [S, L] = [4, 70];
    const kc = o.zeros([S, L, Hkv, Dh], { device, dtype });
    const vc = o.zeros([S, L, Hkv, Dh], { device, dtype });
    const slots = ints(lengths.flatMap((n, s) => Array(n).fill(s)));
    const positions = ints(lengths.flatMap((n) => Array.from({ length: n }, (_, i) => i)));
    o.kvCacheWrite(kc, k, slots, positions);
    o.kvCacheWrite(vc, v, slots, positions);
    o.cachedAttention(q, kc, vc, slots, positions);
  });
  run(`matmul (own kernel) ${dtype}`, () => {
    o.matmul(rnd([65, 17], dtype), rnd([130, 17], dtype), { transB: true, impl: 'own' });
    o.matmul(rnd([17, 65], dtype), rnd([17, 130], dtype), { transA: true, impl: 'own' });
  });
  run(`sampleTokens ${dtype}`, () => {
    const B = 7;
    const logits = rnd([B, 32001], dtype, 3);
    const streams = ints(Array.from({ length: B }, (_, i) => i));
    for (const opts of [{ temperature: 0 }, { temperature: 0.8, topK: 40, topP: 0.95 }, { temperature: 1, topP: 0.9 }]) {
      o.sampleTokens(logits, streams, streams, { seed: 3, ...opts });
    }
  });
  run(`sumOfSquares, adamwStep ${dtype} grads`, () => {
    const n = 300001;
    o.sumOfSquares(rnd([n], dtype));
    const p = rnd([n]);
    const m = o.zeros([n], { device });
    const v = o.zeros([n], { device });
    o.adamwStep(p, rnd([n], dtype), m, v, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step: 1 });
  });
}
run('preferenceLoss, sequenceLogprobs, elementwise (f32)', () => {
  const B = 1000;
  const target = o.tensor(new Float32Array(B).fill(0.3), [B], { device });
  const ins = { policyChosen: rnd([B]), policyRejected: rnd([B]), refChosen: rnd([B]), refRejected: rnd([B]) };
  for (const kind of ['spce', 'dpo', 'ipo']) o.preferenceLoss(kind, kind === 'spce' ? { ...ins, target } : ins, { beta: 0.1 });
  o.reference.preferenceLossUnfused('spce', { ...ins, target }, { beta: 0.1 });
  o.sequenceLogprobs(rnd([B]), ints(Array.from({ length: B }, (_, i) => (i % 7) - 1)), 6);
  o.sum(o.unary('softplus', o.add(rnd([10007]), rnd([10007]))));
});
console.log(`sanitizer workload on ${device}: ${ran.length} groups of calls in ${((Date.now() - started) / 1e3).toFixed(1)} s`);
