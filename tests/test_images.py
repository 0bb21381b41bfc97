"""realfake.images: every supported input opens upright in RGB; every bad one fails in one sentence."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import FIXTURES, REAL_FACES
from PIL import Image

from realfake.errors import ImageError
from realfake.images import MAX_PIXELS, MIN_SIDE, load_image

FACE = REAL_FACES[0]


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def face(size=(160, 120)) -> Image.Image:
    return Image.open(FACE).convert("RGB").resize(size)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"])
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
def test_bad_files_fail_with_one_clear_sentence(tmp_path, make, message):
    path = tmp_path / "photo.jpg"  # every bad file pretends to be a JPEG
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
