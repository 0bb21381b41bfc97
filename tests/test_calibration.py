"""Calibrated P(fake) and the three verdicts: fitting, the threshold rules, and every interface."""

from __future__ import annotations

import csv
import json
import math
import shutil

import numpy as np
import pytest
from conftest import REAL_FACES, run_cli
from sklearn.calibration import calibration_curve

import realfake
from realfake.calibration import (
    CALIBRATION_KEY,
    VERDICTS_KEY,
    Calibration,
    VerdictThresholds,
    choose_verdict_thresholds,
    expected_calibration_error,
    fit_calibration,
    reliability,
    verdict_report,
)
from train import calibrate


def miscalibrated(n: int = 20000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores of an overconfident, fake-leaning model, sigmoid(3 z + 1), for faces whose true
    P(fake) is sigmoid(z); and labels drawn from the truth."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return 1 / (1 + np.exp(-(3 * z + 1))), labels


def test_platt_scaling_undoes_a_known_miscalibration():
    scores, labels = miscalibrated()
    calibration = fit_calibration(scores, labels)
    assert calibration.scale == pytest.approx(1 / 3, abs=0.03)
    assert calibration.bias == pytest.approx(-1 / 3, abs=0.05)
    assert expected_calibration_error(labels, scores) > 0.08
    fresh_scores, fresh_labels = miscalibrated(seed=1)  # measured on faces it was not fitted on
    assert expected_calibration_error(fresh_labels, calibration(fresh_scores)) < 0.015
    assert calibration.inverse(calibration(np.array([0.01, 0.3, 0.9]))) == pytest.approx([0.01, 0.3, 0.9])


def test_the_reliability_curve_is_scikit_learns():
    scores, labels = miscalibrated(n=3000)
    mean_p, share, counts = reliability(labels, scores, bins=10)
    true, predicted = calibration_curve(labels, scores, n_bins=10, strategy="uniform")
    assert share == pytest.approx(true) and mean_p == pytest.approx(predicted)
    assert counts.sum() == 3000
    ece = np.sum(np.abs(true - predicted) * counts) / counts.sum()
    assert expected_calibration_error(labels, scores) == pytest.approx(ece)


def test_the_verdict_thresholds_keep_both_rules_on_their_own_scores():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.beta(2, 5, 700), rng.beta(5, 2, 500)])  # overlapping classes
    labels = np.array([0] * 700 + [1] * 500)
    bands = choose_verdict_thresholds(scores, labels)
    verdicts = bands.verdicts(scores)
    assert np.mean(verdicts[labels == 0] == "fake") <= 0.01
    assert np.mean(verdicts[labels == 1] == "real") <= 0.01
    # The widest deciding pair: one step further in, each rule would break.
    assert (
        np.mean(scores[labels == 0] >= np.max(scores[(labels == 0) & (scores < bands.fake_at_least)])) > 0.01
    )
    assert (
        np.mean(scores[labels == 1] <= np.min(scores[(labels == 1) & (scores > bands.real_at_most)])) > 0.01
    )
    report = verdict_report(labels, scores, bands)
    assert report["uncertain"] == pytest.approx(np.mean(verdicts == "uncertain"))
    assert sum(report["verdicts"]["real"].values()) == pytest.approx(1.0)


def test_a_large_group_of_real_faces_keeps_its_own_one_percent():
    rng = np.random.default_rng(1)
    # 900 real faces of one kind scored low, 200 of another kind often scored high; 500 fakes.
    reals = np.concatenate([rng.uniform(0.0, 0.3, 900), rng.uniform(0.0, 0.95, 200)])
    scores = np.concatenate([reals, rng.uniform(0.9, 1.0, 500)])
    labels = np.array([0] * 1100 + [1] * 500)
    groups = ["easy"] * 900 + ["hard"] * 200 + ["fake"] * 500
    pooled = choose_verdict_thresholds(scores, labels)
    grouped = choose_verdict_thresholds(scores, labels, groups=groups)
    hard = reals[900:]
    assert np.mean(hard >= pooled.fake_at_least) > 0.01  # pooled, the outnumbered kind is accused more
    assert np.mean(hard >= grouped.fake_at_least) <= 0.01
    # A group too small to measure 1% in does not move the threshold.
    few = choose_verdict_thresholds(scores, labels, groups=["easy"] * 1050 + ["rare"] * 50 + ["fake"] * 500)
    assert few.fake_at_least <= grouped.fake_at_least


def test_separable_scores_leave_no_uncertain_band():
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    bands = choose_verdict_thresholds(scores, [0, 0, 0, 1, 1, 1], decision_threshold=0.5)
    assert bands.fake_at_least == 0.5 and bands.real_at_most < 0.5
    assert list(bands.verdicts([0.49, 0.5, 0.51])) == ["real", "fake", "fake"]


def with_bands(source, target, real_at_most: float, fake_at_least: float, calibration=None):
    """A copy of a model folder with these verdict thresholds (and calibration) in its config."""
    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    config[VERDICTS_KEY] = VerdictThresholds(real_at_most, fake_at_least).to_dict()
    config[CALIBRATION_KEY] = calibration.to_dict() if calibration else None
    (target / "config.json").write_text(json.dumps(config))
    return target


