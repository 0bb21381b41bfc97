"""Many photos at once on Ray Data: a folder tree, a list of paths or URIs, or a Hugging Face dataset,
judged by realfake's detector in Ray actors and written as Parquet shards that a stopped run resumes.

The driver lists the inputs, leaves out those already in the output, and hands the rest to Ray Data:
``map_batches`` runs :class:`Judge` (one detector per actor, loaded once) on ``workers`` actors, and
the driver writes what comes back as shards, each written whole under a temporary name and then
renamed, so a run stopped at any moment leaves only complete shards behind. A worker that dies is
replaced and its batch done again by Ray's task retries; the driver keeps the first row of each input,
so the output holds every input exactly once.

Without ``RAY_ADDRESS`` this starts a local Ray with the machine's cores; with it, the same job runs on
that cluster (realfake[batch] installed on every node, the model reachable from each).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import RealfakeError
from .folders import find_images
from .images import MAX_FILE_BYTES, SUFFIXES
from .video import VIDEO_SUFFIXES

logger = logging.getLogger(__name__)

HUB_PREFIX = "hf:"
MANIFEST = "_realfake_batch.json"
SHARD_GLOB = "part-*.parquet"
METADATA_KEY = b"realfake"
BATCH_ROWS = 8
"""Inputs per ``map_batches`` call."""
BLOCK_BATCHES = 4
"""Batches per Ray block: the unit an actor is handed, and what is done again if it dies."""
SHARD_ROWS = 500
SHARD_SECONDS = 60.0
"""A shard is written every SHARD_ROWS rows or SHARD_SECONDS, whichever comes first: the most a stop
can cost."""

FACE_TYPE = pa.struct(
    [
        ("box", pa.list_(pa.float64())),
        ("detection_score", pa.float64()),
        ("fake_probability", pa.float64()),
        ("label", pa.string()),
        ("verdict", pa.string()),
    ]
)
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("path", pa.string()),
        ("file_bytes", pa.int64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("first_frame_only", pa.bool_()),
        ("faces", pa.list_(FACE_TYPE)),
        ("n_faces", pa.int32()),
        ("verdict", pa.string()),
        ("max_fake_probability", pa.float64()),
        ("declares_ai", pa.bool_()),
        ("provenance_summary", pa.string()),
        ("provenance", pa.string()),
        ("error", pa.string()),
    ]
)
"""One row per input. ``verdict`` is the photo's: "fake" if any face is, else "uncertain" if any face
is, else "real" (null with no face or an error). ``provenance`` is the file's statements as JSON, as
``predict --json`` gives them; ``error`` is the one-sentence reason an input could not be judged."""


@dataclass(frozen=True)
class ModelPin:
    """The model every worker loads, and what identifies its weights."""

    name: str
    revision: str | None
    fingerprint: str | None
    """sha256 over a local model folder's files (None for a Hub model pinned to its commit)."""

    def to_dict(self) -> dict:
        return {"model": self.name, "revision": self.revision, "fingerprint": self.fingerprint}


@dataclass
class Source:
    """The inputs of a run: ``ids`` in order, and how to make a Ray dataset of some of them."""

    description: str
    ids: list[str]
    to_ray: Callable[[Sequence[str], int], object]
    """Given the ids still to judge and a number of blocks, a Ray dataset with one row each ("id" and
    "path", or "id" and "image")."""
    left_out: dict[str, int] = field(default_factory=dict)
    """Files found but not judged, by reason ("videos")."""


@dataclass
class BatchReport:
    """What a run did: inputs judged this time, skipped as already judged, and the output's totals."""

    output: Path
    judged: int = 0
    skipped: int = 0
    faces: int = 0
    errors: int = 0
    seconds: float = 0.0
    verdicts: Counter = field(default_factory=Counter)
    missing: list[str] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.judged / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """The closing lines: photos judged, faces, errors, photos a second, and what was skipped."""
        order = ("fake", "uncertain", "real", "no face")
        verdicts = ", ".join(f"{self.verdicts[v]} {v}" for v in order if self.verdicts[v])
        lines = [
            f"Judged {self.judged} photo{'s' * (self.judged != 1)} in {self.seconds:.1f} s "
            f"({self.per_second:.2f} photos a second): {self.faces} faces, {self.errors} errors"
            + (f"; photos {verdicts}" if verdicts else "")
            + "."
        ]
        if self.skipped:
            lines.append(f"Skipped {self.skipped} photos already judged in {self.output}.")
        lines += [f"Left out {n} {why}." for why, n in self.left_out.items()]
        if self.missing:
            lines.append(f"{len(self.missing)} inputs have no row yet; run the same command again to finish.")
        lines.append(f"Rows in {self.output} (pandas.read_parquet or realfake.batch.read_output).")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "output": str(self.output),
            "judged": self.judged,
            "skipped": self.skipped,
            "faces": self.faces,
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
            "photos_per_second": round(self.per_second, 3),
            "verdicts": dict(self.verdicts),
            "missing": self.missing,
            "left_out": self.left_out,
        }


