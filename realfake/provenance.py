"""What an image file says about its own origin, and how far each statement can be trusted.

``read_provenance`` reads the original file bytes (never a re-encoded image) and returns every
statement about the file's origin that it finds, each as a :class:`Finding` with a strength:

- **verified**: C2PA Content Credentials whose signature validates and whose signer is on a trust
  list (only when the caller passes trust anchors). The strongest evidence there is, but it says who
  vouches for the file, not that the signer told the truth.
- **signed**: C2PA Content Credentials whose signature validates cryptographically but whose signer
  is not on a trust list. The manifest has not changed since it was signed, but anyone can make a
  certificate with any name on it.
- **claim**: unsigned metadata (an XMP ``DigitalSourceType``, the generation settings an AI front-end
  writes into a PNG text chunk, a generator's name in the ``Software`` tag), and Content Credentials
  whose signature does not validate. Tools write these as they are, but anyone can add or remove them.
- **hint**: camera EXIF (make, model, date, lens): a weak sign of a camera original, since it is kept
  by many editors and is easy to copy onto any image.

Most sites strip metadata on upload, so its absence says nothing about a file. Metadata that cannot
be read (a malformed XMP packet, a broken C2PA store, an oversized PNG text chunk) becomes a one-line
note, never an exception. Parsing is left to libraries: Pillow (EXIF, XMP packets, PNG text chunks),
defusedxml (XMP) and c2pa-python (Content Credentials, which it validates offline: no remote manifest
or OCSP fetch).
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, PngImagePlugin, UnidentifiedImageError

from .images import AVIF_BRANDS, HEIF_BRANDS, MAX_FILE_BYTES, error_reason

logger = logging.getLogger(__name__)

KINDS = ("c2pa", "digital_source_type", "generator_metadata", "software", "camera")
STRENGTHS = ("verified", "signed", "claim", "hint")  # strongest first
MAX_DETAIL_CHARS = 500
MAX_TEXT_CHARS = 1024 * 1024  # metadata strings longer than this (a PNG text chunk, XMP) are not parsed
MAX_PARAMS_LINE = 20_000  # the settings line of AUTOMATIC1111 parameters is parsed only up to this
MAX_LIST_ITEMS = 10
MAX_INGREDIENT_DEPTH = 5
# PNG text chunks after the image data are read only by decoding the pixels: done up to this size.
MAX_TRAILING_TEXT_PIXELS = 16_000_000

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

# AI image generators, as they appear in Software / CreatorTool / Credit values (case-insensitive,
# whole words, so that "Imagenomic" is not Imagen).
AI_SOFTWARE = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("Adobe Firefly", r"\bfirefly\b"),
        ("DALL-E", r"\bdall[-·‧ ]?e\b"),
        ("Midjourney", r"\bmidjourney\b"),
        ("Stable Diffusion", r"\bstable[ -]?diffusion\b"),
        ("NovelAI", r"\bnovel ?ai\b"),
        ("Imagen", r"\bimagen\b"),
        ("FLUX", r"\bflux\b"),
        ("Leonardo.Ai", r"\bleonardo[. ]?ai\b"),
        ("Bing Image Creator", r"\bbing image creator\b"),
        ("Microsoft Designer", r"\bmicrosoft designer\b"),
        ("ComfyUI", r"\bcomfy ?ui\b"),
        ("InvokeAI", r"\binvoke ?ai\b"),
        ("Fooocus", r"\bfooocus\b"),
        ("AUTOMATIC1111", r"\bautomatic ?1111\b"),
        ("SwarmUI", r"\bswarm ?ui\b"),
        ("Google AI", r"\bgoogle ai\b"),
        ("Gemini", r"\bgemini\b"),
        ("ChatGPT", r"\bchatgpt\b"),
        ("OpenAI", r"\bopenai\b"),
        ("Ideogram", r"\bideogram\b"),
        ("DreamStudio", r"\bdreamstudio\b"),
        ("Stability AI", r"\bstability ?ai\b"),
        ("Draw Things", r"\bdraw things\b"),
        ("Craiyon", r"\bcraiyon\b"),
        ("Runway", r"\brunway ?ml\b"),
        ("Recraft", r"\brecraft\b"),
        ("Meta AI", r"\bmeta ai\b"),
    )
)

A1111_TOOL = "AUTOMATIC1111-style Stable Diffusion web UI"
_A1111_MARKERS = ("Steps:", "Sampler:", "Seed:", "CFG scale:")
# One "Key: value" pair of the settings line (the key's length is bounded, so a long line without a
# colon cannot make the search quadratic).
_A1111_PARAM = re.compile(r'\s*(\w[\w \-/]{0,60}):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_A1111_DETAILS = {
    "Model": "model",
    "Model hash": "model_hash",
    "Sampler": "sampler",
    "Steps": "steps",
    "Size": "size",
    "Version": "version",
}
# ComfyUI nodes whose inputs name the model.
_COMFY_MODEL_INPUTS = ("ckpt_name", "unet_name", "model_name")

_XMP_FIELDS = {  # local name -> (namespace, label)
    "DigitalSourceType": ("http://iptc.org/std/Iptc4xmpExt/2008-02-29/", "Iptc4xmpExt:DigitalSourceType"),
    "CreatorTool": ("http://ns.adobe.com/xap/1.0/", "xmp:CreatorTool"),
    "Credit": ("http://ns.adobe.com/photoshop/1.0/", "photoshop:Credit"),
}
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_EXIF_IFD = ExifTags.IFD.Exif
_USER_COMMENT = ExifTags.Base.UserComment
_C2PA_UNTRUSTED = ("signingCredential.untrusted",)


@dataclass(frozen=True)
class Finding:
    """One statement the file makes about its origin.

    Attributes:
        kind: one of :data:`KINDS`.
        says: one plain sentence for a person.
        strength: one of :data:`STRENGTHS` (see the module docstring for what each is worth).
        where: where in the file it was found ("C2PA manifest", "XMP", "EXIF", "PNG text chunk 'x'").
        ai: True when it states AI generation or editing, False when it states a camera or capture
            origin, None when it states neither.
        details: machine-readable fields (JSON-serialisable; long strings are cut, prompts are never
            included, only whether they are there and their length).
    """

    kind: str
    says: str
    strength: str
    where: str
    ai: bool | None = None
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The finding as plain JSON-serialisable values."""
        return {
            "kind": self.kind,
            "says": self.says,
            "strength": self.strength,
            "where": self.where,
            "ai": self.ai,
            "details": json.loads(json.dumps(self.details, default=str)),
        }


