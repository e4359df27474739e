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

Also tiny-qwen3moe-chat.gguf and tiny-gptoss-chat.gguf, the same models as files the CLI can chat
with: a byte-level tokenizer (the 256 byte tokens and two merges, "Ġ t" and "h e": the readers want
some) plus the family's control tokens, the
real chat template, and embedding and output rows for the tokens past 256 (seeded normal values;
the byte rows are the checkpoint's). Templates: Qwen3's from ../shared/tokenizers/qwen3/
tokenizer_config.json; gpt-oss's from --gpt-oss-template PATH (../shared has none; the committed file
used llama.cpp's models/templates/openai-gpt-oss-120b.jinja, sha256
a1041ee337c95a44e19be5f64497f9e9e2f191ffc93b8a385cb6f2bab746c6dc, 16765 bytes, as gpt-oss GGUFs carry it).

Usage: .venv/bin/python tools/goldens/moe_gguf.py --gpt-oss-template PATH
"""
import argparse
import json
import os
import pathlib

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


SHARED = os.path.join(os.path.dirname(ROOT), "shared")
CHAT = {  # control tokens, EOS, pre-tokenizer and template source of each family's chat file
    "qwen3moe": (["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"], "<|im_end|>", "qwen2"),
    "gpt-oss": (["<|startoftext|>", "<|endoftext|>", "<|return|>", "<|constrain|>", "<|channel|>", "<|start|>",
                 "<|end|>", "<|message|>", "<|call|>"], "<|return|>", "gpt-4o"),
}


def byte_tokens():
    """GPT-2's byte-level alphabet: the printable character standing for each byte 0..255."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def add_chat_tokenizer(writer, arch, tensors, template):
    """Tokenizer metadata, the template, and rows for the control tokens in embedding and output."""
    specials, eos, pre = CHAT[arch]
    merges = ["Ġ t", "h e"]
    tokens = byte_tokens() + [m.replace(" ", "") for m in merges] + specials
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.NORMAL] * (256 + len(merges)) + [gguf.TokenType.CONTROL] * len(specials))
    writer.add_token_merges(merges)
    writer.add_eos_token_id(tokens.index(eos))
    writer.add_chat_template(template)
    extra = np.random.default_rng(5).normal(0.0, 0.2, (len(tokens) - 256, tensors["model.embed_tokens.weight"].shape[1]))
    for key in ("model.embed_tokens.weight", "lm_head.weight"):
        tensors[key] = np.concatenate([tensors[key], extra.astype(np.float32)])
    return len(tokens)


def convert(name, arch, source, chat_template=None):
    directory = os.path.join(INFERENCE, source)
    tensors = load_file(os.path.join(directory, "model.safetensors"))
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    writer = gguf.GGUFWriter(os.path.join(INFERENCE, name + ".gguf"), arch)
    vocab = add_chat_tokenizer(writer, arch, tensors, chat_template) if chat_template else config["vocab_size"]
    writer.add_uint32(f"{arch}.vocab_size", vocab)
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpt-oss-template", type=pathlib.Path, required=True,
                        help="gpt-oss's chat_template.jinja (see the module docstring)")
    args = parser.parse_args()
    convert("tiny-qwen3moe", "qwen3moe", "tiny-qwen3moe")
    convert("tiny-gptoss", "gpt-oss", "tiny-gptoss-mxfp4")
    with open(os.path.join(SHARED, "tokenizers", "qwen3", "tokenizer_config.json")) as f:
        convert("tiny-qwen3moe-chat", "qwen3moe", "tiny-qwen3moe", json.load(f)["chat_template"])
    convert("tiny-gptoss-chat", "gpt-oss", "tiny-gptoss-mxfp4", args.gpt_oss_template.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
