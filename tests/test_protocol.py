"""train/protocol.py and train/probe_heads.py: the leave-one-out folds (generator families and kinds
of real photo), their tables from the runs' held-out scores, and the card."""

from __future__ import annotations

import csv
import json

import datasets
import numpy as np
import pytest
import torch
from conftest import REPO, TINY_CLIP
from PIL import Image
from sklearn.metrics import roc_auc_score
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

from realfake.folders import in_share, source_shares
from train import protocol, train
from train.card import PROTOCOL_HEADING
from train.families import FAMILIES, PORTRAIT_APPS, STYLEGAN2


def write_run(folder, rows, threshold):
    """A finished run as train.py leaves it: its config (threshold) and its validation scores."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"realfake_threshold": threshold}))
    with open(folder / train.SCORES_FILE, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["set", "file", "source", "label", "fake_probability"])
        for i, (source, label, score) in enumerate(rows):
            writer.writerow(["heldout", f"{source}-{i}.jpg", source, label, f"{score:.6f}"])
        writer.writerow(["random", "x.jpg", "sdfd-sd21", "fake", "0.0"])  # not held out: ignored
    return folder


def random_rows(rng, sources):
    return [(source, label, float(rng.uniform())) for source, label, n in sources for _ in range(n)]


def test_the_table_gives_each_family_against_its_reference_and_the_wild_false_positives(tmp_path):
    rng = np.random.default_rng(0)
    rows = random_rows(
        rng,
        [("sdfd-sd21", "fake", 40), ("ffhq-1024", "real", 30), ("stylegan3-r", "fake", 5),
         ("ffhq-sg3pair", "real", 4), ("lfw-news", "real", 20), ("unsplash-men", "real", 10)],
    )  # fmt: skip
    run = write_run(tmp_path / "without-sd21", rows, threshold=0.8)
    results = protocol.report({"without-sd21": run})
    entry = results["folds"]["without-sd21"]
    chosen = [
        (int(label == "fake"), score) for source, label, score in rows if source in ("sdfd-sd21", "ffhq-1024")
    ]
    expected = roc_auc_score([y for y, _ in chosen], [s for _, s in chosen])
    assert entry["roc_auc"]["Stable Diffusion 2.1"] == pytest.approx((expected, 40, 30))
    assert entry["roc_auc"]["text-to-image services (Flux.1, SDXL, DALL-E 3)"][0] is None  # no such fakes
    wild = [score for source, _, score in rows if source in ("lfw-news", "unsplash-men")]
    assert entry["wild_real_called_fake"] == pytest.approx(np.mean(np.array(wild) >= 0.8))
    assert entry["n_wild_real"] == 30
    # A run without verdict thresholds is binary at its threshold: below it, a fake is called real.
    fakes = np.array([score for source, _, score in rows if source == "sdfd-sd21"])
    judged = entry["fakes_judged"]["Stable Diffusion 2.1"]
    assert judged["n"] == 40
    assert judged["verdicts"] == pytest.approx(
        {"real": np.mean(fakes < 0.8), "uncertain": 0.0, "fake": np.mean(fakes >= 0.8)}
    )
    table = protocol.format_table(results)
    real_share = f"{np.mean(fakes < 0.8):.1%}"
    assert f"| Stable Diffusion 2.1 | {expected:.3f} (40 vs 30) | {real_share} / 0.0% | n/a | n/a |" in table
    assert "without-sd21: " in table.splitlines()[-1]
    # The worst left-out family called real is the fold's own family or StyleGAN3, left out everywhere.
    sg3 = np.mean(np.array([score for source, _, score in rows if source == "stylegan3-r"]) < 0.8)
    worst = protocol.worst_folds(results)
    assert worst.startswith(
        f"Worst fold, a left-out family called real: {max(sg3, np.mean(fakes < 0.8)):.1%}"
    )


def test_the_card_gets_the_table_once(tmp_path):
    card = tmp_path / "README.md"
    card.write_text("# A model card\n\nBody.\n")
    for table in ("| first |", "| second |"):
        protocol.add_to_card(card, table, "python train/protocol.py --config c.json")
    text = card.read_text()
    assert text.startswith("# A model card\n\nBody.") and text.count(PROTOCOL_HEADING) == 1
    assert "| second |" in text and "| first |" not in text


# Every source the protocol names, a few tiny crops each: real ones darker than fakes, with noise,
# so a head can learn something and still make mistakes.
PROTOCOL_SOURCES = {
    **{source: "real" for kind in protocol.REAL_KINDS.values() for source in kind[1]},
    **{source: "fake" for source in (*STYLEGAN2, *(s for fakes, _ in FAMILIES.values() for s in fakes))},
}  # fmt: skip


def source_files(source: str, n: int) -> list[str]:
    """File names as the shared data spells them, with the groups of people in them where it does."""
    groups = {"pixabay-portraits": ("woman", "man"), "aaf-ages": ("child", "elder")}.get(source)
    if groups:
        return [f"{source}-{groups[i % 2]}-{i:03d}.jpg" for i in range(n)]
    return [f"{source}-{i:03d}.jpg" for i in range(n)]


@pytest.fixture(scope="module")
def protocol_crops(tmp_path_factory):
    """A crops dataset (as prepare.py saves one) with every source of the protocol, 12 crops each."""
    rng = np.random.default_rng(0)
    names = ["real", "fake"]
    rows = {"image": [], "label": [], "source": [], "file": [], "detection_score": []}
    for source, cls in PROTOCOL_SOURCES.items():
        for file in source_files(source, 12):
            level = 100 if cls == "real" else 140
            pixels = np.clip(rng.normal(level, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
            rows["image"].append(Image.fromarray(pixels))
            rows["label"].append(names.index(cls))
            rows["source"].append(source)
            rows["file"].append(f"{cls}/{file}")
            rows["detection_score"].append(0.99)
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=names),
            "source": datasets.Value("string"),
            "file": datasets.Value("string"),
            "detection_score": datasets.Value("float32"),
        }
    )
    folder = tmp_path_factory.mktemp("protocol-crops")
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(folder)
    return folder


@pytest.fixture(scope="module")
def protocol_config(protocol_crops, tmp_path_factory):
    """The default recipe's split and rules on the tiny crops and a tiny CLIP base."""
    torch.manual_seed(0)
    base = tmp_path_factory.mktemp("clip-base")
    CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_CLIP)).save_pretrained(base)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        base
    )
    default = json.loads((REPO / "train/configs/default.json").read_text())
    out = tmp_path_factory.mktemp("runs")
    config = {
        **{key: default[key] for key in ("heldout_sources", "calibration_exclude", "balance_sources", "tune")},
        "dataset_dir": str(protocol_crops), "model_name_or_path": str(base), "feature_layers": [1, 2],
        "pooled_layers": [2], "feature_views": 1, "mirror_average": False, "validation_fraction": 0.3,
        "threshold_max_fpr": 0.2, "output_dir": str(out / "final"), "num_train_epochs": 2,
        "per_device_train_batch_size": 32, "learning_rate": 0.01, "save_strategy": "no",
        "report_to": "none", "use_cpu": True, "seed": 3,
    }  # fmt: skip
    path = out / "tiny.json"
    path.write_text(json.dumps(config))
    return path