@dataclass(frozen=True)
class Provenance:
    """Everything a file says about its origin, and what could not be read."""

    findings: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def declares_ai(self) -> bool:
        """True when any finding states AI generation or editing."""
        return any(finding.ai is True for finding in self.findings)

    @property
    def strongest_ai(self) -> Finding | None:
        """The strongest finding that states AI generation or editing (the first of equals)."""
        return _strongest(finding for finding in self.findings if finding.ai is True)

    def summary(self) -> str:
        """One sentence: the strongest AI statement, else a capture statement, else what was found."""
        finding = (
            self.strongest_ai
            or _strongest(f for f in self.findings if f.ai is False)
            or _strongest(f for f in self.findings if f.kind == "c2pa")
        )
        if finding is None:
            return "No provenance data: most sites strip it, so its absence says nothing."
        return _summary_sentence(finding)

    def to_dict(self) -> dict:
        """Findings, notes, ``declares_ai`` and the summary as plain JSON-serialisable values."""
        return {
            "findings": [finding.to_dict() for finding in self.findings],
            "notes": list(self.notes),
            "declares_ai": self.declares_ai,
            "summary": self.summary(),
        }


def read_provenance(source: str | os.PathLike | bytes, *, trust_anchors: str | None = None) -> Provenance:
    """Read what the file at ``source`` (a path, or the file's bytes) says about its own origin.

    Pass the original file, never a re-encoded image: re-encoding drops the metadata. Bad metadata
    never raises: it becomes a note. A file that cannot be read at all gives no findings and a note.

    Args:
        source: a file path or the file's bytes.
        trust_anchors: PEM root certificates whose Content Credentials count as "verified" (added to
            the C2PA SDK's own trust list, which is empty by default); without them a valid C2PA
            signature is "signed".
    """
    data, problem = _read_bytes(source)
    if problem:
        return Provenance(notes=(problem,))
    notes: list[str] = []
    image, mime = _open_image(data, notes)
    if mime is None:
        if not notes:
            notes.append("The file is not an image that could be read, so it has no provenance data.")
        return Provenance(notes=tuple(notes))
    findings: list[Finding] = []
    # When Pillow could not read the file, its note says enough: C2PA fails on the same damage.
    findings += _c2pa_findings(data, mime, trust_anchors, notes if image is not None or not notes else [])
    if image is None:
        if mime in ("image/heic", "image/avif") and not notes:
            notes.append(
                "Only Content Credentials were looked for in this file: reading HEIC/AVIF needs pillow-heif."
            )
    else:
        try:
            for read, what in (
                (_xmp_findings, "XMP"),
                (_text_findings, "PNG text"),
                (_exif_findings, "EXIF"),
            ):
                try:
                    findings += read(image, notes)
                except Exception as error:  # metadata shaped unlike anything the readers expect
                    logger.debug("Could not interpret the %s metadata", what, exc_info=True)
                    notes.append(f"The {what} metadata could not be interpreted ({_reason(error)}).")
        finally:
            image.close()
    return Provenance(findings=tuple(findings), notes=tuple(dict.fromkeys(notes)))


