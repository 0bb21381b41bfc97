"""Teach a model a new generator from a few dozen of its pictures, on a CPU, in minutes.

    python -m realfake adapt FAKE_DIR [--real REAL_DIR] --output MODEL [--model M]

A model that is a linear head on a frozen CLIP backbone can carry an *adaptation memory*
(:data:`MEMORY_FILE`, settings under :data:`MEMORY_KEY` in its config): the head's standardised
inputs for a sample of its training crops of every source, and for a sample of held-out crops of
every source that it never trained on. Adapting crops the faces in the new generator's pictures (and
in the user's own real photos, if given) exactly as realfake crops any face, computes the same
inputs, and fits the head again on the memory's training crops and the new faces, each new folder
weighing as one more source. Calibration, the decision threshold and the verdict thresholds are then
fitted again, under the rules training used, on scores no head was fitted on: the memory's held-out
crops scored by the new head, and each new face scored by a head fitted without it (cross-fitting).
The new model folder holds the new head, the memory with the new faces added (so that adapting
again keeps what this taught), and ``adapt.json`` with the figures it measured.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .calibration import (
    CALIBRATION_KEY,
    VERDICTS_KEY,
    Calibration,
    VerdictThresholds,
    choose_verdict_thresholds,
    fit_calibration,
)
from .classifier import THRESHOLD_KEY, FaceClassifier
from .clip import RealfakeClipForImageClassification, as_cached, fast_bf16
from .errors import ModelError, RealfakeError
from .faces import FaceDetector, crop_face
from .folders import find_images
from .images import load_image
from .metrics import equal_error_rate, threshold_at_fpr

logger = logging.getLogger(__name__)

MEMORY_KEY = "realfake_adapt"  # {"file": MEMORY_FILE, "C": ...}
MEMORY_FILE = "adapt_memory.safetensors"
RESULTS_FILE = "adapt.json"
PER_SOURCE = 64  # training crops a source keeps in the memory
# Held-out crops a source keeps for calibration: 100 real ones let the rule "at most 1% of real faces
# called fake" hold within each real source, as in training (realfake.calibration).
HELD_OUT_REAL = 100
HELD_OUT_FAKE = 50
DEFAULT_C = 0.01  # inverse L2 strength of the head's logistic regression
MAX_FPR = 0.02  # the decision threshold keeps at most this share of real faces above it
MIN_FACES = 5
FOLDS = 5


@dataclass
class Memory:
    """The head's standardised inputs for a sample of crops: ``labels`` 1 = fake; ``held_out``
    marks crops no head was fitted on (they fit the calibration)."""

    features: np.ndarray  # (crops, features) float32
    labels: np.ndarray  # (crops,) int
    sources: list[str]
    held_out: np.ndarray  # (crops,) bool

    def __len__(self) -> int:
        return len(self.labels)

    def add(self, features: np.ndarray, label: int, source: str, held_out: bool = False) -> Memory:
        """A memory with these crops (all of one ``label`` and ``source``) added."""
        n = len(features)
        return Memory(
            features=np.concatenate([self.features, np.asarray(features, dtype=np.float32)]),
            labels=np.concatenate([self.labels, np.full(n, label)]),
            sources=[*self.sources, *([source] * n)],
            held_out=np.concatenate([self.held_out, np.full(n, held_out)]),
        )

    def part(self, held_out: bool) -> Memory:
        rows = self.held_out == held_out
        return Memory(
            self.features[rows],
            self.labels[rows],
            [s for s, r in zip(self.sources, rows) if r],
            self.held_out[rows],
        )

    def save(self, folder: str | Path) -> None:
        from safetensors.numpy import save_file

        names = sorted(set(self.sources))
        arrays = {
            "features": np.ascontiguousarray(self.features, dtype=np.float16),
            "labels": self.labels.astype(np.uint8),
            "sources": np.array([names.index(s) for s in self.sources], dtype=np.int16),
            "held_out": self.held_out.astype(np.uint8),
        }
        save_file(arrays, str(Path(folder) / MEMORY_FILE), metadata={"sources": json.dumps(names)})

    @classmethod
    def load(cls, path: str | Path) -> Memory:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as file:
            names = json.loads(file.metadata()["sources"])
            arrays = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118
        return cls(
            features=arrays["features"].astype(np.float32),
            labels=arrays["labels"].astype(int),
            sources=[names[i] for i in arrays["sources"]],
            held_out=arrays["held_out"].astype(bool),
        )


def memory_rows(
    sources: Sequence[str],
    labels: Sequence[int],
    train_rows: Sequence[int],
    held_out_rows: Sequence[int],
    per_source: int = PER_SOURCE,
    held_out_real: int = HELD_OUT_REAL,
    held_out_fake: int = HELD_OUT_FAKE,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The rows a memory keeps, drawn at random: up to ``per_source`` training rows of every source,
    and up to ``held_out_real`` (``held_out_fake``) held-out rows, never trained on, of every real
    (fake) source; and which are held out."""
    rng = np.random.default_rng(seed)
    sources, labels = np.asarray(sources), np.asarray(labels)
    chosen, held = [], []
    for rows, flag in ((train_rows, False), (held_out_rows, True)):
        rows = np.asarray(rows, dtype=int)
        for source in sorted(set(sources[rows])):
            mine = rows[sources[rows] == source]
            cap = per_source if not flag else held_out_fake if labels[mine[0]] else held_out_real
            picked = rng.permutation(mine)[:cap]
            chosen += picked.tolist()
            held += [flag] * len(picked)
    return np.asarray(chosen, dtype=int), np.asarray(held, dtype=bool)


