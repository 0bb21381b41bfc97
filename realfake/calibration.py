"""Scores that mean what they say, and three verdicts a person can act on.

A classifier's softmax ranks faces well but need not be calibrated: among faces it gives 0.8, far
more or fewer than 80% may be fake. After training, :func:`fit_calibration` fits Platt scaling (a
temperature and a bias on the logit, scikit-learn's logistic regression) to held-out scores, and
:func:`choose_verdict_thresholds` picks two thresholds on the calibrated scores: ``fake`` at or above
the upper one, ``real`` at or below the lower one, ``uncertain`` between. Both are stored in the
model's config (:data:`CALIBRATION_KEY`, :data:`VERDICTS_KEY`), so they travel with the weights, and
realfake applies them whenever it scores a face.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

CALIBRATION_KEY = "realfake_calibration"
VERDICTS_KEY = "realfake_verdict_thresholds"
VERDICTS = ("real", "uncertain", "fake")
MAX_REAL_CALLED_FAKE = 0.01  # of held-out real faces, at most this share may get the verdict "fake"
MAX_FAKE_CALLED_REAL = 0.01  # of held-out fakes, at most this share may get the verdict "real"
ECE_BINS = 10
_EPS = 1e-7  # scores are clipped this far from 0 and 1 before taking their logit


def _logit(scores: np.ndarray) -> np.ndarray:
    scores = np.clip(np.asarray(scores, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(scores) - np.log1p(-scores)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function, without overflow warnings


def pool_probabilities(probabilities, trim: float = 0.0) -> float:
    """One probability for several of the same face (a video track's frames): the sigmoid of the mean
    of their logits, after dropping the ``trim`` share of the highest and of the lowest."""
    from scipy.stats import trim_mean

    return float(_sigmoid(trim_mean(_logit(probabilities), trim)))


@dataclass(frozen=True)
class Calibration:
    """Platt scaling: P(fake) = sigmoid(scale * logit(score) + bias). The identity by default."""

    scale: float = 1.0
    bias: float = 0.0
    method: str = "platt"

    def __call__(self, scores) -> np.ndarray:
        """Calibrated P(fake) for raw scores (any shape), as float64."""
        return _sigmoid(self.scale * _logit(scores) + self.bias)

    def inverse(self, probabilities) -> np.ndarray:
        """The raw scores that map to these calibrated probabilities."""
        return _sigmoid((_logit(probabilities) - self.bias) / self.scale)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_config(cls, config) -> Calibration | None:
        """The calibration stored in a model config, or None for a model without one."""
        stored = getattr(config, CALIBRATION_KEY, None)
        if not stored:
            return None
        if stored.get("method", "platt") != "platt":
            raise ValueError(f"Unknown calibration method {stored['method']!r} in the model config.")
        return cls(scale=float(stored["scale"]), bias=float(stored["bias"]))


def fit_calibration(scores, labels) -> Calibration:
    """Platt scaling fitted to raw scores and their labels (1 = fake) by maximum likelihood."""
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels, dtype=int)
    if len(set(labels.tolist())) < 2:
        raise ValueError("Calibration needs both real and fake faces among its scores.")
    fit = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(scores)[:, None], labels)
    return Calibration(scale=float(fit.coef_[0, 0]), bias=float(fit.intercept_[0]))


@dataclass(frozen=True)
class VerdictThresholds:
    """``fake`` when P(fake) >= ``fake_at_least``, ``real`` when P(fake) <= ``real_at_most``,
    ``uncertain`` between."""

    real_at_most: float
    fake_at_least: float

    def verdict(self, probability: float) -> str:
        if probability >= self.fake_at_least:
            return "fake"
        if probability <= self.real_at_most:
            return "real"
        return "uncertain"

    def verdicts(self, probabilities, novel=None) -> np.ndarray:
        """:meth:`verdict` for an array of probabilities; where ``novel`` (a mask of faces unlike
        the real photos the model knows, :mod:`realfake.novelty`), "uncertain" instead of "real"."""
        p = np.asarray(probabilities, dtype=np.float64)
        real = p <= self.real_at_most
        if novel is not None:
            real &= ~np.asarray(novel, dtype=bool)
        return np.where(p >= self.fake_at_least, "fake", np.where(real, "real", "uncertain"))

    def shares(self, probabilities, novel=None) -> dict[str, float | None]:
        """The share of these faces given each verdict (None for each where there are none)."""
        verdicts = self.verdicts(probabilities, novel)
        return {v: (float(np.mean(verdicts == v)) if len(verdicts) else None) for v in VERDICTS}

    def to_dict(self) -> dict:
        return asdict(self)  # exact: a rounded threshold could let one more face past its rule

    @classmethod
    def from_config(cls, config) -> VerdictThresholds | None:
        """The thresholds stored in a model config, or None for a model without them."""
        stored: Mapping | None = getattr(config, VERDICTS_KEY, None)
        if not stored:
            return None
        return cls(real_at_most=float(stored["real_at_most"]), fake_at_least=float(stored["fake_at_least"]))

    @classmethod
    def binary(cls, threshold: float) -> VerdictThresholds:
        """No uncertain band: ``fake`` from ``threshold`` up, ``real`` below it."""
        return cls(real_at_most=math.nextafter(threshold, -math.inf), fake_at_least=threshold)


def choose_verdict_thresholds(
    scores,
    labels,
    max_real_called_fake: float = MAX_REAL_CALLED_FAKE,
    max_fake_called_real: float = MAX_FAKE_CALLED_REAL,
    decision_threshold: float = 0.5,
    groups=None,
) -> VerdictThresholds:
    """The widest-deciding pair of thresholds that keeps both error rules on these scores.

    The upper threshold is the lowest at which at most ``max_real_called_fake`` of the real faces
    (label 0) score at or above it; the lower one is the highest at which at most
    ``max_fake_called_real`` of the fakes score at or below it. With ``groups`` (a source per
    score), the rule for real faces also holds within every group of real faces large enough to
    measure it (at least 1 / ``max_real_called_fake`` faces): no kind of real photo is called fake
    more often than the rule allows just because it is outnumbered by others. Where the two rules
    leave no faces between them, the band closes at ``decision_threshold`` (kept within the two).
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=int)
    real, fake = scores[labels == 0], np.sort(scores[labels == 1])
    if not len(real) or not len(fake):
        raise ValueError("Verdict thresholds need both real and fake faces among the scores.")
    real_groups = [real]
    if groups is not None:
        groups = np.asarray(groups)[labels == 0]
        real_groups += [real[groups == g] for g in np.unique(groups)]
    upper = max(
        _upper_threshold(group, max_real_called_fake)
        for group in real_groups
        if group is real or len(group) * max_real_called_fake >= 1
    )
    allowed_fake = math.floor(max_fake_called_real * len(fake))  # fakes that may score <= lower
    lower = math.nextafter(float(fake[allowed_fake]), -math.inf)
    if lower >= upper:
        return VerdictThresholds.binary(min(max(decision_threshold, upper), lower))
    return VerdictThresholds(real_at_most=lower, fake_at_least=upper)


