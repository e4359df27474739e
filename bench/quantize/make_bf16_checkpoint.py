#!/usr/bin/env python3
"""Writes a bf16 Hugging Face checkpoint of a GGUF model for bench/quantize/run.sh (dev-time only).

No real bf16 checkpoint is on this machine, so the "bf16 reference" is the GGUF dequantized by
transformers (from_pretrained(..., gguf_file=...), which reads every tensor through the `gguf`
package's dequantizers) and saved as bf16 safetensors with its tokenizer. For the default model that
is SmolLM2-135M-Instruct's Q4_1 weights in bf16: quantizing it again measures what Q4_K and NF4 cost
relative to that model, not relative to the original bf16 release.

Usage: .venv/bin/python bench/quantize/make_bf16_checkpoint.py GGUF OUT_DIR
"""
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer


def main() -> None:
    gguf, out = Path(sys.argv[1]), Path(sys.argv[2])
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a model loaded from GGUF; its tensors are plain after dequantization.
    out.mkdir(parents=True, exist_ok=True)
    state = {name: t.to(torch.bfloat16).contiguous() for name, t in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.dtype = "bfloat16"
    model.config.to_json_file(out / "config.json")
    tokenizer.save_pretrained(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
