"""The real/fake face classifier: a transformers image classifier and its own image processor.

Loaded from a Hub id (optionally at a pinned revision) or a local folder, safetensors weights only,
never remote code. The model's ``id2label`` must name ``real`` and ``fake``; the decision threshold
and the crop margin the model was trained with live in its config, so they travel with the weights.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification

from .calibration import Calibration, VerdictThresholds
from .clip import fast_bf16  # importing it registers the CLIP classifier with the Auto classes
from .errors import ModelError
from .faces import CROP_MARGIN

logger = logging.getLogger(__name__)

LABELS = ("real", "fake")
THRESHOLD_KEY = "realfake_threshold"
CROP_MARGIN_KEY = "realfake_crop_margin"
MIRROR_KEY = "realfake_mirror_average"  # score each face and its mirror image, average the two
ZOOMS_KEY = "realfake_zooms"  # also score the centre of each crop at these shares of its side, average
DEFAULT_THRESHOLD = 0.5
RESULTS_FILE = "all_results.json"  # the validation metrics train/train.py saves with a model
BATCH_SIZE = 32


class FaceClassifier:
    """Scores face crops with the probability that they were generated.

    Build one with :meth:`from_pretrained`.
    """

    def __init__(self, model, processor, name: str, revision: str | None = None) -> None:
        self.model = model.eval()
        self.processor = processor
        self.name = name
        self.revision = revision
        labels = {str(label).lower(): int(index) for index, label in model.config.id2label.items()}
        missing = [label for label in LABELS if label not in labels]
        if missing:
            found = ", ".join(sorted(labels)) or "none"
            raise ModelError(
                f"Model {name} is not a real/fake classifier: its labels ({found}) "
                f"lack {' and '.join(missing)}."
            )
        self._indices = [labels["real"], labels["fake"]]

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike, revision: str | None = None, device: str | None = None
    ) -> FaceClassifier:
        """Load a classifier from a local folder or a Hub model id.

        Raises:
            ModelError: the model cannot be found or loaded, or is not a real/fake classifier.
        """
        name = str(name_or_path)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model, processor = load_model_files(name, revision)
        logger.info("Loaded classifier %s%s", name, f"@{revision}" if revision else "")
        return cls(model.to(device), processor, name=name, revision=revision)

    @property
    def threshold(self) -> float:
        """The P(fake) (calibrated, where the model has a calibration) from which a face is labelled
        fake, as set by training."""
        return float(getattr(self.model.config, THRESHOLD_KEY, None) or DEFAULT_THRESHOLD)

    @property
    def calibration(self) -> Calibration | None:
        """The map from the model's raw score to a calibrated P(fake), as fitted after training
        (see :mod:`realfake.calibration`); None for a model without one, whose raw score is used."""
        return Calibration.from_config(self.model.config)

    def verdict_thresholds(self, threshold: float | None = None) -> VerdictThresholds:
        """The two thresholds of the verdicts real / uncertain / fake, as set after training. A model
        without them has no uncertain band: fake from ``threshold`` (default: the model's decision
        threshold) up, real below."""
        stored = VerdictThresholds.from_config(self.model.config)
        return stored or VerdictThresholds.binary(self.threshold if threshold is None else threshold)

    @property
    def crop_margin(self) -> float:
        """The crop margin the model was trained with (see :func:`realfake.faces.crop_box`)."""
        margin = getattr(self.model.config, CROP_MARGIN_KEY, None)
        return CROP_MARGIN if margin is None else float(margin)

    @property
    def mirror_average(self) -> bool:
        """Whether a face's score is the mean of its own and its mirror image's, as set by training."""
        return bool(getattr(self.model.config, MIRROR_KEY, False))

    @property
    def zooms(self) -> tuple[float, ...]:
        """The views of each crop that are scored and averaged, as shares of its side kept around
        its centre (1.0: the crop as it is), as set by training."""
        return tuple(float(zoom) for zoom in getattr(self.model.config, ZOOMS_KEY, None) or (1.0,))

    @property
    def input_size(self) -> int:
        """The side of the square crop to hand the processor."""
        return processor_input_size(self.processor, default=getattr(self.model.config, "image_size", 224))

    @property
    def crop_size(self) -> int:
        """The side to cut face crops at: the input side, or enough more that the smallest zoomed
        view still has that many pixels."""
        return math.ceil(round(self.input_size / min(self.zooms), 6))

    def validation_results(self) -> dict:
        """The metrics saved with the model by train/train.py, or {} when it has none."""
        try:
            if Path(self.name).is_dir():
                path = Path(self.name) / RESULTS_FILE
            else:
                from huggingface_hub import hf_hub_download

                path = Path(hf_hub_download(self.name, RESULTS_FILE, revision=self.revision))
            return json.loads(path.read_text())
        except Exception:  # a model without results, or a Hub that cannot be reached
            logger.info("No %s for model %s", RESULTS_FILE, self.name)
            return {}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def fake_probabilities(
        self, crops: Sequence[Image.Image], batch_size: int = BATCH_SIZE, calibrated: bool = True
    ) -> np.ndarray:
        """P(fake) for each crop, in order, as float64 in [0, 1].

        A crop's raw score is the mean over its views: each of :attr:`zooms`, and with
        :attr:`mirror_average` the mirror image of each, all in one batch; it is then mapped through
        the model's :attr:`calibration` unless ``calibrated`` is False.
        """
        scores, options = [], {"bf16": True} if fast_bf16(self.model) else {}
        for start in range(0, len(crops), batch_size):
            batch = crops[start : start + batch_size]
            views = [zoom_in(crop, zoom) for zoom in self.zooms for crop in batch]
            inputs = self.processor(images=views, return_tensors="pt")
            pixels = inputs["pixel_values"].to(self.device, self.model.dtype)
            if self.mirror_average:
                pixels = torch.cat([pixels, pixels.flip(-1)])
            fake = self.fake_from_logits(self.model(pixel_values=pixels, **options).logits)
            scores.append(fake.view(-1, len(batch)).mean(0).cpu().numpy())
        if not scores:
            return np.zeros(0, dtype=np.float64)
        raw = np.concatenate(scores).astype(np.float64)
        calibration = self.calibration if calibrated else None
        return raw if calibration is None else calibration(raw)

    def fake_from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """P(fake), as float32, from the model's logits for a batch (whatever its label order)."""
        return torch.softmax(logits[:, self._indices].float(), dim=-1)[:, 1]


