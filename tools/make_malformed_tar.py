#!/usr/bin/env python3
"""Writes tests/corpus/tar-malformed/: small hostile archives that data::extract_members (the
EmpatheticDialogues tarball unpacker of `kindred data fetch`) must refuse with kindred::Error naming
the file; EXPECTED.json holds the phrase each error must contain. The test asks for the tarball's
three members (empatheticdialogues/{train,valid,test}.csv) with a 1 MiB limit per member. They also
seed the fuzzer (fuzz/fuzz_tar_members.cpp).

Re-runnable; the output is deterministic (fixed mtimes, gzip without a timestamp).
Usage: python3 tools/make_malformed_tar.py
"""
import gzip
import io
import json
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "corpus" / "tar-malformed"
MEMBERS = ["empatheticdialogues/train.csv", "empatheticdialogues/valid.csv", "empatheticdialogues/test.csv"]


def tar_bytes(entries):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = data
                tar.addfile(info)
    return buffer.getvalue()


def gz(data):
    return gzip.compress(data, mtime=0)


def main():
    BAD.mkdir(parents=True, exist_ok=True)
    csv = b"conv_id,utterance_idx,context,prompt,speaker_idx,utterance,selfeval,tags\n"
    whole = [(name, "file", csv) for name in MEMBERS]
    cases = {
        "empty.tar.gz": (b"", "not a readable tar archive"),
        "not-an-archive.tar.gz": (b"conv_id,utterance_idx\n" * 40, "not a readable tar archive"),
        # A good first member, then a header block whose checksum does not add up.
        "damaged-second-header.tar.gz": (gz(tar_bytes(whole[:1])[:1024] + b"z" * 512 + b"\0" * 1024),
                                         "corrupt tar archive"),
        "missing-member.tar.gz": (gz(tar_bytes(whole[:2])), "member 'empatheticdialogues/test.csv' is missing"),
        "member-is-a-directory.tar.gz": (gz(tar_bytes([(MEMBERS[0], "dir", None)] + whole[1:])),
                                         "member 'empatheticdialogues/train.csv' is not a regular file"),
        "member-is-a-symlink.tar.gz": (gz(tar_bytes([(MEMBERS[0], "symlink", "/etc/passwd")] + whole[1:])),
                                       "member 'empatheticdialogues/train.csv' is not a regular file"),
        "oversized-member.tar.gz": (gz(tar_bytes([(MEMBERS[0], "file", b"x" * (3 << 19))] + whole[1:])),
                                    "more than the 1048576 allowed"),
        "truncated-gzip.tar.gz": (gz(tar_bytes(whole))[:60], "truncated gzip input"),
        "truncated-member.tar.gz": (gz(tar_bytes([(MEMBERS[0], "file", b"y" * 5000)] + whole[1:])[:512 + 2000]),
                                    "empatheticdialogues/train.csv"),
    }
    for name, (data, _) in cases.items():
        (BAD / name).write_bytes(data)
    (BAD / "EXPECTED.json").write_text(json.dumps({name: phrase for name, (_, phrase) in cases.items()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
