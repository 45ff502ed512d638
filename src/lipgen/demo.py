"""A local web page for lipgen: `lipgen demo` (pip install -e ".[demo]": Gradio).

Upload or record speech, upload a photo or a video of a face (or pick a bundled sample), choose the model and
the face (a preview of the first frame shows every detected face numbered), generate with a progress bar,
then watch or download the mp4. It listens on 127.0.0.1 only unless told otherwise, sends no analytics, runs
one job at a time (the others wait in a queue of QUEUE_SIZE) and refuses uploads over max_upload_mb or inputs
over max_seconds with a message saying so.

The page is also an HTTP API (Gradio's), e.g. from Python:

    from gradio_client import Client, handle_file
    Client("http://127.0.0.1:7860/").predict(handle_file("speech.wav"), handle_file("photo.jpg"), "motion", 0,
                                             api_name="/generate")   # -> the mp4's local path
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no usage reports

import functools  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from . import face as geometry  # noqa: E402
from . import media  # noqa: E402
from .generate import ASSETS, SAMPLE_AUDIO, SAMPLE_FACE  # noqa: E402
from .models import DEFAULT_MODEL, model_classes, shipped_models  # noqa: E402

HOST = "127.0.0.1"
PORT = 7860
MAX_SECONDS = 60.0  # longest speech or face video the page takes
MAX_UPLOAD_MB = 50  # largest upload
QUEUE_SIZE = 16  # jobs waiting beyond the one running
SAMPLE_VIDEO = ASSETS / "clips" / "s1_bbaf2n.mp4"
GENERATES = ("motion", "mouth", "face")  # the crops of models that make faces (not the sync experts)
MODELS = [DEFAULT_MODEL, *(m for m in shipped_models() if m != DEFAULT_MODEL and model_classes(m)[0].crop in GENERATES)]


@functools.cache
def _generator(model: str):
    """One loaded Generator per model, kept for the page's lifetime."""
    from .generator import Generator

    return Generator(model)


def _path(value) -> str | None:
    """A Gradio file value (a path, or an object with .name / a dict with "path") as a path string."""
    if value is None:
        return None
    if isinstance(value, dict):
        return value.get("path") or value.get("name")
    return getattr(value, "name", value)


def first_frame(face: str) -> np.ndarray:
    """The first frame of a photo or video: (H, W, 3) uint8."""
    if Path(face).suffix.lower() in media.IMAGE_SUFFIXES:
        return media.read_image(face)
    return next(iter(media.iter_video(face)))


def faces_preview(face: str) -> tuple[np.ndarray, int]:
    """The first frame with every detected face boxed and numbered as --face-index counts them (largest first),
    and how many there are."""
    import cv2

    frame = first_frame(face).copy()
    boxes = geometry.plausible_faces(geometry._gray(frame), geometry.detect_faces(frame))
    thick = max(2, round(max(frame.shape[:2]) / 300))
    for i, (x0, y0, x1, y1) in enumerate(np.round(boxes).astype(int)):
        cv2.rectangle(frame, (x0, y0), (x1, y1), (255, 220, 0), thick)
        (w, h), _ = cv2.getTextSize(str(i), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * thick, thick)
        top = max(y0 - h - 3 * thick, 0)  # the number on a filled tab above the box
        cv2.rectangle(frame, (x0, top), (x0 + w + 2 * thick, top + h + 3 * thick), (255, 220, 0), -1)
        cv2.putText(frame, str(i), (x0 + thick, top + h + thick), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * thick,
                    (0, 0, 0), thick, cv2.LINE_AA)
    return frame, len(boxes)


