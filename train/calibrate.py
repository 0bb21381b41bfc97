"""Calibrate a trained model on faces it never trained on, and choose its verdict thresholds.

    python train/calibrate.py RUN_DIR [--export_dir realfake/model] [--calibration_share 0.5]
        [--calibration_exclude stylegan3-r ffhq-sg3pair]

train/train.py runs this itself after training; run it by hand to recalibrate a finished run. It
reads RUN_DIR/validation_scores.csv (every validation crop's raw P(fake)) and splits the rows in
two: the fitting rows (the random validation split, and ``--calibration_share`` of the held-out
files, picked by a hash of the file name, except those of ``--calibration_exclude``: sources that
stand for generators the model must meet unseen) and the test rows (all other held-out files). On the
fitting rows it fits Platt scaling (realfake.calibration) and chooses the two verdict thresholds
(at most 1% of real faces called fake, at most 1% of fakes called real); the test rows, never used
for either, measure them: expected calibration error before and after, and each class's verdicts,
per generator family of the shared data. Writes the calibration, the thresholds and the decision
threshold (in calibrated units) into RUN_DIR/config.json, both scores per row back into the CSV
(``fake_probability`` calibrated, ``raw_fake_probability``, ``calibration`` fit / test), the figures
into all_results.json and eval_results.json, a reliability diagram (reliability.png) and a section
of the model card. Running it again refits from the raw scores.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from realfake.calibration import (  # noqa: E402
    CALIBRATION_KEY,
    MAX_FAKE_CALLED_REAL,
    MAX_REAL_CALLED_FAKE,
    VERDICTS_KEY,
    Calibration,
    choose_verdict_thresholds,
    expected_calibration_error,
    fit_calibration,
    verdict_report,
)
from realfake.classifier import RESULTS_FILE, THRESHOLD_KEY  # noqa: E402
from realfake.novelty import NOVELTY_KEY  # noqa: E402
from train.card import CALIBRATION_HEADING, plot_reliability, replace_section  # noqa: E402
from train.families import FAMILIES, family_rows  # noqa: E402

logger = logging.getLogger(__name__)

SCORES_FILE = "validation_scores.csv"
NOVELTY_COLUMN = "real_p_value"  # a crop's conformal p-value of being like the known real photos
RELIABILITY_FILE = "reliability.png"
FIGURES_FILE = "calibration.json"  # everything calibrate_run measured, for train/protocol.py
CALIBRATION_SHARE = 0.5
_SALT = b"realfake-calibration:"  # independent of the hash that picks held-out files


def in_calibration_share(file: str, share: float) -> bool:
    """Whether a held-out file is among the ``share`` used to fit the calibration (by file name)."""
    digest = hashlib.sha256(_SALT + Path(file).name.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def fits_calibration(split: str, file: str, source: str, share: float, exclude: Sequence[str]) -> bool:
    """Whether a validation crop is one the calibration fits on: of the random split (``split``
    "random") or among ``share`` of the held-out files, and of no source in ``exclude``."""
    return (split == "random" or in_calibration_share(file, share)) and source not in exclude


def read_rows(run_dir: Path) -> list[dict]:
    """The run's validation rows, each with ``raw`` (P(fake) before calibration) and ``y`` (1 = fake)."""
    with open(run_dir / SCORES_FILE, newline="") as file:
        rows = list(csv.DictReader(file))
    if not rows:
        raise ValueError(f"{run_dir / SCORES_FILE} has no rows.")
    for row in rows:
        row["raw"] = float(row.get("raw_fake_probability") or row["fake_probability"])
        row["y"] = int(row["label"] == "fake")
    return rows


def write_rows(run_dir: Path, rows: list[dict]) -> None:
    """The rows back, with both scores exact (the verdict thresholds sit between neighbouring scores)."""
    novelty = [NOVELTY_COLUMN] if rows and NOVELTY_COLUMN in rows[0] else []  # kept where there
    with open(run_dir / SCORES_FILE, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            ["set", "file", "source", "label", "fake_probability", "raw_fake_probability", "calibration",
             *novelty]
        )  # fmt: skip
        for row in rows:
            writer.writerow(
                [row["set"], row["file"], row["source"], row["label"], repr(row["p"]), repr(row["raw"]),
                 row["calibration"], *(row[column] for column in novelty)]
            )  # fmt: skip


