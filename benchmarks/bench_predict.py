"""Latency and memory of realfake's predict against the naive composition a user would write.

For a 1024x1024 photo with one face and a 1600x900 photo with four, it prints the median and p90
latency split into decode / detect / classify, and the peak resident memory, for

  realfake  load_image -> MTCNN on a copy reduced to about DETECT_MAX_SIDE px -> all crops in one batch
  naive     PIL open -> MTCNN(keep_all=True) at full resolution -> each face through a transformers
            pipeline("image-classification") one at a time

with the same classifier, in the same run (each variant in its own fresh process, so peak memory is
its own), and checks that both find the same faces. A CLIP model runs its backbone on the engine its
config names: ONNX Runtime on the base's int8 graph (the default model; the naive pipeline loads
the same model, so it gets the same engine), or torch, in bfloat16 on CPUs with native bfloat16
(AMX, AVX-512 BF16) and in float32 on every other CPU (most laptops: AVX2 only). --engine torch
runs the same head on torch's backbone instead (its scores differ slightly: speed only), and
--float32 makes torch run in float32 as it does without native bfloat16, so every mode can be
measured on one machine. --sweep prints detection
latency and faces found for several detection sizes, the figures DETECT_MAX_SIDE was chosen from.

    python benchmarks/bench_predict.py [--model M] [--repeats 20] [--engine torch] [--float32] [--sweep]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
FIXTURES = REPO / "tests" / "fixtures"
FACES = [
    FIXTURES / n for n in ("ffhq-1024-0.jpg", "tpdne-2022-0002.jpg", "ffhq-1024-3.jpg", "tpdne-roeishc-0.jpg")
]


def make_photos(folder: Path) -> dict[str, Path]:
    """The benchmark photos, saved as JPEG q90 so that decoding is part of the cost."""
    one = Image.open(FACES[0]).convert("RGB").resize((1024, 1024), Image.Resampling.LANCZOS)
    four = Image.new("RGB", (1600, 900), (128, 124, 118))
    for i, path in enumerate(FACES):
        four.paste(Image.open(path).convert("RGB").resize((300, 300)), (70 + i * 385, 300))
    small = Image.new("RGB", (2400, 1200), (128, 124, 118))
    for i, path in enumerate(FACES):
        small.paste(Image.open(path).convert("RGB").resize((110, 110)), (300 + i * 500, 545))
    photos = {"1 face, 1024x1024": one, "4 faces, 1600x900": four, "4 small faces, 2400x1200": small}
    paths = {}
    for i, (name, image) in enumerate(photos.items()):
        paths[name] = folder / f"photo{i}.jpg"
        image.save(paths[name], quality=90)
    return paths


def default_model(folder: Path) -> str:
    """The bundled model if there is one, else an untrained ConvNeXt-atto of the same size."""
    from realfake.pipeline import DEFAULT_MODEL_DIR

    if (DEFAULT_MODEL_DIR / "config.json").is_file():
        return str(DEFAULT_MODEL_DIR)
    from realfake.architectures import convnext_from_scratch

    model, processor = convnext_from_scratch(image_size=128)
    model.save_pretrained(folder / "model")
    processor.save_pretrained(folder / "model")
    return str(folder / "model")


def quiet() -> None:
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def engine_mode(model) -> str:
    """What runs a classifier's backbone, in words."""
    from realfake.clip import fast_bf16

    if getattr(model.config, "backbone_engine", "torch") == "onnxruntime":
        return "onnxruntime int8"
    return "torch bfloat16 autocast" if fast_bf16(model) else "torch float32"


def run_realfake(
    model: str,
    photos: list[Path],
    repeats: int,
    warmup: int,
    float32: bool = False,
    engine: str | None = None,
) -> dict:
    quiet()
    import realfake
    from realfake.faces import crop_face

    detector = realfake.load_detector(model)
    classifier = detector.classifier
    if engine and hasattr(classifier.model.config, "backbone_engine"):
        classifier.model.config.backbone_engine = engine
    if float32 and hasattr(classifier.model.config, "bf16_inference"):
        classifier.model.config.bf16_inference = False  # as on a CPU without native bfloat16
    mode = engine_mode(classifier.model)

    def once(path):
        t0 = time.perf_counter()
        image = realfake.load_image(path).image
        t1 = time.perf_counter()
        faces = detector.faces.detect(image)
        t2 = time.perf_counter()
        crops = [crop_face(image, f.box, classifier.crop_size, classifier.crop_margin) for f in faces]
        classifier.fake_probabilities(crops)
        t3 = time.perf_counter()
        return (t1 - t0, t2 - t1, t3 - t2), [f.box for f in faces]

    return {**measure(once, photos, repeats, warmup), "mode": mode}


def run_naive(model: str, photos: list[Path], repeats: int, warmup: int) -> dict:
    quiet()
    import torch
    from facenet_pytorch import MTCNN
    from transformers import pipeline

    import realfake.clip  # noqa: F401  (registers the default model's class with transformers)

    mtcnn = MTCNN(keep_all=True, device="cpu")
    classify = pipeline("image-classification", model=model, device="cpu")

    def once(path):
        t0 = time.perf_counter()
        image = Image.open(path).convert("RGB")
        t1 = time.perf_counter()
        with torch.no_grad():
            boxes, _ = mtcnn.detect(image)
        boxes = [] if boxes is None else [tuple(float(v) for v in b) for b in boxes]
        t2 = time.perf_counter()
        for box in boxes:
            classify(image.crop(box))
        t3 = time.perf_counter()
        return (t1 - t0, t2 - t1, t3 - t2), boxes

    return {**measure(once, photos, repeats, warmup), "mode": engine_mode(classify.model)}


