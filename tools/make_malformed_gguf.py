#!/usr/bin/env python3
"""Writes tests/corpus/gguf-malformed/: one small hand-made GGUF file per hostile case the
reader must reject with kindred::Error (the file name says which case). They also seed
the fuzzer (fuzz/README.md), together with the valid goldens in tests/goldens/gguf/.

Plain struct packing, no gguf package: most of these files are ones no real writer produces.
Re-runnable; the output is deterministic. Usage: python3 tools/make_malformed_gguf.py
"""
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "corpus" / "gguf-malformed"

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
T_F32, T_Q4_0 = 0, 2


def string(text):
    data = text if isinstance(text, bytes) else text.encode()
    return struct.pack("<Q", len(data)) + data


def kv(key, vtype, payload):
    return string(key) + struct.pack("<I", vtype) + payload


def tensor_info(name, dims, ttype, offset, n_dims=None):
    out = string(name) + struct.pack("<I", len(dims) if n_dims is None else n_dims)
    out += b"".join(struct.pack("<Q", d) for d in dims)
    return out + struct.pack("<IQ", ttype, offset)


def gguf(kvs=(), tensors=(), data=b"", version=3, alignment=32, kv_count=None, tensor_count=None, magic=b"GGUF"):
    head = magic + struct.pack("<I", version)
    head += struct.pack("<QQ", len(tensors) if tensor_count is None else tensor_count,
                        len(kvs) if kv_count is None else kv_count)
    body = head + b"".join(kvs) + b"".join(tensors)
    body += b"\0" * (-len(body) % alignment)
    return body + data


ARCH = kv("general.architecture", STRING, string("llama"))
F32_4 = struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)


def valid(**overrides):
    """A small valid file: two keys, two F32 tensors of four elements each."""
    args = dict(kvs=[ARCH, kv("x.count", U32, struct.pack("<I", 7))],
                tensors=[tensor_info("a", [4], T_F32, 0), tensor_info("b", [2, 2], T_F32, 32)],
                data=F32_4 + b"\0" * 16 + F32_4)
    args.update(overrides)
    return gguf(**args)


def cases():
    base = valid()
    return {
        "empty": b"",
        "truncated-header": base[:10],
        "bad-magic": valid(magic=b"GGML"),
        "version-1": valid(version=1),
        "version-4": valid(version=4),
        "big-endian": valid(version=0x03000000),
        "truncated-metadata": base[:60],
        "truncated-tensor-info": base[:160],
        "truncated-tensor-data": base[:-8],
        "huge-kv-count": valid(kv_count=2**62),
        "huge-tensor-count": valid(tensor_count=2**40),
        "huge-array-length": gguf(kvs=[kv("a", ARRAY, struct.pack("<IQ", U32, 2**61) + b"\0" * 8)]),
        "huge-string-length": gguf(kvs=[kv("s", STRING, struct.pack("<Q", 2**63) + b"abc")]),
        "huge-key-length": struct.pack("<4sIQQ", b"GGUF", 3, 0, 1) + struct.pack("<Q", 2**40) + b"key" + b"\0" * 16,
        "huge-nested-array-length": gguf(kvs=[kv("a", ARRAY, struct.pack("<IQ", ARRAY, 1) + struct.pack("<IQ", U8, 2**50))]),
        "deeply-nested-array": gguf(kvs=[kv("a", ARRAY, struct.pack("<IQ", ARRAY, 1) * 200 + struct.pack("<IQ", U8, 0))]),
        "unknown-value-type": gguf(kvs=[kv("x", 13, b"\0" * 8)]),
        "unknown-array-element-type": gguf(kvs=[kv("x", ARRAY, struct.pack("<IQ", 99, 1) + b"\0" * 8)]),
        "bad-bool": gguf(kvs=[kv("flag", BOOL, b"\x02")]),
        "empty-key": gguf(kvs=[kv("", U8, b"\x01")]),
        "duplicate-key": gguf(kvs=[ARCH, kv("x", U8, b"\x01"), kv("x", U8, b"\x02")]),
        "bad-utf8-key": gguf(kvs=[kv(b"bad\xc3\x28key", U8, b"\x01")]),
        "bad-utf8-value": gguf(kvs=[kv("name", STRING, string(b"\xed\xa0\x80 surrogate"))]),
        "bad-utf8-array-string": gguf(kvs=[kv("tokens", ARRAY, struct.pack("<IQ", STRING, 2) + string("ok") + string(b"\xff"))]),
        "bad-utf8-overlong": gguf(kvs=[kv("name", STRING, string(b"\xc0\xaf"))]),
        "bad-utf8-tensor-name": valid(tensors=[tensor_info(b"a\x80", [4], T_F32, 0), tensor_info("b", [2, 2], T_F32, 32)]),
        "alignment-not-power-of-two": valid(kvs=[ARCH, kv("general.alignment", U32, struct.pack("<I", 48))]),
        "alignment-zero": valid(kvs=[ARCH, kv("general.alignment", U32, struct.pack("<I", 0))]),
        "alignment-wrong-type": valid(kvs=[ARCH, kv("general.alignment", STRING, string("32"))]),
        "too-many-dims": valid(tensors=[tensor_info("a", [1, 1, 1, 1, 4], T_F32, 0)], data=F32_4),
        "zero-n-dims": valid(tensors=[tensor_info("a", [], T_F32, 0)], data=F32_4),
        "zero-dim": valid(tensors=[tensor_info("a", [4, 0], T_F32, 0)], data=F32_4),
        "overflowing-dims": valid(tensors=[tensor_info("a", [2**32, 2**32], T_F32, 0)], data=F32_4),
        "overflowing-bytes": valid(tensors=[tensor_info("a", [2**31, 2**31 + 1], T_F32, 0)], data=F32_4),
        "unknown-tensor-type": valid(tensors=[tensor_info("a", [4], 4, 0)], data=F32_4),
        "unknown-tensor-type-large": valid(tensors=[tensor_info("a", [4], 0xFFFFFFFF, 0)], data=F32_4),
        "row-not-block-multiple": valid(tensors=[tensor_info("a", [16], T_Q4_0, 0)], data=b"\0" * 32),
        "misaligned-offset": valid(tensors=[tensor_info("a", [4], T_F32, 0), tensor_info("b", [2, 2], T_F32, 16)]),
        "offset-out-of-file": valid(tensors=[tensor_info("a", [4], T_F32, 0), tensor_info("b", [2, 2], T_F32, 2**20)]),
        "offset-overflow": valid(tensors=[tensor_info("a", [4], T_F32, 0), tensor_info("b", [8], T_F32, 2**64 - 32)]),
        "tensor-past-end": valid(tensors=[tensor_info("a", [4], T_F32, 0), tensor_info("b", [4, 4], T_F32, 32)]),
        "overlapping-tensors": valid(tensors=[tensor_info("a", [16], T_F32, 0), tensor_info("b", [2, 2], T_F32, 32)],
                                     data=b"\0" * 64),
        "duplicate-tensor-name": valid(tensors=[tensor_info("a", [4], T_F32, 0), tensor_info("a", [2, 2], T_F32, 32)]),
        "empty-tensor-name": valid(tensors=[tensor_info("", [4], T_F32, 0), tensor_info("b", [2, 2], T_F32, 32)]),
    }


def main():
    BAD.mkdir(parents=True, exist_ok=True)
    for stale in BAD.glob("*.gguf"):
        stale.unlink()
    for name, data in cases().items():
        (BAD / f"{name}.gguf").write_bytes(data)
    print(f"{len(cases())} malformed files in {BAD}")


if __name__ == "__main__":
    main()
