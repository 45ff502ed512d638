"""Speech + a face (photo or video) -> an mp4 of that face saying it.

    lipgen generate --audio speech.wav --face photo.png -o out.mp4

The audio's log-mel is cut into the model's windows (16 frames for Glance, every 12); the model makes each
window's mouth crops, overlapping frames are cross-faded, and every crop is pasted back into its
full frame with a feathered seam. Frames stream from the source to the encoder, so memory stays
bounded however long the audio is. A still photo becomes a video; a video source keeps its own
frames (looped if shorter than the audio) and gets new lips.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import face as geometry
from . import media
from .inference import (driven_crops, inference_autocast, load_model, model_crops, predicted_motion,  # noqa: F401
                        video_mouths, windowed)
from . import ASSETS
from .models import DEFAULT_MODEL  # noqa: F401
from .models.base import DRIVEN, can

SAMPLE_AUDIO = ASSETS / "jfk.flac"
SAMPLE_FACE = ASSETS / "astronaut.png"
load_generator = load_model  # the name scripts and older code use


class FaceSource:
    """Frames of the target face, with their mouth-crop matrices, streamed for output frame 0, 1, 2, ...

    A video's frames without the face (a cutaway, an opening before the face appears) have NaN landmarks
    and matrices, and frames() gives None as their matrix: they are passed through untouched.
    """

    def __init__(self, path: str | os.PathLike, face_index: int | None = None, max_seconds: float = media.MAX_SECONDS):
        self.path, self.max_seconds = Path(path), max_seconds
        self.still = self.path.suffix.lower() in media.IMAGE_SUFFIXES
        if self.still:
            self.image = media.read_image(path)
            frames = self.image[None]
        else:  # first pass: landmarks only (a frame at a time), so long videos fit in memory
            frames = media.iter_video(path, max_seconds=max_seconds)
        landmarks, _ = geometry.track_landmarks(frames, face_index, where=str(path), allow_missing=not self.still)
        self.landmarks = landmarks  # (T, 68, 2) frame pixels, NaN where a frame has no face
        self.face_matrix = np.full((len(landmarks), 2, 3), np.nan)  # (T, 2, 3) each, NaN where no face
        self.mouth_matrix = self.face_matrix.copy()
        seen = ~np.isnan(landmarks[:, 0, 0])
        for run in np.split(np.arange(len(seen)), np.flatnonzero(np.diff(seen)) + 1):  # runs of frames with a face
            if seen[run[0]]:  # smoothed within a run, never across a cut
                self.face_matrix[run], self.mouth_matrix[run] = geometry.crop_matrices(landmarks[run])
        t = int(np.argmax(seen))  # the first frame with the face gives the identity crops
        video = None if self.still else media.iter_video(path, max_seconds=max_seconds)
        first = self.image if self.still else next(itertools.islice(video, t, None))
        at = slice(t, t + 1)
        self.identity_mouth = geometry.crop(first[None], self.mouth_matrix[at], geometry.MOUTH_SIZE)[0]  # (64, 64, 3)
        self.identity_face = geometry.crop(first[None], self.face_matrix[at], geometry.FACE_SIZE)[0]  # (128, 128, 3)

    def frames(self, crop: str = "mouth"):
        """Yield (frame, frame -> crop matrix, or None where the frame has no face) forever: the photo, or the
        video looped from its start."""
        matrices = self.mouth_matrix if crop == "mouth" else self.face_matrix
        matrices = [None if np.isnan(m).any() else m for m in matrices]
        if self.still:
            while True:
                yield self.image, matrices[0]
        while True:
            for frame, matrix in zip(media.iter_video(self.path, max_seconds=self.max_seconds), matrices):
                yield frame, matrix


def generate(audio: str | os.PathLike | np.ndarray | None, face: str | os.PathLike, out: str | os.PathLike = "out.mp4",
             model: str | None = None, checkpoint: str | os.PathLike | None = None, face_index: int | None = None,
             drive_video: str | os.PathLike | None = None, sample_rate: int = media.SAMPLE_RATE,
             max_seconds: float = media.MAX_SECONDS, progress: bool = True,
             expressiveness: float | None = None) -> Path:
    """Make `out` (mp4, 25 fps, audio muxed): the face in `face` saying `audio`.

    audio: a file ffmpeg reads, or a (N,) float array at `sample_rate` (must be SAMPLE_RATE).
    face: a photo (png, jpg, ...) or a video; face_index picks one of several faces (largest first).
    model: a shipped model's name (default DEFAULT_MODEL, "motion"); checkpoint: a trained model file instead.
    drive_video: instead of audio, drive the face with the mouth movements of the person in this video
    (models that read lips: DAVS); its own sound is muxed unless `audio` is given too.
    expressiveness: how far the motion model moves the mouth, times its prediction (default
    lipgen.models.motion.EXPRESSIVENESS); other models ignore it.
    Raises MediaError (unreadable/empty/too-long audio or video), FaceNotFoundError, MultipleFacesError.
    """
    media.check_output(out, {"--audio": audio, "--face": face, "--drive-video": drive_video})
    if isinstance(audio, np.ndarray):
        media.check_sample_rate(sample_rate)
        samples = audio.astype(np.float32).reshape(-1)
        if samples.size > max_seconds * media.SAMPLE_RATE:
            raise media.MediaError(f"audio longer than {max_seconds:.0f} s. Cut it, or raise max_seconds.")
    elif audio is not None:
        samples = media.read_audio(audio, max_seconds=max_seconds)
    elif drive_video is not None:
        samples = media.read_audio(drive_video, max_seconds=max_seconds)
    else:
        raise ValueError("give speech audio, or a driving video (--drive-video)")
    system = load_model(model, checkpoint)
    source = FaceSource(face, face_index, max_seconds)
    if drive_video is not None:
        if not can(system, DRIVEN):
            raise ValueError(f"the {type(system).__name__} model generates from audio only; --drive-video needs "
                             "--model davs")
        mouths = video_mouths(drive_video, max_seconds)
        n_frames, kind = len(mouths), "face"
        crops = driven_crops(system, mouths, source.identity_face)
    elif system.crop == "motion":  # any-face path: predicted motion warps the source itself
        n_frames = -(-samples.size // media.SAMPLES_PER_FRAME)
        frames = motion_frames(system, samples, n_frames, source, expressiveness)
        return _write(out, frames, samples, n_frames, progress)
    else:
        n_frames = -(-samples.size // media.SAMPLES_PER_FRAME)  # ceil: the last partial frame is kept
        kind, crops = model_crops(system, media.log_mel(samples, n_frames), source.identity_mouth, source.identity_face)
    frames = (frame if matrix is None else geometry.paste_back(frame, crop, matrix)  # no face: untouched
              for crop, (frame, matrix) in zip(crops, source.frames(kind)))
    return _write(out, frames, samples, n_frames, progress)


def _write(out, frames, samples: np.ndarray, n_frames: int, progress: bool) -> Path:
    bar = tqdm(total=n_frames, desc="generate", unit="frame", disable=not progress)
    with media.Mp4Writer(out, audio=samples) as writer:  # the writer fits the sound to the frames written
        for frame in frames:
            writer.write(frame)
            bar.update()
    bar.close()
    return Path(out)


def motion_frames(system, samples: np.ndarray, n_frames: int, source: FaceSource, expressiveness: float | None = None):
    """Frames of the source face moved by the motion model's prediction for `samples` (lipgen.render)."""
    from . import render

    motion = predicted_motion(system, samples, n_frames, expressiveness)
    tracked = ((frame, source.landmarks[t % len(source.landmarks)], matrix)  # FaceSource loops a video
               for t, (frame, matrix) in zip(range(n_frames), source.frames("face")))
    return render.animate(tracked, render.rest_of(source.landmarks, source.face_matrix), motion)
