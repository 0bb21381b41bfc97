"""train/train.py end to end on tiny data: files, model card, threshold, resume, push, two processes."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys

import datasets
import pytest
import torch
from conftest import FIXTURES, REAL_FACES, REPO
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import (
    ConvNextConfig,
    ConvNextForImageClassification,
    ConvNextImageProcessor,
    TrainerCallback,
    TrainingArguments,
)

import realfake
from benchmarks import bench_train
from realfake.adapt import MEMORY_FILE
from realfake.calibration import Calibration
from realfake.faces import crop_face
from realfake.images import load_image
from train import prepare, train
from train.card import fmt

TINY = ["--image_size", "32", "--model_config", '{"depths": [1, 1, 1, 1], "hidden_sizes": [8, 8, 16, 16]}']
SOURCES = {
    "ffhq": ("real", REAL_FACES),
    "other-real": ("real", [FIXTURES / "portraits-1024-1.jpg", FIXTURES / "ffhq-thumb128-69000.jpg"]),
    "tpdne": (
        "fake",
        [FIXTURES / n for n in ("tpdne-2022-0002.jpg", "tpdne-2025-fake_3.jpg", "tpdne-128-f1.jpg")],
    ),
    "roeishc": ("fake", [FIXTURES / "tpdne-roeishc-0.jpg"]),
}
HELDOUT = ["--heldout_sources", "other-real", "roeishc"]


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    """Face crops of the fixture photos and their mirror images, four sources, made by prepare.py."""
    root = tmp_path_factory.mktemp("faces")
    rows = ["file_name,label,source"]
    for source, (cls, photos) in SOURCES.items():
        (root / cls).mkdir(exist_ok=True)
        for photo in photos:
            image = Image.open(photo)
            for suffix, variant in (
                ("", image),
                ("-mirror", image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
            ):
                name = f"{cls}/{photo.stem}{suffix}.jpg"
                variant.save(root / name, quality=95)
                rows.append(f"{name},{cls},{source}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    output = tmp_path_factory.mktemp("crops")
    prepare.main(
        ["--data_dir", str(root), "--output_dir", str(output), "--crop_size", "40", "--num_proc", "1"]
    )
    return output


def train_args(crops, output, *extra) -> list[str]:
    return [
        "--dataset_dir", str(crops), "--output_dir", str(output), *TINY, *HELDOUT,
        "--validation_fraction", "0.3", "--per_device_train_batch_size", "4", "--max_steps", "6",
        "--save_strategy", "steps", "--save_steps", "2", "--logging_steps", "1", "--report_to", "none",
        "--use_cpu", "true", "--seed", "7", *extra,
    ]  # fmt: skip


class StandInHub:
    """Records what would be uploaded; the only thing here that is not real is the network."""

    calls: list = []

    def __init__(self, token=None) -> None:
        self.token = token

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, repo_id, folder_path, allow_patterns=None, **kwargs):
        present = sorted(p.name for p in __import__("pathlib").Path(folder_path).iterdir())
        uploaded = [name for name in present if name in (allow_patterns or present)]
        self.calls.append(("upload_folder", repo_id, uploaded))


class FailingHub(StandInHub):
    def upload_folder(self, repo_id, folder_path, **kwargs):
        raise ConnectionError("Connection refused\nmore detail")


@pytest.fixture(scope="module")
def trained(crops, tmp_path_factory):
    output = tmp_path_factory.mktemp("run")
    export = tmp_path_factory.mktemp("export") / "model"
    StandInHub.calls = []
    patch = pytest.MonkeyPatch()
    patch.setattr(train, "HfApi", StandInHub)
    try:
        metrics = train.main(
            train_args(
                crops,
                output,
                "--export_dir",
                str(export),
                "--save_fp16",
                "true",
                "--zooms",
                "1.0",
                "0.9",
                "--push_to_hub",
                "true",
                "--hub_model_id",
                "someone/realfake-tiny",
            )
        )
    finally:
        patch.undo()
    return output, export, metrics, list(StandInHub.calls)


def test_the_model_folder_has_every_file(trained):
    output, export, _, _ = trained
    required = [name for name in train.MODEL_FILES if name not in train.OPTIONAL_FILES]
    for name in required:
        assert (output / name).is_file(), name
    assert not (output / MEMORY_FILE).exists()  # a ConvNeXt trained on pixels has no memory
    assert sorted(p.name for p in export.iterdir()) == sorted(required)
    with safe_open(str(export / "model.safetensors"), "pt") as weights:
        names = weights.keys()
        assert {str(weights.get_tensor(name).dtype) for name in names} == {"torch.float16"}


def test_model_card_metrics_equal_all_results(trained):
    output, _, metrics, _ = trained
    results = json.loads((output / "all_results.json").read_text())
    card = (output / "README.md").read_text()
    for name in ("random", "heldout"):
        for key in ("roc_auc", "accuracy", "f1", "eer", "n"):
            assert results[f"{name}_{key}"] == pytest.approx(metrics[f"{name}_{key}"], nan_ok=True)
    for label, key in (
        ("ROC AUC", "roc_auc"),
        ("accuracy", "accuracy"),
        ("F1 (fake)", "f1"),
        ("images", "n"),
    ):
        row = re.search(rf"^\| {re.escape(label)} \| (.+) \| (.+) \|$", card, re.MULTILINE)
        assert row, label
        assert row.groups() == (fmt(results[f"random_{key}"]), fmt(results[f"heldout_{key}"]))
    assert f"value: {fmt(results['heldout_roc_auc'])}" in card
    assert results["heldout_n"] == 6  # every held-out image, none of them trained on
    assert "![ROC curve](roc_curve.png)" in card and "Intended use and limits" in card


def test_the_threshold_and_views_travel_in_the_config_to_realfake(trained):
    output, export, metrics, _ = trained
    config = json.loads((output / "config.json").read_text())
    calibration = Calibration(config["realfake_calibration"]["scale"], config["realfake_calibration"]["bias"])
    # The decision threshold is chosen on the raw score and stored in calibrated units.
    assert config["realfake_threshold"] == pytest.approx(
        float(calibration(metrics["random_threshold"])), abs=1e-5
    )
    bands = config["realfake_verdict_thresholds"]
    assert bands["real_at_most"] <= config["realfake_threshold"] <= bands["fake_at_least"]
    assert config["realfake_crop_margin"] == 0.3
    assert config["realfake_mirror_average"] is True and config["realfake_zooms"] == [1.0, 0.9]
    assert "the crop and its centre at 90% of its side" in (output / "README.md").read_text()
    assert config["id2label"] == {"0": "real", "1": "fake"}
    detector = realfake.load_detector(export)
    assert detector.threshold == pytest.approx(config["realfake_threshold"])
    assert detector.classifier.zooms == (1.0, 0.9) and detector.classifier.mirror_average
    [face] = detector.predict(REAL_FACES[0])
    assert face.label == ("fake" if face.fake_probability >= detector.threshold else "real")
    assert face.verdict == detector.classifier.verdict_thresholds().verdict(face.fake_probability)
    classifier = detector.classifier
    crop = crop_face(load_image(REAL_FACES[0]).image, face.box, classifier.crop_size, classifier.crop_margin)
    [raw] = classifier.fake_probabilities([crop], calibrated=False)
    assert face.fake_probability == pytest.approx(float(calibration(raw)), abs=1e-6)


def test_push_uploads_the_model_files_only(trained):
    _, _, _, calls = trained
    assert calls[0] == ("create_repo", "someone/realfake-tiny", {"private": None, "exist_ok": True})
    present = [name for name in train.MODEL_FILES if name not in train.OPTIONAL_FILES]  # no memory here
    assert calls[1] == ("upload_folder", "someone/realfake-tiny", sorted(present))


def test_a_failed_push_keeps_the_folder_and_says_how_to_retry(trained, caplog):
    output = trained[0]
    before = sorted(p.name for p in output.iterdir())
    with caplog.at_level(logging.ERROR, logger="train"):
        assert train.push(str(output), "someone/realfake-tiny", api=FailingHub()) is False
    assert sorted(p.name for p in output.iterdir()) == before
    [message] = [r.getMessage() for r in caplog.records]
    assert message.startswith("Could not push to the Hub (ConnectionError: Connection refused).")
    assert (
        f"The model is saved in {output}; retry with: hf upload someone/realfake-tiny {output} ." in message
    )


class Crash(TrainerCallback):
    """Stands for a killed process: stops the run with an error right after ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError("simulated crash")