def test_a_real_source_fold_holds_its_kind_out_whole_and_never_calibrates_on_it():
    config = json.loads((REPO / "train/configs/default.json").read_text())
    heldout, exclude = protocol.fold_split("without-pixabay", config)
    assert (
        "pixabay-portraits:0.3" in heldout and heldout[-1] == "pixabay-portraits"
    )  # the later, whole spec wins
    assert source_shares(heldout)["pixabay-portraits"] == 1.0
    assert source_shares(heldout)["lfw-news"] == 0.3  # the rest of the config's split stays
    assert "pixabay-portraits" in exclude and "stylegan3-r" in exclude
    heldout, exclude = protocol.fold_split("without-ffhq", config)
    assert {"ffhq-thumb128", "ffhq-1024", "ffhq-sg3pair"} <= set(exclude)
    assert protocol.fold_split(protocol.FINAL, config) == (None, config["calibration_exclude"])


def test_each_fold_trains_without_what_it_leaves_out(protocol_crops):
    config = json.loads((REPO / "train/configs/default.json").read_text())
    dataset = datasets.load_from_disk(protocol_crops)
    sources = dataset["source"]
    for fold in protocol.FOLDS:
        heldout, _ = protocol.fold_split(fold, config)
        data_args = train.DataArguments(dataset_dir=str(protocol_crops), heldout_sources=heldout)
        train_rows, evals = train.split_rows(dataset, data_args, seed=0)
        left_out = protocol.REAL_FOLDS[fold][1] if fold in protocol.REAL_FOLDS else [
            source for source in heldout if ":" not in source
        ]  # fmt: skip
        trained_on = {sources[i] for i in train_rows}
        assert not trained_on & set(left_out), fold
        assert {sources[i] for i in evals["heldout"]} >= set(left_out), fold