def novel_rows(rows: list[dict], config: dict) -> list[bool] | None:
    """Which rows are too unlike the known real photos to be called real (realfake.novelty), where
    the run has a novelty model; else None."""
    settings = config.get(NOVELTY_KEY)
    if not settings or not rows or NOVELTY_COLUMN not in rows[0]:
        return None
    return [float(row[NOVELTY_COLUMN]) < float(settings["alpha"]) for row in rows]


def report_rows(rows: list[dict], bands, config: dict | None = None) -> dict:
    """verdict_report for these rows (with the run's novelty model where ``config`` has one), plus
    their count and the ECE of the raw scores."""
    labels = [row["y"] for row in rows]
    report = verdict_report(labels, [row["p"] for row in rows], bands, novel_rows(rows, config or {}))
    report["ece_raw"] = expected_calibration_error(labels, [row["raw"] for row in rows])
    report["n"] = len(rows)
    return report


def calibrate_run(
    run_dir: str | Path, calibration_share: float = CALIBRATION_SHARE, exclude: Sequence[str] = ()
) -> dict:
    """Fit and store the calibration and verdict thresholds of the model in ``run_dir``, never on
    the sources in ``exclude``; returns the figures it measured (also saved in the results files)."""
    run_dir = Path(run_dir)
    rows = read_rows(run_dir)
    for row in rows:
        fit = fits_calibration(row["set"], row["file"], row["source"], calibration_share, exclude)
        row["calibration"] = "fit" if fit else "test"
    fitting = [row for row in rows if row["calibration"] == "fit"]
    testing = [row for row in rows if row["calibration"] == "test"]

    config_path = run_dir / "config.json"
    config = json.loads(config_path.read_text())
    earlier = config.get(CALIBRATION_KEY)
    raw_threshold = float(config.get(THRESHOLD_KEY) or 0.5)
    if earlier:  # the stored decision threshold is in calibrated units: back to raw ones
        raw_threshold = float(Calibration(earlier["scale"], earlier["bias"]).inverse(raw_threshold))

    calibration = fit_calibration([row["raw"] for row in fitting], [row["y"] for row in fitting])
    for row in rows:
        row["p"] = float(calibration(row["raw"]))
    threshold = float(calibration(raw_threshold))
    bands = choose_verdict_thresholds(
        [row["p"] for row in fitting],
        [row["y"] for row in fitting],
        decision_threshold=threshold,
        groups=[row["source"] for row in fitting],
    )
    config.update(
        {CALIBRATION_KEY: calibration.to_dict(), VERDICTS_KEY: bands.to_dict(), THRESHOLD_KEY: threshold}
    )
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    write_rows(run_dir, rows)

    figures = {
        "calibration": calibration.to_dict(),
        "verdict_thresholds": bands.to_dict(),
        "threshold": threshold,
        "fit": report_rows(fitting, bands, config),
        "test": report_rows(testing, bands, config) if testing else None,
        "test_by_family": {},
    }
    groups = {"all test faces": testing}
    for family in FAMILIES:
        chosen = family_rows(testing, family)
        if len({row["y"] for row in chosen}) == 2:
            figures["test_by_family"][family] = report_rows(chosen, bands, config)
            groups[family.split(" (")[0]] = chosen
    if testing:
        panels = {
            f"{title}, held-out test faces": {
                name: ([row["y"] for row in chosen], [row[key] for row in chosen])
                for name, chosen in groups.items()
            }
            for title, key in (("Raw score", "raw"), ("Calibrated P(fake)", "p"))
        }
        plot_reliability(panels, run_dir / RELIABILITY_FILE)
    save_figures(run_dir, figures)
    (run_dir / FIGURES_FILE).write_text(json.dumps({**figures, "exclude": list(exclude)}, indent=2) + "\n")
    card = run_dir / "README.md"
    if card.is_file():
        replace_section(
            card, CALIBRATION_HEADING, card_section(figures, calibration_share, exclude, bool(testing))
        )
    logger.info("Calibrated %s: %s", run_dir, json.dumps(figures["test"] or figures["fit"]))
    return figures


