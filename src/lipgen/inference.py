"""Running a trained model on whole clips: loading it by name or path, windows and their seams, streaming.

generate, evaluate and lipread all come through here, and ask a model only what lipgen.models.base
declares: its crop, its seams, its capabilities.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from . import media
from .checkpoint import load_system
from .models import DEFAULT_MODEL, shipped_checkpoint
from .models.base import STREAMS, can, window_hop
from .pixels import to_pixels, to_unit

log = logging.getLogger(__name__)


def inference_autocast(device: str = "cpu"):
    """bfloat16 autocast where the processor computes it natively (AVX512-BF16/AMX: ~2x faster), else a no-op.
    The shipped models are trained under bf16 autocast, so their output does not change visibly."""
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return torch.autocast(device, dtype=torch.bfloat16, enabled=native)


def load_model(model: str | None = None, checkpoint: str | os.PathLike | None = None):
    """A model for inference: a shipped one by name (default DEFAULT_MODEL), or a checkpoint from
    `lipgen train` (its model is read from the file unless `model` names one to check it against)."""
    if checkpoint is not None and model is None:
        return load_system(checkpoint, strict=False)[0]
    model = model or DEFAULT_MODEL
    checkpoint = checkpoint if checkpoint is not None else shipped_checkpoint(model)
    system, header = load_system(checkpoint, strict=False)
    if header["model"] != model:
        raise ValueError(f"{checkpoint} holds a {header['model']} model, not {model}: pass --model {header['model']}")
    system.shipped = checkpoint == shipped_checkpoint(model)  # lipgen.stream swaps a shipped model for its streaming one
    return system


def load_spec(spec: str | os.PathLike):
    """A model from a command line word: a checkpoint path, or the name of a shipped model."""
    if os.path.isfile(spec):
        return load_model(checkpoint=spec)
    if os.path.isdir(spec):
        raise FileNotFoundError(f"{spec}: a folder; give its model file, e.g. {Path(spec) / 'model.safetensors'}.")
    if Path(spec).suffix or os.sep in str(spec):  # meant as a file
        raise FileNotFoundError(f"{spec}: no such checkpoint file. Give the model file from `lipgen train` "
                                "(<run>/model.safetensors) or a shipped model's name.")
    return load_model(str(spec))


def windowed(system, inputs: np.ndarray, rows_per_frame: int, identity: np.ndarray, make=None,
             batch_windows: int = 8):
    """Yield generated crops frame by frame: (S, S, 3) uint8, n = len(inputs) // rows_per_frame frames.

    inputs: the driving signal of the whole clip, rows_per_frame rows per video frame: log-mel (4N, 80)
    or mouth crops (N, 64, 64, 3) uint8. identity: (S, S, 3) uint8 crop. make(window batch, identity
    batch) -> (W, 3, T, S, S); default system.generate. Windows of n_frames start every
    window_hop(n_frames) frames (the model's seams, base.window_seams); in the overlap, frames fade
    linearly from the earlier window to the later one.
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
    ident = to_unit(identity[None])  # (1, 3, S, S)
    fade = (np.arange(1, overlap + 1) / (overlap + 1))[:, None, None, None]  # weight of the later window
    tail = None
    emitted = 0
    for b in range(0, len(starts), batch_windows):
        group = starts[b:b + batch_windows]
        chunks = np.stack([inputs[s * rows_per_frame:(s + window) * rows_per_frame] for s in group])
        batch = torch.from_numpy(chunks)[:, None] if chunks.dtype != np.uint8 else to_unit(chunks).transpose(1, 2)
        with torch.inference_mode(), inference_autocast():
            video = make(batch, ident.expand(len(group), -1, -1, -1))  # (W, 3, T, S, S)
        crops = to_pixels(video.transpose(1, 2))  # (W, T, S, S, 3)
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


def model_crops(system, mel: np.ndarray, identity_mouth: np.ndarray, identity_face: np.ndarray,
                batch_size: int = 8):
    """The crops a model makes for a whole audio, streamed: (crop kind "mouth" or "face", iterator of
    (S, S, 3) uint8 crops, one per video frame). mel: (4N, 80); identities: (64, 64, 3) and (128, 128, 3);
    batch_size: windows per forward pass (windowed models)."""
    if system.crop not in ("mouth", "face"):
        raise ValueError(f"the {type(system).__name__} model makes no image crops (its crop is {system.crop!r})")
    identity = identity_face if system.crop == "face" else identity_mouth
    if can(system, STREAMS):  # recurrent models make frame after frame with a constant-size state
        return system.crop, system.stream(mel, identity)
    return system.crop, windowed(system, mel, media.MELS_PER_FRAME, identity, batch_windows=batch_size)


def driven_crops(system, mouths: np.ndarray, identity_face: np.ndarray, batch_size: int = 8):
    """Faces of the identity driven by another clip's mouth crops (N, 64, 64, 3) uint8 (capability DRIVEN)."""
    return windowed(system, mouths, 1, identity_face, make=system.generate_driven, batch_windows=batch_size)


def predicted_motion(system, samples: np.ndarray, n_frames: int, expressiveness: float | None = None,
                     rest_in_silence: bool = True) -> np.ndarray:
    """The motion model's lower-face motion for speech: (n_frames, 31, 2) aligned-face pixels, times the
    expressiveness (default lipgen.models.motion.EXPRESSIVENESS), and with rest_in_silence faded to the closed
    mouth where lipgen.vad hears nobody speak (more than SILENCE_MARGIN frames from speech)."""
    from .models.motion import EXPRESSIVENESS

    gain = EXPRESSIVENESS if expressiveness is None else expressiveness
    motion = system.predict(system.features(samples, n_frames))  # features made a piece at a time
    motion *= gain
    if rest_in_silence:
        motion *= silence_gain(samples, len(motion))[:, None, None]
    return motion


def silence_gain(samples: np.ndarray, n_frames: int) -> np.ndarray:
    """(n_frames,) in [0, 1]: what predicted_motion's rest_in_silence multiplies the motion by (lipgen.vad's
    gate, SILENCE_MARGIN frames around speech). Quiet speech is raised to the common level first (media.speech_gain;
    loud speech is left as it is, which Silero's network hears best): the network hears quiet speech less (at
    -70 dBFS it missed a whole first word). Where it hears no speech at all (room tone, noise, music) the mouth rests
    closed throughout, and a warning says so."""
    from . import vad
    from .models.motion import SILENCE_MARGIN

    probability = vad.speech_probability(samples, n_frames, gain=max(media.speech_gain(samples), 1.0))
    gate = vad.silence_gate(probability, SILENCE_MARGIN)
    if n_frames and not gate.any():
        log.warning("no speech heard in the audio (room tone, noise or music?): the mouth stays closed")
    return gate


def video_mouths(video: str | os.PathLike, max_seconds: float = media.MAX_SECONDS) -> np.ndarray:
    """Mouth crops of the first face of a video, frame by frame: (T, 64, 64, 3) uint8; a frame without the face
    (before it appears, or after it has left) holds the nearest frame's mouth. Two passes over the video (its
    landmarks, then its crops), one frame in memory at a time. A still image or a sound file is refused: lips
    are read from their motion."""
    from . import face

    still = media.is_still(video)
    if still or not media.has_video(video):
        kind = "a still image" if still else "sound only, no pictures"
        raise media.MediaError(f"{video}: {kind}. Lips are read from a video of a talking face: give one (mp4, mov, "
                               "avi, ...); a file's speech goes in as audio.")
    cuts = []
    landmarks, _ = face.track_landmarks(media.iter_video(video, max_seconds=max_seconds), face_index=0,
                                        where=str(video), allow_missing=True, cuts=cuts)
    _, mouth = face.crop_matrices_in_runs(landmarks, cuts)
    has = ~np.isnan(mouth[:, 0, 0])
    crops = np.empty((len(mouth), face.MOUTH_SIZE, face.MOUTH_SIZE, 3), np.uint8)
    for t, frame in enumerate(media.iter_video(video, max_seconds=max_seconds)):
        if has[t]:
            crops[t] = face.crop(frame[None], mouth[t:t + 1], face.MOUTH_SIZE)[0]
    seen, t = np.flatnonzero(has), np.arange(len(mouth))
    after = seen[np.minimum(np.searchsorted(seen, t), len(seen) - 1)]
    before = seen[np.maximum(np.searchsorted(seen, t, side="right") - 1, 0)]
    return crops[np.where(t - before <= after - t, before, after)]
