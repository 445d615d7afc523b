// Worker for scripts/attention-vs-torch.py: times one causalAttention forward + backward of osp
// (the build under the directory given as argv[2], so an older build can run beside this one).
// Protocol, one line each way: "setup B T H Hkv Dh" -> "ok"; "run" -> milliseconds of one
// forward + backward, then the process's CPU milliseconds for it; "quit". Inputs are drawn once per setup (seeded), B packed sequences of T.
const path = require('path');
const root = path.resolve(process.argv[2] || path.join(__dirname, '..'));
const t = require(path.join(root, 'dist/tensor'));
const o = require(path.join(root, 'dist/ops'));
const readline = require('readline');

let state = null;
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [cmd, ...args] = line.trim().split(/\s+/);
  if (cmd === 'setup') {
    if (state) for (const x of Object.values(state)) x.dispose?.();
    const [B, T, H, Hkv, Dh] = args.map(Number);
    const N = B * T;
    const ids = Int32Array.from({ length: N }, (_, i) => Math.floor(i / T));
    state = {
      q: t.randn([N, H, Dh], { device: 'cpu', seed: 1 }),
      k: t.randn([N, Hkv, Dh], { device: 'cpu', seed: 2 }),
      v: t.randn([N, Hkv, Dh], { device: 'cpu', seed: 3 }),
      g: t.randn([N, H, Dh], { device: 'cpu', seed: 4 }),
      ids: t.tensor(ids, [N], { device: 'cpu' }),
      spans: o.sequenceSpans ? o.sequenceSpans(ids) : undefined,
    };
    process.stdout.write('ok\n');
  } else if (cmd === 'run') {
    const { q, k, v, g, ids, spans } = state;
    const cpu0 = process.cpuUsage();
    const start = process.hrtime.bigint();
    t.scope(() => {
      const r = o.causalAttention(q, k, v, ids, { spans });
      o.causalAttentionBackward(q, k, v, ids, r.out, r.logsumexp, g, { spans });
    });
    const wall = Number(process.hrtime.bigint() - start) / 1e6;
    const cpu = process.cpuUsage(cpu0);
    process.stdout.write(`${wall} ${(cpu.user + cpu.system) / 1e3}\n`);
  } else if (cmd === 'quit') {
    rl.close();
    process.exit(0);
  }
});