def source_weights(sources: Sequence[str]) -> np.ndarray:
    """A weight per row so that every source counts alike, scaled to a mean of 1."""
    counts = Counter(sources)
    weights = np.array([1.0 / counts[source] for source in sources])
    return weights * len(weights) / weights.sum()


@dataclass(frozen=True)
class Head:
    """A linear head on standardised inputs: P(fake) = sigmoid(features @ weight + bias), raw."""

    weight: np.ndarray
    bias: float

    def raw(self, features: np.ndarray) -> np.ndarray:
        return _sigmoid(np.asarray(features, dtype=np.float64) @ self.weight + self.bias)

    @classmethod
    def of(cls, classifier: FaceClassifier) -> Head:
        """A realfake CLIP model's own head, as one logit (fake minus real)."""
        weight = classifier.model.classifier.weight.detach().double().numpy()
        bias = classifier.model.classifier.bias.detach().double().numpy()
        fake = classifier.model.config.label2id.get("fake", 1)
        return cls(weight[fake] - weight[1 - fake], float(bias[fake] - bias[1 - fake]))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def fit_head(
    features: np.ndarray, labels: np.ndarray, sources: Sequence[str], C: float, prior: Head | None = None
) -> Head:
    """A logistic regression on standardised head inputs, every source weighted alike, with an L2
    penalty that pulls the weights towards ``prior`` (the head being adapted, so that a few new faces
    move it only where they must), or towards zero without one (scikit-learn's objective):
    C * sum_i weight_i * log-loss_i + |w - prior|^2 / 2, the bias not penalised."""
    from scipy.optimize import minimize

    x, y = np.asarray(features, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    scale = C * source_weights(sources)
    anchor = np.zeros(x.shape[1]) if prior is None else np.asarray(prior.weight, dtype=np.float64)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:-1], theta[-1]
        z = x @ w + b
        gap = w - anchor
        loss = float(np.sum(scale * (np.logaddexp(0.0, z) - y * z)) + 0.5 * gap @ gap)
        residual = scale * (_sigmoid(z) - y)
        return loss, np.concatenate([x.T @ residual + gap, [residual.sum()]])

    start = np.concatenate([anchor, [0.0 if prior is None else prior.bias]])
    fit = minimize(objective, start, jac=True, method="L-BFGS-B", options={"maxiter": 5000})
    return Head(fit.x[:-1], float(fit.x[-1]))


@dataclass
class Refit:
    """A head fitted again on a memory and new faces, with its calibration and thresholds."""

    weight: np.ndarray
    bias: float
    calibration: Calibration
    threshold: float  # calibrated
    bands: VerdictThresholds
    memory: Memory  # the old memory with the new faces added
    new_scores: np.ndarray  # cross-fitted calibrated P(fake) of each new face
    held_out_scores: np.ndarray  # calibrated P(fake) of the memory's held-out crops
    figures: dict = field(default_factory=dict)


