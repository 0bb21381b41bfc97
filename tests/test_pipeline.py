"""realfake.load_detector and Detector: the public contract, on real photos and random inputs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import FAKE_FACES, FIXTURES, NO_FACE, REAL_FACES, group_photo
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

import realfake
from realfake import pipeline
from realfake.errors import ImageError, ModelError, RealfakeError

BASE = Image.open(REAL_FACES[2]).convert("RGB")


def check_contract(verdicts, size):
    for face in verdicts:
        x1, y1, x2, y2 = face.box
        assert 0 <= x1 < x2 <= size[0] and 0 <= y1 < y2 <= size[1]
        assert 0.0 <= face.detection_score <= 1.0
        assert 0.0 <= face.fake_probability <= 1.0
        assert face.label in ("real", "fake")


def test_predict_takes_a_path_a_pil_image_an_array_and_bytes(detector):
    path = REAL_FACES[0]
    results = [
        detector.predict(path),
        detector.predict(str(path)),
        detector.predict(Image.open(path)),
        detector.predict(np.asarray(Image.open(path))),
        detector.predict(path.read_bytes()),
    ]
    for verdicts in results:
        assert len(verdicts) == 1
        check_contract(verdicts, (512, 512))
        assert verdicts[0].box == pytest.approx(results[0][0].box, abs=1e-3)
        assert verdicts[0].fake_probability == pytest.approx(results[0][0].fake_probability, abs=1e-6)


def test_labels_follow_the_threshold(tiny_convnext):
    photos = REAL_FACES + FAKE_FACES
    probabilities = [
        v[0].fake_probability for v in realfake.load_detector(tiny_convnext).predict_batch(photos)
    ]
    cut = float(np.median(probabilities))
    verdicts = realfake.load_detector(tiny_convnext, threshold=cut).predict_batch(photos)
    for [face] in verdicts:
        assert face.label == ("fake" if face.fake_probability >= cut else "real")
    assert {face.label for [face] in verdicts} == {"real", "fake"}


def test_group_photo_gets_a_verdict_per_face(detector):
    group, regions = group_photo(REAL_FACES[:2] + FAKE_FACES[:2])
    verdicts = detector.predict(group)
    assert len(verdicts) == 4
    check_contract(verdicts, group.size)
    alone = [detector.predict(group.crop(region))[0].fake_probability for region in regions]
    together = sorted(verdicts, key=lambda v: v.box[0])
    # The crop around each face is the same pixels alone or in the group: the same score.
    assert [v.fake_probability for v in together] == pytest.approx(alone, abs=0.02)


def test_batch_agrees_with_one_at_a_time(detector):
    photos = [REAL_FACES[0], NO_FACE, FIXTURES / "tpdne-128-f1.jpg", FAKE_FACES[0]]
    batch = detector.predict_batch(photos)
    assert [len(v) for v in batch] == [1, 0, 1, 1]
    for photo, verdicts in zip(photos, batch):
        assert [v.to_dict() for v in verdicts] == [v.to_dict() for v in detector.predict(photo)]


def test_predict_files_goes_on_past_a_broken_file(detector, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(REAL_FACES[0].read_bytes()[:3000])
    results = list(
        detector.predict_files([REAL_FACES[0], broken, tmp_path / "gone.png", FAKE_FACES[1]], batch_size=2)
    )
    assert [r.path for r in results] == [
        str(REAL_FACES[0]),
        str(broken),
        str(tmp_path / "gone.png"),
        str(FAKE_FACES[1]),
    ]
    assert [len(r.faces) for r in results] == [1, 0, 0, 1]
    assert "truncated or corrupt" in results[1].error
    assert "No such file" in results[2].error
    assert results[0].error is None and results[0].width == 512
    assert all(r.image is None for r in results)  # decoded images are not kept unless asked for


def test_predict_files_keeps_the_decoded_images_when_asked(detector, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    good, bad = detector.predict_files([REAL_FACES[0], broken], keep_images=True)
    expected = np.asarray(realfake.load_image(REAL_FACES[0]).image)
    assert np.array_equal(np.asarray(good.image), expected) and bad.image is None
    assert "image" not in good.to_dict()  # never serialised
    assert good.faces == detector.predict(good.image)


def test_score_images_falls_back_to_the_whole_frame(detector):
    images = [Image.open(REAL_FACES[0]).convert("RGB"), Image.open(NO_FACE).convert("RGB")]
    (face_score, found), (frame_score, no_face_found) = detector.score_images(images)
    assert found and not no_face_found
    assert face_score == pytest.approx(detector.predict(images[0])[0].fake_probability, abs=1e-6)
    assert 0 <= frame_score <= 1


def test_model_from_the_environment(tiny_vit, monkeypatch):
    monkeypatch.setenv("REALFAKE_MODEL", str(tiny_vit))
    assert realfake.load_detector().classifier.name == str(tiny_vit)


def test_no_model_and_no_bundled_default_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.delenv("REALFAKE_MODEL", raising=False)
    monkeypatch.setattr(pipeline, "DEFAULT_MODEL_DIR", tmp_path)
    with pytest.raises(ModelError, match="pass --model .* set REALFAKE_MODEL, or train one"):
        realfake.load_detector()


MODES = ["RGB", "L", "LA", "P", "RGBA", "CMYK", "1", "I;16"]
FORMATS = ["PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF", None]  # None: hand over the PIL image


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    width=st.integers(8, 700),
    aspect=st.floats(0.25, 4.0),
    mode=st.sampled_from(MODES),
    fmt=st.sampled_from(FORMATS),
    content=st.sampled_from(["face", "noise", "flat"]),
    seed=st.integers(0, 2**16),
)
def test_any_image_gives_valid_verdicts_or_our_own_error(detector, width, aspect, mode, fmt, content, seed):
    height = max(1, min(2000, round(width * aspect)))
    if content == "face":
        image = BASE.resize((width, height))
    elif content == "noise":
        image = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8))
    else:
        image = Image.new("RGB", (width, height), (seed % 256, 90, 160))
    image = image.convert("L").convert("I;16") if mode == "I;16" else image.convert(mode)
    source = image
    if fmt is not None:
        buffer = io.BytesIO()
        try:
            image.save(buffer, fmt)
        except (OSError, ValueError, KeyError):
            assume(False)  # this format cannot hold this mode
        source = buffer.getvalue()
    try:
        verdicts = detector.predict(source)
    except RealfakeError as error:
        assert isinstance(error, ImageError)
        assert min(width, height) < 20 and "smaller than 20 pixels" in str(error)
        return
    check_contract(verdicts, (width, height))
