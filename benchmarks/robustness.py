"""Does a verdict survive what happens to a photo online? Scores a labelled set as it is and after
JPEG re-compression, downscaling and blur, the way `python -m realfake evaluate` scores it.

Prints, for each version of the images: ROC AUC, accuracy at the model's threshold, and the share of
images whose label (real/fake) stays what it was on the untouched image; then, for each generator
family of the leave-one-generator-out protocol (train/protocol.py) whose images are in the selection,
its ROC AUC against its real reference in each version, and the share of real photos in the wild
called fake. ``--sources`` takes ``SOURCE:SHARE`` for the files train.py holds out of a source.

    python benchmarks/robustness.py ../shared/data/faces --sources ffhq-1024 tpdne-2025 [--model M]
    python benchmarks/robustness.py ../shared/data/faces --versions "as it is" "JPEG quality 50" "half size" \
        --sources ffhq-1024 tpdne-2025 sdfd-sd21:0.3 t2i-sfhq:0.3 stylegan3-r ffhq-sg3pair \
        facemask-unmasked:0.3 unsplash-men:0.3 lfw-news:0.3
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from realfake import load_detector  # noqa: E402
from realfake.folders import labelled_images, read_batches  # noqa: E402
from realfake.metrics import RealFakeMetrics  # noqa: E402
from train.augment import RandomBlur, RandomJPEG  # noqa: E402
from train.families import FAMILIES, WILD  # noqa: E402


def downscale(factor: float) -> Callable[[Image.Image], Image.Image]:
    def apply(image: Image.Image) -> Image.Image:
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        return image.resize(size, Image.Resampling.LANCZOS)

    return apply


# The training augmentation's own JPEG and blur steps, applied always and at one fixed setting.
VERSIONS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "as it is": lambda image: image,
    "JPEG quality 75": RandomJPEG(p=1, quality=(75, 75)),
    "JPEG quality 50": RandomJPEG(p=1, quality=(50, 50)),
    "half size": downscale(0.5),
    "quarter size": downscale(0.25),
    "Gaussian blur 1 px": RandomBlur(p=1, sigma=(1.0, 1.0)),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data_dir", type=Path, help="a folder with real/ and fake/ (and metadata.csv)")
    parser.add_argument("--sources", nargs="+", help="only these sources of metadata.csv")
    parser.add_argument("--model", help="model folder or Hub id (default: the bundled model)")
    parser.add_argument("--limit", type=int, help="a random sample of this many images (seed 0)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--versions", nargs="+", choices=list(VERSIONS), default=list(VERSIONS))
    args = parser.parse_args()
    versions = {name: VERSIONS[name] for name in ["as it is", *args.versions] if name in VERSIONS}

    detector = load_detector(args.model)
    files = labelled_images(args.data_dir, args.sources)
    if args.limit and args.limit < len(files):
        pick = np.random.default_rng(0).choice(len(files), args.limit, replace=False)
        files = [files[i] for i in sorted(pick)]
    labels, sources, scores = [], [], {name: [] for name in versions}
    progress = tqdm(total=len(files), desc="robustness", unit="img")
    for readable, failed in read_batches(files, args.batch_size):
        for item, message in failed:
            tqdm.write(f"{item.path}: skipped: {message}")
        labels.extend(item.label for item, _ in readable)
        sources.extend(item.source for item, _ in readable)
        images = [image for _, image in readable]
        for name, change in versions.items():
            scores[name].extend(score for score, _ in detector.score_images([change(im) for im in images]))
        progress.update(len(readable) + len(failed))
    progress.close()
    labels = np.array(labels)
    scores = {name: np.array(values) for name, values in scores.items()}

    threshold = detector.threshold
    kept_base = scores["as it is"] >= threshold
    print(
        f"\nmodel {detector.classifier.name}, threshold {threshold:.3f}; {len(labels)} images "
        f"({(labels == 0).sum()} real, {(labels == 1).sum()} fake); {platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads\n"
    )
    print("| version | ROC AUC | accuracy | verdict unchanged |")
    print("| --- | --- | --- | --- |")
    for name, values in scores.items():
        metrics = RealFakeMetrics().compute(predictions=values, references=labels, threshold=threshold)
        unchanged = ((values >= threshold) == kept_base).mean()
        print(f"| {name} | {metrics['roc_auc']:.3f} | {metrics['accuracy']:.3f} | {unchanged:.1%} |")
    print_families(np.array(sources), labels, scores, threshold)


def print_families(sources: np.ndarray, labels: np.ndarray, scores: dict, threshold: float) -> None:
    """Each protocol family's ROC AUC against its real reference, per version, where both are here;
    and the share of real photos in the wild called fake."""
    rows = []
    for family, (fakes, reals) in FAMILIES.items():
        chosen = np.isin(sources, fakes) & (labels == 1) | np.isin(sources, reals) & (labels == 0)
        if (labels[chosen] == 1).any() and (labels[chosen] == 0).any():
            aucs = [
                RealFakeMetrics().compute(predictions=v[chosen], references=labels[chosen])["roc_auc"]
                for v in scores.values()
            ]
            rows.append(
                f"| {family} | {(labels[chosen] == 1).sum()} vs {(labels[chosen] == 0).sum()} | "
                + " | ".join(f"{auc:.3f}" for auc in aucs)
                + " |"
            )
    wild = np.isin(sources, WILD) & (labels == 0)
    if wild.any():
        rows.append(
            f"| real photos in the wild called fake | {wild.sum()} real | "
            + " | ".join(f"{(v[wild] >= threshold).mean():.1%}" for v in scores.values())
            + " |"
        )
    if rows:
        print("\n| family (ROC AUC against real photos) | images | " + " | ".join(scores) + " |")
        print("| --- | --- |" + " --- |" * len(scores))
        print("\n".join(rows))


if __name__ == "__main__":
    main()
