"""Real/fake classifiers built from a config, for training from scratch, tests and benchmarks.

Users with internet fine-tune a pretrained checkpoint instead (see train/); these builders give a
model and its matching image processor with ``id2label`` = {0: real, 1: fake} and no download.
"""

from __future__ import annotations

from transformers import (
    ConvNextConfig,
    ConvNextForImageClassification,
    ConvNextImageProcessor,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessor,
)

ID2LABEL = {0: "real", 1: "fake"}
LABEL2ID = {label: index for index, label in ID2LABEL.items()}
# ImageNet statistics, as the pretrained checkpoints use, so either start shares one processor.
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def convnext_from_scratch(
    image_size: int = 128,
    depths: tuple[int, ...] = (2, 2, 6, 2),
    hidden_sizes: tuple[int, ...] = (40, 80, 160, 320),
    **config,
) -> tuple[ConvNextForImageClassification, ConvNextImageProcessor]:
    """A randomly initialised ConvNeXt (default: the "atto" size) for ``image_size`` crops."""
    model = ConvNextForImageClassification(
        ConvNextConfig(
            depths=list(depths),
            hidden_sizes=list(hidden_sizes),
            num_labels=2,
            id2label=ID2LABEL,
            label2id=LABEL2ID,
            image_size=image_size,
            **config,
        )
    )
    # crop_pct=1.0: the square face crop is resized whole, never centre-cropped again.
    processor = ConvNextImageProcessor(
        size={"shortest_edge": image_size}, crop_pct=1.0, image_mean=MEAN, image_std=STD
    )
    return model, processor


def vit_from_scratch(
    image_size: int = 128,
    patch_size: int = 16,
    hidden_size: int = 192,
    num_hidden_layers: int = 6,
    num_attention_heads: int = 3,
    **config,
) -> tuple[ViTForImageClassification, ViTImageProcessor]:
    """A randomly initialised ViT (default: about ViT-Tiny width) for ``image_size`` crops."""
    model = ViTForImageClassification(
        ViTConfig(
            image_size=image_size,
            patch_size=patch_size,
            hidden_size=hidden_size,
            num_hidden_layers=num_hidden_layers,
            num_attention_heads=num_attention_heads,
            intermediate_size=4 * hidden_size,
            num_labels=2,
            id2label=ID2LABEL,
            label2id=LABEL2ID,
            **config,
        )
    )
    processor = ViTImageProcessor(
        size={"height": image_size, "width": image_size}, image_mean=MEAN, image_std=STD
    )
    return model, processor
