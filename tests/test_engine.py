"""The ONNX Runtime engine on the real base's int8 graph: built beside the base (also for a base built
before engines), every block's tokens close to torch's on real face crops, gradients still from
torch, and one sentence for a graph it does not know."""

from __future__ import annotations

import csv
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import onnx
import pytest
import torch
from conftest import REAL_FACES, REPO
from PIL import Image
from test_base import int8_graph, tiny_clip
from test_clip import CLIP_FLAGS
from test_train import crops, train_args  # noqa: F401  (the module's crops fixture)
from transformers import AutoImageProcessor

import realfake
from realfake import base
from realfake.clip import RealfakeClipConfig, RealfakeClipForImageClassification
from realfake.cpu import EXACT_INT8_OPTION, int8_products_saturate
from realfake.engine import ENGINE_FILE, OUTPUTS_KEY, OnnxBackbone, block_outputs
from realfake.errors import ModelError
from train import train


@pytest.fixture(scope="module")
def engine_model() -> RealfakeClipForImageClassification:
    base.ensure_base()  # the real base, built from the registry package (CI builds it for the default model)
    return RealfakeClipForImageClassification.from_base(
        base.BASE_ALIAS, feature_layers=[11], pooled_layers=[9], backbone_engine="onnxruntime", num_labels=2
    ).eval()


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    processor = AutoImageProcessor.from_pretrained(base.resolve_base(base.BASE_ALIAS))
    faces = [Image.open(path).convert("RGB") for path in REAL_FACES[:2]]
    return processor(images=faces, return_tensors="pt")["pixel_values"]


def test_the_engine_is_built_again_where_a_base_lacks_it(engine_model):
    path = base.base_dir() / ENGINE_FILE
    path.unlink(missing_ok=True)  # as a base built before realfake had engines
    assert base.engine_file(base.BASE_ALIAS) == path and path.is_file()
    assert not list(base.base_dir().glob("*.partial"))
    graph = onnx.load(str(path))
    stored = {prop.key: prop.value for prop in graph.metadata_props}
    assert json.loads(stored[OUTPUTS_KEY]) == block_outputs(graph.graph, 12) == OnnxBackbone(path).outputs


def test_an_engine_built_before_it_named_its_outputs_still_loads(engine_model, tmp_path):
    graph = onnx.load(str(base.engine_file(base.BASE_ALIAS)))
    names = block_outputs(graph.graph, 12)
    del graph.metadata_props[:]  # as an engine built before the names were stored
    older = tmp_path / ENGINE_FILE
    onnx.save(graph, str(older))
    assert OnnxBackbone(older).outputs == names


def test_every_block_of_the_engine_is_close_to_torch(engine_model, pixels):
    with torch.inference_mode():
        assert engine_model.serves_on_engine(pixels)
        engine_tokens = engine_model.block_tokens(pixels)
        alone = engine_model.block_tokens(pixels[1:])  # a face's tokens do not depend on its batch
        engine_model.config.backbone_engine = "torch"
        try:
            torch_tokens = engine_model.block_tokens(pixels)
        finally:
            engine_model.config.backbone_engine = "onnxruntime"
    for ours, by_itself in zip(engine_tokens, alone):
        torch.testing.assert_close(ours[1:], by_itself)
    for ours, theirs in zip(engine_tokens, torch_tokens):
        assert ours.shape == theirs.shape == (2, 12, 768)
        assert not torch.equal(ours, theirs)  # int8 activations: close, not the same
        similarity = torch.nn.functional.cosine_similarity(ours, theirs, dim=-1)
        assert similarity.min() > 0.9, similarity


def test_gradients_come_from_torch(engine_model, pixels):
    assert torch.is_grad_enabled() and not engine_model.serves_on_engine(pixels)
    with torch.no_grad():
        assert engine_model.serves_on_engine(pixels)


def test_a_head_trained_on_the_engine_scores_as_it_trained(crops, tmp_path):  # noqa: F811
    output = tmp_path / "engine-head"
    args = train_args(crops, output, *CLIP_FLAGS, "--feature_views", "0", "--backbone_engine", "onnxruntime")
    at = args.index("--image_size")  # the tiny ConvNeXt flags do not apply to a CLIP base
    del args[at : at + 4]
    train.main([*args, "--model_name_or_path", base.BASE_ALIAS])
    assert json.loads((output / "config.json").read_text())["backbone_engine"] == "onnxruntime"
    with open(output / train.SCORES_FILE, newline="") as file:
        by_file = {row["file"]: row for row in csv.DictReader(file) if row["set"] == "heldout"}
    chosen = datasets.load_from_disk(crops).filter(lambda file: file in by_file, input_columns="file")
    classifier = realfake.FaceClassifier.from_pretrained(output, device="cpu")
    scores = classifier.fake_probabilities([image.convert("RGB") for image in chosen["image"]])
    expected = [float(by_file[file]["fake_probability"]) for file in chosen["file"]]
    np.testing.assert_allclose(scores, expected, atol=1e-5)  # written with 6 decimals


def test_a_graph_without_the_block_nodes_is_one_sentence():
    with pytest.raises(ModelError, match="has no node /vision_model/encoder/layers.0/Add_1"):
        block_outputs(int8_graph(tiny_clip()).graph, 2)


def test_a_base_folder_without_an_engine_says_so(tmp_path):
    with pytest.raises(ModelError, match="has no ONNX Runtime engine"):
        base.engine_file(str(tmp_path))


def test_the_engine_serves_frozen_heads_only():
    with pytest.raises(ValueError, match="needs tune head"):
        RealfakeClipConfig(feature_layers=[11], tune="lora", backbone_engine="onnxruntime")
    with pytest.raises(ValueError, match="backbone_engine must be one of"):
        RealfakeClipConfig(feature_layers=[11], backbone_engine="tensorrt")


def test_the_engine_asks_for_exact_int8_products_only_where_they_saturate():
    # where they saturate (x86 without VNNI) real faces score as fakes; where not, the option costs 3x
    options = OnnxBackbone(base.engine_file(base.BASE_ALIAS)).session.get_session_options()
    if int8_products_saturate():
        assert options.get_session_config_entry(EXACT_INT8_OPTION) == "1"
    else:
        with pytest.raises(RuntimeError, match="does not have configuration"):
            options.get_session_config_entry(EXACT_INT8_OPTION)
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    cpuinfo = Path("/proc/cpuinfo")
    flags = set(cpuinfo.read_text().split()) if cpuinfo.exists() else set()
    if flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:  # VNNI and AMX kernels are exact
        assert not int8_products_saturate()


def test_a_probe_that_cannot_run_asks_for_exact_products(monkeypatch):
    import onnxruntime

    def broken(*args, **kwargs):
        raise RuntimeError("no MatMulInteger kernel")

    monkeypatch.setattr(onnxruntime, "InferenceSession", broken)
    int8_products_saturate.cache_clear()
    try:
        assert int8_products_saturate() is True
    finally:
        int8_products_saturate.cache_clear()


@pytest.mark.skipif(
    platform.machine() != "x86_64" or shutil.which("qemu-x86_64") is None, reason="needs qemu-user on x86_64"
)
def test_an_avx2_only_cpu_is_found_to_saturate():
    # an emulated Haswell (AVX2, no VNNI), where the default model's real faces scored as fakes
    probe = "from realfake.cpu import int8_products_saturate; print(int8_products_saturate())"
    done = subprocess.run(
        ["qemu-x86_64", "-cpu", "Haswell-noTSX", sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert done.stdout.strip() == "True", done.stderr[-2000:]
