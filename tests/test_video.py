"""Videos through the real pipeline: clips written here with PyAV from the fixture photos (a real and a
generated face panning, a cut to another person, a phone clip stored sideways, a variable frame rate,
an animated GIF), tracked and judged by the bundled model; and every kind of broken video refused in
one sentence."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import FAKE_FACES, NO_FACE, REAL_FACES, run_cli
from PIL import Image

from benchmarks.clips import write_clip
from realfake.errors import VideoError
from realfake.video import VideoLimits, is_video, read_video

SIZE = (960, 540)
FACE = 260
REAL = REAL_FACES[0]
FAKE = [path for path in FAKE_FACES if "2025" in path.name][0]
OTHER = REAL_FACES[2]


def face(path: Path) -> Image.Image:
    return Image.open(path).convert("RGB").resize((FACE, FACE))


def test_a_still_clip_gets_its_photos_verdict(default_detector, tmp_path):
    photo = Image.open(FAKE).convert("RGB").resize((512, 512))
    clip = write_clip(tmp_path / "still.mkv", [([(photo, 0, 0, 0)], 10)], size=(512, 512), codec="ffv1")
    still = default_detector.predict(photo)
    result = default_detector.predict_video(clip)
    assert len(result.tracks) == len(still) == 1
    track = result.tracks[0]
    assert track.verdict == still[0].verdict and len(track.frames) == result.sampled_frames == 2
    assert [frame.time for frame in track.frames] == [0.0, 0.5]
    np.testing.assert_allclose(
        [f.fake_probability for f in track.frames], still[0].fake_probability, atol=1e-4
    )


def test_two_people_panning_then_a_cut_to_a_third(default_detector, tmp_path):
    scenes = [
        ([(face(REAL), 20, 140, 6), (face(FAKE), 640, 140, -4)], 40),  # 4 s, both on screen, moving
        ([(face(OTHER), 350, 140, 0)], 30),  # a cut to another person, where the two were
    ]
    clip = write_clip(tmp_path / "two.mp4", scenes)
    progress = []
    result = default_detector.predict_video(clip, progress=lambda done, total: progress.append((done, total)))
    assert result.sampled_frames == 14 and progress == [(8, 14), (14, 14)]  # after each batch of 8
    assert (result.width, result.height, result.duration) == (*SIZE, 7.0)
    assert len(result.tracks) == 3, [(t.start, t.end, len(t.frames)) for t in result.tracks]
    by_start = sorted(result.tracks, key=lambda track: (track.start, track.frames[0].box[0]))
    real, fake, other = by_start
    assert (real.start, real.end, fake.start, fake.end) == (0.0, 3.5, 0.0, 3.5)
    assert (other.start, other.end) == (4.0, 6.5)
    assert all(real.frames[i].box[0] < real.frames[i + 1].box[0] for i in range(len(real.frames) - 1))
    verdicts = {path: default_detector.predict(path)[0].verdict for path in (REAL, FAKE, OTHER)}
    assert (real.verdict, fake.verdict, other.verdict) == (verdicts[REAL], verdicts[FAKE], verdicts[OTHER])
    assert len(fake.crops) == len(fake.key_frames) == 3 and fake.crops[0].size == (224, 224)
    assert max(fake.frames[i].fake_probability for i in fake.key_frames) == max(
        frame.fake_probability for frame in fake.frames
    )
    as_json = json.loads(json.dumps(result.to_dict()))
    assert as_json["kind"] == "video" and len(as_json["tracks"]) == 3
    assert set(as_json["tracks"][0]) >= {"id", "start", "end", "fake_probability", "verdict", "frames"}


def test_a_phone_clip_stored_sideways_is_read_upright(default_detector, tmp_path):
    upright = Image.new("RGB", (360, 640), (90, 110, 130))
    upright.paste(face(REAL), (50, 190))
    stored = upright.rotate(90, expand=True)  # as a phone writes it, with a matrix turning it back
    clip = write_clip(tmp_path / "phone.mp4", [([(stored, 0, 0, 0)], 10)], size=stored.size, rotation=-90)
    video = read_video(clip)
    frames = list(video.frames)
    assert video.rotation == -90 and frames[0].image.size == (360, 640)
    assert np.abs(np.asarray(frames[0].image, float) - np.asarray(upright, float)).mean() < 8
    result = default_detector.predict_video(clip)
    assert (result.width, result.height) == (360, 640) and len(result.tracks) == 1
    left, top, right, bottom = result.tracks[0].frames[0].box
    assert 30 < left < 110 and 150 < top < 260 and right < 330


def test_a_variable_frame_rate_is_sampled_by_time(tmp_path):
    times = [0.0, 0.04, 0.3, 0.31, 0.9, 1.0, 1.02, 1.6, 2.7, 2.71]
    clip = write_clip(tmp_path / "vfr.mkv", [([(face(REAL), 100, 100, 3)], len(times))], times=times)
    sampled = [round(frame.time, 3) for frame in read_video(clip, fps=2).frames]
    assert sampled == [0.0, 0.9, 1.0, 1.6, 2.7]  # the first frame at or after each half second


def test_an_animated_gif_is_a_video(default_detector, tmp_path):
    frames = []
    for i in range(8):
        canvas = Image.new("RGB", (480, 320), (90, 110, 130))
        canvas.paste(face(FAKE).resize((200, 200)), (20 + 30 * i, 60))
        frames.append(canvas)
    gif = tmp_path / "moving.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=250, loop=0)
    assert is_video(gif) and not is_video(REAL)
    result = default_detector.predict_video(gif)
    assert result.sampled_frames == 4 and len(result.tracks) == 1
    assert [frame.time for frame in result.tracks[0].frames] == [0.0, 0.5, 1.0, 1.5]


def test_a_truncated_video_gives_the_frames_before_the_break(default_detector, tmp_path):
    scenes = [([(face(REAL), 100, 100, 5)], 60)]  # 6 s, in clusters of 1 s as a streamed file has
    clip = write_clip(tmp_path / "whole.mkv", scenes, options={"cluster_time_limit": "1000"})
    with av.open(str(clip)) as container:  # cut the file where its fourth second begins
        at = next(p.pos for p in container.demux(video=0) if p.pts is not None and p.pts * p.time_base >= 3)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(clip.read_bytes()[:at])
    result = default_detector.predict_video(cut)
    assert 0 < result.sampled_frames <= 6 and len(result.tracks) == 1
    assert len(result.notes) == 1 and "cut short" in result.notes[0], result.notes
    # an MP4 keeps its index at the end, so one cut short cannot be opened at all: one sentence
    mp4 = write_clip(tmp_path / "whole.mp4", scenes)
    (tmp_path / "cut.mp4").write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])
    with pytest.raises(VideoError, match=r"^cut.mp4 cannot be read as a video: it is damaged, cut short"):
        read_video(tmp_path / "cut.mp4")


def audio_only(path: Path) -> Path:
    out = av.open(str(path), "w")
    stream = out.add_stream("aac", rate=44100)
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
    frame.rate = 44100
    out.mux(stream.encode(frame))
    out.mux(stream.encode())
    out.close()
    return path


def written(content: bytes):
    def make(path: Path) -> Path:
        path.write_bytes(content)
        return path

    return make


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("empty.mp4", written(b""), "is empty"),
        ("notes.mp4", written(b"not a video at all\n"), "not a video"),
        ("sound.mp4", audio_only, "no video stream"),
        ("huge.mkv", lambda p: write_clip(p, [([], 1)], size=(4096, 4096), codec="ffv1"), "megapixels"),
    ],
    ids=["zero-bytes", "text-named-mp4", "audio-only", "enormous-frames"],
)
def test_a_broken_video_is_one_sentence(name, make, message, tmp_path):
    path = make(tmp_path / name)
    with pytest.raises(VideoError, match=message) as caught:
        list(read_video(path).frames)
    assert "\n" not in str(caught.value) and path.name in str(caught.value)


def test_the_caps_are_checked_before_decoding(tmp_path):
    clip = write_clip(tmp_path / "long.mp4", [([(face(REAL), 0, 0, 0)], 30)])  # 3 s
    with pytest.raises(VideoError, match="up to 2 s"):
        read_video(clip, limits=VideoLimits(max_duration_s=2))
    with pytest.raises(VideoError, match="6 frames at 2 a second.*--fps"):
        read_video(clip, limits=VideoLimits(max_sampled_frames=5))
    with pytest.raises(VideoError, match="above 0"):
        read_video(clip, fps=0)


def test_predict_takes_videos_beside_photos_and_goes_on_past_a_broken_one(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_clip(folder / "a-clip.mp4", [([(face(FAKE), 100, 100, 8)], 20)])
    (folder / "b-photo.jpg").write_bytes(REAL.read_bytes())
    (folder / "c-broken.mov").write_bytes(b"\x00" * 100)
    done = run_cli("predict", str(folder), "--json", "--fps", "4")
    assert done.returncode == 1, done.stderr
    clip, photo, broken = json.loads(done.stdout)
    assert clip["kind"] == "video" and clip["sampled_frames"] == 8 and clip["error"] is None
    assert [len(track["frames"]) for track in clip["tracks"]] == [8]
    assert [finding["details"]["writer"] for finding in clip["provenance"]["findings"]] == ["FFmpeg"]
    assert (
        "kind" not in photo and photo["faces"][0]["verdict"] == "real"
    )  # what an image returns is unchanged
    assert broken["kind"] == "video" and broken["error"].startswith("c-broken.mov cannot be read as a video")
    pictures = tmp_path / "pictures"
    lines = (
        run_cli("predict", str(folder / "a-clip.mp4"), "--annotate", str(pictures))
        .stdout.strip()
        .splitlines()
    )
    sheet, plot = Image.open(pictures / "a-clip.png"), Image.open(pictures / "a-clip-timeline.png")
    assert sheet.width > 3 * 224 and sheet.height > 224 and plot.size == (800, 320)
    with av.open(str(pictures / "a-clip-annotated.mp4")) as drawn:
        assert sum(1 for _ in drawn.decode(video=0)) == 20  # every frame of the clip, not the sampled 4
    assert (
        len(lines) == 1 and ": 1 person: person 1 fake " in lines[0] and ", 0.0-1.5 s, 4 frames" in lines[0]
    )
    assert lines[0].endswith(
        "| file says: The file names the software that wrote it, "
        f'"{clip["provenance"]["findings"][0]["details"]["software"]}" (FFmpeg): '
        "that says how it was saved, not how it was made."
    )


def test_a_clip_with_content_credentials_says_what_they_state(default_detector, tmp_path):
    from test_provenance import c2pa_sign, make_credentials

    clip = write_clip(tmp_path / "clip.mp4", [([(face(FAKE), 100, 100, 8)], 20)])
    signed = tmp_path / "signed.mp4"
    signed.write_bytes(c2pa_sign(clip.read_bytes(), "video/mp4", make_credentials()))
    result = default_detector.predict_video(signed)
    assert (
        result.provenance.strongest_ai.kind == "c2pa" and result.provenance.strongest_ai.strength == "signed"
    )
    assert result.to_dict()["provenance"]["declares_ai"] is True
    assert [track.verdict for track in result.tracks] == ["fake"]  # the faces' verdicts stay their own


def test_a_clip_without_faces_has_no_people(default_detector, tmp_path):
    from realfake.annotate import summary

    clip = write_clip(
        tmp_path / "wall.mp4", [([(Image.open(NO_FACE).convert("RGB").resize((400, 300)), 50, 50, 2)], 20)]
    )
    result = default_detector.predict_video(clip)
    assert result.sampled_frames == 4 and result.tracks == [] and result.error is None
    assert summary(result.tracks, nouns=("person", "people")) == "No person found."


def rgb_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24").astype(int) for frame in container.decode(video=0)]


def test_the_annotated_video_draws_each_person_while_the_tracker_follows_them(default_detector, tmp_path):
    from realfake.annotate import COLOURS, annotated_video

    wall = Image.new("RGB", (100, 100), (90, 110, 130))
    clip = write_clip(tmp_path / "clip.mp4", [([(face(REAL), 300, 140, 0)], 10), ([(wall, 0, 0, 0)], 10)])
    result = default_detector.predict_video(clip)
    [track] = result.tracks
    assert (track.verdict, track.start, track.end) == ("real", 0.0, 0.5)
    out = annotated_video(clip, result.tracks, tmp_path / "drawn.mp4", result.fps)
    source, frames = rgb_frames(clip), rgb_frames(out)
    assert len(frames) == 20 and frames[0].shape == (540, 960, 3)

    def drawn_green(i: int) -> int:  # pixels turned the real verdict's colour (through H.264's loss)
        changed = np.abs(frames[i] - source[i]).max(axis=2) > 60
        return int((changed & (np.abs(frames[i] - COLOURS["real"]).max(axis=2) < 40)).sum())

    x1, y1, x2, _ = (round(v) for v in track.frames[0].box)
    assert np.abs(frames[2][y1, (x1 + x2) // 2] - COLOURS["real"]).max() < 40  # the box's top edge
    assert drawn_green(2) > 1000 and drawn_green(7) > 1000  # 0.7 s: within half a sample of 0.5 s
    assert drawn_green(8) == drawn_green(15) == 0  # past the track's last sighting, and after the cut