def refit(
    memory: Memory,
    new: Sequence[tuple[np.ndarray, int, str]],
    C: float = DEFAULT_C,
    max_fpr: float = MAX_FPR,
    folds: int = FOLDS,
    seed: int = 0,
    prior: Head | None = None,
) -> Refit:
    """Fit the head again on the memory's training crops and the ``new`` faces (each entry: the
    standardised inputs of one folder's faces, its label, its source name), and its calibration,
    decision threshold and verdict thresholds on scores no head was fitted on (see the module
    docstring). ``prior``: the head being adapted, which the new one is pulled towards."""
    trained, held = memory.part(held_out=False), memory.part(held_out=True)
    if not len(held) or len(set(held.labels.tolist())) < 2:
        raise ModelError("The model's adaptation memory has no held-out real and fake crops to calibrate on.")
    new_x = np.concatenate([np.zeros((0, trained.features.shape[1]), np.float32), *(x for x, _, _ in new)])
    new_y = np.concatenate([np.zeros(0, dtype=int), *(np.full(len(x), label) for x, label, _ in new)])
    new_sources = [source for x, _, source in new for _ in range(len(x))]
    # Cross-fitting: each new face is scored by a head fitted without its fold of the new faces.
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(new_y), dtype=int)
    for label in np.unique(new_y):
        rows = rng.permutation(np.flatnonzero(new_y == label))
        fold_of[rows] = np.arange(len(rows)) % folds
    raw_new = np.empty(len(new_y))
    for fold in range(folds):
        test = fold_of == fold
        if not test.any():
            continue
        head = fit_head(
            np.concatenate([trained.features, new_x[~test]]),
            np.concatenate([trained.labels, new_y[~test]]),
            [*trained.sources, *(s for s, t in zip(new_sources, test) if not t)],
            C,
            prior,
        )
        raw_new[test] = head.raw(new_x[test])
    head = fit_head(
        np.concatenate([trained.features, new_x]),
        np.concatenate([trained.labels, new_y]),
        [*trained.sources, *new_sources],
        C,
        prior,
    )
    raw_held = head.raw(held.features)
    raw = np.concatenate([raw_held, raw_new])
    labels = np.concatenate([held.labels, new_y])
    groups = [*held.sources, *new_sources]
    _, raw_threshold = equal_error_rate(raw, labels)
    raw_threshold = max(raw_threshold, threshold_at_fpr(raw, labels, max_fpr))
    calibration = fit_calibration(raw, labels)
    threshold = float(calibration(raw_threshold))
    p = calibration(raw)
    bands = choose_verdict_thresholds(p, labels, decision_threshold=threshold, groups=groups)
    grown = memory
    for x, label, source in new:
        grown = grown.add(x, label, source)
    return Refit(
        weight=head.weight.astype(np.float32),
        bias=head.bias,
        calibration=calibration,
        threshold=threshold,
        bands=bands,
        memory=grown,
        new_scores=p[len(raw_held) :],
        held_out_scores=p[: len(raw_held)],
    )


# --- the model level ------------------------------------------------------------------------------


def adaptable(classifier: FaceClassifier) -> Memory:
    """The model's adaptation memory.

    Raises:
        ModelError: the model is not a head on a frozen CLIP backbone, or carries no memory.
    """
    model = classifier.model
    if not isinstance(model, RealfakeClipForImageClassification) or model.config.tune != "head":
        raise ModelError(
            f"Model {classifier.name} cannot be adapted: only a head on a frozen CLIP backbone can."
        )
    settings = getattr(model.config, MEMORY_KEY, None)
    path = model_file(classifier, (settings or {}).get("file", MEMORY_FILE))
    if not settings or path is None:
        raise ModelError(
            f"Model {classifier.name} carries no adaptation memory ({MEMORY_FILE}); "
            "train/memory.py adds one to a model trained by realfake."
        )
    return Memory.load(path)


def model_file(classifier: FaceClassifier, name: str) -> Path | None:
    """A file beside the model's weights (its folder, or the Hub cache), or None."""
    folder = Path(classifier.name)
    if folder.is_dir():
        return folder / name if (folder / name).is_file() else None
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(classifier.name, name, revision=classifier.revision))
    except Exception:
        return None


