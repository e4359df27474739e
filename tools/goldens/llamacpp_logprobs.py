#!/usr/bin/env python3
"""Writes tests/goldens/inference/smollm2_llamacpp_logprobs.json: llama.cpp's top-20 next-token
log-probabilities after every prefix of each token sequence of smollm2_logits.json (one request per
prefix, so every position of the sequence), from llama-server running the
default GGUF (SmolLM2-135M-Instruct Q4_1) on the CPU. llama.cpp quantizes activations to 8 bits
for its products (Q8_1 blocks against Q4_1 weights) and keeps an fp16 KV cache, so the distance
of these values from transformers' fp32 logits is what llama.cpp's users accept; the int8 products
test of tests/model/test_decoder.cpp holds Kindred's 8-bit mode to that distance from fp32.

The server listens on 127.0.0.1 only and is stopped when the script ends.
Usage: .venv/bin/python tools/goldens/llamacpp_logprobs.py [--server PATH] [--model GGUF]
"""
import argparse
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "goldens" / "inference" / "smollm2_llamacpp_logprobs.json"
SEQUENCES = ROOT / "tests" / "goldens" / "inference" / "smollm2_logits.json"
DEFAULT_SERVER = Path("/work/third_party_bench/llama-build/bin/llama-server")
DEFAULT_MODEL = Path(os.path.expanduser("~/.cache/kindred/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
PORT = 18187
TOP = 20


def post(path: str, body: dict) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        return json.load(reply)


def wait_healthy(deadline_s: float) -> None:
    end = time.time() + deadline_s
    while time.time() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health", timeout=2) as reply:
                if json.load(reply).get("status") == "ok":
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.5)
    raise TimeoutError("llama-server did not become healthy")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", type=Path, default=DEFAULT_SERVER)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args()
    sequences = json.loads(SEQUENCES.read_text())["sequences"]
    server = subprocess.Popen([str(args.server), "-m", str(args.model), "--host", "127.0.0.1", "--port", str(PORT),
                               "-t", "1", "-c", "1024"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(60)
        out = []
        for sequence in sequences:
            ids = sequence["ids"]
            top_ids, top_logprobs = [], []
            for length in range(1, len(ids) + 1):
                reply = post("/completion", {"prompt": ids[:length], "n_predict": 1, "n_probs": TOP, "temperature": 0,
                                             "post_sampling_probs": False, "cache_prompt": False})
                top = reply["completion_probabilities"][0]["top_logprobs"]
                top_ids.append([t["id"] for t in top])
                top_logprobs.append([t["logprob"] for t in top])
            out.append({"ids": ids, "top_ids": top_ids, "top_logprobs": top_logprobs})
    finally:
        server.terminate()
        server.wait(timeout=30)
    golden = {"source": f"llama-server ({args.server}) on {args.model.name}, 1 thread",
              "note": "top_ids[p], top_logprobs[p]: after the first p + 1 tokens", "sequences": out}
    OUT.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {OUT} ({len(out)} sequences)")


if __name__ == "__main__":
    main()
