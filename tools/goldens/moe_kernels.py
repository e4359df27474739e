#!/usr/bin/env python3
"""Writes tests/goldens/moe_kernels/*.json: transformers/PEFT references for the mixture-of-experts
kernels (kernels/moe.h), attention sinks (kernels/attention.h), gpt-oss's clamped SwiGLU
(kernels/activations.h) and YaRN rotary frequencies (model/rope_frequencies.h).

- moe_block.json: one MoE MLP block of each family, transformers' own modules (Qwen3MoeSparseMoeBlock
  with norm_topk_prob off and on, GptOssMLP) in float64, with PEFT LoRA on both expert parameters
  (target_parameters=["mlp.experts.gate_up_proj", "mlp.experts.down_proj"], so PEFT's nested
  ParamWrapper layout: A [experts*r, in], B [out, r*experts]) with random nonzero A and B. Saved: the
  block's tensors as transformers holds them (Qwen3-MoE fused gate_up [E, 2n, hidden] with the gate
  half first, gpt-oss gate_up [E, hidden, 2n] interleaved with biases), x, dy, the router's choices
  and weights, y, and the gradients of sum(y * dy) w.r.t. x and every LoRA factor. The routers'
  softmax runs in float32 inside transformers even for a float64 module (Qwen3-MoE casts), so the
  references carry float32 rounding there.
- sinks_attention.json: gpt-oss's eager_attention_forward (sink logits in the softmax, the sliding
  window as an additive mask) in float64, output and d(sum(out * dout))/d q, k, v.
- clamped_swiglu.json: GptOssExperts._apply_gate on an interleaved gate_up with values beyond the
  clamps, output and gradient, float64.
- hf_mxfp4.json: random gpt-oss MXFP4 `_blocks`/`_scales` (HF's layout) and their values from
  transformers' convert_moe_packed_tensors in float32, transposed back to [experts, rows, cols]
  (exact: every value is an e2m1 code times a power of two).
- yarn.json: transformers' _compute_yarn_parameters for a gpt-oss config (truncate false) and a
  Qwen-style one (truncate true), float32 inverse frequencies and the attention factor.

Re-runnable: fixed seeds, so the files only change when the libraries' semantics change.
Usage: .venv/bin/python tools/goldens/moe_kernels.py
"""
import json
import types
from pathlib import Path

import numpy
import peft
import torch
import transformers
from transformers.integrations.mxfp4 import convert_moe_packed_tensors
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.models.gpt_oss import modeling_gpt_oss
from transformers.models.qwen3_moe import modeling_qwen3_moe

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "goldens" / "moe_kernels"


