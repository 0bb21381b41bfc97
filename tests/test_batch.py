"""``python -m realfake batch`` on a real local Ray with two CPUs: rows equal to ``predict --json``, a
killed actor, a stopped and resumed run, a Hugging Face dataset from a prepared local cache."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import FAKE_FACES, NO_FACE, REAL_FACES, REPO, run_cli

from realfake.batch import MANIFEST, Output, open_source, pin_model, read_output, run_batch
from realfake.errors import RealfakeError

pytest.importorskip("ray")  # the optional extra; CI installs it, so nothing here is skipped there

COPIES = 3  # of photo_tree in big_tree
EXAMPLES = sorted((REPO / "examples").glob("*.jpg"))
BAD = {
    "broken.jpg": lambda p: p.write_bytes(REAL_FACES[0].read_bytes()[:4000]),
    "notes.png": lambda p: p.write_text("a text file named .png\n"),
    "empty.jpg": lambda p: p.write_bytes(b""),
}


@pytest.fixture(scope="module")
def photo_tree(tmp_path_factory) -> Path:
    """The examples, fixture faces one and two folders deep, and three files that are not photos."""
    root = tmp_path_factory.mktemp("photos")
    (root / "people" / "nested").mkdir(parents=True)
    for photo in EXAMPLES:
        shutil.copy(photo, root / photo.name)
    for photo in REAL_FACES[:2] + FAKE_FACES[:2]:
        shutil.copy(photo, root / "people" / photo.name)
    shutil.copy(NO_FACE, root / "people" / "nested" / NO_FACE.name)
    for name, make in BAD.items():
        make(root / name)
    return root


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory, photo_tree) -> Path:
    """photo_tree three times over: long enough to stop or break a run half way."""
    root = tmp_path_factory.mktemp("big")
    for copy in range(COPIES):
        shutil.copytree(photo_tree, root / f"copy{copy}")
    return root


@pytest.fixture(scope="module")
def predicted(tiny_convnext, photo_tree) -> dict[str, dict]:
    """``predict --json`` on photo_tree, by path below it."""
    done = run_cli("predict", str(photo_tree), "--json", "--model", str(tiny_convnext))
    assert done.returncode == 1, done.stderr  # the bad files
    return {Path(obj["path"]).relative_to(photo_tree).as_posix(): obj for obj in json.loads(done.stdout)}


def as_predict_json(row: dict) -> dict:
    """A batch row in the shape of a predict --json object."""
    return {
        "path": row["path"],
        "width": row["width"],
        "height": row["height"],
        "faces": row["faces"],
        "error": row["error"],
        "first_frame_only": bool(row["first_frame_only"]),
        "provenance": json.loads(row["provenance"]) if row["provenance"] else None,
    }


def assert_same_result(got: dict, want: dict) -> None:
    """Equal, but for the last digits of the scores: a face scored in another batch (or with another
    number of threads) can differ by float rounding."""
    scores = ("detection_score", "fake_probability")
    for mine, theirs in zip(got["faces"], want["faces"], strict=True):
        assert {k: v for k, v in mine.items() if k not in scores} == {
            k: v for k, v in theirs.items() if k not in scores
        }
        assert [mine[k] for k in scores] == pytest.approx([theirs[k] for k in scores], abs=1e-4)
    assert {k: v for k, v in got.items() if k != "faces"} == {k: v for k, v in want.items() if k != "faces"}


def rows_by_id(output: Path) -> dict[str, dict]:
    rows = read_output(output).to_pylist()
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)), "an input has two rows"
    return {row["id"]: row for row in rows}


def test_a_folder_gives_one_row_per_file_equal_to_predict(tiny_convnext, photo_tree, predicted, tmp_path):
    out = tmp_path / "run"
    done = run_cli("batch", str(photo_tree), "--output", str(out), "--model", str(tiny_convnext), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    rows = rows_by_id(out)
    expected = predicted
    assert set(rows) == set(expected)
    assert report["judged"] == len(rows) == 5 + 4 + 1 + 3 and report["missing"] == []
    assert report["errors"] == 3 and report["faces"] == sum(len(o["faces"]) for o in expected.values())
    for key, row in rows.items():
        assert_same_result(as_predict_json(row), expected[key])
        assert row["n_faces"] == len(row["faces"])
        size = (photo_tree / key).stat().st_size
        assert row["file_bytes"] == size
    assert rows["empty.jpg"]["error"] == "The file is empty (0 bytes)."
    assert rows["notes.png"]["error"].startswith("The file holds text, not an image")
    assert rows["broken.jpg"]["error"].startswith("The JPEG file is truncated or corrupt")
    assert rows["people/nested/no-face-coffee.jpg"]["verdict"] is None
    judged = [row for row in rows.values() if row["faces"]]
    for row in judged:
        verdicts = {face["verdict"] for face in row["faces"]}
        assert row["verdict"] == next(v for v in ("fake", "uncertain", "real") if v in verdicts)
        assert row["max_fake_probability"] == max(face["fake_probability"] for face in row["faces"])
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["model"] == str(tiny_convnext.resolve()) and len(manifest["fingerprint"]) == 64
    shard = next(out.glob("part-*.parquet"))
    assert json.loads(pq.read_schema(shard).metadata[b"realfake"])["fingerprint"] == manifest["fingerprint"]
    again = run_batch(str(photo_tree), out, model=str(tiny_convnext))  # all done: Ray is not even started
    assert (again.judged, again.skipped, again.missing) == (0, len(rows), [])
    assert f"Skipped {len(rows)} photos already judged in {out}." in again.summary().splitlines()


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def test_an_actor_killed_while_it_holds_a_batch_loses_nothing(local_ray, tiny_convnext, big_tree, tmp_path):
    import psutil

    killed: list[int] = []

    def kill_a_busy_actor() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for process in psutil.process_iter(["pid", "cmdline"]):
                title = " ".join(process.info["cmdline"] or [])
                if "MapWorker(MapBatches(Judge)).submit" in title:  # running a batch right now
                    os.kill(process.info["pid"], signal.SIGKILL)
                    killed.append(process.info["pid"])
                    return
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_a_busy_actor, daemon=True)
    watcher.start()
    report = run_batch(str(big_tree), tmp_path / "run", model=str(tiny_convnext), workers=2, batch_size=2)
    watcher.join(timeout=1)
    assert killed, "no actor was seen running a batch"
    rows = rows_by_id(tmp_path / "run")
    inputs = open_source(str(big_tree)).ids
    assert sorted(rows) == sorted(inputs) and report.missing == [] and report.judged == len(inputs)
    assert sum(row["error"] is not None for row in rows.values()) == COPIES * len(BAD)


def test_a_stopped_run_resumes_and_judges_nothing_twice(tiny_convnext, big_tree, tmp_path):
    out = tmp_path / "run"
    args = ["batch", str(big_tree), "--output", str(out), "--model", str(tiny_convnext)]
    first = subprocess.Popen(
        [sys.executable, "-m", "realfake", *args, "--batch-size", "1", "--shard-rows", "1"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 180
    while not list(out.glob("part-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)  # Ctrl-C
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 130, stderr
    assert "realfake: interrupted" in stderr
    assert (
        "realfake: Stopped after " in stderr and f"they are in {out}, and the same command goes on" in stderr
    )
    kept = rows_by_id(out)
    total = len(open_source(str(big_tree)).ids)
    assert 0 < len(kept) < total
    assert not list(out.glob(".*.tmp"))
    (out / ".part-leftover.parquet.tmp").write_bytes(b"PAR1 a shard cut off by a crash")

    second = run_cli(*args, "--json")
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert report["skipped"] == len(kept) and report["judged"] == total - len(kept)
    rows = rows_by_id(out)
    assert len(rows) == total and report["missing"] == []
    assert all(rows[key] == row for key, row in kept.items())  # the first run's rows, untouched
    assert not list(out.glob(".*.tmp"))


def prepare_hub_dataset(cache: Path, repo: str, files: list[Path]) -> None:
    """The local cache ``datasets.load_dataset(repo)`` leaves after loading a Hub dataset of these
    image files (parquet on the Hub): what it reads back with HF_HUB_OFFLINE=1."""
    import datasets
    from datasets.packaged_modules.parquet.parquet import Parquet

    parquet = cache / "upload" / "train-00000-of-00001.parquet"
    parquet.parent.mkdir(parents=True)
    features = datasets.Features({"label": datasets.Value("int64"), "image": datasets.Image()})
    rows = {"label": [0] * len(files), "image": [{"bytes": f.read_bytes(), "path": f.name} for f in files]}
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(parquet))
    builder = Parquet(cache_dir=str(cache / "build"), data_files={"train": [str(parquet)]}, dataset_name="x")
    builder.download_and_prepare()
    owner, name = repo.split("/")
    target = cache / "datasets" / f"{owner}___{name}" / "default" / "0.0.0" / "0123456789abcdef"
    target.mkdir(parents=True)
    for prepared in Path(builder.cache_dir).iterdir():
        shutil.copy(prepared, target / prepared.name.replace("x-train", f"{name}-train"))


def test_a_hub_dataset_from_a_local_cache_offline(tiny_convnext, photo_tree, predicted, tmp_path):
    files = sorted(p for p in photo_tree.rglob("*") if p.is_file())
    prepare_hub_dataset(tmp_path / "cache", "realfake-test/profile-photos", files)
    env = {"HF_DATASETS_CACHE": str(tmp_path / "cache" / "datasets"), "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "run"
    source = "hf:realfake-test/profile-photos:train"
    done = run_cli("batch", source, "--output", str(out), "--model", str(tiny_convnext), "--json", env=env)
    assert done.returncode == 0, done.stderr
    rows = rows_by_id(out)
    assert sorted(rows) == sorted(f"train/{i}" for i in range(len(files)))
    expected = predicted
    for i, file in enumerate(files):
        row, key = rows[f"train/{i}"], file.relative_to(photo_tree).as_posix()
        assert row["path"] == file.name and row["file_bytes"] == file.stat().st_size
        assert_same_result(as_predict_json(row) | {"path": key}, expected[key] | {"path": key})
    missing = run_cli("batch", "hf:realfake-test/nothing-here", "--output", str(tmp_path / "x"), env=env)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1].startswith("realfake: error: Cannot load the dataset")


def test_a_list_of_paths_and_uris(tiny_convnext, local_ray, photo_tree, tmp_path):
    listing = tmp_path / "inputs.txt"
    listing.write_text(
        "# photos to check\n"
        f"{(photo_tree / 'real.jpg').as_uri()}\n"
        "\n"
        f"{os.path.relpath(photo_tree / 'people' / REAL_FACES[0].name, tmp_path)}\n"
        "missing.jpg\n"
        "nosuchscheme://bucket/photo.jpg\n"
    )
    source = open_source(str(listing))
    assert len(source.ids) == 4
    report = run_batch(source, tmp_path / "run", model=str(tiny_convnext))
    rows = rows_by_id(tmp_path / "run")
    assert report.judged == 4 and report.errors == 2
    assert rows[(photo_tree / "real.jpg").as_uri()]["faces"]
    assert rows[os.path.relpath(photo_tree / "people" / REAL_FACES[0].name, tmp_path)]["faces"]
    assert rows["missing.jpg"]["error"] == f"No such file: {tmp_path / 'missing.jpg'}."
    assert rows["nosuchscheme://bucket/photo.jpg"]["error"].startswith("Cannot fetch nosuchscheme://")


def test_bad_sources_and_outputs_are_one_sentence(tiny_convnext, photo_tree, tmp_path):
    with pytest.raises(RealfakeError, match="neither a folder"):
        open_source(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RealfakeError, match="holds no image files"):
        open_source(str(tmp_path / "empty"))
    (tmp_path / "blank.txt").write_text("# nothing\n\n")
    with pytest.raises(RealfakeError, match="lists no paths"):
        open_source(str(tmp_path / "blank.txt"))
    with pytest.raises(RealfakeError, match="needs a dataset id"):
        open_source("hf:")
    pin = pin_model(str(tiny_convnext))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(RealfakeError, match="not empty and holds no realfake batch output"):
        Output(tmp_path / "taken").prepare(pin, "test")
    Output(tmp_path / "mine").prepare(pin, "test")
    other = pin_model()  # the bundled model
    with pytest.raises(RealfakeError, match="holds verdicts by the model .*resume it with that model"):
        Output(tmp_path / "mine").prepare(other, "test")
    done = run_cli("batch", str(tmp_path / "empty"), "--output", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"realfake: error: The folder {tmp_path / 'empty'} holds no image files."
    ]
