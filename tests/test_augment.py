"""train/augment.py's user-photo looks on a real face photo: sizes kept, pixels changed, seeded."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from conftest import REAL_FACES
from PIL import Image

from train import train
from train.augment import (
    UPLOAD_LOOKS,
    RandomBackgroundBlur,
    RandomUploadLook,
    build_train_augmentation,
)

SIZE = 224


@pytest.fixture(scope="module")
def face() -> Image.Image:
    return Image.open(REAL_FACES[0]).convert("RGB").resize((SIZE, SIZE), Image.Resampling.BICUBIC)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


@pytest.mark.parametrize("look", UPLOAD_LOOKS, ids=lambda look: look.__name__)
def test_look_keeps_size_and_mode_and_changes_pixels(face, look):
    for seed in range(3):
        random.seed(seed)
        out = look()(face)
        assert out.size == face.size and out.mode == "RGB"
        assert np.abs(pixels(out) - pixels(face)).mean() > 0.1


@pytest.mark.parametrize("look", UPLOAD_LOOKS, ids=lambda look: look.__name__)
def test_look_same_seed_same_output(face, look):
    transform = look()
    random.seed(7)
    first = transform(face)
    random.seed(7)
    assert np.array_equal(np.asarray(first), np.asarray(transform(face)))


def test_background_blur_keeps_centre_and_blurs_corners(face):
    middle, corner = SIZE // 2, 32
    for seed in range(5):
        random.seed(seed)
        change = np.abs(pixels(RandomBackgroundBlur()(face)) - pixels(face)).mean(axis=2)
        centre = change[middle - 24 : middle + 24, middle - 24 : middle + 24].mean()
        corners = [
            change[:corner, :corner],
            change[:corner, -corner:],
            change[-corner:, :corner],
            change[-corner:, -corner:],
        ]
        assert centre < 0.5
        assert np.mean([c.mean() for c in corners]) > centre + 1.0


def test_upload_look_off_returns_image_unchanged(face):
    look = RandomUploadLook(p=0.0)
    for seed in range(5):
        random.seed(seed)
        assert look(face) is face


def test_upload_look_on_always_changes_image(face):
    look = RandomUploadLook(p=1.0)
    for seed in range(12):
        random.seed(seed)
        out = look(face)
        assert out.size == face.size and out.mode == "RGB"
        assert not np.array_equal(np.asarray(out), np.asarray(face))


def test_train_augmentation_with_upload_looks_gives_square_rgb():
    augment = build_train_augmentation(SIZE, upload_p=1.0)
    photo = Image.open(REAL_FACES[1])
    for seed in range(3):
        random.seed(seed)
        out = augment(photo)
        assert out.size == (SIZE, SIZE) and out.mode == "RGB"


def test_augment_key_leaves_out_upload_looks_while_off():
    data_args = train.DataArguments(dataset_dir="data")
    assert data_args.aug_upload_p == 0.0
    before = json.dumps(
        {k: v for k, v in vars(data_args).items() if k.startswith("aug_") and k != "aug_upload_p"}
    )
    assert train.augment_key(data_args) == before
    data_args.aug_upload_p = 0.5
    assert train.augment_key(data_args) != before
    assert json.loads(train.augment_key(data_args))["aug_upload_p"] == 0.5
