"""app.py for real: a Gradio server on localhost, gradio_client calls, the queue limit, a browser."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import FAKE_FACES, REAL_FACES, REPO, group_photo
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from gradio_client.utils import QueueError
from PIL import Image
from test_video import FAKE, face, write_clip

import realfake
from benchmarks import local_app
from realfake.annotate import COLOURS, caption, percent, summary

OUTPUT = Path(__file__).parent / "output"
SERVERS = itertools.count(1)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def start_app(**env: str) -> tuple[subprocess.Popen, str]:
    OUTPUT.mkdir(exist_ok=True)
    return local_app.start_app(OUTPUT / f"app-{next(SERVERS)}.log", **env)


@pytest.fixture(scope="module")
def app():
    OUTPUT.mkdir(exist_ok=True)
    server, url = start_app()
    yield url
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture(scope="module")
def client(app) -> Client:
    return Client(app, verbose=False)


def test_the_page_names_the_bundled_model_and_its_figures(app):
    page = httpx.get(app, timeout=10).text
    assert "bundled default" in page and "held-out sources" in page


def test_only_predict_explain_and_predict_video_are_public(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert list(endpoints) == ["/predict", "/explain", "/predict_video"]


def two_people_clip(path: Path) -> Path:
    """A real and a generated face moving across a 960x540 clip for 4 s."""
    return write_clip(path, [([(face(REAL_FACES[0]), 20, 140, 6), (face(FAKE), 640, 140, -4)], 40)])


def test_predict_video_through_the_client(client, tmp_path):
    gallery, plot, sentence, results, says = client.predict(
        handle_file(str(two_people_clip(tmp_path / "two.mp4"))), api_name="/predict_video"
    )
    assert results["kind"] == "video" and "path" not in results and results["sampled_frames"] == 8
    assert [track["verdict"] for track in results["tracks"]] == ["real", "fake"]
    assert [item["caption"] for item in gallery] == [
        f"person 1: real {percent(1 - results['tracks'][0]['fake_probability'])}, 0.0-3.5 s",
        f"person 2: fake {percent(results['tracks'][1]['fake_probability'])}, 0.0-3.5 s",
    ]
    assert Image.open(gallery[0]["image"]).size == (224, 224)
    assert (
        sentence.startswith("2 people: 1 looks generated (")
        and "in 8 frames sampled at 2 a second." in sentence
    )
    assert results["summary"] == sentence and says == results["provenance"]["findings"][0]["says"] + (
        " (easy to edit; MP4 container)"
    )
    assert "(FFmpeg)" in says and not results["provenance"]["declares_ai"]
    assert plot["type"] == "matplotlib" and plot["plot"].startswith("data:image/")


def test_a_broken_video_is_one_sentence_in_the_app(client, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 64)
    with pytest.raises(AppError, match="broken.mp4 cannot be read as a video"):
        client.predict(handle_file(str(broken)), api_name="/predict_video")


def test_the_explain_endpoint_on_the_group_photo(client):
    gallery = client.predict(handle_file(str(REPO / "examples" / "group.jpg")), api_name="/explain")
    assert len(gallery) == 8  # four faces: each crop, then its heatmap
    for number in range(1, 5):
        crop, heatmap = gallery[2 * number - 2], gallery[2 * number - 1]
        assert re.fullmatch(
            rf"face {number}: (real|fake) \S+|face {number}: uncertain \S+ fake", crop["caption"]
        )
        assert heatmap["caption"] == f"face {number}: heatmap"
        shown, overlaid = Image.open(crop["image"]), Image.open(heatmap["image"])
        assert shown.size == overlaid.size == (224, 224)
        assert (
            np.abs(np.asarray(shown, dtype=int) - np.asarray(overlaid.convert("RGB"), dtype=int)).mean() > 5
        )


def test_predict_on_a_real_photo(client):
    annotated, table, sentence, results, says = client.predict(
        handle_file(str(REAL_FACES[0])), api_name="/predict"
    )
    assert says == "No provenance data: most sites strip it, so its absence says nothing."
    assert results["provenance"]["findings"] == [] and results["provenance"]["declares_ai"] is False
    assert results["width"] == 512 and results["height"] == 512
    [face] = results["faces"]
    x1, y1, x2, y2 = face["box"]
    assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 512
    assert 0 <= face["fake_probability"] <= 1 and face["label"] in ("real", "fake")
    assert face["verdict"] == "real"  # a real photo, and the model is sure of it
    assert sentence.startswith("1 face: 1 looks real (")
    assert table["data"][0][4:] == [face["verdict"], face["label"]]
    # The value itself, not a component update: the image and each face's outline with its caption.
    assert set(annotated) == {"image", "annotations"}
    assert Path(annotated["image"]).is_file()  # the client downloads the annotated image
    [outline] = annotated["annotations"]
    assert outline["label"].split()[0] == face["verdict"] and Path(outline["image"]).is_file()
    alpha = np.asarray(Image.open(outline["image"]).convert("RGBA"))[..., 3]
    assert alpha[round((y1 + y2) / 2), round((x1 + x2) / 2)] == 0  # the face shows through
    assert alpha[round(y1) + 1, round((x1 + x2) / 2)] > 0  # its outline does not


def test_the_file_says_panel_reads_the_uploaded_bytes(client, tmp_path):
    from test_provenance import make_credentials, tagged_face_photos

    photos = tagged_face_photos(tmp_path, make_credentials())
    _, _, sentence, results, says = client.predict(handle_file(str(photos["c2pa.jpg"])), api_name="/predict")
    # The upload's Content Credentials survived the trip: read from the bytes as they arrived.
    [finding] = results["provenance"]["findings"]
    assert finding["kind"] == "c2pa" and finding["strength"] == "signed"
    assert says.startswith(finding["says"]) and "signer not on a trust list" in says
    assert sentence.startswith(results["provenance"]["summary"]) and "1 face: " in sentence
    assert len(results["faces"]) == 1 and results["faces"][0]["verdict"]  # the pixels are judged too
    _, _, sentence, results, says = client.predict(handle_file(str(photos["a1111.png"])), api_name="/predict")
    assert "AUTOMATIC1111" in says and sentence.startswith("The file")
    _, _, sentence, _, says = client.predict(handle_file(str(photos["xmp.jpg"])), api_name="/predict")
    assert "generative AI" in says and "unsigned statement" in says and sentence.startswith("The file")
    _, _, sentence, _, says = client.predict(handle_file(str(photos["camera.jpg"])), api_name="/predict")
    assert "Apple iPhone 13" in says and "weak sign" in says and sentence.startswith("1 face: ")
    _, _, sentence, results, says = client.predict(
        handle_file(str(photos["iphone.heic"])), api_name="/predict"
    )
    assert len(results["faces"]) == 1 and "iPhone 13" in says and sentence.startswith("1 face: ")


def test_predict_on_the_group_photo_and_threshold(client, tmp_path):
    group, regions = group_photo(REAL_FACES[:2] + FAKE_FACES[:2])
    group.save(tmp_path / "group.jpg", quality=95)
    _, _, sentence, results, _ = client.predict(handle_file(str(tmp_path / "group.jpg")), api_name="/predict")
    assert len(results["faces"]) == 4 and sentence.startswith("4 faces: ")
    for region in regions:
        assert sum(region[0] <= (f["box"][0] + f["box"][2]) / 2 <= region[2] for f in results["faces"]) == 1
    _, _, _, everything_fake, _ = client.predict(
        handle_file(str(tmp_path / "group.jpg")), 0.0, api_name="/predict"
    )
    assert {face["label"] for face in everything_fake["faces"]} == {"fake"}
    _, _, _, nothing_fake, _ = client.predict(
        handle_file(str(tmp_path / "group.jpg")), 1.0, api_name="/predict"
    )
    assert {face["label"] for face in nothing_fake["faces"]} == {"real"}


def test_a_photo_without_faces(client):
    _, table, sentence, results, _ = client.predict(
        handle_file(str(REPO / "examples" / "no-face.jpg")), api_name="/predict"
    )
    assert (
        sentence == "No face found."
        and results["faces"] == []
        and table["data"] in ([], [[]], [["", "", "", "", ""]])
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"not an image at all\n",
            "The file holds text, not an image; use JPEG, PNG, WebP, HEIC, AVIF, BMP, TIFF or GIF.",
        ),
        (REAL_FACES[0].read_bytes()[:3000], "The JPEG file is truncated or corrupt"),
    ],
    ids=["text", "truncated"],
)
def test_bad_files_get_the_cli_message(client, tmp_path, content, message):
    path = tmp_path / "upload.jpg"
    path.write_bytes(content)
    with pytest.raises(Exception) as caught:  # noqa: B017 - the client's error type is not the point
        client.predict(handle_file(str(path)), api_name="/predict")
    assert message in str(caught.value)
    assert "Traceback" not in str(caught.value) and "/tmp" not in str(caught.value)


def test_a_full_queue_refuses_cleanly_and_loses_nothing(tiny_convnext, tmp_path):
    server, url = start_app(
        REALFAKE_MODEL=str(tiny_convnext), REALFAKE_QUEUE_SIZE="2", REALFAKE_CONCURRENCY="1"
    )
    try:
        group, _ = group_photo(REAL_FACES * 3, face_side=700, gap=150)  # a large photo: slow enough to queue
        group.save(tmp_path / "big.jpg", quality=95)
        clients = [Client(url, verbose=False, download_files=False) for _ in range(10)]
        with ThreadPoolExecutor(len(clients)) as pool:
            jobs = [c.submit(handle_file(str(tmp_path / "big.jpg")), api_name="/predict") for c in clients]
            outcomes = []
            for job in jobs:
                try:
                    outcomes.append(len(job.result(timeout=300)[3]["faces"]))
                except QueueError as error:
                    outcomes.append(str(error))
        done = [o for o in outcomes if isinstance(o, int)]
        refused = [o for o in outcomes if not isinstance(o, int)]
        assert refused and all(o == "Queue is full! Please try again." for o in refused)
        assert len(done) >= 3 and all(n == 12 for n in done)  # every accepted call completes, fully
        del pool
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def three_verdicts_app(tmp_path_factory):
    """The app serving the bundled model with its verdict thresholds moved so that the four faces of
    examples/group.jpg (P(fake) about 0.99 and 0.0002, and two between 0.29 and 0.52 as the CPU has
    it) get all three verdicts, none of them near a threshold; and the library's faces for it."""
    model = tmp_path_factory.mktemp("model") / "three-verdicts"
    shutil.copytree(REPO / "realfake" / "model", model)
    config = json.loads((model / "config.json").read_text())
    config["realfake_verdict_thresholds"] = {"real_at_most": 0.05, "fake_at_least": 0.95}
    (model / "config.json").write_text(json.dumps(config))
    # What the library says of the photo on this CPU (MTCNN's boxes, and so the scores, move by a
    # fraction of a pixel from one CPU to another): the page must say exactly that.
    faces = realfake.load_detector(model, device="cpu").predict(REPO / "examples" / "group.jpg")
    assert sorted(face.verdict for face in faces) == ["fake", "real", "uncertain", "uncertain"]
    server, url = start_app(REALFAKE_MODEL=str(model))
    yield url, faces
    server.terminate()
    server.wait(timeout=30)


