"""The leave-one-out protocol: how a training recipe does on generators and on kinds of real photo
it never saw.

    python train/protocol.py --config train/configs/default.json [--output_dir runs/protocol-default]
        [--folds without-sd21 without-pixabay final]

Runs train/train.py with the recipe in ``--config`` once per fold, then once as the config itself says
(the final model: every source trained on, a share of each held out by file). A generator fold keeps
one generator family (and the real photos it is scored against) out of training altogether; a
real-source fold keeps one kind of real photo out (FFHQ, the 1024 px portraits, each source in the
wild, the stock portraits, the children and elders): the share of its faces called fake is what a
user's photo from a new source meets. Every fold also holds out StyleGAN3 and its FFHQ pair (never
trained on) and the same 30% of each source of real photos in the wild and of the stock portraits.
From the held-out scores each run writes (``validation_scores.csv``, calibrated by train/calibrate.py
without the fold's left-out sources) it prints three tables: each left-out family's ROC AUC against
real photos of similar size; each left-out kind of real photo's verdict shares (by sex and age where
the file names say), with the worst fold beside the mean; and calibration and verdicts on held-out
files. A fold already run (its ``model.safetensors`` exists) is read back, not run again; with a recipe
that caches CLIP tokens, every fold reads the same cache. train/probe_heads.py prints the same tables
for scikit-learn heads on that cache, in seconds a fold.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from realfake.calibration import VerdictThresholds  # noqa: E402
from train import train  # noqa: E402
from train.calibrate import FIGURES_FILE, calibrate_run, novel_rows, share_text  # noqa: E402
from train.card import PROTOCOL_HEADING, replace_section  # noqa: E402
from train.families import (  # noqa: E402
    FAMILIES,
    PORTRAIT_APPS,
    REAL_KINDS,
    SHARED_REAL,
    STYLEGAN2,
    UNSEEN,
    WILD,
    group_of,
)

ALWAYS_HELD_OUT = ["stylegan3-r", "ffhq-sg3pair", *(f"{source}:0.3" for source in SHARED_REAL)]
# fold -> (the family it leaves out, the sources it holds out); whole sources last, so they win
GENERATOR_FOLDS = {
    "without-stylegan2": ("StyleGAN2 (thispersondoesnotexist)", [*ALWAYS_HELD_OUT, *STYLEGAN2, "ffhq-1024"]),
    "without-sd21": ("Stable Diffusion 2.1", [*ALWAYS_HELD_OUT, "sdfd-sd21", "ffhq-1024"]),
    "without-t2i": ("text-to-image services (Flux.1, SDXL, DALL-E 3)", [*ALWAYS_HELD_OUT, "t2i-sfhq"]),
    "without-portrait-apps": (
        "AI portrait apps and pipelines (FaceChain, Kolors)",
        [*ALWAYS_HELD_OUT, *PORTRAIT_APPS, "scut-beauty"],
    ),
}
REAL_FOLDS = {f"without-{key}": kind for key, kind in REAL_KINDS.items()}  # fold -> (name, sources)
FOLDS = [*GENERATOR_FOLDS, *REAL_FOLDS]
FINAL = "final"


def fold_split(fold: str, config: dict) -> tuple[list[str] | None, list[str]]:
    """What a fold holds out (None: as the config says) and what it never calibrates on.

    A generator fold holds out its family and the real photos it is scored against, and never
    calibrates on any source it holds out whole. A real-source fold is the config's own split with
    one kind of real photo held out whole (so every family's held-out fakes are there to score it
    against), and never calibrates on that kind nor on the config's ``calibration_exclude``.
    """
    exclude = list(config.get("calibration_exclude", []))
    if fold in GENERATOR_FOLDS:
        heldout = GENERATOR_FOLDS[fold][1]
        return heldout, [source for source in heldout if ":" not in source]
    if fold in REAL_FOLDS:
        sources = list(REAL_FOLDS[fold][1])
        return [*config.get("heldout_sources", []), *sources], [*exclude, *sources]
    return None, exclude


def run_fold(config: Path, output_dir: Path, fold: str, extra: list[str]) -> Path:
    """Train one fold (unless done already); returns its folder. The final run exports where the
    config says; a fold exports into its own folder only."""
    heldout, exclude = fold_split(fold, json.loads(config.read_text()))
    # Trainer writes all_results.json when training ends, before the model is scored and saved.
    if not (output_dir / "model.safetensors").is_file():
        argv = ["--config", str(config), "--output_dir", str(output_dir)]
        if heldout is not None:
            argv += ["--heldout_sources", *heldout, "--export_dir", str(output_dir / "model")]
            argv += ["--calibration_exclude", *exclude]
        train.main([*argv, *extra])
    elif not (output_dir / FIGURES_FILE).is_file():  # a run from before calibration: calibrate it now
        calibrate_run(output_dir, exclude=exclude)
    return output_dir


def add_to_card(card: Path, table: str, command: str) -> None:
    """Put the protocol's tables in a model card, replacing earlier ones."""
    body = (
        "The same recipe trained once per fold, then once on every source with a share of each held out "
        "by file (the final model, this one). A generator fold trains without one generator family (and "
        "without the real photos it is scored against); a real-source fold trains without one kind of "
        "real photo, which is what a user's photo from a new source meets. StyleGAN3 and its FFHQ pair "
        "are in no training set; 30% of each source of real photos in the wild and of the stock "
        "portraits is held out everywhere. Each fold is calibrated and gets its verdict thresholds "
        "(train/calibrate.py) without the sources it leaves out. First each left-out family's ROC AUC "
        "against real photos of about its size (counts: fake vs real) and the share of held-out real "
        "photos in the wild called fake at the run's threshold; then each left-out kind of real photo: "
        "the shares of its faces with the verdict fake and uncertain, and its ROC AUC against every "
        "held-out fake; then, on held-out files that no calibration was fitted on, the expected "
        f"calibration error of P(fake) and how each class was judged.\n\n{table}\n\n"
        f"```\n{command}\n```\n"
    )
    replace_section(card, PROTOCOL_HEADING, body)


