#!/usr/bin/env python3
"""Parity against transformers' own LlamaForCausalLM (issue 3; run on the GPU machine, where
transformers is installed; see scripts/gpu-check.sh).

Writes OUT/{untied,tied}/: a tiny random LlamaForCausalLM (the issue-3 config: 2 layers, hidden 32,
4 heads, 2 KV heads, vocab 97) saved with save_pretrained (safetensors, F32), and expected.json in
the format of scripts/torch-parity.py: the logits of three sequences (lengths 1, 5, 17), the mean
next-token cross-entropy and the gradient of every parameter, from transformers' forward and
PyTorch autograd in float64 on the cpu (attn_implementation='eager': the reference attention).
test/torchParity.test.ts checks osp against these folders when OSP_HF_PARITY_DIR=OUT is set.

Also OUT/lora/: a LoRA adapter (r 4, alpha 8, all seven linears, B non-zero) for the untied model,
in PEFT's format, and expected.json with the logits of base + adapter. Made by peft itself
(get_peft_model, save_pretrained) where the machine's Python has peft; otherwise written by hand in
PEFT's key names, with the expected logits from a merge done in transformers alone (W + s B A).

And the other direction: `--osp-adapter DIR` reads an adapter that osp wrote (scripts/osp-adapter-fixture.ts)
onto its base with peft where available (else a merge in transformers alone) and writes DIR/expected.json
with the logits it gives; test/torchParity compares osp's logits of the same adapter with them.

And `--osp-reward-model DIR`: a reward model osp wrote (scripts/osp-reward-fixture.ts), loaded by
transformers' LlamaForSequenceClassification; DIR/expected.json holds its rewards of SEQUENCES.

Usage: python3 scripts/hf-parity.py OUT
       python3 scripts/hf-parity.py --osp-adapter DIR
       python3 scripts/hf-parity.py --osp-reward-model DIR
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


TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']


def make_lora(out):
    base_dir = os.path.join(out, 'untied')
    folder = os.path.join(out, 'lora')
    os.makedirs(folder, exist_ok=True)
    r, alpha = 4, 8
    torch.manual_seed(20261130)
    model = LlamaForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float64, attn_implementation='eager')
    try:
        from peft import LoraConfig, get_peft_model
        peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=TARGETS, task_type='CAUSAL_LM'))
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if 'lora_B' in name:
                    p.copy_(torch.randn_like(p) * 0.1)
        peft_model.save_pretrained(folder, safe_serialization=True)
        peft_model.eval()
        run = peft_model
        made_by = 'peft %s' % __import__('peft').__version__
    except ImportError:
        from safetensors.torch import save_file
        tensors = {}
        with torch.no_grad():
            for i, layer in enumerate(model.model.layers):
                for mod in TARGETS:
                    lin = getattr(layer.self_attn if mod in TARGETS[:4] else layer.mlp, mod)
                    A = (torch.rand(r, lin.in_features, dtype=torch.float64) * 2 - 1) / lin.in_features ** 0.5
                    B = torch.randn(lin.out_features, r, dtype=torch.float64) * 0.1
                    key = 'base_model.model.model.layers.%d.%s.%s' % (i, 'self_attn' if mod in TARGETS[:4] else 'mlp', mod)
                    tensors[key + '.lora_A.weight'] = A.float().contiguous()
                    tensors[key + '.lora_B.weight'] = B.float().contiguous()
                    # the merge, in transformers' own module: W + (alpha / r) B A (from the f32-rounded A, B)
                    lin.weight += (alpha / r) * (B.float().double() @ A.float().double())
        save_file(tensors, os.path.join(folder, 'adapter_model.safetensors'), metadata={'format': 'pt'})
        with open(os.path.join(folder, 'adapter_config.json'), 'w') as f:
            json.dump({'peft_type': 'LORA', 'task_type': 'CAUSAL_LM', 'r': r, 'lora_alpha': alpha, 'lora_dropout': 0.0, 'target_modules': TARGETS,
                       'bias': 'none', 'fan_in_fan_out': False, 'inference_mode': True, 'base_model_name_or_path': base_dir}, f)
        run = model
        made_by = 'hand-written PEFT format, merged in transformers %s' % __import__('transformers').__version__
    logits = []
    with torch.no_grad():
        for s in SEQUENCES:
            logits.append(run(torch.tensor([s])).logits[0].double())
    with open(os.path.join(folder, 'expected.json'), 'w') as f:
        json.dump({'madeBy': made_by, 'sequences': SEQUENCES, 'r': r, 'alpha': alpha,
                   'logits': [[[num(v) for v in row] for row in lg.tolist()] for lg in logits]}, f, separators=(',', ':'))
    print('%s: adapter by %s' % (folder, made_by))


def read_osp_adapter(folder):
    with open(os.path.join(folder, 'adapter_config.json')) as f:
        cfg = json.load(f)
    model = LlamaForCausalLM.from_pretrained(cfg['base_model_name_or_path'], torch_dtype=torch.float64, attn_implementation='eager')
    try:
        from peft import PeftModel
        run = PeftModel.from_pretrained(model, folder).eval()
        made_by = 'peft %s' % __import__('peft').__version__
    except ImportError:
        from safetensors.torch import load_file
        tensors = load_file(os.path.join(folder, 'adapter_model.safetensors'))
        scale = cfg['lora_alpha'] / cfg['r']
        with torch.no_grad():
            for i, layer in enumerate(model.model.layers):
                for mod in cfg['target_modules']:
                    part = 'self_attn' if mod in TARGETS[:4] else 'mlp'
                    key = 'base_model.model.model.layers.%d.%s.%s' % (i, part, mod)
                    A, B = tensors[key + '.lora_A.weight'].double(), tensors[key + '.lora_B.weight'].double()
                    getattr(getattr(layer, part), mod).weight += scale * (B @ A)
        run = model
        made_by = 'merged in transformers %s (no peft here)' % __import__('transformers').__version__
    with torch.no_grad():
        logits = [run(torch.tensor([s])).logits[0].double() for s in SEQUENCES]
    with open(os.path.join(folder, 'expected.json'), 'w') as f:
        json.dump({'madeBy': made_by, 'sequences': SEQUENCES,
                   'logits': [[[num(v) for v in row] for row in lg.tolist()] for lg in logits]}, f, separators=(',', ':'))
    print('%s: osp adapter read by %s' % (folder, made_by))


def read_osp_reward_model(folder):
    from transformers import LlamaForSequenceClassification
    model = LlamaForSequenceClassification.from_pretrained(folder, torch_dtype=torch.float64, attn_implementation='eager').eval()
    with torch.no_grad():
        rewards = [model(torch.tensor([s])).logits[0, 0].item() for s in SEQUENCES]
    with open(os.path.join(folder, 'expected.json'), 'w') as f:
        json.dump({'madeBy': 'transformers %s LlamaForSequenceClassification' % __import__('transformers').__version__,
                   'sequences': SEQUENCES, 'rewards': [num(r) for r in rewards]}, f)
    print('%s: osp reward model read by transformers' % folder)


if __name__ == '__main__':
    if len(sys.argv) > 2 and sys.argv[1] == '--osp-reward-model':
        read_osp_reward_model(sys.argv[2])
        sys.exit(0)
    if len(sys.argv) > 2 and sys.argv[1] == '--osp-adapter':
        read_osp_adapter(sys.argv[2])
        sys.exit(0)
    out = sys.argv[1] if len(sys.argv) > 1 else 'hf-parity'
    torch.use_deterministic_algorithms(True)
    make(out, False)
    make(out, True)
    make_lora(out)
