"""realfake on Hugging Face Spaces: drop a photo, see every face boxed and labelled real or fake.

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
from realfake.annotate import COLOURS, caption, for_display, summary, table_rows
from realfake.errors import RealfakeError

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
log = logging.getLogger("realfake.app")

EXAMPLES = Path(__file__).parent / "examples"
MAX_FILE_SIZE = "20mb"
# Chosen with benchmarks/load_test.py on a 2-core machine like a free CPU Space (see README);
# the environment can change them for bigger hardware.
QUEUE_SIZE = int(os.environ.get("REALFAKE_QUEUE_SIZE", 20))  # waiting beyond this: "queue is full"
CONCURRENCY = int(os.environ.get("REALFAKE_CONCURRENCY", 2))  # predictions run at once
TABLE_HEADERS = ["face", "box (x1, y1, x2, y2)", "detection score", "P(fake)", "label"]

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
    """Find and judge every face: the annotated image, a table, a sentence and the raw results."""
    if image is None:
        raise gr.Error("Upload a photo first.", print_exception=False)
    try:
        loaded = realfake.load_image(image)
        verdicts = detector.predict(loaded.image, threshold=threshold)
    except RealfakeError as error:
        raise gr.Error(str(error), print_exception=False) from None
    colours = {caption(face): "#{:02x}{:02x}{:02x}".format(*COLOURS[face.label]) for face in verdicts}
    sentence = summary(verdicts)
    if loaded.first_frame_only:
        sentence += " (Animated image: the first frame was judged.)"
    results = {
        "width": loaded.size[0],
        "height": loaded.size[1],
        "faces": [face.to_dict() for face in verdicts],
        "summary": sentence,
    }
    shown = gr.AnnotatedImage(value=for_display(loaded.image, verdicts), color_map=colours)
    return shown, table_rows(verdicts), sentence, results


def model_panel() -> str:
    lines = [
        f"**Model**: `{classifier.name if classifier.name != str(realfake.pipeline.DEFAULT_MODEL_DIR) else 'bundled default'}`"
        + (f" @ `{classifier.revision}`" if classifier.revision else ""),
        f"**Decision threshold**: {detector.threshold:.3f}",
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
        "# Real or generated?\nDrop a photo: every face is boxed and labelled **real** or **fake** "
        "(made by an image generator: a GAN, a diffusion or text-to-image model) with the model's "
        "confidence. A first opinion, not proof."
    )
    with gr.Row():
        with gr.Column():
            photo = UploadedImage(label="Photo", type="filepath", sources=["upload", "clipboard"], height=420)
            with gr.Accordion("Advanced", open=False):
                threshold = gr.Slider(
                    0.0,
                    1.0,
                    value=detector.threshold,
                    step=0.01,
                    label="Decision threshold",
                    info="A face is called fake when P(fake) reaches this; the default is the model's own.",
                )
            button = gr.Button("Check faces", variant="primary")
        with gr.Column():
            annotated = gr.AnnotatedImage(label="Faces", height=420)
            verdict = gr.Textbox(label="Verdict", interactive=False)
    table = gr.Dataframe(headers=TABLE_HEADERS, label="Faces found", interactive=False)
    with gr.Accordion("Results as JSON", open=False):
        raw = gr.JSON(label="results")
    with gr.Accordion("About the model", open=False):
        gr.Markdown(model_panel())
    outputs = [annotated, table, verdict, raw]
    button.click(predict, inputs=[photo, threshold], outputs=outputs, api_name="predict")
    photo.upload(
        predict,
        inputs=[photo, threshold],
        outputs=outputs,
        api_name="predict_on_upload",
        api_visibility="private",
    )
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

demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)

if __name__ == "__main__":
    demo.launch(max_file_size=MAX_FILE_SIZE, show_error=True)
