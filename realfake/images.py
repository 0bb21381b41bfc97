"""Open any upload or file safely: one function, used by every entry point.

``load_image`` turns a path, bytes, a file object, a PIL image or a numpy array into an upright RGB
PIL image, or raises :class:`~realfake.errors.ImageError` with one sentence a person can act on.
It checks size limits before decoding (so a decompression bomb is never expanded), applies the EXIF
orientation (so boxes refer to the image as people see it), keeps the first frame of animations,
composites transparency on white and maps every mode to RGB.

HEIC/HEIF (iPhone photos) open through pillow-heif when it is installed, and AVIF through Pillow's own
plugin where Pillow was built with it (its wheels since 11.3).
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError, features

from .errors import ImageError

logger = logging.getLogger(__name__)

ImageSource = str | os.PathLike | bytes | BinaryIO | Image.Image | np.ndarray


def _register_heif() -> bool:
    """Let Pillow open HEIC/HEIF through pillow-heif, if it is installed (about 15 ms, once)."""
    try:
        import pillow_heif
    except ImportError:
        return False
    # Decoding applies the irot/imir boxes and resets the EXIF orientation to 1, so the
    # exif_transpose in _finish cannot turn the photo a second time.
    pillow_heif.register_heif_opener()
    return True


def _has_avif() -> bool:
    """Whether Pillow itself decodes AVIF (pillow-heif 1.x no longer does)."""
    try:
        return bool(features.check_module("avif"))
    except ValueError:  # Pillow before 11.2 has no AVIF plugin at all
        return False


HAS_HEIF = _register_heif()
HAS_AVIF = _has_avif()
# AVIF before HEIF: both accept the generic "mif1" brand, and only Pillow's plugin decodes AV1.
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", *["AVIF"] * HAS_AVIF, *["HEIF"] * HAS_HEIF)
SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
SUFFIXES += (".heic", ".heif", ".avif")  # listed even when undecodable, so the error says what to install
MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 40_000_000
MIN_SIDE = 20
BACKGROUND = (255, 255, 255)
ORIENTATION = 0x0112  # the EXIF tag

# Leading bytes of files that people often mistake for images, to name them in the error.
_KNOWN_NON_IMAGES = {
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a ZIP archive (or an Office document)",
    b"<svg": "an SVG drawing",
    b"<?xml": "an XML file (perhaps SVG)",
}
# Major brands of the ISO media file's "ftyp" box (bytes 8 to 12) of HEIF and of AVIF images.
HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1")
AVIF_BRANDS = (b"avif", b"avis")


@dataclass(frozen=True)
class LoadedImage:
    """An upright RGB image and what was learned while opening it."""

    image: Image.Image
    format: str | None = None
    n_frames: int = 1

    @property
    def first_frame_only(self) -> bool:
        """True when the source was animated and only its first frame is used."""
        return self.n_frames > 1

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def load_image(source: ImageSource) -> LoadedImage:
    """Open ``source`` as an upright RGB image within the size limits.

    Args:
        source: a file path, the encoded bytes, a binary file object, a PIL image or a numpy
            array (H x W, H x W x 3 or H x W x 4; uint8, or float in 0..1).

    Raises:
        ImageError: the input is missing, not a supported image, corrupt, too large or too small.
    """
    if isinstance(source, Image.Image):
        return _finish(source, fmt=source.format)
    if isinstance(source, np.ndarray):
        return _finish(_from_array(source), fmt=None)
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageError("The file is empty (0 bytes).")
        return _open_encoded(io.BytesIO(source), len(source))
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageError(f"No such file: {path}.")
        if path.is_dir():
            raise ImageError(f"{path} is a folder, not an image file.")
        size = path.stat().st_size
        if size == 0:
            raise ImageError("The file is empty (0 bytes).")
        if size > MAX_FILE_BYTES:
            raise ImageError(f"The file is {size / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB.")
        with open(path, "rb") as handle:
            return _open_encoded(handle, size)
    if hasattr(source, "read"):
        return _open_encoded(source, None)
    raise ImageError(f"Cannot read an image from a {type(source).__name__}.")


def _open_encoded(handle: BinaryIO, size: int | None) -> LoadedImage:
    head = handle.read(16)
    handle.seek(0)
    if not head:
        raise ImageError("The file is empty (0 bytes).")
    with warnings.catch_warnings():
        # Pillow only warns between its own limit and twice that; we refuse on our budget instead.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(handle, formats=FORMATS)
        except UnidentifiedImageError:
            raise ImageError(_not_an_image(handle, head)) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(_too_many_pixels()) from None
        except (OSError, ValueError, SyntaxError) as error:
            raise ImageError(f"The image header is corrupt ({error_reason(error)}).") from None
        _check_pixels(image.size)
        # A HEIF file's other images (bursts, depth maps) are no animation: its primary one is used.
        n_frames = 1 if image.format == "HEIF" else getattr(image, "n_frames", 1)
        try:
            _first_frame(image)
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(_too_many_pixels()) from None
        except (OSError, ValueError, SyntaxError, EOFError, RuntimeError) as error:  # libheif: RuntimeError
            raise ImageError(
                f"The {image.format} file is truncated or corrupt ({error_reason(error)})."
            ) from None
    return _finish(image, fmt=image.format, n_frames=n_frames)


def _finish(image: Image.Image, fmt: str | None, n_frames: int | None = None) -> LoadedImage:
    _check_pixels(image.size)
    if n_frames is None:
        n_frames = getattr(image, "n_frames", 1)
        if n_frames > 1:
            _first_frame(image)
    upright = image
    try:
        if image.getexif().get(ORIENTATION, 1) != 1:
            upright = ImageOps.exif_transpose(image)
    except Exception:  # malformed EXIF must not cost the user the photo
        logger.debug("Ignoring unreadable EXIF orientation", exc_info=True)
    rgb = _to_rgb(upright)
    width, height = rgb.size
    if min(width, height) < MIN_SIDE:
        raise ImageError(
            f"The image is {width}x{height} pixels; faces cannot be found in images smaller "
            f"than {MIN_SIDE} pixels on a side."
        )
    return LoadedImage(image=rgb, format=fmt, n_frames=n_frames)


def _first_frame(image: Image.Image) -> None:
    """Show the first frame of an animation, or the primary image of a HEIF collection (opened on it)."""
    if image.format != "HEIF":
        image.seek(0)


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        array = np.clip(array / peak * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(array, mode="L").convert("RGB")
    if mode == "P" and "transparency" in image.info or mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "RGB":
        return image.copy() if image.readonly else image
    return image.convert("RGB")


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"An image array must be H x W, H x W x 3 or H x W x 4; got shape {array.shape}.")
    if array.size == 0:
        raise ImageError(f"The image array is empty (shape {array.shape}).")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageError("The image array holds NaN or infinite values.")
        array = np.clip(array * 255.0 if array.max() <= 1.0 else array, 0, 255).astype(np.uint8)
    elif array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.integer):
            raise ImageError(f"An image array of dtype {array.dtype} is not supported.")
        array = np.clip(array, 0, 255).astype(np.uint8)
    _check_pixels((array.shape[1], array.shape[0]))
    return Image.fromarray(np.ascontiguousarray(array))


def _check_pixels(size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise ImageError(_too_many_pixels(width, height))


def _too_many_pixels(width: int | None = None, height: int | None = None) -> str:
    budget = f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels"
    if width is None:
        return f"The image has too many pixels to decode safely; {budget}."
    return f"The image is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels); {budget}."


def _not_an_image(handle: BinaryIO, head: bytes) -> str:
    readable = ["JPEG", "PNG", "WebP", *(["HEIC"] if HAS_HEIF else []), *(["AVIF"] if HAS_AVIF else [])]
    supported = f"use {', '.join(readable)}, BMP, TIFF or GIF"
    for magic, what in _KNOWN_NON_IMAGES.items():
        if head.startswith(magic) or head.lstrip().startswith(magic):
            return f"The file is {what}, not an image; {supported}."
    brand = head[8:12] if head[4:8] == b"ftyp" else None
    if brand in HEIF_BRANDS and not HAS_HEIF:
        return "The file is a HEIC photo, which needs pillow-heif: run pip install pillow-heif, or save it as JPEG."
    if brand in AVIF_BRANDS and not HAS_AVIF:
        return "The file is an AVIF image, which this Pillow cannot decode: install Pillow 11.3 or later."
    if brand in HEIF_BRANDS + AVIF_BRANDS:
        what = "an AVIF image" if brand in AVIF_BRANDS else "a HEIC photo"
        return f"The file looks like {what} but cannot be decoded; it may be truncated or corrupt."
    other = _identify(handle)
    if other:
        return f"{other} images are not supported; {supported}."
    if _looks_like_text(head):
        return f"The file holds text, not an image; {supported}."
    return f"The file is not an image in a supported format; {supported}."


def _identify(handle: BinaryIO) -> str | None:
    """The name of an image format Pillow knows but we do not accept (reads the header only)."""
    handle.seek(0)
    try:
        with Image.open(handle) as other:
            return other.format
    except Exception:  # anything unidentifiable is simply not an image
        return None


def _looks_like_text(head: bytes) -> bool:
    text = head.decode("utf-8", errors="ignore")  # the 16 bytes may end inside a character
    return len(text) >= len(head) // 2 and all(ch.isprintable() or ch in "\t\r\n" for ch in text)


def error_reason(error: BaseException) -> str:
    """The first line of an exception's message, without its final full stop."""
    text = str(error).strip().rstrip(".") or type(error).__name__
    return text.splitlines()[0]
