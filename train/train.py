"""Fine-tune a real/fake face classifier on face crops with the Hugging Face Trainer.

    python train/train.py --config train/configs/default.json [--flag value ...]
    python train/train.py --dataset_dir data/faces-192 --model_name_or_path facebook/convnext-tiny-224 \\
        --output_dir runs/convnext-tiny --num_train_epochs 5 --push_to_hub --hub_model_id ORG/NAME
    accelerate launch --num_processes 8 train/train.py --config ...   # many GPUs, same script

The data are crops made by train/prepare.py (a folder from save_to_disk, or a Hub dataset). Validation
is twofold: a random stratified split of the training sources, and every image of the sources named in
``--heldout_sources``, which are kept out of training altogether. After training, the decision
threshold is set where false positives and false negatives are equally likely on the random
validation split and stored in the model's config (``realfake_threshold``), where realfake reads it;
both validation sets are then scored at that threshold. The output folder gets the model
(safetensors), its image processor, ``all_results.json`` and a model card with a ROC curve and a
confusion matrix. A run killed midway resumes from its last checkpoint when started again.

With ``--teachers`` the model is distilled: its target on each augmented crop blends the label with
the mean P(fake) of the teacher models on that same crop (knowledge distillation, Hinton et al. 2015),
so that one small model can learn what an ensemble of several (or a large pretrained model) knows.
``--distill_mixup`` first blends a share of each batch's crops with one another (mixup), so the teachers
are matched between the training images too (Beyer et al. 2022, "patient and consistent" distillation).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
import torch.nn.functional as F
import transformers
from huggingface_hub import HfApi
from safetensors.torch import load_file
from transformers import (
    AutoImageProcessor,
    HfArgumentParser,
    Trainer,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint, sort_checkpoints
from transformers.utils import SAFE_WEIGHTS_NAME

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from realfake.adapt import MEMORY_FILE  # noqa: E402
from realfake.architectures import ID2LABEL, LABEL2ID, convnext_from_scratch, vit_from_scratch  # noqa: E402
from realfake.base import resolve_base  # noqa: E402
from realfake.calibration import CALIBRATION_KEY, VERDICTS_KEY  # noqa: E402
from realfake.classifier import (  # noqa: E402
    CROP_MARGIN_KEY,
    MIRROR_KEY,
    THRESHOLD_KEY,
    ZOOMS_KEY,
    FaceClassifier,
    load_model_files,
)
from realfake.clip import TUNE_MODES, RealfakeClipForImageClassification, is_clip_base  # noqa: E402
from realfake.errors import ModelError, RealfakeError  # noqa: E402
from realfake.faces import CROP_MARGIN  # noqa: E402
from realfake.folders import in_share, source_shares  # noqa: E402
from realfake.metrics import RealFakeMetrics, equal_error_rate, threshold_at_fpr  # noqa: E402
from train.augment import training_augmentation  # noqa: E402
from train.calibrate import NOVELTY_COLUMN, RELIABILITY_FILE, SCORES_FILE, calibrate_run  # noqa: E402
from train.card import write_model_card  # noqa: E402
from train.memory import calibration_rows, write_memory  # noqa: E402
from train.prepare import INFO_FILE  # noqa: E402
from train.tokens import TOKEN_COLUMNS, token_views, uses_cached_tokens, view_settings  # noqa: E402

logger = logging.getLogger("train")

SCRATCH_BUILDERS = {"convnext": convnext_from_scratch, "vit": vit_from_scratch}
MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "preprocessor_config.json",
    "README.md",
    "roc_curve.png",
    "confusion_matrix.png",
    RELIABILITY_FILE,
    "all_results.json",
    MEMORY_FILE,
)
OPTIONAL_FILES = (MEMORY_FILE,)  # only a head trained on cached tokens has one


@dataclass
class ModelArguments:
    """Which model to start from: a pretrained checkpoint, or an architecture built from scratch."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Pretrained checkpoint (Hub id or folder), e.g. facebook/convnext-tiny-224, or a CLIP "
            "base: clip-vit-b16-int8 (built from the package registry, see realfake/base.py), "
            "openai/clip-vit-base-patch16 or a CLIP folder. Leave out to train --architecture from scratch."
        },
    )
    model_revision: str = field(default="main", metadata={"help": "Hub revision of the checkpoint."})
    architecture: str = field(default="convnext", metadata={"help": "From scratch: convnext or vit."})
    image_size: int = field(default=128, metadata={"help": "From scratch: the input side in pixels."})
    model_config: str | None = field(
        default=None,
        metadata={
            "help": 'From scratch: JSON config overrides, e.g. {"depths": [2, 2, 6, 2], "hidden_sizes": [40, 80, 160, 320]}.'
        },
    )
    feature_layers: list[int] = field(
        default_factory=list,
        metadata={"help": "CLIP base: blocks (1-12) whose class token the head reads, e.g. 9 11."},
    )
    pooled_layers: list[int] = field(
        default_factory=list,
        metadata={"help": "CLIP base: blocks (1-12) whose mean patch token the head also reads, e.g. 6 9."},
    )
    use_projection: bool = field(
        default=True,
        metadata={"help": "CLIP base: the head also reads CLIP's projected image embedding (UnivFD)."},
    )
    tune: str = field(
        default="head",
        metadata={
            "help": "CLIP base: what to train: head (frozen backbone; its tokens are computed once "
            "and cached), layernorm, lora (a peft adapter on the attention projections) or full."
        },
    )
    backbone_engine: str = field(
        default="torch",
        metadata={
            "help": "CLIP base, --tune head: what runs the frozen backbone, for the token cache and at "
            "inference: torch (float32, bfloat16 where the CPU has it) or onnxruntime (the base's int8 "
            "graph, fast on every CPU; see realfake/engine.py). The head learns that engine's tokens."
        },
    )
    lora_r: int = field(default=8, metadata={"help": "--tune lora: the adapter's rank."})
    lora_alpha: int = field(default=16, metadata={"help": "--tune lora: the adapter's scale numerator."})
    mirror_average: bool = field(
        default=True,
        metadata={
            "help": "Score each face and its mirror image and average the two (test-time augmentation); "
            "stored in the model's config, so realfake does the same."
        },
    )
    zooms: list[float] = field(
        default_factory=lambda: [1.0],
        metadata={
            "help": "Also score the centre of each face crop at these shares of its side and average "
            "(test-time augmentation; 1.0 is the crop itself); stored in the model's config."
        },
    )
    average_checkpoints: int = field(
        default=0,
        metadata={
            "help": "Average the weights of the last N checkpoints (one per epoch with --save_strategy "
            "epoch; keep them with --save_total_limit N) into the final model. 0: no averaging."
        },
    )
    teachers: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Distil from these real/fake models (folders or Hub ids): the training target "
            "blends each crop's label with the teachers' mean P(fake) on the same augmented crop."
        },
    )
    distill_weight: float = field(
        default=0.5,
        metadata={
            "help": "With --teachers: the teachers' share of the target (0: labels only, 1: teachers only)."
        },
    )
    distill_mixup: float = field(
        default=0.0,
        metadata={
            "help": "With --teachers: the share of training crops blended with another crop of the batch "
            "(mixup, blend weight uniform in 0-1) before the model and the teachers see them; the label "
            "part of the target blends alike. 0: none."
        },
    )
    save_fp16: bool = field(
        default=False, metadata={"help": "Save the final weights in float16 (half the size)."}
    )
    export_dir: str | None = field(
        default=None, metadata={"help": "Also copy the final model files (no checkpoints) to this folder."}
    )


