// The CPU f32 GEMM against PyTorch's (MKL here), same shapes, same thread count, interleaved:
// for each shape, ROUNDS rounds of (REPS osp calls, REPS torch calls), so both see the same
// machine load. A pause of PAUSE_MS separates the two sides: torch's OpenMP threads keep spinning
// for a while after a parallel region (Intel's KMP_BLOCKTIME is 200 ms), and would otherwise take
// cores from osp's calls. Prints per shape the median and best GFLOP/s of each over all calls, the
// ratio osp / torch of each, and the load average before and after.
//
//   OSP_NUM_THREADS=2 npx ts-node --transpile-only scripts/gemm-vs-torch.ts [python]
//
// python: a python with torch (default /work/torch-venv/bin/python, else python3). OSP_CPU_ISA
// (avx512, avx2, baseline) picks osp's micro-kernel. The torch side is scripts/gemm-vs-torch.py.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as readline from 'readline';
import * as osp from '../src';

const ROUNDS = Number(process.env.GEMM_ROUNDS ?? 5);
const REPS = Number(process.env.GEMM_REPS ?? 5);
const PAUSE_MS = Number(process.env.GEMM_PAUSE_MS ?? 300);
const pause = () => new Promise((resolve) => setTimeout(resolve, PAUSE_MS));

interface Shape {
  name: string;
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
}
const SHAPES: Shape[] = [
  { name: '512x1024x1024', M: 512, N: 1024, K: 1024, transA: false, transB: false },
  { name: '2048^3', M: 2048, N: 2048, K: 2048, transA: false, transB: false },
  // Training shapes of the d256 Llama's MLP (hidden 688), 512 tokens: y = x W^T, dX = dY W, dW = dY^T X.
  { name: 'fwd x[512x256] W[688x256]^T', M: 512, N: 688, K: 256, transA: false, transB: true },
  { name: 'fwd [512x256]x[256x688]', M: 512, N: 688, K: 256, transA: false, transB: false },
  { name: 'dX dY[512x688] W[688x256]', M: 512, N: 256, K: 688, transA: false, transB: false },
  { name: 'dW dY[512x688]^T X[512x256]', M: 688, N: 256, K: 512, transA: true, transB: false },
];

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main() {
  const python = process.argv[2] ?? (fs.existsSync('/work/torch-venv/bin/python') ? '/work/torch-venv/bin/python' : 'python3');
  const threads = osp.backends().cpu.threads;
  const server = spawn(python, [path.join(__dirname, 'gemm-vs-torch.py')], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: server.stdout })[Symbol.asyncIterator]();
  const nextLine = async () => {
    const r = await lines.next();
    if (r.done) throw new Error(`${python} scripts/gemm-vs-torch.py exited early (is torch installed?)`);
    return JSON.parse(r.value);
  };
  const info = await nextLine();
  const isa = process.env.OSP_CPU_ISA ?? 'best available';
  console.log(`osp (isa: ${isa}) vs torch ${info.torch} (${info.blas}), f32, ${threads} threads each, ${ROUNDS} rounds x ${REPS} calls, interleaved, ${PAUSE_MS} ms apart`);
  console.log(`load average before: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log('shape | osp median / best GFLOP/s | torch median / best GFLOP/s | osp/torch median | osp/torch best');
  for (const s of SHAPES) {
    const flops = 2 * s.M * s.N * s.K;
    const a = osp.randn(s.transA ? [s.K, s.M] : [s.M, s.K], { device: 'cpu', seed: 1 });
    const b = osp.randn(s.transB ? [s.N, s.K] : [s.K, s.N], { device: 'cpu', seed: 2 });
    osp.matmul(a, b, s).dispose(); // warm: packing buffers, thread pool
    const ospTimes: number[] = [];
    const torchTimes: number[] = [];
    server.stdin.write(JSON.stringify({ ...s, reps: 1, threads }) + '\n');
    await nextLine(); // torch's warm-up call
    for (let r = 0; r < ROUNDS; r++) {
      await pause();
      for (let i = 0; i < REPS; i++) {
        const t = process.hrtime.bigint();
        const c = osp.matmul(a, b, s); // synchronous on the cpu
        ospTimes.push(Number(process.hrtime.bigint() - t) / 1e9);
        c.dispose();
      }
      await pause();
      server.stdin.write(JSON.stringify({ ...s, reps: REPS, threads }) + '\n');
      torchTimes.push(...((await nextLine()) as number[]));
    }
    a.dispose();
    b.dispose();
    const g = (t: number) => flops / t / 1e9;
    const om = g(median(ospTimes)), ob = g(Math.min(...ospTimes));
    const tm = g(median(torchTimes)), tb = g(Math.min(...torchTimes));
    console.log(
      `${s.name}${s.transA ? ' (transA)' : ''}${s.transB ? ' (transB)' : ''} | ${om.toFixed(1)} / ${ob.toFixed(1)} | ` +
        `${tm.toFixed(1)} / ${tb.toFixed(1)} | ${(om / tm).toFixed(2)} | ${(ob / tb).toFixed(2)}`,
    );
  }
  console.log(`load average after: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  server.stdin.end();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
