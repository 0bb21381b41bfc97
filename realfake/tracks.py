"""Faces linked across a video's sampled frames into tracks: one track per person on screen.

Why a small tracker of our own and not a library's: the trackers of ``supervision`` (ByteTrack) and
its kin match a motion-predicted box to the detections by their overlap, tuned for every frame of a
25-30 fps video. realfake samples about 2 frames a second, where a face that walks or pans moves by
more than its own width between samples and the overlap is often zero, and where a cut between two
people framed alike puts a new face where the old one was. So a face is linked here by where it is
(the distance of the box centres, relative to the face's size, and the ratio of the sizes) and by
what it looks like (the Bhattacharyya distance of colour histograms of the face crops, OpenCV's), both
gated, and the pairs are chosen by one optimal assignment a frame (scipy's ``linear_sum_assignment``).
A track that misses its face for more than ``max_gap`` sampled frames ends; a face seen again later
starts a new track.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment

from .faces import Box

MAX_GAP = 2
"""Sampled frames a track may miss its face (a blink of the detector, a turned head) and go on."""
MAX_SHIFT = 1.5
"""Largest move of a face's centre between two sampled frames, in face sizes, per frame apart."""
MAX_SCALE = 1.8
"""Largest ratio of two linked boxes' sizes."""
MAX_LOOK = 0.45
"""Largest Bhattacharyya distance of two linked faces' colour histograms (0 alike, 1 disjoint)."""


def appearance(crop: Image.Image) -> np.ndarray:
    """A face crop's hue-saturation histogram (the centre, less the background), normalised."""
    pixels = np.asarray(crop.convert("RGB"))
    height, width = pixels.shape[:2]
    centre = pixels[height // 6 : height - height // 6, width // 6 : width - width // 6]
    hsv = cv2.cvtColor(np.ascontiguousarray(centre), cv2.COLOR_RGB2HSV)
    histogram = cv2.calcHist([hsv], [0, 1], None, [18, 8], [0, 180, 0, 256])
    return cv2.normalize(histogram, histogram).flatten()


def look_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))


@dataclass
class Sighting:
    """A face in one sampled frame: which frame, and its box."""

    frame: int
    box: Box


@dataclass
class Track:
    """One person's face across sampled frames, in order."""

    id: int
    sightings: list[Sighting] = field(default_factory=list)
    look: np.ndarray | None = field(default=None, repr=False)

    @property
    def last(self) -> Sighting:
        return self.sightings[-1]


class Tracker:
    """Feed it each sampled frame's face boxes and crops in order (:meth:`update`); read
    :attr:`tracks`, every track ever started, numbered from 1 in order of first appearance (left to
    right among faces that appear in the same frame)."""

    def __init__(self, max_gap: int = MAX_GAP) -> None:
        self.max_gap = max_gap
        self.tracks: list[Track] = []
        self._open: list[Track] = []

    def update(self, frame: int, boxes: list[Box], crops: list[Image.Image]) -> list[int]:
        """Link one frame's faces to the open tracks; return each face's track id, in order."""
        self._open = [track for track in self._open if frame - track.last.frame <= self.max_gap + 1]
        looks = [appearance(crop) for crop in crops]
        cost = np.full((len(self._open), len(boxes)), np.inf)
        for i, track in enumerate(self._open):
            for j, (box, look) in enumerate(zip(boxes, looks)):
                cost[i, j] = self._cost(track, frame, box, look)
        ids = [0] * len(boxes)
        if cost.size:
            finite = np.where(np.isfinite(cost), cost, 1e9)
            for i, j in zip(*linear_sum_assignment(finite)):
                if np.isfinite(cost[i, j]):
                    ids[j] = self._extend(self._open[i], frame, boxes[j], looks[j])
        for j in sorted(range(len(boxes)), key=lambda j: boxes[j][0]):  # new faces numbered left to right
            box = boxes[j]
            if not ids[j]:
                track = Track(len(self.tracks) + 1)
                self.tracks.append(track)
                self._open.append(track)
                ids[j] = self._extend(track, frame, box, looks[j])
        return ids

    @staticmethod
    def _cost(track: Track, frame: int, box: Box, look: np.ndarray) -> float:
        last = track.last.box
        size, other = _size(last), _size(box)
        scale = max(size, other) / max(min(size, other), 1e-6)
        shift = np.hypot(*(_centre(box) - _centre(last))) / max(size, other) / (frame - track.last.frame)
        seen = look_distance(track.look, look)
        if scale > MAX_SCALE or shift > MAX_SHIFT or seen > MAX_LOOK:
            return np.inf
        return shift / MAX_SHIFT + seen / MAX_LOOK + np.log(scale)

    @staticmethod
    def _extend(track: Track, frame: int, box: Box, look: np.ndarray) -> int:
        track.sightings.append(Sighting(frame, box))
        # a running mean, so that a slow change of light follows and one odd frame does not
        track.look = look if track.look is None else 0.7 * track.look + 0.3 * look
        return track.id


def _size(box: Box) -> float:
    return float(np.sqrt(max(box[2] - box[0], 1e-6) * max(box[3] - box[1], 1e-6)))


def _centre(box: Box) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
