#!/usr/bin/env python3
"""Oracle for the LoRA adapter formats (src/formats/peft_adapter.*, src/formats/gguf_lora.*).

Writes, re-runnably, under tests/goldens/adapters/:
  peft_tiny/           what PEFT's save_pretrained writes for a tiny Llama (4 heads, 2 KV heads)
                       with LoRA r=4 on all seven projections and seeded random A and B (F32).
  peft_tiny_bf16/      the same adapter saved after casting it to bfloat16.
  expected.json        every lora_A/lora_B tensor as PEFT holds it in memory (shape, fp32 values),
                       the config fields, and the tiny base's head counts.
  permute.json         llama.cpp's q/k row permutation applied to small matrices, for n_head and
                       n_head_kv = 4/4 (q), 4/2 (k) and 9/3 (SmolLM2's k), written from the rule:
                       rows viewed as [heads, 2, rows/heads/2] are swapped to [heads, rows/heads/2, 2]
                       (the two rotary halves of each head interleaved), heads = n_head_kv when it
                       differs from n_head.
  llamacpp_tiny.gguf   (only with --llamacpp DIR) peft_tiny converted to F32 by llama.cpp's own
                       convert_lora_to_gguf.py from the checkout at DIR, base config = tiny_base.
                       A plain rerun keeps it: everything above is seeded and comes out identical.

Usage: .venv/bin/python tools/goldens/adapters.py [--llamacpp /path/to/llama.cpp]
Check a C++-written PEFT directory (built for the same tiny base):
       .venv/bin/python tools/goldens/adapters.py --check DIR
  loads DIR with PeftModel.from_pretrained and prints whether every loaded lora_A/lora_B equals
  the tensor stored in DIR and the expected.json values.
"""
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests/goldens/adapters"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
RANK = 4
ALPHA = 8


def tiny_base():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                         max_position_embeddings=64, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    model.name_or_path = "kindred-tiny-llama"  # what PEFT records as base_model_name_or_path
    return model


def lora_state(model):
    """PEFT's in-memory lora tensors, keyed by the names save_pretrained writes (adapter name
    'default' removed)."""
    out = {}
    for name, param in model.named_parameters():
        if ".lora_A." in name or ".lora_B." in name:
            out[name.replace(".default", "")] = param.detach().float().numpy()
    return out


def write_goldens():
    import torch
    from peft import LoraConfig, get_peft_model

    base = tiny_base()
    config = LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.05, target_modules=TARGETS,
                        bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(base, config)
    generator = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".lora_A." in name or ".lora_B." in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    model.save_pretrained(OUT / "peft_tiny")
    expected = {
        "r": RANK, "lora_alpha": ALPHA, "lora_dropout": 0.05, "target_modules": TARGETS,
        "n_head": base.config.num_attention_heads, "n_head_kv": base.config.num_key_value_heads,
        "tensors": {k: {"shape": list(v.shape), "values": v.flatten().tolist()}
                    for k, v in sorted(lora_state(model).items())},
    }
    model.to(torch.bfloat16)
    model.save_pretrained(OUT / "peft_tiny_bf16")
    expected["tensors_bf16"] = {k: v.flatten().tolist() for k, v in sorted(lora_state(model).items())}
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    for sub in ("peft_tiny", "peft_tiny_bf16"):
        readme = OUT / sub / "README.md"
        if readme.exists():
            readme.unlink()  # a model-card template, no adapter data


def permute_rows(weights, n_head, n_head_kv):
    heads = n_head_kv if n_head_kv != n_head else n_head
    rows = weights.shape[0]
    return (weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def write_permute():
    cases = []
    for n_head, n_head_kv, rows, cols in [(4, 4, 32, 3), (4, 2, 16, 3), (9, 3, 192, 2)]:
        w = np.arange(rows * cols, dtype=np.float32).reshape(rows, cols)
        cases.append({"n_head": n_head, "n_head_kv": n_head_kv, "rows": rows, "cols": cols,
                      "input": w.flatten().tolist(),
                      "output": permute_rows(w, n_head, n_head_kv).flatten().tolist()})
    (OUT / "permute.json").write_text(json.dumps(cases) + "\n")


def write_llamacpp_golden(llama_dir):
    import os
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as base_dir:
        config = tiny_base().config
        config.architectures = ["LlamaForCausalLM"]  # how the converter picks its model class
        config.save_pretrained(base_dir)
        env = dict(os.environ, PYTHONPATH=str(Path(llama_dir) / "gguf-py"))
        subprocess.run([sys.executable, str(Path(llama_dir) / "convert_lora_to_gguf.py"), "--base", base_dir,
                        "--outtype", "f32", "--outfile", str(OUT / "llamacpp_tiny.gguf"), str(OUT / "peft_tiny")],
                       check=True, env=env)


def check(directory):
    from peft import PeftModel
    from safetensors.numpy import load_file

    model = PeftModel.from_pretrained(tiny_base(), directory)
    stored = load_file(str(Path(directory) / "adapter_model.safetensors"))
    loaded = lora_state(model)
    expected = json.loads((OUT / "expected.json").read_text())["tensors"]
    ok = set(loaded) == set(stored) == set(expected)
    for name, value in loaded.items():
        want = np.array(expected[name]["values"], dtype=np.float32).reshape(expected[name]["shape"])
        ok = ok and np.array_equal(value, stored[name].astype(np.float32)) and np.array_equal(value, want)
    print("config:", model.peft_config["default"])
    print(f"{len(loaded)} lora tensors loaded;", "MATCH" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2]))
    OUT.mkdir(parents=True, exist_ok=True)
    write_goldens()
    write_permute()
    if len(sys.argv) == 3 and sys.argv[1] == "--llamacpp":
        write_llamacpp_golden(sys.argv[2])
