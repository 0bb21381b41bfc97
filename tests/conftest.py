"""Shared fixtures: real face photos, tiny real/fake classifiers saved to folders, a detector."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import realfake
from realfake.architectures import convnext_from_scratch, vit_from_scratch
from realfake.classifier import THRESHOLD_KEY

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parent.parent
REAL_FACES = sorted(FIXTURES.glob("ffhq-1024-*.jpg"))
FAKE_FACES = sorted(FIXTURES.glob("tpdne-*.jpg"))
NO_FACE = FIXTURES / "no-face-coffee.jpg"
TINY_SIZE = 32
# A CLIP vision tower of a few thousand weights, for tests.
TINY_CLIP = {
    "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2,
    "patch_size": 8, "image_size": TINY_SIZE, "projection_dim": 8, "hidden_act": "quick_gelu",
}  # fmt: skip


def save_model(folder: Path, model, processor, threshold: float | None = None) -> Path:
    if threshold is not None:
        setattr(model.config, THRESHOLD_KEY, threshold)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_convnext(tmp_path_factory) -> Path:
    """A randomly initialised two-class ConvNeXt of a few thousand weights, saved to a folder."""
    torch.manual_seed(0)
    model, processor = convnext_from_scratch(
        image_size=TINY_SIZE, depths=(1, 1, 1, 1), hidden_sizes=(8, 8, 16, 16)
    )
    return save_model(tmp_path_factory.mktemp("convnext"), model, processor, threshold=0.5)


@pytest.fixture(scope="session")
def tiny_vit(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model, processor = vit_from_scratch(
        image_size=TINY_SIZE,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
    )
    return save_model(tmp_path_factory.mktemp("vit"), model, processor)


@pytest.fixture(scope="session")
def detector(tiny_convnext) -> realfake.Detector:
    return realfake.load_detector(tiny_convnext)


@pytest.fixture(scope="module")
def default_detector():
    """The bundled default model, offline, as a user without settings gets it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.delenv("REALFAKE_MODEL", raising=False)
        yield realfake.load_detector(device="cpu")


def group_photo(faces: list[Path], face_side: int = 220, gap: int = 60) -> tuple[Image.Image, list[tuple]]:
    """The given face photos side by side on a grey wall, and the region each one occupies."""
    width = len(faces) * face_side + (len(faces) + 1) * gap
    canvas = Image.new("RGB", (width, face_side + 2 * gap), (128, 124, 118))
    regions = []
    for i, path in enumerate(faces):
        left = gap + i * (face_side + gap)
        canvas.paste(Image.open(path).convert("RGB").resize((face_side, face_side)), (left, gap))
        regions.append((left, gap, left + face_side, gap + face_side))
    return canvas, regions


def run_cli(*args: str, env: dict | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """``python -m realfake ARGS`` in a fresh process, as a user runs it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "realfake", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=300,
    )
