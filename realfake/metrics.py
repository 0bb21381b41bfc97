"""Real/fake evaluation metrics as an ``evaluate`` module of our own, shared by train/ and the CLI.

``evaluate.load("accuracy")`` fetches its script from the Hub; this module needs no network.
Predictions are fake probabilities, references are 1 for fake and 0 for real.

>>> metric = RealFakeMetrics()
>>> metric.compute(predictions=[0.1, 0.8, 0.7], references=[0, 1, 0], threshold=0.5)["accuracy"]
0.666...
"""

from __future__ import annotations

import math

import datasets
import evaluate
import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

_DESCRIPTION = """Threshold metrics (accuracy, precision, recall and F1 of the fake class) at a given
decision threshold, and threshold-free ones (ROC AUC, equal error rate), for a real/fake classifier."""

_INPUTS = """
Args:
    predictions: fake probabilities in [0, 1].
    references: 1 for a fake image, 0 for a real one.
    threshold: a prediction at or above it counts as fake (default 0.5).
Returns:
    accuracy, precision, recall, f1, roc_auc, eer, eer_threshold, threshold,
    n, n_real, n_fake, tp, fp, tn, fn. roc_auc, eer and eer_threshold are NaN when only one
    class is present.
"""


class RealFakeMetrics(evaluate.Metric):
    """The realfake metrics; instantiate directly (no Hub look-up)."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("int32")}
            ),
        )

    def _compute(self, predictions, references, threshold: float = 0.5) -> dict:
        return compute_metrics(np.asarray(predictions), np.asarray(references), threshold)


def compute_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict:
    """The metrics of :class:`RealFakeMetrics` as plain floats and ints."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    predicted = (scores >= threshold).astype(np.int64)
    tn, fp, fn, tp = confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predicted, average="binary", pos_label=1, zero_division=0
    )
    both_classes = len(np.unique(labels)) == 2
    eer, eer_threshold = equal_error_rate(scores, labels) if both_classes else (math.nan, math.nan)
    return {
        "accuracy": float(accuracy_score(labels, predicted)) if len(labels) else math.nan,
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "roc_auc": float(roc_auc_score(labels, scores)) if both_classes else math.nan,
        "eer": eer,
        "eer_threshold": eer_threshold,
        "threshold": float(threshold),
        "n": int(len(labels)),
        "n_real": int((labels == 0).sum()),
        "n_fake": int((labels == 1).sum()),
        "tp": int(tp),
        "fp": int(fp),
        "tn": int(tn),
        "fn": int(fn),
    }


def equal_error_rate(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The error rate where false positives and false negatives are equally likely, and its threshold.

    Interpolated linearly between the two ROC points that straddle FPR = FNR.
    """
    fpr, tpr, thresholds = roc_curve(labels, scores, pos_label=1)
    thresholds = np.minimum(thresholds, 1.0)  # the first is +inf: "call nothing fake"
    fnr = 1.0 - tpr
    gap = fnr - fpr  # decreasing from 1 to -1 along the curve
    i = int(np.argmax(gap <= 0))
    if i == 0 or gap[i] == 0:
        return float(fpr[i]), float(thresholds[i])
    w = gap[i - 1] / (gap[i - 1] - gap[i])
    eer = fpr[i - 1] + w * (fpr[i] - fpr[i - 1])
    threshold = thresholds[i - 1] + w * (thresholds[i] - thresholds[i - 1])
    return float(eer), float(threshold)


def threshold_at_fpr(scores: np.ndarray, labels: np.ndarray, max_fpr: float) -> float:
    """The lowest threshold at which at most ``max_fpr`` of the real faces (label 0) score at or
    above it, i.e. are called fake."""
    real = np.sort(np.asarray(scores, dtype=np.float64)[np.asarray(labels) == 0])
    allowed = int(np.floor(max_fpr * len(real) + 1e-9))  # reals that may be called fake
    if len(real) == 0:
        return 0.0
    if allowed >= len(real):
        return float(real[0])
    # Just above the highest real score that must stay below it.
    return float(np.nextafter(real[len(real) - allowed - 1], np.inf))
