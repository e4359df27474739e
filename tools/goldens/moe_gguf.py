#!/usr/bin/env python3
"""Writes tests/goldens/inference/tiny-qwen3moe.gguf and tiny-gptoss.gguf: the tiny checkpoints of
moe_models.py as llama.cpp's convert_hf_to_gguf.py lays them out (F32; gpt-oss's experts MXFP4), so
that the GGUF and safetensors paths can be checked to bind the same model.

What follows llama.cpp (facts of its converter and llama-arch, not its code):
- keys `<arch>.{vocab_size, context_length, embedding_length, feed_forward_length, block_count,
  attention.head_count, attention.head_count_kv, attention.key_length, attention.value_length,
  attention.layer_norm_rms_epsilon, rope.freq_base, expert_count, expert_used_count,
  expert_feed_forward_length}`, gpt-oss also `attention.sliding_window` and the YaRN
  `rope.scaling.{type, factor, original_context_length}`; arch names `qwen3moe`, `gpt-oss`;
- tensors token_embd, output_norm, output, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output,
  attn_q_norm, attn_k_norm (qwen3moe), attn_sinks (".weight" appended), ffn_norm (qwen3moe) or
  post_attention_norm (gpt-oss: its pre-MLP norm), ffn_gate_inp (router, + bias for gpt-oss),
  ffn_{gate,up,down}_exps [experts, out, in] (+ biases for gpt-oss)};
- gpt-oss's gate_up is split into gate (even rows) and up (odd rows); MXFP4 blocks are repacked from
  HF's adjacent-nibble order into ggml's (byte j: element j low, j + 16 high) behind the E8M0 byte;
- q/k rows are not permuted (only arch `llama` permutes).

Usage: .venv/bin/python tools/goldens/moe_gguf.py
"""
import json
import os

import gguf
import numpy as np
from safetensors.numpy import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INFERENCE = os.path.join(ROOT, "tests", "goldens", "inference")


def ggml_mxfp4(blocks, scales):
    """HF [E, R, B, 16] codes + [E, R, B] exponents -> ggml bytes [E, R, B * 17]."""
    low, high = blocks & 0x0F, blocks >> 4
    codes = np.stack([low, high], axis=-1).reshape(*blocks.shape[:-1], 32)  # element i = nibble of byte i // 2
    packed = (codes[..., :16] | (codes[..., 16:] << 4)).astype(np.uint8)
    out = np.concatenate([scales[..., None], packed], axis=-1)
    return out.reshape(*blocks.shape[:2], -1)


def convert(name, arch, source):
    directory = os.path.join(INFERENCE, source)
    tensors = load_file(os.path.join(directory, "model.safetensors"))
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    writer = gguf.GGUFWriter(os.path.join(INFERENCE, name + ".gguf"), arch)
    writer.add_uint32(f"{arch}.vocab_size", config["vocab_size"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_key_length(config["head_dim"])
    writer.add_value_length(config["head_dim"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    rope = config["rope_parameters"]
    writer.add_rope_freq_base(rope["rope_theta"])
    experts = config.get("num_local_experts", config.get("num_experts"))  # transformers 5 writes the former
    writer.add_expert_count(experts)
    writer.add_expert_used_count(config["num_experts_per_tok"])
    if arch == "gpt-oss":
        writer.add_expert_feed_forward_length(config["intermediate_size"])
        writer.add_sliding_window(config["sliding_window"])
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(rope["factor"])
        writer.add_rope_scaling_orig_ctx_len(rope["original_max_position_embeddings"])
    else:
        writer.add_expert_feed_forward_length(config["moe_intermediate_size"])

    def add(tensor_name, array):
        writer.add_tensor(tensor_name, np.ascontiguousarray(array))

    add("token_embd.weight", tensors["model.embed_tokens.weight"])
    add("output_norm.weight", tensors["model.norm.weight"])
    add("output.weight", tensors["lm_head.weight"])
    per_layer = {"input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
                 "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
                 "self_attn.o_proj.weight": "attn_output.weight", "self_attn.q_proj.bias": "attn_q.bias",
                 "self_attn.k_proj.bias": "attn_k.bias", "self_attn.v_proj.bias": "attn_v.bias",
                 "self_attn.o_proj.bias": "attn_output.bias", "self_attn.q_norm.weight": "attn_q_norm.weight",
                 "self_attn.k_norm.weight": "attn_k_norm.weight", "self_attn.sinks": "attn_sinks.weight",
                 "mlp.gate.weight": "ffn_gate_inp.weight", "mlp.router.weight": "ffn_gate_inp.weight",
                 "mlp.router.bias": "ffn_gate_inp.bias", "mlp.experts.down_proj_bias": "ffn_down_exps.bias",
                 "post_attention_layernorm.weight":
                     "post_attention_norm.weight" if arch == "gpt-oss" else "ffn_norm.weight"}
    for layer in range(config["num_hidden_layers"]):
        hf, blk = f"model.layers.{layer}.", f"blk.{layer}."
        for key, target in per_layer.items():
            if hf + key in tensors:
                add(blk + target, tensors[hf + key])
        if arch == "qwen3moe":
            for proj in ("gate", "up", "down"):
                add(blk + f"ffn_{proj}_exps.weight",
                    np.stack([tensors[hf + f"mlp.experts.{e}.{proj}_proj.weight"] for e in range(experts)]))
            continue
        bias = tensors[hf + "mlp.experts.gate_up_proj_bias"]
        add(blk + "ffn_gate_exps.bias", bias[:, 0::2])
        add(blk + "ffn_up_exps.bias", bias[:, 1::2])
        for hf_name, parts in (("gate_up_proj", (("ffn_gate_exps", 0, 2), ("ffn_up_exps", 1, 2))),
                               ("down_proj", (("ffn_down_exps", 0, 1),))):
            blocks, scales = tensors[hf + f"mlp.experts.{hf_name}_blocks"], tensors[hf + f"mlp.experts.{hf_name}_scales"]
            for target, first, step in parts:
                data = ggml_mxfp4(blocks[:, first::step], scales[:, first::step])
                writer.add_tensor(blk + target + ".weight", data, raw_dtype=gguf.GGMLQuantizationType.MXFP4)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"wrote {name}.gguf")


def main():
    convert("tiny-qwen3moe", "qwen3moe", "tiny-qwen3moe")
    convert("tiny-gptoss", "gpt-oss", "tiny-gptoss-mxfp4")


if __name__ == "__main__":
    main()
