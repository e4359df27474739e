#!/usr/bin/env python3
"""Writes tests/goldens/quantize/ggml.json: float rows and the Q4_K and Q5_0 blocks llama.cpp's
reference quantizers (quantize_row_q4_K_ref, quantize_row_q5_0_ref in ggml-quants.c) make of them.

The `gguf` package dequantizes Q4_K but has no Q4_K quantizer, so this script compiles llama.cpp's
ggml-quants.c from a local llama.cpp checkout into a temporary shared library (never part of
Kindred) and calls it through ctypes. Contraction into FMAs is off, as in Kindred's quantizer, so
the bytes are comparable exactly.

Arrays are the hex of their little-endian bytes (kernel tests read JSON only).
  input     F32 [rows, 512]: random normal rows at several scales, plus edge rows (zeros, a
            constant, all positive, one outlier, tiny values)
  q4_k      U8  [rows, 288]: the Q4_K blocks (2 super-blocks of 144 bytes per row)
  q5_0      U8  [rows, 352]: the Q5_0 blocks (16 blocks of 22 bytes per row)

Usage: .venv/bin/python tools/goldens/ggml_quantize.py [--llama-cpp DIR]
"""
import argparse
import ctypes
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import json

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "goldens" / "quantize" / "ggml.json"
DEFAULT_LLAMA_CPP = Path("/work/third_party_bench/llama_cpp_python-0.3.36/vendor/llama.cpp")
COLS = 512
# ggml type -> (elements, bytes) per block
BLOCKS = {"q4_k": (256, 144), "q5_0": (32, 22)}


def reference_library(llama_cpp: Path, build: Path) -> ctypes.CDLL:
    ggml = llama_cpp / "ggml"
    library = build / "ggml_quants.so"
    # ggml-quants.c calls into ggml.c only for the importance-matrix and validation paths this
    # script never takes; stand-ins that abort let the library load without the rest of ggml.
    stubs = build / "stubs.c"
    stubs.write_text("#include <stdlib.h>\n#include <stddef.h>\n"
                     "void ggml_abort(const char* f, int l, const char* m, ...) { abort(); }\n"
                     "size_t ggml_row_size(int t, long long n) { abort(); }\n"
                     "const char* ggml_type_name(int t) { abort(); }\n"
                     "size_t ggml_type_size(int t) { abort(); }\n")
    subprocess.run(["gcc", "-O2", "-ffp-contract=off", "-fPIC", "-shared", f"-I{ggml / 'include'}",
                    f"-I{ggml / 'src'}", "-o", str(library), str(ggml / "src" / "ggml-quants.c"), str(stubs), "-lm"],
                   check=True)
    return ctypes.CDLL(str(library))


def rows() -> np.ndarray:
    rng = np.random.default_rng(11)
    out = [rng.normal(0, scale, COLS) for scale in (0.02, 0.02, 0.05, 0.1, 1.0, 3.0)]
    out.append(np.zeros(COLS))
    out.append(np.full(COLS, 0.25))
    out.append(np.abs(rng.normal(0, 0.05, COLS)))  # all positive: every sub-block min is 0
    outlier = rng.normal(0, 0.02, COLS)
    outlier[37] = 4.0
    out.append(outlier)
    out.append(rng.normal(0, 1e-6, COLS))
    mixed = rng.normal(0, 0.02, COLS)
    mixed[:32] = 0.0  # one zero sub-block beside ordinary ones
    out.append(mixed)
    return np.stack(out).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--llama-cpp", type=Path, default=DEFAULT_LLAMA_CPP)
    args = parser.parse_args()
    x = rows()
    with tempfile.TemporaryDirectory() as build:
        lib = reference_library(args.llama_cpp, Path(build))
        golden = {"rows": x.shape[0], "cols": COLS, "input": x.tobytes().hex()}
        for name, (elements, size) in BLOCKS.items():
            quantize = getattr(lib, f"quantize_row_{name.replace('_k', '_K')}_ref")
            quantize.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
            quantize.restype = None
            blocks = np.zeros((x.shape[0], COLS // elements * size), dtype=np.uint8)
            for r in range(x.shape[0]):
                row = np.ascontiguousarray(x[r])
                quantize(row.ctypes.data, blocks[r].ctypes.data, COLS)
            golden[name] = blocks.tobytes().hex()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {OUT} ({x.shape[0]} rows)")


if __name__ == "__main__":
    main()