def read_scores(run: Path) -> tuple[list[dict], float, VerdictThresholds]:
    """The held-out crops (file, source, label 1 = fake, P(fake), and whether the run's novelty
    model finds it unlike the known real photos), the run's threshold, and its verdict thresholds
    (binary at the threshold for a run without them)."""
    with open(run / train.SCORES_FILE, newline="") as file:
        heldout = [row for row in csv.DictReader(file) if row["set"] == "heldout"]
    config = json.loads((run / "config.json").read_text())
    novel = novel_rows(heldout, config) or [False] * len(heldout)
    rows = [
        {"file": row["file"], "source": row["source"], "y": int(row["label"] == "fake"),
         "p": float(row["fake_probability"]), "novel": is_novel}
        for row, is_novel in zip(heldout, novel)
    ]  # fmt: skip
    threshold = float(config["realfake_threshold"])
    bands = VerdictThresholds.from_config(SimpleNamespace(**config)) or VerdictThresholds.binary(threshold)
    return rows, threshold, bands


def by_source(rows: list[dict]) -> dict[str, list[dict]]:
    """The rows grouped by source."""
    grouped: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        grouped[row["source"]].append(row)
    return grouped


def pairs(rows: list[dict]) -> list[tuple[int, float]]:
    """The rows' (label, P(fake)) pairs."""
    return [(row["y"], row["p"]) for row in rows]


def judged(rows: list[dict], bands: VerdictThresholds) -> dict[str, float | None]:
    """The share of these rows given each verdict, with the run's novelty model where it has one."""
    return bands.shares([row["p"] for row in rows], [row["novel"] for row in rows])


def auc_of(rows: list[tuple[int, float]]) -> tuple[float | None, int, int]:
    """ROC AUC of (label, score) pairs and the counts of fakes and reals (None without both)."""
    labels = np.array([label for label, _ in rows], dtype=int)
    n_fake, n_real = int(labels.sum()), int((labels == 0).sum())
    if not n_fake or not n_real:
        return None, n_fake, n_real
    return float(roc_auc_score(labels, [score for _, score in rows])), n_fake, n_real


def family_auc(grouped: dict, family: str) -> tuple[float | None, int, int]:
    """ROC AUC of a family's held-out fakes against its real reference, and the two counts."""
    fakes, reals = FAMILIES[family]
    return auc_of(pairs([row for source in (*fakes, *reals) for row in grouped.get(source, [])]))


def family_verdicts(grouped: dict, family: str, bands: VerdictThresholds) -> dict:
    """How a family's held-out fakes were judged: their count and the share of each verdict (a fake
    with the verdict real is the confident miss this tool must not make)."""
    fakes = [row for source in FAMILIES[family][0] for row in grouped.get(source, []) if row["y"]]
    return {"n": len(fakes), "verdicts": judged(fakes, bands)}


def wild_false_positives(grouped: dict, threshold: float) -> tuple[float, int]:
    """The share of held-out real photos in the wild called fake, and how many there were."""
    scores = [row["p"] for source in WILD for row in grouped.get(source, []) if row["y"] == 0]
    return (float(np.mean(np.asarray(scores) >= threshold)) if scores else float("nan")), len(scores)