@dataclass
class DataArguments:
    """Which crops to train on, how to validate, and how to augment."""

    dataset_dir: str | None = field(default=None, metadata={"help": "Crops saved by train/prepare.py."})
    dataset_name: str | None = field(
        default=None, metadata={"help": "Or a Hub dataset of crops (same columns)."}
    )
    heldout_sources: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Sources kept out of training and validated on separately; SOURCE:SHARE holds out "
            "that share of the source's files only (chosen by a hash of the file name, so every run "
            "holds out the same files)."
        },
    )
    validation_fraction: float = field(default=0.1, metadata={"help": "Random validation share of the rest."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Truncate training data (debugging)."}
    )
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate each validation set."})
    feature_views: int = field(
        default=1,
        metadata={
            "help": "--tune head on a CLIP base: augmented views of each crop whose tokens are "
            "cached and trained on, besides the crop itself."
        },
    )
    extra_views: list[str] = field(
        default_factory=list,
        metadata={
            "help": "--tune head on a CLIP base: one more cached view per entry, augmented with these "
            "--aug_* settings changed (aug_thumbnail_p=1.0; comma-separated for several), after the "
            "--feature_views views."
        },
    )
    balance_sources: bool = field(
        default=False,
        metadata={
            "help": "Weight each training crop by the inverse of its source's size, so that every source "
            "counts alike in the loss (a few large sources would otherwise set the decision)."
        },
    )
    balance_classes: bool = field(
        default=False,
        metadata={
            "help": "With --balance_sources: the real and the fake sources weigh half each in all, however "
            "many sources each class has."
        },
    )
    threshold_max_fpr: float | None = field(
        default=None,
        metadata={
            "help": "Raise the decision threshold above the equal-error point where needed so that at "
            "most this share of the random validation split's real faces is called fake."
        },
    )
    calibration_share: float = field(
        default=0.5,
        metadata={
            "help": "After training, P(fake) is calibrated and the verdict thresholds chosen on the "
            "random validation split and this share of the held-out files (train/calibrate.py); the "
            "other held-out files measure them."
        },
    )
    calibration_exclude: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Held-out sources never used to calibrate, only to measure: generators the model "
            "must meet unseen."
        },
    )
    aug_min_scale: float = field(
        default=0.6, metadata={"help": "Smallest area share of random resized crops."}
    )
    aug_color: float = field(default=0.2, metadata={"help": "Colour jitter strength (0: none)."})
    aug_jpeg_p: float = field(default=0.5, metadata={"help": "Probability of JPEG re-compression."})
    aug_jpeg_min_quality: int = field(default=30, metadata={"help": "Lowest JPEG quality used."})
    aug_rescale_p: float = field(default=0.3, metadata={"help": "Probability of down-and-up scaling."})
    aug_rescale_min: float = field(default=0.35, metadata={"help": "Smallest down-scaling factor."})
    aug_blur_p: float = field(default=0.2, metadata={"help": "Probability of a slight Gaussian blur."})
    aug_upload_p: float = field(
        default=0.0,
        metadata={
            "help": "Probability of one user-photo look (phone sharpening or noise reduction, HDR tone "
            "curve, skin smoothing, background blur, screenshot), for both classes."
        },
    )
    aug_thumbnail_p: float = field(
        default=0.0,
        metadata={
            "help": "Probability of shrinking a crop to a thumbnail (56-160 px, JPEG half the time) and back, "
            "for both classes, so that a face's size says nothing about its class."
        },
    )

    def __post_init__(self) -> None:
        if (self.dataset_dir is None) == (self.dataset_name is None):
            raise ValueError("Give exactly one of --dataset_dir and --dataset_name.")


