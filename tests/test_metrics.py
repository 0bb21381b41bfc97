"""realfake.metrics against scikit-learn on random inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score, roc_curve

from realfake.metrics import RealFakeMetrics, compute_metrics, equal_error_rate, threshold_at_fpr


@pytest.fixture(scope="module")
def metric():
    return RealFakeMetrics()


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 300),
    threshold=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
    ties=st.booleans(),
)
def test_matches_scikit_learn(n, threshold, seed, ties):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = np.clip(rng.normal(0.4 + 0.2 * labels, 0.25), 0, 1)
    if ties:
        scores = np.round(scores, 1)
    got = compute_metrics(scores, labels, threshold)
    predicted = (scores >= threshold).astype(int)
    assert got["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert got["precision"] == pytest.approx(precision_score(labels, predicted, zero_division=0))
    assert got["recall"] == pytest.approx(recall_score(labels, predicted, zero_division=0))
    assert got["f1"] == pytest.approx(f1_score(labels, predicted, zero_division=0))
    assert got["tp"] + got["fp"] + got["tn"] + got["fn"] == n
    assert got["tp"] == int(((predicted == 1) & (labels == 1)).sum())
    if len(set(labels)) == 2:
        assert got["roc_auc"] == pytest.approx(roc_auc_score(labels, scores))
        fpr, tpr, _ = roc_curve(labels, scores)
        # The EER lies between the best and worst of max(FPR, FNR) along the curve.
        assert min(np.maximum(fpr, 1 - tpr)) >= got["eer"] - 1e-9
        assert got["eer"] >= min(np.minimum(fpr, 1 - tpr)) - 1e-9
    else:
        assert math.isnan(got["roc_auc"]) and math.isnan(got["eer"])


def test_equal_error_rate_of_known_cases():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert equal_error_rate(np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9]), labels)[0] == 0.0
    assert equal_error_rate(np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1]), labels)[0] == 1.0
    eer, threshold = equal_error_rate(np.array([0.1, 0.2, 0.3, 0.7, 0.6, 0.8, 0.85, 0.9]), labels)
    assert eer == pytest.approx(0.25) and 0.6 <= threshold <= 0.7


def test_the_evaluate_module_computes_the_same(metric):
    rng = np.random.default_rng(1)
    labels, scores = rng.integers(0, 2, 50), rng.random(50)
    for start in range(0, 50, 10):  # evaluate's incremental API
        metric.add_batch(predictions=scores[start : start + 10], references=labels[start : start + 10])
    assert metric.compute(threshold=0.3) == pytest.approx(compute_metrics(scores, labels, 0.3), nan_ok=True)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 300),
    max_fpr=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
    ties=st.booleans(),
)
def test_threshold_at_fpr_is_the_lowest_that_keeps_false_positives_within_the_cap(n, max_fpr, seed, ties):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    labels[0] = 0  # at least one real face
    scores = rng.uniform(0, 1, n)
    if ties:
        scores = np.round(scores, 1)
    threshold = threshold_at_fpr(scores, labels, max_fpr)
    real = scores[labels == 0]
    assert (real >= threshold).mean() <= max_fpr + 1e-9
    # any lower threshold that is still above some real score lets in more false positives
    lower = real[real < threshold]
    if lower.size:
        assert (real >= lower.max()).mean() > max_fpr
