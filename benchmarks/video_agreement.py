"""Does a face get the same verdict in a video as in its photo, and which way of pooling a track's
frames is best calibrated?

Each held-out photo (the files the bundled model never trained on: the final split's held-out sources
and shares, as ``evaluate --sources`` takes them) becomes a 4 s clip at 10 fps: the camera drifts over
the still photo and zooms in to 85% (benchmarks/clips.py ``pan_and_zoom``), encoded with H.264 at
two bit rates. Each clip goes through ``Detector.predict_video`` at 2 fps (8 sampled frames), and
its longest track is compared with the photo's own most confident face from ``Detector.predict``.

Printed, per family and bit rate: how often the clip's verdict equals the photo's, ROC AUC and the
calibration error (ECE) of four ways to pool a track's frames' P(fake) into one:

  mean logit    the sigmoid of the mean of the frames' logits (what realfake uses)
  trimmed       the same after dropping the highest and lowest 25% of the frames' logits
  median        the median frame's P(fake)
  share         the share of frames at or above the decision threshold

    python benchmarks/video_agreement.py ../shared/data/faces [--per_source 40] [--model M]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.clips import pan_and_zoom, write_frames  # noqa: E402
from realfake.calibration import expected_calibration_error as ece  # noqa: E402
from realfake.calibration import pool_probabilities  # noqa: E402

FAMILIES = {  # family: held-out sources (as evaluate --sources takes them) of its photos
    "StyleGAN2 (tpdne-2025)": ["tpdne-2025"],
    "Stable Diffusion 2.1": ["sdfd-sd21:0.3"],
    "text-to-image": ["t2i-sfhq:0.3"],
    "real: FFHQ 1024": ["ffhq-1024"],
    "real: in the wild": ["lfw-news:0.3", "unsplash-men:0.3", "aaf-ages:0.3", "pixabay-portraits:0.3"],
}
BIT_RATES = {"H.264 2 Mbit/s": 2_000_000, "H.264 300 kbit/s": 300_000}
SECONDS, RATE, FPS = 4, 10, 2.0


def pooled(scores: np.ndarray, threshold: float) -> dict[str, float]:
    """One P(fake) for a track from its frames' P(fake), each way."""
    return {
        "mean logit": pool_probabilities(scores),
        "trimmed": pool_probabilities(scores, trim=0.25),
        "median": float(np.median(scores)),
        "share": float(np.mean(scores >= threshold)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--per_source", type=int, default=40, help="photos per source, drawn at random")
    parser.add_argument("--model", help="Hub id or folder (default: the bundled model)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import realfake
    from realfake.folders import labelled_images

    detector = realfake.load_detector(args.model, device="cpu")
    rng = random.Random(args.seed)
    photos = []
    for family, sources in FAMILIES.items():
        for source in sources:
            files = labelled_images(args.data_dir, [source])
            photos += [(family, item) for item in rng.sample(files, min(args.per_source, len(files)))]
    rows = defaultdict(list)  # (family, bit rate) -> [(label, still verdict, clip verdict, pooled)]
    skipped = 0
    with tempfile.TemporaryDirectory() as scratch:
        for family, item in tqdm(photos, desc="clips", unit="photo"):
            photo = Image.open(item.path).convert("RGB")
            still = detector.predict(photo)
            if not still:
                skipped += 1
                continue
            for rate_name, bit_rate in BIT_RATES.items():
                frames = list(pan_and_zoom(photo, SECONDS * RATE))
                clip = write_frames(
                    Path(scratch) / "clip.mp4", frames, RATE, frames[0].size, bit_rate=bit_rate
                )
                result = detector.predict_video(clip, fps=FPS, provenance=False)
                if not result.tracks:
                    rows[family, rate_name].append((item.label, still[0].verdict, "no face", None))
                    continue
                track = max(result.tracks, key=lambda t: len(t.frames))
                scores = np.array([frame.fake_probability for frame in track.frames])
                rows[family, rate_name].append(
                    (item.label, still[0].verdict, track.verdict, pooled(scores, detector.threshold))
                )
    print(
        f"{len(photos)} held-out photos ({skipped} with no face in the photo, left out); clips of "
        f"{SECONDS} s at {RATE} fps, sampled at {FPS:g} fps; model {detector.classifier.name}"
    )
    print()
    print(
        "| family | clip | clips | clip verdict = photo verdict | no face in the clip | photos' verdicts "
        "(real / uncertain / fake) | clips' verdicts (real / uncertain / fake) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")

    def shares(verdicts: list[str]) -> str:
        return " / ".join(
            f"{np.mean([v == name for v in verdicts]):.0%}" for name in ("real", "uncertain", "fake")
        )

    for (family, rate_name), entries in rows.items():
        same = np.mean([still == clip for _, still, clip, _ in entries])
        lost = sum(clip == "no face" for _, _, clip, _ in entries)
        stills = [still for _, still, _, _ in entries]
        clips = [clip for _, _, clip, _ in entries if clip != "no face"]
        print(
            f"| {family} | {rate_name} | {len(entries)} | {same:.1%} | {lost} | {shares(stills)} | {shares(clips)} |"
        )
    print()
    methods = ["mean logit", "trimmed", "median", "share"]
    print("| clip | " + " | ".join(f"{m}: ROC AUC / ECE" for m in methods) + " |")
    print("| --- |" + " --- |" * len(methods))
    for rate_name in BIT_RATES:
        entries = [e for (_, r), es in rows.items() if r == rate_name for e in es if e[3] is not None]
        labels = np.array([label for label, *_ in entries])
        cells = []
        for method in methods:
            p = np.array([pool[method] for *_, pool in entries])
            cells.append(f"{roc_auc_score(labels, p):.3f} / {ece(labels, p):.3f}")
        print(f"| {rate_name} (all families, {len(entries)} clips) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