def test_probe_heads_prints_the_protocol_tables_for_both_kinds_of_fold(protocol_config, tmp_path, capsys):
    from train import probe_heads

    results = probe_heads.main(
        ["--config", str(protocol_config), "--heads", "1,m2,p", "--folds", "without-sd21", "without-aaf-ages",
         "without-portrait-apps", "final", "--output_dir", str(tmp_path)]
    )["1,m2,p"]  # fmt: skip
    fold = results["real_folds"]["without-aaf-ages"]
    assert fold["n"] == 12 and set(fold["groups"]) == {"children", "elders"}
    assert fold["groups"]["children"]["n"] == 6
    shares = fold["verdicts"]
    assert sum(shares.values()) == pytest.approx(1.0)
    with open(tmp_path / "1,m2,p" / "without-aaf-ages" / train.SCORES_FILE) as file:
        aaf = [row for row in csv.DictReader(file) if row["source"] == "aaf-ages"]
    assert len(aaf) == 12 and {row["set"] for row in aaf} == {"heldout"}
    assert results["folds"]["without-sd21"]["roc_auc"]["Stable Diffusion 2.1"][0] is not None
    # The fifth family's fold: its fakes (both apps) against the retouched real faces, and how they
    # were judged, confident misses first.
    apps = "AI portrait apps and pipelines (FaceChain, Kolors)"
    fold = results["folds"]["without-portrait-apps"]
    assert fold["left_out"] == apps
    auc, n_fake, n_real = fold["roc_auc"][apps]
    assert (n_fake, n_real) == (12 * len(PORTRAIT_APPS), 12) and auc is not None
    judged = fold["fakes_judged"][apps]
    assert judged["n"] == 24 and sum(judged["verdicts"].values()) == pytest.approx(1.0)
    with open(tmp_path / "1,m2,p" / "without-portrait-apps" / train.SCORES_FILE) as file:
        trained = {row["source"] for row in csv.DictReader(file) if row["set"] != "heldout"}
    assert not trained & {*PORTRAIT_APPS, "scut-beauty"}
    printed = capsys.readouterr().out
    real, uncertain = judged["verdicts"]["real"], judged["verdicts"]["uncertain"]
    assert f"| {apps} | {auc:.3f} (24 vs 12) | {real:.1%} / {uncertain:.1%} |" in printed
    assert printed.lstrip().startswith("## 1,m2,p")
    assert "Worst fold, a left-out family called real: " in printed
    assert "| aaf-ages (children and people over 60) | 12 |" in printed
    assert "| worst / mean of the folds |" in printed
    held = sum(in_share(file, 0.3) for file in source_files("pixabay-portraits", 12))
    assert f"| pixabay-portraits | {held} |" in printed  # the final model's held-out 30% of a trained source


def test_the_trainer_protocol_runs_a_real_source_fold_and_writes_its_row(protocol_config, tmp_path):
    results = protocol.main(
        ["--config", str(protocol_config), "--output_dir", str(tmp_path), "--folds", "without-unsplash-men"]
    )
    fold = results["real_folds"]["without-unsplash-men"]
    assert fold["n"] == 12 and fold["left_out"].startswith("unsplash-men")
    config = json.loads((tmp_path / "without-unsplash-men" / "config.json").read_text())
    assert config["pooled_layers"] == [2] and config["realfake_verdict_thresholds"]
    fit = json.loads((tmp_path / "without-unsplash-men" / "calibration.json").read_text())
    assert "unsplash-men" in fit["exclude"]
    table = protocol.format_real_folds(results)
    assert "| unsplash-men (men in the wild) | 12 |" in table


def test_the_adapt_protocol_gives_a_k_shot_curve_for_a_left_out_family(protocol_config, capsys):
    from train import adapt_protocol

    results = adapt_protocol.main(
        ["--config", str(protocol_config), "--heads", "1,m2,p", "--folds", "without-portrait-apps",
         "--k", "0", "4", "--repeats", "2", "--C", "1"]
    )["1,m2,p"]["without-portrait-apps"]  # fmt: skip
    assert results["left_out"] == "AI portrait apps and pipelines (FaceChain, Kolors)"
    start, taught = results["curve"][0], results["curve"][4]
    assert start["n_others"] == 24 and taught["n_others"] == 20  # the k faces are never scored
    assert start["n_reals"] == taught["n_reals"] > 0
    for figures in (start, taught):
        assert 0.0 <= figures["roc_auc"] <= 1.0 and 0.0 <= figures["reals_fake"] <= 1.0
        assert figures["worst"]["roc_auc"] <= figures["roc_auc"]
    printed = capsys.readouterr().out
    assert "| AI portrait apps and pipelines (FaceChain, Kolors) | 4 |" in printed
