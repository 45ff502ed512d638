"""Lip reading and audio-video retrieval with a disentangled model's word-ID space (DAVS).

    lipgen lipread --video clip.mp4            # words read from the lips
    lipgen lipread --audio speech.wav          # ... from the sound; both flags: from both
    lipgen retrieve --audio q.wav --videos a.mp4 b.mp4 c.mp4

A file is read in windows of the model's word length (12 frames, 0.48 s) every WORD_HOP frames.
Lip reading labels each window with its most likely GRID word and merges runs of the same word;
retrieval embeds a file as the normalised mean of its windows' word-IDs and ranks by cosine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import face, media
from .data.corpora import GRID_VOCABULARY
from .generate import load_generator

WORD_HOP = 3  # frames between reading windows (0.12 s)


@dataclass
class ReadWord:
    start: float  # seconds
    end: float
    word: str
    probability: float


def _mouths(video: str | os.PathLike) -> np.ndarray:
    frames = media.read_video(video)
    track = face.track_face(frames, face_index=0, where=str(video))
    return face.crop(frames, track.mouth_matrix, face.MOUTH_SIZE)  # (T, 64, 64, 3)


def _windows(system, video=None, audio=None) -> tuple[list[dict], int]:
    """Model inputs for every window of the files: [{mouth?, mel?}], window length."""
    window = system.config.n_frames
    mouths = _mouths(video) if video is not None else None
    samples = media.read_audio(audio if audio is not None else video) if (audio is not None) else None
    n = len(mouths) if mouths is not None else samples.size // media.SAMPLES_PER_FRAME
    if n < window:
        raise media.MediaError(f"{video or audio}: {n} frames, shorter than one {window}-frame word window")
    mel = media.log_mel(samples, n) if samples is not None else None
    out = []
    for s in range(0, n - window + 1, WORD_HOP):
        item = {}
        if mouths is not None:
            clip = torch.from_numpy(mouths[s:s + window]).float().div(127.5).sub(1)
            item["mouth"] = clip.permute(3, 0, 1, 2)[None]  # (1, 3, T, 64, 64)
        if mel is not None:
            rows = mel[s * media.MELS_PER_FRAME:(s + window) * media.MELS_PER_FRAME]
            item["mel"] = torch.from_numpy(rows)[None, None]  # (1, 1, 4T, 80)
        out.append(item)
    return out, window


def lipread(video: str | os.PathLike | None = None, audio: str | os.PathLike | None = None, model: str = "davs",
            checkpoint: str | os.PathLike | None = None) -> list[ReadWord]:
    """Words spoken in a video (from the lips), in audio, or both; runs of the same word merged."""
    if video is None and audio is None:
        raise ValueError("lipread needs --video, --audio, or both")
    system = load_generator(model, checkpoint)
    windows, length = _windows(system, video, audio)
    words: list[ReadWord] = []
    for i, item in enumerate(windows):
        with torch.inference_mode():
            p = F.softmax(system.word_logits(**item), dim=1)[0]
        best = int(p.argmax())
        start = i * WORD_HOP / media.VIDEO_FPS
        centre = (i * WORD_HOP + length / 2) / media.VIDEO_FPS
        if words and words[-1].word == GRID_VOCABULARY[best]:
            words[-1].end = centre + WORD_HOP / media.VIDEO_FPS / 2
            words[-1].probability = max(words[-1].probability, float(p[best]))
        else:
            words.append(ReadWord(round(start, 2), round(centre + WORD_HOP / media.VIDEO_FPS / 2, 2),
                                  GRID_VOCABULARY[best], float(p[best])))
    return words


def embed(system, video=None, audio=None) -> torch.Tensor:
    """(D,) L2-normalised mean word-ID of a file's windows, from its video or its audio."""
    windows, _ = _windows(system, video, audio)
    with torch.inference_mode():
        parts = [system.embed_video(w["mouth"]) if video is not None else system.embed_audio(w["mel"]) for w in windows]
    return F.normalize(torch.cat(parts).mean(0), dim=0)


def retrieve(query: str | os.PathLike, candidates: list[str | os.PathLike], query_is_audio: bool = True,
             model: str = "davs", checkpoint: str | os.PathLike | None = None) -> list[tuple[str, float]]:
    """Rank candidate videos for a speech query (or candidate audios for a video query) by cosine similarity."""
    system = load_generator(model, checkpoint)
    q = embed(system, audio=query) if query_is_audio else embed(system, video=query)
    scores = [(str(c), float(q @ (embed(system, video=c) if query_is_audio else embed(system, audio=c))))
              for c in candidates]
    return sorted(scores, key=lambda s: -s[1])
