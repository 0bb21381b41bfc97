"""Training and preparation throughput, and the raw speed of the model they feed.

Prints, for the model of a training config that trains on pixels (default:
train/configs/convnext-atto.json; the CLIP head of default.json trains on cached class tokens instead,
and train.py's progress bars give their caching rate):
  raw      forward + backward + AdamW step on random tensors already in memory (and, for a config
           with --teachers, each teacher's forward pass): the ceiling
  trainer  train/train.py's Trainer run on the prepared crops, augmentation and all
so that a trainer figure close to the raw one shows the data pipeline is not the bottleneck; and
  prepare  train/prepare.py on images of the shared data set: load, MTCNN, crop, save.

    python benchmarks/bench_train.py [--config train/configs/convnext-atto.json] [--steps 30]
        [--data_dir ../shared/data/faces] [--prepare_images 600]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def raw_throughput(model_args, batch: int, steps: int) -> float:
    from realfake.classifier import processor_input_size
    from train.train import build_model, load_teachers

    model, processor = build_model(model_args)
    model.train()
    teachers = load_teachers(model_args, device="cpu")  # a distillation step also runs each teacher
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    size = processor_input_size(processor)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 2, (batch,))
    sides = [processor_input_size(teacher.processor) for teacher in teachers]
    taught = [torch.randn(batch, 3, side, side) for side in sides]

    def step() -> None:
        with torch.no_grad():
            for teacher, pixels in zip(teachers, taught, strict=True):
                teacher.model(pixel_values=pixels)
        model(pixel_values=x, labels=y).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def trainer_throughput(config: Path, steps: int, folder: Path) -> float:
    from train import train

    metrics_file = folder / "run" / "train_results.json"
    train.main(
        [
            "--config",
            str(config),
            "--output_dir",
            str(folder / "run"),
            "--export_dir",
            "",
            "--max_steps",
            str(steps),
            "--eval_strategy",
            "no",
            "--save_strategy",
            "no",
            "--average_checkpoints",
            "0",  # no checkpoints are saved, so none to average
            "--max_eval_samples",
            "64",
            "--logging_steps",
            "1000",
        ]
    )
    return json.loads(metrics_file.read_text())["train_samples_per_second"]


def prepare_throughput(data_dir: Path, n: int, folder: Path, num_proc: int) -> float:
    from train import prepare

    subset = folder / "subset"
    for cls in ("real", "fake"):
        (subset / cls).mkdir(parents=True)
        for path in sorted((data_dir / cls).glob("*"))[: n // 2]:
            shutil.copy(path, subset / cls / path.name)
    start = time.perf_counter()
    prepare.main(
        ["--data_dir", str(subset), "--output_dir", str(folder / "crops"), "--num_proc", str(num_proc)]
    )
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=REPO / "train" / "configs" / "convnext-atto.json")
    parser.add_argument("--steps", type=int, default=30, help="training steps for raw and trainer")
    parser.add_argument("--data_dir", type=Path, default=REPO.parent / "shared" / "data" / "faces")
    parser.add_argument("--prepare_images", type=int, default=600)
    parser.add_argument("--num_proc", type=int, default=2)
    args = parser.parse_args()

    from train.train import parse_args

    model_args, _, training_args = parse_args(["--config", str(args.config), "--output_dir", "unused"])
    batch = training_args.per_device_train_batch_size
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        raw = raw_throughput(model_args, batch, args.steps)
        trainer = trainer_throughput(args.config, args.steps, folder)
        prepared = prepare_throughput(args.data_dir, args.prepare_images, folder, args.num_proc)
    print(
        f"\nmachine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    )
    model = model_args.model_name_or_path or f"{model_args.architecture} {model_args.model_config or ''}"
    teachers = f", distilled from {', '.join(model_args.teachers)}" if model_args.teachers else ""
    print(f"model: {model}, batch {batch}{teachers}")
    print(f"raw forward+backward+step : {raw:7.1f} images/s")
    print(f"Trainer (augment, collate): {trainer:7.1f} images/s  ({trainer / raw:.0%} of raw)")
    print(
        f"prepare (load, MTCNN, crop): {prepared:6.1f} images/s  ({args.prepare_images} images, {args.num_proc} processes)"
    )


if __name__ == "__main__":
    main()
