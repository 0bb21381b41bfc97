"""Grad-CAM heatmaps for face crops: which parts of a crop pushed the classifier's score towards fake.

A map is Grad-CAM (Selvaraju et al., ICCV 2017, through the ``grad-cam`` package) for the log-odds of
*fake* over *real*, the quantity P(fake) is the sigmoid of, taken at the patch tokens (or a ConvNeXt's
last feature map) on their way into the earliest features the head reads, and drawn back onto the
crop's own pixels. It shows where, in this crop, the score came from, at the coarse resolution of
that layer (a 16-pixel patch grid for the default CLIP model). It is not proof of where an image was
edited or generated: a fully generated face gets a map too, a real face that scores low gets one all
the same (the parts that pushed towards fake, however weakly), and each map is scaled to its own
maximum, so its values say "more than elsewhere in this crop", never how fake. Parts that pushed
towards real are 0, like parts that did not matter, and so are parts of a crop that the image
processor cuts away (a centre crop): they never reached the model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial

import cv2
import numpy as np
import torch
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from torch import nn
from transformers import ConvNextForImageClassification, ViTForImageClassification

from .classifier import FaceClassifier, size_lookup
from .clip import RealfakeClipForImageClassification
from .errors import ModelError

logger = logging.getLogger(__name__)

BATCH_SIZE = 8  # crops per backward pass: activations of every layer are kept for the gradient
CONVNEXT_FULL_RESIZE = 384  # ConvNextImageProcessor resizes to a square from this shortest_edge up

Box = tuple[float, float, float, float]


def heatmaps(classifier: FaceClassifier, crops: Sequence[Image.Image]) -> list[np.ndarray]:
    """A Grad-CAM map of each face crop for the *fake* class: which parts of the crop pushed the score
    towards fake (see the module docstring for what that does and does not mean).

    Args:
        classifier: the classifier whose score is explained (its ``.model`` is left as it was).
        crops: face crops, PIL RGB images cut as realfake cuts them; only the crop itself is scored,
            not the mirror or zoomed views the classifier may average over.

    Returns:
        For each crop, in order, a float32 array of shape (crop.height, crop.width) with values in
        [0, 1] (1: the crop's strongest evidence); all zeros where the gradient is zero everywhere.

    Raises:
        ModelError: the model is not a CLIP, ViT or ConvNeXt classifier realfake can explain.
    """
    model = classifier.model
    layer, patch = _target(model)
    maps: list[np.ndarray] = []
    if not crops:
        return maps
    target = _FakeLogOdds(fake=classifier._indices[1], real=classifier._indices[0])
    training = {module: module.training for module in model.modules()}
    saved = {parameter: (parameter.requires_grad, parameter.grad) for parameter in model.parameters()}
    try:
        for parameter in model.parameters():  # only the activations need gradients, never the weights
            parameter.requires_grad_(False)
        for start in range(0, len(crops), BATCH_SIZE):
            batch = list(crops[start : start + BATCH_SIZE])
            pixels = classifier.processor(images=batch, return_tensors="pt")["pixel_values"]
            cams = _grad_cam(model, layer, patch, pixels.to(classifier.device, model.dtype), target)
            out_height, out_width = pixels.shape[-2:]
            for crop, cam in zip(batch, cams):
                box = _shown_box(classifier.processor, crop.width, crop.height, out_width, out_height)
                maps.append(_to_crop(cam, box, crop.width, crop.height))
    finally:
        for parameter, (requires_grad, grad) in saved.items():
            parameter.requires_grad_(requires_grad)
            parameter.grad = grad
        for module, was_training in training.items():
            module.training = was_training
    logger.debug("Grad-CAM of %d crops at %s", len(maps), type(layer).__name__)
    return maps


def overlay(crop: Image.Image, heatmap: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """The crop with ``heatmap`` (from :func:`heatmaps`) drawn over it in the jet colour map (blue: no
    evidence, red: the strongest), as an RGB image of the crop's size; ``alpha``: the map's opacity."""
    if heatmap.shape != (crop.height, crop.width):
        raise ValueError(
            f"The heatmap's shape {heatmap.shape} is not the crop's {(crop.height, crop.width)}."
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], not {alpha}.")
    image = np.asarray(crop.convert("RGB"), dtype=np.float32) / 255.0
    mask = np.clip(np.nan_to_num(heatmap.astype(np.float32)), 0.0, 1.0)
    return Image.fromarray(show_cam_on_image(image, mask, use_rgb=True, image_weight=1.0 - alpha))


class _Logits(nn.Module):
    """The classifier's logits as a plain float32 tensor, as grad-cam expects of a model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits.float()


class _FakeLogOdds:
    """A grad-cam target: logit(fake) - logit(real), whose sigmoid is the score (so its gradient is the
    score's, up to a positive factor per crop that each map's own scaling removes)."""

    def __init__(self, fake: int, real: int) -> None:
        self.fake, self.real = fake, real

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return logits[..., self.fake] - logits[..., self.real]


def _grad_cam(
    model: nn.Module, layer: nn.Module, patch: int | None, pixels: torch.Tensor, target: _FakeLogOdds
) -> np.ndarray:
    """grad-cam's GradCAM of a batch: (batch, height, width) maps over the pixels, each in [0, 1]."""
    reshape = None
    if patch is not None:  # a ViT: its patch tokens as a (batch, channels, rows, columns) map
        reshape = partial(_tokens_to_grid, rows=pixels.shape[-2] // patch, columns=pixels.shape[-1] // patch)
    cam = GradCAM(model=_Logits(model), target_layers=[layer], reshape_transform=reshape)
    try:
        # Autograd, also where a caller runs realfake under inference_mode; the pixels need a gradient
        # for the layer's activations to have one when every weight is frozen.
        with torch.inference_mode(False), torch.enable_grad():
            return cam(input_tensor=pixels.clone().requires_grad_(True), targets=[target] * len(pixels))
    finally:
        # Not grad-cam's context manager: its __exit__ prints and swallows an IndexError.
        cam.activations_and_grads.release()  # its hooks on the layer
        cam.outputs = None  # and the graph it keeps (retain_graph=True) with them


def _tokens_to_grid(tokens: torch.Tensor, rows: int, columns: int) -> torch.Tensor:
    """(batch, 1 + rows * columns, channels) tokens without the class token, as (batch, channels, rows,
    columns)."""
    if tokens.shape[1] < rows * columns:
        raise ModelError(f"The model has {tokens.shape[1]} tokens, fewer than its {rows}x{columns} patches.")
    patches = tokens[:, -rows * columns :]
    return patches.reshape(len(tokens), rows, columns, -1).permute(0, 3, 1, 2)


def _target(model: nn.Module) -> tuple[nn.Module, int | None]:
    """The layer whose activations and gradients make the map, and a ViT's patch side (None: a CNN)."""
    if isinstance(model, RealfakeClipForImageClassification):
        # The head reads the class token after the blocks in feature_layers (hidden_states[k] is the
        # output of encoder.layers[k - 1]), the pooled patch tokens after those in pooled_layers
        # and, with the projection, the class token after the last block. In the
        # earliest of these, the patch tokens reach the class token only through attention, i.e.
        # through its first layer norm. (Later blocks also see their residual stream past it, but
        # that stream's activations are dominated by a few high-norm background tokens.)
        config = model.config
        earliest = min(
            [*config.feature_layers, *config.pooled_layers, config.vision_config.num_hidden_layers]
        )
        block = model.backbone.vision_model.encoder.layers[earliest - 1]
        return block.layer_norm1, config.vision_config.patch_size
    if isinstance(model, ViTForImageClassification):
        # The head reads the class token after the last block, whose attention is the patch tokens'
        # only way to it: their first layer norm there.
        vit = model.vit
        blocks = vit.layers if hasattr(vit, "layers") else vit.encoder.layer  # transformers 5.x / 4.x
        return blocks[-1].layernorm_before, model.config.patch_size
    if isinstance(model, ConvNextForImageClassification):
        return model.convnext.encoder.stages[-1], None
    raise ModelError(
        f"Heatmaps are not available for {type(model).__name__} models: realfake explains its CLIP, "
        "ViT and ConvNeXt classifiers."
    )


def _shown_box(processor, width: int, height: int, out_width: int, out_height: int) -> Box:
    """The part of a width x height crop that the processor's output shows, as (left, top, right,
    bottom) in crop pixels: all of it after a plain resize, less after a centre crop (more, padded,
    where the centre crop is larger than the resized image)."""
    size = size_lookup(processor.size)
    resized, cropped = (width, height), None
    if getattr(processor, "do_resize", True):
        pct, short = getattr(processor, "crop_pct", None), size("shortest_edge")
        if size("height") and size("width"):
            resized = (size("width"), size("height"))
        elif short and pct is not None and short < CONVNEXT_FULL_RESIZE:
            # ConvNextImageProcessor: the shortest edge to shortest_edge / crop_pct, then its centre
            resized, cropped = _keep_aspect(width, height, int(short / pct)), (short, short)
        elif short and pct is not None:
            resized = (short, short)
        elif short and not size("longest_edge"):
            resized = _keep_aspect(width, height, short)
    if getattr(processor, "do_center_crop", False):
        crop_size = size_lookup(processor.crop_size)
        cropped = (crop_size("width"), crop_size("height"))
    shown = cropped or resized
    if shown != (out_width, out_height):
        logger.debug("Cannot follow %s's geometry; the map is stretched over the whole crop", processor)
        return 0.0, 0.0, float(width), float(height)
    left = (resized[0] - shown[0]) // 2 if shown[0] <= resized[0] else -((shown[0] - resized[0]) // 2)
    top = (resized[1] - shown[1]) // 2 if shown[1] <= resized[1] else -((shown[1] - resized[1]) // 2)
    scale_x, scale_y = width / resized[0], height / resized[1]
    return (
        left * scale_x,
        top * scale_y,
        (left + shown[0]) * scale_x,
        (top + shown[1]) * scale_y,
    )


def _keep_aspect(width: int, height: int, short: int) -> tuple[int, int]:
    """(width, height) resized so that the shorter side is ``short``, as transformers rounds it."""
    if width <= height:
        return short, int(short * height / width)
    return int(short * width / height), short


def _to_crop(cam: np.ndarray, box: Box, width: int, height: int) -> np.ndarray:
    """A map over the processor's output, drawn onto the crop's pixels (0 where the crop is not shown)."""
    rows, columns = cam.shape
    left, top, right, bottom = box
    scale_x, scale_y = (right - left) / columns, (bottom - top) / rows
    # from the map's pixel centres to the crop's: crop x + 0.5 = left + (map x + 0.5) * scale_x
    matrix = np.float32([[scale_x, 0, left + 0.5 * scale_x - 0.5], [0, scale_y, top + 0.5 * scale_y - 0.5]])
    warped = cv2.warpAffine(
        np.ascontiguousarray(cam, dtype=np.float32),
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,  # the box's edges as they are; outside it is zeroed below
    )
    xs, ys = np.arange(width) + 0.5, np.arange(height) + 0.5
    shown = ((ys >= top) & (ys < bottom))[:, None] & ((xs >= left) & (xs < right))[None, :]
    return np.clip(np.nan_to_num(warped) * shown, 0.0, 1.0).astype(np.float32)
