"""Crop every face of a real/fake image dataset once, with realfake's own loading and crop.

    python train/prepare.py --data_dir ../shared/data/faces --output_dir data/faces-160
    python train/prepare.py --dataset_name ORG/DATASET --image_column image --label_column label \\
        --output_dir data/hub-160 [--push_to_hub --hub_dataset_id ORG/DATASET-crops]

A local folder holds ``real/`` and ``fake/`` (the class is the folder) and optionally a
``metadata.csv`` with ``file_name`` and ``source`` columns. Each image goes through
``realfake.load_image`` and ``FaceDetector``; the most confident face is cut with ``crop_face``, the
same function the app uses. Unreadable images and images without a face are dropped and counted per
class and source; the run stops if more than ``--max_loss`` of the images are lost. The result is a
``datasets.Dataset`` on disk with columns ``image`` (the crop), ``label`` (real/fake), ``source``,
``detection_score`` and ``file``, and a ``prepare.json`` with the settings and counts. A second run
with the same input files and settings finds that file and returns at once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
from transformers import HfArgumentParser

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from realfake.errors import ImageError, RealfakeError  # noqa: E402
from realfake.faces import CROP_MARGIN, FaceDetector, crop_face  # noqa: E402
from realfake.folders import LABELS, labelled_images  # noqa: E402
from realfake.images import load_image  # noqa: E402

logger = logging.getLogger("prepare")

PREPARE_VERSION = 1  # bump when the crop logic changes, to invalidate every cache
STATUSES = ("ok", "unreadable", "no_face")
INFO_FILE = "prepare.json"


@dataclass
class PrepareArguments:
    """What to crop, how, and where to put it."""

    output_dir: str = field(metadata={"help": "Folder for the cropped dataset (save_to_disk)."})
    data_dir: str | None = field(default=None, metadata={"help": "Local folder with real/ and fake/."})
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub dataset id instead."})
    dataset_split: str = field(default="train", metadata={"help": "Split of the Hub dataset."})
    image_column: str = field(default="image", metadata={"help": "Image column of the Hub dataset."})
    label_column: str = field(default="label", metadata={"help": "Label column: real/fake names or 0/1."})
    source_column: str | None = field(default=None, metadata={"help": "Optional source column."})
    crop_size: int = field(default=160, metadata={"help": "Side of the stored square crops, pixels."})
    crop_margin: float = field(default=CROP_MARGIN, metadata={"help": "Margin around the face box."})
    num_proc: int = field(default=max(1, (os.cpu_count() or 1)), metadata={"help": "Worker processes."})
    batch_size: int = field(default=16, metadata={"help": "Images per detection batch."})
    max_loss: float = field(default=0.05, metadata={"help": "Stop if a larger share is dropped."})
    push_to_hub: bool = field(default=False, metadata={"help": "Push the cropped dataset to the Hub."})
    hub_dataset_id: str | None = field(default=None, metadata={"help": "Hub id for --push_to_hub."})

    def __post_init__(self) -> None:
        if (self.data_dir is None) == (self.dataset_name is None):
            raise ValueError("Give exactly one of --data_dir and --dataset_name.")
        if self.push_to_hub and not self.hub_dataset_id:
            raise ValueError("--push_to_hub needs --hub_dataset_id.")


def list_folder(data_dir: Path) -> datasets.Dataset:
    """One row per image file under real/ and fake/, with its source from metadata.csv if any."""
    try:
        files = labelled_images(data_dir)
    except RealfakeError as error:
        raise SystemExit(f"prepare: error: {error}") from None
    rows = {"file": [], "label": [], "source": [], "stamp": []}
    for path, label, source in files:
        stat = path.stat()
        rows["file"].append(str(path))
        rows["label"].append(label)
        rows["source"].append(source)
        rows["stamp"].append(f"{path.relative_to(data_dir).as_posix()}:{stat.st_size}:{stat.st_mtime_ns}")
    return datasets.Dataset.from_dict(rows)


def load_hub(args: PrepareArguments) -> datasets.Dataset:
    """The Hub dataset with undecoded images, labels mapped to 0 (real) and 1 (fake)."""
    dataset = datasets.load_dataset(args.dataset_name, split=args.dataset_split)
    dataset = dataset.cast_column(args.image_column, datasets.Image(decode=False))
    feature = dataset.features[args.label_column]
    names = feature.names if isinstance(feature, datasets.ClassLabel) else None

    def to_index(value) -> int:
        name = str(names[value] if names is not None else value).strip().lower()
        if name in ("0", "1"):
            return int(name)
        if name not in LABELS:
            raise ValueError(f"label {value!r} is neither real nor fake")
        return LABELS.index(name)

    def rows(batch):
        return {
            "file": [image.get("path") or "" for image in batch[args.image_column]],
            "label": [to_index(v) for v in batch[args.label_column]],
            "source": batch[args.source_column]
            if args.source_column
            else [args.dataset_name] * len(batch[args.label_column]),
            "stamp": [""] * len(batch[args.label_column]),
            "encoded": [image.get("bytes") for image in batch[args.image_column]],
        }

    return dataset.map(rows, batched=True, remove_columns=dataset.column_names)


@functools.cache
def _detector() -> FaceDetector:
    """One MTCNN per worker process, built on its first batch."""
    return FaceDetector()


def crop_batch(batch: dict, crop_size: int, crop_margin: float, threads: int) -> dict:
    """The datasets.map function: load, detect and crop a batch; marks what could not be used."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    detector = _detector()
    images, statuses = [], []
    encoded = batch.get("encoded") or [None] * len(batch["file"])
    for file, data in zip(batch["file"], encoded):
        try:
            images.append(load_image(data if data else file).image)
            statuses.append("ok")
        except ImageError as error:
            logger.debug("%s: %s", file, error)
            images.append(None)
            statuses.append("unreadable")
    readable = [image for image in images if image is not None]
    found = iter(detector.detect_batch(readable))
    crops, scores = [], []
    for i, image in enumerate(images):
        faces = next(found) if image is not None else []
        if image is not None and not faces:
            statuses[i] = "no_face"
        crops.append(crop_face(image, faces[0].box, crop_size, crop_margin) if faces else None)
        scores.append(faces[0].score if faces else 0.0)
    return {"image": crops, "detection_score": scores, "status": statuses}


