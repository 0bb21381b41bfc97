"""Image files in folders: what predict walks, and the labelled real/ + fake/ layout of datasets."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from PIL import Image

from .errors import ImageError, RealfakeError
from .images import SUFFIXES, load_image

LABELS = ("real", "fake")


class LabelledImage(NamedTuple):
    """One file of a labelled folder: its path, 0 for real or 1 for fake, and its source."""

    path: Path
    label: int
    source: str


def find_images(folder: Path, suffixes: Sequence[str] = SUFFIXES) -> list[Path]:
    """Image files (by suffix, or any of ``suffixes``) below ``folder``, sorted, skipping hidden
    files and folders."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in suffixes
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def source_shares(specs: Sequence[str]) -> dict[str, float]:
    """Source specs as {source: share}: ``name`` is the whole source, ``name:0.3`` the 30% of its
    files that :func:`in_share` picks.

    Raises:
        RealfakeError: a share that is not a number in (0, 1].
    """
    shares = {}
    for spec in specs:
        name, _, share = spec.partition(":")
        try:
            shares[name] = float(share) if share else 1.0
        except ValueError:
            shares[name] = -1.0
        if not 0 < shares[name] <= 1:
            raise RealfakeError(f"{spec}: the share after the colon must be a number in (0, 1].")
    return shares


def in_share(file: str | Path, share: float) -> bool:
    """Whether a file is in the ``share`` of its source that is held out: decided by a hash of its
    name alone, so training, ``evaluate`` and the benchmarks pick the same files on every machine."""
    if share >= 1:
        return True
    digest = hashlib.sha256(Path(file).name.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def labelled_images(data_dir: Path, sources: Sequence[str] | None = None) -> list[LabelledImage]:
    """The images of ``data_dir/real`` and ``data_dir/fake``, each with its source.

    The source comes from ``data_dir/metadata.csv`` (columns ``file_name`` and ``source``, as
    ``datasets``' imagefolder reads it) where the file is listed there, else it is the class name.
    ``sources`` keeps only the images of those sources; ``name:0.3`` keeps the 30% of that
    source's files that ``train.py --heldout_sources name:0.3`` holds out (see :func:`in_share`).

    Raises:
        RealfakeError: a class folder is missing, a named source has no images, or nothing is left.
    """
    data_dir = Path(data_dir)
    for cls in LABELS:
        if not (data_dir / cls).is_dir():
            other = LABELS[1 - LABELS.index(cls)]
            raise RealfakeError(f"{data_dir} must hold a {cls}/ folder (and a {other}/ one).")
    known = {}
    metadata = data_dir / "metadata.csv"
    if metadata.is_file():
        with open(metadata, newline="") as handle:
            known = {row["file_name"]: row.get("source") or "" for row in csv.DictReader(handle)}
    files = [
        LabelledImage(path, label, known.get(path.relative_to(data_dir).as_posix()) or cls)
        for label, cls in enumerate(LABELS)
        for path in find_images(data_dir / cls)
    ]
    if sources:
        shares = source_shares(sources)
        missing = sorted(set(shares) - {item.source for item in files})
        if missing:
            raise RealfakeError(
                f"No images of source {', '.join(missing)} in {data_dir} (see its metadata.csv)."
            )
        files = [item for item in files if item.source in shares and in_share(item.path, shares[item.source])]
    if not files:
        raise RealfakeError(f"{data_dir}/real and {data_dir}/fake hold no image files.")
    return files


def read_batches(
    files: Sequence[LabelledImage], batch_size: int
) -> Iterator[tuple[list[tuple[LabelledImage, Image.Image]], list[tuple[LabelledImage, str]]]]:
    """The files decoded ``batch_size`` at a time: for each batch, the (file, RGB image) pairs that
    could be read and the (file, one-sentence reason) pairs that could not."""
    for start in range(0, len(files), max(1, batch_size)):
        readable, failed = [], []
        for item in files[start : start + batch_size]:
            try:
                readable.append((item, load_image(item.path).image))
            except ImageError as error:
                failed.append((item, str(error)))
        yield readable, failed
