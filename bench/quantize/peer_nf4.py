#!/usr/bin/env python3
"""The peers of bench/quantize/run.sh's bf16 and nf4 rows: perplexity of the same text with
transformers (fp32 compute over the bf16 weights) and with every decoder-layer Linear's weight
replaced by bitsandbytes' NF4 round trip (quantize_4bit(blocksize=64, nf4, compress_statistics=True),
then dequantize_4bit), as QLoRA's frozen base computes. Same tokens as `kindred score`: the
checkpoint's tokenizer, no special tokens, one window.

Usage: .venv/bin/python bench/quantize/peer_nf4.py CHECKPOINT_DIR TEXT_FILE
"""
import math
import sys

import torch
import bitsandbytes.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer


def perplexity(model, ids) -> float:
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1].float()
    nll = torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="mean")
    return math.exp(nll.item())


def main() -> None:
    directory, text_path = sys.argv[1], sys.argv[2]
    tokenizer = AutoTokenizer.from_pretrained(directory)
    ids = tokenizer(open(text_path, encoding="utf-8").read(), add_special_tokens=False)["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    dense = perplexity(model, ids)
    for name, module in model.model.layers.named_modules():
        if isinstance(module, torch.nn.Linear):
            packed, state = F.quantize_4bit(module.weight.data, blocksize=64, quant_type="nf4", compress_statistics=True)
            module.weight.data = F.dequantize_4bit(packed, state).to(torch.float32)
    nf4 = perplexity(model, ids)
    print(f"tokens {len(ids)}  transformers bf16 {dense:.4f}  bitsandbytes nf4 {nf4:.4f} ({100 * (nf4 / dense - 1):+.2f}%)")


if __name__ == "__main__":
    main()
