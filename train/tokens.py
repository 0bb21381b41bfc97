"""The frozen CLIP backbone's tokens of every crop, computed once per crop and view and cached.

A head on a frozen backbone (``--tune head`` on a CLIP base) trains on what the backbone computes
for each crop, which does not change from epoch to epoch: so the class and pooled patch tokens of
every block are computed once for each crop as it is (view 0) and for each augmented view (one per
``--feature_views`` with the run's own augmentation, one per ``--extra_views`` entry with its own
settings), and cached beside the data by ``datasets`` under a fingerprint of all they depend on.
train/train.py trains on them; train/probe_heads.py, train/adapt_protocol.py and train/memory.py
read the same cache.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import replace
from typing import TYPE_CHECKING

import datasets
import torch

from realfake.clip import RealfakeClipForImageClassification, fast_bf16
from train.augment import training_augmentation

if TYPE_CHECKING:
    from train.train import DataArguments

TOKENS_VERSION = 2  # bump when the cached CLIP tokens change meaning, to invalidate every cache
TOKEN_COLUMNS = ("class_tokens", "patch_means")  # what cache_class_tokens stores per crop
# aug_* settings added after caches were built: left out of augment_key at 0.0, so those caches still match
LATER_AUG_SETTINGS = ("aug_upload_p", "aug_thumbnail_p")


def augment_key(data_args: DataArguments) -> str:
    """The augmentation settings as text, part of the cached tokens' fingerprint."""
    return json.dumps(
        {
            k: v
            for k, v in vars(data_args).items()
            if k.startswith("aug_") and not (k in LATER_AUG_SETTINGS and v == 0.0)
        }
    )


def uses_cached_tokens(model) -> bool:
    """Whether only a head on a frozen CLIP backbone trains, so the backbone's tokens can be
    computed once per crop (and view) and cached, instead of every epoch."""
    return isinstance(model, RealfakeClipForImageClassification) and model.config.tune == "head"


def cache_class_tokens(
    model: RealfakeClipForImageClassification,
    processor,
    dataset: datasets.Dataset,
    view: int,
    augment=None,
    augment_key: str = "",
    seed: int = 0,
    batch_size: int = 32,
) -> datasets.Dataset:
    """``dataset`` with each crop's image replaced by the backbone's class tokens (``class_tokens``,
    layers x hidden, float16) and pooled patch tokens (``patch_means``, the same shape), exactly as
    realfake computes them when it scores a face.

    View 0 is the crop as it is; view v > 0 is one augmented copy of every crop, drawn from a seed of
    (``seed``, v, batch), so a view is the same in every run. datasets caches the result beside the
    data under a fingerprint of all it depends on: a second run (another fold of the protocol, a
    resumed run) reads it back at once.
    """
    key = [
        TOKENS_VERSION,
        dataset._fingerprint,
        model.config.base_model,
        model.config.bf16_inference,
        *(["onnxruntime"] if model.config.backbone_engine == "onnxruntime" else []),  # torch: keys as before
        processor.to_json_string(),
        view,
        [seed, augment_key] if view else None,
    ]
    fingerprint = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:32]
    model.eval()

    def embed(batch: dict, rows: list[int]) -> dict:
        images = [image.convert("RGB") for image in batch["image"]]
        if view:
            random.seed(f"{seed}-{view}-{rows[0]}")
            torch.manual_seed(hash((seed, view, rows[0])) % 2**31)
            images = [augment(image) for image in images]
        pixels = processor(images=images, return_tensors="pt")["pixel_values"].to(model.device)
        with torch.inference_mode():
            tokens = model.block_tokens(pixels, bf16=fast_bf16(model))
        return {key: part.to(torch.float16).cpu().numpy() for key, part in zip(TOKEN_COLUMNS, tokens)}

    tokens = dataset.map(
        embed,
        batched=True,
        batch_size=batch_size,
        with_indices=True,
        remove_columns=["image"],
        new_fingerprint=fingerprint,
        desc=f"CLIP tokens, {'crops as they are' if not view else f'augmented view {view}'}",
    )
    return tokens.with_format("torch", columns=[*TOKEN_COLUMNS, "label"])


def view_settings(data_args: DataArguments) -> list[DataArguments]:
    """The augmentation settings of each augmented view: ``--feature_views`` times the run's own,
    then one per ``--extra_views`` entry with its ``aug_*=value`` changes."""
    views = [data_args] * data_args.feature_views
    for entry in data_args.extra_views:
        changes = {}
        for change in entry.split(","):
            name, _, value = change.partition("=")
            name = name.strip()
            if not name.startswith("aug_") or not hasattr(data_args, name) or not value:
                raise SystemExit(f"train: error: --extra_views: {change!r} is not aug_SETTING=VALUE.")
            kind = type(getattr(data_args, name))
            try:
                changes[name] = kind(json.loads(value.strip()))
            except (ValueError, TypeError):
                raise SystemExit(f"train: error: --extra_views: {name} needs a {kind.__name__}.") from None
        views.append(replace(data_args, **changes))
    return views


def token_views(model, processor, dataset, data_args: DataArguments, training_args) -> list[datasets.Dataset]:
    """The cached tokens of every crop as it is (first) and of each augmented view
    (``view_settings``), computed where not cached yet."""
    views = [
        cache_class_tokens(model, processor, dataset, 0, batch_size=training_args.per_device_eval_batch_size)
    ]
    for view, settings in enumerate(view_settings(data_args), start=1):
        augment = training_augmentation(processor, settings)
        views.append(
            cache_class_tokens(
                model, processor, dataset, view, augment, augment_key(settings), training_args.seed,
                training_args.per_device_eval_batch_size,
            )
        )  # fmt: skip
    return views
