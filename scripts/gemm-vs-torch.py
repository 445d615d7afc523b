# Timing server for scripts/gemm-vs-torch.ts: reads one JSON request per line on stdin
# ({"M", "N", "K", "transA", "transB", "reps", "threads"}), runs torch.mm on f32 operands stored the
# way osp stores them (a [K, M] with transA, b [N, K] with transB: transposed views, which torch
# hands to its BLAS as transpose flags, no copy), and answers one JSON line: the seconds of each call.
import json
import sys
import time

import torch

torch.manual_seed(0)
cache = {}
print(json.dumps({"torch": torch.__version__, "blas": torch.__config__.show().count("MKL") > 0 and "mkl" or "other"}), flush=True)
for line in sys.stdin:
    r = json.loads(line)
    torch.set_num_threads(r["threads"])
    key = (r["M"], r["N"], r["K"], r["transA"], r["transB"])
    if key not in cache:
        M, N, K = r["M"], r["N"], r["K"]
        a = torch.randn(K, M).t() if r["transA"] else torch.randn(M, K)
        b = torch.randn(N, K).t() if r["transB"] else torch.randn(K, N)
        cache = {key: (a, b, torch.empty(M, N))}
    a, b, c = cache[key]
    times = []
    for _ in range(r["reps"]):
        t = time.perf_counter()
        torch.mm(a, b, out=c)
        times.append(time.perf_counter() - t)
    print(json.dumps(times), flush=True)