def teacher_key(index: int) -> str:
    """The batch key of the pixels for teacher ``index`` (each teacher gets its own processor's)."""
    return f"teacher{index}_pixel_values"


def collate_fn(examples: list[dict]) -> dict[str, torch.Tensor]:
    """Stack transformed examples into a batch for the model (and the teachers, if any): pixels, or
    cached CLIP tokens."""
    inputs = [key for key in examples[0] if key.endswith("pixel_values") or key in TOKEN_COLUMNS]
    batch = {
        **{key: torch.stack([torch.as_tensor(example[key]) for example in examples]) for key in inputs},
        "labels": torch.tensor([example["label"] for example in examples]),
    }
    if "weight" in examples[0]:
        batch["weights"] = torch.tensor([float(example["weight"]) for example in examples])
    return batch


def parse_args(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    """Flags, or ``--config FILE.json`` (a flat JSON object of flags) with optional flags after it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--config" in argv:
        at = argv.index("--config")
        config = json.loads(Path(argv[at + 1]).read_text())
        argv = [*config_to_flags(config), *argv[:at], *argv[at + 2 :]]  # later flags win
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    return parser.parse_args_into_dataclasses(args=argv)


def config_to_flags(config: dict) -> list[str]:
    flags = []
    for key, value in config.items():
        if isinstance(value, list):
            flags += [f"--{key}", *map(str, value)]
        elif isinstance(value, dict):
            flags += [f"--{key}", json.dumps(value)]
        else:
            flags += [f"--{key}", str(value)]
    return flags


def load_data(data_args: DataArguments) -> tuple[datasets.Dataset, float]:
    """All crops, and the crop margin they were cut with."""
    margin = CROP_MARGIN
    if data_args.dataset_dir:
        dataset = datasets.load_from_disk(data_args.dataset_dir)
        info = Path(data_args.dataset_dir) / INFO_FILE
        if info.is_file():
            margin = json.loads(info.read_text())["settings"]["crop_margin"]
    else:
        dataset = datasets.load_dataset(data_args.dataset_name, split="train")
    return dataset, margin


def file_names(dataset: datasets.Dataset) -> list[str]:
    """Each crop's source file (prepare.py's ``file`` column), or its row number where there is none."""
    return dataset["file"] if "file" in dataset.column_names else [str(i) for i in range(len(dataset))]


def split_rows(
    dataset: datasets.Dataset, data_args: DataArguments, seed: int
) -> tuple[list[int], dict[str, list[int]]]:
    """Row numbers for training and for each validation set ("random", and "heldout" if any)."""
    sources = dataset["source"]
    try:
        shares = source_shares(data_args.heldout_sources)
    except RealfakeError as error:
        raise SystemExit(f"train: error: --heldout_sources {error}") from None
    unknown = set(shares) - set(sources)
    if unknown:
        raise SystemExit(
            f"train: error: --heldout_sources {sorted(unknown)} are not in the data; "
            f"its sources are {sorted(set(sources))}."
        )
    files = file_names(dataset)
    held = [s in shares and in_share(f, shares[s]) for s, f in zip(sources, files)]
    rest = [i for i, h in enumerate(held) if not h]
    labels = dataset["label"]
    # The random split is stratified by label, as datasets does it, over the rows not held out.
    index = datasets.Dataset.from_dict(
        {"row": rest, "label": [labels[i] for i in rest]},
        features=datasets.Features({"row": datasets.Value("int64"), "label": dataset.features["label"]}),
    )
    split = index.train_test_split(
        test_size=data_args.validation_fraction, seed=seed, stratify_by_column="label"
    )
    train, evals = list(split["train"]["row"]), {"random": list(split["test"]["row"])}
    if any(held):
        evals["heldout"] = [i for i, h in enumerate(held) if h]
    rng = np.random.default_rng(seed)
    if data_args.max_train_samples and data_args.max_train_samples < len(train):
        train = sorted(rng.choice(train, data_args.max_train_samples, replace=False).tolist())
    if data_args.max_eval_samples:
        evals = {
            name: sorted(rng.choice(rows, data_args.max_eval_samples, replace=False).tolist())
            if data_args.max_eval_samples < len(rows)
            else rows
            for name, rows in evals.items()
        }
    return train, evals


def build_model(model_args: ModelArguments):
    """The model and its image processor, with id2label = {0: real, 1: fake}."""
    if model_args.model_name_or_path and is_clip_base(model_args.model_name_or_path):
        if model_args.tune not in TUNE_MODES:
            raise SystemExit(f"train: error: --tune must be one of {', '.join(TUNE_MODES)}.")
        try:
            model = RealfakeClipForImageClassification.from_base(
                model_args.model_name_or_path,
                feature_layers=model_args.feature_layers,
                pooled_layers=model_args.pooled_layers,
                use_projection=model_args.use_projection,
                tune=model_args.tune,
                lora={"r": model_args.lora_r, "lora_alpha": model_args.lora_alpha},
                backbone_engine=model_args.backbone_engine,
                num_labels=2,
                id2label=ID2LABEL,
                label2id=LABEL2ID,
            )
            processor = AutoImageProcessor.from_pretrained(resolve_base(model_args.model_name_or_path))
        except (ModelError, ValueError) as error:
            raise SystemExit(f"train: error: --model_name_or_path: {error}") from None
        return model, processor
    if model_args.model_name_or_path:
        try:
            model, processor = load_model_files(
                model_args.model_name_or_path,
                model_args.model_revision,
                num_labels=2,
                id2label=ID2LABEL,
                label2id=LABEL2ID,
                ignore_mismatched_sizes=True,
            )
        except ModelError as error:
            raise SystemExit(f"train: error: --model_name_or_path: {error}") from None
        return model, processor
    if model_args.architecture not in SCRATCH_BUILDERS:
        raise SystemExit(f"train: error: --architecture must be one of {sorted(SCRATCH_BUILDERS)}.")
    overrides = json.loads(model_args.model_config) if model_args.model_config else {}
    return SCRATCH_BUILDERS[model_args.architecture](image_size=model_args.image_size, **overrides)


def fake_scores(logits: np.ndarray) -> np.ndarray:
    """P(fake) from two-class logits (index 1 is fake by construction)."""
    return torch.softmax(torch.as_tensor(logits, dtype=torch.float32), dim=-1)[:, LABEL2ID["fake"]].numpy()


def compute_metrics(eval_pred) -> dict:
    """The realfake metrics at 0.5, for evaluation during training."""
    return RealFakeMetrics().compute(
        predictions=fake_scores(eval_pred.predictions), references=eval_pred.label_ids
    )


def with_transform(
    dataset: datasets.Dataset, processor, augment=None, teachers: Sequence[FaceClassifier] = ()
) -> datasets.Dataset:
    """Crops to pixel values on the fly: augmented (if ``augment``), for the model and each teacher."""

    def transform(batch: dict) -> dict:
        images = [image.convert("RGB") for image in batch["image"]]
        if augment is not None:
            images = [augment(image) for image in images]
        batch["pixel_values"] = list(processor(images=images, return_tensors="pt")["pixel_values"])
        for index, teacher in enumerate(teachers):  # the same augmented crop, at the teacher's input
            pixels = teacher.processor(images=images, return_tensors="pt")["pixel_values"]
            batch[teacher_key(index)] = list(pixels)
        return batch

    return dataset.with_transform(transform)


class DistillationTrainer(Trainer):
    """A Trainer whose training target blends the labels with teachers' P(fake) on the same crops
    (with no teachers, the plain Trainer)."""

    def __init__(
        self,
        *args,
        teachers: Sequence[FaceClassifier],
        distill_weight: float,
        distill_mixup: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.teachers, self.distill_weight, self.distill_mixup = list(teachers), distill_weight, distill_mixup

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        weights = inputs.pop("weights", None)
        if weights is not None and teacher_key(0) not in inputs:  # --balance_sources
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            losses = F.cross_entropy(outputs.logits.float(), labels, reduction="none")
            loss = (losses * weights.to(losses.device)).sum() / weights.sum()
            return (loss, outputs) if return_outputs else loss
        if teacher_key(0) not in inputs:  # validation batches are scored against the labels only
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        teacher_pixels = [inputs.pop(teacher_key(i)) for i in range(len(self.teachers))]
        labels = F.one_hot(inputs.pop("labels"), 2).float()
        if self.distill_mixup:
            blended = mix_up([inputs["pixel_values"], *teacher_pixels, labels], self.distill_mixup)
            inputs["pixel_values"], *teacher_pixels, labels = blended
        outputs = model(**inputs)
        with torch.no_grad():
            fake = torch.stack(
                [
                    teacher.fake_from_logits(teacher.model(pixel_values=pixels.to(teacher.device)).logits)
                    for teacher, pixels in zip(self.teachers, teacher_pixels, strict=True)
                ]
            ).mean(0)
        taught = torch.stack([1 - fake, fake], dim=-1).to(outputs.logits.device)
        target = (1 - self.distill_weight) * labels.to(taught.device) + self.distill_weight * taught
        loss = F.cross_entropy(outputs.logits.float(), target)  # model index 1 is fake, as in ID2LABEL
        return (loss, outputs) if return_outputs else loss


def mix_up(tensors: Sequence[torch.Tensor], share: float) -> list[torch.Tensor]:
    """Blend ``share`` of a batch's examples each with another example of the batch (mixup, Zhang
    et al. 2018), by a weight per example drawn uniformly from 0-1, the same blend in every tensor
    given (the model's pixels, each teacher's at its own size, the one-hot labels). Resizing and
    normalising are linear (up to rounding), so blending each processor's output blends the crops
    alike. A drawn example may draw itself as partner, which leaves it as it was."""
    size = len(tensors[0])
    partner = torch.randperm(size)
    weight = torch.where(torch.rand(size) < share, torch.rand(size), torch.ones(size))
    blended = []
    for tensor in tensors:
        mine = weight.to(tensor.device).view(-1, *[1] * (tensor.dim() - 1))
        blended.append(mine * tensor + (1 - mine) * tensor[partner.to(tensor.device)])
    return blended


def source_weights(dataset: datasets.Dataset, rows: list[int], balance_classes: bool = False) -> list[float]:
    """A training weight per row: the inverse of its source's share of the rows, scaled to a mean of
    1, so that each source counts as much as any other in the loss (--balance_sources). With
    ``balance_classes``, the real and the fake sources each weigh half in all, so that the class with
    more sources does not outweigh the other (--balance_classes)."""
    column, labels = dataset["source"], dataset["label"]
    sources = [column[i] for i in rows]
    counts = Counter(sources)
    weights = np.array([1.0 / counts[source] for source in sources])
    if balance_classes:
        classes = np.array([labels[i] for i in rows])
        for value in np.unique(classes):
            weights[classes == value] /= weights[classes == value].sum()
    return (weights * len(weights) / weights.sum()).tolist()


def final_scores(
    classifier: FaceClassifier, dataset: datasets.Dataset, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """P(fake) for every crop of a validation set (or its cached tokens), and its labels."""
    logger.info("Scoring %d validation crops with realfake's classifier", len(dataset))
    if "class_tokens" in dataset.column_names:
        model, scores = classifier.model.eval(), []
        with torch.inference_mode():
            for start in range(0, len(dataset), batch_size):
                batch = dataset[start : start + batch_size]
                tokens = {key: batch[key].to(classifier.device) for key in TOKEN_COLUMNS}
                scores.append(classifier.fake_from_logits(model(**tokens).logits).cpu().numpy())
        labels = np.asarray(dataset.with_format(None)["label"])
        return np.concatenate(scores).astype(np.float64), labels
    crops = [image.convert("RGB") for image in dataset["image"]]
    return classifier.fake_probabilities(crops, batch_size=batch_size), np.asarray(dataset["label"])


def decision_threshold(scores: np.ndarray, labels: np.ndarray, max_fpr: float | None = None) -> float:
    """Where false positives and false negatives balance on these scores, raised where needed so
    that at most ``max_fpr`` of the real faces score at or above it (``--threshold_max_fpr``)."""
    _, threshold = equal_error_rate(scores, labels)
    if max_fpr is not None:
        threshold = max(threshold, threshold_at_fpr(scores, labels, max_fpr))
    return float(threshold)


def write_scores(
    path: Path,
    dataset: datasets.Dataset,
    rows: dict[str, list[int]],
    curves: dict,
    real_p_values: dict[str, np.ndarray] | None = None,
) -> None:
    """Every validation crop's file, source, label and P(fake), one CSV row each, and with
    ``real_p_values`` (per validation set) each crop's novelty p-value (realfake.novelty)."""
    files = file_names(dataset)
    sources, names = dataset["source"], dataset.features["label"].names
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            [
                "set",
                "file",
                "source",
                "label",
                "fake_probability",
                *([NOVELTY_COLUMN] if real_p_values else []),
            ]
        )
        for name, (scores, labels) in curves.items():
            novelty = real_p_values[name] if real_p_values else [None] * len(scores)
            for row, label, score, p_value in zip(rows[name], labels, scores, novelty):
                extra = [] if p_value is None else [f"{p_value:.6f}"]
                writer.writerow([name, files[row], sources[row], names[label], f"{score:.6f}", *extra])


