"""The container witness: what a video file's own tags say (MP4, MOV, WebM, MKV, AVI), read through
PyAV. A phone names its camera there (``com.apple.quicktime.make``/``model``, Android's
``com.android.manufacturer``/``model``), most tools name the software that wrote the file
(``encoder``, ``software``), and an MP4 or MOV may carry an XMP packet. An AI generator named in a
software tag is a claim of AI origin; a camera is a hint of a camera original; any other software
is reported as what it is, a statement of how the file was saved, not of how its pictures were made.
"""

from __future__ import annotations

import logging
from typing import BinaryIO

from ..images import AVIF_BRANDS, HEIF_BRANDS
from .content_credentials import c2pa_findings
from .exif import camera_finding
from .findings import Finding, clip, reason
from .generators import ai_software, software_finding
from .xmp import xmp_findings

logger = logging.getLogger(__name__)

VIDEO_GENERATOR = "an AI generator"
_AUDIO_BRANDS = (b"M4A ", b"M4B ", b"M4P ")
# Tags by what they hold, most telling first; keys are compared in lower case.
_MAKE = ("com.apple.quicktime.make", "com.android.manufacturer", "make")
_MODEL = ("com.apple.quicktime.model", "com.android.model", "model")
_RECORDED = ("com.apple.quicktime.creationdate", "date")  # not creation_time: muxers write their own clock
_SOFTWARE = ("com.apple.quicktime.software", "software", "creation_tool", "encoded_by", "encoder")
# Libraries that write most files, as their tags name them.
_WRITERS = (("lavf", "FFmpeg"), ("lavc", "FFmpeg"))


def video_type(head: bytes) -> tuple[str, str] | None:
    """The MIME type and a short name of the video container whose first bytes are ``head``, or None
    when it is not one (an image, an audio file, anything else)."""
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in HEIF_BRANDS + AVIF_BRANDS + _AUDIO_BRANDS:
            return None
        return ("video/quicktime", "MOV") if brand == b"qt  " else ("video/mp4", "MP4")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video/x-msvideo", "AVI"
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska, or WebM, which names itself in the header
        return ("video/webm", "WebM") if b"webm" in head else ("video/x-matroska", "Matroska")
    return None


def container_findings(
    stream: BinaryIO, mime: str, label: str, trust_anchors: str | None, notes: list[str]
) -> list[Finding]:
    """What the video in ``stream`` states about its origin: its Content Credentials, its XMP, its tags."""
    try:
        tags = _tags(stream)
    except Exception as error:  # PyAV raises its own errors, and others on odd input
        logger.debug("Unreadable video container", exc_info=True)
        notes.append(f"The {label} container could not be read ({reason(error)}), so its tags were not read.")
        tags = None
    stream.seek(0)
    # When the container could not be read, its note says enough: C2PA fails on the same damage.
    findings = c2pa_findings(stream, mime, trust_anchors, notes if tags is not None else [])
    if tags is None:
        return findings
    findings += xmp_findings(tags.get("xmp"), notes)
    return findings + _tag_findings(tags, f"{label} container")


def _tags(stream: BinaryIO) -> dict[str, str]:
    """The container's tags, then each stream's where the container lacks them; keys in lower case."""
    import av

    tags: dict[str, str] = {}
    with av.open(stream, options={"export_xmp": "1"}) as container:
        for metadata in [container.metadata, *(s.metadata for s in container.streams)]:
            for key, value in metadata.items():
                if isinstance(value, str) and value.strip():
                    tags.setdefault(key.lower(), value.strip())
    return tags


def _tag_findings(tags: dict[str, str], where: str) -> list[Finding]:
    findings: list[Finding] = []
    software = [(key, tags[key]) for key in _SOFTWARE if key in tags]
    named = set()
    for key, value in software:
        tool = ai_software(value)
        if tool and tool not in named:
            named.add(tool)
            findings.append(software_finding(value, tool, where, key, VIDEO_GENERATOR))
    make, model = _first(tags, _MAKE), _first(tags, _MODEL)
    if make or model:
        extra = {
            "recorded": clip(_first(tags, _RECORDED)),
            "software": clip(software[0][1]) if software else None,
        }
        findings.append(camera_finding(clip(make), clip(model), extra, where))
    elif software and not named:
        findings.append(_writer_finding(*software[0], where))
    return findings


def _writer_finding(key: str, value: str, where: str) -> Finding:
    """The software that wrote the file, when it is neither an AI generator nor a camera's."""
    writer = next((name for prefix, name in _WRITERS if value.lower().startswith(prefix)), None)
    named = f'"{clip(value, 80)}"' + (f" ({writer})" if writer else "")
    says = (
        f"The {where} {key} tag names the software that wrote the file: {named}. That says how the file "
        "was saved, not how its pictures were made."
    )
    summary = f"The file names the software that wrote it, {named}: that says how it was saved, not how it was made."
    details = {"software": clip(value), "writer": writer, "field": key}
    return Finding("software", says, "hint", where, None, details, summary)


def _first(tags: dict[str, str], keys: tuple[str, ...]) -> str | None:
    return next((tags[key] for key in keys if key in tags), None)