def test_the_page_in_a_real_browser(three_verdicts_app):
    from playwright.sync_api import sync_playwright

    url, faces = three_verdicts_app

    assert Path(CHROMIUM).exists(), (
        "Debian's chromium is needed (apt-get install chromium); .ci/run installs it"
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(url, wait_until="networkidle")
        page.locator("input[type=file]").first.set_input_files(str(REPO / "examples" / "group.jpg"))
        verdict = page.get_by_label("Verdict", exact=True)
        page.wait_for_function(
            "() => [...document.querySelectorAll('textarea')].some(t => t.value.startsWith('4 faces'))",
            timeout=60000,
        )
        assert verdict.input_value() == summary(faces)
        assert re.fullmatch(
            r"4 faces: 1 looks generated \(\S+\), 1 looks real \(>99%\), 2 are uncertain "
            r"\(\d+% fake, \d+% fake\)\.",
            verdict.input_value(),
        )
        assert page.locator("#file-says textarea").input_value() == (
            "No provenance data: most sites strip it, so its absence says nothing."
        )
        # The boxes' legend, as a person reads it: each caption in its verdict's colour.
        captions = page.locator("text=/^(real \\S+|fake \\S+|uncertain \\S+ fake)$/")
        captions.first.wait_for(timeout=30000)
        colours = {
            shown.inner_text(): shown.evaluate("e => getComputedStyle(e).backgroundColor")
            for shown in captions.all()
        }
        assert sorted(colours) == sorted(caption(face) for face in faces)
        for text, colour in colours.items():
            red, green, blue = COLOURS[text.split()[0]]
            assert colour.startswith(f"rgba({red}, {green}, {blue},"), (text, colour)
        page.get_by_text("Explain: what pushed each score towards fake").click()
        page.get_by_role("button", name="Explain", exact=True).click()
        page.wait_for_function("() => document.querySelectorAll('#heatmaps img').length >= 8", timeout=120000)
        page.wait_for_timeout(1000)  # the images' pixels
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "app.png"), full_page=True)
        # the Video tab: a gallery of the people and the timeline of their scores
        page.get_by_role("tab", name="Video").click()
        clip = two_people_clip(OUTPUT / "two-people.mp4")
        page.locator("#video-input input[type=file]").set_input_files(str(clip))
        page.get_by_role("button", name="Check people").click()
        page.wait_for_function("() => document.querySelectorAll('#people img').length >= 2", timeout=120000)
        page.locator("#timeline img").wait_for(timeout=30000)
        assert (
            page.get_by_label("Video verdict", exact=True)
            .input_value()
            .startswith("2 people: 1 looks generated")
        )
        assert "(FFmpeg)" in page.get_by_label("Video file says", exact=True).input_value()
        page.wait_for_timeout(1000)
        page.screenshot(path=str(OUTPUT / "app-video.png"), full_page=True)
        browser.close()
