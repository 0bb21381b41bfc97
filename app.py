"""realfake on Hugging Face Spaces: drop a photo, see every face boxed and labelled real or fake; drop a
video, get a verdict per person on screen and each one's scores over time.

UI wiring only: components, events and limits. The work is done by the realfake library.
The model comes from REALFAKE_MODEL (a Hub id or folder; REALFAKE_MODEL_REVISION pins a revision),
else the model bundled with realfake. ``python app.py`` serves on port 7860 (GRADIO_SERVER_PORT).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import gradio as gr

import realfake
from realfake.annotate import all_captions, caption, for_display, summary, table_rows, timeline
from realfake.errors import RealfakeError
from realfake.provenance import read_provenance

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
log = logging.getLogger("realfake.app")

EXAMPLES = Path(__file__).parent / "examples"
MAX_FILE_SIZE = "100mb"  # a 30 s phone clip is 30-60 MB; photos stay under realfake's own 50 MB limit
VIDEO_FPS = float(os.environ.get("REALFAKE_VIDEO_FPS", 2))  # frames sampled a second from a video
# Chosen with benchmarks/load_test.py on a 2-core machine like a free CPU Space (see README);
# the environment can change them for bigger hardware.
QUEUE_SIZE = int(os.environ.get("REALFAKE_QUEUE_SIZE", 20))  # waiting beyond this: "queue is full"
CONCURRENCY = int(os.environ.get("REALFAKE_CONCURRENCY", 2))  # predictions run at once
STRENGTH_WORDS = {
    "verified": "signature valid and trusted",
    "signed": "signature valid, signer not on a trust list",
    "claim": "an unsigned statement anyone can write",
    "hint": "a weak sign, easy to edit",
}
TABLE_HEADERS = ["face", "box (x1, y1, x2, y2)", "detection score", "P(fake)", "verdict", "label"]

detector = realfake.load_detector()
classifier = detector.classifier
RESULTS = classifier.validation_results()
log.info(
    "Serving model %s (revision %s) with decision threshold %.3f",
    classifier.name,
    classifier.revision or "as found",
    detector.threshold,
)


class UploadedImage(gr.Image):
    """An image drop zone that hands the uploaded file over untouched.

    realfake opens it with its own limits and one-sentence errors, instead of Gradio's decoder.
    """

    def preprocess(self, payload):
        return None if payload is None else str(payload.path)

    def get_block_name(self) -> str:
        return "image"


def predict(image: str | None, threshold: float | None = None):
    """Find and judge every face: the annotated image, a table, a sentence, the raw results and
    what the file itself says about its origin.

    Plain values only (the image's colours are fixed on the component), so that an API caller
    gets the image and its boxes themselves. The file's statements are read from the uploaded
    bytes as they arrived, before anything decodes or re-encodes them.
    """
    if image is None:
        raise gr.Error("Upload a photo first.", print_exception=False)
    try:
        loaded = realfake.load_image(image)
        verdicts = detector.predict(loaded.image, threshold=threshold)
    except RealfakeError as error:
        raise gr.Error(str(error), print_exception=False) from None
    provenance = read_provenance(image)
    sentence = summary(verdicts)
    if provenance.declares_ai:  # a declared AI origin comes first; the faces' verdicts stay as they are
        sentence = f"{provenance.summary()} {sentence}"
    if loaded.first_frame_only:
        sentence += " (Animated image: the first frame was judged.)"
    results = {
        "width": loaded.size[0],
        "height": loaded.size[1],
        "faces": [face.to_dict() for face in verdicts],
        "summary": sentence,
        "provenance": provenance.to_dict(),
    }
    shown = for_display(loaded.image, verdicts)
    return shown, table_rows(verdicts), sentence, results, file_says(provenance)


def predict_video(video: str | None, progress=gr.Progress()):  # noqa: B008 - how Gradio asks for a bar
    """Every person in a video: a gallery of each one's most telling face crop with its verdict and
    span, a timeline of their P(fake) over time on the verdict bands, a sentence, the raw results
    and what the file says about its origin. Plain values only, as /predict."""
    if video is None:
        raise gr.Error("Upload a video first.", print_exception=False)

    def report(done: int, total: int | None) -> None:
        progress((done, total or done), desc="Sampled frames", unit="frames")

    try:
        result = detector.predict_video(video, fps=VIDEO_FPS, progress=report)
    except RealfakeError as error:
        raise gr.Error(str(error), print_exception=False) from None
    sentence = summary(result.tracks, nouns=("person", "people"))
    if result.tracks:
        sentence = f"{sentence[:-1]} in {result.sampled_frames} frames sampled at {result.fps:g} a second."
    if result.provenance is not None and result.provenance.declares_ai:
        sentence = f"{result.provenance.summary()} {sentence}"
    sentence = " ".join([sentence, *result.notes])
    gallery = [
        (track.crops[0], f"person {track.id}: {caption(track)}, {track.start:.1f}-{track.end:.1f} s")
        for track in result.tracks
        if track.crops
    ]
    figure = timeline(result.tracks, classifier.verdict_thresholds(), result.duration)
    results = result.to_dict() | {"summary": sentence}
    del results["path"]  # the server's temporary copy; gradio_client would also take it for a file to fetch
    return gallery, figure, sentence, results, file_says(result.provenance)


def file_says(provenance) -> str:
    """The "File says" panel: each statement the file makes about its origin, strongest first."""
    if not provenance.findings:
        lines = [provenance.summary()]
    else:
        lines = [f"{finding.says} ({_worth(finding)}; {finding.where})" for finding in provenance.findings]
    return "\n".join(lines + list(provenance.notes))


def _worth(finding) -> str:
    # a hint of neither AI nor a camera (the software that wrote a video) is no "weak sign" of anything
    if finding.strength == "hint" and finding.ai is None:
        return "easy to edit"
    return STRENGTH_WORDS[finding.strength]


def explain(image: str | None):
    """Each face's crop beside its heatmap: which parts of the crop pushed its score towards fake."""
    from realfake.explain import overlay

    if image is None:
        raise gr.Error("Upload a photo first.", print_exception=False)
    try:
        loaded = realfake.load_image(image)
        faces = detector.predict(loaded.image)
        explained = detector.explain(loaded.image, faces)
    except RealfakeError as error:
        raise gr.Error(str(error), print_exception=False) from None
    if not faces:
        gr.Info("No face found, so there is nothing to explain.")
    gallery = []
    for number, (face, (crop, heatmap)) in enumerate(zip(faces, explained), start=1):
        gallery += [
            (crop, f"face {number}: {caption(face)}"),
            (overlay(crop, heatmap), f"face {number}: heatmap"),
        ]
    return gallery


def verdict_rule() -> str:
    """How P(fake) becomes a verdict with this model, in words."""
    bands = classifier.verdict_thresholds()
    if bands.real_at_most < bands.fake_at_least and classifier.calibration is not None:
        return (
            f"fake from P(fake) {bands.fake_at_least:.2f}, real up to {bands.real_at_most:.2f}, "
            "uncertain between (chosen on held-out faces so that at most 1% of real faces are called "
            "fake and at most 1% of fakes real)"
        )
    return f"fake from P(fake) {bands.fake_at_least:.2f}, real below (this model has no uncertain band)"


def model_panel() -> str:
    lines = [
        f"**Model**: `{classifier.name if classifier.name != str(realfake.pipeline.DEFAULT_MODEL_DIR) else 'bundled default'}`"
        + (f" @ `{classifier.revision}`" if classifier.revision else ""),
        f"**Verdicts**: {verdict_rule()}",
        f"**Decision threshold** (the binary `label` of the API): {detector.threshold:.3f}",
    ]
    if RESULTS:
        for name, words in (("heldout", "held-out sources"), ("random", "random validation split")):
            if f"{name}_roc_auc" in RESULTS:
                lines.append(
                    f"**{words}**: ROC AUC {RESULTS[f'{name}_roc_auc']:.3f}, accuracy "
                    f"{RESULTS[f'{name}_accuracy']:.3f} ({RESULTS[f'{name}_n']} images)"
                )
    return "  \n".join(lines)


with gr.Blocks(title="realfake: real or generated face?", delete_cache=(3600, 3600)) as demo:
    gr.Markdown(
        "# Real or generated?\nDrop a photo: every face is outlined and judged **fake** (red: made by "
        "an image generator, a GAN, a diffusion or text-to-image model), **real** (green) or "
        "**uncertain** (amber: the model cannot tell well enough to say), with its calibrated "
        "probability. A first opinion, not proof."
    )
    with gr.Tab("Photo", id="photo"):
        with gr.Row():
            with gr.Column():
                photo = UploadedImage(
                    label="Photo", type="filepath", sources=["upload", "clipboard"], height=420
                )
                with gr.Accordion("Advanced", open=False):
                    threshold = gr.Slider(
                        0.0,
                        1.0,
                        value=detector.threshold,
                        step=0.01,
                        label="Decision threshold",
                        info="The binary label (the API's `label`) is fake when P(fake) reaches this; the "
                        "verdicts use the model's own two thresholds.",
                    )
                button = gr.Button("Check faces", variant="primary")
            with gr.Column():
                annotated = gr.AnnotatedImage(label="Faces", height=420, color_map=all_captions())
                verdict = gr.Textbox(label="Verdict", interactive=False)
                says = gr.Textbox(
                    label="File says",
                    info="What the file states about its own origin (Content Credentials, generator metadata, "
                    "camera data), shown beside the verdict, never instead of it.",
                    interactive=False,
                    lines=2,
                    elem_id="file-says",
                )
        table = gr.Dataframe(headers=TABLE_HEADERS, label="Faces found", interactive=False)
        with gr.Accordion("Explain: what pushed each score towards fake", open=False):
            gr.Markdown(
                "Each face's crop, as the model saw it, beside a heatmap (Grad-CAM): red where the crop "
                "pushed the score towards *fake* most, blue where least. It shows where the score came "
                "from, not proof of where an image was edited or generated; every face gets a map, even "
                "one judged real."
            )
            explain_button = gr.Button("Explain", variant="secondary")
            heatmaps = gr.Gallery(
                label="Crops and heatmaps", columns=4, height="auto", object_fit="contain", elem_id="heatmaps"
            )
        with gr.Accordion("Results as JSON", open=False):
            raw = gr.JSON(label="results")
        outputs = [annotated, table, verdict, raw, says]
        # before the examples, which would otherwise take the name "predict" for their own event
        button.click(predict, inputs=[photo, threshold], outputs=outputs, api_name="predict")
        gr.Examples(
            examples=[
                [str(EXAMPLES / name)]
                for name in ("group.jpg", "real.jpg", "generated.jpg", "generated-t2i.jpg", "no-face.jpg")
            ],
            inputs=[photo],
            outputs=outputs,
            fn=predict,
            run_on_click=True,
            cache_examples=False,
            api_visibility="private",
            label="Examples (origin and licence in examples/README.md)",
        )
    with gr.Tab("Video", id="video"):
        gr.Markdown(
            f"Drop a video (MP4, MOV, WebM, MKV or AVI, up to 10 minutes and 100 MB): it is sampled "
            f"at {VIDEO_FPS:g} frames a second, each person's face is followed across frames, and each "
            "person gets one verdict from all their frames. The model was trained on still photos: "
            "compression and motion blur change the pixels, and face swaps or lip-sync edits of a real "
            "person are a different manipulation it was not trained or measured on; *real* means no "
            "sign of the generators it knows."
        )
        with gr.Row():
            with gr.Column():
                # no format given, so Gradio hands the upload over as it came (it would need FFmpeg to convert it)
                clip = gr.Video(
                    label="Video", sources=["upload"], height=360, include_audio=True, elem_id="video-input"
                )
                video_button = gr.Button("Check people", variant="primary")
            with gr.Column():
                people = gr.Gallery(
                    label="People", columns=4, height="auto", object_fit="contain", elem_id="people"
                )
                video_verdict = gr.Textbox(label="Video verdict", interactive=False)
                video_says = gr.Textbox(
                    label="Video file says", interactive=False, lines=2, elem_id="video-says"
                )
        scores_plot = gr.Plot(label="P(fake) over time", elem_id="timeline")
        with gr.Accordion("Video results as JSON", open=False):
            video_raw = gr.JSON(label="video results")
    with gr.Accordion("About the model", open=False):
        gr.Markdown(model_panel())
    explain_button.click(explain, inputs=[photo], outputs=[heatmaps], api_name="explain")
    video_button.click(
        predict_video,
        inputs=[clip],
        outputs=[people, scores_plot, video_verdict, video_raw, video_says],
        api_name="predict_video",
    )
    photo.upload(
        predict,
        inputs=[photo, threshold],
        outputs=outputs,
        api_name="predict_on_upload",
        api_visibility="private",
    )

demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)

if __name__ == "__main__":
    demo.launch(max_file_size=MAX_FILE_SIZE, show_error=True)
