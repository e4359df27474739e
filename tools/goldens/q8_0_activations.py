#!/usr/bin/env python3
"""Writes tests/goldens/quantize/q8_0_activations.json: fp32 activation rows and the Q8_0 blocks
gguf-py's quantizer (gguf.quants.quantize, bit-exact with ggml's quantize_row_q8_0_ref) makes of
them. Kindred's 8-bit activations (kernels/cpu/int8_dot.h) must give the same int8 values and,
rounded to fp16, the same scale.

Rows (256 elements = 8 blocks each): random normal at scales from 1e-3 to 1e20, rows whose
scaled values fall exactly on .5 (round half away from zero, where round-to-even would differ),
an all-zero block beside ordinary ones, a block with a single non-zero, all-negative blocks.
Arrays are the hex of their little-endian bytes (kernel tests read JSON only).
  input  F32 [rows, 256]
  q8_0   U8  [rows, 272]: 8 blocks of (d: fp16, qs: int8[32])

Usage: .venv/bin/python tools/goldens/q8_0_activations.py
"""
import json
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import quantize

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "goldens" / "quantize" / "q8_0_activations.json"
COLS = 256


def rows() -> np.ndarray:
    rng = np.random.default_rng(23)
    out = [rng.normal(0, scale, COLS) for scale in (1e-3, 0.1, 1.0, 30.0, 1e20)]
    # amax 127 in every block: d = 1, 1/d = 1, so k + 0.5 values are exact ties.
    ties = rng.integers(-126, 127, COLS).astype(np.float64) + 0.5
    ties[::32] = 127.0
    out.append(ties)
    # amax 63.5: d = 0.5, 1/d = 2, so multiples of 0.25 land on ties after scaling.
    quarters = rng.integers(-250, 251, COLS).astype(np.float64) * 0.25
    quarters[::32] = -63.5
    out.append(quarters)
    mixed = rng.normal(0, 1.0, COLS)
    mixed[32:64] = 0.0
    mixed[64:96] = 0.0
    mixed[70] = -3.0
    mixed[96:128] = -np.abs(mixed[96:128])
    out.append(mixed)
    return np.stack(out).astype(np.float32)


def main() -> None:
    x = rows()
    blocks = quantize(x, GGMLQuantizationType.Q8_0)
    assert blocks.shape == (x.shape[0], COLS // 32 * 34), blocks.shape
    golden = {"rows": x.shape[0], "cols": COLS, "input": x.tobytes().hex(), "q8_0": blocks.tobytes().hex()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {OUT} ({x.shape[0]} rows)")


if __name__ == "__main__":
    main()
