"""The XMP witness: an IPTC digital source type, and an AI generator named as the creator tool or
credit. Also what each IPTC digital source type says, which Content Credentials state too."""

from __future__ import annotations

import logging
from typing import Any

from PIL import Image

from .findings import MAX_TEXT_CHARS, Finding, clip, reason
from .generators import ai_software

logger = logging.getLogger(__name__)

# IPTC digital source types (http://cv.iptc.org/newscodes/digitalsourcetype/): what each says, to
# follow "it was ...", and whether it states AI generation (True), a capture (False) or neither (None).
# Generative and synthetic types count as AI; an algorithmic enhancement (denoising, upscaling) of a
# photo does not, nor do human edits.
DIGITAL_SOURCE_TYPES: dict[str, tuple[str, bool | None]] = {
    "trainedAlgorithmicMedia": ("created with a generative AI tool", True),
    "compositeWithTrainedAlgorithmicMedia": (
        "edited with a generative AI tool (part of it is AI-made)",
        True,
    ),
    "algorithmicMedia": ("made by an algorithm, not a camera", True),
    "compositeSynthetic": ("assembled from elements that include synthetic (computer-made) ones", True),
    "algorithmicallyEnhanced": ("enhanced by an algorithm (a correction, not a generation)", None),
    "digitalCapture": ("captured with a digital camera", False),
    "computationalCapture": ("captured with a camera and processed by its software", False),
    "negativeFilm": ("scanned from a film negative", False),
    "positiveFilm": ("scanned from film", False),
    "print": ("scanned from a print", False),
    "compositeCapture": ("assembled from camera captures", False),
    "minorHumanEdits": ("edited slightly by a person", None),
    "humanEdits": ("edited by a person", None),
    "composite": ("assembled from several elements", None),
    "digitalArt": ("made by a person with digital tools", None),
    "digitalCreation": ("made by a person with digital tools", None),
    "virtualRecording": ("recorded in a virtual environment", None),
    "screenCapture": ("captured from a screen", None),
    "dataDrivenMedia": ("made from data", None),
}

_XMP_FIELDS = {  # local name -> (namespace, label)
    "DigitalSourceType": ("http://iptc.org/std/Iptc4xmpExt/2008-02-29/", "Iptc4xmpExt:DigitalSourceType"),
    "CreatorTool": ("http://ns.adobe.com/xap/1.0/", "xmp:CreatorTool"),
    "Credit": ("http://ns.adobe.com/photoshop/1.0/", "photoshop:Credit"),
}
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"


def short_source(uri: str) -> str:
    """A digital source type's name, from its full IPTC URI."""
    return uri.strip().rstrip("/").rsplit("/", 1)[-1]


def source_phrase(uri: str) -> tuple[str, bool | None]:
    """What the digital source type says (to follow "it was ..."), and whether that is AI (True),
    a capture (False) or neither (None)."""
    name = short_source(uri)
    if name in DIGITAL_SOURCE_TYPES:
        return DIGITAL_SOURCE_TYPES[name]
    return f"of digital source type {clip(name, 80)}", None


def main_source_type(sources: list[str]) -> str | None:
    """The source type that matters most: one stating AI first, then a capture, then any."""
    for wanted in (True, False, None):
        for source in sources:
            if source_phrase(source)[1] is wanted:
                return source
    return None


def image_packet(image: Image.Image) -> bytes | str | None:
    """The XMP packet of an image Pillow opened (JPEG, PNG, WebP, TIFF, HEIC), if it has one."""
    packet = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    if not packet and hasattr(image, "tag_v2"):  # TIFF keeps XMP in tag 700
        try:
            packet = image.tag_v2.get(700)
        except Exception:
            logger.debug("Unreadable TIFF XMP tag", exc_info=True)
    return packet or None


def xmp_findings(packet: bytes | str | None, notes: list[str]) -> list[Finding]:
    """What an XMP packet states: its digital source type, and an AI tool named as creator or credit."""
    if not packet:
        return []
    fields = _xmp_fields(packet, notes)
    findings = []
    source = fields.get("DigitalSourceType")
    if source:
        phrase, ai = source_phrase(source)
        findings.append(
            Finding(
                "digital_source_type",
                f"XMP metadata states: {phrase} ({short_source(source)}).",
                "claim",
                "XMP",
                ai,
                {
                    "digital_source_type": clip(source),
                    "states": phrase,
                    "field": _XMP_FIELDS["DigitalSourceType"][1],
                },
                f"The file's XMP metadata states it was {phrase}; unsigned metadata is easy to add or remove.",
            )
        )
    for name, kind in (("CreatorTool", "software"), ("Credit", "generator_metadata")):
        value = fields.get(name)
        tool = ai_software(value) if value else None
        if tool:
            label = _XMP_FIELDS[name][1]
            findings.append(
                Finding(
                    kind,
                    f'The XMP {label} field names {tool}, an AI image generator ("{clip(value, 80)}").',
                    "claim",
                    "XMP",
                    True,
                    {"tool": tool, "value": clip(value), "field": label},
                    f"The file's XMP metadata names {tool}, an AI image generator; unsigned metadata is "
                    "easy to add or remove.",
                )
            )
    return findings


def _xmp_fields(packet: bytes | str, notes: list[str]) -> dict[str, str]:
    """The XMP fields this module reads, by local name (first value of each)."""
    import defusedxml.ElementTree as DefusedET
    from defusedxml import DefusedXmlException

    if len(packet) > MAX_TEXT_CHARS:
        notes.append(f"The XMP metadata is larger than {MAX_TEXT_CHARS // 2**20} MB and was not read.")
        return {}
    if isinstance(packet, bytes):
        packet = packet.decode("utf-8", errors="replace")
    packet = packet.strip(" \t\r\n\x00")
    try:
        root = DefusedET.fromstring(packet)
    except (DefusedET.ParseError, DefusedXmlException, ValueError) as error:
        logger.debug("Malformed XMP", exc_info=True)
        notes.append(f"The XMP metadata is malformed and was not read ({reason(error)}).")
        return {}
    found: dict[str, str] = {}
    for element in root.iter():
        for key, value in element.attrib.items():
            name = _xmp_name(key)
            if name and name not in found and value.strip():
                found[name] = value.strip()
        name = _xmp_name(element.tag)
        if name and name not in found:
            value = (
                "".join(element.itertext()).strip() or element.attrib.get(f"{{{_RDF}}}resource", "").strip()
            )
            if value:
                found[name] = value
    return found


def _xmp_name(tag: Any) -> str | None:
    """The local name of an XMP property this module reads, from an ElementTree "{namespace}name"."""
    if not isinstance(tag, str) or "}" not in tag:
        return None
    namespace, name = tag[1:].split("}", 1)
    return name if _XMP_FIELDS.get(name, ("",))[0] == namespace else None
