"""realfake.explain: Grad-CAM maps of face crops for tiny CLIP, ViT and ConvNeXt classifiers with random
weights and for the bundled default model, on real face photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import FAKE_FACES, REAL_FACES, REPO, TINY_CLIP, TINY_SIZE, save_model
from PIL import Image
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    ResNetConfig,
    ResNetForImageClassification,
    ViTImageProcessor,
)

from realfake import explain
from realfake.architectures import ID2LABEL, LABEL2ID, convnext_from_scratch
from realfake.classifier import FaceClassifier
from realfake.clip import RealfakeClipForImageClassification
from realfake.errors import ModelError
from realfake.faces import FaceDetector, crop_face, whole_frame

CONVNEXT_SIZE = 128  # a ConvNeXt's last stage is 1/32 of the input: 4x4 here (at 32 px, one cell)
FAMILIES = ["clip", "vit", "convnext"]
DEFAULT_MODEL = REPO / "realfake" / "model"  # the bundled one, on the CLIP base in the cache


def face_crop(path, size: int | tuple[int, int]) -> Image.Image:
    """A real face photo (the fixtures are face-centred) cut whole as realfake cuts a crop, or
    resized to a (width, height) that is not square."""
    photo = Image.open(path).convert("RGB")
    if isinstance(size, tuple):
        return photo.resize(size, Image.Resampling.BICUBIC)
    return crop_face(photo, whole_frame(photo), size, margin=0.0)


@pytest.fixture(scope="module")
def clip_base(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("explain-clip-base")
    CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_CLIP)).save_pretrained(folder)
    processor = CLIPImageProcessor(
        size={"shortest_edge": TINY_SIZE}, crop_size={"height": TINY_SIZE, "width": TINY_SIZE}
    )
    processor.save_pretrained(folder)
    return folder


def clip_model(base, feature_layers=(2,)) -> RealfakeClipForImageClassification:
    torch.manual_seed(0)
    model = RealfakeClipForImageClassification.from_base(
        str(base), feature_layers=feature_layers, id2label=ID2LABEL, label2id=LABEL2ID
    )
    torch.nn.init.normal_(model.classifier.weight, std=1.0)  # a head that is not almost zero
    return model


@pytest.fixture(scope="module")
def tiny_clip(clip_base, tmp_path_factory):
    """A realfake CLIP classifier (head on block 2 and the projection) on a random tiny CLIP tower."""
    folder = tmp_path_factory.mktemp("explain-clip")
    return save_model(folder, clip_model(clip_base), CLIPImageProcessor.from_pretrained(clip_base))


@pytest.fixture(scope="module")
def convnext(tmp_path_factory):
    torch.manual_seed(0)
    model, processor = convnext_from_scratch(
        image_size=CONVNEXT_SIZE, depths=(1, 1, 1, 1), hidden_sizes=(8, 8, 16, 16)
    )
    return save_model(tmp_path_factory.mktemp("explain-convnext"), model, processor)


@pytest.fixture(scope="module")
def folders(tiny_clip, tiny_vit, convnext) -> dict:
    return {"clip": tiny_clip, "vit": tiny_vit, "convnext": convnext}


@pytest.fixture(scope="module")
def classifiers(folders) -> dict[str, FaceClassifier]:
    return {
        family: FaceClassifier.from_pretrained(folder, device="cpu") for family, folder in folders.items()
    }


def state(model: torch.nn.Module) -> dict:
    """What heatmaps must leave as it was: weights, flags, gradients, modes and hooks."""
    return {
        "weights": {key: value.clone() for key, value in model.state_dict().items()},
        "requires_grad": {name: p.requires_grad for name, p in model.named_parameters()},
        "grads": {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None},
        "training": {name: m.training for name, m in model.named_modules()},
        "hooks": {
            name: (len(m._forward_hooks), len(m._backward_hooks), len(m._forward_pre_hooks))
            for name, m in model.named_modules()
        },
    }


def assert_map(heatmap: np.ndarray, crop: Image.Image) -> None:
    assert heatmap.shape == (crop.height, crop.width)
    assert heatmap.dtype == np.float32
    assert np.isfinite(heatmap).all()
    assert heatmap.min() >= 0.0 and heatmap.max() <= 1.0


@pytest.mark.parametrize("family", FAMILIES)
def test_a_map_per_crop_of_the_crops_size_in_zero_to_one(classifiers, family):
    classifier = classifiers[family]
    size = classifier.crop_size
    crops = [
        face_crop(REAL_FACES[0], size),
        face_crop(FAKE_FACES[0], size),
        face_crop(REAL_FACES[1], 2 * size),
    ]
    maps = explain.heatmaps(classifier, crops)
    assert len(maps) == len(crops)
    for heatmap, crop in zip(maps, crops):
        assert_map(heatmap, crop)
        assert heatmap.max() == pytest.approx(1.0, abs=0.02) and heatmap.std() > 0.05  # not constant
    assert not np.allclose(maps[0], maps[1], atol=0.05)  # two faces, two maps
    # each crop is mapped on its own: a batch gives the maps one crop at a time gives
    np.testing.assert_allclose(explain.heatmaps(classifier, crops[1:2])[0], maps[1], atol=1e-4)
    assert explain.heatmaps(classifier, []) == []


@pytest.mark.parametrize("family", FAMILIES)
def test_a_crop_that_is_not_square_gets_a_map_of_its_own_shape(classifiers, family):
    crop = face_crop(REAL_FACES[2], (48, 40))
    [heatmap] = explain.heatmaps(classifiers[family], [crop])
    assert_map(heatmap, crop)
    assert heatmap.std() > 0.05


@pytest.mark.parametrize("family", ["clip", "convnext"])
def test_what_the_processors_centre_crop_cuts_away_is_zero(classifiers, family):
    # Both resize the shorter side to the input size, then keep the centre square: of a 64 x 32 crop,
    # columns 16-47.
    crop = face_crop(REAL_FACES[3], (64, 32)) if family == "clip" else face_crop(REAL_FACES[3], (256, 128))
    [heatmap] = explain.heatmaps(classifiers[family], [crop])
    quarter = crop.width // 4
    assert not heatmap[:, :quarter].any() and not heatmap[:, -quarter:].any()
    assert heatmap[:, quarter:-quarter].max() == pytest.approx(1.0, abs=0.02)


def test_a_vit_map_covers_the_whole_crop_it_stretches(classifiers):
    crop = face_crop(REAL_FACES[3], (64, 32))
    [heatmap] = explain.heatmaps(classifiers["vit"], [crop])
    assert heatmap[:, :16].any() or heatmap[:, -16:].any()


@pytest.mark.parametrize("family", FAMILIES)
def test_the_model_and_its_scores_are_left_as_they_were(folders, family):
    classifier = FaceClassifier.from_pretrained(folders[family], device="cpu")  # as loaded, never explained
    model = classifier.model
    crops = [face_crop(path, classifier.crop_size) for path in (REAL_FACES[0], FAKE_FACES[1])]
    scores = classifier.fake_probabilities(crops)
    model.classifier.train()  # a module in training mode stays so (a linear layer: the same scores)
    parameters = list(model.parameters())
    for parameter in parameters[: len(parameters) // 2]:  # frozen and trainable weights both stay so
        parameter.requires_grad_(False)
    parameters[-1].grad = torch.ones_like(parameters[-1])  # a gradient from elsewhere is kept
    before = state(model)
    layer, _ = explain._target(model)
    explain.heatmaps(classifier, crops)
    after = state(model)
    assert after["requires_grad"] == before["requires_grad"]
    assert after["grads"].keys() == before["grads"].keys() and len(after["grads"]) == 1
    assert all(torch.equal(after["grads"][name], grad) for name, grad in before["grads"].items())
    assert after["training"] == before["training"] and model.classifier.training
    assert after["hooks"] == before["hooks"]
    assert not layer._forward_hooks and not layer._backward_hooks and not layer._forward_pre_hooks
    for key, value in before["weights"].items():
        assert torch.equal(after["weights"][key], value), key
    model.classifier.eval()
    assert not any(state(model)["training"].values())
    np.testing.assert_array_equal(classifier.fake_probabilities(crops), scores)


def test_the_clip_map_is_taken_where_the_earliest_feature_the_head_reads_is_made(clip_base):
    blocks = lambda model: model.backbone.vision_model.encoder.layers  # noqa: E731
    both = clip_model(clip_base, feature_layers=(3, 2))
    assert explain._target(both)[0] is blocks(both)[1].layer_norm1  # hidden_states[2]: block 2's output
    projection_only = clip_model(clip_base, feature_layers=())
    assert explain._target(projection_only)[0] is blocks(projection_only)[-1].layer_norm1


def test_heatmaps_also_work_under_inference_mode(classifiers):
    classifier = classifiers["vit"]
    crop = face_crop(FAKE_FACES[2], classifier.crop_size)
    expected = explain.heatmaps(classifier, [crop])[0]
    with torch.inference_mode():
        np.testing.assert_allclose(explain.heatmaps(classifier, [crop])[0], expected, atol=1e-5)


def test_where_the_gradient_is_zero_everywhere_the_map_is_all_zero():
    torch.manual_seed(0)
    model, processor = convnext_from_scratch(
        image_size=CONVNEXT_SIZE, depths=(1, 1, 1, 1), hidden_sizes=(8, 8, 16, 16)
    )
    torch.nn.init.zeros_(model.classifier.weight)  # the logits are the bias, whatever the pixels
    classifier = FaceClassifier(model, processor, name="constant")
    crop = face_crop(REAL_FACES[0], CONVNEXT_SIZE)
    [heatmap] = explain.heatmaps(classifier, [crop])
    assert_map(heatmap, crop)
    assert not heatmap.any()


def test_overlay_draws_the_map_over_the_crop(classifiers):
    classifier = classifiers["vit"]
    crop = face_crop(REAL_FACES[0], (48, 40))
    [heatmap] = explain.heatmaps(classifier, [crop])
    drawn = explain.overlay(crop, heatmap)
    assert drawn.mode == "RGB" and drawn.size == crop.size
    assert np.abs(np.asarray(drawn, np.int16) - np.asarray(crop, np.int16)).mean() > 10
    fainter = explain.overlay(crop, heatmap, alpha=0.2)
    assert (
        np.abs(np.asarray(fainter, np.int16) - np.asarray(crop, np.int16)).mean()
        < np.abs(np.asarray(drawn, np.int16) - np.asarray(crop, np.int16)).mean()
    )
    with pytest.raises(ValueError, match="not the crop's"):
        explain.overlay(crop, heatmap.T)


def test_an_architecture_it_cannot_explain_is_a_model_error():
    config = ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 8],
        depths=[1, 1],
        num_labels=2,
        id2label=ID2LABEL,
        label2id=LABEL2ID,
    )
    processor = ViTImageProcessor(size={"height": TINY_SIZE, "width": TINY_SIZE})
    classifier = FaceClassifier(ResNetForImageClassification(config), processor, name="resnet")
    with pytest.raises(ModelError, match="ResNetForImageClassification") as error:
        explain.heatmaps(classifier, [face_crop(REAL_FACES[0], TINY_SIZE)])
    assert "\n" not in str(error.value)


@pytest.fixture(scope="module")
def default_classifier():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield FaceClassifier.from_pretrained(DEFAULT_MODEL, device="cpu")


def test_the_default_model_maps_real_face_crops(default_classifier):
    detector = FaceDetector()
    crops = []
    for path in (REAL_FACES[0], FAKE_FACES[0]):
        photo = Image.open(path).convert("RGB")
        [face] = detector.detect(photo)
        crops.append(crop_face(photo, face.box, default_classifier.crop_size, default_classifier.crop_margin))
    maps = explain.heatmaps(default_classifier, crops)
    for heatmap, crop in zip(maps, crops):
        assert crop.size == (224, 224)
        assert_map(heatmap, crop)
        assert heatmap.max() == pytest.approx(1.0, abs=0.02) and heatmap.std() > 0.05
    assert np.abs(maps[0] - maps[1]).mean() > 0.05