def open_source(source: str) -> Source:
    """A folder (searched recursively for images), a text file of paths or URIs (one a line; blank
    lines and lines starting with # are skipped; relative paths are relative to the file's folder), or
    ``hf:OWNER/NAME[:SPLIT]`` (a Hugging Face dataset through ``datasets``, its first image column;
    SPLIT defaults to train).

    Raises:
        RealfakeError: the source does not exist, is empty, or is not one of these.
    """
    if source.startswith(HUB_PREFIX):
        return _hub_source(source[len(HUB_PREFIX) :])
    path = Path(source)
    if path.is_dir():
        return _folder_source(path)
    if path.is_file():
        return _list_source(path)
    raise RealfakeError(f"{source} is neither a folder, a file of paths, nor hf:OWNER/NAME[:SPLIT].")


def _folder_source(root: Path) -> Source:
    files = find_images(root, SUFFIXES + VIDEO_SUFFIXES)
    videos = sum(path.suffix.lower() in VIDEO_SUFFIXES for path in files)
    paths = {
        path.relative_to(root).as_posix(): str(path) for path in files if path.suffix.lower() in SUFFIXES
    }
    if not paths:
        raise RealfakeError(f"The folder {root} holds no image files.")
    return Source(
        f"{len(paths)} images in {root}",
        list(paths),
        lambda ids, blocks: _paths_dataset([(i, paths[i]) for i in ids], blocks),
        {"videos (batch judges photos; predict judges videos)": videos} if videos else {},
    )


def _list_source(listing: Path) -> Source:
    try:
        lines = listing.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise RealfakeError(f"Cannot read {listing} as a text file of paths ({error}).") from None
    paths: dict[str, str] = {}
    for line in (line.strip() for line in lines):
        if line and not line.startswith("#"):
            paths.setdefault(line, line if "://" in line else str(listing.parent / Path(line).expanduser()))
    if not paths:
        raise RealfakeError(f"{listing} lists no paths.")
    return Source(
        f"{len(paths)} paths listed in {listing}",
        list(paths),
        lambda ids, blocks: _paths_dataset([(i, paths[i]) for i in ids], blocks),
    )


def _paths_dataset(rows: Sequence[tuple[str, str]], blocks: int):
    import ray.data

    return ray.data.from_items([{"id": i, "path": p} for i, p in rows], override_num_blocks=blocks)


def _hub_source(spec: str) -> Source:
    """A Hugging Face dataset: a Hub id (from the Hub, or its local cache with HF_HUB_OFFLINE=1)."""
    import datasets

    name, _, split = spec.partition(":")
    split = split or "train"
    if not name:
        raise RealfakeError("hf: needs a dataset id, as in hf:OWNER/NAME or hf:OWNER/NAME:test.")
    try:
        dataset = datasets.load_dataset(name, split=split)
    except Exception as error:  # datasets raises many kinds for a missing dataset, split or network
        raise RealfakeError(f"Cannot load the dataset {name} (split {split}): {_reason(error)}") from None
    column = next((key for key, kind in dataset.features.items() if isinstance(kind, datasets.Image)), None)
    if column is None:
        raise RealfakeError(f"The dataset {name} (split {split}) has no image column.")
    dataset = dataset.select_columns([column]).cast_column(column, datasets.Image(decode=False))
    if column != "image":
        dataset = dataset.rename_column(column, "image")
    ids = [f"{split}/{index}" for index in range(len(dataset))]
    dataset = dataset.add_column("id", ids)

    def to_ray(todo: Sequence[str], blocks: int):
        import ray.data

        rows = dataset if len(todo) == len(ids) else dataset.select([int(i.rsplit("/", 1)[1]) for i in todo])
        return ray.data.from_huggingface(rows, override_num_blocks=blocks)

    return Source(f"{len(ids)} images in the dataset {name} (split {split})", ids, to_ray)


