"""Training augmentation aimed at what fools face-forgery detectors in the wild.

Besides the usual crops, flips and colour changes, a photo on the internet has usually been
re-compressed, resized and slightly blurred on its way; a verdict should survive that. Every
transform works on PIL images and draws from Python's and torch's global generators, which the
Trainer seeds and the DataLoader re-seeds in each worker, so runs are reproducible.

A real photo as people upload it has often been processed, too: phone sharpening or noise
reduction, an HDR tone curve, a beauty filter, a portrait-mode background blur, or a screenshot
of the photo. ``RandomUploadLook`` applies one such look, to both classes alike, so that none of
them reads as a sign of either.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from torchvision.transforms import ColorJitter, RandomResizedCrop

from realfake.classifier import processor_input_size

RESAMPLES = (
    Image.Resampling.BILINEAR,
    Image.Resampling.BICUBIC,
    Image.Resampling.LANCZOS,
    Image.Resampling.BOX,
)


def _scaled(image: Image.Image, factor: float) -> tuple[int, int]:
    """``image``'s size times ``factor``, at least 8 px a side."""
    return max(8, round(image.width * factor)), max(8, round(image.height * factor))


def _encoded(image: Image.Image, format: str, **options) -> Image.Image:
    """``image`` saved as ``format`` (with Pillow's save ``options``) and read back, as RGB."""
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return Image.open(buffer).convert("RGB")


class RandomJPEG:
    """Re-encode as JPEG at a random quality, with probability ``p``."""

    def __init__(self, p: float = 0.5, quality: tuple[int, int] = (30, 95)) -> None:
        self.p, self.quality = p, quality

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return image
        return _encoded(image, "JPEG", quality=random.randint(*self.quality))


class RandomDownUp:
    """Shrink by a random factor and scale back, as a resized-then-enlarged photo is."""

    def __init__(self, p: float = 0.3, min_factor: float = 0.35) -> None:
        self.p, self.min_factor = p, min_factor

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return image
        small = _scaled(image, random.uniform(self.min_factor, 0.95))
        return image.resize(small, random.choice(RESAMPLES)).resize(image.size, random.choice(RESAMPLES))


class RandomThumbnail:
    """Shrink to a thumbnail whose longer side is a random ``size`` in pixels, JPEG it half the time,
    and scale it back, as a face from a small photo or a group shot is.

    Unlike ``RandomDownUp``'s relative factor, the size is absolute, so that both classes have
    faces as small as the smallest source's and a face's size says nothing about its class: without
    it, a model trained where only generated faces are 128 px thumbnails calls real thumbnails fake.
    """

    def __init__(
        self, p: float = 1.0, size: tuple[int, int] = (56, 160), quality: tuple[int, int] = (60, 95)
    ) -> None:
        self.p, self.size, self.quality = p, size, quality

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return image
        image = image.convert("RGB")
        scale = random.randint(*self.size) / max(image.size)
        if scale >= 1.0:
            return image
        small = image.resize(_scaled(image, scale), random.choice(RESAMPLES))
        if random.random() < 0.5:
            small = _encoded(small, "JPEG", quality=random.randint(*self.quality))
        return small.resize(image.size, random.choice(RESAMPLES))


class RandomBlur:
    """A slight Gaussian blur, with probability ``p``."""

    def __init__(self, p: float = 0.2, sigma: tuple[float, float] = (0.2, 1.2)) -> None:
        self.p, self.sigma = p, sigma

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return image
        return image.filter(ImageFilter.GaussianBlur(random.uniform(*self.sigma)))


def _bilateral(image: Image.Image, diameter: int, sigma_color: float, sigma_space: float) -> Image.Image:
    """OpenCV's edge-preserving bilateral filter on an RGB image."""
    pixels = np.asarray(image.convert("RGB"))
    return Image.fromarray(cv2.bilateralFilter(pixels, diameter, sigma_color, sigma_space))


def _curve_lut(curve: Callable[[np.ndarray], np.ndarray]) -> list[int]:
    """A 256-entry lookup table of ``curve`` on [0, 1], rounded and clipped to 0-255."""
    levels = curve(np.linspace(0.0, 1.0, 256))
    return np.clip(np.rint(levels * 255.0), 0, 255).astype(int).tolist()


