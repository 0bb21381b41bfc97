"""realfake.classifier: tiny ConvNeXt and ViT models from folders and from a prepared Hub cache."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import REAL_FACES, TINY_SIZE, run_cli, save_model
from PIL import Image

from realfake.architectures import convnext_from_scratch
from realfake.classifier import FaceClassifier
from realfake.errors import ModelError

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def crops(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (TINY_SIZE, TINY_SIZE, 3), np.uint8)) for _ in range(n)]


@pytest.mark.parametrize("fixture", ["tiny_convnext", "tiny_vit"])
def test_loads_from_a_folder_and_scores_in_batches(request, fixture):
    classifier = FaceClassifier.from_pretrained(request.getfixturevalue(fixture))
    assert classifier.input_size == TINY_SIZE
    scores = classifier.fake_probabilities(crops(5), batch_size=2)
    assert scores.shape == (5,) and scores.dtype == np.float64
    assert ((scores >= 0) & (scores <= 1)).all()
    np.testing.assert_allclose(scores, classifier.fake_probabilities(crops(5), batch_size=5), atol=1e-6)
    assert classifier.fake_probabilities([]).shape == (0,)


def test_threshold_comes_from_the_config_else_one_half(tiny_convnext, tiny_vit, tmp_path):
    assert FaceClassifier.from_pretrained(tiny_vit).threshold == 0.5
    model, processor = convnext_from_scratch(TINY_SIZE, depths=(1, 1, 1, 1), hidden_sizes=(8, 8, 8, 8))
    save_model(tmp_path, model, processor, threshold=0.731)
    assert FaceClassifier.from_pretrained(tmp_path).threshold == pytest.approx(0.731)


def test_fake_index_follows_id2label(tmp_path):
    torch.manual_seed(0)
    model, processor = convnext_from_scratch(TINY_SIZE, depths=(1, 1, 1, 1), hidden_sizes=(8, 8, 8, 8))
    normal = FaceClassifier(model, processor, name="normal").fake_probabilities(crops(3))
    model.config.id2label = {0: "FAKE", 1: "Real"}
    swapped = FaceClassifier(model, processor, name="swapped").fake_probabilities(crops(3))
    np.testing.assert_allclose(normal, 1 - swapped, atol=1e-6)


def test_mirror_averaging_scores_a_face_and_its_mirror_image(tmp_path):
    torch.manual_seed(0)
    model, processor = convnext_from_scratch(TINY_SIZE, depths=(1, 1, 1, 1), hidden_sizes=(8, 8, 8, 8))
    faces = crops(3)
    mirrored = [face.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for face in faces]
    plain = FaceClassifier(model, processor, name="plain")
    assert not plain.mirror_average
    unaveraged = plain.fake_probabilities(faces)
    expected = (unaveraged + plain.fake_probabilities(mirrored)) / 2
    assert not np.allclose(unaveraged, expected, atol=1e-6)
    model.config.realfake_mirror_average = True
    save_model(tmp_path, model, processor)
    averaged = FaceClassifier.from_pretrained(tmp_path)
    assert averaged.mirror_average
    np.testing.assert_allclose(averaged.fake_probabilities(faces, batch_size=2), expected, atol=1e-6)


def test_zoom_averaging_scores_the_centre_of_each_crop_too(tmp_path):
    torch.manual_seed(0)
    model, processor = convnext_from_scratch(TINY_SIZE, depths=(1, 1, 1, 1), hidden_sizes=(8, 8, 8, 8))
    faces = [face.resize((40, 40)) for face in crops(3)]
    plain = FaceClassifier(model, processor, name="plain")
    assert plain.zooms == (1.0,) and plain.crop_size == TINY_SIZE
    centres = [face.crop((4, 4, 36, 36)) for face in faces]  # the middle 80%
    expected = (plain.fake_probabilities(faces) + plain.fake_probabilities(centres)) / 2
    model.config.realfake_zooms = [1.0, 0.8]
    save_model(tmp_path, model, processor)
    zoomed = FaceClassifier.from_pretrained(tmp_path)
    assert zoomed.zooms == (1.0, 0.8)
    assert zoomed.crop_size == 40  # cut larger, so the centre view is not enlarged
    np.testing.assert_allclose(zoomed.fake_probabilities(faces, batch_size=2), expected, atol=1e-6)


def test_a_model_without_real_and_fake_labels_is_refused(tmp_path):
    model, processor = convnext_from_scratch(TINY_SIZE, depths=(1, 1, 1, 1), hidden_sizes=(8, 8, 8, 8))
    model.config.id2label = {0: "cat", 1: "dog"}
    model.config.label2id = {"cat": 0, "dog": 1}
    save_model(tmp_path, model, processor)
    with pytest.raises(
        ModelError, match=r"not a real/fake classifier: its labels \(cat, dog\) lack real and fake"
    ):
        FaceClassifier.from_pretrained(tmp_path)


def test_only_safetensors_weights_are_loaded(tiny_convnext, tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_convnext, folder)
    weights = FaceClassifier.from_pretrained(folder).model.state_dict()
    (folder / "model.safetensors").unlink()
    torch.save(weights, folder / "pytorch_model.bin")
    with pytest.raises(ModelError, match="has no model.safetensors"):
        FaceClassifier.from_pretrained(folder)


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(ModelError, match="No model folder at"):
        FaceClassifier.from_pretrained(tmp_path / "nowhere" / "model")


def hub_cache(root, model_dir, repo="realfake-test/tiny-convnext"):
    """Lay ``model_dir`` out as huggingface_hub caches a download of ``repo`` at COMMIT."""
    entry = root / f"models--{repo.replace('/', '--')}"
    snapshot = entry / "snapshots" / COMMIT
    shutil.copytree(model_dir, snapshot)
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text(COMMIT)
    return root


def test_hub_ids_resolve_from_the_local_cache_offline(tiny_convnext, tmp_path):
    env = {"HF_HUB_CACHE": str(hub_cache(tmp_path, tiny_convnext)), "HF_HUB_OFFLINE": "1"}
    photo = str(REAL_FACES[0])
    for model in ["realfake-test/tiny-convnext", f"realfake-test/tiny-convnext@{COMMIT}"]:
        done = run_cli("predict", photo, "--model", model, "--json", env=env)
        assert done.returncode == 0, done.stderr
        [result] = json.loads(done.stdout)
        assert len(result["faces"]) == 1


@pytest.mark.parametrize(
    "env",
    [{"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_ETAG_TIMEOUT": "2"}],
    ids=["offline", "unreachable"],
)
def test_an_uncached_unreachable_hub_id_fails_clearly(tmp_path, env):
    env = {"HF_HUB_CACHE": str(tmp_path), "HF_HUB_DOWNLOAD_TIMEOUT": "2", **env}
    done = run_cli("predict", str(REAL_FACES[0]), "--model", "nobody/no-such-model", env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "realfake: error: Model nobody/no-such-model is not in the local Hugging Face cache and "
        "the Hub cannot be reached; connect once to download it, or pass a local model folder."
    )
    assert "Traceback" not in done.stderr
