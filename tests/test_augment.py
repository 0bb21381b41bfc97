"""train/augment.py's user-photo looks and thumbnails on a real face photo: sizes kept, pixels changed,
seeded; and the cached views' augmentation settings (tokens.view_settings)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from conftest import REAL_FACES
from PIL import Image, ImageFilter

from train import tokens, train
from train.augment import (
    UPLOAD_LOOKS,
    RandomBackgroundBlur,
    RandomThumbnail,
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


@pytest.mark.parametrize("setting", tokens.LATER_AUG_SETTINGS)
def test_augment_key_leaves_out_later_settings_while_off(setting):
    data_args = train.DataArguments(dataset_dir="data")
    assert getattr(data_args, setting) == 0.0
    before = json.dumps(
        {
            k: v
            for k, v in vars(data_args).items()
            if k.startswith("aug_") and k not in tokens.LATER_AUG_SETTINGS
        }
    )
    assert tokens.augment_key(data_args) == before
    setattr(data_args, setting, 0.5)
    assert tokens.augment_key(data_args) != before
    assert json.loads(tokens.augment_key(data_args))[setting] == 0.5


def detail(image: Image.Image) -> float:
    """Mean absolute difference between neighbouring pixels: what a thumbnail loses."""
    grey = pixels(image.convert("L"))
    return float(np.abs(np.diff(grey, axis=1)).mean() + np.abs(np.diff(grey, axis=0)).mean())


def test_thumbnail_keeps_size_and_loses_detail(face):
    sharp = face.resize((512, 512), Image.Resampling.BICUBIC).filter(ImageFilter.UnsharpMask(2, 200, 0))
    for seed in range(5):
        random.seed(seed)
        out = RandomThumbnail()(sharp)
        assert out.size == sharp.size and out.mode == "RGB"
        assert detail(out) < 0.8 * detail(sharp)


def test_thumbnail_leaves_an_image_already_that_small_alone(face):
    small = face.resize((48, 48))
    random.seed(0)
    assert RandomThumbnail()(small).size == (48, 48)
    assert np.array_equal(np.asarray(RandomThumbnail()(small)), np.asarray(small))


def test_augmentation_without_thumbnails_draws_as_before(face):
    def seeded(augment) -> np.ndarray:
        random.seed(3)
        torch.manual_seed(3)  # the crop and the colour jitter draw from torch
        return np.asarray(augment(face))

    before = seeded(build_train_augmentation(SIZE))
    assert np.array_equal(seeded(build_train_augmentation(SIZE, thumbnail_p=0.0)), before)
    assert not np.array_equal(seeded(build_train_augmentation(SIZE, thumbnail_p=1.0)), before)


def test_view_settings_add_one_view_per_extra_entry():
    data_args = train.DataArguments(
        dataset_dir="data",
        feature_views=2,
        extra_views=["aug_thumbnail_p=1.0", "aug_upload_p=0.5,aug_jpeg_p=1"],
    )
    views = tokens.view_settings(data_args)
    assert len(views) == 4
    assert tokens.augment_key(views[0]) == tokens.augment_key(views[1]) == tokens.augment_key(data_args)
    assert views[2].aug_thumbnail_p == 1.0 and views[2].aug_upload_p == 0.0
    assert (views[3].aug_upload_p, views[3].aug_jpeg_p, views[3].aug_thumbnail_p) == (0.5, 1.0, 0.0)
    assert len({tokens.augment_key(view) for view in views}) == 3
    assert data_args.aug_thumbnail_p == 0.0  # the run's own settings are left as they were


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("thumbnail=1", "is not aug_SETTING=VALUE"),
        ("aug_nothing=1", "is not aug_SETTING=VALUE"),
        ("aug_thumbnail_p=", "is not aug_SETTING=VALUE"),
        ("aug_thumbnail_p=much", "aug_thumbnail_p needs a float"),
    ],
)
def test_a_malformed_extra_view_is_one_sentence(entry, message):
    data_args = train.DataArguments(dataset_dir="data", extra_views=[entry])
    with pytest.raises(SystemExit, match=message):
        tokens.view_settings(data_args)