def main(argv: list[str] | None = None, callbacks: list | None = None) -> dict:
    """Train, choose the threshold, evaluate, save (and push); returns the final metrics.

    ``argv`` replaces the command line; ``callbacks`` are extra ``TrainerCallback`` objects.
    """
    model_args, data_args, training_args = parse_args(argv)
    check_averaging(model_args, training_args)
    teachers = load_teachers(model_args, device=str(training_args.device))  # fail before the data load
    training_args.remove_unused_columns = False  # the transforms need the "image" column
    # We push the finished model folder ourselves (model files only, a failure keeps the folder);
    # Trainer's own push would create the repo at start and upload checkpoints.
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    logging.basicConfig(
        format="%(asctime)s %(name)s: %(message)s",
        level=logging.INFO if training_args.should_log else logging.WARNING,
    )
    transformers.utils.logging.set_verbosity_warning()
    set_seed(training_args.seed)

    model, processor = build_model(model_args)  # a model that cannot be loaded fails before the data
    # A realfake model fine-tuned further is calibrated afresh: its scores are raw until then.
    model.config.update({CALIBRATION_KEY: None, VERDICTS_KEY: None})
    cached = uses_cached_tokens(model)
    if cached:
        check_cached_tokens(model_args, data_args)
        view_settings(data_args)  # a malformed --extra_views entry fails before the data
    elif data_args.extra_views:
        raise SystemExit(
            "train: error: --extra_views are cached views: they need --tune head on a CLIP base."
        )
    dataset, margin = load_data(data_args)
    train_rows, eval_rows = split_rows(dataset, data_args, training_args.seed)
    model.config.update(
        {CROP_MARGIN_KEY: margin, MIRROR_KEY: model_args.mirror_average, ZOOMS_KEY: model_args.zooms}
    )
    if cached:  # the frozen backbone runs once per crop and view, here; training sees its tokens
        views = token_views(model, processor, dataset, data_args, training_args)
        train_set = datasets.concatenate_datasets([tokens.select(train_rows) for tokens in views])
        if data_args.balance_sources:
            train_set = train_set.add_column(
                "weight", source_weights(dataset, train_rows, data_args.balance_classes) * len(views)
            )
            train_set = train_set.with_format("torch", columns=[*TOKEN_COLUMNS, "label", "weight"])
        eval_sets = {name: views[0].select(rows) for name, rows in eval_rows.items()}
        eval_inputs = eval_sets
    else:
        train_set = dataset.select(train_rows)
        if data_args.balance_sources:
            train_set = train_set.add_column(
                "weight", source_weights(dataset, train_rows, data_args.balance_classes)
            )
        train_set = with_transform(
            train_set, processor, training_augmentation(processor, data_args), teachers
        )
        eval_sets = {name: dataset.select(rows) for name, rows in eval_rows.items()}
        eval_inputs = {name: with_transform(ds, processor) for name, ds in eval_sets.items()}
    logger.info("train %d crops; validation %s", len(train_set), {k: len(v) for k, v in eval_sets.items()})
    if teachers:
        logger.info(
            "Distilling from %s (weight %s)", ", ".join(model_args.teachers), model_args.distill_weight
        )

    trainer = DistillationTrainer(
        teachers=teachers,
        distill_weight=model_args.distill_weight,
        distill_mixup=model_args.distill_mixup,
        model=model,
        args=training_args,
        train_dataset=train_set,
        eval_dataset=eval_inputs,
        data_collator=collate_fn,
        compute_metrics=compute_metrics,
        processing_class=processor,
        callbacks=callbacks,
    )
    checkpoint = training_args.resume_from_checkpoint
    last = get_last_checkpoint(training_args.output_dir) if os.path.isdir(training_args.output_dir) else None
    if checkpoint is None and last is not None:
        logger.info("Resuming from the last checkpoint in %s: %s", training_args.output_dir, last)
        checkpoint = last
    result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()
    if model_args.average_checkpoints:
        trainer.accelerator.wait_for_everyone()  # every checkpoint is on disk
        averaged = average_checkpoints(model, training_args.output_dir, model_args.average_checkpoints)
        model_args.average_checkpoints = len(averaged)  # what the card reports

    # The final figures are scored by realfake's own classifier, exactly as `realfake evaluate`
    # scores a face (mirror and zoom averaging included); the threshold is where false positives and
    # negatives balance on the random validation split.
    classifier = FaceClassifier(model, processor, name=training_args.output_dir)
    batch_size = training_args.per_device_eval_batch_size
    curves = {name: final_scores(classifier, data, batch_size) for name, data in eval_sets.items()}
    threshold = decision_threshold(*curves["random"], data_args.threshold_max_fpr)
    model.config.update({THRESHOLD_KEY: round(float(threshold), 6)})
    metrics = {}
    for name, (scores, labels) in curves.items():
        computed = RealFakeMetrics().compute(predictions=scores, references=labels, threshold=threshold)
        metrics.update({f"{name}_{key}": value for key, value in computed.items()})
    trainer.log_metrics("eval", metrics)
    trainer.save_metrics("eval", metrics)

    if trainer.is_world_process_zero():
        write_scores(Path(training_args.output_dir) / SCORES_FILE, dataset, eval_rows, curves)
        if cached:  # what `realfake adapt` refits the head on (before the config is saved)
            held_out = calibration_rows(
                eval_rows,
                dataset["source"],
                dataset["file"],
                data_args.calibration_exclude,
                data_args.calibration_share,
            )
            write_memory(model, views[0], dataset, train_rows, held_out, training_args.output_dir)
        if model_args.save_fp16:
            model.half()
        trainer.save_model(training_args.output_dir)
        write_model_card(
            training_args.output_dir,
            metrics=metrics,
            curves=curves,
            model_args=model_args,
            data_args=data_args,
            training_args=training_args,
            n_train=len(train_set),
            n_eval={k: len(v) for k, v in eval_sets.items()},
            command=" ".join(["python", *sys.argv]),
        )
        try:
            calibrated = calibrate_run(
                training_args.output_dir, data_args.calibration_share, data_args.calibration_exclude
            )
            metrics.update(
                {
                    "calibration_test": calibrated["test"],
                    "verdict_thresholds": calibrated["verdict_thresholds"],
                }
            )
        except ValueError as error:  # e.g. a tiny run whose validation rows hold one class only
            logger.warning("Not calibrated: %s", error)
        if model_args.export_dir:
            export(training_args.output_dir, model_args.export_dir)
        if push_to_hub:
            push(
                training_args.output_dir,
                training_args.hub_model_id or Path(training_args.output_dir).name,
                token=training_args.hub_token,
                private=training_args.hub_private_repo,
            )
    return metrics