class StepLog(TrainerCallback):
    def __init__(self) -> None:
        self.steps = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def test_a_crashed_run_resumes_from_its_last_checkpoint(crops, tmp_path, caplog):
    args = train_args(crops, tmp_path / "run")
    with pytest.raises(RuntimeError, match="simulated crash"):
        train.main(args, callbacks=[Crash(step=3)])
    assert (tmp_path / "run" / "checkpoint-2").is_dir() and not (tmp_path / "run" / "config.json").exists()
    steps = StepLog()
    with caplog.at_level(logging.INFO, logger="train"):
        train.main(args, callbacks=[steps])  # the same command again
    assert "Resuming from the last checkpoint" in caplog.text
    assert steps.steps == [3, 4, 5, 6]  # steps 1-2 came from the checkpoint
    assert json.loads((tmp_path / "run" / "trainer_state.json").read_text())["global_step"] == 6
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_config_file_with_flag_overrides(crops, tmp_path):
    config = {
        "dataset_dir": str(crops),
        "output_dir": str(tmp_path / "a"),
        "max_steps": 100,
        "heldout_sources": ["other-real", "roeishc"],
        "model_config": {"depths": [1, 1, 1, 1]},
    }
    (tmp_path / "c.json").write_text(json.dumps(config))
    model_args, data_args, training_args = train.parse_args(
        ["--config", str(tmp_path / "c.json"), "--max_steps", "3"]
    )
    assert training_args.max_steps == 3 and data_args.heldout_sources == ["other-real", "roeishc"]
    assert json.loads(model_args.model_config) == {"depths": [1, 1, 1, 1]}


