"""Clips made from still photos with PyAV, for the video tests, bench_video.py and the still-vs-clip
agreement: faces pasted on a plain wall, each moving by a fixed step a frame."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
from PIL import Image

WALL = (90, 110, 130)


def write_clip(
    path: Path,
    scenes,
    rate=10,
    size=(960, 540),
    codec="libx264",
    rotation=None,
    times=None,
    options=None,
    bit_rate: int | None = None,
) -> Path:
    """A clip of ``scenes``: (faces, frames) each, a face being (image, x, y, dx pixels a frame) on a
    plain wall. ``times`` gives each frame's own timestamp (seconds) for a variable frame rate;
    ``options`` go to the muxer; ``bit_rate`` (bits a second) to the encoder."""
    out = av.open(str(path), "w", options=options)
    stream = out.add_stream(codec, rate=rate)
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p" if codec != "ffv1" else "bgr0"
    if bit_rate is not None:
        stream.bit_rate = bit_rate
    if rotation is not None:
        stream.set_display_rotation(rotation)
    if times is not None:
        stream.codec_context.time_base = Fraction(1, 1000)
    index = 0
    for faces, frames in scenes:
        for i in range(frames):
            canvas = Image.new("RGB", size, WALL)
            for image, x, y, dx in faces:
                canvas.paste(image, (x + i * dx, y))
            frame = av.VideoFrame.from_image(canvas)
            if times is not None:
                frame.pts, frame.time_base = round(times[index] * 1000), Fraction(1, 1000)
            out.mux(stream.encode(frame))
            index += 1
    out.mux(stream.encode())
    out.close()
    return path