def load_teachers(model_args: ModelArguments, device: str) -> list[FaceClassifier]:
    """The --teachers models, ready to score; a clear error for one that cannot be used."""
    if not 0 <= model_args.distill_weight <= 1:
        raise SystemExit("train: error: --distill_weight must be between 0 and 1.")
    if not 0 <= model_args.distill_mixup <= 1:
        raise SystemExit("train: error: --distill_mixup must be between 0 and 1.")
    if model_args.distill_mixup and not model_args.teachers:
        raise SystemExit("train: error: --distill_mixup needs --teachers (the teachers score the blends).")
    try:
        return [FaceClassifier.from_pretrained(name, device=device) for name in model_args.teachers]
    except ModelError as error:
        raise SystemExit(f"train: error: --teachers: {error}") from None


def check_cached_tokens(model_args: ModelArguments, data_args: DataArguments) -> None:
    """Head tuning on cached tokens scores each crop once, as it is: no test-time views, no teachers."""
    if model_args.mirror_average or model_args.zooms != [1.0]:
        raise SystemExit(
            "train: error: --tune head on a CLIP base caches one view per crop: "
            "set --mirror_average false and leave --zooms at 1.0."
        )
    if model_args.teachers:
        raise SystemExit(
            "train: error: --teachers needs the backbone in training: use --tune layernorm, lora or full."
        )
    if data_args.feature_views < 0:
        raise SystemExit("train: error: --feature_views must be 0 or more.")


