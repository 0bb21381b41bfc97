"""Clips made from still photos with PyAV, for the video tests, bench_video.py and the still-vs-clip
agreement: faces pasted on a plain wall, each moving by a fixed step a frame."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image

WALL = (90, 110, 130)


def write_clip(path: Path, scenes, size=(960, 540), **options) -> Path:
    """A clip of ``scenes``: (faces, frames) each, a face being (image, x, y, dx pixels a frame) on a
    plain wall; ``options`` as :func:`write_frames` takes them."""

    def frames():
        for faces, count in scenes:
            for i in range(count):
                canvas = Image.new("RGB", size, WALL)
                for image, x, y, dx in faces:
                    canvas.paste(image, (x + round(i * dx), y))
                yield canvas

    return write_frames(path, frames(), size=size, **options)


def write_frames(
    path: Path,
    frames: Iterable[Image.Image],
    rate=10,
    size=(960, 540),
    codec="libx264",
    rotation=None,
    times=None,
    options=None,
    bit_rate: int | None = None,
    metadata: dict[str, str] | None = None,
) -> Path:
    """``frames`` (RGB images of ``size``) as a video at ``rate`` frames a second. ``times`` gives each
    frame's own timestamp (seconds) for a variable frame rate; ``rotation`` a display matrix turning it
    counter-clockwise; ``options`` go to the muxer; ``bit_rate`` (bits a second) to the encoder;
    ``metadata`` are the container's tags (an MP4 or MOV keeps any key with the muxer option
    ``movflags=use_metadata_tags``, as phones write them)."""
    out = av.open(str(path), "w", options=options)
    out.metadata.update(metadata or {})
    stream = out.add_stream(codec, rate=rate)
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p" if codec != "ffv1" else "bgr0"
    if bit_rate is not None:
        stream.bit_rate = bit_rate
    if rotation is not None:
        stream.set_display_rotation(rotation)
    if times is not None:
        stream.codec_context.time_base = Fraction(1, 1000)
    for index, image in enumerate(frames):
        frame = av.VideoFrame.from_image(image)
        if times is not None:
            frame.pts, frame.time_base = round(times[index] * 1000), Fraction(1, 1000)
        out.mux(stream.encode(frame))
    out.mux(stream.encode())
    out.close()
    return path


def pan_and_zoom(photo: Image.Image, frames: int, zoom: float = 0.85) -> Iterator[Image.Image]:
    """A still photo as a camera drifting over it: a window shrinking from the whole photo to ``zoom``
    of it while it slides to the right, each frame scaled back to the photo's size (made even)."""
    width, height = photo.width // 2 * 2, photo.height // 2 * 2
    for i in range(frames):
        t = i / max(frames - 1, 1)
        side = 1.0 - (1.0 - zoom) * t
        w, h = photo.width * side, photo.height * side
        left, top = (photo.width - w) * t, (photo.height - h) / 2
        yield photo.resize((width, height), Image.Resampling.BICUBIC, box=(left, top, left + w, top + h))
