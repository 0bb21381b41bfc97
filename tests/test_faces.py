"""realfake.faces: a real MTCNN on real face photos; boxes inside the image; the shared crop."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FAKE_FACES, FIXTURES, NO_FACE, REAL_FACES, group_photo
from PIL import Image

from realfake.faces import FaceDetector, crop_box, crop_face
from realfake.images import load_image


@pytest.fixture(scope="module")
def faces() -> FaceDetector:
    return FaceDetector()


def inside(box, size) -> bool:
    x1, y1, x2, y2 = box
    return 0 <= x1 < x2 <= size[0] and 0 <= y1 < y2 <= size[1]


def centre_in(box, region) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return region[0] <= cx <= region[2] and region[1] <= cy <= region[3]


@pytest.mark.parametrize("path", REAL_FACES + FAKE_FACES, ids=lambda p: p.name)
def test_one_face_in_each_portrait(faces, path):
    image = load_image(path).image
    found = faces.detect(image)
    assert len(found) == 1
    assert inside(found[0].box, image.size)
    assert 0.9 <= found[0].score <= 1.0
    width = found[0].box[2] - found[0].box[0]
    assert width > image.width / 4  # the face fills most of these frames


def test_no_face_is_an_empty_list(faces):
    assert faces.detect(load_image(NO_FACE).image) == []


def test_group_photo_gets_one_box_per_face(faces):
    group, regions = group_photo(REAL_FACES[:2] + FAKE_FACES[:2])
    found = faces.detect(group)
    assert len(found) == 4
    for region in regions:
        assert sum(centre_in(face.box, region) for face in found) == 1
    assert all(inside(face.box, group.size) for face in found)
    assert [face.score for face in found] == sorted((face.score for face in found), reverse=True)


def test_large_photo_is_detected_downscaled_with_boxes_at_full_resolution(faces):
    group, regions = group_photo(REAL_FACES, face_side=700, gap=200)  # 3800 x 1100 pixels
    found = faces.detect(group)
    assert len(found) == 4
    for region in regions:
        [face] = [face for face in found if centre_in(face.box, region)]
        assert face.box[2] - face.box[0] > 300  # in full-resolution pixels, not the copy's


def test_boxes_are_stable_under_exif_rotation(faces, tmp_path):
    group, _ = group_photo(REAL_FACES[:2], face_side=200, gap=50)
    plain, rotated = tmp_path / "plain.jpg", tmp_path / "rotated.jpg"
    group.save(plain, quality=95)
    exif = Image.Exif()
    exif[0x0112] = 8  # stored rotated 90 degrees clockwise; display rotates it back
    group.transpose(Image.Transpose.ROTATE_270).save(rotated, quality=95, exif=exif)
    a = sorted(face.box for face in faces.detect(load_image(plain).image))
    b = sorted(face.box for face in faces.detect(load_image(rotated).image))
    assert len(a) == len(b) == 2
    assert np.abs(np.array(a) - np.array(b)).max() < 8


def test_batch_mixing_sizes_and_faceless_images(faces):
    images = [
        load_image(REAL_FACES[0]).image,
        load_image(NO_FACE).image,
        load_image(FIXTURES / "ffhq-thumb128-69000.jpg").image,
        Image.new("RGB", (333, 222), (40, 90, 200)),
        load_image(FAKE_FACES[0]).image,
    ]
    batch = faces.detect_batch(images)
    assert [len(found) for found in batch] == [1, 0, 1, 0, 1]
    for image, found in zip(images, batch):
        one = faces.detect(image)
        assert len(found) == len(one)
        for a, b in zip(found, one):
            assert a.box == pytest.approx(b.box, abs=1e-3)


def test_boxes_are_plain_floats(faces):
    [face] = faces.detect(load_image(REAL_FACES[1]).image)
    assert all(type(v) is float for v in face.box) and type(face.score) is float


@pytest.mark.parametrize(
    ("box", "size", "expected"),
    [
        ((40, 40, 60, 60), (200, 100), (37, 37, 63, 63)),  # 20 px face, 26 px square, centred
        ((0, 0, 20, 40), (200, 100), (0, 0, 52, 52)),  # shifted right/down to stay inside
        ((10, 0, 190, 100), (200, 100), (50, 0, 150, 100)),  # shrunk to the shorter side
    ],
)
def test_crop_box_is_a_square_inside_the_image(box, size, expected):
    assert crop_box(box, size, margin=0.3) == pytest.approx(expected)


def test_crop_face_is_square_and_taken_at_full_resolution():
    image = load_image(REAL_FACES[0]).image
    crop = crop_face(image, (100, 100, 300, 340), size=64)
    assert crop.size == (64, 64) and crop.mode == "RGB"
    region = crop_box((100, 100, 300, 340), image.size)
    reference = image.crop(tuple(round(v) for v in region)).resize((64, 64), Image.Resampling.BICUBIC)
    assert np.abs(np.asarray(crop, float) - np.asarray(reference, float)).mean() < 3
