"""Compare linear heads on CLIP's cached tokens under the whole leave-one-out protocol, fast.

    python train/probe_heads.py --config train/configs/default.json --heads 9,11,p 9,11,m6,m9,p
    python train/probe_heads.py --config train/configs/default.json --heads 9,11,p --folds without-pixabay

A head is a comma-separated set of what it reads: a block's class token (``9``, or ``1-12`` for a
range), the mean of a block's patch tokens (``m6``, ``m1-12``) and ``p`` for CLIP's projected
embedding (``p`` alone is UnivFD; all blocks' class tokens is close to RINE's input). For every fold of
train/protocol.py (generator families and kinds of real photo) and the config's final split, a
scikit-learn logistic regression on standardised features (sources weighted alike where the config
says ``balance_sources``) is fitted on exactly the cached tokens train.py trains on, in seconds instead
of minutes. Each fold is then scored, thresholded, calibrated and given verdict thresholds as train.py
and train/calibrate.py do it (the same random split, the same rules), written as a run folder under
``--output_dir``, and the protocol's own tables are printed from those folders, so a head that wins
here can be compared figure for figure with the Trainer's runs of train/protocol.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from realfake.classifier import THRESHOLD_KEY  # noqa: E402
from realfake.novelty import COMPONENTS, NOVELTY_KEY, Novelty  # noqa: E402
from train import protocol, train  # noqa: E402
from train.calibrate import calibrate_run  # noqa: E402
from train.tokens import TOKEN_COLUMNS, token_views  # noqa: E402


def parse_range(part: str) -> list[int]:
    """``9`` -> [9]; ``1-12`` -> [1, ..., 12]."""
    if "-" in part:
        first, last = map(int, part.split("-"))
        return list(range(first, last + 1))
    return [int(part)]


def parse_head(spec: str) -> tuple[list[int], list[int], bool]:
    """``9,11,m6,p`` -> class-token blocks [9, 11], pooled blocks [6], projection True."""
    layers, pooled, projection = [], [], False
    for part in spec.split(","):
        if part == "p":
            projection = True
        elif part.startswith("m"):
            pooled += parse_range(part[1:])
        else:
            layers += parse_range(part)
    return layers, pooled, projection


def head_features(
    view: dict, layers: list[int], pooled: list[int], use_projection: bool, projection
) -> np.ndarray:
    """What a head reads from one view's cached tokens (crops x blocks x hidden each), as
    realfake.clip computes it."""
    parts = [view["class_tokens"][:, layer - 1] for layer in layers]
    parts += [view["patch_means"][:, layer - 1] for layer in pooled]
    if use_projection:
        parts.append(view["class_tokens"][:, -1] @ projection)
    return np.concatenate(parts, axis=1)


@dataclasses.dataclass
class CachedTokens:
    """A recipe's crops and their cached CLIP tokens (every view), read once for many heads."""

    config: dict
    data_args: train.DataArguments
    seed: int
    dataset: object
    labels: np.ndarray
    tokens: list[dict]
    projection: np.ndarray

    @classmethod
    def load(cls, config: Path, views: int | None = None) -> CachedTokens:
        """The crops and tokens of ``config``'s recipe (its first ``views`` views), cached where
        not cached yet."""
        model_args, data_args, training_args = train.parse_args(["--config", str(config)])
        model, processor = train.build_model(model_args)
        dataset, _ = train.load_data(data_args)
        cached = token_views(model, processor, dataset, data_args, training_args)[:views]
        return cls(
            config=json.loads(config.read_text()),
            data_args=data_args,
            seed=training_args.seed,
            dataset=dataset,
            labels=np.array(dataset["label"]),
            tokens=[
                {key: np.asarray(view[key], dtype=np.float32) for key in TOKEN_COLUMNS} for view in cached
            ],
            projection=model.backbone.visual_projection.weight.detach().numpy().T,
        )

    def features(self, spec: str) -> list[np.ndarray]:
        """What the head ``spec`` reads, for every view."""
        layers, pooled, use_projection = parse_head(spec)
        return [head_features(view, layers, pooled, use_projection, self.projection) for view in self.tokens]

    def split(self, heldout: list[str] | None, per_source: int | None = None) -> tuple[list[int], dict]:
        """A fold's training rows (at most ``per_source`` of each source, drawn at random) and its
        validation rows, as train.py splits them."""
        fold_args = (
            self.data_args
            if heldout is None
            else dataclasses.replace(self.data_args, heldout_sources=heldout)
        )
        train_rows, eval_rows = train.split_rows(self.dataset, fold_args, self.seed)
        if per_source:
            sources = np.asarray(self.dataset["source"])[train_rows]
            rng = np.random.default_rng(self.seed)
            train_rows = sorted(
                row
                for source in np.unique(sources)
                for row in rng.permutation(np.asarray(train_rows)[sources == source])[:per_source].tolist()
            )
        return train_rows, eval_rows


