#!/usr/bin/env python3
"""The real Gemma 3 tokenizer.json, for tests/text/test_gemma3_tokenizer.cpp's tokenizer.json half.

Gemma 3 ships its tokenizer as tokenizer.json (BPE with byte_fallback, "▁" spaces, 262k pieces, 515k
merges; ~33 MB, too large to commit). No model hub is reachable here, so it is made from the Gemma 3
270M GGUF (scripts/fetch-gemma3-270m): transformers builds the fast tokenizer from the GGUF
(AutoTokenizer with gguf_file) and saves it. Before it is trusted, the saved file is loaded back with
the `tokenizers` package alone and must give, for every text of tests/goldens/tokenizer/gemma3.json (the
GGUF tokenizer's ids in transformers, tools/goldens/gemma3_tokenizer.py), the same ids with control
tokens parsed and as text.

Writes ${KINDRED_HOME:-~/.cache/kindred}/models/gemma-3-270m-tokenizer/{tokenizer.json,
tokenizer_config.json}; the C++ test skips, naming this script, when they are absent.
Usage: .venv/bin/python tools/goldens/gemma3_tokenizer_json.py [path/to/gemma-3-270m-q4_k_m.gguf]
"""
import json
import os
import sys

import tokenizers
import transformers

from gemma3_tokenizer import ids_both_ways

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN = os.path.join(ROOT, "tests", "goldens", "tokenizer", "gemma3.json")
MODELS = os.path.join(os.environ.get("KINDRED_HOME", os.path.expanduser("~/.cache/kindred")), "models")
OUT = os.path.join(MODELS, "gemma-3-270m-tokenizer")


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(MODELS, "gemma-3-270m-q4_k_m.gguf")
    directory, name = os.path.split(path)
    transformers.AutoTokenizer.from_pretrained(directory, gguf_file=name).save_pretrained(OUT)
    saved = tokenizers.Tokenizer.from_file(os.path.join(OUT, "tokenizer.json"))
    with open(GOLDEN, encoding="utf-8") as f:
        golden = json.load(f)
    for case in golden["cases"]:
        ids, as_text = ids_both_ways(saved, case["text"])
        assert ids == case["ids"], case["text"]
        assert as_text == case.get("ids_specials_as_text", case["ids"]), case["text"]
    print(f"wrote {OUT}: tokenizer.json equals the GGUF tokenizer on {len(golden['cases'])} texts")


if __name__ == "__main__":
    main()
