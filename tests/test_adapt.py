"""realfake adapt: a model trained on cached CLIP tokens carries its adaptation memory, and adapt
teaches it a new "generator" (real MTCNN on real photos, a tiny CLIP tower) as a new model folder
that loads offline, scores the new fakes higher and keeps its calibration and verdicts."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
from conftest import FIXTURES, NO_FACE, REAL_FACES, run_cli
from PIL import Image, ImageOps
from test_clip import clip_args, clip_base  # noqa: F401  (the module's CLIP base fixture)
from test_train import crops  # noqa: F401  (the module's crops fixture)

import realfake
from realfake.adapt import CARD_HEADING, MEMORY_FILE, MEMORY_KEY, RESULTS_FILE, Memory, refit
from realfake.classifier import FaceClassifier
from realfake.errors import RealfakeError
from train import train
from train.calibrate import CALIBRATION_SHARE, in_calibration_share

PHOTOS = [*REAL_FACES, FIXTURES / "portraits-1024-1.jpg"]


@pytest.fixture(scope="module")
def trained(crops, clip_base, tmp_path_factory):  # noqa: F811
    """A tiny CLIP head trained on cached tokens by train.py, with its memory."""
    output = tmp_path_factory.mktemp("clip-head")
    train.main(clip_args(crops, output, clip_base, "--balance_sources", "--pooled_layers", "2"))
    return output


@pytest.fixture(scope="module")
def new_generator(tmp_path_factory):
    """A "generator" the model never saw: real photos posterised and tinted, each also mirrored."""
    folder = tmp_path_factory.mktemp("new-generator")
    for photo in PHOTOS:
        image = ImageOps.posterize(Image.open(photo).convert("RGB"), 3)
        image = Image.blend(image, Image.new("RGB", image.size, (200, 40, 160)), 0.25)
        image.save(folder / f"{photo.stem}.png")
        ImageOps.mirror(image).save(folder / f"{photo.stem}-mirror.png")
    return folder


def face_crops(detector, path):
    """The most confident face of a picture, cut as the detector's classifier crops faces."""
    image = Image.open(path).convert("RGB")
    found = detector.faces.detect(image)[:1]
    return detector._crops([image] * len(found), [face.box for face in found])


def test_a_head_trained_on_cached_tokens_carries_its_memory(trained, crops):  # noqa: F811
    config = json.loads((trained / "config.json").read_text())
    assert config[MEMORY_KEY]["file"] == MEMORY_FILE
    memory = Memory.load(trained / MEMORY_FILE)
    assert memory.features.shape[1] == 16 + 16 + 16 + 8  # what the head reads
    assert memory.held_out.any() and (~memory.held_out).any()
    assert {"ffhq", "tpdne"} <= set(memory.sources)
    # The held-out sources are never among its training crops; of their files, it keeps for
    # calibration only those the model's own calibration fitted on (the rest stay a clean test).
    held_out_sources = np.isin(memory.sources, ["other-real", "roeishc"])
    assert memory.held_out[held_out_sources].all()
    crop_set = datasets.load_from_disk(str(crops))
    assert held_out_sources.sum() == sum(
        in_calibration_share(file, CALIBRATION_SHARE)
        for file, source in zip(crop_set["file"], crop_set["source"])
        if source in ("other-real", "roeishc")
    )


def test_adapt_writes_a_model_that_catches_the_new_generator(trained, new_generator, tmp_path):
    output = tmp_path / "adapted"
    # A tiny model's memory holds a dozen crops: it needs a weaker penalty than the default model's.
    done = run_cli(
        "adapt", str(new_generator), "--model", str(trained), "--output", str(output), "--json", "--C", "1"
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    counts = figures["folders"][str(new_generator)]
    assert counts["images"] == 2 * len(PHOTOS) and counts["faces"] == counts["images"]
    assert json.loads((output / RESULTS_FILE).read_text()) == figures

    # It loads offline as any model folder does, with its new calibration and verdicts.
    config = json.loads((output / "config.json").read_text())
    old = json.loads((trained / "config.json").read_text())
    for key in ("realfake_calibration", "realfake_verdict_thresholds", "realfake_threshold"):
        assert config[key] and config[key] != old[key], key
    assert config["realfake_verdict_thresholds"] == figures["verdict_thresholds"]
    memory, before = Memory.load(output / MEMORY_FILE), Memory.load(trained / MEMORY_FILE)
    assert len(memory) == len(before) + counts["faces"]

    # The adapted head scores the new generator's faces higher than the head it came from (raw
    # scores: the tiny model's own calibration, fitted on a handful of crops, means little).
    detector = realfake.load_detector(trained, device="cpu")
    faces = [crop for path in sorted(new_generator.iterdir()) for crop in face_crops(detector, path)]
    raw = {
        name: FaceClassifier.from_pretrained(folder, device="cpu").fake_probabilities(faces, calibrated=False)
        for name, folder in (("old", trained), ("new", output))
    }
    assert len(faces) == counts["faces"] and raw["new"].mean() > raw["old"].mean() + 0.1

    # A second adapt keeps the first one's faces in its memory.
    again = tmp_path / "again"
    done = run_cli("adapt", str(new_generator), "--model", str(output), "--output", str(again))
    assert done.returncode == 0, done.stderr
    assert len(Memory.load(again / MEMORY_FILE)) == len(memory) + counts["faces"]
    assert f"Wrote {again}" in done.stdout
    card = (again / "README.md").read_text()  # one section, an entry per adapt run, before the rest
    assert card.count(CARD_HEADING) == 1 and card.count("faces. Judged before:") == 2
    assert card.index(CARD_HEADING) < card.index("## Training")


def test_refit_calibrates_on_scores_no_head_was_fitted_on():
    rng = np.random.default_rng(0)
    memory = Memory(np.zeros((0, 6)), np.zeros(0, dtype=int), [], np.zeros(0, dtype=bool))
    for label, centre in ((0, -1.0), (1, 1.0)):
        for held in (False, True):
            for source in ("a", "b"):
                memory = memory.add(rng.normal(centre, 1.0, (30, 6)), label, f"{source}{label}", held)
    new = rng.normal(0.0, 1.0, (20, 6)) + np.array([0, 0, 0, 0, 0, 4.0])  # elsewhere, labelled fake
    result = refit(memory, [(new, 1, "new")], C=1.0)
    assert len(result.new_scores) == 20 and len(result.held_out_scores) == 120
    assert result.bands.real_at_most < result.bands.fake_at_least
    assert np.mean(result.new_scores >= result.bands.fake_at_least) > 0.8  # cross-fitted, and still caught
    held_real = result.held_out_scores[:60]  # the held-out reals come first in the memory
    assert np.mean(held_real >= result.bands.fake_at_least) <= 0.01


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda folder: None, "holds no images."),
        (lambda folder: (folder / "coffee.jpg").write_bytes(NO_FACE.read_bytes()), "shows a face"),
    ],
    ids=["empty", "no-face"],
)
def test_a_folder_without_faces_is_one_sentence(trained, tmp_path, make, message):
    folder = tmp_path / "pictures"
    folder.mkdir()
    make(folder)
    done = run_cli("adapt", str(folder), "--model", str(trained), "--output", str(tmp_path / "out"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("realfake: error: ") and message in lines[0]
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


def test_a_model_without_memory_cannot_be_adapted(tiny_convnext, new_generator, tmp_path):
    from realfake.adapt import adaptable

    with pytest.raises(RealfakeError, match="cannot be adapted: only a head on a frozen CLIP backbone"):
        adaptable(FaceClassifier.from_pretrained(tiny_convnext, device="cpu"))