class Judge:
    """realfake's detector in a Ray actor: loaded once, then one row out per row in.

    Rows come as a pyarrow table with "id" and either "path" (a local path or a URI that pyarrow's
    file systems open) or "image" (a ``datasets`` image: {"bytes", "path"}).
    """

    def __init__(self, pin: ModelPin, batch_size: int = BATCH_ROWS, threads: int | None = None) -> None:
        import torch

        from .pipeline import load_detector

        if threads:
            torch.set_num_threads(threads)
        logging.getLogger("realfake").setLevel(logging.WARNING)
        _quiet_libraries()
        self.pin = pin
        if self.pin.fingerprint is not None:
            found = model_fingerprint(Path(self.pin.name))
            if found != self.pin.fingerprint:
                raise RealfakeError(
                    f"The model folder {self.pin.name} on this worker differs from the driver's "
                    f"(sha256 {found[:12]} here, {self.pin.fingerprint[:12]} there)."
                )
        self.detector = load_detector(self.pin.name, revision=self.pin.revision)
        self.batch_size = batch_size

    def __call__(self, batch: pa.Table) -> pa.Table:
        ids = batch.column("id").to_pylist()
        if "image" in batch.column_names:
            items = [_dataset_image(i, image) for i, image in zip(ids, batch.column("image").to_pylist())]
        else:
            items = [_fetch(i, path) for i, path in zip(ids, batch.column("path").to_pylist())]
        readable = [(name, source) for _, name, source, _, error in items if error is None]
        results = iter(self.detector.predict_sources(readable, batch_size=self.batch_size))
        rows = []
        for row_id, name, _, size, error in items:
            if error is not None:
                rows.append(_row(row_id, name, size, error=error))
            else:
                rows.append(_row(row_id, name, size, result=next(results)))
        return pa.Table.from_pylist(rows, schema=SCHEMA)


def _quiet_libraries() -> None:
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def _fetch(row_id: str, path: str) -> tuple[str, str, object, int | None, str | None]:
    """(id, name, what to read, its size in bytes, error): a local path stays a path, so it is read
    exactly as ``predict`` reads it; a URI is fetched as bytes through pyarrow's file systems."""
    if "://" not in path or path.startswith("file://"):
        local = unquote(urlparse(path).path) if path.startswith("file://") else path
        try:
            size = os.stat(local).st_size
        except OSError:
            size = None
        return row_id, path, local, size, None
    try:
        from pyarrow import fs

        filesystem, inner = fs.FileSystem.from_uri(path)
        with filesystem.open_input_stream(inner) as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except (OSError, ValueError, pa.ArrowException) as error:
        return row_id, path, None, None, f"Cannot fetch {path}: {_reason(error)}."
    if len(data) > MAX_FILE_BYTES:
        return row_id, path, None, None, f"The file is over {MAX_FILE_BYTES // 2**20} MB, the limit."
    return row_id, path, data, len(data), None


