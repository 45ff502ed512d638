"""A local web page for lipgen: `lipgen demo` (the demo extra, Gradio: pip install "lipgen[demo]").

Upload or record speech, upload a photo or a video of a face (or pick a bundled sample), choose the model and
the face (a preview of the first frame shows every detected face numbered), generate with a progress bar,
then watch or download the mp4. Or run it live (the motion model): the speech is played at real-time pace
into lipgen stream's machinery and the page shows the frames as they are made (up to LIVE_FPS a second), then
offers the finished mp4. It listens on 127.0.0.1 only unless told otherwise, sends no analytics, runs
one job at a time (the others wait in a queue of QUEUE_SIZE) and refuses uploads over max_upload_mb or inputs
over max_seconds with a message saying so.

The page is also an HTTP API (Gradio's), e.g. from Python:

    from gradio_client import Client, handle_file
    Client("http://127.0.0.1:7860/").predict(handle_file("speech.wav"), handle_file("photo.jpg"), "motion", 0,
                                             api_name="/generate")   # -> the mp4's local path

(api_name="/live" takes the same four inputs and streams (frame, status, mp4) updates.)
"""

from __future__ import annotations

import os
import socket

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no usage reports

import functools  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from . import face as geometry  # noqa: E402
from . import media  # noqa: E402
from .errors import check_number, one_line  # noqa: E402
from .generate import ASSETS, SAMPLE_AUDIO, SAMPLE_FACE  # noqa: E402
from .models import DEFAULT_MODEL, model_classes, shipped_models  # noqa: E402

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
PORT = 7860
MAX_SECONDS = 60.0  # longest speech or face video the page takes
MAX_UPLOAD_MB = 50  # largest upload
QUEUE_SIZE = 16  # jobs waiting beyond the one running
SAMPLE_VIDEO = ASSETS / "clips" / "s1_bbaf2n.mp4"
GENERATES = ("motion", "mouth", "face")  # the crops of models that make faces (not the sync experts)
LIVE_FPS = 12.5  # most frames a second the live view shows (the latest made; the mp4 has every frame)
LIVE_SIDE = 640  # the live view's frames are scaled down to at most this many pixels on their long side
MODELS = [DEFAULT_MODEL, *(m for m in shipped_models() if m != DEFAULT_MODEL and model_classes(m)[0].crop in GENERATES)]


@functools.cache
def _generator(model: str):
    """One loaded Generator per model, kept for the page's lifetime."""
    from .generate import Generator

    return Generator(model)


def _path(value) -> str | None:
    """A Gradio file value (a path, or an object with .name / a dict with "path") as a path string."""
    if value is None:
        return None
    if isinstance(value, dict):
        return value.get("path") or value.get("name")
    return getattr(value, "name", value)


def face_number(value) -> int:
    """The page's face number (a Gradio Number, or whatever an API caller sends) as a face index; ValueError saying
    what to give for anything but a whole number from 0."""
    if value is None or value == "":
        return 0
    try:
        n = float(value)
    except (TypeError, ValueError):
        n = float("nan")
    if not (math.isfinite(n) and n >= 0 and n == int(n)):
        raise ValueError(f"face number {value!r}: give a whole number, 0 for the first face found")
    return int(n)


def first_frame(face: str) -> np.ndarray:
    """The first frame of a photo or video: (H, W, 3) uint8."""
    if media.is_still(face):
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
    try:
        media.read_audio(speech, max_seconds=max_seconds)
    except media.MediaError as e:
        if "longer than" not in str(e):
            raise
        raise LipgenError(f"The speech is longer than this page takes ({max_seconds:g} s). Cut it, or run "
                          "`lipgen generate` for longer speech.") from None
    if not media.is_still(face):
        length = sum(1 for _ in media.iter_video(face, max_seconds=max_seconds)) / media.VIDEO_FPS
        if length > max_seconds:
            raise LipgenError(f"The face video is {length:.1f} s long; this page takes up to {max_seconds:g} s.")


def check_live(model: str) -> None:
    """Refuse a model that cannot stream, before it is loaded."""
    from .errors import LipgenError

    if model_classes(model)[0].crop != "motion":
        raise LipgenError(f"Live needs the motion model, not {model}: pick motion, or press Generate.")