class RandomSharpen:
    """A phone camera's sharpening: an unsharp mask at a random radius and strength."""

    def __init__(
        self, p: float = 1.0, radius: tuple[float, float] = (0.6, 2.5), percent: tuple[int, int] = (60, 220)
    ) -> None:
        self.p, self.radius, self.percent = p, radius, percent

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return image
        mask = ImageFilter.UnsharpMask(
            random.uniform(*self.radius), random.randint(*self.percent), random.randint(0, 3)
        )
        return image.filter(mask)


class RandomDenoise:
    """A phone camera's noise reduction: a mild bilateral filter at a random strength."""

    def __init__(self, p: float = 1.0, sigma_color: tuple[float, float] = (10.0, 35.0)) -> None:
        self.p, self.sigma_color = p, sigma_color

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return image
        diameter = random.choice((5, 7))
        return _bilateral(image, diameter, random.uniform(*self.sigma_color), random.uniform(2.0, 5.0))


class RandomHDRTone:
    """An HDR-style tone curve: shadows lifted, highlights pulled down, sometimes local contrast.

    The curve is ``floor + (white - floor) * x ** gamma``, mixed with an S-curve that keeps the
    mid-tones from going flat; local contrast is a wide, weak unsharp mask.
    """

    def __init__(self, p: float = 1.0, gamma: tuple[float, float] = (0.6, 0.9), local_p: float = 0.5) -> None:
        self.p, self.gamma, self.local_p = p, gamma, local_p

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return image
        gamma, floor = random.uniform(*self.gamma), random.uniform(0.0, 0.05)
        white, s_mix = random.uniform(0.9, 0.99), random.uniform(0.0, 0.4)

        def curve(x: np.ndarray) -> np.ndarray:
            lifted = x**gamma
            s_curve = lifted * lifted * (3.0 - 2.0 * lifted)
            return floor + (white - floor) * ((1.0 - s_mix) * lifted + s_mix * s_curve)

        image = image.convert("RGB").point(_curve_lut(curve) * 3)
        if random.random() < self.local_p:
            radius = random.uniform(0.04, 0.1) * max(image.size)
            image = image.filter(ImageFilter.UnsharpMask(radius, random.randint(15, 45), 0))
        return image


class RandomSkinSmooth:
    """A beauty filter: a strong bilateral blur, blended back with the original at random."""

    def __init__(self, p: float = 1.0, alpha: tuple[float, float] = (0.4, 0.9)) -> None:
        self.p, self.alpha = p, alpha

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return image
        image = image.convert("RGB")
        smooth = _bilateral(image, 9, random.uniform(40.0, 90.0), random.uniform(5.0, 10.0))
        return Image.blend(image, smooth, random.uniform(*self.alpha))


class RandomBackgroundBlur:
    """A portrait-mode background: an ellipse around the centre (the face) kept, the rest blurred.

    The crops are face-centred squares with a margin, so the face fills most of the centre; the
    outside is a Gaussian blur of the image, composited through a feathered elliptical mask.
    """

    def __init__(self, p: float = 1.0, sigma: tuple[float, float] = (2.0, 6.0)) -> None:
        self.p, self.sigma = p, sigma

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return image
        image = image.convert("RGB")
        width, height = image.size
        centre_x = width * (0.5 + random.uniform(-0.03, 0.03))
        centre_y = height * (0.5 + random.uniform(-0.03, 0.03))
        half_x, half_y = width * random.uniform(0.34, 0.44), height * random.uniform(0.4, 0.5)
        mask = Image.new("L", image.size, 0)
        ImageDraw.Draw(mask).ellipse(
            (centre_x - half_x, centre_y - half_y, centre_x + half_x, centre_y + half_y), fill=255
        )
        mask = mask.filter(ImageFilter.GaussianBlur(random.uniform(0.03, 0.08) * max(image.size)))
        background = image.filter(ImageFilter.GaussianBlur(random.uniform(*self.sigma)))
        return Image.composite(image, background, mask)


