"""``python -m realfake`` end to end, in a subprocess, as a user runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FAKE_FACES, FIXTURES, NO_FACE, REAL_FACES, group_photo, run_cli
from PIL import Image, PngImagePlugin
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

import realfake
from realfake.calibration import expected_calibration_error
from realfake.faces import whole_frame
from realfake.folders import in_share
from realfake.images import load_image

FACE_KEYS = {"box", "detection_score", "fake_probability", "label", "verdict"}
RESULT_KEYS = {"path", "width", "height", "faces", "error", "first_frame_only", "provenance"}

BAD_FILES = {
    "b-empty.jpg": (lambda p: p.write_bytes(b""), "The file is empty (0 bytes)."),
    "d-notes.jpg": (
        lambda p: p.write_text("just some notes\n"),
        "The file holds text, not an image; use JPEG, PNG, WebP, HEIC, AVIF, BMP, TIFF or GIF.",
    ),
    "f-paper.jpg": (
        lambda p: Image.new("RGB", (50, 50)).save(p, "PDF"),
        "The file is a PDF document, not an image; use JPEG, PNG, WebP, HEIC, AVIF, BMP, TIFF or GIF.",
    ),
    "h-cut.jpg": (
        lambda p: p.write_bytes(REAL_FACES[0].read_bytes()[:4000]),
        "The JPEG file is truncated or corrupt",
    ),
    "j-tiny.png": (
        lambda p: Image.new("RGB", (12, 12)).save(p),
        "The image is 12x12 pixels; faces cannot be found in images smaller than 20 pixels on a side.",
    ),
    "l-bomb.png": (
        lambda p: Image.new("1", (7000, 7000)).save(p),
        "The image is 7000x7000 pixels (49 megapixels); the limit is 40 megapixels.",
    ),
    "n-icon.jpg": (
        lambda p: Image.new("RGB", (32, 32)).save(p, "ICO"),
        "ICO images are not supported; use JPEG, PNG, WebP, HEIC, AVIF, BMP, TIFF or GIF.",
    ),
}


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    """Good photos interleaved (in sorted order) with every kind of bad file, one sub-folder deep."""
    folder = tmp_path_factory.mktemp("mixed")
    (folder / "sub").mkdir()
    for letter, photo in zip("acegikm", REAL_FACES + FAKE_FACES + [NO_FACE]):
        shutil.copy(photo, folder / f"{letter}-{photo.name}")
    shutil.copy(FAKE_FACES[2], folder / "sub" / "z-deep.jpg")
    for name, (make, _) in BAD_FILES.items():
        make(folder / name)
    (folder / "readme.txt").write_text("not an image suffix: skipped when walking a folder")
    return folder


def test_predict_json_on_a_folder_goes_on_past_every_bad_file(tiny_convnext, mixed_folder, tmp_path):
    done = run_cli(
        "predict",
        str(mixed_folder),
        "--model",
        str(tiny_convnext),
        "--json",
        "--annotate",
        str(tmp_path / "out"),
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    results = json.loads(done.stdout)
    by_name = {r["path"].split("/")[-1]: r for r in results}
    assert len(results) == 7 + 1 + len(BAD_FILES)
    assert [r["path"] for r in results] == sorted(r["path"] for r in results)
    for name, (_, message) in BAD_FILES.items():
        assert by_name[name]["error"].startswith(message), name
        assert by_name[name]["faces"] == []
    good = [r for r in results if r["error"] is None]
    assert len(good) == 8
    for result in good:
        assert set(result) == RESULT_KEYS
        assert len(result["faces"]) == (0 if "coffee" in result["path"] else 1)
        for face in result["faces"]:
            assert set(face) == FACE_KEYS
            x1, y1, x2, y2 = face["box"]
            assert 0 <= x1 < x2 <= result["width"] and 0 <= y1 < y2 <= result["height"]
            assert 0 <= face["fake_probability"] <= 1
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert len(written) == 8 and "sub/z-deep.png" in written
    annotated = np.asarray(Image.open(tmp_path / "out" / f"a-{REAL_FACES[0].name}".replace(".jpg", ".png")))
    original = np.asarray(load_image(REAL_FACES[0]).image)
    assert annotated.shape == original.shape and (annotated != original).any()


def test_predict_without_json_prints_a_line_per_file(tiny_convnext):
    done = run_cli("predict", str(REAL_FACES[0]), str(NO_FACE), "--model", str(tiny_convnext))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{REAL_FACES[0]}: 1 face: ")
    assert lines[1] == f"{NO_FACE}: no face found"


def test_predict_with_the_bundled_model_and_no_network():
    done = run_cli(
        "predict",
        str(REAL_FACES[0]),
        str(FAKE_FACES[0]),
        "--json",
        env={"REALFAKE_MODEL": "", "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert [len(result["faces"]) for result in json.loads(done.stdout)] == [1, 1]


def test_usage_errors_are_one_line(tiny_convnext, tmp_path):
    done = run_cli("predict", str(REAL_FACES[0]), "--model", str(tmp_path / "no-model-here"))
    assert done.returncode == 2
    assert done.stderr.strip() == f"realfake: error: No model folder at {tmp_path / 'no-model-here'}."
    done = run_cli("predict", str(REAL_FACES[0]), "--threshold", "1.5")
    assert done.returncode == 2 and "is not between 0 and 1" in done.stderr
    done = run_cli("evaluate", str(tmp_path), "--model", str(tiny_convnext))
    assert done.returncode == 2
    assert done.stderr.strip() == f"realfake: error: {tmp_path} must hold a real/ folder (and a fake/ one)."


def test_help_reads_like_a_manual():
    for command in ("predict", "evaluate", "batch"):
        done = run_cli(command, "--help")
        assert done.returncode == 0
        for section in ("usage:", "options:", "output:", "exit status:", "examples:"):
            assert section in done.stdout


def test_help_and_usage_errors_do_not_load_torch():
    script = (
        "import sys, realfake.cli\n"
        "for argv in (['--help'], ['predict', '--help'], ['predict'], ['batch', '--help']):\n"
        "    try:\n"
        "        realfake.cli.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted({'torch', 'transformers', 'facenet_pytorch'} & set(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def expected_score(detector, path) -> tuple[float, bool]:
    """The score evaluate should give: the most confident face, else the whole frame."""
    verdicts = detector.predict(path)
    if verdicts:
        return max(verdicts, key=lambda v: v.detection_score).fake_probability, True
    image = load_image(path).image
    crop = realfake.crop_face(
        image, whole_frame(image), detector.classifier.crop_size, detector.classifier.crop_margin
    )
    return float(detector.classifier.fake_probabilities([crop])[0]), False


def test_evaluate_matches_numbers_computed_independently(tiny_convnext, tmp_path):
    data = tmp_path / "data"
    (data / "real").mkdir(parents=True)
    (data / "fake" / "nested").mkdir(parents=True)
    for photo in REAL_FACES + [FIXTURES / "portraits-1024-1.jpg", NO_FACE]:
        shutil.copy(photo, data / "real" / photo.name)
    for photo in FAKE_FACES:
        shutil.copy(photo, data / "fake" / "nested" / photo.name)
    (data / "fake" / "broken.jpg").write_bytes(b"%PDF-1.4 not really")

    probe = realfake.load_detector(tiny_convnext)
    files = sorted((data / "real").glob("*.jpg")) + sorted((data / "fake" / "nested").glob("*.jpg"))
    labels = [0] * 6 + [1] * len(FAKE_FACES)
    scored = [expected_score(probe, f) for f in files]
    scores = np.array([s for s, _ in scored])
    threshold = float(np.median(scores))  # a cut that splits the scores, so every metric is informative
    predicted = (scores >= threshold).astype(int)

    done = run_cli(
        "evaluate", str(data), "--model", str(tiny_convnext), "--threshold", repr(threshold), "--json"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["n_images"] == len(files) and report["n_real"] == 6
    assert report["no_face"] == 1 and report["unreadable"] == 1
    assert report["errors"] == [
        {
            "path": str(data / "fake" / "broken.jpg"),
            "error": "The file is a PDF document, not an image; use JPEG, PNG, WebP, HEIC, AVIF, BMP, TIFF or GIF.",
        }
    ]
    assert report["threshold"] == pytest.approx(threshold)
    assert report["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert report["precision"] == pytest.approx(precision_score(labels, predicted, zero_division=0))
    assert report["recall"] == pytest.approx(recall_score(labels, predicted, zero_division=0))
    assert report["f1"] == pytest.approx(f1_score(labels, predicted, zero_division=0))
    assert report["roc_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    assert 0 <= report["eer"] <= 1
    # A model without verdict thresholds judges at the decision threshold: nothing is uncertain.
    assert report["uncertain"] == 0 and report["decided_accuracy"] == pytest.approx(report["accuracy"])
    assert report["verdicts"]["fake"]["fake"] == pytest.approx(report["recall"])
    assert report["verdicts"]["real"]["fake"] == pytest.approx(np.mean(predicted[np.array(labels) == 0]))
    assert report["ece"] == pytest.approx(expected_calibration_error(labels, scores), abs=1e-6)

    table = run_cli("evaluate", str(data), "--model", str(tiny_convnext))
    assert table.returncode == 0 and "ROC AUC" in table.stdout and "no face found  1" in table.stdout


def test_evaluate_by_source_from_metadata(tiny_convnext, tmp_path):
    data = tmp_path / "data"
    rows = ["file_name,label,source"]
    for cls, photos in (("real", REAL_FACES), ("fake", FAKE_FACES)):
        (data / cls).mkdir(parents=True)
        for photo in photos:
            shutil.copy(photo, data / cls / photo.name)
            rows.append(f"{cls}/{photo.name},{cls},{photo.name.rsplit('-', 1)[0]}")
    (data / "metadata.csv").write_text("\n".join(rows) + "\n")

    done = run_cli(
        "evaluate", str(data), "--model", str(tiny_convnext), "--sources", "ffhq-1024", "tpdne-2022", "--json"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["n_images"] == len(REAL_FACES) + 1
    assert set(report["by_source"]) == {"ffhq-1024", "tpdne-2022"}
    assert report["by_source"]["ffhq-1024"]["n"] == len(REAL_FACES)
    assert report["by_source"]["tpdne-2022"]["label"] == "fake"

    done = run_cli("evaluate", str(data), "--model", str(tiny_convnext), "--sources", "midjourney")
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == f"realfake: error: No images of source midjourney in {data} (see its metadata.csv)."
    )

    # SOURCE:SHARE takes the files train.py --heldout_sources SOURCE:SHARE holds out, and no others
    held = [p.name for p in REAL_FACES if in_share(p, 0.5)]
    assert 0 < len(held) < len(REAL_FACES)  # the fixture names split both ways at 0.5
    done = run_cli(
        "evaluate",
        str(data),
        "--model",
        str(tiny_convnext),
        "--sources",
        "ffhq-1024:0.5",
        "tpdne-2022",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["by_source"]["ffhq-1024"]["n"] == len(held)
    done = run_cli("evaluate", str(data), "--model", str(tiny_convnext), "--sources", "ffhq-1024:half")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "realfake: error: ffhq-1024:half: the share after the colon must be a number in (0, 1]."
    )


def test_held_out_shares_are_the_same_files_in_training_and_evaluation():
    names = [f"sdfd-sd21-{i}.jpg" for i in range(2000)]
    held = [name for name in names if in_share(f"/any/folder/{name}", 0.3)]
    assert 0.27 < len(held) / len(names) < 0.33
    assert held == [name for name in names if in_share(name, 0.3)]  # the name alone decides
    assert all(in_share(name, 1.0) for name in names)


def test_predict_explain_writes_one_heatmap_per_face_and_goes_on(tiny_convnext, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    group, _ = group_photo(REAL_FACES[:2])
    group.save(photos / "two.jpg")
    shutil.copy(REAL_FACES[0], photos / "one.jpg")
    shutil.copy(NO_FACE, photos / "coffee.jpg")
    (photos / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "explained"
    done = run_cli("predict", str(photos), "--json", "--explain", str(out), "--model", str(tiny_convnext))
    assert done.returncode == 1 and "Traceback" not in done.stderr  # the broken file, reported
    results = {Path(r["path"]).name: r for r in json.loads(done.stdout)}
    assert results["broken.jpg"]["error"] and len(results["two.jpg"]["faces"]) == 2
    written = sorted(p.name for p in out.iterdir())
    assert written == ["one-face1.png", "two-face1.png", "two-face2.png"]
    classifier = realfake.FaceClassifier.from_pretrained(tiny_convnext)
    for name in written:
        assert Image.open(out / name).size == (classifier.crop_size, classifier.crop_size)


def test_predict_explain_with_a_model_it_cannot_explain(tmp_path):
    from transformers import ResNetConfig, ResNetForImageClassification

    from realfake.architectures import convnext_from_scratch

    config = ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8],
        depths=[1],
        id2label={0: "real", 1: "fake"},
        label2id={"real": 0, "fake": 1},
    )
    ResNetForImageClassification(config).save_pretrained(tmp_path / "resnet")
    _, processor = convnext_from_scratch(image_size=32, depths=(1, 1, 1, 1), hidden_sizes=(8, 8, 16, 16))
    processor.save_pretrained(tmp_path / "resnet")
    done = run_cli(
        "predict", str(REAL_FACES[0]), "--explain", str(tmp_path / "out"), "--model", str(tmp_path / "resnet")
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "realfake: error: Heatmaps are not available for ResNetForImageClassification models: realfake "
        "explains its CLIP, ViT and ConvNeXt classifiers."
    )
    assert not (tmp_path / "out").exists()


def test_what_each_file_says_is_in_the_json_beside_its_faces(tiny_convnext, tmp_path):
    from test_provenance import make_credentials, tagged_face_photos

    photos = tagged_face_photos(tmp_path / "photos", make_credentials())
    done = run_cli("predict", str(tmp_path / "photos"), "--json", "--model", str(tiny_convnext))
    assert done.returncode == 0, done.stderr
    results = {Path(r["path"]).name: r for r in json.loads(done.stdout)}
    assert sorted(results) == sorted(photos)  # .heic is found in the folder too
    for name, result in results.items():
        assert len(result["faces"]) == 1, name  # the face is judged whatever the file says
    kinds = {name: [f["kind"] for f in r["provenance"]["findings"]] for name, r in results.items()}
    assert kinds == {
        "a1111.png": ["generator_metadata"],
        "c2pa.jpg": ["c2pa"],
        "camera.jpg": ["camera"],
        "xmp.jpg": ["digital_source_type"],
        "iphone.heic": ["camera"],
        "stripped.jpg": [],
    }
    a1111 = results["a1111.png"]["provenance"]
    assert a1111["declares_ai"] and "AUTOMATIC1111" in a1111["summary"]
    assert a1111["findings"][0]["details"]["has_prompt"] is True
    c2pa_finding = results["c2pa.jpg"]["provenance"]["findings"][0]
    assert c2pa_finding["strength"] == "signed" and "Example Corp" in c2pa_finding["says"]
    assert "trainedAlgorithmicMedia" in json.dumps(c2pa_finding["details"])
    assert results["stripped.jpg"]["provenance"]["summary"].startswith("No provenance data")
    assert results["iphone.heic"]["provenance"]["findings"][0]["details"]["model"] == "iPhone 13"
    assert (
        results["xmp.jpg"]["provenance"]["declares_ai"]
        and results["xmp.jpg"]["provenance"]["findings"][0]["strength"] == "claim"
    )

    text = run_cli("predict", str(photos["a1111.png"]), "--model", str(tiny_convnext))
    assert text.returncode == 0
    assert text.stdout.split(": ", 2)[1] == "file says"  # a declared AI origin comes first

    data = tmp_path / "data"
    (data / "real").mkdir(parents=True)
    (data / "fake").mkdir()
    shutil.copy(photos["camera.jpg"], data / "real")
    shutil.copy(photos["stripped.jpg"], data / "real")
    for name in ("a1111.png", "c2pa.jpg"):
        shutil.copy(photos[name], data / "fake")
    done = run_cli("evaluate", str(data), "--json", "--model", str(tiny_convnext), "--threshold", "0.0")
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)["provenance"]
    assert counts == {
        "files_with_findings": 3,
        "declares_ai": 2,
        "declares_ai_called_fake": 2,  # at threshold 0 everything is called fake
        "camera_origin": 1,
        "camera_origin_called_real": 0,
        "notes": 0,
    }


def test_broken_metadata_is_a_note_and_the_faces_are_still_judged(tiny_convnext, tmp_path):
    from test_provenance import A1111, encode, xmp_packet

    face = Image.open(REAL_FACES[0]).convert("RGB").resize((384, 384))
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111 + "x" * 5_000_000)  # a 5 MB text chunk
    (tmp_path / "huge-chunk.png").write_bytes(encode(face, "PNG", pnginfo=info))
    (tmp_path / "broken-xmp.jpg").write_bytes(encode(face, "JPEG", xmp=xmp_packet()[:150]))
    done = run_cli("predict", str(tmp_path), "--json", "--model", str(tiny_convnext))
    assert done.returncode == 0 and "Traceback" not in done.stderr
    for result in json.loads(done.stdout):
        assert result["error"] is None and len(result["faces"]) == 1
        assert result["provenance"]["findings"] == [] and len(result["provenance"]["notes"]) == 1


@pytest.mark.parametrize("flag", ["--annotate", "--explain"])
def test_pictures_are_never_written_among_the_inputs(tmp_path, flag):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(REAL_FACES[0], photos / "a.png")
    before = (photos / "a.png").read_bytes()
    done = run_cli("predict", str(photos), flag, str(photos))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"realfake: error: {flag} {photos} holds an input ({photos / 'a.png'}), which its pictures could "
        "overwrite; write them into a folder outside the inputs."
    ]
    assert sorted(photos.iterdir()) == [photos / "a.png"] and (photos / "a.png").read_bytes() == before