# --- reading the file ------------------------------------------------------------------------------


def _read_bytes(source: str | os.PathLike | bytes) -> tuple[bytes, str | None]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            size = path.stat().st_size
            if path.is_dir():
                return b"", f"{path} is a folder, not an image file."
            if size > MAX_FILE_BYTES:
                return b"", f"The file is {size / 2**20:.0f} MB, too large to read its provenance."
            data = path.read_bytes()
        except FileNotFoundError:
            return b"", f"No such file: {path}."
        except OSError as error:
            return b"", f"The file could not be read ({error.strerror or error})."
    else:
        raise TypeError(f"read_provenance takes a path or bytes, not a {type(source).__name__}.")
    if not data:
        return b"", "The file is empty (0 bytes)."
    if len(data) > MAX_FILE_BYTES:
        return b"", f"The file is {len(data) / 2**20:.0f} MB, too large to read its provenance."
    return data, None


def _open_image(data: bytes, notes: list[str]) -> tuple[Image.Image | None, str | None]:
    """Pillow's view of the file (header only, nothing decoded) and its MIME type."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image = Image.open(io.BytesIO(data))  # JPEG: parses the EXIF too, for the DPI
        _note_damaged_exif(caught, notes)
    except UnidentifiedImageError:
        return None, _sniff_mime(data)
    except ValueError as error:  # Pillow refuses an oversized PNG text chunk while reading the header
        logger.debug("Pillow could not open the file", exc_info=True)
        if "text" in str(error).lower() or "decompressed" in str(error).lower():
            notes.append(f"{_oversized_text(error)}, so the PNG metadata was not read.")
        else:
            notes.append(f"The image metadata could not be read ({_reason(error)}).")
        return None, _sniff_mime(data)
    except Exception as error:  # a corrupt header, a decompression bomb: the bytes may still hold C2PA
        logger.debug("Pillow could not open the file", exc_info=True)
        mime = _sniff_mime(data)
        if mime:
            notes.append(f"The image header could not be read ({_reason(error)}).")
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


# --- C2PA ------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _c2pa_context(trust_anchors: str | None) -> Any:
    import c2pa

    settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    if trust_anchors:
        settings["trust"] = {"user_anchors": trust_anchors}
    return c2pa.Context.from_dict(settings)


def _c2pa_findings(data: bytes, mime: str, trust_anchors: str | None, notes: list[str]) -> list[Finding]:
    try:
        import c2pa
    except ImportError:
        notes.append("Content Credentials (C2PA) were not checked: c2pa-python is not installed.")
        return []
    try:
        if mime not in c2pa.Reader.get_supported_mime_types():
            return []
        context = _c2pa_context(trust_anchors)
        reader = c2pa.Reader.try_create(mime, io.BytesIO(data), context=context)
        if reader is None:
            return []
        with reader:
            store = json.loads(reader.json())
    except Exception as error:  # c2pa raises C2paError subclasses, and others on odd input
        logger.debug("Unreadable C2PA manifest store", exc_info=True)
        # The native library says "Remote: ...", which the bindings raise as a plain C2paError.
        if isinstance(error, c2pa.C2paError.RemoteManifest) or str(error).startswith("Remote"):
            url = re.search(r"https?://\S+", str(error))
            where = f" ({_clip(url.group(0), 200)})" if url else ""
            notes.append(
                f"The file points to Content Credentials stored online{where}; they were not fetched."
            )
            return []
        notes.append(
            f"The file's Content Credentials (C2PA) are damaged and could not be read ({_reason(error)})."
        )
        return []
    try:
        finding = _c2pa_finding(store, notes)
    except Exception as error:  # a manifest store shaped unlike the SDK's own output
        logger.debug("Unexpected C2PA manifest store", exc_info=True)
        notes.append(f"The file's Content Credentials (C2PA) could not be interpreted ({_reason(error)}).")
        return []
    return [finding] if finding else []


def _c2pa_finding(store: dict, notes: list[str]) -> Finding | None:
    manifests = store.get("manifests") or {}
    label = store.get("active_manifest")
    manifest = manifests.get(label) if label else None
    if not isinstance(manifest, dict):
        notes.append("The file's Content Credentials (C2PA) have no active manifest.")
        return None
    signature = manifest.get("signature_info") or {}
    signer = _clip(signature.get("issuer") or signature.get("common_name") or "an unnamed signer")
    state, errors, untrusted = _c2pa_validation(store)
    if state == "Trusted":
        strength = "verified"
    elif state == "Valid" or (state is None and not errors):
        strength = "signed"
    else:
        strength = "claim"
        notes.append(
            "The file's Content Credentials do not validate "
            f"({', '.join(errors[:3]) or 'invalid'}), so what they state is only a claim."
        )
    actions, sources, agents = _c2pa_actions(manifest)
    ingredient_sources = _ingredient_sources(manifest, manifests)
    source = _main_source_type(sources) or _main_source_type(ingredient_sources)
    phrase, ai = _source_phrase(source) if source else (None, None)
    if source and source not in sources:
        phrase = f"made from an ingredient that was {phrase}"
    generator = _claim_generator(manifest)
    tool = agents[0] if agents else generator
    details = {
        "signer": signer,
        "signer_common_name": _clip(signature.get("common_name")),
        "signature_alg": _clip(signature.get("alg")),
        "signed_at": _clip(signature.get("time")),
        "validation_state": state,
        "validation_errors": errors[:MAX_LIST_ITEMS],
        "trusted": state == "Trusted",
        "signer_untrusted": untrusted,
        "claim_generator": generator,
        "tool": tool,
        "digital_source_type": _clip(source),
        "states": phrase,
        "digital_source_types": [_clip(s) for s in sources[:MAX_LIST_ITEMS]],
        "ingredient_digital_source_types": [_clip(s) for s in ingredient_sources[:MAX_LIST_ITEMS]],
        "actions": [_clip(a) for a in actions[:MAX_LIST_ITEMS]],
        "title": _clip(manifest.get("title")),
        "manifest": _clip(label),
    }
    if strength == "claim":
        by = "Content Credentials whose signature does not validate"
    else:
        by = f"Content Credentials signed by {signer}" + (
            " (a trusted signer)" if strength == "verified" else ""
        )
    if phrase:
        says = f"{by} state: {phrase} ({_short_source(source)})."
    elif tool:
        says = f"{by} name the tool {tool} but do not say how the image was made."
    else:
        says = f"{by} do not say how the image was made."
    return Finding("c2pa", says, strength, "C2PA manifest", ai, details)


def _c2pa_validation(store: dict) -> tuple[str | None, list[str], bool]:
    """The validation state, the failure codes (trust aside) and whether the signer is untrusted."""
    state = store.get("validation_state")
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    failures = results.get("failure")
    if failures is None:
        failures = store.get("validation_status") or []
    codes = [str(item.get("code")) for item in failures if isinstance(item, dict)]
    untrusted = any(code in _C2PA_UNTRUSTED for code in codes)
    errors = [_clip(code) for code in codes if code not in _C2PA_UNTRUSTED]
    return (str(state) if state else None), errors, untrusted


def _c2pa_actions(manifest: dict) -> tuple[list[str], list[str], list[str]]:
    """The actions, digital source types and software agents of a manifest's actions assertions."""
    actions: list[str] = []
    sources: list[str] = []
    agents: list[str] = []
    for assertion in manifest.get("assertions") or []:
        if not isinstance(assertion, dict) or not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for action in (assertion.get("data") or {}).get("actions") or []:
            if not isinstance(action, dict):
                continue
            actions.append(str(action.get("action")))
            parameters = action.get("parameters")
            source = action.get("digitalSourceType") or (
                parameters.get("digitalSourceType") if isinstance(parameters, dict) else None
            )
            if source and str(source) not in sources:
                sources.append(str(source))
            agent = action.get("softwareAgent")
            name = agent.get("name") if isinstance(agent, dict) else agent
            if name and _clip(name) not in agents:
                agents.append(_clip(name))
    return actions, sources, agents


