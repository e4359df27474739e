#!/usr/bin/env python3
"""Goldens for the real Gemma 3 270M (Q4_K_M GGUF, scripts/fetch-gemma3-270m), by transformers on CPU in fp32.

transformers loads the GGUF with `gguf_file=`: it dequantizes every tensor to fp32 (gguf-py's
dequantizers, bit-exact with ggml's) and subtracts the 1 that llama.cpp's converter added to every
Gemma norm weight (its Gemma3RMSNorm multiplies by 1 + w), so it runs exactly the weights Kindred
reads. Its tokenizer is built from the GGUF's vocabulary; the goldens carry token ids, so the C++
decoder test needs no tokenizer.

Writes tests/goldens/inference/gemma3_270m.json:
  sequences   fixed texts: ids, the first 64 logits and the top-20 ids/values at every position
  greedy      greedy continuations (16 tokens, recomputing the prefix each step) of three prompts
  perplexity  mean NLL and perplexity of a fixed paragraph (labels = inputs, shifted)

Usage: .venv/bin/python tools/goldens/gemma3_270m.py [path/to/gemma-3-270m-q4_k_m.gguf]
"""
import json
import math
import os
import sys

import torch
import transformers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "goldens", "inference", "gemma3_270m.json")
DEFAULT_GGUF = os.path.expanduser("~/.cache/kindred/models/gemma-3-270m-q4_k_m.gguf")

from inference import HEAD, PERPLEXITY_TEXT, SEQUENCE_TEXTS, TOP_K, rounded  # the SmolLM2 goldens' texts

GREEDY_PROMPTS = [
    "Once upon a time, in a quiet village,",
    "The three primary colors are",
    "A good friend is someone who",
]
GREEDY_NEW_TOKENS = 16


def main():
    torch.set_num_threads(1)
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_GGUF
    directory, name = os.path.split(path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory, gguf_file=name)
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    model.eval()

    def encode(text):  # BOS, as the GGUF's add_bos_token asks
        return [tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]

    record = {"source": name, "sequences": [], "greedy": []}
    with torch.no_grad():
        for text in SEQUENCE_TEXTS:
            ids = encode(text)
            logits = model(torch.tensor([ids])).logits[0]
            positions = []
            for row in logits:
                top = torch.topk(row, TOP_K)
                positions.append({"head": rounded(row[:HEAD].tolist()), "top_ids": top.indices.tolist(),
                                  "top_values": rounded(top.values.tolist())})
            record["sequences"].append({"text": text, "ids": ids, "positions": positions})
        for text in GREEDY_PROMPTS:
            prompt = encode(text)
            sequence, generated = list(prompt), []
            for _ in range(GREEDY_NEW_TOKENS):
                row = model(torch.tensor([sequence])).logits[0, -1]
                next_id = int(row.argmax())
                generated.append(next_id)
                sequence.append(next_id)
            record["greedy"].append({"prompt": text, "prompt_ids": prompt, "generated_ids": generated})
        ids = encode(PERPLEXITY_TEXT)
        input_ids = torch.tensor([ids])
        loss = model(input_ids, labels=input_ids).loss.item()
        record["perplexity"] = {"text": PERPLEXITY_TEXT, "ids": ids, "mean_nll": loss, "perplexity": math.exp(loss)}
    with open(OUT, "w") as f:
        json.dump(record, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
