"""The EXIF witness: camera make, model, date and lens (a hint of a camera original), an AI generator
named as the Software, and AUTOMATIC1111 settings in the UserComment."""

from __future__ import annotations

import logging
import warnings
from typing import Any

from PIL import ExifTags, Image

from .findings import MAX_TEXT_CHARS, Finding, clip, reason
from .generators import ai_software, parameters_finding, software_finding

logger = logging.getLogger(__name__)

_EXIF_IFD = ExifTags.IFD.Exif
_USER_COMMENT = ExifTags.Base.UserComment


def exif_findings(image: Image.Image, notes: list[str]) -> list[Finding]:
    """What the EXIF of an image Pillow opened states."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exif = image.getexif()
            sub = exif.get_ifd(_EXIF_IFD) if _EXIF_IFD in exif else {}
    except Exception as error:  # Pillow raises many types on malformed EXIF
        logger.debug("Malformed EXIF", exc_info=True)
        notes.append(f"The EXIF metadata is malformed and was not read ({reason(error)}).")
        return []
    note_damaged_exif(caught, notes)
    findings: list[Finding] = []
    comment = _user_comment(sub.get(_USER_COMMENT))
    if comment and len(comment) <= MAX_TEXT_CHARS:
        finding = parameters_finding(comment, "EXIF UserComment")
        if finding:
            findings.append(finding)
    software = _exif_text(exif.get(ExifTags.Base.Software))
    tool = ai_software(software) if software else None
    if tool:
        findings.append(software_finding(software, tool, "EXIF", "Software"))
    make = _exif_text(exif.get(ExifTags.Base.Make))
    model = _exif_text(exif.get(ExifTags.Base.Model))
    if make or model:
        taken = _exif_text(sub.get(ExifTags.Base.DateTimeOriginal))
        lens = _exif_text(sub.get(ExifTags.Base.LensModel))
        findings.append(camera_finding(make, model, {"datetime_original": taken, "lens_model": lens}))
    return findings


def note_damaged_exif(caught: list[warnings.WarningMessage], notes: list[str]) -> None:
    """Pillow warns, and reads what it can, when EXIF (or another TIFF-style directory) is damaged."""
    for warning in caught:
        if warning.category is UserWarning:  # not a DecompressionBombWarning, nor a deprecation
            notes.append(
                f"Part of the image metadata is damaged and was not read ({reason(warning.message)})."
            )
            return


_EXTRA_WORDS = {
    "datetime_original": "taken",
    "lens_model": "lens",
    "recorded": "recorded",
    "software": "software",
}


def camera_finding(make: str | None, model: str | None, extra: dict, where: str = "EXIF") -> Finding:
    """The camera ``where`` names; ``extra`` holds the other fields found with it (a date, a lens),
    each said in the sentence when it is there (see ``_EXTRA_WORDS``)."""
    camera = _camera_name(make, model)
    bits = ", ".join(f"{_EXTRA_WORDS[key]} {value}" for key, value in extra.items() if value)
    says = f"{where} camera data: {camera}" + (f" ({bits})." if bits else ".")
    summary = (
        f"The file carries camera data ({camera}), a weak sign of a camera original: it is easy to edit."
    )
    details = {"make": make, "model": model, "camera": camera, **extra}
    return Finding("camera", says, "hint", where, False, details, summary)


def _camera_name(make: str | None, model: str | None) -> str:
    if make and model and not model.lower().startswith(make.split()[0].lower()):
        return f"{make} {model}"
    return model or make or ""


def _exif_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = str(value).strip(" \t\r\n\x00")
    return clip(text) if text else None


def _user_comment(value: Any) -> str | None:
    """The text of an EXIF UserComment (an 8-byte character code, then the text)."""
    if isinstance(value, str):
        return value.strip("\x00 ") or None
    if not isinstance(value, bytes) or len(value) <= 8:
        return None
    code, body = value[:8], value[8:]
    if code.startswith(b"UNICODE"):
        # The byte order is the writer's: AUTOMATIC1111 (piexif) writes big-endian, others little.
        texts = [body.decode(order, errors="replace") for order in ("utf-16-be", "utf-16-le")]
        text = max(texts, key=lambda t: sum(ch.isascii() and ch.isprintable() for ch in t[:200]))
    else:
        text = body.decode("utf-8", errors="replace")
    return text.strip("\x00 ") or None