def test_two_processes_on_the_gloo_backend(crops, tmp_path):
    """The same script under torchrun with two CPU processes (what accelerate launch does on GPUs)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        str(REPO / "train" / "train.py"),
        *train_args(crops, tmp_path / "ddp"),
        "--ddp_backend",
        "gloo",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads((tmp_path / "ddp" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    assert state["train_batch_size"] == 4  # per process; 8 images a step across the two
    assert (tmp_path / "ddp" / "README.md").is_file()
    shutil.rmtree(tmp_path / "ddp")


def test_fine_tunes_a_pretrained_checkpoint_with_other_labels(crops, tmp_path):
    """--model_name_or_path: a three-class checkpoint (as an ImageNet one is) gets a real/fake head."""
    torch.manual_seed(3)
    config = ConvNextConfig(
        depths=[1, 1, 1, 1],
        hidden_sizes=[8, 8, 16, 16],
        image_size=32,
        id2label={0: "cat", 1: "dog", 2: "bird"},
        label2id={"cat": 0, "dog": 1, "bird": 2},
    )
    pretrained = ConvNextForImageClassification(config)
    pretrained.half().save_pretrained(tmp_path / "pretrained")  # saved in float16, trained in float32
    ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=1.0).save_pretrained(tmp_path / "pretrained")

    metrics = train.main(
        train_args(crops, tmp_path / "run", "--model_name_or_path", str(tmp_path / "pretrained"))
    )
    tuned = json.loads((tmp_path / "run" / "config.json").read_text())
    assert tuned["id2label"] == {"0": "real", "1": "fake"} and tuned["hidden_sizes"] == [8, 8, 16, 16]
    assert load_file(tmp_path / "run" / "model.safetensors")["classifier.weight"].dtype == torch.float32
    classifier = realfake.FaceClassifier.from_pretrained(tmp_path / "run")
    stem = classifier.model.convnext.embeddings.patch_embeddings.weight.detach().flatten()
    start = pretrained.convnext.embeddings.patch_embeddings.weight.detach().flatten().float()
    assert torch.corrcoef(torch.stack([stem, start]))[0, 1] > 0.9  # tuned from the checkpoint, not anew
    raw_threshold = classifier.calibration.inverse(classifier.threshold)
    assert float(raw_threshold) == pytest.approx(metrics["random_threshold"], abs=1e-6)


def test_average_checkpoints_gives_the_mean_of_the_last_ones(crops, tmp_path):
    """--average_checkpoints 2: the final weights are the mean of the last two checkpoints' weights."""
    run = tmp_path / "run"
    train.main(train_args(crops, run, "--average_checkpoints", "2", "--save_total_limit", "2"))
    kept = sorted(p.name for p in run.glob("checkpoint-*"))
    assert kept == ["checkpoint-4", "checkpoint-6"]
    first, second = (load_file(run / name / "model.safetensors") for name in kept)
    final = load_file(run / "model.safetensors")
    assert final.keys() == first.keys()
    for key in final:
        torch.testing.assert_close(final[key], (first[key] + second[key]) / 2)
    assert not torch.equal(final["classifier.weight"], second["classifier.weight"])  # not just the last
    assert "mean of the last 2 checkpoints" in (run / "README.md").read_text()


