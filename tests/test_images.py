"""realfake.images: every supported input opens upright in RGB; every bad one fails in one sentence."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from conftest import FIXTURES, REAL_FACES
from PIL import Image

from realfake import images
from realfake.errors import ImageError
from realfake.faces import FaceDetector
from realfake.folders import find_images
from realfake.images import HAS_AVIF, HAS_HEIF, MAX_PIXELS, MIN_SIDE, load_image

FACE = REAL_FACES[0]
NEEDS_HEIF = pytest.mark.skipif(not HAS_HEIF, reason="pillow-heif is not installed")
NEEDS_AVIF = pytest.mark.skipif(not HAS_AVIF, reason="this Pillow has no AVIF support")
HEIF = pytest.param("HEIF", marks=NEEDS_HEIF)
AVIF = pytest.param("AVIF", marks=NEEDS_AVIF)


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def face(size=(160, 120)) -> Image.Image:
    return Image.open(FACE).convert("RGB").resize(size)


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size
    return float(np.abs(np.asarray(a, float) - np.asarray(b, float)).mean())


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", HEIF, AVIF])
def test_every_supported_format_opens_as_rgb(fmt):
    loaded = load_image(encode(face(), fmt))
    assert loaded.image.mode == "RGB"
    assert loaded.size == (160, 120)
    assert loaded.format == fmt
    assert not loaded.first_frame_only


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "1", "YCbCr"])
def test_every_mode_becomes_rgb(mode):
    source = face().convert("L").convert(mode) if mode.startswith("I") else face().convert(mode)
    loaded = load_image(source)
    assert loaded.image.mode == "RGB"
    assert loaded.size == (160, 120)


def test_sixteen_bit_png_keeps_its_brightness():
    ramp = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (40, 1))
    image = Image.fromarray(ramp)
    loaded = load_image(encode(image, "PNG")).image
    grey = np.asarray(loaded)[:, :, 0]
    assert grey[0, 0] == 0 and grey[0, -1] == 255
    assert 100 < grey[0, 32] < 160


def test_transparency_is_composited_on_white():
    rgba = Image.new("RGBA", (40, 40), (255, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (0, 0, 20, 40))
    rgb = np.asarray(load_image(encode(rgba, "PNG")).image)
    assert tuple(rgb[20, 30]) == (255, 255, 255)  # fully transparent: the white background
    assert tuple(rgb[20, 5]) == (0, 0, 255)  # opaque: unchanged


def test_palette_with_transparency_is_composited_on_white():
    palette = Image.new("P", (40, 40), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.paste(1, (0, 0, 20, 40))
    data = encode(palette, "PNG", transparency=0)
    rgb = np.asarray(load_image(data).image)
    assert tuple(rgb[20, 30]) == (255, 255, 255)
    assert tuple(rgb[20, 5]) == (255, 0, 0)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animation_uses_the_first_frame_and_says_so(fmt):
    frames = [Image.new("RGB", (64, 48), colour) for colour in [(250, 0, 0), (0, 250, 0), (0, 0, 250)]]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    loaded = load_image(data)
    assert loaded.first_frame_only and loaded.n_frames == 3
    r, g, b = np.asarray(loaded.image)[24, 32]
    assert r > 200 and g < 50 and b < 50


# What exif_transpose does for each orientation, undone: the pixels as the camera stores them.
STORED = {
    3: Image.Transpose.ROTATE_180,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
}


@pytest.mark.parametrize("orientation", STORED)
@pytest.mark.parametrize("fmt", [HEIF, AVIF])
def test_phone_photo_orientation_is_applied_exactly_once(fmt, orientation):
    upright = face((200, 120))
    stored = upright.transpose(STORED[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(stored, fmt, quality=90, exif=exif.tobytes())
    # Like an iPhone: the camera's pixels, an irot/imir box to turn them and the EXIF tag as well.
    assert b"irot" in data or b"imir" in data
    loaded = load_image(data).image
    as_jpeg = load_image(encode(stored, "JPEG", quality=95, exif=exif.tobytes())).image
    assert loaded.size == as_jpeg.size == (200, 120)
    assert mean_difference(loaded, upright) < 4
    assert mean_difference(loaded, as_jpeg) < 5


@pytest.mark.parametrize("fmt", [HEIF, AVIF])
def test_face_photo_decodes_close_to_the_original(tmp_path, fmt):
    original = Image.open(FACE).convert("RGB")
    path = tmp_path / f"phone.{'heic' if fmt == 'HEIF' else 'avif'}"
    original.save(path, fmt, quality=90)
    loaded = load_image(path)
    assert loaded.format == fmt and loaded.size == original.size
    assert mean_difference(loaded.image, original) < 3


@NEEDS_HEIF
def test_mtcnn_finds_the_face_in_a_heic_photo(tmp_path):
    path = tmp_path / "IMG_0001.HEIC"
    Image.open(FACE).convert("RGB").save(path, "HEIF", quality=90)
    image = load_image(path).image
    found = FaceDetector().detect(image)
    assert len(found) == 1
    [expected] = FaceDetector().detect(load_image(FACE).image)
    assert np.abs(np.subtract(found[0].box, expected.box)).max() < 10


@NEEDS_HEIF
def test_heic_collection_uses_its_primary_image():
    frames = [Image.new("RGB", (64, 48), colour) for colour in [(250, 0, 0), (0, 250, 0)]]
    data = encode(frames[0], "HEIF", save_all=True, append_images=frames[1:], primary_index=1)
    r, g, b = np.asarray(load_image(data).image)[24, 32]
    assert g > 200 and r < 50 and b < 50


@pytest.mark.parametrize("fmt", [HEIF, AVIF])
def test_phone_photo_bomb_is_refused_before_decoding(monkeypatch, fmt):
    data = encode(face(), fmt)
    plugin = type(Image.open(io.BytesIO(data)))

    def refuse(*args, **kwargs):
        raise AssertionError("decoded a bomb")

    monkeypatch.setattr(plugin, "load", refuse)
    monkeypatch.setattr(images, "MAX_PIXELS", 10_000)
    with pytest.raises(ImageError, match=r"The image is 160x120 pixels"):
        load_image(data)


CORRUPT = "truncated or corrupt ("
UNDECODABLE = "but cannot be decoded; it may be truncated or corrupt."


@pytest.mark.parametrize(
    ("fmt", "keep", "message"),
    [
        pytest.param("HEIF", 0.5, f"The HEIF file is {CORRUPT}", marks=NEEDS_HEIF, id="heic-pixels"),
        pytest.param(
            "HEIF", 0.02, f"looks like a HEIC photo {UNDECODABLE}", marks=NEEDS_HEIF, id="heic-header"
        ),
        # libavif checks that all the pixel data is there before it tells the size
        pytest.param("AVIF", 0.5, f"looks like an AVIF image {UNDECODABLE}", marks=NEEDS_AVIF, id="avif"),
    ],
)
def test_truncated_phone_photos_are_corrupt(fmt, keep, message):
    data = encode(face(), fmt)
    with pytest.raises(ImageError) as caught:
        load_image(data[: int(len(data) * keep)])
    text = str(caught.value)
    assert message in text
    assert "\n" not in text and text.endswith(".")


def test_heic_without_pillow_heif_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import pillow_heif now fails
    assert images._register_heif() is False
    monkeypatch.setattr(images, "HAS_HEIF", False)
    monkeypatch.setattr(images, "FORMATS", tuple(f for f in images.FORMATS if f != "HEIF"))
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200)
    with pytest.raises(ImageError) as caught:
        load_image(heic)
    text = str(caught.value)
    assert "pip install pillow-heif" in text
    assert "\n" not in text and text.endswith(".")


def test_folders_are_searched_for_phone_photos(tmp_path):
    for name in ["a.HEIC", "b.heif", "c.avif", "d.jpg", "e.pdf"]:
        (tmp_path / name).write_bytes(b"x")
    assert [path.name for path in find_images(tmp_path)] == ["a.HEIC", "b.heif", "c.avif", "d.jpg"]


def test_exif_orientation_is_applied(tmp_path):
    upright = face((200, 120))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # the sensor's view: 120 x 200
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "phone.jpg"
    stored.save(path, quality=95, exif=exif)
    loaded = load_image(path).image
    assert loaded.size == (200, 120)
    difference = np.abs(np.asarray(loaded, float) - np.asarray(upright, float)).mean()
    assert difference < 4


def test_numpy_arrays_of_common_shapes_and_dtypes():
    base = np.asarray(face())
    assert load_image(base).size == (160, 120)
    assert load_image(base[:, :, 0]).size == (160, 120)
    assert load_image(base.astype(np.float32) / 255).image.mode == "RGB"
    rgba = np.dstack([base, np.full(base.shape[:2], 255, np.uint8)])
    assert load_image(rgba).size == (160, 120)


def test_input_images_are_not_modified():
    source = face().convert("RGBA")
    load_image(source)
    assert source.mode == "RGBA"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "The file is empty (0 bytes)."),
        (lambda p: p.write_text("name,score\nalice,3\n"), "The file holds text, not an image"),
        (lambda p: face().save(p, "PDF"), "The file is a PDF document, not an image"),
        (lambda p: face().save(p, "PPM"), "PPM images are not supported"),
        (lambda p: p.write_bytes(FACE.read_bytes()[: FACE.stat().st_size // 2]), "truncated or corrupt"),
        (lambda p: p.write_bytes(bytes(range(256)) * 40), "not an image in a supported format"),
        (lambda p: Image.new("RGB", (15, 300)).save(p), f"smaller than {MIN_SIDE} pixels"),
    ],
    ids=["empty", "text", "pdf", "unsupported-ppm", "truncated", "random-bytes", "too-small"],
)
@pytest.mark.parametrize("name", ["photo.jpg", "IMG_0001.heic"])
def test_bad_files_fail_with_one_clear_sentence(tmp_path, make, message, name):
    path = tmp_path / name  # every bad file pretends to be a JPEG or an iPhone photo
    make(path)
    with pytest.raises(ImageError) as caught:
        load_image(path)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text and text.endswith(".")


def test_pixel_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    side = int(MAX_PIXELS**0.5) + 100
    path = tmp_path / "bomb.png"
    Image.new("1", (side, side)).save(path)  # a few kB on disk, 40+ megapixels when decoded
    assert path.stat().st_size < 100_000

    def refuse(*args, **kwargs):
        raise AssertionError("decoded a bomb")

    monkeypatch.setattr(Image.Image, "load", refuse)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", refuse)
    with pytest.raises(ImageError, match=r"\(41 megapixels\); the limit is 40 megapixels"):
        load_image(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="No such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="is a folder, not an image file"):
        load_image(tmp_path)


def test_fixture_photos_open():
    for path in FIXTURES.glob("*.jpg"):
        assert load_image(path).image.mode == "RGB"
