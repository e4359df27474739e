#!/usr/bin/env python3
"""Writes tests/goldens/kv_cache/kv_cache_formats.json: rows of keys and values as a KV cache
(model/kv_cache.h) receives them, one head's row of 64 elements (SmolLM2's head_dim) each, and what
an F16 and a Q8_0 cache must store for them and read back:
  f16       numpy's float16 (round to nearest even; overflow to inf, subnormals kept)
  q8_0      gguf-py's quantizer (gguf.quants.quantize, bit-exact with ggml's quantize_row_q8_0_ref:
            d = amax / 127 stored as fp16, q = round(x / d) half away from zero)
  *_read    those back in fp32 (numpy's float16 -> float32; gguf.quants.dequantize)

Rows: random normal at the scales keys and values take (0.01 to 100; SmolLM2's first-position keys
reach a few hundred), values on fp16 ties (between two representable halves: round to even matters),
beyond fp16's range (65520 and up become inf) and in its subnormals, Q8_0 blocks whose scaled values
fall exactly on .5 (half away from zero, where round-to-even would differ), an all-zero block.
Arrays are the hex of their little-endian bytes (tests read JSON only).
  input   F32 [rows, 64]
  f16     U8  [rows, 128]          f16_read   F32 [rows, 64]
  q8_0    U8  [rows, 68]: 2 blocks of (d: fp16, qs: int8[32])   q8_0_read F32 [rows, 64]

Usage: .venv/bin/python tools/goldens/kv_cache_formats.py
"""
import json
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize, quantize

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "goldens" / "kv_cache" / "kv_cache_formats.json"
HEAD_DIM = 64


def rows() -> np.ndarray:
    rng = np.random.default_rng(31)
    out = [rng.normal(0, scale, HEAD_DIM) for scale in (0.01, 1.0, 3.0, 30.0, 100.0)]
    # Halfway between two neighbouring halves in [1, 2) (spacing 2^-10): ties to even.
    ties = 1.0 + (rng.integers(0, 1024, HEAD_DIM) + 0.5) / 1024
    ties[::2] *= -1
    out.append(ties)
    extremes = rng.normal(0, 1.0, HEAD_DIM)
    extremes[:4] = [65504.0, 65519.0, 65520.0, -1e6]  # largest half, still rounds to it, inf, -inf
    extremes[4:8] = [6e-8, 3e-8, 1e-5, -2e-6]          # subnormal halves and below half the smallest
    out.append(extremes)
    # amax 127 in each block: d = 1, so k + 0.5 values are exact ties.
    q8_ties = rng.integers(-126, 127, HEAD_DIM).astype(np.float64) + 0.5
    q8_ties[::32] = 127.0
    out.append(q8_ties)
    zero_block = rng.normal(0, 2.0, HEAD_DIM)
    zero_block[32:] = 0.0
    out.append(zero_block)
    return np.stack(out).astype(np.float32)


def main() -> None:
    x = rows()
    with np.errstate(over="ignore"):
        f16 = x.astype(np.float16)
    q8_0 = quantize(x, GGMLQuantizationType.Q8_0)
    assert q8_0.shape == (x.shape[0], HEAD_DIM // 32 * 34), q8_0.shape
    q8_0_read = dequantize(q8_0, GGMLQuantizationType.Q8_0).astype(np.float32)
    golden = {
        "rows": x.shape[0],
        "head_dim": HEAD_DIM,
        "input": x.tobytes().hex(),
        "f16": f16.tobytes().hex(),
        "f16_read": f16.astype(np.float32).tobytes().hex(),
        "q8_0": q8_0.tobytes().hex(),
        "q8_0_read": q8_0_read.tobytes().hex(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {OUT} ({x.shape[0]} rows)")


if __name__ == "__main__":
    main()