def test_average_checkpoints_with_no_checkpoint_on_disk_keeps_the_weights(tmp_path, caplog):
    """A folder whose checkpoints are gone: the weights stay as they are, with a warning."""
    model, _ = train.SCRATCH_BUILDERS["convnext"](
        image_size=32, depths=[1, 1, 1, 1], hidden_sizes=[8, 8, 16, 16]
    )
    before = {key: value.clone() for key, value in model.state_dict().items()}
    with caplog.at_level(logging.WARNING, logger="train"):
        assert train.average_checkpoints(model, str(tmp_path), 3) == []
    assert "No checkpoints in" in caplog.text
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key])


def test_average_checkpoints_needs_that_many_checkpoints_kept(crops, tmp_path):
    args = train_args(crops, tmp_path / "run", "--average_checkpoints", "3", "--save_total_limit", "2")
    with pytest.raises(SystemExit, match="needs 3 checkpoints kept"):
        train.main(args)
    assert not (tmp_path / "run").exists()


def test_the_training_benchmark_runs_a_config_that_distils_and_averages_checkpoints(crops, trained, tmp_path):
    """benchmarks/bench_train.py times train.py on a config like default.json (which starts from a
    trained model, distils from teachers and averages checkpoints)."""
    _, export, _, _ = trained
    config = {
        "dataset_dir": str(crops),
        "heldout_sources": ["other-real", "roeishc"],
        "validation_fraction": 0.3,
        "model_name_or_path": str(export),
        "teachers": [str(export), str(export)],
        "average_checkpoints": 2,
        "save_strategy": "epoch",
        "save_total_limit": 2,
        "per_device_train_batch_size": 4,
        "use_cpu": True,
        "report_to": "none",
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    model_args, _, _ = train.parse_args(["--config", str(tmp_path / "config.json"), "--output_dir", "x"])
    assert bench_train.raw_throughput(model_args, batch=4, steps=1) > 0
    assert bench_train.trainer_throughput(tmp_path / "config.json", steps=2, folder=tmp_path) > 0


def test_distillation_blends_the_labels_with_the_teachers_on_the_same_crops(tmp_path):
    """--teachers: the target is (1 - w) * label + w * the teachers' mean P(fake) on the same
    augmented crop, each teacher at its own input size and in its own label order."""
    torch.manual_seed(5)
    teacher_config = ConvNextConfig(
        depths=[1, 1, 1, 1],
        hidden_sizes=[8, 8, 16, 16],
        id2label={0: "fake", 1: "real"},  # the other order from ours
        label2id={"fake": 0, "real": 1},
    )
    ConvNextForImageClassification(teacher_config).save_pretrained(tmp_path / "teacher")
    ConvNextImageProcessor(size={"shortest_edge": 40}, crop_pct=1.0).save_pretrained(tmp_path / "teacher")
    teacher = realfake.FaceClassifier.from_pretrained(tmp_path / "teacher", device="cpu")
    student, processor = train.SCRATCH_BUILDERS["convnext"](
        image_size=32, depths=[1, 1, 1, 1], hidden_sizes=[8, 8, 16, 16]
    )
    crops = datasets.Dataset.from_dict(
        {"image": [Image.open(photo).resize((48, 48)) for photo in REAL_FACES[:3]], "label": [0, 1, 1]}
    )
    batch = train.collate_fn(list(train.with_transform(crops, processor, teachers=[teacher])))
    assert batch["pixel_values"].shape[-1] == 32 and batch["teacher0_pixel_values"].shape[-1] == 40
    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True)
    trainer = train.DistillationTrainer(model=student, args=args, teachers=[teacher], distill_weight=0.75)

    loss = trainer.compute_loss(student, dict(batch))

    with torch.no_grad():
        fake = torch.softmax(teacher.model(pixel_values=batch["teacher0_pixel_values"]).logits, -1)[:, 0]
        logits = student(pixel_values=batch["pixel_values"]).logits
    labels = torch.nn.functional.one_hot(batch["labels"], 2).float()
    target = 0.25 * labels + 0.75 * torch.stack([1 - fake, fake], dim=-1)
    expected = -(target * torch.log_softmax(logits, dim=-1)).sum(-1).mean()
    torch.testing.assert_close(loss.detach(), expected)
    assert not torch.allclose(loss.detach(), torch.nn.functional.cross_entropy(logits, batch["labels"]))
    plain = {key: batch[key] for key in ("pixel_values", "labels")}  # a validation batch: labels only
    torch.testing.assert_close(
        trainer.compute_loss(student, plain).detach(),
        torch.nn.functional.cross_entropy(logits, batch["labels"]),
    )


