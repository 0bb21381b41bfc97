"""Open any video safely: sampled, upright RGB frames at a rate, with the caps checked before decoding.

``read_video`` decodes MP4, MOV, WebM, MKV and AVI through PyAV (the ``av`` package, whose wheels
ship FFmpeg) and animated GIF and WebP through Pillow. It samples frames by their timestamps, so a
variable-frame-rate phone clip is sampled evenly in time, applies the container's rotation (a phone
held upright records sideways frames and a display matrix), and checks the file's size, declared
duration, frame size and the number of frames it would sample before it decodes a frame. Every
refusal is a :class:`~realfake.errors.VideoError` with one sentence a person can act on; a file that
breaks part way yields the frames before the break and says so in :attr:`Video.notes`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageSequence, UnidentifiedImageError

from .errors import VideoError
from .images import MAX_FILE_BYTES as MAX_IMAGE_BYTES

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi")
ANIMATION_SUFFIXES = (".gif", ".webp")
DEFAULT_FPS = 2.0
CUT_SHORT_S = 1.0
"""A video whose last frame comes this much before the end its header declares is said to be cut short."""


@dataclass(frozen=True)
class VideoLimits:
    """What one video may cost; the defaults are what a free Space can afford."""

    max_duration_s: float = 600.0
    max_sampled_frames: int = 600
    max_frame_pixels: int = 4096 * 2160
    max_file_bytes: int = 2 * 1024**3


@dataclass(frozen=True)
class Frame:
    """One sampled frame: its number among the sampled frames, its time and the upright image."""

    index: int
    time: float
    image: Image.Image = field(repr=False)


@dataclass
class Video:
    """An opened video: what its header declares, and its sampled frames (read once, lazily)."""

    path: str
    width: int
    height: int
    duration: float | None
    """Seconds, as the container declares it (None where it does not)."""
    codec: str
    rotation: int = 0
    """Degrees the frames are turned counter-clockwise to be shown upright."""
    notes: list[str] = field(default_factory=list)
    """What went wrong part way (a damaged tail); filled in while :attr:`frames` is read."""
    frames: Iterator[Frame] = field(default=iter(()), repr=False)


def is_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a video by its suffix, or a GIF or WebP with more than one frame."""
    suffix = Path(path).suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return True
    if suffix not in ANIMATION_SUFFIXES:
        return False
    try:
        with Image.open(path) as image:
            return getattr(image, "n_frames", 1) > 1
    except (OSError, UnidentifiedImageError, ValueError):
        return False  # the photo path reports what is wrong with it


def read_video(
    path: str | os.PathLike, fps: float | None = DEFAULT_FPS, limits: VideoLimits | None = None
) -> Video:
    """Open the video at ``path`` and check it against ``limits``; its frames are sampled at ``fps``,
    or every frame is read with ``fps=None`` (to draw on, not to judge: the sampled-frames cap is not
    applied then).

    Raises:
        VideoError: the file is missing, empty, not a video, has no video stream, or exceeds a limit.
    """
    limits = limits or VideoLimits()
    if fps is not None and not fps > 0:
        raise VideoError(f"The sampling rate must be above 0 frames a second, not {fps}.")
    path = Path(path)
    name = path.name
    try:
        size = path.stat().st_size
    except OSError:
        raise VideoError(f"{name}: the file does not exist or cannot be read.") from None
    if size == 0:
        raise VideoError(f"{name} is empty (0 bytes).")
    if size > limits.max_file_bytes:
        raise VideoError(
            f"{name} is {size / 1024**3:.1f} GiB; realfake reads videos up to "
            f"{limits.max_file_bytes / 1024**3:.0f} GiB."
        )
    if path.suffix.lower() in ANIMATION_SUFFIXES:
        return _read_animation(path, fps, limits)
    return _read_container(path, fps, limits)


def _check(
    name: str, width: int, height: int, duration: float | None, fps: float | None, limits: VideoLimits
):
    if width <= 0 or height <= 0:
        raise VideoError(f"{name} declares no frame size; it may be damaged.")
    if width * height > limits.max_frame_pixels:
        raise VideoError(
            f"{name} has {width}x{height} frames; realfake reads frames up to "
            f"{limits.max_frame_pixels / 1e6:.1f} megapixels."
        )
    if duration is not None and duration > limits.max_duration_s:
        raise VideoError(
            f"{name} is {_clock(duration)} long; realfake reads videos up to {_clock(limits.max_duration_s)}."
        )
    if fps is not None and duration is not None and sampled_count(duration, fps) > limits.max_sampled_frames:
        raise VideoError(
            f"{name} would give {sampled_count(duration, fps)} frames at {fps:g} a second, more than "
            f"the {limits.max_sampled_frames} realfake reads; sample fewer frames a second (--fps)."
        )


def _read_container(path: Path, fps: float | None, limits: VideoLimits) -> Video:
    import av

    name = path.name
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError, ValueError):
        raise VideoError(
            f"{name} cannot be read as a video: it is damaged, cut short or not a video."
        ) from None
    streams = container.streams.video
    if not streams:
        container.close()
        raise VideoError(f"{name} has no video stream.")
    stream = streams[0]
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    context = stream.codec_context
    return _opened(
        path,
        container,
        (context.width, context.height),
        duration,
        context.name or "unknown",
        fps,
        limits,
        lambda video: _container_frames(container, stream, video, fps, limits),
    )