def _reason(error: BaseException) -> str:
    """The first line of an error's message, or its type where it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _dataset_image(row_id: str, image: dict | None) -> tuple[str, str, object, int | None, str | None]:
    image = image or {}
    name = image.get("path") or row_id
    if image.get("bytes") is not None:
        return row_id, name, image["bytes"], len(image["bytes"]), None
    if image.get("path"):
        return _fetch(row_id, image["path"])
    return row_id, name, None, None, "The dataset row holds no image."


def _row(row_id: str, path: str, size: int | None, result=None, error: str | None = None) -> dict:
    """One output row, from an ImageResult or an error sentence."""
    row = {"id": row_id, "path": path, "file_bytes": size, "faces": [], "n_faces": 0, "error": error}
    if result is None:
        return row
    faces = [face.to_dict() for face in result.faces]
    verdicts = {face["verdict"] for face in faces}
    provenance = result.provenance
    row.update(
        width=result.width,
        height=result.height,
        first_frame_only=result.first_frame_only,
        faces=faces,
        n_faces=len(faces),
        verdict=next((v for v in ("fake", "uncertain", "real") if v in verdicts), None),
        max_fake_probability=max((face["fake_probability"] for face in faces), default=None),
        declares_ai=provenance.declares_ai if provenance is not None else None,
        provenance_summary=provenance.summary() if provenance is not None else None,
        provenance=json.dumps(provenance.to_dict()) if provenance is not None else None,
        error=result.error,
    )
    return row


def model_fingerprint(folder: Path) -> str:
    """sha256 over the names and sha256 sums of a model folder's files (sorted), to tell that two
    machines hold the same model."""
    from .base import sha256

    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{sha256(path)}\n".encode())
    return digest.hexdigest()


def pin_model(model: str | None = None, revision: str | None = None) -> ModelPin:
    """The model to run, fixed for every worker: a local folder with its fingerprint, or a Hub model
    at the commit its revision points to now (resolved once, on the driver).

    Raises:
        ModelError: no model is given and none is bundled, or the Hub model cannot be found.
    """
    from .pipeline import resolve_model

    name, revision = resolve_model(model, revision)
    if Path(name).is_dir():
        return ModelPin(str(Path(name).resolve()), None, model_fingerprint(Path(name)))
    from huggingface_hub import snapshot_download

    from .errors import ModelError

    try:
        snapshot = snapshot_download(str(name), revision=revision, allow_patterns=["config.json"])
    except Exception as error:
        raise ModelError(
            f"Cannot find the model {name} on the Hub or in its local cache ({error})."
        ) from None
    return ModelPin(str(name), Path(snapshot).name, None)


class Output:
    """The output folder: a manifest, and shards of rows written whole."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def prepare(self, pin: ModelPin, description: str) -> None:
        """Create the folder, or check that the one there was written with the same model.

        Raises:
            RealfakeError: the folder is not a realfake batch output, or holds another model's rows.
        """
        manifest = self.folder / MANIFEST
        if manifest.is_file():
            stated = json.loads(manifest.read_text())
            if {key: stated.get(key) for key in pin.to_dict()} != pin.to_dict():
                raise RealfakeError(
                    f"{self.folder} holds verdicts by the model {stated.get('model')}"
                    f"{'@' + stated['revision'] if stated.get('revision') else ''}, not by this one; "
                    "resume it with that model, or write to a new --output."
                )
            return
        if self.folder.exists() and any(self.folder.iterdir()):
            raise RealfakeError(
                f"{self.folder} is not empty and holds no realfake batch output; choose another --output."
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        from . import __version__

        stated = {**pin.to_dict(), "source": description, "realfake": __version__, "schema": SCHEMA.names}
        _write_atomically(manifest, json.dumps(stated, indent=2).encode())

    def done_ids(self) -> set[str]:
        """The ids in the shards already written; leftovers of a stopped write are removed."""
        for leftover in self.folder.glob(".*.tmp"):
            leftover.unlink()
        done: set[str] = set()
        for shard in self.shards():
            done.update(pq.read_table(shard, columns=["id"]).column("id").to_pylist())
        return done

    def shards(self) -> list[Path]:
        return sorted(self.folder.glob(SHARD_GLOB))

    def write(self, rows: pa.Table, pin: ModelPin) -> Path:
        """One shard, under a new name, that appears whole or not at all."""
        metadata = {METADATA_KEY: json.dumps(pin.to_dict()).encode()}
        table = rows.replace_schema_metadata(metadata)
        target = self.folder / f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
        temporary = self.folder / f".{target.name}.tmp"
        pq.write_table(table, temporary)
        os.replace(temporary, target)
        return target


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def read_output(folder: str | os.PathLike) -> pa.Table:
    """Every row of a batch output folder, as one pyarrow table (``.to_pandas()`` for a DataFrame)."""
    shards = Output(Path(folder)).shards()
    if not shards:
        return SCHEMA.empty_table()
    return pa.concat_tables(pq.read_table(shard, schema=SCHEMA) for shard in shards)


def start_ray(num_cpus: int | None = None) -> None:
    """Connect to the cluster at RAY_ADDRESS, else start a local Ray with this machine's cores (or
    ``num_cpus``); does nothing if Ray is already up in this process."""
    try:
        import ray
    except ImportError:
        raise RealfakeError(
            "Batch runs need Ray: pip install 'ray[data]>=2.55,<3' (the extra realfake[batch])."
        ) from None
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(logging_level=logging.WARNING)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING)


