#!/usr/bin/env python3
"""PyTorch + transformers baseline for the GPU model section of `npm run bench` (bench/kernels.ts calls
this in the same run, on the same device, with the same shapes). The CPU comparison (`--torch`) is
bench/torch_worker.py: plain torch, no transformers, calls alternating with osp's.

A random LlamaForCausalLM of the given config; a batch of B sequences of L tokens (no padding, the
same token count as osp's packed batch). Times, median after a warm-up:
  forward     logits of every position under torch.no_grad (what transformers does to score)
  train-step  forward with labels (mean next-token loss), backward, clip_grad_norm_(1.0), AdamW step
  generate    (optional, --generate P,K,N) model.generate of P prompts x K samples, N new tokens,
              top-p 0.9, temperature 1.0, eos disabled so every sample runs N tokens
and peak memory (torch.cuda.max_memory_allocated) per variant. Prints one JSON object on stdout.
Exit 3 with a message on stderr when torch or transformers is missing.

--attention T1,T2,... (no --config, no transformers): torch.nn.functional.scaled_dot_product_attention
with is_causal on one sequence of each length, [1, heads, T, head-dim] bf16 q and dO and
[1, kv-heads, T, head-dim] k and v, restricted to the flash backend (sdpa_kernel(FLASH_ATTENTION)):
the forward, and the backward alone (torch.autograd.grad of a kept forward), median ms after a
warm-up. GQA through enable_gqa where the flash kernel takes it, else k and v repeated to the query
heads before timing ("backend" says which). Rows: {"T", "pass", "medianMs", "backend"}.
"""
import argparse
import json
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", help="JSON: hidden, ffn, layers, heads, kvHeads, vocab, tie (model mode)")
    ap.add_argument("--attention", default="", help="T1,T2,...: time flash SDPA instead of the model")
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--generate", default="", help="P,K,N: prompts, samples per prompt, new tokens")
    args = ap.parse_args()
    if args.attention:
        return attention(args)
    if not args.config:
        ap.error("--config is required without --attention")
    try:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM
    except Exception as e:  # noqa: BLE001
        print(f"torch/transformers unavailable: {e}", file=sys.stderr)
        sys.exit(3)
    c = json.loads(args.config)
    cfg = LlamaConfig(
        hidden_size=c["hidden"], intermediate_size=c["ffn"], num_hidden_layers=c["layers"],
        num_attention_heads=c["heads"], num_key_value_heads=c["kvHeads"], vocab_size=c["vocab"],
        tie_word_embeddings=c.get("tie", False), max_position_embeddings=4096, rms_norm_eps=1e-5,
        attn_implementation="sdpa",
    )
    dev = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(31)
    model = LlamaForCausalLM(cfg).to(device=dev, dtype=dtype)
    ids = torch.randint(0, c["vocab"], (args.batch, args.length), device=dev)
    cuda = dev.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def timed(fn, repeats):
        fn()
        sync()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() if cuda else 0
        ms = median_ms(fn, repeats, sync, warm_up=False)
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if cuda else 0.0
        return ms, peak

    out = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0) if cuda else "cpu", "rows": []}
    tokens = args.batch * args.length

    def forward():
        with torch.no_grad():
            model(ids).logits

    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)

    def train():
        loss = model(ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for name, fn in (("forward", forward), ("train-step", train)):
        ms, peak = timed(fn, args.repeats)
        out["rows"].append({"variant": name, "medianMs": ms, "tokensPerS": tokens / (ms / 1e3), "peakExtraMiB": peak})

    if args.generate:
        P, K, N = (int(x) for x in args.generate.split(","))
        prompts = torch.randint(3, c["vocab"], (P, 32), device=dev)

        def gen():
            with torch.no_grad():
                model.generate(prompts, do_sample=True, top_p=0.9, temperature=1.0, num_return_sequences=K,
                               max_new_tokens=N, min_new_tokens=N, eos_token_id=None, pad_token_id=0)

        ms, peak = timed(gen, max(1, args.repeats // 3))
        out["rows"].append({"variant": f"generate {P}x{K}x{N}", "medianMs": ms, "tokensPerS": P * K * N / (ms / 1e3), "peakExtraMiB": peak})
    print(json.dumps(out))


def median_ms(fn, repeats, sync, warm_up=True):
    """Median wall time of fn in ms over `repeats` calls (each synchronised), after one warm-up call."""
    if warm_up:
        fn()
        sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def attention(args):
    try:
        import torch
        import torch.nn.functional as F
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except Exception as e:  # noqa: BLE001
        print(f"torch (with torch.nn.attention) unavailable: {e}", file=sys.stderr)
        sys.exit(3)
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    H, Hkv, Dh = args.heads, args.kv_heads, args.head_dim
    out = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0) if cuda else "cpu", "rows": []}
    torch.manual_seed(41)
    for T in (int(x) for x in args.attention.split(",")):
        q = torch.randn(1, H, T, Dh, device=dev, dtype=torch.bfloat16, requires_grad=True)
        k = torch.randn(1, Hkv, T, Dh, device=dev, dtype=torch.bfloat16, requires_grad=True)
        v = torch.randn(1, Hkv, T, Dh, device=dev, dtype=torch.bfloat16, requires_grad=True)
        g = torch.randn(1, H, T, Dh, device=dev, dtype=torch.bfloat16)
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            try:
                F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
                backend, kk, vv = "flash (enable_gqa)", k, v
                gqa = True
            except Exception:  # noqa: BLE001  (flash without GQA support: repeat k and v to the query heads)
                kk = k.detach().repeat_interleave(H // Hkv, dim=1).requires_grad_()
                vv = v.detach().repeat_interleave(H // Hkv, dim=1).requires_grad_()
                backend, gqa = "flash (k, v repeated)", False

            def fwd():
                with torch.no_grad():
                    F.scaled_dot_product_attention(q, kk, vv, is_causal=True, enable_gqa=gqa)

            o = F.scaled_dot_product_attention(q, kk, vv, is_causal=True, enable_gqa=gqa)

            def bwd():
                torch.autograd.grad(o, (q, kk, vv), g, retain_graph=True)

            for name, fn in (("forward", fwd), ("backward", bwd)):
                out["rows"].append({"T": T, "pass": name, "medianMs": median_ms(fn, args.repeats, sync), "backend": backend})
        del q, k, v, g, kk, vv, o
    print(json.dumps(out))


if __name__ == "__main__":
    main()
