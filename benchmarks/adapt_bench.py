"""How well, how fast and at what cost does `python -m realfake adapt` teach a model a new generator?

Takes ``--k`` pictures of the new generator's sources (files outside their held-out share, as
`evaluate --sources S:0.3` picks it), runs adapt on them as a user would (timed, with the process's
peak memory), then scores clean test files with the model before and after:

- the new generator's other files (none of them was adapted on);
- for every ``--test`` source, its held-out files that neither the model's calibration nor its
  adaptation memory fitted on (outside the calibration half that train/calibrate.py picks).

Prints per source the shares of the verdicts fake / uncertain / real before and after, and the ROC
AUC of the new generator's faces against the real test faces.

    python benchmarks/adapt_bench.py ../shared/data/faces --new facechain-portraits kolors-people \\
        --k 25 --test scut-beauty:0.3 pixabay-portraits:0.3 lfw-news:0.3 unsplash-men:0.3 \\
        facemask-unmasked:0.3 aaf-ages:0.3 ffhq-1024 sdfd-sd21:0.3 t2i-sfhq:0.3 tpdne-2025
"""

from __future__ import annotations

import argparse
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from realfake import load_detector  # noqa: E402
from realfake.adapt import adapt_model  # noqa: E402
from realfake.folders import in_share, labelled_images, read_batches  # noqa: E402
from train.calibrate import CALIBRATION_SHARE, in_calibration_share  # noqa: E402

HELD_OUT_SHARE = 0.3  # the share train.py's default config holds out of a source


def scores(detector, items, desc: str) -> np.ndarray:
    """P(fake) of each item's most confident face (the whole frame without a face), as evaluate."""
    found = []
    with tqdm(total=len(items), desc=desc, unit="img") as bar:
        for readable, failed in read_batches(items, 8):
            found += [score for score, _ in detector.score_images([image for _, image in readable])]
            bar.update(len(readable) + len(failed))
    return np.asarray(found)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--new", nargs="+", required=True, help="the new generator's source(s)")
    parser.add_argument("--k", type=int, default=25, help="pictures of the new generator to adapt on")
    parser.add_argument("--real", nargs="*", default=[], help="real sources to adapt on too (--real)")
    parser.add_argument("--test", nargs="+", required=True, help="SOURCE or SOURCE:SHARE to test on")
    parser.add_argument("--model", help="default: the bundled model")
    parser.add_argument("--C", type=float, help="adapt's --C (default: the model's own)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    new = labelled_images(args.data_dir, args.new)
    pool = [item for item in new if not in_share(item.path, HELD_OUT_SHARE)]
    chosen = [pool[i] for i in sorted(rng.permutation(len(pool))[: args.k])]
    taught = {item.path for item in chosen}
    test = [item for item in new if item.path not in taught]
    # Of every test source's files (a whole source is a held-out one), the memory may hold the
    # calibration half: only the other half is tested.
    items = labelled_images(args.data_dir, args.test)
    test += [item for item in items if not in_calibration_share(item.path.name, CALIBRATION_SHARE)]

    work = Path(tempfile.mkdtemp(prefix="adapt-bench-"))
    try:
        folders = {"fake": chosen}
        if args.real:
            real = [
                item
                for item in labelled_images(args.data_dir, args.real)
                if not in_share(item.path, HELD_OUT_SHARE)
            ]
            folders["real"] = [real[i] for i in sorted(rng.permutation(len(real))[: args.k])]
        for name, items in folders.items():
            (work / name).mkdir()
            for item in items:
                shutil.copy2(item.path, work / name / item.path.name)
        started = time.perf_counter()
        figures = adapt_model(
            args.model or str(REPO / "realfake" / "model"),
            work / "fake",
            work / "adapted",
            real_dir=work / "real" if args.real else None,
            C=args.C,
            seed=args.seed,
        )
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        before, after = load_detector(args.model), load_detector(str(work / "adapted"))
        judged = {}
        for name, detector in (("before", before), ("after", after)):
            p = scores(detector, test, name)
            bands = detector.classifier.verdict_thresholds(detector.threshold)
            judged[name] = (p, bands.verdicts(p))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    sources = np.array([item.source for item in test])
    labels = np.array([item.label for item in test])
    is_new = np.isin(sources, args.new)
    print(
        f"\n{platform.machine()} {platform.processor() or ''}: adapt on {args.k} pictures of "
        f"{', '.join(args.new)}{' and ' + str(args.k) + ' real photos of ' + ', '.join(args.real) if args.real else ''}"
        f" in {seconds:.0f} s, peak memory {peak:.2f} GB; C {figures['C']}\n"
    )
    print("| test files | n | before: fake / uncertain / real | after: fake / uncertain / real |")
    print("| --- | --- | --- | --- |")
    rows = {}
    for source in [*args.new, *(s for s in dict.fromkeys(sources) if s not in args.new)]:
        at = sources == source
        if not at.any():
            continue
        cells = []
        for name in ("before", "after"):
            verdicts = judged[name][1][at]
            cells.append(" / ".join(f"{np.mean(verdicts == v):.1%}" for v in ("fake", "uncertain", "real")))
        rows[source] = cells
        kind = "new generator" if source in args.new else ("fake" if labels[at][0] else "real")
        print(f"| {source} ({kind}) | {at.sum()} | {cells[0]} | {cells[1]} |")
    real = labels == 0
    for name in ("before", "after"):
        p, verdicts = judged[name]
        auc = roc_auc_score(np.r_[np.ones(is_new.sum()), np.zeros(real.sum())], np.r_[p[is_new], p[real]])
        print(
            f"{name}: new generator against the real test faces ROC AUC {auc:.3f}; real faces called fake "
            f"{np.mean(verdicts[real] == 'fake'):.1%} of {real.sum()}, uncertain "
            f"{np.mean(verdicts[real] == 'uncertain'):.1%}"
        )
    return {"seconds": seconds, "peak_gb": peak, "rows": rows}


if __name__ == "__main__":
    main()