def run_batch(
    source: str | Source,
    output: str | os.PathLike,
    model: str | None = None,
    revision: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    batch_size: int = BATCH_ROWS,
    shard_rows: int = SHARD_ROWS,
    shard_seconds: float = SHARD_SECONDS,
    on_shard: Callable[[Path, int], None] | None = None,
    on_start: Callable[[], None] | None = None,
) -> BatchReport:
    """Judge every input of ``source`` not yet in ``output`` on Ray Data, and write the rows as shards.

    Args:
        source: what :func:`open_source` takes, or a :class:`Source`.
        output: the folder of shards; one that already holds a run's shards is resumed.
        model, revision: as for :func:`realfake.load_detector`; pinned once for every worker.
        workers: actors, each with its own detector; default: as many as the cluster's CPUs allow
            at ``cpus_per_worker`` each (or its GPUs at ``gpus_per_worker``).
        batch_size: inputs an actor takes at a time (and redoes if it dies).
        shard_rows, shard_seconds: a shard is written every so many rows or seconds.
        on_shard: called with each shard written and the rows written so far in this run.
        on_start: called once Ray is up, before any photo is judged (the command line installs its
            SIGTERM handler there, over Ray's own).

    Raises:
        RealfakeError: a bad source or output, or a model that cannot be loaded.
    """
    started = time.perf_counter()
    source = open_source(source) if isinstance(source, str) else source
    pin = pin_model(model, revision)
    out = Output(Path(output))
    out.prepare(pin, source.description)
    done = out.done_ids()
    todo = [i for i in source.ids if i not in done]
    report = BatchReport(out.folder, skipped=len(source.ids) - len(todo), left_out=source.left_out)
    if todo:
        start_ray()
        if on_start is not None:
            on_start()
        pending: list[pa.Table] = []
        since = time.monotonic()

        def flush() -> None:
            nonlocal since
            if pending:
                path = out.write(pa.concat_tables(pending), pin)
                pending.clear()
                if on_shard is not None:
                    on_shard(path, report.judged)
            since = time.monotonic()

        workers = min(workers or _default_workers(cpus_per_worker, gpus_per_worker), len(todo))
        blocks = max(workers, math.ceil(len(todo) / (batch_size * BLOCK_BATCHES)))
        judged = _judged(
            source.to_ray(todo, blocks), pin, workers, cpus_per_worker, gpus_per_worker, batch_size
        )
        try:  # rows judged before a stop or a failure are kept: the next run skips them
            for rows in judged:
                _count(report, rows)
                pending.append(rows)
                if (
                    sum(t.num_rows for t in pending) >= shard_rows
                    or time.monotonic() - since >= shard_seconds
                ):
                    flush()
        except BaseException:
            flush()
            logger.warning(
                "Stopped after %d of %d photos; they are in %s, and the same command goes on from there.",
                report.judged,
                len(todo),
                out.folder,
            )
            raise
        flush()
    report.seconds = time.perf_counter() - started
    now = out.done_ids()
    report.missing = [i for i in source.ids if i not in now]
    return report


def _judged(dataset, pin, workers: int, cpus_per_worker, gpus_per_worker, batch_size) -> Iterator[pa.Table]:
    """The judged rows as they come back from the actors, each input's first row only."""

    from ray.data import ActorPoolStrategy

    # Ray Data's actor pool restarts an actor that dies and retries the task it held.
    judged = dataset.map_batches(
        Judge,
        fn_constructor_kwargs={"pin": pin, "batch_size": batch_size, "threads": max(1, int(cpus_per_worker))},
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ActorPoolStrategy(size=workers),
        num_cpus=cpus_per_worker,
        num_gpus=gpus_per_worker or None,
    )
    seen: set[str] = set()
    for batch in judged.iter_batches(batch_size=None, batch_format="pyarrow"):
        keep = [i for i, row_id in enumerate(batch.column("id").to_pylist()) if row_id not in seen]
        if len(keep) < batch.num_rows:
            logger.debug("Dropped %d rows judged twice", batch.num_rows - len(keep))
            batch = batch.take(keep)
        seen.update(batch.column("id").to_pylist())
        if batch.num_rows:
            yield batch.cast(SCHEMA)


def _default_workers(cpus_per_worker: float, gpus_per_worker: float) -> int:
    """As many actors as the cluster's GPUs (or, on CPUs, its CPUs) allow."""
    import ray

    resources = ray.cluster_resources()
    if gpus_per_worker:
        return max(1, int(resources.get("GPU", 0) // gpus_per_worker))
    return max(1, int(resources.get("CPU", 1) // cpus_per_worker))


def _count(report: BatchReport, rows: pa.Table) -> None:
    report.judged += rows.num_rows
    report.faces += sum(rows.column("n_faces").to_pylist())
    errors = rows.column("error").to_pylist()
    report.errors += sum(error is not None for error in errors)
    verdicts = rows.column("verdict").to_pylist()
    report.verdicts.update(verdict or "no face" for verdict, error in zip(verdicts, errors) if error is None)
