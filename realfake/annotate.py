"""Words and pictures for verdicts: captions, a one-line summary, table rows, boxes drawn on the image."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .pipeline import FaceVerdict

# The verdicts' colours: red, amber, green.
COLOURS = {"fake": (220, 38, 38), "uncertain": (217, 119, 6), "real": (22, 163, 74)}
DISPLAY_MAX_SIDE = 1024


def caption(verdict: FaceVerdict) -> str:
    """The verdict and the probability behind it: "fake 93%", "real 88%" (the chance it is real) or
    "uncertain 41% fake"."""
    if verdict.verdict == "uncertain":
        return f"uncertain {percent(verdict.fake_probability)} fake"
    return f"{verdict.verdict} {percent(confidence(verdict))}"


def percent(probability: float) -> str:
    """A probability as a whole percentage, never claiming certainty: "93%", ">99%", "<1%"."""
    if probability >= 0.995:
        return ">99%"
    if probability < 0.005:
        return "<1%"
    return f"{min(99, max(1, round(probability * 100)))}%"


def confidence(verdict: FaceVerdict) -> float:
    """The probability of the verdict's side: P(fake) for "fake" and "uncertain", else P(real)."""
    return 1.0 - verdict.fake_probability if verdict.verdict == "real" else verdict.fake_probability


def colour_hex(verdict: str) -> str:
    """A verdict's colour as a CSS hex code."""
    return "#{:02x}{:02x}{:02x}".format(*COLOURS[verdict])


def all_captions() -> dict[str, str]:
    """Every caption :func:`caption` can write, with its verdict's colour (for a fixed colour map)."""
    shown = ["<1%", *(f"{value}%" for value in range(1, 100)), ">99%"]
    captions = {}
    for text in shown:
        captions[f"fake {text}"] = colour_hex("fake")
        captions[f"real {text}"] = colour_hex("real")
        captions[f"uncertain {text} fake"] = colour_hex("uncertain")
    return captions


def summary(verdicts: Sequence[FaceVerdict], nouns: tuple[str, str] = ("face", "faces")) -> str:
    """One plain sentence in verdicts, e.g.
    "3 faces: 1 looks generated (97%), 1 looks real (88%), 1 is uncertain (55% fake)"; with
    ``nouns=("person", "people")`` it counts a video's tracks."""
    if not verdicts:
        return f"No {nouns[0]} found."
    parts = []
    for name, words in (
        ("fake", ("looks generated", "look generated")),
        ("real", ("looks real", "look real")),
        ("uncertain", ("is uncertain", "are uncertain")),
    ):
        group = [v for v in verdicts if v.verdict == name]
        if group:
            scores = ", ".join(
                percent(confidence(v)) + (" fake" if name == "uncertain" else "") for v in group
            )
            parts.append(f"{len(group)} {words[len(group) > 1]} ({scores})")
    return f"{len(verdicts)} {nouns[len(verdicts) > 1]}: {', '.join(parts)}."


def table_rows(verdicts: Sequence[FaceVerdict]) -> list[list]:
    """Rows of face number, box, detection score, fake probability, verdict and label, for a table."""
    return [
        [
            i,
            ", ".join(f"{v:.0f}" for v in face.box),
            round(face.detection_score, 3),
            round(face.fake_probability, 3),
            face.verdict,
            face.label,
        ]
        for i, face in enumerate(verdicts, start=1)
    ]


def for_display(
    image: Image.Image, verdicts: Sequence[FaceVerdict], max_side: int = DISPLAY_MAX_SIDE
) -> tuple[Image.Image, list[tuple[np.ndarray, str]]]:
    """A copy of the image no larger than ``max_side``, and for each face an outline of its box
    (a float32 mask of the copy's size: 1 on the outline, 0 elsewhere, so the face stays visible)
    with its caption.

    For showing in a page: a screen needs no more pixels, and every mask becomes an image there.
    """
    scale = min(1.0, max_side / max(image.size))
    if scale < 1.0:
        image = image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS
        )
    line = max(2, round(max(image.size) / 250))
    outlines = []
    for verdict in verdicts:
        x1, y1, x2, y2 = (round(v * scale) for v in verdict.box)
        mask = np.zeros((image.height, image.width), dtype=np.float32)
        mask[max(0, y1) : y2, max(0, x1) : x2] = 1.0
        mask[max(0, y1 + line) : y2 - line, max(0, x1 + line) : x2 - line] = 0.0
        outlines.append((mask, caption(verdict)))
    return image, outlines


def draw_verdicts(
    image: Image.Image, verdicts: Sequence[FaceVerdict], names: Sequence[str] | None = None
) -> Image.Image:
    """A copy of the RGB ``image`` with a coloured box and caption on every face; ``names`` (one
    per face, e.g. "person 2") go before the captions."""
    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    line = max(2, round(max(out.size) / 300))
    font = ImageFont.load_default(size=max(14, round(max(out.size) / 32)))
    for number, verdict in enumerate(verdicts):
        colour = COLOURS.get(verdict.verdict, (37, 99, 235))
        x1, y1, x2, y2 = verdict.box
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=line)
        text = caption(verdict) if names is None else f"{names[number]}: {caption(verdict)}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        pad = line
        label_h = bottom - top + 2 * pad
        # Above the box where there is room, else just inside its top edge.
        y = y1 - label_h if y1 - label_h >= 0 else y1
        x = min(x1, max(0, out.width - (right - left) - 2 * pad))
        draw.rectangle((x, y, x + right - left + 2 * pad, y + label_h), fill=colour)
        draw.text((x + pad - left, y + pad - top), text, fill=(255, 255, 255), font=font)
    return out


