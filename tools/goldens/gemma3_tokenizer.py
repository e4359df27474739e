#!/usr/bin/env python3
"""Goldens for Kindred's SentencePiece-BPE tokenizer (GGUF tokenizer.ggml.model = "llama"): Gemma 3 270M's ids.

The reference is the tokenizer transformers builds from the same GGUF (AutoTokenizer with gguf_file):
a `tokenizers` BPE with byte fallback over "▁"-spaced text, merges recovered from the vocabulary
order, the file's control tokens as special added tokens and its user-defined ones ("\\n", "\\t" runs,
HTML tags) as plain added tokens. Building it takes minutes (262k tokens, 515k merges).

Texts: every CORPUS_STRIDE-th line of tests/goldens/tokenizer/corpus.jsonl (the SmolLM2 goldens'
varied corpus: prose, code, numbers, whitespace runs, CJK, RTL, emoji, control bytes, special-token
strings) and the hand-picked CASES below (space runs longer than the longest space token, literal
"▁", every kind of token Gemma's vocabulary holds, control tokens spelled in text).

Writes tests/goldens/tokenizer/gemma3.json:
  cases   [{"text", "ids", "ids_specials_as_text"}] for CASES and the sampled corpus lines; ids are
          encode(text, add_special_tokens=False); ids_specials_as_text the same with
          split_special_tokens (Kindred's parse_special=false)
  vocab_size, bos_id, eos_id

Usage: .venv/bin/python tools/goldens/gemma3_tokenizer.py [path/to/gemma-3-270m-q4_k_m.gguf]
"""
import json
import os
import sys

import transformers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "goldens", "tokenizer", "corpus.jsonl")
OUT = os.path.join(ROOT, "tests", "goldens", "tokenizer", "gemma3.json")
DEFAULT_GGUF = os.path.expanduser("~/.cache/kindred/models/gemma-3-270m-q4_k_m.gguf")
CORPUS_STRIDE = 6

CASES = [
    "Hello world",
    " leading space",
    "trailing space ",
    "two  spaces, three   spaces",
    "a" + " " * 31 + "b",
    "a" + " " * 32 + "b",
    "x" + " " * 70 + "y",
    "line one\nline two\n\nparagraph\n\n\n\nend\n",
    "\ttabbed\t\tand\t\t\ttabs",
    "mixed \t \n \r\n spaces",
    "Numbers: 0 7 42 1234567890 3.14159 -2e-5 1,000,000",
    "Emoji: 😀 😊🎉 👩‍👩‍👧‍👦 🏳️‍🌈 ❤️",
    "中文分词测试，日本語のテキスト、한국어 문장。",
    "Ελληνικά, русский, עברית, العربية",
    "e\u0301 caf\u00e9 na\u00efve \u00c5ngstr\u00f6m",
    "control bytes \x00 \x01 \x07 \x1b[31m \x7f end",
    "rare chars: \U0001d518\U0001d52b\U0001d526 \U0010fffd \ufffd \u200b\u200d",
    "literal \u2581 lower one eighth block and \u2581\u2581 two",
    "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n",
    "<bos><eos><pad><unk><mask> and <unused0> <start_of_image>",
    "text spelling <end_of_turn> inside a sentence",
    "<b>bold</b> <table><tr><td>1</td></tr></table> <code>x</code>",
    "<0x41> is not a byte token in text",
    "[multimodal] placeholder",
    "",
    " ",
    "\n",
    "    def f(x):\n        return x * 2\n",
]


def ids_both_ways(backend, text):
    """A `tokenizers` Tokenizer's ids for text with control tokens parsed, and with them as text
    (split_special_tokens, Kindred's parse_special=false); no BOS/EOS added."""
    backend.encode_special_tokens = False
    ids = backend.encode(text, add_special_tokens=False).ids
    backend.encode_special_tokens = True
    as_text = backend.encode(text, add_special_tokens=False).ids
    backend.encode_special_tokens = False
    return ids, as_text


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_GGUF
    directory, name = os.path.split(path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory, gguf_file=name)
    backend = tokenizer.backend_tokenizer
    with open(CORPUS, encoding="utf-8") as f:
        corpus = [json.loads(line)["text"] for line in f]
    texts = CASES + corpus[::CORPUS_STRIDE]

    cases = []
    for text in texts:
        ids, as_text = ids_both_ways(backend, text)
        case = {"text": text, "ids": ids}
        if as_text != ids:
            case["ids_specials_as_text"] = as_text
        cases.append(case)
    record = {"source": name, "transformers_version": transformers.__version__, "corpus_stride": CORPUS_STRIDE,
              "vocab_size": len(tokenizer), "bos_id": tokenizer.bos_token_id, "eos_id": tokenizer.eos_token_id,
              "cases": cases}
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(record, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}: {len(cases)} texts, {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
