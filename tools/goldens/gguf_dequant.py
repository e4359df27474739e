#!/usr/bin/env python3
"""Writes the GGUF goldens under tests/goldens/gguf/ with the reference `gguf` package.

  dequant.gguf    for each type Kindred dequantizes: random-but-valid blocks (tensor
                  "<TYPE>.blocks", raw ggml layout) and gguf.quants' float32 output
                  ("<TYPE>.expected"). Scales are finite fp16 (no NaN/Inf) so bitwise
                  equality is meaningful.
  model_rows.gguf rows of real tensors of the default model dequantized by gguf.quants
                  ("<tensor>#<row>", F32), plus the model file's size for a sanity check.
  gemma3_q5_0_rows.gguf  rows of Gemma 3 270M's Q5_0 tensors (scripts/fetch-gemma3-270m): the
                  raw blocks ("<tensor>#<row>.blocks") and gguf.quants' output ("<tensor>#<row>"),
                  so the test needs no model file; skipped when the file is absent.
  metadata.gguf   written by gguf.GGUFWriter: one key per GGUF value type, nested arrays,
                  alignment 64 and two small tensors; the C++ tests read every value back
                  and rebuild the file byte for byte with kindred's Writer.

Re-runnable: fixed seeds, so the output only changes when gguf-py or the model changes.
Usage: .venv/bin/python tools/goldens/gguf_dequant.py [--model PATH] [--gemma PATH]
"""
import argparse
import os
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T, GGUFValueType as V
from gguf.quants import dequantize

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "goldens" / "gguf"
DEFAULT_MODEL = Path.home() / ".cache" / "kindred" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_GEMMA = Path.home() / ".cache" / "kindred" / "models" / "gemma-3-270m-q4_k_m.gguf"

# Byte offsets of the fp16 scale fields inside one block (ggml-common.h).
HALF_FIELDS = {
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q5_0: [0],
    T.Q8_0: [0],
    T.Q4_K: [0, 2],
    T.Q6_K: [208],
}


def finite_halves(rng, count):
    bits = rng.integers(0, 1 << 16, size=count, dtype=np.uint32).astype(np.uint16)
    exponent_all_ones = (bits & 0x7C00) == 0x7C00
    bits[exponent_all_ones] &= 0x83FF  # keep sign and mantissa, make the exponent zero (subnormal)
    return bits