def check_inputs(speech: str | None, face: str | None, max_seconds: float = MAX_SECONDS) -> None:
    """Refuse missing inputs and inputs over max_seconds, with a message that says what to do."""
    from .errors import LipgenError

    if not speech:
        raise LipgenError("No speech: upload or record some, or pick a sample.")
    if not face:
        raise LipgenError("No face: upload a photo or a video, or pick a sample.")
    seconds = media.read_audio(speech).size / media.SAMPLE_RATE
    if seconds > max_seconds:
        raise LipgenError(f"The speech is {seconds:.0f} s long; this page takes up to {max_seconds:.0f} s. "
                          "Cut it, or run `lipgen generate` for longer speech.")
    if Path(face).suffix.lower() not in media.IMAGE_SUFFIXES:
        length = sum(1 for _ in media.iter_video(face, max_seconds=max_seconds)) / media.VIDEO_FPS
        if length > max_seconds:
            raise LipgenError(f"The face video is {length:.0f} s long; this page takes up to {max_seconds:.0f} s.")


def build(max_seconds: float = MAX_SECONDS):
    """The page (a gradio.Blocks)."""
    import gradio as gr

    from .cli import _one_line
    from .errors import LipgenError

    def fail(e: BaseException):
        return gr.Error(_one_line(e))

    def preview(face, face_index):
        face = _path(face)
        if not face:
            return None, gr.update(), "Upload a photo or video to see its faces."
        try:
            image, n = faces_preview(face)
        except (LipgenError, OSError, ValueError) as e:
            raise fail(e) from e
        note = {0: "No face found: use a frontal, well-lit photo.", 1: "One face found."}.get(
            n, f"{n} faces found: pick one by its number.")
        return image, gr.update(value=min(int(face_index or 0), max(n - 1, 0)), maximum=max(n - 1, 0)), note

    def run(speech, face, model, face_index, progress=gr.Progress(track_tqdm=True)):
        speech, face = _path(speech), _path(face)
        try:
            check_inputs(speech, face, max_seconds)
            out = Path(tempfile.mkdtemp(prefix="lipgen-demo-")) / f"{Path(face).stem}_{model}.mp4"
            return str(_generator(model).generate(speech, face, out, face_index=int(face_index or 0),
                                                  max_seconds=max_seconds))
        except (LipgenError, OSError, ValueError) as e:
            raise fail(e) from e

    with gr.Blocks(title="lipgen", analytics_enabled=False) as page:
        gr.Markdown("# lipgen\nSpeech and a face in, the face saying it out. Runs on this machine; "
                    f"one job at a time, inputs up to {max_seconds:.0f} s.")
        with gr.Row():
            with gr.Column():
                speech = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Speech",
                                  elem_id="speech")
                face = gr.File(label="Face: a photo or a video", file_types=["image", "video"], elem_id="face")
                with gr.Row():
                    model = gr.Dropdown(MODELS, value=DEFAULT_MODEL, label="Model", elem_id="model")
                    face_index = gr.Number(value=0, precision=0, minimum=0, label="Face number", elem_id="face-index")
                go = gr.Button("Generate", variant="primary", elem_id="generate")
                gr.Examples([[str(SAMPLE_AUDIO), str(SAMPLE_FACE)], [str(SAMPLE_AUDIO), str(SAMPLE_VIDEO)]],
                            inputs=[speech, face], label="Samples")
            with gr.Column():
                found = gr.Image(label="Faces in the first frame", interactive=False, elem_id="preview")
                note = gr.Markdown()
                video = gr.Video(label="Result", elem_id="result")
        face.change(preview, [face, face_index], [found, face_index, note], api_name="faces")
        go.click(run, [speech, face, model, face_index], video, api_name="generate")
    return page


def demo(host: str = HOST, port: int = PORT, max_seconds: float = MAX_SECONDS, max_upload_mb: int = MAX_UPLOAD_MB,
         block: bool = True):
    """Serve the page on http://host:port/ (one job at a time, QUEUE_SIZE waiting). block=False: return the
    running page (close it with .close())."""
    import gradio as gr

    page = build(max_seconds)
    page.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"])  # no web fonts fetched
    page.launch(server_name=host, server_port=port, share=False, max_file_size=f"{max_upload_mb}mb", quiet=True,
                ssr_mode=False, prevent_thread_lock=not block, theme=theme, allowed_paths=[str(ASSETS)],
                footer_links=["api"])
    return page