def test_mix_up_blends_every_tensor_of_a_batch_alike():
    """--distill_mixup: the model's pixels, each teacher's (another size) and the labels are blended
    with the same partner by the same weight; the share not drawn is left as it was."""
    torch.manual_seed(0)
    index = torch.arange(64, dtype=torch.float32)
    small, large = index.view(-1, 1, 1).expand(64, 2, 2), 10 * index.view(-1, 1, 1, 1).expand(64, 3, 4, 4)
    labels = torch.nn.functional.one_hot(torch.arange(64) % 2, 2).float()

    small_mixed, large_mixed, labels_mixed = train.mix_up([small, large, labels], share=0.5)

    torch.testing.assert_close(large_mixed, 10 * small_mixed[:, :1, :1, None].expand(64, 3, 4, 4))
    torch.testing.assert_close(labels_mixed.sum(-1), torch.ones(64))
    blended = small_mixed[:, 0, 0] != index
    assert 16 < blended.sum() < 48  # about half of the 64 (the rest drew themselves or weight 1)
    assert torch.equal(labels_mixed[~blended], labels[~blended])
    assert torch.equal(train.mix_up([small], share=0.0)[0], small)


def test_distillation_with_mixup_has_the_teachers_score_the_blends(tmp_path):
    """The loss with --distill_mixup is the distillation loss on the blended batch: student and
    teachers see the same blend, and the label part of the target is blended alike."""
    torch.manual_seed(5)
    student, processor = train.SCRATCH_BUILDERS["convnext"](
        image_size=32, depths=[1, 1, 1, 1], hidden_sizes=[8, 8, 16, 16]
    )
    teacher_model, _ = train.SCRATCH_BUILDERS["convnext"](
        image_size=32, depths=[1, 1, 1, 1], hidden_sizes=[8, 8, 16, 16]
    )
    teacher_model.save_pretrained(tmp_path / "teacher")
    processor.save_pretrained(tmp_path / "teacher")
    teacher = realfake.FaceClassifier.from_pretrained(tmp_path / "teacher", device="cpu")
    crops = datasets.Dataset.from_dict(
        {"image": [Image.open(photo).resize((48, 48)) for photo in REAL_FACES[:4]], "label": [0, 1, 0, 1]}
    )
    batch = train.collate_fn(list(train.with_transform(crops, processor, teachers=[teacher])))
    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True)
    trainer = train.DistillationTrainer(
        model=student, args=args, teachers=[teacher], distill_weight=0.75, distill_mixup=1.0
    )

    torch.manual_seed(1)
    loss = trainer.compute_loss(student, dict(batch))

    torch.manual_seed(1)
    labels = torch.nn.functional.one_hot(batch["labels"], 2).float()
    pixels, teacher_pixels, labels = train.mix_up(
        [batch["pixel_values"], batch["teacher0_pixel_values"], labels], 1.0
    )
    assert not torch.equal(pixels, batch["pixel_values"])
    with torch.no_grad():
        fake = torch.softmax(teacher.model(pixel_values=teacher_pixels).logits, -1)[:, 1]
        logits = student(pixel_values=pixels).logits
    target = 0.25 * labels + 0.75 * torch.stack([1 - fake, fake], dim=-1)
    torch.testing.assert_close(loss.detach(), -(target * torch.log_softmax(logits, -1)).sum(-1).mean())


def test_mixup_without_teachers_is_a_clear_error(crops, tmp_path):
    with pytest.raises(SystemExit, match="--distill_mixup needs --teachers"):
        train.main(train_args(crops, tmp_path / "run", "--distill_mixup", "0.5"))


def test_distils_from_a_trained_model_end_to_end(crops, trained, tmp_path):
    _, export, _, _ = trained
    run = tmp_path / "run"
    train.main(
        train_args(crops, run, "--teachers", str(export), "--distill_weight", "0.5", "--distill_mixup", "0.5")
    )
    card = (run / "README.md").read_text()
    assert f"distilled from `{export}`" in card and "50% of the crops were first blended" in card
    assert realfake.FaceClassifier.from_pretrained(run).threshold > 0


def test_a_model_that_cannot_be_loaded_is_a_clear_error_before_the_data_load(tmp_path):
    missing = tmp_path / "missing"
    args = train_args(tmp_path / "no-crops", tmp_path / "run", "--model_name_or_path", str(missing))
    with pytest.raises(SystemExit, match=r"--model_name_or_path: No model folder at .*missing\.$"):
        train.main(args)


def test_a_teacher_that_cannot_be_loaded_is_a_clear_error(crops, tmp_path):
    args = train_args(crops, tmp_path / "run", "--teachers", str(tmp_path / "missing"))
    with pytest.raises(SystemExit, match=r"--teachers: No model folder at .*missing\.$"):
        train.main(args)