def fingerprint(listing: datasets.Dataset, args: PrepareArguments) -> str:
    """What decides the output: the input files (names, sizes, times) and the crop settings."""
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            {
                "version": PREPARE_VERSION,
                "detector": _detector().settings,
                "crop_size": args.crop_size,
                "crop_margin": args.crop_margin,
                "source": args.data_dir and str(Path(args.data_dir).resolve()) or args.dataset_name,
                "split": args.dataset_split,
            },
            sort_keys=True,
        ).encode()
    )
    digest.update(
        listing._fingerprint.encode() if args.dataset_name else "\n".join(listing["stamp"]).encode()
    )
    return digest.hexdigest()[:16]


def summarise(listing: datasets.Dataset, statuses: list[str]) -> dict:
    """Counts per class and per source of kept, unreadable and faceless images."""
    table: dict[str, Counter] = {}
    for label, source, status in zip(listing["label"], listing["source"], statuses):
        for key in (f"class {LABELS[label]}", f"source {source}"):
            table.setdefault(key, Counter())[status] += 1
    rows = {key: {status: counts[status] for status in STATUSES} for key, counts in sorted(table.items())}
    total = Counter(statuses)
    rows["total"] = {status: total[status] for status in STATUSES}
    return rows


def format_summary(rows: dict) -> str:
    lines = [f"{'':<28} {'images':>7} {'kept':>7} {'unreadable':>11} {'no face':>8}"]
    for key, counts in rows.items():
        n = sum(counts.values())
        lines.append(f"{key:<28} {n:>7} {counts['ok']:>7} {counts['unreadable']:>11} {counts['no_face']:>8}")
    return "\n".join(lines)


def prepare(args: PrepareArguments) -> datasets.Dataset:
    """Crop the dataset described by ``args`` into ``args.output_dir`` (or find it done)."""
    listing = list_folder(Path(args.data_dir)) if args.data_dir else load_hub(args)
    if len(listing) == 0:
        raise SystemExit("prepare: error: no image files found.")
    key = fingerprint(listing, args)
    output = Path(args.output_dir)
    info_path = output / INFO_FILE
    if info_path.is_file() and json.loads(info_path.read_text()).get("fingerprint") == key:
        info = json.loads(info_path.read_text())
        print(
            f"cache hit: {output} already holds these {info['n_images']} images cropped "
            f"with these settings (fingerprint {key}); nothing to do."
        )
        print(format_summary(info["summary"]))
        return datasets.load_from_disk(str(output))

    num_proc = max(1, min(args.num_proc, len(listing) // args.batch_size or 1))
    cropped = listing.map(
        crop_batch,
        batched=True,
        batch_size=args.batch_size,
        num_proc=num_proc if num_proc > 1 else None,
        fn_kwargs={
            "crop_size": args.crop_size,
            "crop_margin": args.crop_margin,
            "threads": 1 if num_proc > 1 else 0,
        },
        features=datasets.Features(
            {
                **{k: v for k, v in listing.features.items()},
                "image": datasets.Image(),
                "detection_score": datasets.Value("float32"),
                "status": datasets.Value("string"),
            }
        ),
        new_fingerprint=key,
        desc="cropping faces",
    )
    statuses = cropped["status"]
    summary = summarise(listing, statuses)
    print(format_summary(summary))
    lost = 1 - statuses.count("ok") / len(statuses)
    if lost > args.max_loss:
        raise SystemExit(
            f"prepare: error: {lost:.1%} of the images were unreadable or had no face, more than "
            f"--max_loss {args.max_loss:.0%}; check the data (counts above) or raise --max_loss."
        )
    kept = cropped.filter(
        lambda s: [x == "ok" for x in s],
        input_columns="status",
        batched=True,
        desc="dropping unusable images",
    )
    kept = kept.remove_columns([c for c in ("status", "stamp", "encoded") if c in kept.column_names])
    kept = kept.cast_column("label", datasets.ClassLabel(names=list(LABELS)))
    output.mkdir(parents=True, exist_ok=True)
    kept.save_to_disk(str(output))
    info = {
        "fingerprint": key,
        "n_images": len(listing),
        "n_kept": len(kept),
        "summary": summary,
        "settings": {**asdict(args), "detector": _detector().settings},
    }
    info_path.write_text(json.dumps(info, indent=2))
    print(f"saved {len(kept)} face crops of {len(listing)} images to {output}")
    if args.push_to_hub:
        kept.push_to_hub(args.hub_dataset_id)
        print(f"pushed to https://huggingface.co/datasets/{args.hub_dataset_id}")
    return kept


def main(argv: list[str] | None = None) -> datasets.Dataset:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    parser = HfArgumentParser(PrepareArguments)
    if argv is None and len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
        (args,) = parser.parse_json_file(os.path.abspath(sys.argv[1]))
    else:
        (args,) = parser.parse_args_into_dataclasses(args=argv)
    return prepare(args)


if __name__ == "__main__":
    main()
