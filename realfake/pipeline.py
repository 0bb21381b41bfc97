"""Image in, verdict per face out: detection, the shared crop, and batched classification."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from itertools import chain
from pathlib import Path

import numpy as np
from PIL import Image

from .calibration import pool_probabilities
from .classifier import FaceClassifier
from .errors import ImageError, ModelError
from .faces import Box, FaceDetector, crop_face, whole_frame
from .images import ImageSource, load_image
from .provenance import Provenance, read_provenance
from .tracks import Tracker
from .video import DEFAULT_FPS, VideoLimits, read_video, sampled_count

logger = logging.getLogger(__name__)

MODEL_ENV = "REALFAKE_MODEL"
REVISION_ENV = "REALFAKE_MODEL_REVISION"
DEFAULT_MODEL_DIR = Path(__file__).parent / "model"
FILE_BATCH = 8
FRAME_BATCH = 8
KEY_FRAMES = 3


@dataclass(frozen=True)
class FaceVerdict:
    """One face: where it is, how sure MTCNN is that it is a face, and how likely it is fake.

    ``label`` is binary, at the decision threshold; ``verdict`` is what to act on: ``fake`` or
    ``real`` where the model is sure enough by the thresholds stored with it, else ``uncertain``.
    """

    box: Box
    detection_score: float
    fake_probability: float
    label: str
    verdict: str

    def to_dict(self) -> dict:
        return {
            "box": [round(v, 2) for v in self.box],
            "detection_score": round(self.detection_score, 6),
            "fake_probability": round(self.fake_probability, 6),
            "label": self.label,
            "verdict": self.verdict,
        }


@dataclass
class ImageResult:
    """The outcome for one input file: its faces, or the one-sentence reason it failed."""

    path: str
    width: int | None = None
    height: int | None = None
    faces: list[FaceVerdict] = field(default_factory=list)
    error: str | None = None
    first_frame_only: bool = False
    provenance: Provenance | None = None
    """What the file itself states about its origin (None where it was not read); never overrides
    the faces' verdicts."""
    image: Image.Image | None = field(default=None, repr=False, compare=False)
    """The decoded RGB image, only where :meth:`Detector.predict_files` was asked to keep it."""

    def to_dict(self) -> dict:
        result = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "image"}
        result["faces"] = [face.to_dict() for face in self.faces]
        result["provenance"] = self.provenance.to_dict() if self.provenance is not None else None
        return result


@dataclass(frozen=True)
class TrackFrame:
    """One sampled frame of a track: when, where the face is, and its P(fake) in that frame."""

    time: float
    box: Box
    detection_score: float
    fake_probability: float

    def to_dict(self) -> dict:
        return {
            "time": round(self.time, 3),
            "box": [round(v, 2) for v in self.box],
            "detection_score": round(self.detection_score, 6),
            "fake_probability": round(self.fake_probability, 6),
        }


@dataclass
class TrackVerdict:
    """One person on screen: the span of the track, its frames' scores, and one verdict for all.

    ``fake_probability`` is the frames' P(fake) aggregated as the sigmoid of their mean logit: a
    probability the model's verdict thresholds apply to, and the best calibrated of four poolings on
    clips made from held-out photos (benchmarks/video_agreement.py; README, Videos); ``key_frames`` index the frames that speak most for the
    verdict (the most fake-looking for fake or uncertain, the most real-looking for real), and
    ``crops`` are those frames' face crops, as the classifier saw them.
    """

    id: int
    frames: list[TrackFrame]
    fake_probability: float
    label: str
    verdict: str
    key_frames: list[int] = field(default_factory=list)
    crops: list[Image.Image] = field(default_factory=list, repr=False, compare=False)

    @property
    def start(self) -> float:
        return self.frames[0].time

    @property
    def end(self) -> float:
        return self.frames[-1].time

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "fake_probability": round(self.fake_probability, 6),
            "label": self.label,
            "verdict": self.verdict,
            "key_frames": self.key_frames,
            "frames": [frame.to_dict() for frame in self.frames],
        }


