"""Lip reading and audio-video retrieval with a disentangled model's word-ID space (DAVS).

    lipgen lipread --video clip.mp4            # words read from the lips
    lipgen lipread --audio speech.wav          # ... from the sound; both flags: from both
    lipgen retrieve --audio q.wav --videos a.mp4 b.mp4 c.mp4

A file is read in windows of the model's word length (12 frames, 0.48 s) every WORD_HOP frames.
Lip reading labels each window with its most likely word of the model's vocabulary (the words of the corpus
it was trained on, kept in its checkpoint) and merges runs of the same word;
retrieval embeds a file as the normalised mean of its windows' word-IDs and ranks by cosine.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import media, vad
from .errors import LipgenError, SilentAudioError, one_line
from .inference import load_model, video_mouths
from .models.base import READS_WORDS, can
from .pixels import to_unit

log = logging.getLogger(__name__)
WORD_HOP = 3  # frames between reading windows (0.12 s)


@dataclass
class ReadWord:
    start: float  # seconds
    end: float
    word: str
    probability: float


def _windows(system, video=None, audio=None, speaking: bool = False) -> tuple[list[dict], int, np.ndarray | None]:
    """Model inputs for every window of the files: [{mouth?, mel?}], window length, and with speaking=True whether
    someone speaks at each window's centre by lipgen.vad (from `audio`, else the video's own sound; None when
    there is no sound)."""
    window = system.config.n_frames
    mouths = video_mouths(video) if video is not None else None
    samples = media.read_audio(audio if audio is not None else video) if (audio is not None) else None
    n = len(mouths) if mouths is not None else samples.size // media.SAMPLES_PER_FRAME
    if mouths is not None and samples is not None and abs(samples.size / media.SAMPLES_PER_FRAME - n) > window:
        raise media.MediaError(f"{audio}: {samples.size / media.SAMPLE_RATE:.1f} s of sound for "
                               f"{n / media.VIDEO_FPS:.1f} s of video ({video}): give the audio of that video, or "
                               "read one of them alone")
    if n < window:
        raise media.MediaError(f"{video or audio}: {n} frames, shorter than one {window}-frame word window")
    mel = media.log_mel(samples, n) if samples is not None else None
    out, starts = [], range(0, n - window + 1, WORD_HOP)
    for s in starts:
        item = {}
        if mouths is not None:
            item["mouth"] = to_unit(mouths[s:s + window]).transpose(0, 1)[None]  # (1, 3, T, 64, 64)
        if mel is not None:
            rows = mel[s * media.MELS_PER_FRAME:(s + window) * media.MELS_PER_FRAME]
            item["mel"] = torch.from_numpy(rows)[None, None]  # (1, 1, 4T, 80)
        out.append(item)
    speech, sound = None, samples
    if speaking and sound is None and media.has_audio(video):
        try:
            sound = media.read_audio(video)
        except SilentAudioError:
            log.warning("%s: its sound track is silent; reading the lips in every window", video)
    if speaking and sound is not None:
        speech = vad.speech_probability(sound, n)[[s + window // 2 for s in starts]] >= vad.THRESHOLD
    return out, window, speech


def lipread(video: str | os.PathLike | None = None, audio: str | os.PathLike | None = None, model: str | None = None,
            checkpoint: str | os.PathLike | None = None) -> list[ReadWord]:
    """Words spoken in a video (from the lips), in audio, or both; runs of the same word merged. Each window's word
    is placed at its centre, +-WORD_HOP / 2 frames; windows where the sound (the audio, else the video's own, when
    it has one) holds no speech by lipgen.vad are left out (the model knows no silence)."""
    if video is None and audio is None:
        raise ValueError("lipread needs --video, --audio, or both")
    system = _reader(model, checkpoint)
    vocabulary = system.vocabulary
    log.info("reading in the %d words the model learnt (%s, ...): any other word is read as one of them",
             len(vocabulary), ", ".join(vocabulary[:6]))
    windows, length, speech = _windows(system, video, audio, speaking=True)
    half = WORD_HOP / media.VIDEO_FPS / 2
    words: list[ReadWord] = []
    previous = None  # the word of the window before, None after a silence
    for i, item in enumerate(windows):
        if speech is not None and not speech[i]:
            previous = None
            continue
        with torch.inference_mode():
            p = F.softmax(system.word_logits(**item), dim=1)[0]
        best = int(p.argmax())
        centre = (i * WORD_HOP + length / 2) / media.VIDEO_FPS
        if previous == vocabulary[best]:
            words[-1].end = round(centre + half, 2)
            words[-1].probability = max(words[-1].probability, float(p[best]))
        else:
            words.append(ReadWord(round(centre - half, 2), round(centre + half, 2), vocabulary[best], float(p[best])))
        previous = vocabulary[best]
    return words


def embed(system, video=None, audio=None) -> torch.Tensor:
    """(D,) L2-normalised mean word-ID of a file's windows, from its video or its audio."""
    windows, _, _ = _windows(system, video, audio)
    with torch.inference_mode():
        parts = [system.embed_video(w["mouth"]) if video is not None else system.embed_audio(w["mel"]) for w in windows]
    return F.normalize(torch.cat(parts).mean(0), dim=0)


def retrieve(query: str | os.PathLike, candidates: list[str | os.PathLike], query_is_audio: bool = True,
             model: str | None = None, checkpoint: str | os.PathLike | None = None) -> list[tuple[str, float]]:
    """Rank candidate videos for a speech query (or candidate audios for a video query) by cosine similarity. A
    candidate that cannot be read (no face, no sound, too short, damaged) is left out with a warning naming why."""
    system = _reader(model, checkpoint)
    q = embed(system, audio=query) if query_is_audio else embed(system, video=query)
    scores = []
    for c in tqdm(candidates, desc="retrieve", unit="candidate", disable=len(candidates) < 10):
        try:
            scores.append((str(c), float(q @ (embed(system, video=c) if query_is_audio else embed(system, audio=c)))))
        except LipgenError as e:
            log.warning("left out %s", one_line(e))
    if not scores:
        raise media.MediaError("no candidate could be read (the reasons are above); give readable candidates")
    return sorted(scores, key=lambda s: -s[1])


def _reader(model: str | None, checkpoint):
    """A model with a word-ID space (capability READS_WORDS): a checkpoint's, or a shipped one by name (davs)."""
    system = load_model(model or (None if checkpoint is not None else "davs"), checkpoint)
    if not can(system, READS_WORDS):
        raise ValueError(f"the {type(system).__name__} model has no word-ID space to read or retrieve with: "
                         "use a DAVS model (--model davs or a davs checkpoint)")
    return system
