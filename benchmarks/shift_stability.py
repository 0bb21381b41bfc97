"""Does a face's verdict survive its box moving by a pixel or two? MTCNN's boxes move by a fraction of a
pixel from one CPU to another and by a pixel or more between two photos of the same face.

For each labelled image (its most confident face), the face is scored at its own box and with the
box moved by each of ``--shifts`` pixels left, right, up and down (the crop cut as realfake cuts it,
from the full image); prints the share of faces whose verdict changes under some move, the share of
moves that change a verdict, and |P(fake) change| at the median, 90th percentile and worst, per
shift.

    python benchmarks/shift_stability.py ../shared/data/faces --sources lfw-news:0.3 sdfd-sd21:0.3 \
        pixabay-portraits:0.3 t2i-sfhq:0.3 ffhq-1024 tpdne-2025 --limit 200 [--model M]
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from realfake import load_detector  # noqa: E402
from realfake.folders import labelled_images  # noqa: E402
from realfake.images import load_image  # noqa: E402

MOVES = ((1, 0), (-1, 0), (0, 1), (0, -1))


def moved(box, dx: float, dy: float):
    x1, y1, x2, y2 = box
    return (x1 + dx, y1 + dy, x2 + dx, y2 + dy)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--sources", nargs="+", help="SOURCE or SOURCE:SHARE, as evaluate --sources")
    parser.add_argument(
        "--limit", type=int, default=200, help="at most this many images, spread over sources"
    )
    parser.add_argument("--shifts", nargs="+", type=float, default=[1.0, 2.0])
    parser.add_argument("--model", help="default: the bundled model")
    parser.add_argument("--changed", action="store_true", help="list each face whose verdict changes")
    args = parser.parse_args(argv)
    detector = load_detector(args.model, device="cpu")
    bands = detector.classifier.verdict_thresholds()
    images = labelled_images(args.data_dir, args.sources)
    step = max(1, len(images) // args.limit)
    images = images[::step][: args.limit]
    changes = {shift: [] for shift in args.shifts}  # per face: the verdict changes and |dP| of its moves
    for item in tqdm(images, desc="faces", unit="img"):
        image = load_image(item.path).image
        found = detector.faces.detect(image)
        if not found:
            continue
        box = found[0].box
        boxes = [box] + [moved(box, dx * s, dy * s) for s in args.shifts for dx, dy in MOVES]
        scores = detector.classifier.fake_probabilities(detector._crops([image] * len(boxes), boxes))
        verdicts = bands.verdicts(scores)
        for i, shift in enumerate(args.shifts):
            at = slice(1 + 4 * i, 5 + 4 * i)
            changes[shift].append((verdicts[at] != verdicts[0], np.abs(scores[at] - scores[0])))
        if args.changed and (verdicts[1:] != verdicts[0]).any():
            tqdm.write(
                f"{item.path.name}: P(fake) {scores[0]:.3f} {verdicts[0]}, moved "
                + " ".join(f"{score:.3f}" for score in scores[1:])
            )
    print(f"\n{platform.machine()} {platform.processor() or ''}, {len(changes[args.shifts[0]])} faces, model "
          f"{detector.classifier.name}\n")  # fmt: skip
    print(
        "| box moved by | faces whose verdict changes | moves that change it | abs(dP) median | 90th pct | worst |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    figures = {}
    for shift, rows in changes.items():
        flips = np.array([flip for flip, _ in rows])
        deltas = np.concatenate([delta for _, delta in rows])
        figures[shift] = {
            "faces_changed": float(flips.any(axis=1).mean()),
            "moves_changed": float(flips.mean()),
            "median": float(np.median(deltas)),
            "p90": float(np.percentile(deltas, 90)),
            "max": float(deltas.max()),
        }
        f = figures[shift]
        print(
            f"| {shift:g} px | {f['faces_changed']:.1%} | {f['moves_changed']:.1%} | {f['median']:.3f} "
            f"| {f['p90']:.3f} | {f['max']:.3f} |"
        )
    return figures


if __name__ == "__main__":
    main()
