#!/usr/bin/env python3
"""Writes tests/corpus/gguf-moe-malformed/: small GGUF files that are valid containers but describe a
mixture-of-experts model the loader must refuse with kindred::Error naming the key or tensor (the
file name says which case; the folder's EXPECTED.json holds the phrase each error must contain).
Written with gguf-py's GGUFWriter, keys and tensor names as llama.cpp writes them for qwen3moe and
gpt-oss.

Re-runnable; the output is deterministic. Usage: .venv/bin/python tools/make_malformed_moe_gguf.py
"""
from pathlib import Path

import gguf
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "corpus" / "gguf-moe-malformed"

HIDDEN, N, EXPERTS, TOP_K, HEADS, HEAD_DIM = 16, 8, 4, 2, 2, 8


def write(name, arch, used=TOP_K, experts=EXPERTS, skip=(), shapes=None):
    """One layer; `skip` leaves tensors out, `shapes` overrides tensor shapes (numpy order)."""
    writer = gguf.GGUFWriter(str(BAD / f"{name}.gguf"), arch)
    writer.add_uint32(f"{arch}.vocab_size", 32)
    writer.add_uint32(f"{arch}.embedding_length", HIDDEN)
    writer.add_uint32(f"{arch}.block_count", 1)
    writer.add_uint32(f"{arch}.context_length", 64)
    writer.add_uint32(f"{arch}.attention.head_count", HEADS)
    writer.add_uint32(f"{arch}.attention.head_count_kv", HEADS)
    writer.add_uint32(f"{arch}.attention.key_length", HEAD_DIM)
    writer.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-6)
    writer.add_uint32(f"{arch}.expert_count", experts)
    writer.add_uint32(f"{arch}.expert_used_count", used)
    writer.add_uint32(f"{arch}.expert_feed_forward_length", N)
    tensors = {
        "blk.0.ffn_gate_inp.weight": (EXPERTS, HIDDEN),
        "blk.0.ffn_gate_exps.weight": (EXPERTS, N, HIDDEN),
        "blk.0.ffn_up_exps.weight": (EXPERTS, N, HIDDEN),
        "blk.0.ffn_down_exps.weight": (EXPERTS, HIDDEN, N),
    }
    if arch == "gpt-oss":
        tensors.update({"blk.0.ffn_gate_inp.bias": (EXPERTS,), "blk.0.ffn_gate_exps.bias": (EXPERTS, N),
                        "blk.0.ffn_up_exps.bias": (EXPERTS, N), "blk.0.ffn_down_exps.bias": (EXPERTS, HIDDEN)})
    tensors.update(shapes or {})
    for tensor, shape in tensors.items():
        if tensor not in skip:
            writer.add_tensor(tensor, np.full(shape, 0.01, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main():
    BAD.mkdir(parents=True, exist_ok=True)
    write("top-k-above-experts", "qwen3moe", used=5)
    write("zero-experts", "gpt-oss", experts=0)
    write("expert-count-mismatch", "qwen3moe", shapes={"blk.0.ffn_gate_exps.weight": (3, N, HIDDEN)})
    write("wrong-expert-shape", "qwen3moe", shapes={"blk.0.ffn_down_exps.weight": (EXPERTS, N, HIDDEN)})
    write("router-expert-mismatch", "gpt-oss", shapes={"blk.0.ffn_gate_inp.weight": (EXPERTS + 1, HIDDEN)})
    write("missing-router", "qwen3moe", skip={"blk.0.ffn_gate_inp.weight"})
    write("missing-expert-bias", "gpt-oss", skip={"blk.0.ffn_up_exps.bias"})


if __name__ == "__main__":
    main()
