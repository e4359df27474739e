#!/usr/bin/env python3
"""Goldens for the two mixture-of-experts families in both decoders: random tiny Qwen3-MoE and gpt-oss
checkpoints as transformers saves them, their logits, and LoRA training through PEFT.

Writes tests/goldens/inference/<name>/ (model.safetensors + config.json + logits.json) for
  tiny-qwen3moe       Qwen3MoeForCausalLM: 4 experts, top-2, norm_topk_prob, explicit head_dim, q/k
                      norms; per-expert tensors, as transformers saves them
  tiny-gptoss         GptOssForCausalLM: 4 experts, top-2, sinks, q/k/v/o biases, router and expert
                      biases, sliding window 4 on alternate layers, YaRN (the family's defaults);
                      dense experts (gate_up [E, hidden, 2n] interleaved, as transformers saves a model
                      it did not quantise). Expert weights are MXFP4-representable (see below).
  tiny-gptoss-mxfp4   the same model with its experts stored as released checkpoints store them
                      (`_blocks` / `_scales`, U8), so both layouts must give the same logits
  tiny-qwen3moe-mixed Qwen3-MoE with dense MLP layers among the expert ones: 3 layers,
                      mlp_only_layers [1] (dense, intermediate_size 48), the others experts
and tests/goldens/lora_training/tiny_qwen3moe.json, tiny_gptoss.json: PEFT LoRA on q, k, v, o
(target_modules) and on both expert parameters (target_parameters mlp.experts.gate_up_proj and
mlp.experts.down_proj, PEFT's nested ParamWrapper layout: A [experts*r, in], B [out, r*experts]),
every factor overwritten with lora_training.py's deterministic init_values (k counts layers
outermost, then q, k, v, o, gate_up, down; A before B); the loss of two documents, the gradient of
every LoRA tensor and the losses of 5 AdamW steps (lora_training.py's `run`); tiny_qwen3moe_mixed.json
the same (its dense layer has attention adapters only: for model_type qwen3_moe, PEFT 0.21 rewrites
target_modules gate_proj/up_proj/down_proj into its fused-expert conversion, so a dense layer's
MLP cannot be targeted there).

Vocabulary 256 (random ids) rather than the real tokenizers': a 150-200k-row embedding would make
each checkpoint megabytes, and the numerics do not depend on the vocabulary.
MXFP4: every gpt-oss expert weight is first rounded to MXFP4 (per 32 inputs, the exponent
floor(log2(max|w| / 6)), codes the nearest e2m1 value, ties to even code), so the dense file holds
exactly the values the blocks encode.

Usage: .venv/bin/python tools/goldens/moe_models.py [name ...]   (default: every model)
"""
import json
import math
import os
import sys

import numpy as np
import torch
import transformers
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lora_training  # noqa: E402  (init_values, document, run, write)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INFERENCE = os.path.join(ROOT, "tests", "goldens", "inference")
E2M1 = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])

FAMILIES = {
    "tiny-qwen3moe": (transformers.Qwen3MoeConfig, dict(
        moe_intermediate_size=32, num_experts=4, num_experts_per_tok=2, norm_topk_prob=True, head_dim=16,
        tie_word_embeddings=False)),
    "tiny-gptoss": (transformers.GptOssConfig, dict(
        intermediate_size=32, num_local_experts=4, num_experts_per_tok=2, head_dim=16, sliding_window=4,
        tie_word_embeddings=False)),
    "tiny-qwen3moe-mixed": (transformers.Qwen3MoeConfig, dict(
        num_hidden_layers=3, mlp_only_layers=[1], intermediate_size=48, moe_intermediate_size=32, num_experts=4,
        num_experts_per_tok=2, norm_topk_prob=True, head_dim=16, tie_word_embeddings=False)),
}


def mxfp4_round(weight):
    """Rounds [..., in] weights to MXFP4 along `in` (blocks of 32); returns (values, codes, scales)."""
    blocks = weight.reshape(*weight.shape[:-1], -1, 32)
    top = blocks.abs().amax(dim=-1, keepdim=True).clamp_min(1e-30)
    exponent = torch.floor(torch.log2(top / 6.0)).clamp(-127, 127)
    scaled = blocks / torch.exp2(exponent)
    magnitude = (scaled.abs().unsqueeze(-1) - E2M1).abs().argmin(dim=-1)  # nearest, lowest code on ties
    codes = magnitude + 8 * (scaled < 0)
    values = torch.where(scaled < 0, -E2M1[magnitude], E2M1[magnitude]) * torch.exp2(exponent)
    return values.reshape(weight.shape), codes.to(torch.uint8), (exponent + 127).squeeze(-1).to(torch.uint8)


def hf_blocks(codes):
    """[..., blocks, 32] codes as HF stores them: byte j holds elements 2j (low) and 2j+1 (high)."""
    return (codes[..., 0::2] | (codes[..., 1::2] << 4)).to(torch.uint8)


