#!/usr/bin/env python3
"""Writes tests/goldens/quantize/nf4.json with bitsandbytes' own NF4 quantizer (CPU):
bitsandbytes.functional.quantize_4bit(A, blocksize=64, quant_type='nf4', compress_statistics=True),
QLoRA's storage of a frozen base (block size 64, double quantization).

Arrays are the hex of their little-endian bytes (kernel tests read JSON only).
  input       F32 [36, 512]: random normal rows at several scales, one all-zero block, one
              block whose largest magnitude is negative, values at exactly +-absmax
  packed      U8  [9216]: two 4-bit codes per byte, as bitsandbytes packs them
  absmax_q    U8  [288]: each 64-block's absmax minus the offset, quantized to 8 bits
  absmax2     F32 [2]: the nested state's absmax per 256 of those (the second group partial)
  offset      F32 [1]: the nested state's offset (mean of the absmax values)
  code        F32 [256]: the nested state's 8-bit code (the dynamic map, as the quantizer left it)
  dequantized F32 [36, 512]: bitsandbytes.functional.dequantize_4bit of that state

Re-runnable: fixed seed. Usage: .venv/bin/python tools/goldens/nf4.py
"""
from pathlib import Path

import numpy as np
import torch
import bitsandbytes
import bitsandbytes.functional as F
import json

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "goldens" / "quantize" / "nf4.json"


def matrix() -> np.ndarray:
    rng = np.random.default_rng(4)
    rows = [rng.normal(0, [0.01, 0.02, 0.05, 1.0][r % 4], 512) for r in range(36)]
    x = np.stack(rows).astype(np.float32)
    x[3, 64:128] = 0.0  # an all-zero block
    x[5, 0:64] = np.abs(x[5, 0:64])
    x[5, 10] = -0.5  # the block's absmax is a negative value
    x[7, 128] = x[7, 128:192].max() * 1.0  # an element equal to its block's absmax
    return x


def main() -> None:
    x = matrix()
    packed, state = F.quantize_4bit(torch.from_numpy(x), blocksize=64, quant_type="nf4", compress_statistics=True)
    assert state.nested and state.state2.blocksize == 256 and state.blocksize == 64
    dequantized = F.dequantize_4bit(packed, state)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "input": x,
        "packed": packed.reshape(-1).numpy().astype(np.uint8),
        "absmax_q": state.absmax.numpy().astype(np.uint8),
        "absmax2": state.state2.absmax.numpy().astype(np.float32),
        "offset": np.array([float(state.offset)], dtype=np.float32),
        "code": state.state2.code.numpy().astype(np.float32),
        "dequantized": dequantized.numpy().astype(np.float32),
    }
    golden = {"bitsandbytes": bitsandbytes.__version__, "rows": x.shape[0], "cols": x.shape[1]}
    golden.update({name: np.ascontiguousarray(a).tobytes().hex() for name, a in arrays.items()})
    OUT.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {OUT} (bitsandbytes {bitsandbytes.__version__})")


if __name__ == "__main__":
    main()