def random_blocks(rng, qtype, n_elements):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = n_elements // block
    if qtype == T.F32:
        bits = rng.integers(0, 1 << 32, size=n_elements, dtype=np.uint64).astype(np.uint32)
        bits[(bits & 0x7F800000) == 0x7F800000] &= 0x807FFFFF
        return bits.view(np.uint8)
    if qtype == T.F16:
        return finite_halves(rng, n_elements).view(np.uint8)
    if qtype == T.BF16:
        bits = rng.integers(0, 1 << 16, size=n_elements, dtype=np.uint32).astype(np.uint16)
        bits[(bits & 0x7F80) == 0x7F80] &= 0x807F
        return bits.view(np.uint8)
    data = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint16).astype(np.uint8)
    for offset in HALF_FIELDS.get(qtype, []):
        data[:, offset:offset + 2] = finite_halves(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    if qtype == T.MXFP4:
        # e8m0 scale: 255 is NaN in the OCP spec and 2^127 overflows with the largest value;
        # cover the subnormal cases 0 and 1 explicitly.
        data[:, 0] = rng.integers(0, 251, size=n_blocks, dtype=np.uint16).astype(np.uint8)
        data[:2, 0] = [0, 1]
    return data.reshape(-1)


def write_dequant(path):
    rng = np.random.default_rng(20261125)
    writer = gguf.GGUFWriter(str(path), "kindred-golden")
    for qtype in [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q8_0, T.Q4_K, T.Q6_K, T.MXFP4, T.Q5_0]:
        block, _ = gguf.GGML_QUANT_SIZES[qtype]
        rows, row_elements = 3, max(block, 32) * 4
        raw = random_blocks(rng, qtype, rows * row_elements).reshape(rows, -1)
        expected = dequantize(raw, qtype).astype(np.float32).reshape(rows, row_elements)
        assert np.isfinite(expected).all(), qtype.name
        writer.add_tensor(f"{qtype.name}.blocks", raw, raw_dtype=qtype)
        writer.add_tensor(f"{qtype.name}.expected", expected)
    finish(writer)


MODEL_ROWS = [
    ("token_embd.weight", [0, 1, 12345, 49151]),   # Q8_0
    ("blk.0.attn_q.weight", [0, 100, 575]),       # Q4_1
    ("blk.29.ffn_down.weight", [7]),              # Q4_1, 1536-wide rows
    ("blk.0.attn_norm.weight", [0]),              # F32
]


def write_model_rows(path, model):
    reader = gguf.GGUFReader(str(model))
    tensors = {t.name: t for t in reader.tensors}
    writer = gguf.GGUFWriter(str(path), "kindred-golden")
    writer.add_uint64("source.file_size", os.path.getsize(model))
    for name, rows in MODEL_ROWS:
        tensor = tensors[name]
        data = np.asarray(tensor.data)
        for row in rows:
            raw = data[row].reshape(-1).view(np.uint8) if tensor.tensor_type != T.F32 else data.reshape(1, -1)[row].view(np.uint8)
            values = dequantize(raw, tensor.tensor_type).astype(np.float32).reshape(-1)
            assert values.size == tensor.shape[0], (name, values.size)
            writer.add_tensor(f"{name}#{row}", values)
    finish(writer)


GEMMA_Q5_0_ROWS = [
    ("blk.0.attn_q.weight", [0, 511]),
    ("blk.17.ffn_up.weight", [2047]),
]


def write_gemma_rows(path, model):
    reader = gguf.GGUFReader(str(model))
    tensors = {t.name: t for t in reader.tensors}
    writer = gguf.GGUFWriter(str(path), "kindred-golden")
    for name, rows in GEMMA_Q5_0_ROWS:
        tensor = tensors[name]
        assert tensor.tensor_type == T.Q5_0, (name, tensor.tensor_type)
        data = np.asarray(tensor.data)
        for row in rows:
            raw = data[row].reshape(-1).view(np.uint8)
            values = dequantize(raw, T.Q5_0).astype(np.float32).reshape(-1)
            assert values.size == tensor.shape[0], (name, values.size)
            writer.add_tensor(f"{name}#{row}.blocks", raw.reshape(1, -1), raw_dtype=T.Q5_0)
            writer.add_tensor(f"{name}#{row}", values)
    finish(writer)


def write_metadata(path):
    writer = gguf.GGUFWriter(str(path), "kindred-golden")
    writer.add_custom_alignment(64)
    writer.add_key_value("test.u8", 200, V.UINT8)
    writer.add_key_value("test.i8", -100, V.INT8)
    writer.add_key_value("test.u16", 60000, V.UINT16)
    writer.add_key_value("test.i16", -30000, V.INT16)
    writer.add_key_value("test.u32", 4000000000, V.UINT32)
    writer.add_key_value("test.i32", -2000000000, V.INT32)
    writer.add_key_value("test.f32", 1.5, V.FLOAT32)
    writer.add_key_value("test.bool", True, V.BOOL)
    writer.add_key_value("test.string", "h\u00e9llo, w\u00f6rld \u2713", V.STRING)
    writer.add_key_value("test.u64", 2**63 + 5, V.UINT64)
    writer.add_key_value("test.i64", -(2**62), V.INT64)
    writer.add_key_value("test.f64", 0.1, V.FLOAT64)
    writer.add_key_value("test.array.u8", [0, 255], V.ARRAY, sub_type=V.UINT8)
    writer.add_key_value("test.array.i32", [1, -2, 3], V.ARRAY)
    writer.add_key_value("test.array.u64", [2**64 - 1], V.ARRAY, sub_type=V.UINT64)
    writer.add_key_value("test.array.f32", [0.5, -2.25], V.ARRAY)
    writer.add_key_value("test.array.f64", [-0.1], V.ARRAY, sub_type=V.FLOAT64)
    writer.add_key_value("test.array.bool", [True, False], V.ARRAY)
    writer.add_key_value("test.array.string", ["a", "", "\u00fc"], V.ARRAY)
    writer.add_key_value("test.array.nested", [[1, 2], [3]], V.ARRAY)
    writer.add_key_value("test.array.nested_strings", [["x"], ["y", "z"]], V.ARRAY)
    writer.add_tensor("t.f32", np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5)
    q8 = np.zeros(34, dtype=np.uint8)
    q8[0:2] = np.array([1.0], dtype=np.float16).view(np.uint8)
    q8[2:] = np.arange(-16, 16, dtype=np.int8).view(np.uint8)
    writer.add_tensor("t.q8_0", q8.reshape(1, 34), raw_dtype=T.Q8_0)
    finish(writer)


def finish(writer):
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--gemma", type=Path, default=DEFAULT_GEMMA)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    write_dequant(OUT / "dequant.gguf")
    write_metadata(OUT / "metadata.gguf")
    write_model_rows(OUT / "model_rows.gguf", args.model)
    names = ["dequant.gguf", "metadata.gguf", "model_rows.gguf"]
    if args.gemma.exists():
        write_gemma_rows(OUT / "gemma3_q5_0_rows.gguf", args.gemma)
        names.append("gemma3_q5_0_rows.gguf")
    for name in names:
        print(f"{OUT / name}: {(OUT / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
