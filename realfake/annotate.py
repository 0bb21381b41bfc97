"""Draw each face's box and a "fake 93%" caption on a copy of the image."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from .pipeline import FaceVerdict

COLOURS = {"fake": (220, 38, 38), "real": (22, 163, 74)}


def caption(verdict: FaceVerdict) -> str:
    """The label and the model's confidence in it, e.g. "fake 93%" or "real 88%"."""
    p = verdict.fake_probability if verdict.label == "fake" else 1.0 - verdict.fake_probability
    return f"{verdict.label} {p:.0%}"


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
