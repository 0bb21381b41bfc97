"""``read_provenance``: the file's bytes, what kind of file they are, and each witness that reads it."""

from __future__ import annotations

import io
import logging
import os
import warnings
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from ..images import AVIF_BRANDS, HEIF_BRANDS, MAX_FILE_BYTES
from ..video import VideoLimits
from .containers import container_findings, video_type
from .content_credentials import c2pa_findings
from .exif import exif_findings, note_damaged_exif
from .findings import Finding, Provenance, reason
from .generators import oversized_text, text_findings
from .xmp import image_packet, xmp_findings

logger = logging.getLogger(__name__)

MAX_VIDEO_BYTES = VideoLimits().max_file_bytes
HEAD_BYTES = 64
# Pillow's format names and the MIME types c2pa-python reads them as.
MIME_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",  # Pillow opens JPEGs with extra pictures (iPhone, cameras) as MPO
    "PNG": "image/png",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "GIF": "image/gif",
    "HEIF": "image/heic",  # pillow-heif's format name
    "AVIF": "image/avif",
}
# Leading bytes of image containers, for files Pillow cannot open (HEIC without pillow-heif, a PNG
# whose text chunk Pillow refuses): Content Credentials can still be read from them.
_MAGIC = (
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (8, b"WEBP", "image/webp"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (0, b"GIF8", "image/gif"),
)
# The image witnesses after C2PA, each reading the image Pillow opened, with what a note calls it.
_IMAGE_WITNESSES = (
    (lambda image, notes: xmp_findings(image_packet(image), notes), "XMP"),
    (text_findings, "PNG text"),
    (exif_findings, "EXIF"),
)


def read_provenance(source: str | os.PathLike | bytes, *, trust_anchors: str | None = None) -> Provenance:
    """Read what the file at ``source`` (a path, or the file's bytes) says about its own origin.

    Pass the original file, never a re-encoded image: re-encoding drops the metadata. Bad metadata
    never raises: it becomes a note. A file that cannot be read at all gives no findings and a note.
    Images are read up to 50 MB, videos up to 2 GB (a video is read from the file as it goes, never
    loaded whole).

    Args:
        source: a file path or the file's bytes.
        trust_anchors: PEM root certificates whose Content Credentials count as "verified" (added to
            the C2PA SDK's own trust list, which is empty by default); without them a valid C2PA
            signature is "signed".
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return _read(io.BytesIO(data), len(data), trust_anchors)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"read_provenance takes a path or bytes, not a {type(source).__name__}.")
    path = Path(source)
    try:
        if path.is_dir():
            return Provenance(notes=(f"{path} is a folder, not an image file.",))
        stream = path.open("rb")
        size = os.fstat(stream.fileno()).st_size
    except FileNotFoundError:
        return Provenance(notes=(f"No such file: {path}.",))
    except OSError as error:
        return Provenance(notes=(f"The file could not be read ({error.strerror or error}).",))
    with stream:
        return _read(stream, size, trust_anchors)


def _read(stream: BinaryIO, size: int, trust_anchors: str | None) -> Provenance:
    if size == 0:
        return Provenance(notes=("The file is empty (0 bytes).",))
    notes: list[str] = []
    video = video_type(stream.read(HEAD_BYTES))
    stream.seek(0)
    if video is not None:
        if size > MAX_VIDEO_BYTES:
            return Provenance(
                notes=(f"The file is {size / 2**30:.1f} GB, too large to read its provenance.",)
            )
        findings = container_findings(stream, *video, trust_anchors, notes)
    elif size > MAX_FILE_BYTES:
        return Provenance(notes=(f"The file is {size / 2**20:.0f} MB, too large to read its provenance.",))
    else:
        findings = _image_findings(stream.read(), trust_anchors, notes)
    return Provenance(findings=tuple(findings), notes=tuple(dict.fromkeys(notes)))


def _image_findings(data: bytes, trust_anchors: str | None, notes: list[str]) -> list[Finding]:
    image, mime = _open_image(data, notes)
    if mime is None:
        if not notes:
            notes.append("The file is not an image that could be read, so it has no provenance data.")
        return []
    # When Pillow could not read the file, its note says enough: C2PA fails on the same damage.
    findings = c2pa_findings(
        io.BytesIO(data), mime, trust_anchors, notes if image is not None or not notes else []
    )
    if image is None:
        if mime in ("image/heic", "image/avif") and not notes:
            notes.append(
                "Only Content Credentials were looked for in this file: reading HEIC/AVIF needs pillow-heif."
            )
        return findings
    with image:
        for read, what in _IMAGE_WITNESSES:
            try:
                findings += read(image, notes)
            except Exception as error:  # metadata shaped unlike anything the readers expect
                logger.debug("Could not interpret the %s metadata", what, exc_info=True)
                notes.append(f"The {what} metadata could not be interpreted ({reason(error)}).")
    return findings


def _open_image(data: bytes, notes: list[str]) -> tuple[Image.Image | None, str | None]:
    """Pillow's view of the file (header only, nothing decoded) and its MIME type."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image = Image.open(io.BytesIO(data))  # JPEG: parses the EXIF too, for the DPI
        note_damaged_exif(caught, notes)
    except UnidentifiedImageError:
        return None, _sniff_mime(data)
    except ValueError as error:  # Pillow refuses an oversized PNG text chunk while reading the header
        logger.debug("Pillow could not open the file", exc_info=True)
        if "text" in str(error).lower() or "decompressed" in str(error).lower():
            notes.append(f"{oversized_text(error)}, so the PNG metadata was not read.")
        else:
            notes.append(f"The image metadata could not be read ({reason(error)}).")
        return None, _sniff_mime(data)
    except Exception as error:  # a corrupt header, a decompression bomb: the bytes may still hold C2PA
        logger.debug("Pillow could not open the file", exc_info=True)
        mime = _sniff_mime(data)
        if mime:
            notes.append(f"The image header could not be read ({reason(error)}).")
        return None, mime
    mime = MIME_TYPES.get(image.format or "")
    if mime is None:  # BMP and the like: Pillow opened it, but it carries none of what we read
        return image, f"image/{(image.format or 'unknown').lower()}"
    return image, mime


def _sniff_mime(data: bytes) -> str | None:
    for offset, magic, mime in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return mime
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in HEIF_BRANDS:
            return "image/heic"
        if brand in AVIF_BRANDS:
            return "image/avif"
    return None
