"""Training data of the motion model: speech features and lower-face motion, windows of every cached clip.

Each clip's audio is read once from its source file (the cache keeps log-mel, but augmentation needs
the waveform) and kept in memory (GRID: ~190 MB for 1000 clips of 3 s). Each item draws a clip and a
window from an RNG seeded by (seed, index). Augmentation draws a tempo (the audio and the motion
timeline stretched together) and a room/microphone/noise/codec draw (lipgen.voice.augment), then
feature-row dropout, and for the two front ends:
- "mel" (lipgen.voice): all of it afresh for every item, plus a vocal-tract warp and (with freq_mask) a
  masked band of mel bins;
- "whisper" (lipgen.speech): the encoder is too slow to run per item, so each clip has SPEECH_VERSIONS
  versions (the clean one and augmented draws) encoded once, packed 9 to a Whisper window, and kept in
  the clip's cache folder (a file per clip, written atomically: an interrupted run resumes); items draw
  a version. Validation uses the clean one.

Item:
    features  (rT, F) float32   the front end's features of the (augmented) clip, the window's rows
    motion    (T, 31, 2) float32 MOTION_POINTS in the aligned face minus the clip's rest shape (pixels)
    silent    (T,) bool         frame inside a 'sil'/'sp' span of the word timings (False when untimed)
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from .. import media, speech, voice
from ..models.base import DataSpec
from ..models.motion import MOTION_POINTS, rest_shape
from .cache import LANDMARKS_FACE, clip_folder, clip_metas, load_array, no_clips, source_path
from .corpora import SILENCE

TEMPO_RANGE = (0.85, 1.2)  # speech played this much slower .. faster
VTLP_RANGE = (0.85, 1.15)
ROW_DROPOUT = 0.05  # share of feature rows zeroed (SpecAugment-like time masking, short)
SPEECH_VERSIONS = DataSpec.versions  # whisper front end: versions of each training clip encoded (--set versions=N)
ENCODE_GROUP = 90  # clips encoded (and their files written) at a time


class MotionDataset(Dataset):
    def __init__(self, cache: str | os.PathLike, split: str | None = "train", window: int = 32,
                 augment: bool = True, seed: int = 0, clips: list[str] | None = None, items_per_clip: int = 8,
                 progress: bool = False, freq_mask: int = 0, speech: str = "mel", versions: int = SPEECH_VERSIONS):
        self.cache, self.window, self.augment, self.seed = Path(cache), window, augment, seed
        self.freq_mask = freq_mask  # widest band of mel bins zeroed in augmentation (0: none)
        if speech not in ("mel", "whisper"):
            raise ValueError(f"speech front end {speech!r}: choose 'mel' or 'whisper'")
        self.speech = speech
        metas = clip_metas(cache, split, clips=clips, min_frames=window)
        if not metas:
            raise no_clips(cache, split, clips, min_frames=window)
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
        if speech == "whisper":
            self._encode_versions(versions if augment else 1, progress)

    @staticmethod
    def _audio(meta: dict) -> np.ndarray:
        audio = media.read_audio(source_path(meta))  # the motion model trains on the waveform
        lead = meta.get("trimmed_start_frames", 0) * media.SAMPLES_PER_FRAME  # frames dropped at the start
        return media.fit_audio(audio[lead:], meta["n_frames"])

    def __len__(self) -> int:
        return len(self.clips) * self.items_per_clip

    def _augmented(self, clip: dict, rng: np.random.Generator):
        """A clip as the wild might bring it: (audio, motion, silent), with a tempo and a room/microphone/noise/codec
        draw (the motion and silence timelines stretched with the tempo)."""
        audio, motion, silent = clip["audio"], clip["motion"], clip["silent"]
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
        return voice.augment(audio, rng, babble=babble), motion, silent

    def _versions_path(self, clip_id: str, versions: int) -> Path:
        kind = f"aug{versions}" if self.augment else "clean"
        return clip_folder(self.cache, clip_id) / f"speech-{speech.ENCODER}-{kind}-seed{self.seed}.npz"

    def _encode_versions(self, versions: int, progress: bool) -> None:
        """clip["versions"]: [(features (2T, F) float16, motion, silent)] per version, from the clip's file, or
        encoded now (version 0 clean, the rest augmented with an RNG of (seed, clip id, version)) and saved."""
        todo = [c for c in self.clips if not self._versions_path(c["id"], versions).is_file()]
        bar = tqdm(total=len(todo) * versions, desc=f"encoding speech ({speech.ENCODER})", unit="clip",
                   disable=not progress or not todo)
        for g in range(0, len(todo), ENCODE_GROUP):
            group = todo[g:g + ENCODE_GROUP]
            drawn = []
            for clip in group:
                for v in range(versions):
                    rng = np.random.default_rng((self.seed, zlib.crc32(clip["id"].encode()), v))
                    drawn.append(self._augmented(clip, rng) if v else (clip["audio"], clip["motion"], clip["silent"]))
            encoded = speech.encode_clips([media.fit_audio(a, len(m)) for a, m, _ in drawn], progress=bar.update)
            for i, clip in enumerate(group):
                arrays = {}
                for v in range(versions):
                    _, motion, silent = drawn[i * versions + v]
                    arrays.update({f"features{v}": encoded[i * versions + v].astype(np.float16),
                                   f"motion{v}": motion, f"silent{v}": silent})
                path = self._versions_path(clip["id"], versions)
                tmp = path.with_suffix(".tmp")
                with open(tmp, "wb") as f:
                    np.savez(f, **arrays)
                os.replace(tmp, path)
        bar.close()
        for clip in self.clips:  # a version sped up shorter than this window (encoded for a shorter one) is left out
            with np.load(self._versions_path(clip["id"], versions)) as z:
                clip["versions"] = [(z[f"features{v}"], z[f"motion{v}"], z[f"silent{v}"]) for v in range(versions)
                                    if len(z[f"motion{v}"]) >= self.window]

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng((self.seed, index))
        clip = self.clips[index % len(self.clips)]
        if self.speech == "whisper":
            feats, motion, silent = clip["versions"][rng.integers(len(clip["versions"]))]
        else:
            audio, motion, silent = clip["audio"], clip["motion"], clip["silent"]
            vtlp = 1.0
            if self.augment:
                audio, motion, silent = self._augmented(clip, rng)
                vtlp = rng.uniform(*VTLP_RANGE)
            feats = voice.features(audio, len(motion), vtlp=vtlp)  # (4T, F)
        per_frame = len(feats) // len(motion)
        start = int(rng.integers(0, len(motion) - self.window + 1))
        feats = np.array(feats[start * per_frame:(start + self.window) * per_frame], np.float32)
        if self.augment:
            feats[rng.random(len(feats)) < ROW_DROPOUT] = 0.0
            if self.freq_mask and self.speech == "mel" and rng.random() < 0.5:  # a band of mel bins lost (SpecAugment)
                width = int(rng.integers(1, self.freq_mask + 1))
                low = int(rng.integers(0, voice.N_FEATURES - 1 - width))
                feats[:, low:low + width] = 0.0
        return {"features": torch.from_numpy(feats),
                "motion": torch.from_numpy(np.ascontiguousarray(motion[start:start + self.window])),
                "silent": torch.from_numpy(silent[start:start + self.window].copy())}