def _upper_threshold(real: np.ndarray, max_share: float) -> float:
    """The lowest threshold at which at most ``max_share`` of these real scores are at or above it."""
    real = np.sort(real)
    allowed = math.floor(max_share * len(real))
    return math.nextafter(float(real[len(real) - 1 - allowed]), math.inf)


def reliability(labels, probabilities, bins: int = ECE_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per non-empty bin of equal width in [0, 1]: mean predicted P(fake), share of fakes, count."""
    labels = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    index = np.clip(np.digitize(p, np.linspace(0.0, 1.0, bins + 1)[1:-1]), 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    filled = counts > 0
    mean_p = np.bincount(index, weights=p, minlength=bins)[filled] / counts[filled]
    share = np.bincount(index, weights=labels, minlength=bins)[filled] / counts[filled]
    return mean_p, share, counts[filled]


def expected_calibration_error(labels, probabilities, bins: int = ECE_BINS) -> float:
    """The count-weighted mean gap between predicted P(fake) and the share of fakes, over bins."""
    mean_p, share, counts = reliability(labels, probabilities, bins)
    return float(np.sum(np.abs(mean_p - share) * counts) / max(1, counts.sum()))


def verdict_report(labels, probabilities, thresholds: VerdictThresholds, novel=None) -> dict:
    """How faces of each class (label 0 real, 1 fake) were judged, as shares of the class; the share
    of all faces left uncertain; the accuracy on the faces that got a verdict of real or fake; and
    the expected calibration error of ``probabilities``. Shares of an absent class are None.
    ``novel``: see :meth:`VerdictThresholds.verdicts`."""
    labels = np.asarray(labels, dtype=int)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    novel = np.zeros(len(labels), dtype=bool) if novel is None else np.asarray(novel, dtype=bool)
    verdicts = thresholds.verdicts(probabilities, novel)
    shares = {
        name: thresholds.shares(probabilities[labels == value], novel[labels == value])
        for value, name in ((0, "real"), (1, "fake"))
    }
    decided = verdicts != "uncertain"
    right = (verdicts == "fake") == (labels == 1)
    return {
        "verdicts": shares,
        "uncertain": float(np.mean(~decided)) if len(labels) else None,
        "decided_accuracy": float(np.mean(right[decided])) if decided.any() else None,
        "ece": expected_calibration_error(labels, probabilities) if len(labels) else None,
    }
