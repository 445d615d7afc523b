"""osp's CPU causal attention, forward + backward, against PyTorch's scaled_dot_product_attention
(is_causal=True, f32) on the same shapes, optionally beside an older osp build; calls interleaved
(old, new, torch, old, new, torch, ...), median of the repeats, of the wall time and of the process
CPU time per call (the CPU time is the steadier measure on a shared, loaded machine; with 1 thread it
is the work done). Each side gets its natural layout
(osp [B*T, H, Dh] packed, torch [B, H, T, Dh] contiguous) and the same thread count.

  OSP_NUM_THREADS=2 /work/torch-venv/bin/python scripts/attention-vs-torch.py [--old DIR] [--repeats 7]

--old DIR: a directory with an older build (dist/ and build/Release/osp.node), e.g. main's.
Torch gets GQA through enable_gqa=True, or k, v expanded beforehand (untimed) if that is faster:
the faster of the two is reported.
"""
import argparse, os, subprocess, statistics, time
import torch

p = argparse.ArgumentParser()
p.add_argument("--old", default=None)
p.add_argument("--repeats", type=int, default=7)
p.add_argument("--threads", type=int, default=int(os.environ.get("OSP_NUM_THREADS", "2")))
p.add_argument("--shapes", default="1x128,1x512,1x1024", help="BxT list")
p.add_argument("--dims", default="32,64,128")
p.add_argument("--heads", default="8,4", help="H,Hkv")
a = p.parse_args()
torch.set_num_threads(a.threads)
here = os.path.dirname(os.path.abspath(__file__))
env = dict(os.environ, OSP_NUM_THREADS=str(a.threads))


class Worker:
    def __init__(self, root):
        self.p = subprocess.Popen(["node", os.path.join(here, "attention-vs-torch-worker.js"), root], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, env=env)

    def ask(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        return self.p.stdout.readline().strip()


class Torch:
    def setup(self, B, T, H, Hkv, Dh):
        g = torch.Generator().manual_seed(0)
        self.q = torch.randn(B, H, T, Dh, generator=g).requires_grad_()
        self.k = torch.randn(B, Hkv, T, Dh, generator=g).requires_grad_()
        self.v = torch.randn(B, Hkv, T, Dh, generator=g).requires_grad_()
        self.ke = self.k.detach().repeat_interleave(H // Hkv, 1).requires_grad_()
        self.ve = self.v.detach().repeat_interleave(H // Hkv, 1).requires_grad_()
        self.g = torch.randn(B, H, T, Dh, generator=g)
        self.gqa = True
        # pick the faster way to give torch grouped heads
        times = {}
        for gqa in (True, False):
            self.gqa = gqa
            self.run()
            times[gqa] = min(self.run()[0] for _ in range(3))
        self.gqa = times[True] <= times[False]

    def run(self):
        for x in (self.q, self.k, self.v, self.ke, self.ve):
            x.grad = None
        c0, t0 = time.process_time(), time.perf_counter()
        if self.gqa:
            o = torch.nn.functional.scaled_dot_product_attention(self.q, self.k, self.v, is_causal=True, enable_gqa=True)
        else:
            o = torch.nn.functional.scaled_dot_product_attention(self.q, self.ke, self.ve, is_causal=True)
        o.backward(self.g)
        return (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3


sides = []
if a.old:
    sides.append(("old", Worker(a.old)))
sides.append(("new", Worker(os.path.join(here, ".."))))
tt = Torch()
H, Hkv = map(int, a.heads.split(","))
print(f"threads {a.threads}, H {H}, Hkv {Hkv}, median of {a.repeats}, load average {os.getloadavg()}")
names = [n for n, _ in sides] + ["torch"]
print("| B x T | Dh | " + " | ".join(f"{n} ms" for n in names) + " | torch/new | " + ("new/old | " if a.old else "") +
      "new GFLOP/s | " + " | ".join(f"{n} cpu ms" for n in names) + " | torch/new cpu |")
for shape in a.shapes.split(","):
    B, T = map(int, shape.split("x"))
    for Dh in map(int, a.dims.split(",")):
        for _, w in sides:
            assert w.ask(f"setup {B} {T} {H} {Hkv} {Dh}") == "ok"
            w.ask("run")  # warm-up
        tt.setup(B, T, H, Hkv, Dh)
        res = {n: [] for n, _ in sides}
        res["torch"] = []
        for _ in range(a.repeats):
            for n, w in sides:
                res[n].append(tuple(map(float, w.ask("run").split())))
            res["torch"].append(tt.run())
        med = {n: statistics.median(x[0] for x in v) for n, v in res.items()}
        cpu = {n: statistics.median(x[1] for x in v) for n, v in res.items()}
        # useful flops: forward 4 N H Dh, backward 10 N H Dh over the N = B T (T + 1) / 2 causal pairs
        flops = 14 * B * T * (T + 1) / 2 * H * Dh
        row = [f"{B} x {T}", str(Dh)] + [f"{med[n]:.2f}" for n, _ in sides] + [f"{med['torch']:.2f}"]
        row.append(f"{med['torch'] / med['new']:.2f}x" + ("" if tt.gqa else " (k,v expanded)"))
        if a.old:
            row.append(f"{med['old'] / med['new']:.2f}x")
        row.append(f"{flops / med['new'] / 1e6:.1f}")
        row += [f"{cpu[n]:.2f}" for n in names] + [f"{cpu['torch'] / cpu['new']:.2f}x"]
        print("| " + " | ".join(row) + " |", flush=True)
print(f"load average after {os.getloadavg()}")
for _, w in sides:
    w.ask("quit")