WORKING = threading.Lock()  # held while a job computes: one at a time, even after Gradio lets a cancelled one go


class Job:
    """Generator.generate in a thread of its own, watched:

        job = Job(generator, "speech.wav", "photo.jpg", "out.mp4", face_index=0)
        for done, total in job.steps():   # frames written, about every `every` seconds
            show(done, total)
        job.out                           # the mp4

    Closing steps() early (the job cancelled on the page) stops the work at its next frame, and nothing is
    written. The work waits for WORKING, so a cancelled job that has not stopped yet delays the next one."""

    def __init__(self, generator, speech, face, out, face_index: int = 0, max_seconds: float = MAX_SECONDS,
                 every: float = 0.5):
        self.generator, self.speech, self.face, self.out = generator, speech, face, Path(out)
        self.face_index, self.max_seconds, self.every = face_index, max_seconds, every

    def steps(self):
        stop, state, ended = threading.Event(), {"done": 0, "total": 0}, []

        def step(done, total):
            if stop.is_set():
                raise InterruptedError("cancelled")
            state.update(done=done, total=total)

        def work():
            with WORKING:
                try:
                    if stop.is_set():
                        raise InterruptedError("cancelled before it started")
                    ended.append(self.generator.generate(self.speech, self.face, self.out, face_index=self.face_index,
                                                         max_seconds=self.max_seconds, progress=step))
                except BaseException as e:  # noqa: BLE001 - raised again by steps()
                    ended.append(e)

        worker = threading.Thread(target=work, name="lipgen-demo-job", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(self.every)
                yield state["done"], state["total"]
        finally:
            stop.set()  # a no-op once the work has ended
        if isinstance(ended[0], BaseException):
            raise ended[0]


class Outputs:
    """The page's results: a folder of its own for each job, under one folder for the server's life (removed when
    it stops). Gradio copies a result into its cache to serve it, so a new job removes the folders of jobs before."""

    def __init__(self):
        import atexit

        self.root = Path(tempfile.mkdtemp(prefix="lipgen-demo-"))
        atexit.register(shutil.rmtree, self.root, True)

    def new(self) -> Path:
        for old in self.root.iterdir():
            shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=self.root))


