"""Speech + a face (photo or video) -> an mp4 of that face saying it.

    lipgen generate --audio speech.wav --face photo.png -o out.mp4

The audio's log-mel is cut into the model's windows (16 frames for Glance, every 12); the model makes each
window's mouth crops, overlapping frames are cross-faded, and every crop is pasted back into its
full frame with a feathered seam. Frames stream from the source to the encoder, so memory stays
bounded however long the audio is. A still photo becomes a video; a video source keeps its own
frames (looped if shorter than the audio) and gets new lips.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import face as geometry
from . import media
from .checkpoint import load_system

WINDOW_OVERLAP = 4  # of every 4 frames of a window, 1 overlaps the next window and is cross-faded


def window_hop(window: int) -> int:
    """Frames between window starts: a 16-frame window hops 12, overlapping the next by 4."""
    return window - window // WINDOW_OVERLAP


WINDOW_HOP = window_hop(16)  # Glance's seams fall every 12 frames
ASSETS = Path(__file__).parent / "assets"
DEFAULT_CHECKPOINTS = {"glance": ASSETS / "glance.safetensors"}
SAMPLE_AUDIO = ASSETS / "jfk.flac"
SAMPLE_FACE = ASSETS / "astronaut.png"


def load_generator(model: str = "glance", checkpoint: str | os.PathLike | None = None):
    """The model for generation: the shipped default, or a checkpoint from `lipgen train`."""
    if checkpoint is None:
        if model not in DEFAULT_CHECKPOINTS or not DEFAULT_CHECKPOINTS[model].is_file():
            raise FileNotFoundError(f"no shipped {model} model: train one with `lipgen train --model {model}` "
                                    "and pass --checkpoint PATH")
        checkpoint = DEFAULT_CHECKPOINTS[model]
    system, header = load_system(checkpoint, strict=False)
    if header["model"] != model:
        raise ValueError(f"{checkpoint} holds a {header['model']} model, not {model}: pass --model {header['model']}")
    return system


class FaceSource:
    """Frames of the target face, with their mouth-crop matrices, streamed for output frame 0, 1, 2, ..."""

    def __init__(self, path: str | os.PathLike, face_index: int | None = None, max_seconds: float = media.MAX_SECONDS):
        self.path, self.max_seconds = Path(path), max_seconds
        self.still = self.path.suffix.lower() in media.IMAGE_SUFFIXES
        if self.still:
            self.image = media.read_image(path)
            frames = self.image[None]
        else:  # first pass: landmarks only (a frame at a time), so long videos fit in memory
            frames = media.iter_video(path, max_seconds=max_seconds)
        landmarks, _ = geometry.track_landmarks(frames, face_index, where=str(path))
        self.face_matrix, self.mouth_matrix = geometry.crop_matrices(landmarks)  # (T, 2, 3) each
        first = self.image if self.still else next(media.iter_video(path, max_seconds=max_seconds))
        self.identity_mouth = geometry.crop(first[None], self.mouth_matrix[:1], geometry.MOUTH_SIZE)[0]  # (64, 64, 3)
        self.identity_face = geometry.crop(first[None], self.face_matrix[:1], geometry.FACE_SIZE)[0]  # (128, 128, 3)

    def frames(self, crop: str = "mouth"):
        """Yield (frame, frame -> crop matrix) forever: the photo, or the video looped from its start."""
        matrices = self.mouth_matrix if crop == "mouth" else self.face_matrix
        if self.still:
            while True:
                yield self.image, matrices[0]
        while True:
            for frame, matrix in zip(media.iter_video(self.path, max_seconds=self.max_seconds), matrices):
                yield frame, matrix


def mouth_windows(system, mel: np.ndarray, identity: np.ndarray, batch_windows: int = 8):
    """Yield generated crops frame by frame: (S, S, 3) uint8, n = len(mel) // MELS_PER_FRAME frames.

    mel: (4N, 80) log-mel of the whole audio. identity: (S, S, 3) uint8 crop. Windows of
    n_frames start every window_hop(n_frames) frames; in the overlap, frames fade linearly from the earlier
    window to the later one.
    """
    window = system.config.n_frames
    hop = window_hop(window)
    overlap = window - hop
    n = len(mel) // media.MELS_PER_FRAME
    starts = list(range(0, max(n - overlap, 1), hop))
    pad_rows = (starts[-1] + window) * media.MELS_PER_FRAME - len(mel)
    mel = np.concatenate([mel, np.full((max(pad_rows, 0), mel.shape[1]), mel.min(), np.float32)])
    ident = torch.from_numpy(identity).float().div(127.5).sub(1).permute(2, 0, 1)[None]  # (1, 3, S, S)
    fade = (np.arange(1, overlap + 1) / (overlap + 1))[:, None, None, None]  # weight of the later window
    tail = None
    emitted = 0
    for b in range(0, len(starts), batch_windows):
        group = starts[b:b + batch_windows]
        mels = torch.from_numpy(np.stack([mel[s * media.MELS_PER_FRAME:(s + window) * media.MELS_PER_FRAME]
                                          for s in group]))[:, None]  # (W, 1, 4T, 80)
        with torch.inference_mode():
            video = system.generate(mels, ident.expand(len(group), -1, -1, -1))  # (W, 3, T, S, S)
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


def model_crops(system, mel: np.ndarray, identity_mouth: np.ndarray, identity_face: np.ndarray):
    """The crops a model makes for a whole audio, streamed: (crop kind "mouth" or "face", iterator of
    (S, S, 3) uint8 crops, one per video frame). mel: (4N, 80); identities: (64, 64, 3) and (128, 128, 3)."""
    output = getattr(system.config, "output", "mouth")
    if hasattr(system, "stream"):  # recurrent models make frame after frame with a constant-size state
        return output, system.stream(mel, identity_face if output == "face" else identity_mouth)
    return output, mouth_windows(system, mel, identity_face if output == "face" else identity_mouth)


def generate(audio: str | os.PathLike | np.ndarray, face: str | os.PathLike, out: str | os.PathLike = "out.mp4",
             model: str = "glance", checkpoint: str | os.PathLike | None = None, face_index: int | None = None,
             sample_rate: int = media.SAMPLE_RATE, max_seconds: float = media.MAX_SECONDS,
             progress: bool = True) -> Path:
    """Make `out` (mp4, 25 fps, audio muxed): the face in `face` saying `audio`.

    audio: a file ffmpeg reads, or a (N,) float array at `sample_rate` (must be SAMPLE_RATE).
    face: a photo (png, jpg, ...) or a video; face_index picks one of several faces (largest first).
    Raises MediaError (unreadable/empty/too-long audio or video), FaceNotFoundError, MultipleFacesError.
    """
    if isinstance(audio, np.ndarray):
        media.check_sample_rate(sample_rate)
        samples = audio.astype(np.float32).reshape(-1)
        if samples.size > max_seconds * media.SAMPLE_RATE:
            raise media.MediaError(f"audio longer than {max_seconds:.0f} s. Cut it, or raise max_seconds.")
    else:
        samples = media.read_audio(audio, max_seconds=max_seconds)
    n_frames = -(-samples.size // media.SAMPLES_PER_FRAME)  # ceil: the last partial frame is kept
    mel = media.log_mel(samples, n_frames)
    system = load_generator(model, checkpoint)
    source = FaceSource(face, face_index, max_seconds)
    bar = tqdm(total=n_frames, desc="generate", unit="frame", disable=not progress)
    kind, crops = model_crops(system, mel, source.identity_mouth, source.identity_face)
    with media.Mp4Writer(out, audio=media.fit_audio(samples, n_frames)) as writer:
        for crop, (frame, matrix) in zip(crops, source.frames(kind)):
            writer.write(geometry.paste_back(frame, crop, matrix))
            bar.update()
    bar.close()
    return Path(out)
