"""Words and pictures for verdicts: captions, a one-line summary, table rows, boxes drawn on the image."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from .pipeline import FaceVerdict

COLOURS = {"fake": (220, 38, 38), "real": (22, 163, 74)}
DISPLAY_MAX_SIDE = 1024


def caption(verdict: FaceVerdict) -> str:
    """The label and the model's confidence in it, e.g. "fake 93%" or "real 88%"."""
    return f"{verdict.label} {confidence(verdict):.0%}"


def confidence(verdict: FaceVerdict) -> float:
    """The model's confidence in the verdict's own label."""
    return verdict.fake_probability if verdict.label == "fake" else 1.0 - verdict.fake_probability


def summary(verdicts: Sequence[FaceVerdict]) -> str:
    """One plain sentence, e.g. "2 faces: 1 looks generated (93%), 1 looks real (88%)"."""
    if not verdicts:
        return "No face found."
    parts = []
    for label, words in (
        ("fake", ("looks generated", "look generated")),
        ("real", ("looks real", "look real")),
    ):
        group = [v for v in verdicts if v.label == label]
        if group:
            scores = ", ".join(f"{confidence(v):.0%}" for v in group)
            parts.append(f"{len(group)} {words[len(group) > 1]} ({scores})")
    faces = f"{len(verdicts)} face{'s' if len(verdicts) > 1 else ''}"
    return f"{faces}: {', '.join(parts)}."


def table_rows(verdicts: Sequence[FaceVerdict]) -> list[list]:
    """Rows of face number, box, detection score, fake probability and label, for a table."""
    return [
        [
            i,
            ", ".join(f"{v:.0f}" for v in face.box),
            round(face.detection_score, 3),
            round(face.fake_probability, 3),
            face.label,
        ]
        for i, face in enumerate(verdicts, start=1)
    ]


def for_display(
    image: Image.Image, verdicts: Sequence[FaceVerdict], max_side: int = DISPLAY_MAX_SIDE
) -> tuple[Image.Image, list[tuple[tuple[int, int, int, int], str]]]:
    """A copy of the image no larger than ``max_side`` and each face's box on it with its caption.

    For showing in a page: a screen needs no more pixels, and every box becomes a mask image there.
    """
    scale = min(1.0, max_side / max(image.size))
    if scale < 1.0:
        image = image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS
        )
    boxes = [(tuple(round(v * scale) for v in verdict.box), caption(verdict)) for verdict in verdicts]
    return image, boxes


def draw_verdicts(image: Image.Image, verdicts: Sequence[FaceVerdict]) -> Image.Image:
    """A copy of the RGB ``image`` with a coloured box and caption on every face."""
    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    line = max(2, round(max(out.size) / 300))
    font = ImageFont.load_default(size=max(14, round(max(out.size) / 32)))
    for verdict in verdicts:
        colour = COLOURS.get(verdict.label, (37, 99, 235))
        x1, y1, x2, y2 = verdict.box
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=line)
        text = caption(verdict)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        pad = line
        label_h = bottom - top + 2 * pad
        # Above the box where there is room, else just inside its top edge.
        y = y1 - label_h if y1 - label_h >= 0 else y1
        x = min(x1, max(0, out.width - (right - left) - 2 * pad))
        draw.rectangle((x, y, x + right - left + 2 * pad, y + label_h), fill=colour)
        draw.text((x + pad - left, y + pad - top), text, fill=(255, 255, 255), font=font)
    return out