def save_figures(run_dir: Path, figures: dict) -> None:
    """Add the calibration's figures to the run's results files (flat keys, as Trainer writes them)."""
    flat = {"calibration_threshold": figures["threshold"]}
    for part in ("fit", "test"):
        if figures[part]:
            flat.update(
                {
                    f"calibration_{part}_{key}": value
                    for key, value in figures[part].items()
                    if not isinstance(value, dict)
                }
            )
    for name in (RESULTS_FILE, "eval_results.json"):
        path = run_dir / name
        if path.is_file():
            results = json.loads(path.read_text())
            results.update(flat)
            path.write_text(json.dumps(results, indent=4, sort_keys=True) + "\n")


def share_text(value) -> str:
    """A share as a percentage with one decimal, or "n/a"."""
    return "n/a" if value is None else f"{value:.1%}"


def card_section(figures: dict, share: float, exclude: Sequence[str], tested: bool) -> str:
    """The model card's section on calibration and verdicts."""
    bands, calibration = figures["verdict_thresholds"], figures["calibration"]
    lines = [
        "realfake reports a calibrated P(fake): Platt scaling of the model's score, "
        f"sigmoid({calibration['scale']:.3f} x logit(score) {calibration['bias']:+.3f}) (`{CALIBRATION_KEY}` "
        f"in `config.json`), fitted on faces the model never trained on: the random validation split and "
        f"{share:.0%} of the held-out files (by a hash of the file name)"
        + (f", never on {', '.join(exclude)}" if exclude else "")
        + ". Each face then gets a verdict: "
        f"**fake** from P(fake) {bands['fake_at_least']:.3f}, **real** up to {bands['real_at_most']:.3f}, "
        f"**uncertain** between (`{VERDICTS_KEY}`), chosen on the same faces so that at most "
        f"{MAX_REAL_CALLED_FAKE:.0%} of real faces, and of each source of real faces with enough of them "
        f"to tell, are called fake, and at most {MAX_FAKE_CALLED_REAL:.0%} of fakes real. The binary `label` stays, at the decision threshold {figures['threshold']:.4f} "
        "(calibrated units).",
        "",
    ]
    if tested:
        lines += [
            "Measured on the other held-out files, used for neither: expected calibration error (ECE, "
            "10 bins) of the raw and the calibrated score, how each class was judged, and the accuracy "
            "on the faces that got a verdict.",
            "",
            "| held-out test faces | n | ECE raw | ECE calibrated | real called fake | fakes called real "
            "| uncertain | accuracy when decided |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        rows = [("all", figures["test"]), *figures["test_by_family"].items()]
        for name, r in rows:
            lines.append(
                f"| {name} | {r['n']} | {r['ece_raw']:.3f} | {r['ece']:.3f} | "
                f"{share_text(r['verdicts']['real']['fake'])} | {share_text(r['verdicts']['fake']['real'])} | "
                f"{share_text(r['uncertain'])} | {share_text(r['decided_accuracy'])} |"
            )
        lines += ["", f"![Reliability diagram]({RELIABILITY_FILE})"]
    lines += [
        "",
        "A calibrated probability is calibrated for faces like these: on a generator or kind of photo "
        "far from the training data the model can be confidently wrong, and no calibration fixes that.",
    ]
    return "\n".join(lines)


def export(run_dir: Path, export_dir: Path) -> None:
    """Copy what calibration changed to an exported model folder."""
    export_dir.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "README.md", RESULTS_FILE, RELIABILITY_FILE):
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, export_dir / name)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a train.py output folder with validation_scores.csv")
    parser.add_argument("--export_dir", type=Path, help="also update this exported copy of the model")
    parser.add_argument(
        "--calibration_share",
        type=float,
        default=CALIBRATION_SHARE,
        help="share of held-out files used to fit (the rest measure); default %(default)s",
    )
    parser.add_argument(
        "--calibration_exclude",
        nargs="*",
        default=[],
        metavar="SOURCE",
        help="sources never fitted on (generators the model must meet unseen), only measured",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    figures = calibrate_run(args.run_dir, args.calibration_share, args.calibration_exclude)
    if args.export_dir:
        export(args.run_dir, args.export_dir)
    card = args.run_dir / "README.md"
    if card.is_file():
        print(card.read_text().split(CALIBRATION_HEADING)[-1].split("\n## ")[0].strip())
    else:
        print(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