def contact_sheet(tracks: Sequence, side: int = 224) -> Image.Image:
    """A video's people at a glance: a row per track, its caption and span above its key frames' face
    crops (see :class:`~realfake.pipeline.TrackVerdict`), each with its time and P(fake)."""
    columns = max([len(track.crops) for track in tracks] + [1])
    font = ImageFont.load_default(size=16)
    head, foot, gap = 30, 24, 8
    row = head + side + foot + gap
    sheet = Image.new("RGB", (gap + columns * (side + gap), gap + max(len(tracks), 1) * row), "white")
    draw = ImageDraw.Draw(sheet)
    if not tracks:
        draw.text((gap, gap), "No face found.", fill=(0, 0, 0), font=font)
    for number, track in enumerate(tracks):
        top = gap + number * row
        colour = COLOURS.get(track.verdict, (37, 99, 235))
        text = f"person {track.id}: {caption(track)}, {track.start:.1f}-{track.end:.1f} s, {len(track.frames)} frames"
        draw.text((gap, top + 4), text, fill=colour, font=font)
        for column, (index, crop) in enumerate(zip(track.key_frames, track.crops)):
            left = gap + column * (side + gap)
            sheet.paste(crop.convert("RGB").resize((side, side)), (left, top + head))
            draw.rectangle(
                (left, top + head, left + side - 1, top + head + side - 1), outline=colour, width=3
            )
            frame = track.frames[index]
            note = f"{frame.time:.1f} s: P(fake) {frame.fake_probability:.2f}"
            draw.text((left, top + head + side + 3), note, fill=(60, 60, 60), font=font)
    return sheet


def timeline(tracks: Sequence, thresholds, duration: float | None = None):
    """A matplotlib figure of each track's P(fake) over time, on the verdict bands of ``thresholds``
    (a :class:`~realfake.calibration.VerdictThresholds`): red above its fake threshold, green below
    its real one, amber between."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3.2), layout="constrained")
    axes = figure.add_subplot()
    for low, high, name in (
        (thresholds.fake_at_least, 1.0, "fake"),
        (thresholds.real_at_most, thresholds.fake_at_least, "uncertain"),
        (0.0, thresholds.real_at_most, "real"),
    ):
        axes.axhspan(low, high, color=colour_hex(name), alpha=0.12, linewidth=0)
    for track in tracks:
        times = [frame.time for frame in track.frames]
        scores = [frame.fake_probability for frame in track.frames]
        axes.plot(times, scores, marker="o", markersize=3, label=f"person {track.id}: {caption(track)}")
    axes.set(xlabel="time (s)", ylabel="P(fake)", ylim=(-0.02, 1.02))
    if duration:
        axes.set_xlim(0, duration)
    if tracks:
        axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small", frameon=False)
    return figure


def annotated_video(
    path: str | Path,
    tracks: Sequence,
    out_path: Path,
    fps: float,
    progress: Callable[[float, float | None], None] | None = None,
) -> Path:
    """The video at ``path`` again, every frame, with each person's box and verdict drawn where the
    tracker followed them (``tracks`` from :meth:`~realfake.pipeline.Detector.predict_video` sampled
    at ``fps``), written to ``out_path`` as H.264 MP4 without sound. Between two sampled frames a box
    moves in a straight line; a person is drawn from half a sampling interval before their first
    sighting to half one after their last, and not through the frames where the tracker lost them.
    ``progress`` hears (seconds drawn, seconds in all or None).
    """
    import av

    from .video import read_video

    video = read_video(path, fps=None)
    pad = 0.5 / fps
    times = [[frame.time for frame in track.frames] for track in tracks]
    out = av.open(str(out_path), "w")
    try:
        stream = None
        for frame in video.frames:
            image = frame.image
            if stream is None:
                stream = out.add_stream("libx264", rate=30, options={"crf": "23", "preset": "veryfast"})
                stream.width, stream.height = image.width // 2 * 2, image.height // 2 * 2  # H.264: even sides
                stream.pix_fmt = "yuv420p"
                stream.codec_context.time_base = Fraction(1, 1000)
            shown = [
                (track, _box_at(track, seen, frame.time, pad, 1.5 / fps))
                for track, seen in zip(tracks, times)
            ]
            shown = [(track, box) for track, box in shown if box is not None]
            drawn = draw_verdicts(
                image,
                [_Drawn(box, track.verdict, track.fake_probability) for track, box in shown],
                [f"person {track.id}" for track, _ in shown],
            )
            picture = av.VideoFrame.from_image(drawn.crop((0, 0, stream.width, stream.height)))
            picture.pts, picture.time_base = round(frame.time * 1000), Fraction(1, 1000)
            out.mux(stream.encode(picture))
            if progress is not None:
                progress(frame.time, video.duration)
        if stream is not None:
            out.mux(stream.encode())
    finally:
        out.close()
    return out_path


class _Drawn(NamedTuple):
    """What draw_verdicts reads of a face: a person's box in one frame, and their verdict."""

    box: tuple[float, float, float, float]
    verdict: str
    fake_probability: float


def _box_at(track, times: list[float], time: float, pad: float, max_step: float):
    """Where ``track``'s face is at ``time``: its sampled boxes (at ``times``), joined by straight lines
    across steps of at most ``max_step`` seconds; None outside its span (widened by ``pad``) and
    across longer gaps."""
    i = bisect.bisect_right(times, time)
    before = track.frames[i - 1] if i > 0 else None
    after = track.frames[i] if i < len(times) else None
    if before is not None and after is not None and after.time - before.time <= max_step:
        weight = (time - before.time) / (after.time - before.time)
        return tuple(a + (b - a) * weight for a, b in zip(before.box, after.box))
    near = [frame for frame in (before, after) if frame is not None and abs(frame.time - time) <= pad]
    return near[0].box if near else None
