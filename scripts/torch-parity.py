#!/usr/bin/python3
"""PyTorch parity fixtures for osp's Llama engine (issue 3).

Writes test/fixtures/torch-parity/{untied,tied}/ with config.json, model.safetensors (F32, written
by hand: no safetensors package needed) and expected.json: for three fixed token sequences (lengths
1, 5, 17), the logits at every position, the mean next-token cross-entropy loss (over positions
whose next token lies in the same sequence) and the gradient of that loss w.r.t. every parameter,
all computed by PyTorch autograd in float64 on the cpu from the F32 weights.

The forward follows transformers' LlamaForCausalLM (no transformers package needed): embedding;
per layer x + o_proj(attn(rope(q_proj(rms(x))), rope(k_proj(rms(x))), v_proj(rms(x)))) with GQA
(repeated KV heads), causal softmax attention scaled by 1/sqrt(head_dim) and rotate-half RoPE
(inv_freq_i = theta^(-2i/head_dim), positions restarting at 0 per sequence), then
h + down_proj(silu(gate_proj(rms(h))) * up_proj(rms(h))); final RMSNorm; lm_head (or the tied
embedding). RMSNorm: x * rsqrt(mean(x^2) + eps) * w. The rotary angles are computed in float64
here (transformers computes cos/sin in float32 even for a float64 model; the exact definition is
used so the f64 comparison is meaningful).

Run from the repository root: /usr/bin/python3 scripts/torch-parity.py  (npm run parity:torch).
Deterministic: a fixed seed, a fixed parameter order, fixed sequences.
"""
import json
import math
import os
import struct

import torch

SEED = 20240603
STD = 0.2
OUT = os.path.join('test', 'fixtures', 'torch-parity')

D, F, L, H, HKV, DH, V = 32, 48, 2, 4, 2, 8, 97
EPS, THETA = 1e-6, 10000.0

SEQUENCES = [
    [3],
    [5, 9, 11, 2, 60],
    [(i * 13 + 7) % 97 for i in range(17)],
]


def config_json(tie):
    return {
        'architectures': ['LlamaForCausalLM'],
        'model_type': 'llama',
        'hidden_size': D,
        'intermediate_size': F,
        'num_hidden_layers': L,
        'num_attention_heads': H,
        'num_key_value_heads': HKV,
        'head_dim': DH,
        'rms_norm_eps': EPS,
        'rope_theta': THETA,
        'vocab_size': V,
        'tie_word_embeddings': tie,
        'max_position_embeddings': 64,
        'bos_token_id': 1,
        'eos_token_id': 2,
        'hidden_act': 'silu',
    }


def parameter_shapes(tie):
    shapes = [('model.embed_tokens.weight', [V, D])]
    for i in range(L):
        p = 'model.layers.%d' % i
        shapes += [
            (p + '.input_layernorm.weight', [D]),
            (p + '.self_attn.q_proj.weight', [H * DH, D]),
            (p + '.self_attn.k_proj.weight', [HKV * DH, D]),
            (p + '.self_attn.v_proj.weight', [HKV * DH, D]),
            (p + '.self_attn.o_proj.weight', [D, H * DH]),
            (p + '.post_attention_layernorm.weight', [D]),
            (p + '.mlp.gate_proj.weight', [F, D]),
            (p + '.mlp.up_proj.weight', [F, D]),
            (p + '.mlp.down_proj.weight', [D, F]),
        ]
    shapes.append(('model.norm.weight', [D]))
    if not tie:
        shapes.append(('lm_head.weight', [V, D]))
    return shapes


def random_weights(tie, gen):
    """F32 weights: normal(0, STD) matrices; norm weights 1 + normal(0, STD) (away from the trivial 1)."""
    params = {}
    for name, shape in parameter_shapes(tie):
        x = torch.randn(shape, generator=gen, dtype=torch.float32) * STD
        if name.endswith('norm.weight'):
            x = x + 1.0
        params[name] = x.to(torch.float32).contiguous()
    return params