@dataclass
class VideoResult:
    """The outcome for one video: one verdict per person (track), or the sentence why it failed."""

    path: str
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    fps: float = DEFAULT_FPS
    """The rate frames were sampled at, per second."""
    sampled_frames: int = 0
    tracks: list[TrackVerdict] = field(default_factory=list)
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    provenance: Provenance | None = None

    kind = "video"

    def to_dict(self) -> dict:
        result = {"kind": self.kind}
        result |= {f.name: getattr(self, f.name) for f in fields(self)}
        result["tracks"] = [track.to_dict() for track in self.tracks]
        result["provenance"] = self.provenance.to_dict() if self.provenance is not None else None
        return result


ProgressCallback = Callable[[int, int | None], None]
"""Called as frames are done: (sampled frames done, sampled frames expected or None if unknown)."""


class Detector:
    """Finds every face in an image and scores each with the classifier.

    Build one with :func:`realfake.load_detector`.
    """

    def __init__(
        self,
        classifier: FaceClassifier,
        faces: FaceDetector | None = None,
        threshold: float | None = None,
    ) -> None:
        self.classifier = classifier
        self.faces = faces or FaceDetector(device=classifier.device)
        self.threshold = classifier.threshold if threshold is None else float(threshold)

    def predict(self, image: ImageSource, threshold: float | None = None) -> list[FaceVerdict]:
        """Every face in ``image`` (a path, PIL image, numpy array or bytes), most confident first.

        ``threshold`` overrides the detector's decision threshold for this call.

        Raises:
            ImageError: the image cannot be read (see :func:`realfake.images.load_image`).
        """
        return self.predict_batch([image], threshold)[0]

    def predict_batch(
        self, images: Sequence[ImageSource], threshold: float | None = None
    ) -> list[list[FaceVerdict]]:
        """:meth:`predict` for several images, detected and classified in batches."""
        loaded = [load_image(image).image for image in images]
        return self._verdicts(loaded, self.faces.detect_batch(loaded), threshold)

    def predict_files(
        self,
        paths: Iterable[str | os.PathLike],
        batch_size: int = FILE_BATCH,
        keep_images: bool = False,
        provenance: bool = True,
    ) -> Iterator[ImageResult]:
        """One :class:`ImageResult` per path, in order; a file that fails does not stop the rest.

        ``keep_images`` leaves each decoded image on its result (``result.image``), e.g. to draw on it
        without decoding the file again; drop it when done, or every image stays in memory.
        ``provenance`` also reads what each file states about its origin (``result.provenance``,
        see :mod:`realfake.provenance`), from the file's own bytes.
        """
        named = ((str(path), path) for path in paths)
        return self.predict_sources(named, batch_size, keep_images, provenance)

    def predict_sources(
        self,
        sources: Iterable[tuple[str, str | os.PathLike | bytes]],
        batch_size: int = FILE_BATCH,
        keep_images: bool = False,
        provenance: bool = True,
    ) -> Iterator[ImageResult]:
        """:meth:`predict_files` for (name, path or the file's bytes) pairs: files fetched from
        elsewhere (object stores, datasets) are judged exactly as the same files on disk, under their
        own names (``result.path``)."""
        pending: list[tuple[ImageResult, Image.Image]] = []
        for name, source in sources:
            result = ImageResult(path=name)
            try:
                loaded = load_image(source)
            except ImageError as error:
                result.error = str(error)
                yield from self._flush(pending)
                pending = []
                yield result
                continue
            result.width, result.height = loaded.size
            result.first_frame_only = loaded.first_frame_only
            if provenance:
                result.provenance = read_provenance(source)
            if keep_images:
                result.image = loaded.image
            pending.append((result, loaded.image))
            if len(pending) >= batch_size:
                yield from self._flush(pending)
                pending = []
        yield from self._flush(pending)

    def predict_video(
        self,
        path: str | os.PathLike,
        fps: float = DEFAULT_FPS,
        threshold: float | None = None,
        limits: VideoLimits | None = None,
        progress: ProgressCallback | None = None,
        provenance: bool = True,
    ) -> VideoResult:
        """Every person's face in the video at ``path``, tracked across frames sampled at ``fps``, with
        one verdict per person (see :class:`TrackVerdict`), numbered in order of appearance.

        Frames are detected and classified in batches; ``progress`` hears after each batch.

        Raises:
            VideoError: the video cannot be opened or exceeds ``limits`` (see
                :func:`realfake.video.read_video`); damage part way is a note on the result instead.
        """
        threshold = self.threshold if threshold is None else float(threshold)
        video = read_video(path, fps, limits or VideoLimits())
        result = VideoResult(path=str(path), duration=video.duration, fps=fps)
        expected = None if video.duration is None else sampled_count(video.duration, fps)
        tracker, seen = Tracker(), {}
        batch: list = []
        for frame in chain(video.frames, [None]):  # streamed: only a batch of frames is held at once
            if frame is not None:
                batch.append(frame)
                if result.width is None:
                    result.width, result.height = frame.image.size
            if batch and (frame is None or len(batch) == FRAME_BATCH):
                self._track_batch(batch, tracker, seen)
                result.sampled_frames += len(batch)
                batch = []
                if progress is not None:
                    progress(result.sampled_frames, expected)
        result.notes = video.notes
        if provenance:
            result.provenance = read_provenance(path)
        result.tracks = self._track_verdicts(tracker, seen, threshold)
        return result

    def _track_batch(self, frames, tracker: Tracker, seen: dict) -> None:
        """Detect and classify a batch of frames, and link their faces to the tracks."""
        images = [frame.image for frame in frames]
        detections = self.faces.detect_batch(images)
        owners = [i for i, found in enumerate(detections) for _ in found]
        crops = self._crops([images[i] for i in owners], [face.box for found in detections for face in found])
        scores = iter(self.classifier.fake_probabilities(crops))
        crops_of = iter(crops)
        for frame, found in zip(frames, detections):
            frame_crops = [next(crops_of) for _ in found]
            ids = tracker.update(frame.index, [face.box for face in found], frame_crops)
            for track_id, face, crop in zip(ids, found, frame_crops):
                score = float(next(scores))
                entry = seen.setdefault(track_id, {"frames": [], "crops": {}})
                entry["frames"].append(TrackFrame(frame.time, face.box, face.score, score))
                _keep_telling(entry["crops"], len(entry["frames"]) - 1, score, crop)

    def _track_verdicts(self, tracker: Tracker, seen: dict, threshold: float) -> list[TrackVerdict]:
        verdicts_at = self.classifier.verdict_thresholds(threshold)
        results = []
        for track in tracker.tracks:
            entry = seen[track.id]
            scores = np.array([frame.fake_probability for frame in entry["frames"]])
            probability = pool_probabilities(scores)
            verdict = verdicts_at.verdict(probability)
            # the frames that speak most for the verdict; for "uncertain", the most fake-looking
            order = sorted(entry["crops"], key=lambda i: scores[i], reverse=verdict != "real")
            key = order[:KEY_FRAMES]
            results.append(
                TrackVerdict(
                    id=track.id,
                    frames=entry["frames"],
                    fake_probability=probability,
                    label="fake" if probability >= threshold else "real",
                    verdict=verdict,
                    key_frames=key,
                    crops=[entry["crops"][i][1] for i in key],
                )
            )
        return results

    def explain(
        self, image: ImageSource, faces: Sequence[FaceVerdict] | None = None
    ) -> list[tuple[Image.Image, np.ndarray]]:
        """Each face's crop, as the classifier saw it, and its heatmap: which parts of the crop pushed
        the score towards fake (see :mod:`realfake.explain` for what that does and does not mean).

        ``faces`` are the faces to explain, from :meth:`predict` on the same image; None finds them.

        Raises:
            ImageError: the image cannot be read.
            ModelError: the classifier is not one realfake can explain.
        """
        from .explain import heatmaps

        loaded = load_image(image).image
        faces = self.predict(loaded) if faces is None else faces
        crops = self._crops([loaded] * len(faces), [face.box for face in faces])
        return list(zip(crops, heatmaps(self.classifier, crops)))

    def score_image(self, image: Image.Image) -> tuple[float, bool]:
        """The fake probability of the most confident face, and whether a face was found.

        Where no face is found, the whole frame is scored instead, so every image gets a score.
        """
        return self.score_images([image])[0]

    def score_images(self, images: Sequence[Image.Image]) -> list[tuple[float, bool]]:
        """:meth:`score_image` for several RGB images, in batches."""
        detections = self.faces.detect_batch(images)
        boxes = [found[0].box if found else whole_frame(img) for img, found in zip(images, detections)]
        scores = self._classify(images, boxes)
        return [(float(score), bool(found)) for score, found in zip(scores, detections)]

    def _flush(self, pending: list[tuple[ImageResult, Image.Image]]) -> list[ImageResult]:
        if not pending:
            return []
        images = [image for _, image in pending]
        try:
            for (result, _), verdicts in zip(
                pending, self._verdicts(images, self.faces.detect_batch(images))
            ):
                result.faces = verdicts
        except Exception:  # one pathological image must not cost the others their results
            logger.debug("Batch failed; retrying its images one at a time", exc_info=True)
            for result, image in pending:
                try:
                    result.faces = self._verdicts([image], self.faces.detect_batch([image]))[0]
                except Exception as error:
                    logger.debug("Image %s failed", result.path, exc_info=True)
                    result.error = f"Face detection failed on this image ({type(error).__name__})."
        return [result for result, _ in pending]

    def _verdicts(
        self, images: Sequence[Image.Image], detections, threshold: float | None = None
    ) -> list[list[FaceVerdict]]:
        threshold = self.threshold if threshold is None else threshold
        verdicts_at = self.classifier.verdict_thresholds(threshold)
        owners = [i for i, found in enumerate(detections) for _ in found]
        faces = [face for found in detections for face in found]
        scores = self._classify([images[i] for i in owners], [face.box for face in faces])
        verdicts: list[list[FaceVerdict]] = [[] for _ in images]
        for owner, face, score in zip(owners, faces, scores):
            verdicts[owner].append(
                FaceVerdict(
                    box=face.box,
                    detection_score=face.score,
                    fake_probability=float(score),
                    label="fake" if score >= threshold else "real",
                    verdict=verdicts_at.verdict(float(score)),
                )
            )
        return verdicts

    def _classify(self, images: Sequence[Image.Image], boxes: Sequence[Box]) -> np.ndarray:
        return self.classifier.fake_probabilities(self._crops(images, boxes))

    def _crops(self, images: Sequence[Image.Image], boxes: Sequence[Box]) -> list[Image.Image]:
        """Each box's crop from its image, cut as the classifier was trained on."""
        size, margin = self.classifier.crop_size, self.classifier.crop_margin
        return [crop_face(image, box, size, margin) for image, box in zip(images, boxes)]


