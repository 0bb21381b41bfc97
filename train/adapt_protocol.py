"""How far ``realfake adapt`` carries a model to a generator it never saw: a k-shot curve per fold.

    python train/adapt_protocol.py --config train/configs/plain.json --heads 11,m9,p --k 5 10 25 50

For every generator fold of train/protocol.py, the fold's head is fitted on cached tokens as
train/probe_heads.py fits it (the recipe's views, its standardisation standing for the model's head
norm), and its adaptation memory is drawn from the fold's own training and random-validation crops
exactly as train.py draws one (realfake.adapt). Then, for each k, k faces of the left-out family
(drawn at random, ``--repeats`` times) are handed to the same refit ``realfake adapt`` runs, and the
adapted head is measured on what it never saw: the family's other held-out faces (ROC AUC against
the family's real reference, the shares with the verdict real and uncertain) and every held-out real
face of the fold (the share called fake, and the worst source's). k = 0 is the memory's refit with
no new faces: what adapting starts from.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from realfake.adapt import DEFAULT_C, Head, Memory, memory_rows, refit  # noqa: E402
from train import protocol, train  # noqa: E402
from train.families import FAMILIES  # noqa: E402
from train.probe_heads import CachedTokens, probe_fold  # noqa: E402


def fold_curve(
    cache: CachedTokens, features, fold: str, ks, repeats: int, C: float, head_C: float, prior: bool
) -> dict:
    """One generator fold's k-shot figures (means over the repeats) and the worst repeat's."""
    family = protocol.GENERATOR_FOLDS[fold][0]
    heldout, _ = protocol.fold_split(fold, cache.config)
    train_rows, eval_rows = cache.split(heldout)
    labels, sources = cache.labels, np.asarray(cache.dataset["source"])
    weights = np.array(train.source_weights(cache.dataset, train_rows, cache.data_args.balance_classes))
    _, scaler, fold_head = probe_fold(features, labels, weights, train_rows, eval_rows, head_C)
    start = Head(fold_head.coef_[0], float(fold_head.intercept_[0])) if prior else None
    standard = scaler.transform(features[0])
    # The fold's held-out files are what it is measured on: its memory calibrates on the random split.
    rows, held = memory_rows(sources, labels, train_rows, eval_rows["random"], seed=cache.seed)
    memory = Memory(standard[rows], labels[rows], sources[rows].tolist(), held)
    tested = np.asarray(eval_rows["heldout"])
    fakes, references = FAMILIES[family]
    family_fakes = tested[np.isin(sources[tested], fakes) & (labels[tested] == 1)]
    reference = tested[np.isin(sources[tested], references) & (labels[tested] == 0)]
    reals = tested[labels[tested] == 0]
    curve = {}
    for k in ks:
        runs = []
        for repeat in range(repeats if k else 1):
            rng = np.random.default_rng([cache.seed, k, repeat])
            shots = rng.permutation(family_fakes)[:k]
            others = np.setdiff1d(family_fakes, shots)
            started = time.perf_counter()
            new = [(standard[shots], 1, f"adapt:{family}")] if k else []
            result = refit(memory, new, C=C, seed=repeat, prior=start)
            seconds = time.perf_counter() - started

            def judged(chosen, result=result):
                return result.calibration(Head(result.weight, result.bias).raw(standard[chosen]))

            p_others, p_reals = judged(others), judged(reals)
            auc = roc_auc_score([1] * len(others) + [0] * len(reference), [*p_others, *judged(reference)])
            verdicts = result.bands.shares(p_others)
            called_fake = p_reals >= result.bands.fake_at_least
            by_source = {s: float(called_fake[sources[reals] == s].mean()) for s in np.unique(sources[reals])}
            runs.append(
                {
                    "roc_auc": float(auc),
                    "real": verdicts["real"],
                    "uncertain": verdicts["uncertain"],
                    "reals_fake": float(called_fake.mean()),
                    "worst_real_source": max(by_source.items(), key=lambda item: item[1]),
                    "seconds": seconds,
                }
            )
        curve[k] = {
            "n_others": int(len(family_fakes) - k),
            "n_reals": int(len(reals)),
            **{
                key: float(np.mean([run[key] for run in runs]))
                for key in ("roc_auc", "real", "uncertain", "reals_fake", "seconds")
            },
            "worst": {
                "roc_auc": min(run["roc_auc"] for run in runs),
                "real": max(run["real"] for run in runs),
                "reals_fake": max(run["reals_fake"] for run in runs),
                "worst_real_source": max(
                    (run["worst_real_source"] for run in runs), key=lambda item: item[1]
                ),
            },
        }
    return {"left_out": family, "curve": curve}


def format_curves(results: dict) -> str:
    """One Markdown table: each fold's family, k, and the adapted head's figures."""
    lines = [
        "| family left out | k | ROC AUC, its other faces (worst repeat) | verdict real (worst) | uncertain "
        "| held-out real faces called fake (worst; worst source) | refit time |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in results.values():
        for k, figures in entry["curve"].items():
            worst = figures["worst"]
            source, share = worst["worst_real_source"]
            lines.append(
                f"| {entry['left_out']} | {k} | {figures['roc_auc']:.3f} ({worst['roc_auc']:.3f}) "
                f"| {figures['real']:.1%} ({worst['real']:.1%}) | {figures['uncertain']:.1%} "
                f"| {figures['reals_fake']:.1%} ({worst['reals_fake']:.1%}; {source} {share:.1%}) "
                f"| {figures['seconds']:.1f} s |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--heads", nargs="+", default=["11,m9,p"])
    parser.add_argument("--folds", nargs="+", choices=list(protocol.GENERATOR_FOLDS))
    parser.add_argument("--k", nargs="+", type=int, default=[0, 5, 10, 25, 50])
    parser.add_argument("--repeats", type=int, default=3, help="random draws of the k faces")
    parser.add_argument("--C", type=float, default=DEFAULT_C, help="the refit's inverse L2 strength")
    parser.add_argument("--head_C", type=float, default=0.01, help="the fold head's, as probe_heads")
    parser.add_argument("--views", type=int, help="the fold head trains on the first N cached views")
    parser.add_argument(
        "--no_prior", action="store_true", help="pull the refit towards zero, not towards the fold's own head"
    )
    parser.add_argument("--output", type=Path, help="a JSON file for the figures")
    args = parser.parse_args(argv)
    cache = CachedTokens.load(args.config, args.views)
    results = {}
    for spec in args.heads:
        features = cache.features(spec)
        results[spec] = {
            fold: fold_curve(
                cache, features, fold, args.k, args.repeats, args.C, args.head_C, not args.no_prior
            )
            for fold in args.folds or protocol.GENERATOR_FOLDS
        }
        prior = "towards zero" if args.no_prior else "towards the fold's head"
        print(f"\n## {spec} (refit C={args.C}, {prior}, {len(cache.tokens)} views, {args.repeats} draws)\n")
        print(format_curves(results[spec]), flush=True)
    if args.output:
        args.output.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
