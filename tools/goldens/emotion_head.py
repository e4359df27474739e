#!/usr/bin/env python3
"""Writes tests/goldens/emotion_head/*.json: references for the emotion head's multi-label pieces.

- bce.json: torch.nn.BCEWithLogitsLoss(reduction="sum") with and without pos_weight on float32
  logits and targets (0/1 plus fractional ones), in float64, with d(loss)/d(logits) from autograd:
  the reference for kernels::sigmoid_cross_entropy_forward/backward.
- goemotions_f1.json: fixed per-example probabilities of a GoEmotions-space head (28 labels) and of
  a Kindred-space head (27 labels) with random GoEmotions truth sets; the decision rule of
  eval/multilabel.h (labels with p >= t, the top label always; with no threshold, p >= half the top
  one), the Kindred head read out into the 28 labels by the mapping docs/data.md states (a
  GoEmotions label is predicted when its Kindred label is), then scikit-learn's precision, recall
  and F1 per label and macro/micro F1 (multilabel-indicator, zero_division=0): the reference for
  eval::score_goemotions, i.e. what `kindred eval emotion` prints.

Re-runnable: fixed seeds, so the files only change when torch's or scikit-learn's semantics change.
Usage: .venv/bin/python tools/goldens/emotion_head.py
"""
import json
import math
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.metrics import f1_score, precision_recall_fscore_support

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "goldens" / "emotion_head"

GOEMOTIONS = ["admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity",
              "desire", "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear",
              "gratitude", "grief", "joy", "love", "nervousness", "optimism", "pride", "realization", "relief",
              "remorse", "sadness", "surprise", "neutral"]
KINDRED = ["joy", "excitement", "gratitude", "pride", "admiration", "caring", "hope", "contentment", "trust",
           "nostalgia", "surprise", "curiosity", "sadness", "loneliness", "grief", "depression", "disappointment",
           "fear", "anxiety", "anger", "annoyance", "disgust", "shame", "guilt", "jealousy", "confusion", "neutral"]
# docs/data.md, "GoEmotions (28, id order of emotions.txt)".
GOEMOTIONS_TO_KINDRED = {
    "admiration": "admiration", "amusement": "joy", "anger": "anger", "annoyance": "annoyance",
    "approval": "admiration", "caring": "caring", "confusion": "confusion", "curiosity": "curiosity",
    "desire": "hope", "disappointment": "disappointment", "disapproval": "annoyance", "disgust": "disgust",
    "embarrassment": "shame", "excitement": "excitement", "fear": "fear", "gratitude": "gratitude",
    "grief": "grief", "joy": "joy", "love": "caring", "nervousness": "anxiety", "optimism": "hope",
    "pride": "pride", "realization": "surprise", "relief": "contentment", "remorse": "guilt",
    "sadness": "sadness", "surprise": "surprise", "neutral": "neutral"}


def floats(t):
    # 9 significant digits restore a float32 exactly.
    return [float(f"{v:.9g}") for v in np.asarray(t, dtype=np.float64).reshape(-1)]


def bce_cases():
    gen = torch.Generator().manual_seed(18)
    rows, classes = 5, 7
    logits = (torch.randn(rows, classes, generator=gen) * 3).float()
    logits[0, 0], logits[1, 1] = 40.0, -40.0  # saturated: softplus must stay finite and exact
    targets = (torch.rand(rows, classes, generator=gen) < 0.3).float()
    targets[2, 3], targets[4, 6] = 0.5, 0.25  # soft targets are allowed in [0, 1]
    pos_weight = (torch.rand(classes, generator=gen) * 4 + 0.25).float()
    cases = []
    for weighted in (False, True):
        z = logits.double().requires_grad_(True)
        loss_fn = torch.nn.BCEWithLogitsLoss(reduction="sum", pos_weight=pos_weight.double() if weighted else None)
        loss = loss_fn(z, targets.double())
        loss.backward()
        cases.append({"rows": rows, "classes": classes, "logits": floats(logits), "targets": floats(targets),
                      "pos_weight": floats(pos_weight) if weighted else None, "loss": loss.item(),
                      "dlogits": z.grad.tolist()})
    return {"torch": torch.__version__, "cases": cases}


def predict(p, threshold):
    top = int(np.argmax(p))  # first of equal maxima, as std::max_element
    floor = 0.5 * p[top] if threshold is None else threshold
    return sorted({c for c in range(len(p)) if p[c] >= floor} | {top})  # in double, as the C++ compares


def goemotions_case(name, head_labels, threshold, seed):
    rng = np.random.default_rng(seed)
    n = 50
    truth = [sorted(rng.choice(len(GOEMOTIONS), size=int(rng.integers(1, 4)), replace=False).tolist()) for _ in range(n)]
    raw = rng.random((n, len(head_labels))).astype(np.float32) ** 3  # skewed, like a trained head's
    if head_labels is GOEMOTIONS:
        probabilities = raw  # sigmoid-style: independent per label
    else:
        probabilities = (raw / raw.sum(axis=1, keepdims=True)).astype(np.float32)  # softmax-style: one unit of mass
    readout = [head_labels.index(g if head_labels is GOEMOTIONS else GOEMOTIONS_TO_KINDRED[g]) for g in GOEMOTIONS]
    predicted = []
    for row in probabilities:
        head = set(predict(row.astype(np.float64), threshold))
        predicted.append([g for g in range(len(GOEMOTIONS)) if readout[g] in head])
    y_true = np.zeros((n, len(GOEMOTIONS)), dtype=int)
    y_pred = np.zeros((n, len(GOEMOTIONS)), dtype=int)
    for i in range(n):
        y_true[i, truth[i]] = 1
        y_pred[i, predicted[i]] = 1
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    return {
        "name": name,
        "head_labels": head_labels,
        "threshold": threshold,
        "probabilities": floats(probabilities),
        "truth": truth,
        "predicted": predicted,
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "precision": p.tolist(), "recall": r.tolist(), "f1": f.tolist(), "support": s.tolist(),
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bce.json").write_text(json.dumps(bce_cases(), indent=1) + "\n")
    cases = [goemotions_case("goemotions_head_t0.3", GOEMOTIONS, 0.3, 1),
             goemotions_case("goemotions_head_relative", GOEMOTIONS, None, 2),
             goemotions_case("kindred_head_t0.1", KINDRED, 0.1, 3),
             goemotions_case("kindred_head_relative", KINDRED, None, 4)]
    (OUT / "goemotions_f1.json").write_text(json.dumps({"sklearn": sklearn.__version__, "cases": cases}) + "\n")


if __name__ == "__main__":
    main()