def _ingredient_sources(
    manifest: dict, manifests: dict, depth: int = 0, seen: set | None = None
) -> list[str]:
    """Digital source types stated by the manifests of the manifest's ingredients, recursively."""
    seen = set() if seen is None else seen
    found: list[str] = []
    if depth >= MAX_INGREDIENT_DEPTH:
        return found
    for ingredient in manifest.get("ingredients") or []:
        label = ingredient.get("active_manifest") if isinstance(ingredient, dict) else None
        if not label or label in seen or not isinstance(manifests.get(label), dict):
            continue
        seen.add(label)
        parent = manifests[label]
        for source in _c2pa_actions(parent)[1] + _ingredient_sources(parent, manifests, depth + 1, seen):
            if source not in found:
                found.append(source)
    return found


def _claim_generator(manifest: dict) -> str | None:
    info = manifest.get("claim_generator_info")
    if isinstance(info, list) and info and isinstance(info[0], dict) and info[0].get("name"):
        version = info[0].get("version")
        return _clip(f"{info[0]['name']} {version}" if version else info[0]["name"])
    return _clip(manifest.get("claim_generator"))


# --- digital source types ----------------------------------------------------------------------------


def _short_source(uri: str) -> str:
    return uri.strip().rstrip("/").rsplit("/", 1)[-1]