def tiny_model(name, config_class, overrides, seed):
    torch.manual_seed(seed)
    settings = dict(vocab_size=256, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                    rms_norm_eps=1e-5, initializer_range=0.2, bos_token_id=1, eos_token_id=2)
    settings.update(overrides)
    config = config_class(**settings)
    model = transformers.AutoModelForCausalLM.from_config(config).to(torch.float32)
    blocks = {}
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if param_name.endswith("norm.weight"):
                param.copy_(1.0 + 0.3 * torch.randn_like(param))
            elif param_name.endswith("bias") or param_name.endswith("sinks"):
                param.copy_(0.2 * torch.randn_like(param))
            elif ".experts." in param_name:
                param.copy_(0.2 * torch.randn_like(param))
                if name == "tiny-gptoss":
                    # [E, in, out] -> rows are outputs: round along `in`.
                    values, codes, scales = mxfp4_round(param.transpose(1, 2))
                    param.copy_(values.transpose(1, 2))
                    blocks[param_name] = (hf_blocks(codes), scales)
            elif param_name.endswith("router.weight") or param_name.endswith("mlp.gate.weight"):
                param.copy_(torch.randn_like(param))  # routers spread, so top-k is never a near tie
    model.eval()
    directory = os.path.join(INFERENCE, name)
    model.save_pretrained(directory, safe_serialization=True)
    os.remove(os.path.join(directory, "generation_config.json"))
    if blocks:
        write_mxfp4_variant(directory, blocks)
    ids = [int(i) for i in torch.randint(0, config.vocab_size, (24,), generator=torch.Generator().manual_seed(7))]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    greedy = model.generate(torch.tensor([ids[:6]]), max_new_tokens=10, do_sample=False, eos_token_id=None,
                            pad_token_id=0)[0, 6:].tolist()
    lora_training.write(os.path.join(INFERENCE, name, "logits.json"),
          {"ids": ids, "logits": [[round(v, 6) for v in r.tolist()] for r in logits],
           "greedy_prompt": ids[:6], "greedy": greedy})


def write_mxfp4_variant(directory, blocks):
    """tiny-gptoss-mxfp4: the experts' `<p>` replaced by `<p>_blocks` [E, out, in/32, 16] and `<p>_scales`."""
    tensors = load_file(os.path.join(directory, "model.safetensors"))
    for key, (codes, scales) in blocks.items():
        del tensors[key]
        tensors[key + "_blocks"] = codes.contiguous()
        tensors[key + "_scales"] = scales.contiguous()
    target = directory + "-mxfp4"
    os.makedirs(target, exist_ok=True)
    save_file(tensors, os.path.join(target, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    config["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": [
        "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}
    with open(os.path.join(target, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def lora_golden(name):
    import peft
    directory = os.path.join(INFERENCE, name)
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    rank, alpha = 4, 8.0
    dense = list(getattr(model.config, "mlp_only_layers", None) or [])
    config = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, bias="none",
                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                             target_parameters=["mlp.experts.gate_up_proj", "mlp.experts.down_proj"])
    model = peft.get_peft_model(model, config)
    tensors = {}
    k = 0
    with torch.no_grad():
        for layer in range(model.config.num_hidden_layers):
            block = model.base_model.model.model.layers[layer]
            modules = [("q", block.self_attn.q_proj), ("k", block.self_attn.k_proj), ("v", block.self_attn.v_proj),
                       ("o", block.self_attn.o_proj)]
            if layer not in dense:
                outer = block.mlp.experts
                assert outer.parameter_name == "down_proj" and outer.base_layer.parameter_name == "gate_up_proj"
                modules += [("gate_up", outer.base_layer), ("down", outer)]
            for module, wrapper in modules:
                a = wrapper.lora_A["default"].weight
                b = wrapper.lora_B["default"].weight
                a.copy_(torch.from_numpy(lora_training.init_values(k, a.numel(), 1.0 / math.sqrt(a.shape[1]))).view_as(a))
                b.copy_(torch.from_numpy(lora_training.init_values(k + 1, b.numel(), 0.05)).view_as(b))
                tensors[f"layers.{layer}.{module}.A"] = a
                tensors[f"layers.{layer}.{module}.B"] = b
                k += 2
    gen = torch.Generator().manual_seed(11)
    documents = [lora_training.document([int(t) for t in torch.randint(0, 256, (12,), generator=gen)], ignore_first=3),
                 lora_training.document([int(t) for t in torch.randint(0, 256, (9,), generator=gen)])]
    record = lora_training.run(model, tensors, documents, lr=1e-2, weight_decay=0.1, full_grads=None)
    del record["grad_norms"]
    record.update({"rank": rank, "alpha": alpha, "documents": documents,
                   "shapes": {n: list(t.shape) for n, t in tensors.items()},
                   "peft_names": {n: pn for pn, p in model.named_parameters() for n, t in tensors.items() if p is t}})
    lora_training.write(name.replace("-", "_") + ".json", record)


def main():
    torch.set_num_threads(1)
    wanted = sys.argv[1:] or list(FAMILIES)
    for seed, (name, (config_class, overrides)) in enumerate(FAMILIES.items()):
        if name in wanted:
            tiny_model(name, config_class, overrides, 4321 + seed)
            lora_golden(name)


if __name__ == "__main__":
    main()