def test_the_stored_calibration_round_trips_and_is_applied(tiny_convnext, tmp_path):
    calibration = Calibration(scale=0.5, bias=-0.25)
    model = with_bands(tiny_convnext, tmp_path / "model", 0.2, 0.8, calibration)
    plain, calibrated = realfake.load_detector(tiny_convnext), realfake.load_detector(model)
    assert plain.classifier.calibration is None and calibrated.classifier.calibration == calibration
    assert calibrated.classifier.verdict_thresholds() == VerdictThresholds(0.2, 0.8)
    [raw], [face] = plain.predict(REAL_FACES[0]), calibrated.predict(REAL_FACES[0])
    assert face.box == raw.box
    assert face.fake_probability == pytest.approx(float(calibration(raw.fake_probability)))
    # A model without verdict thresholds has no uncertain band: fake from its decision threshold up.
    assert plain.classifier.verdict_thresholds() == VerdictThresholds.binary(plain.threshold)


@pytest.mark.parametrize("side", ["real", "uncertain", "fake"])
def test_a_face_on_each_side_gets_its_verdict_in_the_api_and_the_cli(tiny_convnext, tmp_path, side):
    [face] = realfake.load_detector(tiny_convnext).predict(REAL_FACES[0])
    p = face.fake_probability
    below, above = math.nextafter(p, 0), math.nextafter(p, 1)
    bands = {"real": (p, above), "uncertain": (below, above), "fake": (below, p)}[side]
    model = with_bands(tiny_convnext, tmp_path / side, *bands)
    [judged] = realfake.load_detector(model).predict(REAL_FACES[0])
    assert judged.verdict == side and judged.fake_probability == p
    done = run_cli("predict", str(REAL_FACES[0]), "--json", "--model", str(model))
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    assert result["faces"][0]["verdict"] == side and result["faces"][0]["label"] == judged.label


def test_calibrating_a_run_fits_on_its_share_and_measures_on_the_rest(tmp_path):
    rng = np.random.default_rng(2)
    rows = []
    for i in range(2000):
        fake = i % 2
        source = ("tpdne" if fake else "ffhq") if i < 1600 else ("unseen-gan" if fake else "unseen-real")
        score = float(np.clip(rng.normal(0.75 if fake else 0.25, 0.2), 0.001, 0.999))
        rows.append(
            [
                "random" if i < 600 else "heldout",
                f"f/{source}-{i}.jpg",
                source,
                "fake" if fake else "real",
                score,
            ]
        )
    with open(tmp_path / calibrate.SCORES_FILE, "w") as file:
        file.write("set,file,source,label,fake_probability\n")
        file.writelines(",".join(map(str, row)) + "\n" for row in rows)
    (tmp_path / "config.json").write_text(json.dumps({"realfake_threshold": 0.5}))
    figures = calibrate.calibrate_run(tmp_path, calibration_share=0.5, exclude=["unseen-gan", "unseen-real"])
    with open(tmp_path / calibrate.SCORES_FILE) as file:
        written = list(csv.DictReader(file))
    used = [row for row in written if row["calibration"] == "fit"]
    assert {row["set"] for row in used} == {"random", "heldout"}
    assert not {row["source"] for row in used} & {"unseen-gan", "unseen-real"}
    assert 0.35 < sum(row["set"] == "heldout" for row in used) / 1000 < 0.65  # half the held-out ffhq/tpdne
    config = json.loads((tmp_path / "config.json").read_text())
    stored = Calibration(**config[CALIBRATION_KEY])
    assert config["realfake_threshold"] == pytest.approx(float(stored(0.5)))
    for row in written:
        assert float(row["fake_probability"]) == pytest.approx(
            float(stored(float(row["raw_fake_probability"]))), abs=2e-6
        )
    fitting = [row for row in written if row["calibration"] == "fit"]
    bands = VerdictThresholds(**config[VERDICTS_KEY])
    verdicts = bands.verdicts(stored(np.array([float(row["raw_fake_probability"]) for row in fitting])))
    labels = np.array([row["label"] == "fake" for row in fitting])
    assert np.mean(verdicts[~labels] == "fake") <= 0.01 and np.mean(verdicts[labels] == "real") <= 0.01
    assert figures["test"]["n"] == sum(row["calibration"] == "test" for row in written)
    assert json.loads((tmp_path / calibrate.FIGURES_FILE).read_text())["exclude"] == [
        "unseen-gan",
        "unseen-real",
    ]
    # Run again: refitted from the raw scores, the same result.
    again = calibrate.calibrate_run(tmp_path, calibration_share=0.5, exclude=["unseen-gan", "unseen-real"])
    for key in ("scale", "bias"):
        assert again["calibration"][key] == pytest.approx(figures["calibration"][key], abs=1e-6)
    assert again["threshold"] == pytest.approx(figures["threshold"])
