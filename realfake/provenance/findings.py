"""A statement a file makes about its origin (:class:`Finding`), and all of them (:class:`Provenance`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..images import error_reason

KINDS = ("c2pa", "digital_source_type", "generator_metadata", "software", "camera")
STRENGTHS = ("verified", "signed", "claim", "hint")  # strongest first
MAX_DETAIL_CHARS = 500
MAX_TEXT_CHARS = 1024 * 1024  # metadata strings longer than this (a PNG text chunk, XMP) are not parsed
MAX_LIST_ITEMS = 10
NOTHING_STATED = "No provenance data: most sites strip it, so its absence says nothing."


@dataclass(frozen=True)
class Finding:
    """One statement the file makes about its origin.

    Attributes:
        kind: one of :data:`KINDS`.
        says: one plain sentence for a person.
        strength: one of :data:`STRENGTHS` (see :mod:`realfake.provenance` for what each is worth).
        where: where in the file it was found ("C2PA manifest", "XMP", "EXIF", "PNG text chunk 'x'",
            "MP4 container").
        ai: True when it states AI generation or editing, False when it states a camera or capture
            origin, None when it states neither.
        details: machine-readable fields (JSON-serialisable; long strings are cut, prompts are never
            included, only whether they are there and their length).
        summary: the sentence that sums up the whole file when this finding is its strongest (what
            it says, and what it is worth); ``says`` where empty.
    """

    kind: str
    says: str
    strength: str
    where: str
    ai: bool | None = None
    details: dict = field(default_factory=dict)
    summary: str = field(default="", compare=False, repr=False)

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
        return strongest(finding for finding in self.findings if finding.ai is True)

    def summary(self) -> str:
        """One sentence: the strongest AI statement, else a capture statement, else the strongest."""
        finding = (
            self.strongest_ai
            or strongest(f for f in self.findings if f.ai is False)
            or strongest(self.findings)
        )
        if finding is None:
            return NOTHING_STATED
        return finding.summary or finding.says

    def to_dict(self) -> dict:
        """Findings, notes, ``declares_ai`` and the summary as plain JSON-serialisable values."""
        return {
            "findings": [finding.to_dict() for finding in self.findings],
            "notes": list(self.notes),
            "declares_ai": self.declares_ai,
            "summary": self.summary(),
        }


def strongest(findings: Iterable[Finding]) -> Finding | None:
    """The strongest of ``findings`` (the first of equals), or None."""
    best = None
    for finding in findings:
        if best is None or _rank(finding) < _rank(best):
            best = finding
    return best


def _rank(finding: Finding) -> int:
    return STRENGTHS.index(finding.strength) if finding.strength in STRENGTHS else len(STRENGTHS)


def clip(value: Any, limit: int = MAX_DETAIL_CHARS) -> Any:
    """Strings cut to ``limit`` characters; numbers, booleans and None as they are; others as text."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def reason(error: BaseException) -> str:
    """An exception as the short reason a note gives in brackets."""
    return clip(error_reason(error), 200)