def probe_fold(
    features, labels, weights, train_rows, eval_rows, C: float
) -> tuple[dict[str, np.ndarray], StandardScaler, LogisticRegression]:
    """Fit one head on the training rows of every view; P(fake) of each validation set's crops as
    they are (view 0), the standardisation the head reads through, and the head."""
    train_x = np.concatenate([view[train_rows] for view in features])
    train_y = np.tile(labels[train_rows], len(features))
    sample_weight = None if weights is None else np.tile(weights, len(features))
    scaler = StandardScaler().fit(train_x)
    head = LogisticRegression(C=C, max_iter=2000).fit(scaler.transform(train_x), train_y, sample_weight)
    scores = {
        name: head.predict_proba(scaler.transform(features[0][rows]))[:, 1]
        for name, rows in eval_rows.items()
    }
    return scores, scaler, head


def novelty_p_values(
    features: np.ndarray, labels, scaler, train_rows, eval_rows: dict, alpha: float, components: int
) -> tuple[Novelty, dict[str, np.ndarray]]:
    """A novelty model of the fold's real training crops (as they are), referenced on the random
    split's real crops, and every validation crop's p-value under it."""
    train_rows, random_rows = np.asarray(train_rows), np.asarray(eval_rows["random"])
    standard = scaler.transform(features)
    novelty = Novelty.fit(
        standard[train_rows[labels[train_rows] == 0]],
        standard[random_rows[labels[random_rows] == 0]],
        alpha=alpha,
        components=components,
    )
    return novelty, {name: novelty.p_values(standard[rows]) for name, rows in eval_rows.items()}


def write_run(
    run: Path,
    dataset,
    eval_rows: dict,
    scores: dict,
    labels: np.ndarray,
    threshold: float,
    novelty: Novelty | None = None,
    real_p_values: dict | None = None,
) -> None:
    """A run folder as train.py leaves one for calibration: its config (threshold, and the novelty
    settings where there are some) and scores."""
    run.mkdir(parents=True, exist_ok=True)
    config = {THRESHOLD_KEY: threshold, **({NOVELTY_KEY: novelty.settings()} if novelty else {})}
    (run / "config.json").write_text(json.dumps(config))
    curves = {name: (scores[name], labels[rows]) for name, rows in eval_rows.items()}
    train.write_scores(run / train.SCORES_FILE, dataset, eval_rows, curves, real_p_values)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--heads", nargs="+", default=["9,11,p"])
    parser.add_argument("--folds", nargs="+", choices=[*protocol.FOLDS, protocol.FINAL])
    parser.add_argument("--C", type=float, default=0.01, help="inverse L2 strength of the regression")
    parser.add_argument("--views", type=int, help="train on the first N cached views only (default: all)")
    parser.add_argument("--no_balance", action="store_true", help="ignore the config's balance_sources")
    parser.add_argument("--output_dir", type=Path, help="default: runs/probe-<config name>")
    parser.add_argument(
        "--novelty_alpha",
        type=float,
        help="'real' is earned: a face whose novelty p-value (realfake.novelty) is below this is uncertain",
    )
    parser.add_argument("--novelty_components", type=int, default=COMPONENTS, help="its PCA directions")
    parser.add_argument(
        "--per_source", type=int, help="train on at most N crops of each source (default: all of them)"
    )
    args = parser.parse_args(argv)
    cache = CachedTokens.load(args.config, args.views)
    config, data_args, dataset, labels = cache.config, cache.data_args, cache.dataset, cache.labels
    balance = data_args.balance_sources and not args.no_balance
    output = args.output_dir or Path("runs") / f"probe-{args.config.stem}"
    results = {}
    for spec in args.heads:
        features = cache.features(spec)
        runs = {}
        for fold in args.folds or [*protocol.FOLDS, protocol.FINAL]:
            heldout, exclude = protocol.fold_split(fold, config)
            train_rows, eval_rows = cache.split(heldout, args.per_source)
            weights = (
                np.array(train.source_weights(dataset, train_rows, data_args.balance_classes))
                if balance
                else None
            )
            scores, scaler, _ = probe_fold(features, labels, weights, train_rows, eval_rows, args.C)
            threshold = train.decision_threshold(
                scores["random"], labels[eval_rows["random"]], data_args.threshold_max_fpr
            )
            novelty = p_values = None
            if args.novelty_alpha is not None:
                novelty, p_values = novelty_p_values(
                    features[0], labels, scaler, train_rows, eval_rows, args.novelty_alpha,
                    args.novelty_components,
                )  # fmt: skip
            run = output / spec / fold
            write_run(run, dataset, eval_rows, scores, labels, threshold, novelty, p_values)
            calibrate_run(run, data_args.calibration_share, exclude)
            runs[fold] = run
        results[spec] = protocol.report(runs)
        (output / spec / "protocol.json").write_text(json.dumps(results[spec], indent=2))
        settings = [f"C={args.C}", *(["sources balanced"] if balance else []), f"{len(cache.tokens)} views"]
        settings += [] if args.per_source is None else [f"at most {args.per_source} crops a source"]
        settings += [] if args.novelty_alpha is None else [f"novelty alpha {args.novelty_alpha}"]
        print(f"\n## {spec} ({', '.join(settings)})\n")
        print(protocol.format_all(results[spec]), flush=True)
    return results


if __name__ == "__main__":
    main()
