#!/usr/bin/env python3
"""Parity against transformers' own LlamaForCausalLM (issue 3; run on the GPU machine, where
transformers is installed; see scripts/gpu-check.sh).

Writes OUT/{untied,tied}/: a tiny random LlamaForCausalLM (the issue-3 config: 2 layers, hidden 32,
4 heads, 2 KV heads, vocab 97) saved with save_pretrained (safetensors, F32), and expected.json in
the format of scripts/torch-parity.py: the logits of three sequences (lengths 1, 5, 17), the mean
next-token cross-entropy and the gradient of every parameter, from transformers' forward and
PyTorch autograd in float64 on the cpu (attn_implementation='eager': the reference attention).
test/torchParity.test.ts checks osp against these folders when OSP_HF_PARITY_DIR=OUT is set.

Usage: python3 scripts/hf-parity.py OUT
"""
import json
import os
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

SEQUENCES = [[3], [5, 9, 11, 2, 60], [(i * 13 + 7) % 97 for i in range(17)]]


def num(x):
    return float('%.17g' % x)


def make(out, tie):
    folder = os.path.join(out, 'tied' if tie else 'untied')
    cfg = LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      head_dim=8, vocab_size=97, tie_word_embeddings=tie, max_position_embeddings=64, rms_norm_eps=1e-6,
                      rope_theta=10000.0, bos_token_id=1, eos_token_id=2, attn_implementation='eager')
    torch.manual_seed(20241127 + int(tie))
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * 0.2 + (1.0 if name.endswith('norm.weight') else 0.0))
    model.save_pretrained(folder, safe_serialization=True)
    model = model.to(torch.float64)
    logits, total, count = [], torch.zeros((), dtype=torch.float64), 0
    for s in SEQUENCES:
        ids = torch.tensor([s])
        lg = model(ids).logits[0]
        logits.append(lg)
        if len(s) > 1:
            total = total + torch.nn.functional.cross_entropy(lg[:-1], ids[0, 1:], reduction='sum')
            count += len(s) - 1
    loss = total / count
    loss.backward()
    grads = {}
    for name, p in model.named_parameters():
        grads[name] = [num(v) for v in p.grad.flatten().tolist()]
    if tie and 'lm_head.weight' in grads:
        del grads['lm_head.weight']
    expected = {
        'torch': torch.__version__,
        'transformers': __import__('transformers').__version__,
        'sequences': SEQUENCES,
        'logits': [[[num(v) for v in row] for row in lg.detach().tolist()] for lg in logits],
        'loss': num(loss.item()),
        'grads': grads,
    }
    with open(os.path.join(folder, 'expected.json'), 'w') as f:
        json.dump(expected, f, separators=(',', ':'))
    print('%s: loss %.17g (transformers %s)' % (folder, loss.item(), expected['transformers']))


if __name__ == '__main__':
    out = sys.argv[1] if len(sys.argv) > 1 else 'hf-parity'
    torch.use_deterministic_algorithms(True)
    make(out, False)
    make(out, True)
