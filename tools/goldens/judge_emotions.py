#!/usr/bin/env python3
"""Writes tests/goldens/judge_emotions/golden.json: the judge consistency check's scores
(eval/judge_emotions.h) for a fixed tiny sample, computed by scikit-learn.

The sample is ten invented comments in GoEmotions' TSV format (text, gold label ids, comment id)
and, per comment, the answers a scripted judge gives on its 1st, 2nd, 3rd attempt. The answers are
read here by the documented rule, written independently of the C++ reader: <think> blocks dropped,
whitespace stripped, one Markdown fence allowed, then exactly one JSON object whose only key is
"emotions", a non-empty list of label names (ASCII case ignored). A comment with no readable
answer in three attempts is failed and left out; the scores are over the labelled comments:
sklearn's f1_score over all 28 labels (MultiLabelBinarizer on 0..27, zero_division=0), macro,
micro and per label, for the judge and for "neutral" on every labelled comment.

Usage: .venv/bin/python tools/goldens/judge_emotions.py
"""
import json
import re
from pathlib import Path

import sklearn
from sklearn.metrics import f1_score
from sklearn.preprocessing import MultiLabelBinarizer

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "goldens" / "judge_emotions"
LABELS = (ROOT.parent / "shared" / "goemotions" / "emotions.txt").read_text().split()
ATTEMPTS = 3

# (comment id, gold label ids, text, answers by attempt); texts are made up for this test.
COMMENTS = [
    ("c01", [15], "Thank you so much, this made my week!", ['{"emotions": ["gratitude"]}']),
    ("c02", [2, 3], "This is the third time they broke it. Unbelievable.", ['{"emotions": ["Annoyance", "anger", "anger"]}']),
    ("c03", [27], "The store opens at nine on weekdays.", ['```json\n{"emotions": ["neutral"]}\n```']),
    ("c04", [25, 9], "I really hoped she would call back, but she never did.",
     ['I think this is sadness.', '{"emotions": ["sadness"]}']),
    ("c05", [1, 17], "Haha that dog on the skateboard is the best thing today", ['<think>funny</think>{"emotions": ["amusement"]}']),
    ("c06", [14], "I am scared to open the letter from the hospital.",
     ['{"emotions": ["happiness"]}', '{"emotions": []}', '{"emotions": ["fear"], "why": "scared"}']),
    ("c07", [6, 7], "Wait, how does that even work? I'm lost.", ['{"emotions": ["confusion", "curiosity"]}']),
    ("c08", [0], "That was a brilliant goal, what a player.", ['{"emotions": ["admiration", "excitement"]}']),
    ("c09", [27], "Posting this here in case anyone needs it.", ['{"emotions": ["approval"]}']),
    ("c10", [20, 13], "Can't wait for the trip next week, it's going to be great!", ['{"emotions": ["excitement", "optimism", "joy"]}']),
]


def read_answer(text):
    """The label ids of an answer, or None when it does not read."""
    text = re.sub(r"^.*?</think>", "", text, flags=re.S) if "<think>" in text and "</think>" in text else text
    text = text.strip()
    fence = re.fullmatch(r"```(json)?[ \t]*\n(.*)```", text, flags=re.S | re.I)
    if fence:
        text = fence.group(2).strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or set(value) != {"emotions"}:
        return None
    names = value["emotions"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        return None
    lowered = [n.lower() for n in names]
    if any(n not in LABELS for n in lowered):
        return None
    return sorted({LABELS.index(n) for n in lowered})


def scores(truth, predicted):
    binarizer = MultiLabelBinarizer(classes=list(range(len(LABELS))))
    y_true = binarizer.fit_transform(truth)
    y_pred = binarizer.transform(predicted)
    return {
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "per_label_f1": [float(v) for v in f1_score(y_true, y_pred, average=None, zero_division=0)],
    }


def main():
    assert len(LABELS) == 28
    tsv = "".join(f"{text}\t{','.join(map(str, gold))}\t{cid}\n" for cid, gold, text, _ in COMMENTS)
    labelled, failed, truth, predicted, calls = [], [], [], [], 0
    for cid, gold, _, answers in COMMENTS:
        ids = None
        for answer in answers[:ATTEMPTS]:
            calls += 1
            ids = read_answer(answer)
            if ids is not None:
                break
        if ids is None:
            failed.append(cid)
            continue
        labelled.append({"comment": cid, "labels": [LABELS[i] for i in ids]})
        truth.append(gold)
        predicted.append(ids)
    golden = {
        "sklearn": sklearn.__version__,
        "judge_attempts": ATTEMPTS,
        "tsv": tsv,
        "answers": {cid: answers for cid, _, _, answers in COMMENTS},
        "calls": calls,
        "labelled": labelled,
        "failed": failed,
        "judge": scores(truth, predicted),
        "neutral": scores(truth, [[LABELS.index("neutral")]] * len(truth)),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    print(f"{OUT / 'golden.json'}: {len(labelled)} labelled, {len(failed)} failed, macro-F1 {golden['judge']['macro_f1']:.6f}")


if __name__ == "__main__":
    main()
