#!/usr/bin/env python3
"""The Python `tokenizers` side of bench/tokenizer/run.sh: same GGUF, same English lines.

Builds SmolLM2's tokenizer exactly as tools/goldens/tokenizer.py does (transformers' GGUF
loader plus the Digits step it drops) and prints "<name> <MB/s> <tokens>" lines.
Usage: bench_tokenizers.py <model.gguf> <corpus.jsonl> [repetitions]
"""

import json
import statistics
import sys
import time
from pathlib import Path


def main() -> None:
    model, corpus = Path(sys.argv[1]), sys.argv[2]
    repetitions = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer

    lines = []
    with open(corpus, encoding="utf-8") as f:
        for raw in f:
            entry = json.loads(raw)
            if entry["kind"] in ("prose", "dialogue"):
                lines.append(entry["text"])
    megabytes = sum(len(line.encode("utf-8")) for line in lines) / 1e6

    def load():
        backend = AutoTokenizer.from_pretrained(str(model.parent), gguf_file=model.name).backend_tokenizer
        backend.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
        return backend

    def encode_all(backend) -> tuple[float, int]:
        start = time.perf_counter()
        tokens = sum(len(backend.encode(line, add_special_tokens=False).ids) for line in lines)
        return time.perf_counter() - start, tokens

    cold, tokens = encode_all(load())
    print(f"tokenizers_encode_cold {megabytes / cold:.3f} {tokens}")
    backend = load()
    encode_all(backend)
    runs = [encode_all(backend)[0] for _ in range(repetitions)]
    print(f"tokenizers_encode_warm {megabytes / statistics.median(runs):.3f} {tokens}")
    start = time.perf_counter()
    batch_tokens = sum(len(e.ids) for e in backend.encode_batch(lines, add_special_tokens=False))
    print(f"tokenizers_encode_batch {megabytes / (time.perf_counter() - start):.3f} {batch_tokens}")


if __name__ == "__main__":
    main()
