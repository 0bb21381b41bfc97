"""Speed of realfake's predict_video on 30 s 720p clips, with one and with four people on screen.

Each clip is made from the test fixtures' face photos (benchmarks/clips.py: faces on a plain wall,
moving a little every frame, 30 frames a second, H.264), once, outside the timing. It is then judged
as a user's upload is, through ``Detector.predict_video`` at --fps frames a second: decoding, face
detection and classification of every sampled frame, the tracks and their verdicts. Printed: the
median wall time of --repeats runs, sampled frames a second, milliseconds a sampled frame and a
face, and the tracks found (which should be one per person); then the median time ``--annotate``
takes to draw the boxes on every frame of the clip and encode it again (H.264, ``veryfast``).

    python benchmarks/bench_video.py [--model M] [--fps 2] [--repeats 3] [--seconds 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.clips import write_clip  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures"
FACES = ["ffhq-1024-0.jpg", "tpdne-2025-fake_3.jpg", "ffhq-1024-3.jpg", "tpdne-2022-0002.jpg"]
SIZE, RATE = (1280, 720), 30


def make_clips(folder: Path, seconds: int) -> dict[str, Path]:
    """A 720p clip with one person (a 300 px face drifting right) and one with four (200 px each)."""
    frames = seconds * RATE
    one = Image.open(FIXTURES / FACES[0]).convert("RGB").resize((300, 300))
    four = [Image.open(FIXTURES / name).convert("RGB").resize((200, 200)) for name in FACES]
    step = 400 / frames  # pixels a frame: 400 px across the clip
    return {
        "1 person": write_clip(folder / "one.mp4", [([(one, 200, 200, step)], frames)], rate=RATE, size=SIZE),
        "4 people": write_clip(
            folder / "four.mp4",
            [([(face, 40 + i * 310, 260, step / 4) for i, face in enumerate(four)], frames)],
            rate=RATE,
            size=SIZE,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="Hub id or folder (default: the bundled model)")
    parser.add_argument("--fps", type=float, default=2.0, help="frames sampled a second (default: 2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=30, help="length of each clip")
    args = parser.parse_args()

    import torch

    import realfake

    detector = realfake.load_detector(args.model, device="cpu")
    with tempfile.TemporaryDirectory() as scratch:
        clips = make_clips(Path(scratch), args.seconds)
        detector.predict_video(clips["1 person"], fps=args.fps)  # warm-up: first-call costs
        print(
            f"realfake predict_video, {args.seconds} s 1280x720 H.264 at {RATE} fps, sampled at {args.fps:g} fps, "
            f"{torch.get_num_threads()} threads, median of {args.repeats}"
        )
        drawn = {}
        print("| clip | wall time | sampled frames | frames/s | ms a frame | ms a face | tracks |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name, clip in clips.items():
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                result = detector.predict_video(clip, fps=args.fps)
                times.append(time.perf_counter() - start)
            wall = statistics.median(times)
            frames = result.sampled_frames
            faces = sum(len(track.frames) for track in result.tracks)
            print(
                f"| {name} | {wall:.1f} s | {frames} | {frames / wall:.1f} | {1000 * wall / frames:.0f} | "
                f"{1000 * wall / max(faces, 1):.0f} | {len(result.tracks)} |"
            )
            drawn[name] = _drawing_time(clip, result, Path(scratch) / "annotated.mp4", args.repeats)
        print(f"\n--annotate, drawing every frame ({args.seconds * RATE}) and encoding the clip again:")
        for name, wall in drawn.items():
            print(f"- {name}: {wall:.1f} s ({1000 * wall / (args.seconds * RATE):.0f} ms a frame)")


def _drawing_time(clip: Path, result, out_path: Path, repeats: int) -> float:
    from realfake.annotate import annotated_video

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        annotated_video(clip, result.tracks, out_path, result.fps)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    main()