def floats(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def inputs(t):
    """float32-exact values in their shortest float32 spelling (read back as float, they are exact)."""
    return [json.loads(numpy.format_float_positional(numpy.float32(v), unique=True, trim="0"))
            for v in t.detach().reshape(-1).tolist()]


def f32(*shape, gen, scale=1.0):
    """Random values exactly representable in float32 (the C++ side reads the inputs as float), as float64."""
    return (torch.randn(*shape, generator=gen) * scale).float().double()


def wrap(module, name):
    """A one-child container, so that PEFT finds the block under `name` as in a real model."""
    holder = torch.nn.Module()
    setattr(holder, name, module)
    return holder


def lora_factors(layer):
    return layer.lora_A["default"].weight, layer.lora_B["default"].weight


def moe_case(gen, family, norm_topk_prob=False):
    tokens, hidden, inter, experts, top_k, rank, alpha = 9, 16, 8, 5, 2, 3, 6
    if family == "qwen3_moe":
        config = transformers.Qwen3MoeConfig(hidden_size=hidden, moe_intermediate_size=inter, num_experts=experts,
                                             num_experts_per_tok=top_k, norm_topk_prob=norm_topk_prob)
        block = modeling_qwen3_moe.Qwen3MoeSparseMoeBlock(config)
        router, experts_module = block.gate, block.experts
    else:
        top_k = 3
        config = transformers.GptOssConfig(hidden_size=hidden, intermediate_size=inter, num_local_experts=experts,
                                           num_experts_per_tok=top_k)
        block = modeling_gpt_oss.GptOssMLP(config)
        router, experts_module = block.router, block.experts
    # Weights large enough that gpt-oss's clamps cut some gate/up values.
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(f32(*p.shape, gen=gen, scale=0.9 if family == "gpt_oss" else 0.4))
    model = wrap(wrap(block, "mlp"), "layer").double()
    config_lora = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=[],
                                  target_parameters=["mlp.experts.gate_up_proj", "mlp.experts.down_proj"])
    model = peft.get_peft_model(model, config_lora)
    outer = model.base_model.model.layer.mlp.experts  # wraps down_proj around the gate_up wrapper
    inner = outer.base_layer
    assert inner.parameter_name == "gate_up_proj" and outer.parameter_name == "down_proj"
    with torch.no_grad():
        for layer in (inner, outer):
            for factor in lora_factors(layer):
                factor.copy_(f32(*factor.shape, gen=gen, scale=0.3))
    x = f32(1, tokens, hidden, gen=gen)
    dy = f32(1, tokens, hidden, gen=gen)
    xd = x.clone().requires_grad_(True)
    flat = xd.reshape(-1, hidden)
    routed = router(flat)
    chosen, weights = routed[2], routed[1]
    y = model.base_model.model.layer.mlp(xd)
    y = y[0] if isinstance(y, tuple) else y
    (y * dy).sum().backward()
    base = model.base_model.model.layer.mlp
    tensors = {"router": inputs(router.weight)}
    if family == "gpt_oss":
        tensors["router_bias"] = inputs(router.bias)
        tensors["gate_up_bias"] = inputs(base.experts.base_layer.base_layer.gate_up_proj_bias)
        tensors["down_bias"] = inputs(base.experts.base_layer.base_layer.down_proj_bias)
    stack = base.experts.base_layer.base_layer
    tensors["gate_up"] = inputs(stack.gate_up_proj)
    tensors["down"] = inputs(stack.down_proj)
    a_gate_up, b_gate_up = lora_factors(inner)
    a_down, b_down = lora_factors(outer)
    return {
        "family": family, "tokens": tokens, "hidden": hidden, "intermediate": inter, "experts": experts,
        "top_k": top_k, "norm_topk_prob": norm_topk_prob, "rank": rank, "alpha": alpha,
        "scaling": float(inner.scaling["default"]),
        "gate_up_shape": list(stack.gate_up_proj.shape), "down_shape": list(stack.down_proj.shape),
        "lora_gate_up_a_shape": list(a_gate_up.shape), "lora_gate_up_b_shape": list(b_gate_up.shape),
        "lora_down_a_shape": list(a_down.shape), "lora_down_b_shape": list(b_down.shape),
        **tensors,
        "lora_gate_up_a": inputs(a_gate_up), "lora_gate_up_b": inputs(b_gate_up),
        "lora_down_a": inputs(a_down), "lora_down_b": inputs(b_down),
        "x": inputs(x), "dy": inputs(dy),
        "chosen": chosen.reshape(-1).tolist(), "weights": floats(weights),
        "y": floats(y),
        "dx": floats(xd.grad),
        "d_lora_gate_up_a": floats(a_gate_up.grad), "d_lora_gate_up_b": floats(b_gate_up.grad),
        "d_lora_down_a": floats(a_down.grad), "d_lora_down_b": floats(b_down.grad),
    }