def _keep_telling(crops: dict[int, tuple[float, Image.Image]], index: int, score: float, crop) -> None:
    """Keep frame ``index``'s ``crop`` among a track's crops while it is among the KEY_FRAMES most
    fake-looking or most real-looking so far: a long track holds 2 x KEY_FRAMES crops, not one a frame."""
    crops[index] = (score, crop)
    if len(crops) > 2 * KEY_FRAMES:
        order = sorted(crops, key=lambda i: crops[i][0])
        for i in order[KEY_FRAMES:-KEY_FRAMES]:
            del crops[i]


def load_detector(
    model: str | os.PathLike | None = None,
    revision: str | None = None,
    threshold: float | None = None,
    device: str | None = None,
) -> Detector:
    """Load the face detector and a real/fake classifier, ready to :meth:`~Detector.predict`.

    Args:
        model: a Hub model id, a local model folder, or None for the ``REALFAKE_MODEL``
            environment variable, else the default model bundled with realfake.
        revision: a Hub revision (branch, tag or commit) to pin; None reads
            ``REALFAKE_MODEL_REVISION`` when the model comes from the environment.
        threshold: overrides the model's own decision threshold.
        device: torch device; None picks CUDA when available.

    Raises:
        ModelError: no model is given and none is bundled, or the model cannot be loaded.
    """
    model, revision = resolve_model(model, revision)
    return Detector(
        FaceClassifier.from_pretrained(model, revision=revision, device=device), threshold=threshold
    )


def resolve_model(
    model: str | os.PathLike | None = None, revision: str | None = None
) -> tuple[str | os.PathLike, str | None]:
    """The model and revision to load: ``model`` as given, else ``REALFAKE_MODEL`` (and
    ``REALFAKE_MODEL_REVISION``), else the bundled default model.

    Raises:
        ModelError: no model is given and none is bundled.
    """
    if model is None and os.environ.get(MODEL_ENV):
        return os.environ[MODEL_ENV], revision or os.environ.get(REVISION_ENV) or None
    if model is None:
        if not (DEFAULT_MODEL_DIR / "config.json").is_file():
            raise ModelError(
                "No model given and no default model bundled with this copy of realfake; pass "
                f"--model (a Hub id or a folder), set {MODEL_ENV}, or train one with train/train.py."
            )
        return DEFAULT_MODEL_DIR, None
    return model, revision
