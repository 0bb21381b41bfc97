"""Compare linear heads on CLIP's cached class tokens under the leave-one-generator-out protocol, fast.

    python train/probe_heads.py --config train/configs/default.json --heads p 11,p 9,11,p 1-12,p

Each head is a set of blocks whose class token it reads, and ``p`` for CLIP's projected embedding
(``p`` alone is UnivFD; all blocks is close to RINE's input). For every fold of train/protocol.py and
the final split of the config, a scikit-learn logistic regression on standardised features (sources
weighted alike where the config says ``balance_sources``) is fitted on the cached class tokens of the
training crops and their augmented views, exactly the tokens train.py trains on, in seconds instead
of minutes. It prints each family's ROC AUC against its real reference, as protocol.py does, and the
share of held-out real photos in the wild scored above the 98th percentile of the training reals.
The head that wins here is then trained with train.py's Trainer and measured with protocol.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from realfake.folders import in_share, source_shares  # noqa: E402
from train import protocol, train  # noqa: E402


def parse_head(spec: str) -> tuple[list[int], bool]:
    """``9,11,p`` -> ([9, 11], True); ``1-12`` -> blocks 1 to 12."""
    layers, projection = [], False
    for part in spec.split(","):
        if part == "p":
            projection = True
        elif "-" in part:
            first, last = map(int, part.split("-"))
            layers += list(range(first, last + 1))
        else:
            layers.append(int(part))
    return layers, projection


def head_features(
    tokens: np.ndarray, layers: list[int], use_projection: bool, projection: np.ndarray
) -> np.ndarray:
    """What a head reads from class tokens (crops x blocks x hidden), as realfake.clip computes it."""
    parts = [tokens[:, layer - 1] for layer in layers]
    if use_projection:
        parts.append(tokens[:, -1] @ projection)
    return np.concatenate(parts, axis=1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--heads", nargs="+", default=["p", "9,11,p"])
    parser.add_argument("--C", type=float, default=0.01, help="inverse L2 strength of the regression")
    parser.add_argument("--no_balance", action="store_true", help="ignore the config's balance_sources")
    args = parser.parse_args(argv)
    model_args, data_args, training_args = train.parse_args(["--config", str(args.config)])
    model, processor = train.build_model(model_args)
    dataset, _ = train.load_data(data_args)
    views = train.token_views(model, processor, dataset, data_args, training_args)
    tokens = [np.asarray(view["class_tokens"], dtype=np.float32) for view in views]
    projection = model.backbone.visual_projection.weight.detach().numpy().T
    sources, files = np.array(dataset["source"]), dataset["file"]
    labels = np.array(dataset["label"])
    folds = {
        **{fold: heldout for fold, (_, heldout) in protocol.FOLDS.items()},
        "final": data_args.heldout_sources,
    }
    for spec in args.heads:
        layers, use_projection = parse_head(spec)
        head_tokens = [head_features(view, layers, use_projection, projection) for view in tokens]
        for fold, heldout in folds.items():
            shares = source_shares(heldout)
            held = np.array([s in shares and in_share(f, shares[s]) for s, f in zip(sources, files)])
            train_x = np.concatenate([view[~held] for view in head_tokens])
            train_y = np.tile(labels[~held], len(tokens))
            weights = None
            if data_args.balance_sources and not args.no_balance:
                weights = np.tile(train.source_weights(dataset, np.flatnonzero(~held).tolist()), len(tokens))
            scaler = StandardScaler().fit(train_x)
            head = LogisticRegression(C=args.C, max_iter=1000).fit(
                scaler.transform(train_x), train_y, weights
            )
            scores = head.predict_proba(scaler.transform(head_tokens[0]))[:, 1]
            by_source: dict = {}
            for source, label, score in zip(sources[held], labels[held], scores[held]):
                by_source.setdefault(source, []).append((int(label), float(score)))
            cut = np.quantile(scores[~held & (labels == 0)], 0.98)
            aucs = {
                family: figure
                for family in protocol.FAMILIES
                if (figure := protocol.family_auc(by_source, family)[0]) is not None
            }
            wild, _ = protocol.wild_false_positives(by_source, cut)
            ffhq = [score >= cut for label, score in by_source.get("ffhq-1024", [])]
            row = "; ".join(f"{family.split(' (')[0]} {auc:.3f}" for family, auc in aucs.items())
            ffhq_share = f"; FFHQ {np.mean(ffhq):.1%}" if ffhq else ""
            print(f"{spec:>12} {fold:>18}: {row}; above the cut: wild {wild:.1%}{ffhq_share}", flush=True)


if __name__ == "__main__":
    main()
