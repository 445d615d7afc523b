#!/usr/bin/env python3
"""The PyTorch side of `npm run bench -- --torch` (bench/torchRows.ts drives it): plain torch, no
transformers, no numpy.

A long-lived worker, so osp and torch calls can alternate (osp, torch, osp, torch ...) in one run.
It speaks JSON lines: the first line it writes describes torch (version, threads, the BLAS it links
and whether that is the slow reference BLAS); then each request gets one reply.

  {"cmd": "setup", "name": ..., "kind": ..., ...}  reads the inputs osp wrote (raw little-endian
                                                  files, a safetensors model) and builds the call
  {"cmd": "run", "name": ...}                      runs that call once -> {"ms": wall time}
  {"cmd": "drop", "name": ...}                     frees it
  {"cmd": "quit"}

Kinds (the same maths as the osp row next to it):
  logprobs      log_softmax(x)[n, t_n] as torch computes it for a loss (F.cross_entropy, reduction
                none, negated); with "backward": true also the gradient for upstream g
  gemm          A @ W^T
  attention     causal scaled_dot_product_attention over [1, H, T, Dh] with grouped kv heads,
                forward + backward for upstream gradOut
  llama-forward the plain-torch Llama below: next-token log-probs of a packed batch, no grad
  llama-train   the same: mean next-token loss, backward, clip_grad_norm_(1.0), AdamW step
  generate      kv-cache sampling: P prompts x K samples x N tokens, temperature 1, top-p 0.9
Exit 3 with a message on stderr when torch is missing.
"""
import json
import re
import struct
import sys
import time
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(3)


try:
    import torch
    import torch.nn.functional as F
except Exception as e:  # noqa: BLE001
    fail(f"torch unavailable: {e}")


def read_raw(path, dtype, shape):
    n = 1
    for s in shape:
        n *= s
    with open(path, "rb") as f:
        buf = bytearray(f.read())
    return torch.frombuffer(buf, dtype=dtype, count=n).reshape(shape).clone()


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + hlen])
    base = 8 + hlen
    kinds = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        b, e = meta["data_offsets"]
        buf = bytearray(data[base + b:base + e])
        t = torch.frombuffer(buf, dtype=kinds[meta["dtype"]]) if e > b else torch.empty(0)
        out[name] = t.reshape(meta["shape"]).to(torch.float32).clone()
    return out


class Llama(torch.nn.Module):
    """The Hugging Face Llama decoder written out (RMSNorm, rotate-half RoPE, grouped-query causal
    attention, SwiGLU), weights by HF name. forward(ids, positions) over a packed batch [B, L]."""

    def __init__(self, cfg, weights):
        super().__init__()
        self.c = cfg
        self.p = torch.nn.ParameterDict({k.replace(".", "__"): torch.nn.Parameter(v) for k, v in weights.items()})
        dh = cfg["headDim"]
        inv = 1.0 / (cfg["ropeTheta"] ** (torch.arange(0, dh, 2, dtype=torch.float64) / dh))
        self.inv_freq = inv.to(torch.float32)

    def w(self, name):
        return self.p[name.replace(".", "__")]

    def rope(self, x, pos):  # x [B, heads, L, Dh], pos [B, L]
        f = pos[:, None, :, None].to(torch.float32) * self.inv_freq
        emb = torch.cat([f, f], dim=-1)
        cos, sin = emb.cos(), emb.sin()
        h = x.shape[-1] // 2
        rot = torch.cat([-x[..., h:], x[..., :h]], dim=-1)
        return x * cos + rot * sin

    def rms(self, x, name):
        v = x.pow(2).mean(-1, keepdim=True)
        return x * torch.rsqrt(v + self.c["rmsNormEps"]) * self.w(name)

    def hidden(self, ids, pos, cache=None, start=0):
        c = self.c
        H, Hkv, dh = c["heads"], c["kvHeads"], c["headDim"]
        x = F.embedding(ids, self.w("model.embed_tokens.weight"))
        B, L, _ = x.shape
        for i in range(c["layers"]):
            p = f"model.layers.{i}"
            h = self.rms(x, f"{p}.input_layernorm.weight")
            q = F.linear(h, self.w(f"{p}.self_attn.q_proj.weight")).view(B, L, H, dh).transpose(1, 2)
            k = F.linear(h, self.w(f"{p}.self_attn.k_proj.weight")).view(B, L, Hkv, dh).transpose(1, 2)
            v = F.linear(h, self.w(f"{p}.self_attn.v_proj.weight")).view(B, L, Hkv, dh).transpose(1, 2)
            q, k = self.rope(q, pos), self.rope(k, pos)
            if cache is not None:
                kc, vc = cache[i]
                kc[:, :, start:start + L] = k
                vc[:, :, start:start + L] = v
                k, v = kc[:, :, :start + L], vc[:, :, :start + L]
            causal = cache is None or L > 1
            a = F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
            x = x + F.linear(a.transpose(1, 2).reshape(B, L, H * dh), self.w(f"{p}.self_attn.o_proj.weight"))
            h = self.rms(x, f"{p}.post_attention_layernorm.weight")
            m = F.silu(F.linear(h, self.w(f"{p}.mlp.gate_proj.weight"))) * F.linear(h, self.w(f"{p}.mlp.up_proj.weight"))
            x = x + F.linear(m, self.w(f"{p}.mlp.down_proj.weight"))
        return self.rms(x, "model.norm.weight")

    def logits(self, h):
        name = "lm_head.weight" if not self.c["tie"] else "model.embed_tokens.weight"
        return F.linear(h, self.w(name))


