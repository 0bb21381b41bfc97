"""train/protocol.py: the leave-one-generator-out table from the runs' held-out scores, and the card."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from train import protocol, train
from train.card import PROTOCOL_HEADING


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
    table = protocol.format_table(results)
    assert f"| Stable Diffusion 2.1 | {expected:.3f} (40 vs 30) | n/a |" in table
    assert "without-sd21: " in table.splitlines()[-1]


def test_the_card_gets_the_table_once(tmp_path):
    card = tmp_path / "README.md"
    card.write_text("# A model card\n\nBody.\n")
    for table in ("| first |", "| second |"):
        protocol.add_to_card(card, table, "python train/protocol.py --config c.json")
    text = card.read_text()
    assert text.startswith("# A model card\n\nBody.") and text.count(PROTOCOL_HEADING) == 1
    assert "| second |" in text and "| first |" not in text
