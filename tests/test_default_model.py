"""The bundled default model as a user gets it after the README's install: only its head in git, the
CLIP base built from the package registry, loaded offline, judging the example photos."""

from __future__ import annotations

import json

import pytest
from conftest import REPO
from safetensors.torch import load_file

from realfake.base import BASE_ALIAS
from realfake.pipeline import DEFAULT_MODEL_DIR

EXAMPLES = REPO / "examples"


def test_the_default_model_folder_holds_the_trained_head_only():
    config = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())
    assert config["model_type"] == "realfake_clip" and config["base_model"] == BASE_ALIAS
    weights = load_file(DEFAULT_MODEL_DIR / "model.safetensors")
    assert weights and all(key.startswith(("classifier.", "head_norm.")) for key in weights)
    assert sum(path.stat().st_size for path in DEFAULT_MODEL_DIR.iterdir()) < 10 * 2**20


@pytest.mark.parametrize(
    ("name", "label"),
    [("real.jpg", "real"), ("generated.jpg", "fake"), ("generated-t2i.jpg", "fake")],
)
def test_the_default_model_judges_the_example_photos_offline(default_detector, name, label):
    # None of these files was trained on: FFHQ 00001 and thispersondoesnotexist 2025 are held-out
    # sources, the text-to-image portrait is in the held-out share of t2i-sfhq.
    [face] = default_detector.predict(EXAMPLES / name)
    assert face.label == label, face


def test_the_default_model_finds_no_face_in_the_coffee_cup(default_detector):
    assert default_detector.predict(EXAMPLES / "no-face.jpg") == []