def real_kind_figures(rows: list[dict], sources: Sequence[str], bands: VerdictThresholds) -> dict:
    """How the held-out real faces of these sources were judged: their count and verdict shares,
    the same for each group of people their file names carry, and their ROC AUC against every
    held-out fake."""
    reals = [row for row in rows if row["source"] in sources and row["y"] == 0]
    groups = defaultdict(list)
    for row in reals:
        if group := group_of(row["file"]):
            groups[group].append(row)
    fakes = [row for row in rows if row["y"] == 1]
    return {
        "n": len(reals),
        "verdicts": judged(reals, bands),
        "groups": {
            group: {"n": len(chosen), "verdicts": judged(chosen, bands)}
            for group, chosen in sorted(groups.items())
        },
        "roc_auc": auc_of(pairs([*fakes, *reals])),
    }


def report(runs: dict[str, Path]) -> dict:
    """The protocol's figures from the runs' score files."""
    results: dict = {"folds": {}, "real_folds": {}, "final": None}
    for fold, run in runs.items():
        rows, threshold, bands = read_scores(run)
        grouped = by_source(rows)
        fpr, n_wild = wild_false_positives(grouped, threshold)
        calibrated = json.loads((run / FIGURES_FILE).read_text()) if (run / FIGURES_FILE).is_file() else {}
        entry = {
            "threshold": threshold,
            "verdict_thresholds": bands.to_dict(),
            "wild_real_called_fake": fpr,
            "n_wild_real": n_wild,
            "roc_auc": {family: family_auc(grouped, family) for family in FAMILIES},
            "fakes_judged": {family: family_verdicts(grouped, family, bands) for family in FAMILIES},
            "verdicts": calibrated.get("test_by_family", {}),
            "verdicts_all": calibrated.get("test"),
        }
        if fold == FINAL:
            real_sources = sorted({row["source"] for row in rows if row["y"] == 0})
            entry["real_sources"] = {
                source: real_kind_figures(rows, [source], bands) for source in real_sources
            }
            results["final"] = entry
        elif fold in REAL_FOLDS:
            name, sources = REAL_FOLDS[fold]
            results["real_folds"][fold] = {
                "left_out": name,
                **entry,
                **real_kind_figures(rows, sources, bands),
            }
        else:
            entry["left_out"] = GENERATOR_FOLDS[fold][0]
            results["folds"][fold] = entry
    return results


def auc_text(value) -> str:
    figure, n_fake, n_real = value
    return "n/a" if figure is None else f"{figure:.3f} ({n_fake} vs {n_real})"


def judged_text(entry: dict, family: str) -> str:
    """A family's fakes with the verdict real and uncertain in one run, e.g. "12.0% / 30.1%"."""
    judged = entry["fakes_judged"][family]["verdicts"]
    return f"{share_text(judged['real'])} / {share_text(judged['uncertain'])}"


def left_out_figures(results: dict) -> list[tuple[str, str, float | None, float | None]]:
    """(family, fold, ROC AUC, share with the verdict real) for every family that a run did not train
    on: each generator fold's left-out family, and the family no run trains on in every fold."""
    figures = []
    for fold, entry in results["folds"].items():
        for family in (entry["left_out"], UNSEEN):
            auc, real = entry["roc_auc"][family][0], entry["fakes_judged"][family]["verdicts"]["real"]
            figures.append((family, fold, auc, real))
    return figures


def format_table(results: dict) -> str:
    """One Markdown table: each family left out (its fold's ROC AUC and the shares of its fakes with
    the verdicts real and uncertain) and in the final model, and the worst and mean of the left-out
    families."""
    left_out = {entry["left_out"]: entry for entry in results["folds"].values()}
    final = results["final"]
    lines = [
        "| family (against real photos) | left out of training: ROC AUC | left out: verdict real / uncertain "
        "| final model, held-out files: ROC AUC | final: verdict real / uncertain |",
        "| --- | --- | --- | --- | --- |",
    ]
    for family in FAMILIES:
        if family == UNSEEN:  # left out of every fold: one figure per fold
            folds = results["folds"].items()
            unseen = "; ".join(f"{fold}: {auc_text(entry['roc_auc'][family])}" for fold, entry in folds)
            judged = "; ".join(f"{fold}: {judged_text(entry, family)}" for fold, entry in folds)
        else:
            fold = left_out.get(family)
            unseen = auc_text(fold["roc_auc"][family]) if fold else "n/a"
            judged = judged_text(fold, family) if fold else "n/a"
        in_final = (auc_text(final["roc_auc"][family]), judged_text(final, family)) if final else ("n/a",) * 2
        lines.append(f"| {family} | {unseen or 'n/a'} | {judged or 'n/a'} | {in_final[0]} | {in_final[1]} |")
    figures = left_out_figures(results)
    aucs = [auc for *_, auc, _ in figures if auc is not None]
    reals = [real for *_, real in figures if real is not None]
    if aucs:
        lines.append(
            f"| worst / mean of the left-out families | {min(aucs):.3f} / {np.mean(aucs):.3f} "
            f"| {max(reals):.1%} / {np.mean(reals):.1%} real | | |"
        )
    wild = "; ".join(
        f"{fold}: {entry['wild_real_called_fake']:.1%}" for fold, entry in results["folds"].items()
    )
    final_wild = f"{final['wild_real_called_fake']:.1%} of {final['n_wild_real']}" if final else "n/a"
    lines.append(
        f"| real photos in the wild called fake (at each run's threshold) | {wild or 'n/a'} | | {final_wild} | |"
    )
    return "\n".join(lines)