class LiveRun:
    """lipgen stream's run (lipgen.stream.stream) of a speech file played at real-time pace onto a face, watched.

        run = LiveRun(generator, "speech.wav", "photo.jpg", "live.mp4")
        for t, frame in run.frames():   # frame t, as soon as it is made; at most fps a second (the latest one)
            show(frame)
        run.result                      # stream's result, and "shown" (frame numbers), "shown_latency_s"
                                        # (from a frame's last audio sample arriving to it being handed out
                                        # here), "first_shown_s" (from the start of frames() to the first one)

    speech: a file or (N,) float32 at SAMPLE_RATE; frames() runs once. Frames are scaled down to at most `side`
    pixels on their long side. Closing frames() early (a page closed) stops the speech; the stream then ends
    with what it has."""

    def __init__(self, generator, speech, face, out, face_index: int = 0, max_seconds: float = MAX_SECONDS,
                 fps: float = LIVE_FPS, side: int = LIVE_SIDE, realtime: bool = True):
        from .generate import speech as samples
        from .stream import file_chunks

        self.audio = samples(speech, max_seconds=max_seconds)  # a file, or (N,) float32 at SAMPLE_RATE
        self.audio_s = self.audio.size / media.SAMPLE_RATE
        self.chunks = file_chunks(self.audio, realtime=realtime)
        self.generator, self.face, self.out, self.face_index = generator, face, out, face_index
        self.interval, self.side = 1.0 / fps, side
        self.result: dict | None = None

    def _small(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        scale = self.side / max(frame.shape[:2])
        if scale >= 1:
            return frame.copy()  # the drawing side may reuse its array
        return cv2.resize(frame, (round(frame.shape[1] * scale), round(frame.shape[0] * scale)),
                          interpolation=cv2.INTER_AREA)

    def frames(self):
        from .stream import stream

        start = time.perf_counter()
        stop, ready = threading.Event(), threading.Condition()
        latest: dict = {"t": -1}
        ended: list = []  # stream's result, or its error

        def chunks():
            for piece in self.chunks:
                if stop.is_set():
                    return
                yield piece

        def on_frame(t, frame):
            small = self._small(frame)
            with ready:
                latest.update(t=t, frame=small, left=time.perf_counter())
                ready.notify()

        def work():
            with WORKING:
                try:
                    ended.append(stream(chunks(), self.face, self.out, face_index=self.face_index,
                                        on_frame=on_frame, progress=False, generator=self.generator))
                except BaseException as e:  # noqa: BLE001 - raised again by frames()
                    ended.append(e)
            with ready:
                ready.notify()

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        shown, delays = [], []  # frame numbers handed out; seconds from leaving the stream to handed out
        due, first = start, None
        try:
            while True:
                time.sleep(max(0.0, due - time.perf_counter()))
                with ready:
                    ready.wait_for(lambda: ended or latest["t"] > (shown[-1] if shown else -1))
                    if latest["t"] <= (shown[-1] if shown else -1):
                        break  # the stream ended and its last frame is out
                    t, frame, left = latest["t"], latest["frame"], latest["left"]
                now = time.perf_counter()
                shown.append(t)
                delays.append(now - left)
                if len(shown) == 1:
                    first, due = now - start, now
                # due grows by an interval a frame, so at most fps a second on average (after a wait for a frame,
                # the next may follow at once)
                due = max(due + self.interval, now)
                yield t, frame
        finally:
            stop.set()
            worker.join()
        if isinstance(ended[0], BaseException):
            raise ended[0]
        result = ended[0]
        self.result = {**result, "shown": np.array(shown),
                       "shown_latency_s": result["latency_s"][shown] + np.array(delays), "first_shown_s": first}


def live_summary(r: dict) -> str:
    """The live run's figures in a line."""
    ms = r["shown_latency_s"] * 1000
    ahead = r["lookahead_frames"] * 1000 / media.VIDEO_FPS
    return (f"Done: {r['frames']} frames ({r['audio_s']:.1f} s), {len(r['shown'])} shown live. First frame shown "
            f"{r['first_shown_s']:.2f} s after the start; from a frame's audio to it shown: median "
            f"{np.median(ms):.0f} ms, 95th percentile {np.percentile(ms, 95):.0f} ms (the model's look-ahead is "
            f"{ahead:.0f} ms).")


def build(max_seconds: float = MAX_SECONDS):
    """The page (a gradio.Blocks)."""
    import gradio as gr

    from .errors import LipgenError

    outputs = Outputs()

    def fail(e: BaseException, *uploads):
        """A refused job's message, naming uploads by their own file names (not Gradio's copies' paths), as one
        line in the server's log and on the page."""
        message = one_line(e)
        for path in uploads:
            if path:
                message = message.replace(str(path), Path(path).name)
        log.warning("refused: %s", message)
        return gr.Error(message, print_exception=False)

    def preview(face, face_index):
        face = _path(face)
        if not face:
            return None, gr.update(), "Upload a photo or video to see its faces."
        try:
            image, n = faces_preview(face)
            chosen = face_number(face_index)
        except (LipgenError, OSError, ValueError) as e:
            raise fail(e, face) from e
        note = {0: "No face found: use a frontal, well-lit photo.", 1: "One face found."}.get(
            n, f"{n} faces found: pick one by its number.")
        return image, gr.update(value=min(chosen, max(n - 1, 0)), maximum=max(n - 1, 0)), note

    def run(speech, face, model, face_index, progress=gr.Progress()):
        speech, face = _path(speech), _path(face)
        try:
            check_inputs(speech, face, max_seconds)
            out = outputs.new() / f"{Path(face).stem}_{model}.mp4"
            job = Job(_generator(model), speech, face, out, face_number(face_index), max_seconds)
            for done, total in job.steps():
                if total:
                    progress((done, total), desc="generate", unit="frames")
                yield gr.skip()
            yield str(out)
        except (LipgenError, OSError, ValueError) as e:
            raise fail(e, speech, face) from e

    def live(speech, face, model, face_index):
        speech, face = _path(speech), _path(face)
        try:
            check_inputs(speech, face, max_seconds)
            check_live(model)
            out = outputs.new() / f"{Path(face).stem}_{model}_live.mp4"
            run = LiveRun(_generator(model), speech, face, out, face_number(face_index), max_seconds)
            yield (gr.update(value=None, visible=True),
                   f"Preparing the face; the speech plays from now ({run.audio_s:.1f} s).", None)
            for t, frame in run.frames():
                yield frame, f"Live: {t / media.VIDEO_FPS:.1f} s of {run.audio_s:.1f} s", None
            yield gr.skip(), live_summary(run.result), str(out)
        except (LipgenError, OSError, ValueError) as e:
            raise fail(e, speech, face) from e

    # delete_cache: the live view's frames and the results go into Gradio's cache; a day's are kept
    with gr.Blocks(title="lipgen", analytics_enabled=False, delete_cache=(3600, 86400)) as page:
        gr.Markdown("# lipgen\nSpeech and a face in, the face saying it out. Runs on this machine; "
                    f"one job at a time, inputs up to {max_seconds:g} s.")
        with gr.Row():
            with gr.Column():
                speech = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Speech",
                                  elem_id="speech")
                face = gr.File(label="Face: a photo or a video", file_types=["image", "video"], elem_id="face")
                with gr.Row():
                    model = gr.Dropdown(MODELS, value=DEFAULT_MODEL, label="Model", elem_id="model")
                    face_index = gr.Number(value=0, precision=0, minimum=0, label="Face number", elem_id="face-index")
                with gr.Row():
                    go = gr.Button("Generate", variant="primary", elem_id="generate")
                    go_live = gr.Button("Live (motion, real time)", elem_id="go-live")
                gr.Examples([[str(SAMPLE_AUDIO), str(SAMPLE_FACE)], [str(SAMPLE_AUDIO), str(SAMPLE_VIDEO)]],
                            inputs=[speech, face], label="Samples")
            with gr.Column():
                found = gr.Image(label="Faces in the first frame", interactive=False, elem_id="preview")
                note = gr.Markdown()
                # the live view appears when Live is pressed, and goes when Generate is
                shown = gr.Image(label="Live: frames as they are made", interactive=False, format="jpeg",
                                 elem_id="live", visible=False)
                live_note = gr.Markdown(elem_id="live-status")
                video = gr.Video(label="Result", elem_id="result")
        face.change(preview, [face, face_index], [found, face_index, note], api_name="faces")
        # one job at a time across both buttons: they share a concurrency group (limit 1, see demo())
        go.click(run, [speech, face, model, face_index], video, api_name="generate", concurrency_id="job")
        go.click(lambda: (gr.update(visible=False), ""), None, [shown, live_note], queue=False,
                 api_visibility="private")
        go_live.click(live, [speech, face, model, face_index], [shown, live_note, video], api_name="live",
                      concurrency_id="job")
    return page