@torch.inference_mode()
def head_inputs(classifier: FaceClassifier, crops: Sequence[Image.Image], batch_size: int = 8) -> np.ndarray:
    """The standardised inputs of the model's head for each face crop (as it is)."""
    model = classifier.model.eval()
    parts = []
    for start in range(0, len(crops), batch_size):
        batch = crops[start : start + batch_size]
        pixels = classifier.processor(images=list(batch), return_tensors="pt")["pixel_values"]
        tokens = [
            as_cached(t) for t in model.block_tokens(pixels.to(classifier.device), bf16=fast_bf16(model))
        ]
        parts.append(model.head_norm(model.head_features(*tokens)).float().cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, model.feature_size), dtype=np.float32)


def face_crops(
    classifier: FaceClassifier,
    folder: Path,
    faces: FaceDetector,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Image.Image], dict]:
    """The most confident face of every image in ``folder`` (and below), cut as the model crops
    faces, and what happened to the images (found, unreadable, without a face).

    Raises:
        RealfakeError: no such folder, no image in it, or no face in any of its images.
    """
    if not folder.is_dir():
        raise RealfakeError(f"{folder} is not a folder.")
    files = find_images(folder)
    if not files:
        raise RealfakeError(f"{folder} holds no images.")
    crops, counts = [], Counter()
    for done, path in enumerate(files, start=1):
        try:
            image = load_image(path).image
        except RealfakeError:
            counts["unreadable"] += 1
            continue
        found = faces.detect(image)
        if found:
            crops.append(crop_face(image, found[0].box, classifier.crop_size, classifier.crop_margin))
        counts["faces" if found else "no_face"] += 1
        if progress:
            progress(done, len(files))
    if not crops:
        raise RealfakeError(f"None of the {len(files)} images in {folder} shows a face that realfake finds.")
    return crops, {"images": len(files), **{key: counts[key] for key in ("faces", "no_face", "unreadable")}}