def sinks_case(gen):
    tokens, heads, kv_heads, head_dim, window = 11, 4, 2, 8, 4
    q = f32(1, heads, tokens, head_dim, gen=gen)
    k = f32(1, kv_heads, tokens, head_dim, gen=gen)
    v = f32(1, kv_heads, tokens, head_dim, gen=gen)
    sinks = f32(heads, gen=gen) + 1.0
    dout = f32(1, tokens, heads, head_dim, gen=gen)
    cases = []
    for w in (0, window):
        position = torch.arange(tokens)
        visible = position[None, :] <= position[:, None]
        if w:
            visible &= position[None, :] > position[:, None] - w
        mask = torch.zeros(tokens, tokens, dtype=torch.float64).masked_fill(~visible, float("-inf"))[None, None]
        module = types.SimpleNamespace(sinks=sinks, num_key_value_groups=heads // kv_heads, training=False)
        qd, kd, vd = (t.clone().requires_grad_(True) for t in (q, k, v))
        out, _ = modeling_gpt_oss.eager_attention_forward(module, qd, kd, vd, mask, scaling=head_dim**-0.5)
        (out * dout).sum().backward()
        cases.append({"window": w, "out": floats(out), "dq": floats(qd.grad.transpose(1, 2)),
                      "dk": floats(kd.grad), "dv": floats(vd.grad)})
    return {"tokens": tokens, "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim,
            "scale": head_dim**-0.5, "q": inputs(q.transpose(1, 2)), "k": inputs(k), "v": inputs(v),
            "sinks": inputs(sinks), "dout": inputs(dout), "cases": cases,
            "layouts": "q, dq, out, dout [tokens, heads, head_dim]; k, v, dk, dv [kv_heads, tokens, head_dim]"}


def clamped_swiglu_case(gen):
    config = transformers.GptOssConfig(hidden_size=8, intermediate_size=40, num_local_experts=1)
    experts = modeling_gpt_oss.GptOssExperts(config)
    gate_up = (torch.rand(3, 80, generator=gen) * 20 - 10).double().requires_grad_(True)
    dout = f32(3, 40, gen=gen)
    out = experts._apply_gate(gate_up)
    (out * dout).sum().backward()
    return {"rows": 3, "width": 40, "alpha": experts.alpha, "limit": experts.limit, "gate_up": inputs(gate_up),
            "dout": inputs(dout), "out": floats(out), "dgate_up": floats(gate_up.grad)}


def hf_mxfp4_case(gen):
    experts, rows, cols = 2, 6, 64
    blocks = torch.randint(0, 256, (experts, rows, cols // 32, 16), generator=gen, dtype=torch.uint8)
    scales = torch.randint(118, 136, (experts, rows, cols // 32), generator=gen, dtype=torch.uint8)
    values = convert_moe_packed_tensors(blocks, scales, dtype=torch.float32).transpose(1, 2)
    return {"experts": experts, "rows": rows, "cols": cols, "blocks": blocks.reshape(-1).tolist(),
            "scales": scales.reshape(-1).tolist(), "values": floats(values)}


def yarn_cases():
    cases = []
    for name, config in [
        ("gpt_oss", transformers.GptOssConfig(head_dim=64, num_attention_heads=64)),
        ("truncated", transformers.Qwen3Config(head_dim=128, rope_parameters={
            "rope_type": "yarn", "rope_theta": 1000000.0, "factor": 4.0, "original_max_position_embeddings": 32768})),
        ("attention_factor", transformers.Qwen3Config(head_dim=64, rope_parameters={
            "rope_type": "yarn", "rope_theta": 10000.0, "factor": 8.0, "original_max_position_embeddings": 2048,
            "beta_fast": 16.0, "beta_slow": 2.0, "attention_factor": 1.25})),
    ]:
        inv_freq, attention_factor = ROPE_INIT_FUNCTIONS["yarn"](config)
        params = config.rope_parameters
        cases.append({"name": name, "head_dim": config.head_dim, "rope_theta": params["rope_theta"],
                      "factor": params["factor"],
                      "original_max_position_embeddings": params["original_max_position_embeddings"],
                      "beta_fast": params.get("beta_fast") or 32.0, "beta_slow": params.get("beta_slow") or 1.0,
                      "truncate": params.get("truncate", True), "attention_factor_given": params.get("attention_factor"),
                      "inv_freq": floats(inv_freq), "attention_factor": float(attention_factor)})
    return cases


def write(name, payload):
    payload = {"generated_by": "tools/goldens/moe_kernels.py",
               "versions": {"torch": torch.__version__, "peft": peft.__version__,
                            "transformers": transformers.__version__}, **payload}
    (OUT / name).write_text(json.dumps(payload, indent=None, separators=(",", ":")) + "\n")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(20261205)
    write("moe_block.json", {"cases": [moe_case(gen, "qwen3_moe", False), moe_case(gen, "qwen3_moe", True),
                                       moe_case(gen, "gpt_oss")]})
    write("sinks_attention.json", sinks_case(gen))
    write("clamped_swiglu.json", clamped_swiglu_case(gen))
    write("yarn.json", {"cases": yarn_cases()})
    write("hf_mxfp4.json", hf_mxfp4_case(gen))


if __name__ == "__main__":
    main()