def worst_folds(results: dict) -> str:
    """The two figures a recipe is chosen by: the largest share of a left-out family's fakes with the
    verdict real, and the largest share of a left-out kind of real photo with the verdict fake."""
    parts = []
    figures = [row for row in left_out_figures(results) if row[3] is not None]
    if figures:
        family, fold, _, real = max(figures, key=lambda row: row[3])
        parts.append(f"a left-out family called real: {real:.1%} ({family}, {fold})")
    reals = [(entry["verdicts"]["fake"], entry) for entry in results["real_folds"].values()]
    reals = [(fake, entry) for fake, entry in reals if fake is not None]
    if reals:
        fake, entry = max(reals, key=lambda pair: pair[0])
        parts.append(
            f"a left-out kind of real photo called fake: {fake:.1%} ({entry['left_out']}; "
            f"uncertain {share_text(entry['verdicts']['uncertain'])})"
        )
    return f"Worst fold, {'; '.join(parts)}." if parts else ""


def groups_text(groups: dict) -> str:
    """Each group's share called fake, e.g. "women 2.1% of 190; men 0.5% of 210"."""
    return "; ".join(
        f"{group} {share_text(figures['verdicts']['fake'])} of {figures['n']}"
        for group, figures in groups.items()
    )


def real_row(name: str, entry: dict) -> str:
    """One table row of how a set of real faces was judged (see :func:`real_kind_figures`)."""
    verdicts = entry["verdicts"]
    return (
        f"| {name} | {entry['n']} | {share_text(verdicts['fake'])} | {share_text(verdicts['uncertain'])} "
        f"| {auc_text(entry['roc_auc'])} | {groups_text(entry['groups'])} |"
    )


def format_real_folds(results: dict) -> str:
    """One Markdown table: each kind of real photo left out of training, how its faces were judged,
    and the worst and mean over the folds; then the final model's held-out real sources."""
    lines = [
        "| kind of real photo (left out of training) | faces | verdict fake | uncertain "
        "| ROC AUC against held-out fakes | fake, by group |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    folds = list(results["real_folds"].values())
    lines += [real_row(entry["left_out"], entry) for entry in folds]
    if folds:
        fake = [entry["verdicts"]["fake"] or 0.0 for entry in folds]
        uncertain = [entry["verdicts"]["uncertain"] or 0.0 for entry in folds]
        aucs = [entry["roc_auc"][0] for entry in folds if entry["roc_auc"][0] is not None]
        lines.append(
            f"| worst / mean of the folds | | {max(fake):.1%} / {np.mean(fake):.1%} | "
            f"{max(uncertain):.1%} / {np.mean(uncertain):.1%} | "
            f"{(min(aucs) if aucs else float('nan')):.3f} / {(np.mean(aucs) if aucs else float('nan')):.3f} | |"
        )
    final = results["final"]
    if final and final.get("real_sources"):
        lines += [
            "",
            "| final model, held-out real photos of sources it trained on | faces | verdict fake | uncertain "
            "| ROC AUC against held-out fakes | fake, by group |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        lines += [real_row(source, entry) for source, entry in final["real_sources"].items()]
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


def format_all(results: dict) -> str:
    """The worst folds and the protocol's three tables, as printed and written into the card."""
    tables = f"{format_table(results)}\n\n{format_real_folds(results)}\n\n{format_verdicts(results)}"
    worst = worst_folds(results)
    return f"{worst}\n\n{tables}" if worst else tables


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="the training recipe (train.py --config)")
    parser.add_argument("--output_dir", type=Path, help="default: runs/protocol-<config name>")
    parser.add_argument("--folds", nargs="+", choices=[*FOLDS, FINAL], default=[*FOLDS, FINAL])
    args, extra = parser.parse_known_args(argv)
    output = args.output_dir or Path("runs") / f"protocol-{args.config.stem}"
    runs = {fold: run_fold(args.config, output / fold, fold, extra) for fold in args.folds}
    results = report(runs)
    (output / "protocol.json").write_text(json.dumps(results, indent=2))
    table = format_all(results)
    if results["final"] and len(runs) == len(FOLDS) + 1:
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