def next_token_logprobs(model, ids):
    B, L = ids.shape
    pos = torch.arange(L).expand(B, L)
    logits = model.logits(model.hidden(ids, pos))[:, :-1]
    return -F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none")


def top_p_sample(logits, p, gen):
    probs = torch.softmax(logits, dim=-1)
    sp, si = probs.sort(dim=-1, descending=True)
    keep = sp.cumsum(-1) - sp < p
    sp = sp * keep
    pick = torch.multinomial(sp, 1, generator=gen)
    return si.gather(-1, pick)


def setup(req):
    kind = req["kind"]
    if kind == "logprobs":
        N, V = req["N"], req["V"]
        x = read_raw(req["logits"], torch.float32, [N, V])
        t = read_raw(req["targets"], torch.int32, [N]).long()
        if not req.get("backward"):
            def fwd():
                with torch.no_grad():
                    return -F.cross_entropy(x, t, reduction="none")
            return fwd
        g = read_raw(req["grad"], torch.float32, [N])
        xg = x.requires_grad_(True)

        def fwdbwd():
            xg.grad = None
            lp = -F.cross_entropy(xg, t, reduction="none")
            lp.backward(g)
        return fwdbwd
    if kind == "gemm":
        M, N, K = req["M"], req["N"], req["K"]
        a = read_raw(req["a"], torch.float32, [M, K])
        w = read_raw(req["w"], torch.float32, [N, K])
        return lambda: a @ w.T
    if kind == "attention":
        T, H, Hkv, dh = req["T"], req["H"], req["Hkv"], req["Dh"]
        q = read_raw(req["q"], torch.float32, [T, H, dh]).transpose(0, 1)[None].contiguous().requires_grad_(True)
        k = read_raw(req["k"], torch.float32, [T, Hkv, dh]).transpose(0, 1)[None].contiguous().requires_grad_(True)
        v = read_raw(req["v"], torch.float32, [T, Hkv, dh]).transpose(0, 1)[None].contiguous().requires_grad_(True)
        go = read_raw(req["gradOut"], torch.float32, [T, H, dh]).transpose(0, 1)[None].contiguous()

        def fb():
            for z in (q, k, v):
                z.grad = None
            F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True).backward(go)
        return fb
    if kind in ("llama-forward", "llama-train", "generate"):
        cfg = req["config"]
        model = Llama(cfg, read_safetensors(req["weights"]))
        if kind == "llama-forward":
            ids = torch.tensor(req["ids"], dtype=torch.long)

            def fwd():
                with torch.no_grad():
                    return next_token_logprobs(model, ids)
            return fwd
        if kind == "llama-train":
            ids = torch.tensor(req["ids"], dtype=torch.long)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)

            def train():
                loss = -next_token_logprobs(model, ids).mean()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
                return loss.item()
            return train
        prompts = torch.tensor(req["prompts"], dtype=torch.long)
        K, N = req["K"], req["newTokens"]
        gen = torch.Generator().manual_seed(1)

        def generate():
            with torch.no_grad():
                P, L0 = prompts.shape
                ids = prompts.repeat_interleave(K, dim=0)
                B = ids.shape[0]
                total = L0 + N
                cache = [(torch.empty(B, cfg["kvHeads"], total, cfg["headDim"]), torch.empty(B, cfg["kvHeads"], total, cfg["headDim"]))
                         for _ in range(cfg["layers"])]
                pos = torch.arange(L0).expand(B, L0)
                h = model.hidden(ids, pos, cache, 0)
                last = model.logits(h[:, -1])
                for s in range(N):
                    tok = top_p_sample(last, 0.9, gen)
                    if s + 1 == N:
                        break
                    h = model.hidden(tok, torch.full((B, 1), L0 + s), cache, L0 + s)
                    last = model.logits(h[:, -1])
        return generate
    raise ValueError(f"unknown kind {kind}")


def blas_info():
    """The BLAS torch was built with (BLAS_INFO in torch.__config__.show()), and whether it is the
    slow reference BLAS (generic / netlib) that makes every torch GEMM row meaningless."""
    m = re.search(r"BLAS_INFO=([\w-]+)", torch.__config__.show())
    name = m.group(1) if m else "unknown"
    return name, name.lower() in ("generic", "blas", "netlib", "ref", "reference", "unknown")


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.set_grad_enabled(True)
    blas, reference = blas_info()
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "blas": blas, "referenceBlas": reference}), flush=True)
    calls = {}
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req["cmd"] == "setup":
                calls[req["name"]] = setup(req)
                reply = {"ok": True}
            elif req["cmd"] == "run":
                fn = calls[req["name"]]
                t0 = time.perf_counter()
                fn()
                reply = {"ms": (time.perf_counter() - t0) * 1e3}
            elif req["cmd"] == "drop":
                calls.pop(req["name"], None)
                reply = {"ok": True}
            else:
                break
        except Exception as e:  # noqa: BLE001
            reply = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