def _source_phrase(uri: str) -> tuple[str, bool | None]:
    name = _short_source(uri)
    if name in DIGITAL_SOURCE_TYPES:
        return DIGITAL_SOURCE_TYPES[name]
    return f"of digital source type {_clip(name, 80)}", None


def _main_source_type(sources: list[str]) -> str | None:
    """The source type that matters most: one stating AI first, then a capture, then any."""
    for wanted in (True, False, None):
        for source in sources:
            if _source_phrase(source)[1] is wanted:
                return source
    return None


# --- XMP -------------------------------------------------------------------------------------------


def _xmp_packet(image: Image.Image) -> bytes | str | None:
    packet = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    if not packet and hasattr(image, "tag_v2"):  # TIFF keeps XMP in tag 700
        try:
            packet = image.tag_v2.get(700)
        except Exception:
            logger.debug("Unreadable TIFF XMP tag", exc_info=True)
    return packet or None


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
        notes.append(f"The XMP metadata is malformed and was not read ({_reason(error)}).")
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


def _xmp_findings(image: Image.Image, notes: list[str]) -> list[Finding]:
    packet = _xmp_packet(image)
    if not packet:
        return []
    fields = _xmp_fields(packet, notes)
    findings = []
    source = fields.get("DigitalSourceType")
    if source:
        phrase, ai = _source_phrase(source)
        findings.append(
            Finding(
                "digital_source_type",
                f"XMP metadata states: {phrase} ({_short_source(source)}).",
                "claim",
                "XMP",
                ai,
                {
                    "digital_source_type": _clip(source),
                    "states": phrase,
                    "field": _XMP_FIELDS["DigitalSourceType"][1],
                },
            )
        )
    for name, kind in (("CreatorTool", "software"), ("Credit", "generator_metadata")):
        value = fields.get(name)
        tool = _ai_software(value) if value else None
        if tool:
            label = _XMP_FIELDS[name][1]
            findings.append(
                Finding(
                    kind,
                    f'The XMP {label} field names {tool}, an AI image generator ("{_clip(value, 80)}").',
                    "claim",
                    "XMP",
                    True,
                    {"tool": tool, "value": _clip(value), "field": label},
                )
            )
    return findings


def _ai_software(value: str) -> str | None:
    for name, pattern in AI_SOFTWARE:
        if pattern.search(value):
            return name
    return None


# --- PNG text chunks and generator settings ----------------------------------------------------------


