"""train/prepare.py: real MTCNN crops of a folder with a faceless photo and a corrupt file; the cache."""

from __future__ import annotations

import json
import shutil

import datasets
import pytest
from conftest import FAKE_FACES, NO_FACE, REAL_FACES
from PIL import Image

from train import prepare


@pytest.fixture(scope="module")
def faces_folder(tmp_path_factory):
    """real/: four photos and a faceless one; fake/: four faces and a corrupt file; sources in metadata.csv."""
    root = tmp_path_factory.mktemp("faces")
    (root / "real").mkdir()
    (root / "fake" / "more").mkdir(parents=True)
    rows = ["file_name,label,source"]
    for photo in REAL_FACES:
        shutil.copy(photo, root / "real" / photo.name)
        rows.append(f"real/{photo.name},real,ffhq")
    shutil.copy(NO_FACE, root / "real" / "coffee.jpg")
    rows.append("real/coffee.jpg,real,kitchen")
    for photo in FAKE_FACES:
        shutil.copy(photo, root / "fake" / "more" / photo.name)
        rows.append(f"fake/more/{photo.name},fake,tpdne")
    (root / "fake" / "broken.jpg").write_bytes(REAL_FACES[0].read_bytes()[:2000])
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")  # broken.jpg is not listed: source "fake"
    return root


def run(folder, output, *extra):
    return prepare.main(["--data_dir", str(folder), "--output_dir", str(output), "--crop_size", "48", *extra])


def test_crops_counts_and_cache(faces_folder, tmp_path, capsys, monkeypatch):
    output = tmp_path / "crops"
    kept = run(faces_folder, output, "--max_loss", "0.3", "--num_proc", "2", "--batch_size", "2")
    assert len(kept) == len(REAL_FACES) + len(FAKE_FACES)
    assert kept.features["label"].names == ["real", "fake"]
    assert sorted(set(kept["source"])) == ["ffhq", "tpdne"]
    assert all(image.size == (48, 48) for image in kept["image"])
    assert min(kept["detection_score"]) > 0.9

    info = json.loads((output / "prepare.json").read_text())
    summary = info["summary"]
    assert summary["total"] == {"ok": 8, "unreadable": 1, "no_face": 1}
    assert summary["class real"] == {"ok": 4, "unreadable": 0, "no_face": 1}
    assert summary["class fake"] == {"ok": 4, "unreadable": 1, "no_face": 0}
    assert summary["source kitchen"] == {"ok": 0, "unreadable": 0, "no_face": 1}
    assert summary["source fake"] == {"ok": 0, "unreadable": 1, "no_face": 0}
    assert datasets.load_from_disk(str(output))["file"] == kept["file"]
    printed = capsys.readouterr().out
    assert "source kitchen" in printed and "saved 8 face crops of 10 images" in printed

    def no_cropping(*args, **kwargs):
        raise AssertionError("a cache hit must not crop again")

    monkeypatch.setattr(prepare, "crop_batch", no_cropping)
    again = run(faces_folder, output, "--max_loss", "0.3")
    assert "cache hit" in capsys.readouterr().out
    assert again["file"] == kept["file"]

    with pytest.raises(AssertionError, match="must not crop again"):  # other settings: no cache hit
        run(faces_folder, output, "--max_loss", "0.3", "--crop_margin", "0.5")


def test_a_changed_file_invalidates_the_cache(faces_folder, tmp_path, capsys):
    folder = tmp_path / "copy"
    shutil.copytree(faces_folder, folder)
    run(folder, tmp_path / "out", "--max_loss", "0.3", "--num_proc", "1")
    Image.open(NO_FACE).save(folder / "fake" / "more" / FAKE_FACES[0].name)  # now a faceless "fake"
    capsys.readouterr()
    kept = run(folder, tmp_path / "out", "--max_loss", "0.4", "--num_proc", "1")
    assert "cache hit" not in capsys.readouterr().out
    assert len(kept) == 7


def test_too_many_losses_stop_the_run(faces_folder, tmp_path):
    with pytest.raises(
        SystemExit, match=r"20.0% of the images were unreadable or had no face, more than --max_loss 5%"
    ):
        run(faces_folder, tmp_path / "out", "--num_proc", "1")
    assert not (tmp_path / "out" / "prepare.json").exists()
