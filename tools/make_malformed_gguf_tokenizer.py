#!/usr/bin/env python3
"""Writes tests/corpus/gguf-tokenizer-malformed/: small GGUF files that are valid containers but whose
SentencePiece tokenizer metadata (tokenizer.ggml.model = "llama") the tokenizer must refuse with
kindred::Error naming the file and the key (the folder's EXPECTED.json holds the phrase each error
must contain). Also writes tests/goldens/tokenizer/tiny_sentencepiece.gguf, the well-formed base
every case breaks (the test loads it as the positive control; fuzz_gguf_tokenizer's seed).

Re-runnable; the output is deterministic. Usage: .venv/bin/python tools/make_malformed_gguf_tokenizer.py
"""
import json
import math
from pathlib import Path

import gguf
from gguf import GGUFValueType as V

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "corpus" / "gguf-tokenizer-malformed"
VALID = ROOT / "tests" / "goldens" / "tokenizer" / "tiny_sentencepiece.gguf"

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def base():
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "\n"]
    types = [CONTROL] * 6 + [USER_DEFINED]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [BYTE] * 256
    pieces = ["\u2581", "a", "b", "h", "i", "ab", "hi", "\u2581hi"]
    tokens += pieces
    types += [NORMAL] * len(pieces)
    scores = [0.0] * (len(tokens) - len(pieces)) + [-float(i) for i in range(1, len(pieces) + 1)]
    return {"tokens": tokens, "types": types, "scores": scores, "prefix": False}


def write(path, spec, extra=None):
    writer = gguf.GGUFWriter(str(path), "gemma3")
    writer.add_string("tokenizer.ggml.model", spec.get("model", "llama"))
    writer.add_array("tokenizer.ggml.tokens", spec["tokens"])
    if spec.get("scores") is not None:
        writer.add_key_value("tokenizer.ggml.scores", spec["scores"], V.ARRAY, sub_type=spec.get("score_type", V.FLOAT32))
    if spec.get("types") is not None:
        writer.add_key_value("tokenizer.ggml.token_type", spec["types"], V.ARRAY, sub_type=V.INT32)
    if spec.get("prefix") is not None:
        writer.add_bool("tokenizer.ggml.add_space_prefix", spec["prefix"])
    writer.add_uint32("tokenizer.ggml.bos_token_id", spec.get("bos", 2))
    writer.add_uint32("tokenizer.ggml.eos_token_id", 1)
    for key, value in (extra or {}).items():
        writer.add_uint32(key, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def case(**changes):
    spec = base()
    spec.update(changes)
    return spec


def main():
    BAD.mkdir(parents=True, exist_ok=True)
    write(VALID, base())
    b = base()
    cases = {
        "add-space-prefix-true": (case(prefix=True), "add_space_prefix is true"),
        "add-space-prefix-missing": (case(prefix=None), "add_space_prefix is missing"),
        "scores-missing": (case(scores=None), "tokenizer.ggml.scores"),
        "scores-short": (case(scores=b["scores"][:-1]), "tokenizer.ggml.scores has 270 entries for 271 tokens"),
        "score-nan": (case(scores=b["scores"][:-1] + [math.nan]), "tokenizer.ggml.scores[270] is not a finite"),
        "score-infinite": (case(scores=[math.inf] + b["scores"][1:]), "tokenizer.ggml.scores[0] is not a finite"),
        "scores-as-int32": (case(scores=[0] * len(b["scores"]), score_type=V.INT32), "tokenizer.ggml.scores[0]"),
        "token-type-missing": (case(types=None), "tokenizer.ggml.token_type"),
        "token-type-short": (case(types=b["types"][:10]), "token_type has 10 entries"),
        "token-type-unknown": (case(types=b["types"][:-1] + [9]), "token_type[270] is 9"),
        "byte-piece-misspelled": (case(tokens=b["tokens"][:7] + ["<0xzz>"] + b["tokens"][8:]), "tokens[7]"),
        "byte-piece-repeated": (case(tokens=b["tokens"][:8] + ["<0x00>"] + b["tokens"][9:]), "repeats the byte piece"),
        "byte-piece-missing": (case(types=b["types"][:7] + [NORMAL] + b["types"][8:]), "no byte piece <0x00>"),
        "control-token-empty": (case(tokens=[""] + b["tokens"][1:]), "tokens[0] is empty"),
        "bos-outside-vocabulary": (case(bos=5000), "bos_token_id"),
        "unknown-model": (case(model="bert"), "'bert' is not supported"),
    }
    expected = {}
    for name, (spec, phrase) in cases.items():
        write(BAD / f"{name}.gguf", spec)
        expected[f"{name}.gguf"] = phrase
    (BAD / "EXPECTED.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(cases)} files to {BAD}")


if __name__ == "__main__":
    main()
