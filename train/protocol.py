"""The leave-one-generator-out protocol: how a training recipe does on generators it never saw.

    python train/protocol.py --config train/configs/default.json [--output_dir runs/protocol-default]

Runs train/train.py with the recipe in ``--config`` once per fold, each fold keeping one generator
family (and real photos like its images) out of training altogether, then once as the config itself
says (the final model: every family trained on, a share of each held out by file). Every fold also
holds out StyleGAN3 and its FFHQ pair (never trained on) and the same 30% of each source of real
photos in the wild. From the held-out scores each run writes (``validation_scores.csv``) it prints
one table: ROC AUC of each family against real photos of similar size, and the share of held-out
real photos in the wild called fake at the run's own threshold. A fold already run (its
``all_results.json`` exists) is read back, not run again; with a recipe that caches CLIP class
tokens, every fold reads the same cache.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from train import train  # noqa: E402
from train.calibrate import FIGURES_FILE, calibrate_run, share_text  # noqa: E402
from train.card import PROTOCOL_HEADING, replace_section  # noqa: E402
from train.families import FAMILIES, STYLEGAN2, WILD  # noqa: E402

ALWAYS_HELD_OUT = ["stylegan3-r", "ffhq-sg3pair", *(f"{source}:0.3" for source in WILD)]
# fold -> (the family it leaves out, the sources it holds out)
FOLDS = {
    "without-stylegan2": ("StyleGAN2 (thispersondoesnotexist)", [*STYLEGAN2, "ffhq-1024", *ALWAYS_HELD_OUT]),
    "without-sd21": ("Stable Diffusion 2.1", ["sdfd-sd21", "ffhq-1024", *ALWAYS_HELD_OUT]),
    "without-t2i": ("text-to-image services (Flux.1, SDXL, DALL-E 3)", ["t2i-sfhq", *ALWAYS_HELD_OUT]),
}
FINAL = "final"


def run_fold(config: Path, output_dir: Path, heldout: list[str] | None, extra: list[str]) -> Path:
    """Train one fold (unless done already); returns its folder. The final run exports where the
    config says; a fold exports into its own folder only."""
    # A fold never calibrates on the sources it holds out whole: its unseen family and their reference.
    exclude = None if heldout is None else [source for source in heldout if ":" not in source]
    if not (output_dir / "all_results.json").is_file():
        argv = ["--config", str(config), "--output_dir", str(output_dir)]
        if heldout is not None:
            argv += ["--heldout_sources", *heldout, "--export_dir", str(output_dir / "model")]
            argv += ["--calibration_exclude", *exclude]
        train.main([*argv, *extra])
    elif not (output_dir / FIGURES_FILE).is_file():  # a run from before calibration: calibrate it now
        if exclude is None:
            exclude = json.loads(config.read_text()).get("calibration_exclude", [])
        calibrate_run(output_dir, exclude=exclude)
    return output_dir


def add_to_card(card: Path, table: str, command: str) -> None:
    """Put the protocol's table in a model card, replacing an earlier one."""
    body = (
        "The same recipe trained once per fold, each fold without one generator family "
        "(and without the real photos it is scored against), then once on every family with a share of "
        "each held out by file (the final model, this one). StyleGAN3 and its FFHQ pair are in no "
        "training set; 30% of each source of real photos in the wild is held out everywhere. ROC AUC "
        "of each family's held-out images against real photos of about their size (counts: fake vs "
        "real), and the share of held-out real photos in the wild called fake. Then, on the held-out files "
        "that no calibration was fitted on (train/calibrate.py), the expected calibration error of "
        f"P(fake) and how each class was judged in verdicts.\n\n{table}\n\n"
        f"```\n{command}\n```\n"
    )
    replace_section(card, PROTOCOL_HEADING, body)


def read_scores(run: Path) -> tuple[dict[str, list[tuple[int, float]]], float]:
    """The held-out crops' (label, P(fake)) by source, and the run's threshold."""
    by_source: dict[str, list[tuple[int, float]]] = defaultdict(list)
    with open(run / train.SCORES_FILE, newline="") as file:
        for row in csv.DictReader(file):
            if row["set"] == "heldout":
                by_source[row["source"]].append((int(row["label"] == "fake"), float(row["fake_probability"])))
    config = json.loads((run / "config.json").read_text())
    return by_source, float(config["realfake_threshold"])


def family_auc(by_source: dict, family: str) -> tuple[float | None, int, int]:
    """ROC AUC of a family's held-out fakes against its real reference, and the two counts."""
    fakes, reals = FAMILIES[family]
    rows = [row for source in (*fakes, *reals) for row in by_source.get(source, [])]
    labels = np.array([label for label, _ in rows])
    n_fake, n_real = int(labels.sum()), int((labels == 0).sum())
    if not n_fake or not n_real:
        return None, n_fake, n_real
    return float(roc_auc_score(labels, [score for _, score in rows])), n_fake, n_real