def _png_text(image: Image.Image, notes: list[str]) -> dict[str, str]:
    """The PNG's text chunks, including those after the image data when the image is small enough."""
    text: Any = None
    width, height = image.size
    if width * height <= MAX_TRAILING_TEXT_PIXELS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                text = image.text  # decodes the pixels, to reach text chunks after the image data
        except ValueError as error:
            logger.debug("Oversized PNG text", exc_info=True)
            notes.append(f"{_oversized_text(error)} and was not read.")
        except Exception:  # a truncated image: the chunks before its data are still in info
            logger.debug("Could not read the PNG's trailing text chunks", exc_info=True)
    if text is None:
        text = {key: value for key, value in image.info.items() if isinstance(value, str)}
    return {str(key): str(value) for key, value in text.items()}


def _oversized_text(error: ValueError) -> str:
    """Pillow's refusal of PNG text (over 1 MB decompressed, or over 64 MB in all), as a person reads it."""
    if "memory" in str(error).lower():
        return f"The PNG text chunks take more than {PngImagePlugin.MAX_TEXT_MEMORY // 2**20} MB in all"
    return f"A PNG text chunk is larger than {PngImagePlugin.MAX_TEXT_CHUNK // 2**20} MB"


def _text_findings(image: Image.Image, notes: list[str]) -> list[Finding]:
    findings: list[Finding] = []
    if image.format == "PNG":
        chunks = _png_text(image, notes)
        readable = {}
        for key, value in chunks.items():
            if len(value) > MAX_TEXT_CHARS:
                notes.append(
                    f"A PNG text chunk ('{_clip(key, 40)}', {len(value) / 2**20:.1f} MB) is larger than "
                    f"{MAX_TEXT_CHARS // 2**20} MB and was not read."
                )
            else:
                readable[key] = value
        findings += _generator_findings(readable)
    return findings


def _chunk_where(key: str) -> str:
    return f"PNG text chunk '{key}'"


def _generator_findings(chunks: dict[str, str]) -> list[Finding]:
    """Findings from the text chunks AI front-ends write (and the PNG Software chunk)."""
    findings: list[Finding] = []
    tools: set[str] = set()

    def add(finding: Finding | None) -> None:
        if finding:
            findings.append(finding)
            tools.add(finding.details.get("tool", ""))

    if "parameters" in chunks:
        add(_parameters_finding(chunks["parameters"], _chunk_where("parameters"), "fooocus_scheme" in chunks))
    if "prompt" in chunks or "workflow" in chunks:
        add(_comfyui_finding(chunks))
    for key in ("invokeai_metadata", "sd-metadata", "Dream"):
        if key in chunks:
            add(_invokeai_finding(key, chunks[key]))
            break
    if re.search(r"novel ?ai", chunks.get("Software", ""), re.IGNORECASE) and (
        "Comment" in chunks or "Source" in chunks
    ):
        add(_novelai_finding(chunks))
    software = chunks.get("Software")
    tool = _ai_software(software) if software else None
    if tool and tool not in tools:
        add(_software_finding(software, tool, _chunk_where("Software"), "Software"))
    return findings


def _generator_finding(where: str, tool: str, details: dict) -> Finding:
    model = details.get("model")
    bits = f" (model {model})" if model else ""
    prompt = " with a prompt" if details.get("has_prompt") else ""
    says = f"The {where} holds generation settings from {_tool_name(tool)}{bits}{prompt}."
    return Finding("generator_metadata", says, "claim", where, True, {"tool": tool, **details})


def _tool_name(tool: Any) -> str:
    return f"an {tool}" if tool == A1111_TOOL else str(tool)