def check_averaging(model_args: ModelArguments, training_args: TrainingArguments) -> None:
    """--average_checkpoints N needs a checkpoint per epoch (or per save) and N of them kept."""
    n, limit = model_args.average_checkpoints, training_args.save_total_limit
    if n and (training_args.save_strategy == "no" or (limit is not None and limit < n)):
        raise SystemExit(
            f"train: error: --average_checkpoints {n} needs {n} checkpoints kept: "
            f"set --save_strategy epoch and --save_total_limit {n} or more."
        )


def average_checkpoints(model, output_dir: str, last: int) -> list[Path]:
    """Load into ``model`` the mean of the weights of the last ``last`` checkpoints in ``output_dir``.

    The weights a run passes through late in training, averaged (stochastic weight averaging,
    Izmailov et al. 2018), sit in a flatter part of the loss than any one of them and generalise
    better. Returns the checkpoints averaged, oldest first.
    """
    chosen = [Path(path) for path in sort_checkpoints(output_dir)[-last:]]  # as the Trainer orders them
    if not chosen:
        logger.warning("No checkpoints in %s: the final weights are kept as they are", output_dir)
        return []
    if len(chosen) < last:
        logger.warning("Only %d checkpoints to average, not %d", len(chosen), last)
    total = None
    for path in chosen:
        weights = load_file(path / SAFE_WEIGHTS_NAME)
        total = weights if total is None else {k: total[k] + weights[k] for k in total}
    state = model.state_dict()  # a checkpoint may hold only what trains (a CLIP model's head)
    model.load_state_dict({k: (total[k] / len(chosen)).to(state[k].dtype) for k in total}, strict=False)
    logger.info("Averaged the weights of %s", ", ".join(path.name for path in chosen))
    return chosen


def export(output_dir: str, export_dir: str) -> None:
    """Copy the files a user of the model needs, and nothing else, to ``export_dir``."""
    target = Path(export_dir)
    target.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        if (Path(output_dir) / name).is_file():
            shutil.copy2(Path(output_dir) / name, target / name)
    logger.info("Exported the model to %s", target)


def push(
    output_dir: str,
    repo_id: str,
    token: str | None = None,
    private: bool | None = None,
    api: HfApi | None = None,
) -> bool:
    """Upload the model folder (not its checkpoints) to the Hub; on failure keep it and say how to retry."""
    api = api or HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=output_dir,
            commit_message="Upload realfake model",
            allow_patterns=list(MODEL_FILES),
        )
    except Exception as error:  # network, auth, quota: the local model must survive all of them
        logger.error(
            "Could not push to the Hub (%s: %s). The model is saved in %s; retry with: "
            "hf upload %s %s . --include %s",
            type(error).__name__,
            str(error).splitlines()[0] if str(error) else "",
            output_dir,
            repo_id,
            output_dir,
            " ".join(MODEL_FILES),
        )
        return False
    logger.info("Pushed to https://huggingface.co/%s", repo_id)
    return True


if __name__ == "__main__":
    main()
