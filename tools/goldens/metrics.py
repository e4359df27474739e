#!/usr/bin/env python3
"""Writes tests/goldens/metrics/cases.json: classification and regression scores from scikit-learn,
the reference for eval/metrics.h (zero_division=0 everywhere).

Each single-label case holds num_classes, truth, predicted and sklearn's accuracy, per-class
precision/recall/F1/support over the labels present in truth or predictions (sklearn's default
`labels`), the macro averages and the confusion matrix over 0..num_classes-1. Multi-label cases
hold label-id lists per example and sklearn's macro/micro F1 (multilabel-indicator), per-label F1
and subset accuracy. Regression cases hold mean_squared_error and mean_absolute_error.

Re-runnable: fixed seeds, so the file only changes when scikit-learn's semantics change.
Usage: .venv/bin/python tools/goldens/metrics.py
"""
import json
from pathlib import Path

import numpy as np
import sklearn
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, mean_absolute_error,
                             mean_squared_error, precision_recall_fscore_support)
from sklearn.preprocessing import MultiLabelBinarizer

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "goldens" / "metrics"


def single_label(name, truth, predicted, num_classes):
    present = sorted(set(truth) | set(predicted))
    p, r, f, s = precision_recall_fscore_support(truth, predicted, labels=present, average=None, zero_division=0)
    macro = precision_recall_fscore_support(truth, predicted, average="macro", zero_division=0)
    return {
        "name": name,
        "num_classes": num_classes,
        "truth": list(map(int, truth)),
        "predicted": list(map(int, predicted)),
        "accuracy": float(accuracy_score(truth, predicted)),
        "labels": present,
        "precision": p.tolist(),
        "recall": r.tolist(),
        "f1": f.tolist(),
        "support": s.tolist(),
        "macro_precision": float(macro[0]),
        "macro_recall": float(macro[1]),
        "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
        "confusion": confusion_matrix(truth, predicted, labels=list(range(num_classes))).tolist(),
    }


def multi_label(name, truth, predicted, num_labels):
    binarizer = MultiLabelBinarizer(classes=list(range(num_labels)))
    t = binarizer.fit_transform(truth)
    p = binarizer.transform(predicted)
    return {
        "name": name,
        "num_labels": num_labels,
        "truth": [sorted(set(x)) for x in truth],
        "predicted": [sorted(set(x)) for x in predicted],
        "macro_f1": float(f1_score(t, p, average="macro", zero_division=0)),
        "micro_f1": float(f1_score(t, p, average="micro", zero_division=0)),
        "f1": f1_score(t, p, average=None, zero_division=0).tolist(),
        "exact_match": float(accuracy_score(t, p)),
    }


def main():
    rng = np.random.default_rng(20261126)
    single = [
        single_label("perfect", [0, 1, 2, 2], [0, 1, 2, 2], 3),
        single_label("all_wrong", [0, 0, 1, 1], [1, 1, 0, 0], 2),
        single_label("only_predicted_class", [0, 0, 1, 1, 0], [0, 2, 1, 1, 0], 3),
        single_label("only_true_class", [0, 1, 2, 2], [0, 1, 1, 1], 3),
        single_label("absent_classes_excluded", [1, 3, 3, 1, 3], [1, 3, 1, 1, 3], 6),
        single_label("one_class", [4, 4, 4], [4, 4, 4], 5),
        single_label("one_example", [2], [0], 3),
    ]
    for i, (n, k) in enumerate([(50, 4), (200, 7), (500, 32)]):
        truth = rng.integers(0, k, n)
        # Mostly right, so scores are far from both 0 and 1.
        predicted = np.where(rng.random(n) < 0.6, truth, rng.integers(0, k, n))
        single.append(single_label(f"random_{i}", truth.tolist(), predicted.tolist(), k))

    multi = [
        multi_label("simple", [[0], [1, 2], [2], []], [[0], [1], [2, 0], []], 3),
        multi_label("unused_label_counts_as_zero", [[0], [1]], [[0], [1]], 4),
        multi_label("empty_sets", [[], []], [[], [1]], 2),
    ]
    for i, (n, k) in enumerate([(60, 5), (300, 28)]):
        truth = [sorted(set(rng.integers(0, k, rng.integers(0, 3)).tolist())) for _ in range(n)]
        predicted = [t if rng.random() < 0.5 else sorted(set(rng.integers(0, k, rng.integers(0, 4)).tolist())) for t in truth]
        multi.append(multi_label(f"random_{i}", truth, predicted, k))

    regression = []
    for i, n in enumerate([1, 10, 400]):
        truth = rng.uniform(-1, 1, n)
        predicted = np.clip(truth + rng.normal(0, 0.3, n), -1, 1)
        regression.append({
            "name": f"random_{i}",
            "truth": truth.tolist(),
            "predicted": predicted.tolist(),
            "mse": float(mean_squared_error(truth, predicted)),
            "mae": float(mean_absolute_error(truth, predicted)),
        })

    OUT.mkdir(parents=True, exist_ok=True)
    document = {"sklearn_version": sklearn.__version__, "single_label": single, "multi_label": multi, "regression": regression}
    (OUT / "cases.json").write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {OUT / 'cases.json'}")


if __name__ == "__main__":
    main()