def _parameters_finding(text: str, where: str, fooocus_scheme: bool = False) -> Finding | None:
    """AUTOMATIC1111 / Forge / SD.Next settings text, or the JSON Fooocus and SwarmUI write."""
    data = _json_object(text)
    if data is not None:
        if "sui_image_params" in data:
            params = data["sui_image_params"] if isinstance(data["sui_image_params"], dict) else {}
            tool, model = "SwarmUI", params.get("model")
            prompt = params.get("prompt")
        elif fooocus_scheme or "fooocus" in text[:MAX_PARAMS_LINE].lower():
            tool = "Fooocus"
            model = data.get("base_model") or data.get("Base Model")
            prompt = data.get("prompt") or data.get("Prompt")
        else:
            return None
        details = {"model": _clip(model), "has_prompt": bool(prompt), "prompt_length": len(str(prompt or ""))}
        return _generator_finding(where, tool, details)
    lines = text.strip().split("\n")
    settings_line = lines[-1] if lines else ""
    if not any(marker in settings_line for marker in _A1111_MARKERS):
        return None
    params: dict[str, str] = {}
    for key, value in _A1111_PARAM.findall(settings_line[:MAX_PARAMS_LINE]):
        params.setdefault(key.strip(), value.strip().strip('"'))
    prompt_lines, negative_lines, negative = [], [], False
    for line in lines[:-1]:
        if line.startswith("Negative prompt:"):
            negative = True
            line = line[len("Negative prompt:") :]
        (negative_lines if negative else prompt_lines).append(line)
    prompt = "\n".join(prompt_lines).strip()
    details: dict[str, Any] = {key: _clip(params.get(name)) for name, key in _A1111_DETAILS.items()}
    details.update(
        has_prompt=bool(prompt),
        prompt_length=len(prompt),
        has_negative_prompt=bool("\n".join(negative_lines).strip()),
    )
    return _generator_finding(where, A1111_TOOL, details)


def _comfyui_finding(chunks: dict[str, str]) -> Finding | None:
    prompt = _json_object(chunks.get("prompt", ""))
    workflow = _json_object(chunks.get("workflow", ""))
    if prompt is None and workflow is None:
        return None
    models: list[str] = []
    for node in (prompt or {}).values():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        for key in _COMFY_MODEL_INPUTS:
            value = inputs.get(key) if isinstance(inputs, dict) else None
            if isinstance(value, str) and _clip(value) not in models:
                models.append(_clip(value))
    workflow_nodes = (workflow or {}).get("nodes")
    nodes = (
        len(prompt) if prompt is not None else len(workflow_nodes) if isinstance(workflow_nodes, list) else 0
    )
    where = _chunk_where("prompt" if prompt is not None else "workflow")
    details = {
        "model": models[0] if models else None,
        "models": models[:MAX_LIST_ITEMS],
        "nodes": nodes,
        "has_prompt": prompt is not None,
        "prompt_length": len(chunks.get("prompt", "")),
        "has_workflow": workflow is not None,
        "workflow_length": len(chunks.get("workflow", "")),
    }
    return _generator_finding(where, "ComfyUI", details)


def _invokeai_finding(key: str, text: str) -> Finding:
    data = _json_object(text) or {}
    model = data.get("model") or data.get("model_weights")
    if isinstance(model, dict):
        model = model.get("name") or model.get("model_name")
    image = data.get("image") if isinstance(data.get("image"), dict) else {}
    prompt = (
        data.get("positive_prompt")
        or data.get("prompt")
        or image.get("prompt")
        or (text if key == "Dream" else None)
    )
    details = {"model": _clip(model), "has_prompt": bool(prompt), "chunk": key}
    return _generator_finding(_chunk_where(key), "InvokeAI", details)


def _novelai_finding(chunks: dict[str, str]) -> Finding:
    comment = _json_object(chunks.get("Comment", "")) or {}
    prompt = comment.get("prompt") or chunks.get("Description")
    details = {
        "model": _clip(chunks.get("Source")),
        "software": _clip(chunks.get("Software")),
        "has_prompt": bool(prompt),
        "steps": _clip(comment.get("steps")),
        "sampler": _clip(comment.get("sampler")),
    }
    where = _chunk_where("Comment" if "Comment" in chunks else "Source")
    return _generator_finding(where, "NovelAI", details)


def _json_object(text: str) -> dict | None:
    text = text.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
        return None
    return data if isinstance(data, dict) else None


# --- EXIF ------------------------------------------------------------------------------------------