def zoom_in(crop: Image.Image, zoom: float) -> Image.Image:
    """The centre of ``crop``, ``zoom`` of its width and height (the crop itself for 1.0)."""
    if zoom >= 1.0:
        return crop
    margin_x, margin_y = crop.width * (1 - zoom) / 2, crop.height * (1 - zoom) / 2
    return crop.crop((margin_x, margin_y, crop.width - margin_x, crop.height - margin_y))


def size_lookup(size) -> Callable[[str], int | None]:
    """``key -> value`` for an image processor's size (a dict, or a SizeDict in transformers 5)."""
    return size.get if isinstance(size, dict) else lambda key: getattr(size, key, None)


def processor_input_size(processor, default: int = 224) -> int:
    """The side, in pixels, of the images an image processor produces."""
    get = size_lookup(processor.size)
    for key in ("height", "shortest_edge", "longest_edge"):
        if get(key):
            return int(get(key))
    return int(default)


def load_model_files(name: str, revision: str | None = None, **model_kwargs):
    """An image classifier in float32 and its image processor, from a folder or a Hub id:
    safetensors weights only, never remote code; ``model_kwargs`` go to ``from_pretrained``.

    Raises:
        ModelError: no such folder, or it cannot be found or loaded (one line that says why).
    """
    if _looks_like_path(name) and not Path(name).is_dir():
        raise ModelError(f"No model folder at {name}.")
    try:
        model = AutoModelForImageClassification.from_pretrained(
            name,
            revision=revision,
            use_safetensors=True,
            trust_remote_code=False,
            dtype=torch.float32,  # whatever the checkpoint was saved in (the bundled one: float16)
            **model_kwargs,
        )
        processor = AutoImageProcessor.from_pretrained(name, revision=revision, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as error:
        raise ModelError(_load_failure(name, error)) from None
    return model, processor


def _looks_like_path(name: str) -> bool:
    # A Hub id is "name" or "owner/name"; anything else that names a place on disk is a path.
    return Path(name).exists() or name.startswith((".", "~", "/")) or name.count("/") > 1


def _load_failure(name: str, error: BaseException) -> str:
    text = str(error)
    if Path(name).is_dir():
        if "safetensors" in text or "model.safetensors" in text:
            return f"Model folder {name} has no model.safetensors (only safetensors weights are loaded)."
        return f"Model folder {name} could not be loaded: {_first_line(text)}."
    if (
        os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        or "offline" in text.lower()
        or "connect" in text.lower()
        or "cache" in text.lower()
    ):
        return (
            f"Model {name} is not in the local Hugging Face cache and the Hub cannot be reached; "
            "connect once to download it, or pass a local model folder."
        )
    return f"Model {name} could not be loaded from the Hugging Face Hub: {_first_line(text)}."


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["unknown error"])[0].rstrip(".")
