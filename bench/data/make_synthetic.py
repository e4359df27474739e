#!/usr/bin/env python3
"""Synthetic inputs of the released datasets' sizes for `kindred data prepare` (bench/data/run.sh):
the bundled samples (data/samples/, written for Kindred) repeated with fresh ids until each split
has as many conversations as the real release:

- EmpatheticDialogues: 19,533 / 2,770 / 2,547 conversations (train / valid / test, the paper's
  counts).
- ESConv: 1,300 conversations in one ESConv.json (the released file's count).

Usage: python3 bench/data/make_synthetic.py OUT_DIR [SCALE]   (SCALE multiplies every count)
"""
import csv
import io
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "data" / "samples"
ED_CONVERSATIONS = {"train": 19533, "valid": 2770, "test": 2547}
ESCONV_CONVERSATIONS = 1300


def ed_conversations(path):
    """Rows of each conversation, in file order (the CSV is comma-split as ParlAI does: no quoting)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header, conversations, current, key = lines[0], [], [], None
    for line in lines[1:]:
        conv_id = line.split(",", 1)[0]
        if conv_id != key and current:
            conversations.append(current)
            current = []
        key = conv_id
        current.append(line)
    if current:
        conversations.append(current)
    return header, conversations


def write_ed(out, scale):
    folder = out / "empatheticdialogues"
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in ED_CONVERSATIONS.items():
        header, conversations = ed_conversations(SAMPLES / "empatheticdialogues" / f"{split}.csv")
        with open(folder / f"{split}.csv", "w", encoding="utf-8") as f:
            f.write(header + "\n")
            for n in range(int(count * scale)):
                rows = conversations[n % len(conversations)]
                fresh = f"hit:{split}{n}_conv:{n}"
                for row in rows:
                    f.write(fresh + row[row.index(","):] + "\n")


def write_esconv(out, scale):
    folder = out / "esconv"
    folder.mkdir(parents=True, exist_ok=True)
    samples = json.loads((SAMPLES / "esconv" / "ESConv.json").read_text(encoding="utf-8"))
    conversations = []
    for n in range(int(ESCONV_CONVERSATIONS * scale)):
        conversation = json.loads(json.dumps(samples[n % len(samples)]))
        conversation["situation"] = f"{conversation['situation']} (#{n})"  # a fresh id (hash of the texts)
        conversations.append(conversation)
    (folder / "ESConv.json").write_text(json.dumps(conversations, indent=2, ensure_ascii=False), encoding="utf-8")


def main():
    out = Path(sys.argv[1])
    scale = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    write_ed(out, scale)
    write_esconv(out, scale)


if __name__ == "__main__":
    main()
