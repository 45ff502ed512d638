"""Training data of the motion model: speech features and lower-face motion, windows of every cached clip.

Each clip's audio is read once from its source file (the cache keeps log-mel, but augmentation needs
the waveform) and kept in memory (GRID: ~190 MB for 1000 clips of 3 s). Each item draws a clip and a
window from an RNG seeded by (seed, index), and, when augmenting, a tempo (the audio and the motion
timeline stretched together), a room/microphone/noise/codec draw (lipgen.voice.augment), a vocal-tract
warp, feature-row dropout and (with freq_mask) a masked band of mel bins.

Item:
    features  (4T, F) float32   lipgen.voice.features of the (augmented) clip, the window's rows
    motion    (T, 31, 2) float32 MOTION_POINTS in the aligned face minus the clip's rest shape (pixels)
    silent    (T,) bool         frame inside a 'sil'/'sp' span of the word timings (False when untimed)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from .. import media, voice
from ..models.motion import MOTION_POINTS, rest_shape
from .cache import LANDMARKS_FACE, clip_metas, load_array
from .corpora import SILENCE

TEMPO_RANGE = (0.85, 1.2)  # speech played this much slower .. faster
VTLP_RANGE = (0.85, 1.15)
ROW_DROPOUT = 0.05  # share of feature rows zeroed (SpecAugment-like time masking, short)


class MotionDataset(Dataset):
    def __init__(self, cache: str | os.PathLike, split: str | None = "train", window: int = 32,
                 augment: bool = True, seed: int = 0, clips: list[str] | None = None, items_per_clip: int = 8,
                 progress: bool = False, freq_mask: int = 0):
        self.cache, self.window, self.augment, self.seed = Path(cache), window, augment, seed
        self.freq_mask = freq_mask  # widest band of mel bins zeroed in augmentation (0: none)
        metas = clip_metas(cache, split, clips=clips, min_frames=window)
        if not metas:
            raise ValueError(f"{cache}: no clips of at least {window} frames in split {split!r}. "
                             "Run `lipgen preprocess` first, or pick another split.")
        self.clips = []
        for meta in tqdm(metas, desc="motion data", disable=not progress, unit="clip"):
            aligned = load_array(cache, meta["id"], LANDMARKS_FACE, mmap=False).astype(np.float64)  # (T, 68, 2)
            motion = (aligned[:, MOTION_POINTS] - rest_shape(aligned)).astype(np.float32)  # (T, 31, 2)
            audio = self._audio(meta)
            silent = np.zeros(len(motion), bool)
            for w in meta.get("words", []):
                if w["word"] in SILENCE:
                    silent[int(np.ceil(w["start"])):int(np.floor(w["end"])) + 1] = True
            self.clips.append({"id": meta["id"], "motion": motion, "audio": audio, "silent": silent[:len(motion)]})
        self.items_per_clip = items_per_clip

    @staticmethod
    def _audio(meta: dict) -> np.ndarray:
        path = Path(meta["path"])
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the source of cached clip {meta['id']} is gone (the motion model "
                                    "trains on the waveform). Run training from the folder preprocessing ran in.")
        audio = media.read_audio(path)
        lead = meta.get("trimmed_start_frames", 0) * media.SAMPLES_PER_FRAME  # frames dropped at the start
        return media.fit_audio(audio[lead:], meta["n_frames"])

    def __len__(self) -> int:
        return len(self.clips) * self.items_per_clip

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng((self.seed, index))
        clip = self.clips[index % len(self.clips)]
        audio, motion, silent = clip["audio"], clip["motion"], clip["silent"]
        vtlp = 1.0
        if self.augment:
            rate = rng.uniform(*TEMPO_RANGE)
            n_frames = max(self.window, int(len(motion) / rate))
            audio = media.fit_audio(voice.stretch(audio, rate), n_frames)
            t = np.minimum(np.arange(n_frames) * rate, len(motion) - 1)  # source time of each new frame
            lo = np.floor(t).astype(int)
            hi = np.minimum(lo + 1, len(motion) - 1)
            w = (t - lo)[:, None, None]
            motion = (motion[lo] * (1 - w) + motion[hi] * w).astype(np.float32)
            silent = silent[np.round(t).astype(int)]
            babble = self.clips[rng.integers(len(self.clips))]["audio"]
            audio = voice.augment(audio, rng, babble=babble)
            vtlp = rng.uniform(*VTLP_RANGE)
        feats = voice.features(audio, len(motion), vtlp=vtlp)  # (4T, F)
        start = int(rng.integers(0, len(motion) - self.window + 1))
        rows = slice(start * media.MELS_PER_FRAME, (start + self.window) * media.MELS_PER_FRAME)
        feats = feats[rows].copy()
        if self.augment:
            feats[rng.random(len(feats)) < ROW_DROPOUT] = 0.0
            if self.freq_mask and rng.random() < 0.5:  # a band of mel bins lost (SpecAugment)
                width = int(rng.integers(1, self.freq_mask + 1))
                low = int(rng.integers(0, voice.N_FEATURES - 1 - width))
                feats[:, low:low + width] = 0.0
        return {"features": torch.from_numpy(feats),
                "motion": torch.from_numpy(np.ascontiguousarray(motion[start:start + self.window])),
                "silent": torch.from_numpy(silent[start:start + self.window].copy())}
