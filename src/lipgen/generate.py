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
import torch
from tqdm import tqdm

from . import face as geometry
from . import media
from .checkpoint import load_system
from .models import model_classes

WINDOW_OVERLAP = 4  # of every 4 frames of a window, 1 overlaps the next window and is cross-faded


def window_hop(window: int) -> int:
    """Frames between window starts: a 16-frame window hops 12, overlapping the next by 4."""
    return window - window // WINDOW_OVERLAP


WINDOW_HOP = window_hop(16)  # Glance's seams fall every 12 frames
ASSETS = Path(__file__).parent / "assets"
DEFAULT_CHECKPOINTS = {name: ASSETS / f"{name}.safetensors" for name in ("glance", "crgan", "davs", "motion")}
DEFAULT_MODEL = "motion"  # the any-face path: see README, "Any face"
SAMPLE_AUDIO = ASSETS / "jfk.flac"
SAMPLE_FACE = ASSETS / "astronaut.png"


def inference_autocast(device: str = "cpu"):
    """bfloat16 autocast where the processor computes it natively (AVX512-BF16/AMX: ~2x faster), else a no-op.
    The shipped models are trained under bf16 autocast, so their output does not change visibly."""
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return torch.autocast(device, dtype=torch.bfloat16, enabled=native)


def load_generator(model: str | None = None, checkpoint: str | os.PathLike | None = None):
    """The model for generation: a shipped one by name (default DEFAULT_MODEL), or a checkpoint from
    `lipgen train` (its model is read from the file unless `model` names one to check it against)."""
    if checkpoint is not None and model is None:
        system, _ = load_system(checkpoint, strict=False)
        return system
    model = model or DEFAULT_MODEL
    if checkpoint is None:
        model_classes(model)  # an unknown name is refused with the list of known ones
        if model not in DEFAULT_CHECKPOINTS or not DEFAULT_CHECKPOINTS[model].is_file():
            raise FileNotFoundError(f"no shipped {model} model: train one with `lipgen train --model {model}` "
                                    "and pass --checkpoint PATH")
        checkpoint = DEFAULT_CHECKPOINTS[model]
    system, header = load_system(checkpoint, strict=False)
    if header["model"] != model:
        raise ValueError(f"{checkpoint} holds a {header['model']} model, not {model}: pass --model {header['model']}")
    return system


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


def windowed(system, inputs: np.ndarray, rows_per_frame: int, identity: np.ndarray, make=None,
             batch_windows: int = 8):
    """Yield generated crops frame by frame: (S, S, 3) uint8, n = len(inputs) // rows_per_frame frames.

    inputs: the driving signal of the whole clip, rows_per_frame rows per video frame: log-mel (4N, 80)
    or mouth crops (N, 64, 64, 3) uint8. identity: (S, S, 3) uint8 crop. make(window batch, identity
    batch) -> (W, 3, T, S, S); default system.generate. Windows of n_frames start every
    window_hop(n_frames) frames; in the overlap, frames fade linearly from the earlier window to the
    later one.
    """
    make = make or system.generate
    window = system.config.n_frames
    hop = window_hop(window)
    overlap = window - hop
    n = len(inputs) // rows_per_frame
    starts = list(range(0, max(n - overlap, 1), hop))
    pad = (starts[-1] + window) * rows_per_frame - len(inputs)
    if pad > 0:  # the last window runs past the end: repeat the final row (silence / a still mouth)
        inputs = np.concatenate([inputs, np.repeat(inputs[-1:], pad, axis=0)])
    ident = _to_tensor(identity[None])  # (1, 3, S, S)
    fade = (np.arange(1, overlap + 1) / (overlap + 1))[:, None, None, None]  # weight of the later window
    tail = None
    emitted = 0
    for b in range(0, len(starts), batch_windows):
        group = starts[b:b + batch_windows]
        chunks = np.stack([inputs[s * rows_per_frame:(s + window) * rows_per_frame] for s in group])
        batch = torch.from_numpy(chunks)[:, None] if chunks.dtype != np.uint8 else _to_tensor(chunks).transpose(1, 2)
        with torch.inference_mode(), inference_autocast():
            video = make(batch, ident.expand(len(group), -1, -1, -1))  # (W, 3, T, S, S)
        crops = ((video.float().clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 4, 1).numpy()  # (W, T, S, S, 3)
        for clip in crops:
            if tail is not None:
                clip[:overlap] = (1 - fade) * tail + fade * clip[:overlap]
            for frame in clip[:hop]:
                if emitted < n:
                    yield frame.round().astype(np.uint8)
                    emitted += 1
            tail = clip[hop:]
    for frame in tail:
        if emitted < n:
            yield frame.round().astype(np.uint8)
            emitted += 1


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).float().div(127.5).sub(1).movedim(-1, -3)


def model_crops(system, mel: np.ndarray, identity_mouth: np.ndarray, identity_face: np.ndarray):
    """The crops a model makes for a whole audio, streamed: (crop kind "mouth" or "face", iterator of
    (S, S, 3) uint8 crops, one per video frame). mel: (4N, 80); identities: (64, 64, 3) and (128, 128, 3)."""
    output = getattr(system, "output", "mouth")
    identity = identity_face if output == "face" else identity_mouth
    if hasattr(system, "stream"):  # recurrent models make frame after frame with a constant-size state
        return output, system.stream(mel, identity)
    return output, windowed(system, mel, media.MELS_PER_FRAME, identity)


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
    system = load_generator(model, checkpoint)
    source = FaceSource(face, face_index, max_seconds)
    if drive_video is not None:
        if not hasattr(system, "generate_driven"):
            raise ValueError(f"the {type(system).__name__} model generates from audio only; --drive-video needs "
                             "--model davs")
        driving = media.read_video(drive_video, max_seconds=max_seconds)
        track = geometry.track_face(driving, face_index=0, where=str(drive_video))
        mouths = geometry.crop(driving, track.mouth_matrix, geometry.MOUTH_SIZE)
        n_frames, kind = len(mouths), "face"
        crops = windowed(system, mouths, 1, source.identity_face, make=system.generate_driven)
    elif getattr(system, "output", None) == "motion":  # any-face path: predicted motion warps the source itself
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


def predicted_motion(system, samples: np.ndarray, n_frames: int, expressiveness: float | None = None) -> np.ndarray:
    """The motion model's lower-face motion for speech: (n_frames, 31, 2) aligned-face pixels, times the
    expressiveness (default lipgen.models.motion.EXPRESSIVENESS)."""
    from . import voice
    from .models.motion import EXPRESSIVENESS

    gain = EXPRESSIVENESS if expressiveness is None else expressiveness
    return gain * system.predict(voice.Features(samples, n_frames))  # features made a piece at a time