class RandomScreenshot:
    """A screenshot of the photo: shown smaller, re-captured with a screen's tone, saved, enlarged.

    The capture shifts gamma, contrast and each channel's gain a little; it is saved as PNG or as
    high-quality JPEG, then scaled back to the input size.
    """

    def __init__(self, p: float = 1.0, factor: tuple[float, float] = (0.5, 0.9)) -> None:
        self.p, self.factor = p, factor

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return image
        image = image.convert("RGB")
        shown = image.resize(_scaled(image, random.uniform(*self.factor)), random.choice(RESAMPLES))
        gamma, contrast = random.uniform(0.9, 1.1), random.uniform(0.9, 1.1)
        tables: list[int] = []
        for _ in range(3):
            gain = random.uniform(0.96, 1.04)
            tables += _curve_lut(lambda x, gain=gain: ((x**gamma) * gain - 0.5) * contrast + 0.5)
        shown = shown.point(tables)
        if random.random() < 0.5:
            captured = _encoded(shown, "PNG")
        else:
            captured = _encoded(shown, "JPEG", quality=random.randint(88, 98))
        return captured.resize(image.size, random.choice(RESAMPLES))


UPLOAD_LOOKS: tuple[type, ...] = (
    RandomSharpen,
    RandomDenoise,
    RandomHDRTone,
    RandomSkinSmooth,
    RandomBackgroundBlur,
    RandomScreenshot,
)


class RandomUploadLook:
    """With probability ``p``, one of ``UPLOAD_LOOKS`` chosen uniformly, at its random strength."""

    def __init__(self, p: float = 0.3) -> None:
        self.p = p
        self.looks = [look() for look in UPLOAD_LOOKS]

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return image
        return random.choice(self.looks)(image)


def build_train_augmentation(
    size: int,
    min_scale: float = 0.6,
    color: float = 0.2,
    jpeg_p: float = 0.5,
    jpeg_quality: tuple[int, int] = (30, 95),
    rescale_p: float = 0.3,
    rescale_min: float = 0.35,
    blur_p: float = 0.2,
    upload_p: float = 0.0,
    thumbnail_p: float = 0.0,
) -> Callable[[Image.Image], Image.Image]:
    """The training augmentation: one PIL image in, one ``size`` x ``size`` RGB image out.

    Geometry first (random resized crop around the face, flip), then colour, then with
    probability ``upload_p`` one user-photo look (``RandomUploadLook``), then the damage a photo
    takes online (with probability ``thumbnail_p`` a thumbnail's size, down-and-up scaling, blur,
    JPEG), JPEG last as it usually is.
    """
    crop = RandomResizedCrop(size, scale=(min_scale, 1.0), ratio=(0.9, 1.1))
    jitter = ColorJitter(brightness=color, contrast=color, saturation=color, hue=color / 10)
    upload = RandomUploadLook(upload_p)
    damage = [RandomDownUp(rescale_p, rescale_min), RandomBlur(blur_p), RandomJPEG(jpeg_p, jpeg_quality)]
    if thumbnail_p > 0:  # off draws nothing, as with upload_p
        damage.insert(0, RandomThumbnail(thumbnail_p))

    def augment(image: Image.Image) -> Image.Image:
        image = crop(image.convert("RGB"))
        if random.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if color > 0 and random.random() < 0.8:
            image = jitter(image)
        if upload_p > 0:  # off draws nothing, so existing seeds give the same images as before
            image = upload(image)
        for step in damage:
            image = step(image)
        return image

    return augment


def training_augmentation(processor, data_args) -> Callable[[Image.Image], Image.Image]:
    """The training augmentation of train.py's ``--aug_*`` arguments (``data_args``), at the model's
    input size."""
    return build_train_augmentation(
        processor_input_size(processor),
        min_scale=data_args.aug_min_scale,
        color=data_args.aug_color,
        jpeg_p=data_args.aug_jpeg_p,
        jpeg_quality=(data_args.aug_jpeg_min_quality, 95),
        rescale_p=data_args.aug_rescale_p,
        rescale_min=data_args.aug_rescale_min,
        blur_p=data_args.aug_blur_p,
        upload_p=data_args.aug_upload_p,
        thumbnail_p=data_args.aug_thumbnail_p,
    )
