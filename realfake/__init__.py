"""realfake: find every face in a photo and tell whether it is real or GAN-generated.

>>> import realfake
>>> detector = realfake.load_detector()            # or a Hub id / model folder
>>> for face in detector.predict("photo.jpg"):
...     print(face.box, face.fake_probability, face.label)
"""

from .classifier import FaceClassifier
from .errors import ImageError, ModelError, RealfakeError
from .faces import Face, FaceDetector, crop_face
from .images import LoadedImage, load_image
from .pipeline import Detector, FaceVerdict, ImageResult, load_detector

__all__ = [
    "Detector",
    "Face",
    "FaceClassifier",
    "FaceDetector",
    "FaceVerdict",
    "ImageError",
    "ImageResult",
    "LoadedImage",
    "ModelError",
    "RealfakeError",
    "crop_face",
    "load_detector",
    "load_image",
]

__version__ = "0.1.0"