def run_sweep(model: str, photos: list[Path], repeats: int, warmup: int, sides: list) -> dict:
    import realfake
    from realfake.faces import FaceDetector

    images = [realfake.load_image(p).image for p in photos]
    out = {}
    for side in sides:
        faces = FaceDetector(max_side=side)
        rows = []
        for image in images:
            for _ in range(warmup):
                faces.detect(image)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                found = faces.detect(image)
                times.append(time.perf_counter() - t0)
            rows.append((statistics.median(times), [f.box for f in found]))
        out[side] = rows
    return out


def measure(once, photos, repeats, warmup) -> dict:
    results = {}
    for path in photos:
        for _ in range(warmup):
            once(path)
        stages, boxes = [], None
        for _ in range(repeats):
            split, boxes = once(path)
            stages.append(split)
        results[str(path)] = {"stages": np.array(stages), "boxes": boxes}
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return results


def in_fresh_process(function, *args):
    """Run ``function(*args)`` in a new interpreter, so its imports and memory are its own."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(function, args)


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def match(ours, theirs) -> float | None:
    """The lowest IoU between each of our faces and its best match, or None if the counts differ."""
    if len(ours) != len(theirs):
        return None
    return min((max(iou(a, b) for b in theirs) for a in ours), default=1.0)


def same_faces(ours, theirs, min_iou=0.5) -> bool:
    overlap = match(ours, theirs)
    return overlap is not None and overlap >= min_iou


def ms(values) -> str:
    return f"{1000 * statistics.median(values):7.1f} {1000 * float(np.percentile(values, 90)):7.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="classifier folder or Hub id (default: the bundled model)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--sweep", action="store_true", help="also compare detection sizes")
    parser.add_argument(
        "--float32",
        action="store_true",
        help="run realfake's torch backbone in float32, as CPUs without bfloat16 do",
    )
    parser.add_argument(
        "--engine",
        choices=["torch", "onnxruntime"],
        help="run realfake's CLIP backbone on this engine instead of the model's own (speed only)",
    )
    args = parser.parse_args()

    import platform

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        photos = make_photos(folder)
        model = args.model or default_model(folder)
        paths = list(photos.values())
        ours = in_fresh_process(
            run_realfake, model, paths, args.repeats, args.warmup, args.float32, args.engine
        )
        naive = in_fresh_process(run_naive, model, paths, args.repeats, args.warmup)
        sweep = None
        if args.sweep:
            sweep = in_fresh_process(
                run_sweep, model, paths, max(3, args.repeats // 4), 1, [240, 320, 400, 480, 640, None]
            )

    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}; classifier: {model}; realfake's backbone on {ours['mode']}, the naive "
        f"pipeline's on {naive['mode']}"
    )
    print(f"{args.repeats} runs after {args.warmup} warm-up; milliseconds, median and p90\n")
    header = (
        f"{'photo':<26} {'variant':<9} {'decode':>15} {'detect':>15} {'classify':>15} {'total':>15}  faces"
    )
    print(header)
    print("-" * len(header))
    ratios = []
    for name, path in photos.items():
        rows = {}
        for variant, results in (("realfake", ours), ("naive", naive)):
            stages = results[str(path)]["stages"]
            total = stages.sum(axis=1)
            rows[variant] = (total, results[str(path)]["boxes"])
            print(
                f"{name:<26} {variant:<9} {ms(stages[:, 0])} {ms(stages[:, 1])} {ms(stages[:, 2])} {ms(total)}"
                f"  {len(results[str(path)]['boxes'])}"
            )
        ratio = statistics.median(rows["naive"][0]) / statistics.median(rows["realfake"][0])
        ratios.append(ratio)
        overlap = match(rows["realfake"][1], rows["naive"][1])
        found = (
            f"same {len(rows['naive'][1])} faces, box IoU >= {overlap:.2f}"
            if overlap and overlap >= 0.5
            else "FACES DIFFER"
        )
        print(f"{'':<26} speed-up {ratio:5.2f}x ({found})\n")
    print(f"peak resident memory: realfake {ours['peak_rss_mb']:.0f} MB, naive {naive['peak_rss_mb']:.0f} MB")
    print(f"speed-up over the naive composition: min {min(ratios):.2f}x across the photos")

    if sweep:
        print("\ndetection size sweep: median detect ms / faces found (vs full resolution)")
        names = list(photos)
        print(f"{'max_side':>9}  " + "  ".join(f"{n:>26}" for n in names))
        full = sweep[None]
        for side, rows in sweep.items():
            cells = []
            for (seconds, boxes), (_, ref) in zip(rows, full):
                agree = "=" if same_faces(boxes, ref) else "!"
                cells.append(f"{1000 * seconds:12.1f} ms {len(boxes)} faces {agree}")
            print(f"{str(side or 'full'):>9}  " + "  ".join(f"{c:>26}" for c in cells))


if __name__ == "__main__":
    main()
