"""Find faces with MTCNN (facenet-pytorch) and cut the square crops the classifier sees.

Detection runs on a copy of the image reduced by a whole factor (a box filter, cheap and exact to map
back) to about ``DETECT_MAX_SIDE`` pixels: MTCNN's cost grows with the pixel count. The factor is
capped so that a face of ``ALWAYS_FIND_FACE`` pixels in the full image stays above MTCNN's minimum
in the copy: small photos are searched for faces down to 20 px, large ones for faces of at least
80 px, which is about the least a 128-px classifier can judge. Boxes are mapped back to the
full-resolution image and clipped to it. :func:`crop_face` is the single crop used by training,
evaluation and serving, so the model sees in production exactly what it saw in training.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby

import numpy as np
import torch
from facenet_pytorch import MTCNN
from facenet_pytorch.models.utils.detect_face import detect_face
from PIL import Image

logger = logging.getLogger(__name__)

DETECT_MAX_SIDE = 400
MIN_FACE_SIZE = 20
ALWAYS_FIND_FACE = 80
MIN_DETECTION_SCORE = 0.9
CROP_MARGIN = 0.3
CROP_RESAMPLE = Image.Resampling.BICUBIC

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Face:
    """One detected face: ``box`` is (x1, y1, x2, y2) in pixels of the full image, inside it."""

    box: Box
    score: float


class FaceDetector:
    """MTCNN with bounded-size detection, clipped boxes and plain float results.

    Args:
        max_side: the longer side the detection copy is reduced to (by a whole factor, so it
            lands between half of this and this); None detects at full resolution.
        min_face_size: the smallest face MTCNN looks for, in pixels of the detection copy.
        always_find: faces at least this many pixels across in the full image are always looked
            for: the reduction factor is capped at ``always_find // min_face_size``.
        min_score: faces whose MTCNN probability is below this are dropped.
        device: torch device for the three MTCNN networks.
    """

    def __init__(
        self,
        max_side: int | None = DETECT_MAX_SIDE,
        min_face_size: int = MIN_FACE_SIZE,
        always_find: int = ALWAYS_FIND_FACE,
        min_score: float = MIN_DETECTION_SCORE,
        device: str | torch.device = "cpu",
    ) -> None:
        self.max_side = max_side
        self.always_find = always_find
        self.min_score = min_score
        self.device = torch.device(device)
        self._mtcnn = MTCNN(
            keep_all=True, post_process=False, min_face_size=min_face_size, device=self.device
        ).eval()
        # Channels-last weights make the R-Net and O-Net max-pooling several times faster on the
        # CPU, with the same boxes (benchmarks/bench_predict.py).
        self._mtcnn.to(memory_format=torch.channels_last)

    @property
    def settings(self) -> dict:
        """What determines the detections, for cache fingerprints and model cards."""
        mtcnn = self._mtcnn
        return {
            "detector": "facenet-pytorch MTCNN",
            "max_side": self.max_side,
            "always_find": self.always_find,
            "min_face_size": mtcnn.min_face_size,
            "thresholds": list(mtcnn.thresholds),
            "factor": mtcnn.factor,
            "min_score": self.min_score,
        }

    def detect(self, image: Image.Image) -> list[Face]:
        """Faces in one RGB image, most confident first; an empty list when there is none."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[Image.Image]) -> list[list[Face]]:
        """Faces in each of several RGB images of any sizes, in input order."""
        results: list[list[Face]] = [[] for _ in images]
        factors = [self.reduction(image.size) for image in images]
        copies = [_rgb(image).reduce(f) if f > 1 else _rgb(image) for image, f in zip(images, factors)]
        order = sorted(range(len(images)), key=lambda i: copies[i].size)
        # MTCNN batches only images of one size: run each group of equal sizes together.
        for _, group in groupby(order, key=lambda i: copies[i].size):
            indices = list(group)
            batch = np.stack([np.asarray(copies[i], dtype=np.uint8) for i in indices])
            for index, raw in zip(indices, self._run_mtcnn(batch)):
                results[index] = self._to_faces(raw, images[index].size, factors[index])
        return results

    def reduction(self, size: tuple[int, int]) -> int:
        """The whole factor an image of ``size`` is reduced by before detection."""
        if self.max_side is None:
            return 1
        wanted = math.ceil(max(size) / self.max_side)
        return max(1, min(wanted, self.always_find // self._mtcnn.min_face_size))

    @torch.inference_mode()
    def _run_mtcnn(self, batch: np.ndarray) -> list[np.ndarray]:
        mtcnn = self._mtcnn
        try:
            boxes, _ = detect_face(
                torch.from_numpy(batch),
                mtcnn.min_face_size,
                mtcnn.pnet,
                mtcnn.rnet,
                mtcnn.onet,
                mtcnn.thresholds,
                mtcnn.factor,
                self.device,
            )
        except RuntimeError as error:
            # MTCNN's later stages fail on an empty candidate list (e.g. only degenerate boxes).
            logger.debug("MTCNN found no usable candidates: %s", error)
            return [np.zeros((0, 5), np.float64) for _ in batch]
        # facenet returns object arrays under numpy 2; make each a plain (n, 5) float array.
        return [np.asarray(list(b), dtype=np.float64).reshape(-1, 5) for b in boxes]

    def _to_faces(self, raw: np.ndarray, size: tuple[int, int], factor: int) -> list[Face]:
        width, height = size
        faces = []
        for x1, y1, x2, y2, score in raw:
            if not np.isfinite([x1, y1, x2, y2, score]).all() or score < self.min_score:
                continue
            box = (
                float(np.clip(x1 * factor, 0, width)),
                float(np.clip(y1 * factor, 0, height)),
                float(np.clip(x2 * factor, 0, width)),
                float(np.clip(y2 * factor, 0, height)),
            )
            if box[2] - box[0] >= 1 and box[3] - box[1] >= 1:
                faces.append(Face(box=box, score=float(score)))
        return sorted(faces, key=lambda face: face.score, reverse=True)


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def crop_box(box: Box, image_size: tuple[int, int], margin: float = CROP_MARGIN) -> Box:
    """The square region cut around ``box``: its longer side plus ``margin`` times it, centred.

    The square is shifted to stay inside the image and shrunk to the image's shorter side when
    it would not fit, so a crop never holds padding that the model could learn from.
    """
    width, height = image_size
    x1, y1, x2, y2 = box
    side = min(max(x2 - x1, y2 - y1) * (1.0 + margin), width, height)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left = float(np.clip(cx - side / 2, 0, width - side))
    top = float(np.clip(cy - side / 2, 0, height - side))
    return (left, top, left + side, top + side)


def crop_face(image: Image.Image, box: Box, size: int, margin: float = CROP_MARGIN) -> Image.Image:
    """The classifier's input for one face: a ``size`` x ``size`` RGB square around ``box``.

    Cut from the full-resolution ``image`` (see :func:`crop_box`), then resized.
    """
    region = crop_box(box, image.size, margin)
    return image.resize((size, size), CROP_RESAMPLE, box=region, reducing_gap=3.0)


def whole_frame(image: Image.Image) -> Box:
    """The box of the whole image, used where no face is found but a score is still needed."""
    return (0.0, 0.0, float(image.width), float(image.height))
