"""realfake: find every face in a photo and tell whether it is real or made by an image generator.

>>> import realfake
>>> detector = realfake.load_detector()            # or a Hub id / model folder
>>> for face in detector.predict("photo.jpg"):
...     print(face.box, face.fake_probability, face.verdict)
>>> realfake.read_provenance("photo.jpg").summary()  # what the file says about its origin
"""

import importlib
from typing import TYPE_CHECKING

from .errors import ImageError, ModelError, RealfakeError, VideoError

# The rest is imported on first use, so that `python -m realfake --help` and error paths do not wait
# for torch and transformers to load.
_LAZY = {
    "FaceClassifier": "classifier",
    "Face": "faces",
    "FaceDetector": "faces",
    "crop_face": "faces",
    "LoadedImage": "images",
    "load_image": "images",
    "Detector": "pipeline",
    "FaceVerdict": "pipeline",
    "ImageResult": "pipeline",
    "TrackFrame": "pipeline",
    "TrackVerdict": "pipeline",
    "VideoResult": "pipeline",
    "load_detector": "pipeline",
    "Finding": "provenance",
    "Provenance": "provenance",
    "read_provenance": "provenance",
    "VideoLimits": "video",
    "read_video": "video",
}

if TYPE_CHECKING:
    from .classifier import FaceClassifier
    from .faces import Face, FaceDetector, crop_face
    from .images import LoadedImage, load_image
    from .pipeline import (
        Detector,
        FaceVerdict,
        ImageResult,
        TrackFrame,
        TrackVerdict,
        VideoResult,
        load_detector,
    )
    from .provenance import Finding, Provenance, read_provenance
    from .video import VideoLimits, read_video

__all__ = [
    "Detector",
    "Face",
    "FaceClassifier",
    "FaceDetector",
    "FaceVerdict",
    "Finding",
    "ImageError",
    "ImageResult",
    "LoadedImage",
    "ModelError",
    "Provenance",
    "RealfakeError",
    "TrackFrame",
    "TrackVerdict",
    "VideoError",
    "VideoLimits",
    "VideoResult",
    "crop_face",
    "load_detector",
    "load_image",
    "read_provenance",
    "read_video",
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"