def adapt_model(
    model: str | Path,
    fake_dir: str | Path,
    output: str | Path,
    real_dir: str | Path | None = None,
    revision: str | None = None,
    C: float | None = None,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict:
    """Write a new model folder at ``output``: ``model`` taught the generator of the pictures in
    ``fake_dir`` (and, with ``real_dir``, the user's own real photos); returns its figures.

    Raises:
        RealfakeError: an input folder is missing, empty or shows no face; the output folder is
            not empty; the model cannot be adapted (ModelError).
    """
    output, fake_dir = Path(output), Path(fake_dir)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise RealfakeError(f"{output} already exists and is not an empty folder; choose a new --output.")
    classifier = FaceClassifier.from_pretrained(model, revision=revision, device="cpu")
    memory = adaptable(classifier)
    settings = getattr(classifier.model.config, MEMORY_KEY)
    faces = FaceDetector(device="cpu")
    folders = [(fake_dir, 1)] + ([(Path(real_dir), 0)] if real_dir else [])
    new, found = [], {}
    for folder, label in folders:
        step = None if progress is None else (lambda done, total, f=folder: progress(str(f), done, total))
        crops, counts = face_crops(classifier, folder, faces, step)
        if len(crops) < MIN_FACES:
            raise RealfakeError(
                f"adapt needs at least {MIN_FACES} faces from {folder}; its images gave {len(crops)}."
            )
        name = f"adapt:{folder.name}:{'fake' if label else 'real'}"
        new.append((head_inputs(classifier, crops), label, name))
        found[str(folder)] = counts
    before = [classifier.fake_from_logits(_logits(classifier, x)).numpy() for x, _, _ in new]
    held = memory.part(held_out=True)
    before_held = classifier.fake_from_logits(_logits(classifier, held.features)).numpy()
    prior = Head.of(classifier) if settings.get("prior", True) else None
    C = float(C or settings.get("C", DEFAULT_C))
    result = refit(memory, new, C=C, seed=seed, prior=prior)
    old_calibration = classifier.calibration or Calibration()
    old_bands = classifier.verdict_thresholds()
    real_held = held.labels == 0
    figures = {
        "model": str(model),
        "C": C,
        "prior": prior is not None,
        "folders": found,
        "new_faces": {
            name: {
                "n": len(x),
                "label": "fake" if label else "real",
                "before": old_bands.shares(old_calibration(b)),
                "after (cross-fitted)": result.bands.shares(result.new_scores[_span(new, i)]),
            }
            for i, ((x, label, name), b) in enumerate(zip(new, before))
        },
        "held_out_real": {
            "n": int(real_held.sum()),
            "before": old_bands.shares(old_calibration(before_held)[real_held]),
            "after": result.bands.shares(result.held_out_scores[real_held]),
        },
        "held_out_fake": {
            "n": int((~real_held).sum()),
            "before": old_bands.shares(old_calibration(before_held)[~real_held]),
            "after": result.bands.shares(result.held_out_scores[~real_held]),
        },
        "calibration": result.calibration.to_dict(),
        "threshold": result.threshold,
        "verdict_thresholds": result.bands.to_dict(),
    }
    write_model(classifier, result, output, figures)
    return figures


def _span(new: Sequence, index: int) -> slice:
    start = sum(len(x) for x, _, _ in new[:index])
    return slice(start, start + len(new[index][0]))


@torch.inference_mode()
def _logits(classifier: FaceClassifier, features: np.ndarray) -> torch.Tensor:
    """The model's logits from standardised head inputs."""
    return classifier.model.classifier(torch.from_numpy(np.asarray(features, dtype=np.float32)))


def write_model(classifier: FaceClassifier, result: Refit, output: Path, figures: dict) -> None:
    """The adapted model: the old folder's files, the new head, config, memory and figures."""
    model = classifier.model
    fake = model.config.label2id.get("fake", 1)
    real = 1 - fake
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.classifier.weight[fake] = torch.from_numpy(result.weight)
        model.classifier.bias[fake] = result.bias
        model.classifier.bias[real] = 0.0
    config = model.config
    setattr(config, CALIBRATION_KEY, result.calibration.to_dict())
    setattr(config, VERDICTS_KEY, result.bands.to_dict())
    setattr(config, THRESHOLD_KEY, result.threshold)
    output.mkdir(parents=True, exist_ok=True)
    source = Path(classifier.name)
    if source.is_dir():  # the card, plots and anything else the model came with
        for path in source.iterdir():
            if path.is_file() and path.name not in ("config.json", "model.safetensors", MEMORY_FILE):
                shutil.copy2(path, output / path.name)
    model.save_pretrained(output)
    classifier.processor.save_pretrained(output)
    result.memory.save(output)
    (output / RESULTS_FILE).write_text(json.dumps(figures, indent=2) + "\n")
    add_to_card(output / "README.md", figures)


CARD_HEADING = "## Adapted with `realfake adapt`"


def _shares_text(shares: dict) -> str:
    return ", ".join(f"{share:.1%} {verdict}" for verdict, share in shares.items() if share is not None)


def add_to_card(card: Path, figures: dict) -> None:
    """Say in the model card what this adapt run taught the model and what it measured (one entry
    per run, in a section before the card's first one, which still describe the model it came from)."""
    lines = []
    for name, entry in figures["new_faces"].items():
        lines.append(
            f"- `{name}`: {entry['n']} {entry['label']} faces. Judged before: {_shares_text(entry['before'])}; "
            f"after, each by a head fitted without it: {_shares_text(entry['after (cross-fitted)'])}."
        )
    real, bands = figures["held_out_real"], figures["verdict_thresholds"]
    lines.append(
        f"- Held-out real faces of the sources the model trained on ({real['n']}): before "
        f"{_shares_text(real['before'])}; after {_shares_text(real['after'])}. Verdicts now: fake from "
        f"P(fake) {bands['fake_at_least']:.3f}, real up to {bands['real_at_most']:.3f}."
    )
    entry = "\n".join(lines)
    text = card.read_text() if card.is_file() else "# Real or generated face classifier\n"
    if f"\n{CARD_HEADING}\n" in text:
        before, _, rest = text.partition(f"\n{CARD_HEADING}\n")
        section, sep, after = rest.partition("\n## ")
        text = f"{before}\n{CARD_HEADING}\n{section.rstrip()}\n{entry}\n\n{sep and '## '}{after}"
    else:
        intro = (
            "This model was adapted to generators it had not seen by `python -m realfake adapt` (its head "
            "fitted again on its adaptation memory and the new faces, and calibrated again; "
            f"figures in `{RESULTS_FILE}`). The later sections describe the model it was adapted from."
        )
        body = f"{CARD_HEADING}\n\n{intro}\n\n{entry}\n"
        before, sep, after = text.partition("\n## ")
        text = f"{before.rstrip()}\n\n{body}\n{sep and '## '}{after}" if sep else f"{text.rstrip()}\n\n{body}"
    card.write_text(text)