def check_settings(host: str, port: int, max_seconds: float, max_upload_mb: int) -> None:
    """Refuse (ValueError, one line) limits below 1, a port out of range, a host that does not resolve, or a port
    in use."""
    check_number("max_seconds", max_seconds, 1)
    check_number("max_upload_mb", max_upload_mb, 1)
    check_number("port", port, 1, 65535, integer=True)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise ValueError(f"--host {host}: not an address of this machine ({e.strerror}); give 127.0.0.1 (this "
                         "machine only) or 0.0.0.0 (every network)") from e
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: a closed page's port is free
        try:
            probe.bind(address)
        except OSError as e:
            raise ValueError(f"{host}:{port}: cannot serve there ({e.strerror}); give another --port") from e


def demo(host: str = HOST, port: int = PORT, max_seconds: float = MAX_SECONDS, max_upload_mb: int = MAX_UPLOAD_MB,
         block: bool = True):
    """Serve the page on http://host:port/ (one job at a time, QUEUE_SIZE waiting). block=False: return the
    running page (close it with .close())."""
    import gradio as gr

    check_settings(host, port, max_seconds, max_upload_mb)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: anyone who can reach this machine on port %d can use the page (there is no "
                    "login); --host 127.0.0.1 keeps it to this machine", host, port)
    page = build(max_seconds)
    page.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"])  # no web fonts fetched
    page.launch(server_name=host, server_port=port, share=False, max_file_size=f"{max_upload_mb}mb", quiet=True,
                ssr_mode=False, prevent_thread_lock=not block, theme=theme, allowed_paths=[str(ASSETS)],
                footer_links=["api"])
    return page