def _exif_findings(image: Image.Image, notes: list[str]) -> list[Finding]:
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exif = image.getexif()
            sub = exif.get_ifd(_EXIF_IFD) if _EXIF_IFD in exif else {}
    except Exception as error:  # Pillow raises many types on malformed EXIF
        logger.debug("Malformed EXIF", exc_info=True)
        notes.append(f"The EXIF metadata is malformed and was not read ({_reason(error)}).")
        return []
    _note_damaged_exif(caught, notes)
    findings: list[Finding] = []
    comment = _user_comment(sub.get(_USER_COMMENT))
    if comment and len(comment) <= MAX_TEXT_CHARS:
        finding = _parameters_finding(comment, "EXIF UserComment")
        if finding:
            findings.append(finding)
    software = _exif_text(exif.get(ExifTags.Base.Software))
    tool = _ai_software(software) if software else None
    if tool:
        findings.append(_software_finding(software, tool, "EXIF", "Software"))
    make = _exif_text(exif.get(ExifTags.Base.Make))
    model = _exif_text(exif.get(ExifTags.Base.Model))
    if make or model:
        findings.append(_camera_finding(make, model, sub))
    return findings


def _note_damaged_exif(caught: list[warnings.WarningMessage], notes: list[str]) -> None:
    """Pillow warns, and reads what it can, when EXIF (or another TIFF-style directory) is damaged."""
    for warning in caught:
        if warning.category is UserWarning:  # not a DecompressionBombWarning, nor a deprecation
            notes.append(
                f"Part of the image metadata is damaged and was not read ({_reason(warning.message)})."
            )
            return


def _software_finding(value: str, tool: str, where: str, tag: str) -> Finding:
    says = f'The {where} {tag} tag names {tool}, an AI image generator ("{_clip(value, 80)}").'
    if where.startswith("PNG"):
        says = f'The {where} names {tool}, an AI image generator ("{_clip(value, 80)}").'
    return Finding(
        "software", says, "claim", where, True, {"tool": tool, "software": _clip(value), "field": tag}
    )


def _camera_finding(make: str | None, model: str | None, sub: Any) -> Finding:
    taken = _exif_text(sub.get(ExifTags.Base.DateTimeOriginal))
    lens = _exif_text(sub.get(ExifTags.Base.LensModel))
    camera = _camera_name(make, model)
    extra = ", ".join(
        bit for bit in (f"taken {taken}" if taken else "", f"lens {lens}" if lens else "") if bit
    )
    says = f"EXIF camera data: {camera}" + (f" ({extra})." if extra else ".")
    details = {"make": make, "model": model, "camera": camera, "datetime_original": taken, "lens_model": lens}
    return Finding("camera", says, "hint", "EXIF", False, details)


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
    return _clip(text) if text else None


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


# --- helpers -----------------------------------------------------------------------------------------


def _strongest(findings: Iterable[Finding]) -> Finding | None:
    best = None
    for finding in findings:
        if best is None or _rank(finding) < _rank(best):
            best = finding
    return best


def _rank(finding: Finding) -> int:
    return STRENGTHS.index(finding.strength) if finding.strength in STRENGTHS else len(STRENGTHS)


def _summary_sentence(finding: Finding) -> str:
    details = finding.details
    phrase = details.get("states")
    if finding.kind == "c2pa":
        if finding.strength == "claim":
            what = f"state it was {phrase}" if phrase else "do not say how it was made"
            return f"The file's Content Credentials {what}, but their signature does not validate."
        trust = (
            "a trusted signer"
            if finding.strength == "verified"
            else "valid signature; the signer is on no trust list"
        )
        what = f"state it was {phrase}" if phrase else "do not say how it was made"
        return f"The file's Content Credentials, signed by {details.get('signer')} ({trust}), {what}."
    if finding.kind == "digital_source_type":
        return f"The file's XMP metadata states it was {phrase}; unsigned metadata is easy to add or remove."
    if finding.kind == "generator_metadata":
        model = f" (model {details['model']})" if details.get("model") else ""
        return (
            f"The file carries generation settings from {_tool_name(details.get('tool'))}{model}, as AI front-ends write "
            "them; unsigned metadata is easy to add or remove."
        )
    if finding.kind == "software":
        return f"The file's metadata names {details.get('tool')}, an AI image generator, as its software; that is easy to edit."
    if finding.kind == "camera":
        return (
            f"The file carries camera data ({details.get('camera')}), a weak sign of a camera original: "
            "it is easy to edit."
        )
    return finding.says


def _clip(value: Any, limit: int = MAX_DETAIL_CHARS) -> Any:
    """Strings cut to ``limit`` characters; numbers, booleans and None as they are; others as text."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reason(error: BaseException) -> str:
    return _clip(error_reason(error), 200)