def write_safetensors(path, params):
    names = sorted(params)
    header = {}
    offset = 0
    blobs = []
    for n in names:
        t = params[n]
        assert t.dtype == torch.float32
        data = t.contiguous().numpy().astype('<f4').tobytes()
        header[n] = {'dtype': 'F32', 'shape': list(t.shape), 'data_offsets': [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    header['__metadata__'] = {'format': 'pt'}
    h = json.dumps(header, separators=(',', ':')).encode('utf-8')
    h += b' ' * ((-len(h)) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def rms_norm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope(x, n):
    """x [heads, n, DH]; positions 0..n-1."""
    inv_freq = 1.0 / (THETA ** (torch.arange(0, DH, 2, dtype=torch.float64) / DH))
    pos = torch.arange(n, dtype=torch.float64)
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return x * emb.cos() + rotate_half(x) * emb.sin()


def forward(p, tokens, tie):
    """Logits [n, V] of one sequence (float64 parameters p)."""
    n = len(tokens)
    x = p['model.embed_tokens.weight'][torch.tensor(tokens, dtype=torch.long)]
    mask = torch.full((n, n), float('-inf'), dtype=torch.float64).triu(1)
    for i in range(L):
        q_ = lambda s: p['model.layers.%d.%s' % (i, s)]
        xn = rms_norm(x, q_('input_layernorm.weight'))
        q = (xn @ q_('self_attn.q_proj.weight').T).view(n, H, DH).transpose(0, 1)
        k = (xn @ q_('self_attn.k_proj.weight').T).view(n, HKV, DH).transpose(0, 1)
        v = (xn @ q_('self_attn.v_proj.weight').T).view(n, HKV, DH).transpose(0, 1)
        q, k = rope(q, n), rope(k, n)
        k = k.repeat_interleave(H // HKV, dim=0)
        v = v.repeat_interleave(H // HKV, dim=0)
        scores = q @ k.transpose(-1, -2) / math.sqrt(DH) + mask
        attn = torch.softmax(scores, dim=-1) @ v  # [H, n, DH]
        attn = attn.transpose(0, 1).reshape(n, H * DH)
        x = x + attn @ q_('self_attn.o_proj.weight').T
        hn = rms_norm(x, q_('post_attention_layernorm.weight'))
        gate = hn @ q_('mlp.gate_proj.weight').T
        up = hn @ q_('mlp.up_proj.weight').T
        x = x + (torch.nn.functional.silu(gate) * up) @ q_('mlp.down_proj.weight').T
    x = rms_norm(x, p['model.norm.weight'])
    head = p['model.embed_tokens.weight'] if tie else p['lm_head.weight']
    return x @ head.T


def num(x):
    # repr of a float64 is the shortest decimal that reads back as the same double (<= 17 significant digits).
    return float('%.17g' % x)


def make(tie, gen):
    folder = os.path.join(OUT, 'tied' if tie else 'untied')
    os.makedirs(folder, exist_ok=True)
    w32 = random_weights(tie, gen)
    with open(os.path.join(folder, 'config.json'), 'w') as f:
        json.dump(config_json(tie), f, indent=2)
        f.write('\n')
    write_safetensors(os.path.join(folder, 'model.safetensors'), w32)

    p = {n: t.to(torch.float64).requires_grad_(True) for n, t in w32.items()}
    logits = [forward(p, s, tie) for s in SEQUENCES]
    total = torch.zeros((), dtype=torch.float64)
    count = 0
    for s, lg in zip(SEQUENCES, logits):
        if len(s) < 2:
            continue
        targets = torch.tensor(s[1:], dtype=torch.long)
        total = total + torch.nn.functional.cross_entropy(lg[:-1], targets, reduction='sum')
        count += len(s) - 1
    loss = total / count
    loss.backward()

    expected = {
        'torch': torch.__version__,
        'seed': SEED,
        'std': STD,
        'sequences': SEQUENCES,
        'logits': [[[num(v) for v in row] for row in lg.detach().tolist()] for lg in logits],
        'loss': num(loss.item()),
        'grads': {n: [num(v) for v in p[n].grad.flatten().tolist()] for n, _ in parameter_shapes(tie)},
    }
    with open(os.path.join(folder, 'expected.json'), 'w') as f:
        json.dump(expected, f, separators=(',', ':'))
        f.write('\n')
    print('%s: loss %.17g over %d tokens, %d parameters' % (folder, loss.item(), count, sum(t.numel() for t in w32.values())))


def main():
    print('torch', torch.__version__)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(SEED)
    make(False, gen)
    make(True, gen)


if __name__ == '__main__':
    main()