def wild_false_positives(by_source: dict, threshold: float) -> tuple[float, int]:
    """The share of held-out real photos in the wild called fake, and how many there were."""
    scores = [score for source in WILD for label, score in by_source.get(source, []) if label == 0]
    return (float(np.mean(np.asarray(scores) >= threshold)) if scores else float("nan")), len(scores)


def report(runs: dict[str, Path]) -> dict:
    """The protocol's figures from the runs' score files."""
    results: dict = {"folds": {}, "final": None}
    for fold, run in runs.items():
        by_source, threshold = read_scores(run)
        fpr, n_wild = wild_false_positives(by_source, threshold)
        calibrated = json.loads((run / FIGURES_FILE).read_text()) if (run / FIGURES_FILE).is_file() else {}
        entry = {
            "threshold": threshold,
            "wild_real_called_fake": fpr,
            "n_wild_real": n_wild,
            "roc_auc": {family: family_auc(by_source, family) for family in FAMILIES},
            "verdicts": calibrated.get("test_by_family", {}),
            "verdicts_all": calibrated.get("test"),
        }
        if fold == FINAL:
            results["final"] = entry
        else:
            entry["left_out"] = FOLDS[fold][0]
            results["folds"][fold] = entry
    return results


def format_table(results: dict) -> str:
    """One Markdown table: each family left out (its fold's AUC) and in the final model."""

    def auc(value) -> str:
        figure, n_fake, n_real = value
        return "n/a" if figure is None else f"{figure:.3f} ({n_fake} vs {n_real})"

    left_out = {entry["left_out"]: entry for entry in results["folds"].values()}
    final = results["final"]
    lines = [
        "| family (against real photos) | left out of training | final model, held-out files |",
        "| --- | --- | --- |",
    ]
    for family in FAMILIES:
        fold = left_out.get(family)
        unseen = auc(fold["roc_auc"][family]) if fold else "n/a"
        if family == "StyleGAN3 (in no training set)":  # left out of every fold: one figure per fold
            unseen = (
                "; ".join(
                    f"{fold}: {auc(entry['roc_auc'][family])}" for fold, entry in results["folds"].items()
                )
                or unseen
            )
        lines.append(f"| {family} | {unseen} | {auc(final['roc_auc'][family]) if final else 'n/a'} |")
    wild = "; ".join(
        f"{fold}: {entry['wild_real_called_fake']:.1%}" for fold, entry in results["folds"].items()
    )
    final_wild = f"{final['wild_real_called_fake']:.1%} of {final['n_wild_real']}" if final else "n/a"
    lines.append(
        f"| real photos in the wild called fake (at each run's threshold) | {wild or 'n/a'} | {final_wild} |"
    )
    return "\n".join(lines)


def format_verdicts(results: dict) -> str:
    """One Markdown table: calibration and verdicts on the held-out faces no calibration was fitted
    on, for each fold's left-out family and for every family in the final model."""

    def row(name: str, figures: dict | None) -> str:
        if not figures:
            return f"| {name} | n/a | n/a | n/a | n/a | n/a |"
        judged = figures["verdicts"]
        return (
            f"| {name} | {figures['n']} | {figures['ece']:.3f} | {share_text(judged['real']['fake'])} | "
            f"{share_text(judged['fake']['real'])} | {share_text(figures['uncertain'])} |"
        )

    lines = [
        "| held-out test faces (family and its real reference) | n | ECE | real called fake "
        "| fakes called real | uncertain |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for fold, entry in results["folds"].items():
        lines.append(row(f"{entry['left_out']}, left out ({fold})", entry["verdicts"].get(entry["left_out"])))
    if results["final"]:
        final = results["final"]
        lines.append(row("final model, all test faces", final["verdicts_all"]))
        lines += [row(f"final model, {family}", figures) for family, figures in final["verdicts"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="the training recipe (train.py --config)")
    parser.add_argument("--output_dir", type=Path, help="default: runs/protocol-<config name>")
    parser.add_argument("--folds", nargs="+", choices=[*FOLDS, FINAL], default=[*FOLDS, FINAL])
    args, extra = parser.parse_known_args(argv)
    output = args.output_dir or Path("runs") / f"protocol-{args.config.stem}"
    runs = {
        fold: run_fold(args.config, output / fold, None if fold == FINAL else FOLDS[fold][1], extra)
        for fold in args.folds
    }
    results = report(runs)
    (output / "protocol.json").write_text(json.dumps(results, indent=2))
    table = f"{format_table(results)}\n\n{format_verdicts(results)}"
    if results["final"] and len(results["folds"]) == len(FOLDS):
        export = json.loads(args.config.read_text()).get("export_dir")
        cards = [runs[FINAL] / "README.md", *([Path(export) / "README.md"] if export else [])]
        command = " ".join(["python train/protocol.py", *(argv if argv is not None else sys.argv[1:])])
        for card in cards:
            if card.is_file():
                add_to_card(card, table, command)
    print(table)
    return results


if __name__ == "__main__":
    main()