def _opened(
    path: Path, source, size, duration, codec: str, fps: float | None, limits: VideoLimits, frames
) -> Video:
    """The :class:`Video` of an open ``source`` (a container or an image, closed if refused) once what
    it declares passes :func:`_check`; ``frames(video)`` gives its frames."""
    try:
        _check(path.name, *size, duration, fps, limits)
    except VideoError:
        source.close()
        raise
    video = Video(str(path), *size, duration, codec)
    video.frames = frames(video)
    return video


def _container_frames(
    container, stream, video: Video, fps: float | None, limits: VideoLimits
) -> Iterator[Frame]:
    import av

    name, sampled, next_time, last = Path(video.path).name, 0, 0.0, None
    stream.thread_type = "AUTO"
    try:
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            last = float(frame.time)
            if frame.time > limits.max_duration_s:
                video.notes.append(f"Only the first {_clock(limits.max_duration_s)} were read.")
                return
            if frame.time + 1e-6 < next_time:
                continue
            if frame.width * frame.height > limits.max_frame_pixels:
                video.notes.append(f"Frames from {frame.time:.1f} s on are larger than realfake reads.")
                return
            if fps is not None and sampled >= limits.max_sampled_frames:
                video.notes.append(
                    f"Only the first {limits.max_sampled_frames} sampled frames were read; "
                    "sample fewer frames a second (--fps) to cover it all."
                )
                return
            image = frame.to_image()
            if frame.rotation:
                video.rotation = frame.rotation
                image = image.rotate(frame.rotation, expand=True)
            yield Frame(sampled, float(frame.time), image)
            sampled += 1
            next_time = _next_sample(frame.time, fps)
    except (av.FFmpegError, EOFError) as error:
        logger.debug("Decoding %s stopped", video.path, exc_info=True)
        if sampled == 0:
            raise VideoError(
                f"{name} could not be decoded ({type(error).__name__}): it may be damaged."
            ) from None
        video.notes.append(f"The video is damaged after {_clock(last or 0.0)}; the frames before were read.")
        return
    finally:
        container.close()
    if sampled == 0:
        raise VideoError(f"{name} has no frame realfake could decode: it may be damaged or cut short.")
    if video.duration is not None and last is not None and video.duration - last > CUT_SHORT_S:
        # a demuxer takes a cut-off file's end for the end of the video, so compare with the header
        video.notes.append(
            f"The video stops at {_clock(last)} of the {_clock(video.duration)} it declares: "
            "it may be cut short; the frames before were read."
        )


def _read_animation(path: Path, fps: float | None, limits: VideoLimits) -> Video:
    name = path.name
    if path.stat().st_size > MAX_IMAGE_BYTES:
        raise VideoError(f"{name} is larger than the {MAX_IMAGE_BYTES // 1024**2} MB realfake reads.")
    try:
        image = Image.open(path)
    except (OSError, UnidentifiedImageError, ValueError):
        raise VideoError(f"{name} is not an image or video realfake can read.") from None
    frames = getattr(image, "n_frames", 1)
    # Pillow reads each frame's duration as it seeks; the first frame's stands for all in this check
    duration = frames * _frame_seconds(image.info)
    return _opened(
        path,
        image,
        image.size,
        duration,
        image.format or "animation",
        fps,
        limits,
        lambda video: _animation_frames(image, video, fps, limits),
    )


def _animation_frames(
    image: Image.Image, video: Video, fps: float | None, limits: VideoLimits
) -> Iterator[Frame]:
    sampled, time, next_time = 0, 0.0, 0.0
    try:
        for frame in ImageSequence.Iterator(image):
            shown = time
            time += _frame_seconds(frame.info)
            if shown + 1e-6 < next_time:
                continue
            if fps is not None and sampled >= limits.max_sampled_frames:
                video.notes.append(f"Only the first {limits.max_sampled_frames} sampled frames were read.")
                return
            yield Frame(sampled, shown, frame.convert("RGB"))
            sampled += 1
            next_time = _next_sample(shown, fps)
    except (OSError, ValueError, EOFError):
        if sampled == 0:
            raise VideoError(f"{Path(video.path).name} could not be decoded: it may be damaged.") from None
        video.notes.append(f"The animation is damaged after {_clock(shown)}; the frames before were read.")
    finally:
        image.close()


def sampled_count(duration: float, fps: float) -> int:
    """How many frames sampling a video of ``duration`` seconds at ``fps`` gives (at least 1)."""
    return max(1, math.ceil(duration * fps - 1e-6))


def _next_sample(time: float, fps: float | None) -> float:
    """When the next frame to sample is due, after one sampled at ``time``: the next 1/fps mark (any
    later frame when every frame is read)."""
    if fps is None:
        return time
    return (math.floor(time * fps + 1e-6) + 1) / fps


def _frame_seconds(info: dict) -> float:
    """How long an animation frame is shown: its duration, or 0.1 s under 20 ms, as browsers do."""
    milliseconds = info.get("duration") or 0
    return milliseconds / 1000 if milliseconds >= 20 else 0.1


def _clock(seconds: float) -> str:
    """``75.0`` -> ``1 min 15 s``; ``600`` -> ``10 min``; ``12.5`` -> ``12.5 s``."""
    minutes, rest = divmod(round(seconds, 1), 60)
    if not minutes:
        return f"{rest:g} s"
    return f"{minutes:.0f} min" + (f" {rest:.0f} s" if round(rest) else "")
