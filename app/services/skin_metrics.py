"""The skin model card's numbers: per-class sensitivity and PPV with Wilson 95 % intervals, macro-F1, balanced and
top-3 accuracy, the confusion matrix and the expected calibration error, overall and by Fitzpatrick group.

Pure numpy, no randomness: ``flask skin-model train`` computes them on the held-out part, ``evaluate`` on another
labelled set, and a test recomputes them from the model file to check the stored ones. Floats are rounded to six
decimals so that the JSON in the model file and the report say the same thing.
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054  # the two-sided 95 % normal quantile
ECE_BINS = 10
FITZPATRICK_GROUPS = {"1": "I-II", "2": "I-II", "3": "III-IV", "4": "III-IV", "5": "V-VI", "6": "V-VI"}


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion; ``(0.0, 1.0)`` when there are no trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return _r(max(0.0, centre - half)), _r(min(1.0, centre + half))


def _r(value: float) -> float:
    return round(float(value), 6)


def fitzpatrick_group(value: str | None) -> str | None:
    """``I-II``, ``III-IV`` or ``V-VI`` for a Fitzpatrick type given as 1-6 or I-VI; ``None`` when not given."""
    if not value:
        return None
    text = str(value).strip().upper()
    roman = {"I": "1", "II": "2", "III": "3", "IV": "4", "V": "5", "VI": "6"}
    return FITZPATRICK_GROUPS.get(roman.get(text, text))


def evaluate(probabilities: np.ndarray, truth: np.ndarray, labels: list[str] | tuple[str, ...],
             groups: list[str | None] | None = None) -> dict:  # fmt: skip
    """Every number of the model card for one set of predictions.

    Args:
        probabilities: ``(n, k)`` class probabilities, columns in ``labels`` order.
        truth: ``(n,)`` the true class index of each row.
        labels: the class names.
        groups: each row's Fitzpatrick group (``None`` unknown); adds ``by_fitzpatrick`` when any is known.

    Returns:
        ``n``, ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``top3_accuracy``, ``ece``, ``confusion`` (rows:
        truth, columns: prediction) and ``per_class`` (label → ``n``, ``sensitivity``, ``sensitivity_ci``,
        ``ppv``, ``ppv_ci``, ``f1``); ``by_fitzpatrick`` (group → the same without the confusion matrix).
    """
    result = _evaluate(np.asarray(probabilities, dtype=np.float64), np.asarray(truth, dtype=np.int64), list(labels))
    if groups is not None and any(groups):
        by_group = {}
        for group in sorted({g for g in groups if g}):
            rows = np.array([g == group for g in groups])
            part = _evaluate(np.asarray(probabilities)[rows], np.asarray(truth)[rows], list(labels))
            part.pop("confusion")
            by_group[group] = part
        unknown = sum(1 for g in groups if not g)
        if unknown:
            by_group["unknown"] = {"n": unknown}
        result["by_fitzpatrick"] = by_group
    return result


def _evaluate(probabilities: np.ndarray, truth: np.ndarray, labels: list[str]) -> dict:
    k = len(labels)
    n = int(truth.size)
    predicted = np.argmax(probabilities, axis=1) if n else np.zeros(0, dtype=np.int64)
    confusion = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(truth, predicted, strict=True):
        confusion[t, p] += 1
    per_class, recalls, f1s = {}, [], []
    for index, label in enumerate(labels):
        tp = int(confusion[index, index])
        support = int(confusion[index].sum())
        claimed = int(confusion[:, index].sum())
        sensitivity = tp / support if support else None
        ppv = tp / claimed if claimed else None
        f1 = 2 * tp / (support + claimed) if support + claimed else None
        per_class[label] = {
            "n": support,
            "sensitivity": None if sensitivity is None else _r(sensitivity),
            "sensitivity_ci": list(wilson(tp, support)),
            "ppv": None if ppv is None else _r(ppv),
            "ppv_ci": list(wilson(tp, claimed)),
            "f1": None if f1 is None else _r(f1),
        }
        if support:
            recalls.append(sensitivity)
            f1s.append(f1)
    top3 = np.argsort(-probabilities, axis=1, kind="stable")[:, :3] if n else np.zeros((0, 3), dtype=np.int64)
    return {
        "n": n,
        "accuracy": _r(np.trace(confusion) / n) if n else None,
        "balanced_accuracy": _r(np.mean(recalls)) if recalls else None,
        "macro_f1": _r(np.mean(f1s)) if f1s else None,
        "top3_accuracy": _r(np.mean([t in row for t, row in zip(truth, top3, strict=True)])) if n else None,
        "ece": _r(calibration_error(probabilities, truth)) if n else None,
        "confusion": confusion.tolist(),
        "per_class": per_class,
    }


def calibration_error(probabilities: np.ndarray, truth: np.ndarray, bins: int = ECE_BINS) -> float:
    """The expected calibration error of the top prediction: the mean, over equal-width confidence bins weighted
    by their size, of |accuracy - mean confidence|."""
    confidence = probabilities.max(axis=1)
    correct = (np.argmax(probabilities, axis=1) == truth).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        rows = which == b
        if rows.any():
            total += rows.sum() / truth.size * abs(correct[rows].mean() - confidence[rows].mean())
    return float(total)
