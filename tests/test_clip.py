"""Classifiers on a CLIP base: train.py end to end with a tiny CLIP tower (frozen backbone with cached
class and pooled patch tokens, LayerNorm, LoRA through peft), saved folders that hold only what training changed, and
realfake loading and scoring them."""

from __future__ import annotations

import csv
import json

import datasets
import numpy as np
import pytest
import torch
from conftest import FAKE_FACES, REAL_FACES, TINY_CLIP
from PIL import Image
from safetensors.torch import load_file
from test_train import crops, train_args  # noqa: F401  (the module's crops fixture)
from transformers import (
    AutoModelForImageClassification,
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

import realfake
from realfake.clip import RealfakeClipForImageClassification
from realfake.errors import ModelError
from train import train

CLIP_FLAGS = ["--mirror_average", "false", "--feature_layers", "1", "2", "--threshold_max_fpr", "0.2"]


@pytest.fixture(scope="module")
def clip_base(tmp_path_factory):
    """A randomly initialised CLIP vision tower with projection, saved as a base folder."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("clip-base")
    CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_CLIP)).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        folder
    )
    return folder


VIEWS = ("--feature_views", "1", "--extra_views", "aug_thumbnail_p=1.0")  # three cached views in all


def clip_args(crops, output, base, *extra):  # noqa: F811
    args = train_args(crops, output, *CLIP_FLAGS, *extra)
    at = args.index("--image_size")  # the tiny ConvNeXt flags do not apply to a CLIP base
    del args[at : at + 4]
    return [*args, "--model_name_or_path", str(base)]


@pytest.fixture(scope="module")
def head_run(crops, clip_base, tmp_path_factory):  # noqa: F811
    output = tmp_path_factory.mktemp("clip-head")
    metrics = train.main(
        clip_args(crops, output, clip_base, *VIEWS, "--balance_sources", "--pooled_layers", "2")
    )
    return output, metrics, crops


def test_a_head_on_cached_tokens_saves_only_the_head(head_run, clip_base):
    output, _, _ = head_run
    weights = load_file(output / "model.safetensors")
    head = {"classifier.weight", "classifier.bias"}
    assert set(weights) == head | {
        f"head_norm.{k}" for k in ("running_mean", "running_var", "num_batches_tracked")
    }
    # class tokens of blocks 1 and 2, block 2's mean patch token (hidden 16 each) and the projection (8)
    assert weights["classifier.weight"].shape == (2, 16 + 16 + 16 + 8)
    config = json.loads((output / "config.json").read_text())
    assert config["base_model"] == str(clip_base) and config["tune"] == "head"
    assert config["realfake_mirror_average"] is False and config["pooled_layers"] == [2]


def test_the_saved_folder_loads_on_its_base_and_scores_as_training_did(head_run, clip_base):
    output, metrics, crops_dir = head_run
    model = AutoModelForImageClassification.from_pretrained(output)
    assert isinstance(model, RealfakeClipForImageClassification)
    base = CLIPVisionModelWithProjection.from_pretrained(clip_base).state_dict()
    for key, value in model.backbone.state_dict().items():
        torch.testing.assert_close(value, base[key])
    # realfake's scores on the held-out crops are the ones training wrote from cached tokens
    with open(output / train.SCORES_FILE, newline="") as file:
        held = [row for row in csv.DictReader(file) if row["set"] == "heldout"]
    classifier = realfake.FaceClassifier.from_pretrained(output, device="cpu")
    by_file = {row["file"]: row for row in held}
    chosen = datasets.load_from_disk(crops_dir).filter(lambda file: file in by_file, input_columns="file")
    scores = classifier.fake_probabilities([image.convert("RGB") for image in chosen["image"]])
    expected = [float(by_file[file]["fake_probability"]) for file in chosen["file"]]
    np.testing.assert_allclose(scores, expected, atol=1e-5)  # written with 6 decimals
    assert metrics["heldout_n"] == len(held)


def test_the_second_run_reads_the_cached_tokens(crops, clip_base, head_run, tmp_path, monkeypatch):  # noqa: F811
    def no_backbone(self, pixel_values):
        raise AssertionError("the backbone ran although its tokens were cached")

    monkeypatch.setattr(RealfakeClipForImageClassification, "block_tokens", no_backbone)
    train.main(clip_args(crops, tmp_path / "again", clip_base, *VIEWS, "--pooled_layers", "1"))


@pytest.mark.parametrize("tune", ["layernorm", "lora"])
def test_tuned_norms_and_lora_adapters_train_save_and_load(crops, clip_base, tmp_path, tune):  # noqa: F811
    output = tmp_path / tune
    train.main(clip_args(crops, output, clip_base, "--tune", tune, "--max_steps", "2"))
    saved = set(load_file(output / "model.safetensors"))
    assert {"classifier.weight", "classifier.bias", "head_norm.running_mean"} <= saved
    marker = "lora_" if tune == "lora" else "layer_norm"
    assert any(marker in key for key in saved)
    assert not any("q_proj.weight" in key or "base_layer" in key for key in saved)  # no frozen weight
    model = AutoModelForImageClassification.from_pretrained(output)
    trained = load_file(output / "model.safetensors")
    for key, value in trained.items():
        torch.testing.assert_close(model.state_dict()[key], value)
    detector = realfake.load_detector(output, device="cpu")
    faces = detector.predict(REAL_FACES[0])
    assert len(faces) == 1 and 0 <= faces[0].fake_probability <= 1


def test_the_bundled_style_model_scores_real_photos_through_the_pipeline(head_run):
    output, _, _ = head_run
    detector = realfake.load_detector(output, device="cpu")
    for path in [*REAL_FACES[:2], *FAKE_FACES[:2]]:
        faces = detector.predict(Image.open(path))
        assert len(faces) == 1 and faces[0].label in ("real", "fake")


def test_head_tuning_refuses_test_time_views(crops, clip_base, tmp_path):  # noqa: F811
    with pytest.raises(SystemExit, match="--mirror_average false"):
        train.main([*clip_args(crops, tmp_path, clip_base), "--mirror_average", "true"])


def test_a_bad_block_a_base_that_is_not_clip_and_a_base_with_missing_weights_are_clear_errors(
    clip_base, tiny_convnext, tmp_path
):
    with pytest.raises(ValueError, match="feature_layers must be blocks 1-3"):
        RealfakeClipForImageClassification.from_base(str(clip_base), feature_layers=[4])
    with pytest.raises(ValueError, match="pooled_layers must be blocks 1-3"):
        RealfakeClipForImageClassification.from_base(str(clip_base), feature_layers=[1], pooled_layers=[0])
    with pytest.raises(ModelError, match="is not a CLIP model"):
        RealfakeClipForImageClassification.from_base(str(tiny_convnext))
    base = CLIPVisionModelWithProjection.from_pretrained(clip_base)
    state = {k: v for k, v in base.state_dict().items() if k != "visual_projection.weight"}
    base.save_pretrained(tmp_path, state_dict=state)
    with pytest.raises(ModelError, match="has no weight for visual_projection.weight"):
        RealfakeClipForImageClassification.from_base(str(tmp_path))


def test_balanced_sources_weigh_every_source_alike(crops):  # noqa: F811
    dataset = datasets.load_from_disk(crops)
    rows = list(range(len(dataset)))
    weights = np.array(train.source_weights(dataset, rows))
    sources = np.array(dataset["source"])
    assert weights.mean() == pytest.approx(1.0)
    totals = {source: weights[sources == source].sum() for source in set(sources)}
    assert max(totals.values()) == pytest.approx(min(totals.values()))  # each source's total is the same


def test_balanced_classes_weigh_real_and_fake_alike_and_each_source_alike_within_its_class(crops):  # noqa: F811
    dataset = datasets.load_from_disk(crops)
    rows = [
        i for i, source in enumerate(dataset["source"]) if source != "roeishc"
    ]  # two real sources, one fake
    weights = np.array(train.source_weights(dataset, rows, balance_classes=True))
    sources, labels = np.array(dataset["source"])[rows], np.array(dataset["label"])[rows]
    assert len(set(sources[labels == 0])) == 2 and len(set(sources[labels == 1])) == 1
    assert weights.mean() == pytest.approx(1.0)
    assert weights[labels == 0].sum() == pytest.approx(weights[labels == 1].sum())
    for value in (0, 1):
        totals = [weights[sources == source].sum() for source in set(sources[labels == value])]
        assert max(totals) == pytest.approx(min(totals))


def test_the_weighted_loss_is_the_weighted_mean_of_the_crops_losses():
    model = torch.nn.Linear(3, 2)

    class Model(torch.nn.Module):
        def forward(self, class_tokens):
            return type("Out", (), {"logits": model(class_tokens)})()

    trainer = train.DistillationTrainer.__new__(train.DistillationTrainer)
    trainer.teachers = []
    tokens, labels = torch.randn(5, 3), torch.tensor([0, 1, 1, 0, 1])
    weights = torch.tensor([0.5, 2.0, 1.0, 1.0, 0.5])
    loss = trainer.compute_loss(Model(), {"class_tokens": tokens, "labels": labels, "weights": weights})
    each = torch.nn.functional.cross_entropy(model(tokens), labels, reduction="none")
    torch.testing.assert_close(loss, (each * weights).sum() / weights.sum())
