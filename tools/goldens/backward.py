#!/usr/bin/env python3
"""Writes tests/goldens/backward/llama_block.json: torch's gradients through one transformers
LlamaDecoderLayer (eager attention), the reference for chaining the hand-written backward passes
of kernels/{norm,matmul,rope,attention,activations}.h in tests/kernels/test_block_backward.cpp.

The block: RMSNorm -> q/k/v projections -> RoPE (HF rotate_half) -> causal GQA attention (6 query
heads on 2 kv heads, i.e. 3 per kv head) -> o projection -> residual -> RMSNorm -> SwiGLU MLP ->
residual. One row packs two documents (7 + 5 tokens): positions restart at 0 for the second, and
a 4D additive mask keeps each query inside its own document and causal. Weights and inputs are
random float32 values; the layer runs in float64 on them, so the saved gradients are the exact
answer up to double rounding and the C++ tolerance measures only the C++ code's fp32 error.
loss = sum(out * r) for a saved random r, so d loss / d out = r.

Saved (row-major, HF layouts: projection weights [out x in]; GGUF's permuted q/k rows are built
by the C++ test itself): config, segments, positions, x, r, out, every weight, and d loss / d of x
and of every weight.

Re-runnable: fixed seed. Usage: .venv/bin/python tools/goldens/backward.py
"""
import json
from pathlib import Path

import torch
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRotaryEmbedding

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "goldens" / "backward"

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, FF = 48, 6, 2, 8, 64
EPS, THETA = 1e-5, 10000.0
SEGMENTS = [0] * 7 + [1] * 5


def floats(t):
    # 9 significant digits: exact for the float32 inputs, and 1e-9 relative for the float64
    # gradients, far below the C++ side's fp32 tolerance; keeps the file small.
    return [float(f"{v:.9g}") for v in t.detach().reshape(-1).tolist()]


def main():
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=HIDDEN, intermediate_size=FF, num_attention_heads=HEADS,
                         num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM, rms_norm_eps=EPS, rope_theta=THETA,
                         hidden_act="silu", attention_bias=False, mlp_bias=False, max_position_embeddings=64)
    config._attn_implementation = "eager"
    layer = LlamaDecoderLayer(config, layer_idx=0).double()
    names = {
        "attn_norm": layer.input_layernorm.weight, "q": layer.self_attn.q_proj.weight,
        "k": layer.self_attn.k_proj.weight, "v": layer.self_attn.v_proj.weight, "o": layer.self_attn.o_proj.weight,
        "ffn_norm": layer.post_attention_layernorm.weight, "gate": layer.mlp.gate_proj.weight,
        "up": layer.mlp.up_proj.weight, "down": layer.mlp.down_proj.weight,
    }
    with torch.no_grad():
        for name, p in names.items():
            # float32 values (the C++ side reads them as float32); norms near 1, projections ~ 1/sqrt(in).
            if name.endswith("norm"):
                value = 1.0 + 0.2 * torch.randn(p.shape)
            else:
                value = torch.randn(p.shape) / p.shape[1] ** 0.5
            p.copy_(value.float().double())

    tokens = len(SEGMENTS)
    x = torch.randn(1, tokens, HIDDEN).float().double().requires_grad_(True)
    r = torch.randn(1, tokens, HIDDEN).float().double()
    positions = []
    for t, s in enumerate(SEGMENTS):
        positions.append(0 if t == 0 or SEGMENTS[t - 1] != s else positions[-1] + 1)
    position_ids = torch.tensor([positions])
    seg = torch.tensor(SEGMENTS)
    causal = torch.arange(tokens)[None, :] <= torch.arange(tokens)[:, None]
    visible = causal & (seg[None, :] == seg[:, None])
    mask = torch.zeros(1, 1, tokens, tokens, dtype=torch.float64)
    mask[0, 0][~visible] = torch.finfo(torch.float64).min

    rotary = LlamaRotaryEmbedding(config).double()
    cos, sin = rotary(x, position_ids)
    out = layer(x, attention_mask=mask, position_ids=position_ids, position_embeddings=(cos, sin))
    if isinstance(out, tuple):
        out = out[0]
    loss = (out * r).sum()
    loss.backward()

    golden = {
        "config": {"hidden": HIDDEN, "heads": HEADS, "kv_heads": KV_HEADS, "head_dim": HEAD_DIM, "ff": FF,
                   "eps": EPS, "theta": THETA, "tokens": tokens},
        "segments": SEGMENTS, "positions": positions,
        "x": floats(x), "r": floats(r), "out": floats(out), "loss": float(loss.detach()),
        "weights": {name: floats(p) for name, p in names.items()},
        "grad_x": floats(x.grad),
        "grads": {name: floats(p.grad) for name, p in names.items()},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "llama_block.json"
    path.write_text(json.dumps(golden, separators=(",", ":")) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
