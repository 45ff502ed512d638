"""A loaded model for many generations: `lipgen.load_model()` (like whisper's), the base of `lipgen generate`,
`lipgen batch`, `lipgen stream` and `lipgen demo`.

    import lipgen
    model = lipgen.load_model()                 # the shipped motion model; load_model("davs"), checkpoint=...
    model.generate("a.wav", "face.jpg", "a.mp4")
    model.generate("b.wav", "face.jpg", "b.mp4")  # the model is not loaded again, the face not tracked again

Each face source (a photo or video, with its face choice, frame rate, loop and padding) is tracked once and
kept (the most recent FACE_CACHE of them), so a batch of speeches onto one face tracks it once.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from . import face as geometry
from . import media
from .generate import FaceSource, _write, motion_frames
from . import inference
from .inference import driven_crops, model_crops, video_mouths
from .models.base import DRIVEN, can

log = logging.getLogger(__name__)

FACE_CACHE = 16  # prepared face sources kept by a Generator (landmarks and matrices: ~1 MB per minute of video)


class Generator:
    """A generation model, loaded once. model: a shipped model's name (default "motion") or None;
    checkpoint: a trained model file instead. batch_size: windows per forward pass (glance, davs);
    expressiveness: the motion model's default mouth scale (see lipgen.generate.generate)."""

    def __init__(self, model: str | None = None, checkpoint: str | os.PathLike | None = None, batch_size: int = 8,
                 expressiveness: float | None = None):
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        self.system = inference.load_model(model, checkpoint)  # the model itself (the network)
        self.model = model or type(self.system).__name__.lower()
        self.batch_size, self.expressiveness = batch_size, expressiveness
        self._faces: OrderedDict[tuple, FaceSource] = OrderedDict()

    def face(self, face: str | os.PathLike, face_index: int | None = None, face_box=None, fps=None,
             loop: str = "pingpong", pad: float = 0.0, max_seconds: float = media.MAX_SECONDS) -> FaceSource:
        """The prepared face source (tracked once per file, options and modification time, then reused)."""
        path = Path(face)
        stat = path.stat() if path.is_file() else None
        key = (str(path.resolve()), stat and stat.st_mtime_ns, stat and stat.st_size, face_index,
               None if face_box is None else tuple(float(v) for v in face_box), fps, loop, pad, max_seconds)
        if key in self._faces:
            self._faces.move_to_end(key)
            return self._faces[key]
        log.info("tracking the face in %s", path)
        source = FaceSource(path, face_index, max_seconds, fps=fps, loop=loop, face_box=face_box, pad=pad)
        self._faces[key] = source
        while len(self._faces) > FACE_CACHE:
            self._faces.popitem(last=False)
        return source

    def generate(self, audio, face: str | os.PathLike, out: str | os.PathLike = "out.mp4",
                 face_index: int | None = None, face_box=None, drive_video: str | os.PathLike | None = None,
                 sample_rate: int = media.SAMPLE_RATE, max_seconds: float = media.MAX_SECONDS, progress: bool = True,
                 expressiveness: float | None = None, fps=None, loop: str = "pingpong", pad: float = 0.0) -> Path:
        """Make `out`: the face in `face` saying `audio`; the arguments as lipgen.generate.generate's."""
        media.check_output(out, {"--audio": audio, "--face": face, "--drive-video": drive_video})
        system = self.system
        # the motion path holds its speech as float16, each piece made float32 as it is used: half the memory
        samples = speech(audio, drive_video, sample_rate, max_seconds,
                         np.float16 if system.crop == "motion" and drive_video is None else np.float32)
        source = self.face(face, face_index, face_box, fps, loop, pad, max_seconds)
        n_frames = -(-samples.size * source.fps.numerator // (media.SAMPLE_RATE * source.fps.denominator))  # ceil
        if drive_video is not None:
            if not can(system, DRIVEN):
                raise ValueError(f"the {type(system).__name__} model generates from audio only; --drive-video needs "
                                 "--model davs")
            mouths = video_mouths(drive_video, max_seconds)
            kind, crops = "face", driven_crops(system, mouths, source.identity_face, self.batch_size)
            n_frames = -(-len(mouths) * source.fps.numerator // (media.VIDEO_FPS * source.fps.denominator))
        elif system.crop == "motion":  # any-face path: predicted motion warps the source itself
            source.check_length(n_frames)
            gain = self.expressiveness if expressiveness is None else expressiveness
            frames = motion_frames(system, samples, n_frames, source, gain)
            return _write(out, frames, samples, n_frames, progress, source.fps)
        else:
            n_model = -(-samples.size // media.SAMPLES_PER_FRAME)  # ceil: the last partial frame is kept
            kind, crops = model_crops(system, media.log_mel(samples, n_model), source.identity_mouth,
                                      source.identity_face, self.batch_size)
        source.check_length(n_frames)
        crops = held_at(crops, n_frames, source.fps) if source.fps != media.VIDEO_FPS else crops
        frames = (frame if matrix is None else geometry.paste_back(frame, crop, matrix)  # no face: untouched
                  for crop, (frame, matrix) in zip(crops, source.frames(kind, n_frames)))
        return _write(out, frames, samples, n_frames, progress, source.fps)

    __call__ = generate


def load_model(model: str | None = None, checkpoint: str | os.PathLike | None = None, **options) -> Generator:
    """A Generator: the shipped model by name (default "motion"), or a checkpoint file. options: Generator's."""
    return Generator(model, checkpoint, **options)


def speech(audio, drive_video=None, sample_rate: int = media.SAMPLE_RATE,
           max_seconds: float = media.MAX_SECONDS, dtype=np.float32) -> np.ndarray:
    """The speech to say as (N,) float32 at SAMPLE_RATE: `audio` (a file or an array at sample_rate), or else
    the driving video's sound. dtype=np.float16: a file is read into half the memory (media.read_audio)."""
    if isinstance(audio, np.ndarray):
        media.check_sample_rate(sample_rate)
        samples = audio.astype(np.float32).reshape(-1)
        if samples.size > max_seconds * media.SAMPLE_RATE:
            raise media.MediaError(f"audio longer than {max_seconds:.0f} s. Cut it, or raise max_seconds.")
        return samples
    if audio is not None:
        return media.read_audio(audio, max_seconds=max_seconds, dtype=dtype)
    if drive_video is not None:
        return media.read_audio(drive_video, max_seconds=max_seconds, dtype=dtype)
    raise ValueError("give speech audio, or a driving video (--drive-video)")


def held_at(frames, n_frames: int, fps):
    """Frames made at media.VIDEO_FPS, shown at `fps`: output frame k is the latest input frame at or before
    its time (dropped or repeated, as media.iter_video does). Streamed: n_frames of them."""
    ratio = media.VIDEO_FPS / float(fps)
    made, current = -1, None
    it = iter(frames)
    for k in range(n_frames):
        want = int(np.floor(k * ratio + 1e-9))
        while made < want:
            nxt = next(it, None)
            if nxt is None:
                break
            current, made = nxt, made + 1
        yield current
