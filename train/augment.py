"""Training augmentation aimed at what fools face-forgery detectors in the wild.

Besides the usual crops, flips and colour changes, a photo on the internet has usually been
re-compressed, resized and slightly blurred on its way; a verdict should survive that. Every
transform works on PIL images and draws from Python's and torch's global generators, which the
Trainer seeds and the DataLoader re-seeds in each worker, so runs are reproducible.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable

from PIL import Image, ImageFilter
from torchvision.transforms import ColorJitter, RandomResizedCrop

RESAMPLES = (
    Image.Resampling.BILINEAR,
    Image.Resampling.BICUBIC,
    Image.Resampling.LANCZOS,
    Image.Resampling.BOX,
)


class RandomJPEG:
    """Re-encode as JPEG at a random quality, with probability ``p``."""

    def __init__(self, p: float = 0.5, quality: tuple[int, int] = (30, 95)) -> None:
        self.p, self.quality = p, quality

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return image
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=random.randint(*self.quality))
        return Image.open(buffer).convert("RGB")


class RandomDownUp:
    """Shrink by a random factor and scale back, as a resized-then-enlarged photo is."""

    def __init__(self, p: float = 0.3, min_factor: float = 0.35) -> None:
        self.p, self.min_factor = p, min_factor

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return image
        factor = random.uniform(self.min_factor, 0.95)
        small = (max(8, round(image.width * factor)), max(8, round(image.height * factor)))
        return image.resize(small, random.choice(RESAMPLES)).resize(image.size, random.choice(RESAMPLES))


class RandomBlur:
    """A slight Gaussian blur, with probability ``p``."""

    def __init__(self, p: float = 0.2, sigma: tuple[float, float] = (0.2, 1.2)) -> None:
        self.p, self.sigma = p, sigma

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return image
        return image.filter(ImageFilter.GaussianBlur(random.uniform(*self.sigma)))


def build_train_augmentation(
    size: int,
    min_scale: float = 0.6,
    color: float = 0.2,
    jpeg_p: float = 0.5,
    jpeg_quality: tuple[int, int] = (30, 95),
    rescale_p: float = 0.3,
    rescale_min: float = 0.35,
    blur_p: float = 0.2,
) -> Callable[[Image.Image], Image.Image]:
    """The training augmentation: one PIL image in, one ``size`` x ``size`` RGB image out.

    Geometry first (random resized crop around the face, flip), then colour, then the damage a
    photo takes online (down-and-up scaling, blur, JPEG), JPEG last as it usually is.
    """
    crop = RandomResizedCrop(size, scale=(min_scale, 1.0), ratio=(0.9, 1.1))
    jitter = ColorJitter(brightness=color, contrast=color, saturation=color, hue=color / 10)
    damage = [RandomDownUp(rescale_p, rescale_min), RandomBlur(blur_p), RandomJPEG(jpeg_p, jpeg_quality)]

    def augment(image: Image.Image) -> Image.Image:
        image = crop(image.convert("RGB"))
        if random.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if color > 0 and random.random() < 0.8:
            image = jitter(image)
        for step in damage:
            image = step(image)
        return image

    return augment
