"""Torch Dataset over a preprocessing cache: 16-frame windows with their audio.

Arrays are memory-mapped (np.load mmap_mode="r"), so an item reads only its window from disk
and never decodes video or computes a spectrogram.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..media import MELS_PER_FRAME
from ..models.base import NO_WORD, WINDOW, WORD_FRAMES  # noqa: F401 (the data side of the model contract)
from ..pixels import to_unit as to_tensor_images
from . import cache as cached
from .corpora import SILENCE



class LipDataset(Dataset):
    """Windows of `window` frames from every cached clip of a split.

    Items are (clip, start) pairs with starts every `stride` frames. Each item is a dict:
        identity   (3, 64, 64)          a mouth crop of the same clip, from a random frame
        mouth      (3, T, 64, 64)       the window's mouth crops, T = window
        mel        (1, 4T, 80)          the matching log-mel rows
        mel_wrong  (1, 4T, 80)          a window of another clip's audio (mismatched negative)
        landmarks  (T, 68, 2)           landmarks in mouth-crop pixels
        silent     (T,) bool            frame inside a 'sil'/'sp' span (or untimed: False)
        words      (T,) int64           index in self.vocabulary of the word spoken at each frame, -1 if none
        face, face_identity (3, T, 128, 128), (3, 128, 128)   only with faces=True
        clip, start                     which window this is
    The random choices (identity frame, mismatched clip) are fixed per (seed, index), so a
    validation set built with a fixed seed is the same every time.

    split: "train" / "val" / "test" / None (all), read from the clip's `split` (or `speaker_split`
    with by_speaker=True). clips: restrict to these ids (e.g. a `lipgen select` manifest). vocabulary: the
    word list labels index (a trained model's `system.vocabulary`); default the cache's (the corpus's words).
    """

    def __init__(self, cache: str | os.PathLike, split: str | None = "train", window: int = WINDOW,
                 stride: int = 4, faces: bool = False, by_speaker: bool = False, clips: list[str] | None = None,
                 seed: int = 0, vocabulary: list[str] | None = None):
        self.cache = Path(cache)
        self.window, self.faces, self.seed = window, faces, seed
        self.vocabulary = list(vocabulary) if vocabulary is not None else cached.read_vocabulary(cache)
        self.word_index = {w: i for i, w in enumerate(self.vocabulary)}
        self.clips = cached.clip_metas(cache, split, "speaker_split" if by_speaker else "split", clips, window)
        if not self.clips:
            raise cached.no_clips(cache, split, clips, "speaker_split" if by_speaker else "split", window)
        self.items = [(c, s) for c, meta in enumerate(self.clips)
                      for s in range(0, meta["n_frames"] - window + 1, stride)]

    def __len__(self) -> int:
        return len(self.items)

    def _load(self, clip: int, name: str) -> np.ndarray:
        return cached.load_array(self.cache, self.clips[clip]["id"], name)

    def frame_words(self, clip: int) -> np.ndarray:
        """(n_frames,) int64: vocabulary index of the word whose span holds each frame's centre, -1 if none."""
        meta = self.clips[clip]
        centres = np.arange(meta["n_frames"]) + 0.5
        out = np.full(meta["n_frames"], -1, np.int64)
        for w in meta["words"]:
            if w["word"] in self.word_index and w["start"] is not None:
                out[(centres >= w["start"]) & (centres < w["end"])] = self.word_index[w["word"]]
        return out

    def silent_frames(self, clip: int) -> np.ndarray:
        """(n_frames,) bool: frames whose centre lies in a 'sil'/'sp' span of the word timings."""
        meta = self.clips[clip]
        centres = np.arange(meta["n_frames"]) + 0.5
        silent = np.zeros(meta["n_frames"], bool)
        for w in meta["words"]:
            if w["word"] in SILENCE and w["start"] is not None:
                silent |= (centres >= w["start"]) & (centres < w["end"])
        return silent

    def __getitem__(self, index: int) -> dict:
        clip, start = self.items[index]
        rng = np.random.default_rng((self.seed, index))
        t, n = self.window, self.clips[clip]["n_frames"]
        frames = slice(start, start + t)
        mouth = self._load(clip, cached.MOUTH)
        other = (clip + rng.integers(1, len(self.clips))) % len(self.clips) if len(self.clips) > 1 else clip
        other_start = rng.integers(0, self.clips[other]["n_frames"] - t + 1)
        if other == clip:  # a single clip: take the farthest window of its own audio
            other_start = 0 if start > n - t - start else n - t
        ident = int(rng.integers(0, n))
        item = {
            "identity": to_tensor_images(mouth[ident]),
            "mouth": to_tensor_images(mouth[frames]).movedim(0, 1),
            "mel": torch.from_numpy(np.array(self._load(clip, cached.MEL)[start * MELS_PER_FRAME:(start + t) * MELS_PER_FRAME]))[None],
            "mel_wrong": torch.from_numpy(np.array(
                self._load(other, cached.MEL)[other_start * MELS_PER_FRAME:(other_start + t) * MELS_PER_FRAME]))[None],
            "landmarks": torch.from_numpy(np.array(self._load(clip, cached.LANDMARKS_MOUTH)[frames])),
            "silent": torch.from_numpy(self.silent_frames(clip)[frames]),
            "words": torch.from_numpy(self.frame_words(clip)[frames]),
            "clip": self.clips[clip]["id"],
            "start": start,
        }
        if self.faces:
            face = self._load(clip, cached.FACE)
            item["face"] = to_tensor_images(face[frames]).movedim(0, 1)
            item["face_identity"] = to_tensor_images(face[ident])
        return item


class WordDataset(LipDataset):
    """One item per timed word (LRW-style: a fixed WORD_FRAMES window centred on the word).

    Items hold everything a LipDataset window holds (mouth, mel, mel_wrong, identity, landmarks, silent,
    words, and faces with faces=True) for that window, plus:
        word     int    index of the word in self.vocabulary; NO_WORD (-1) for a silence item
        speaker  int    index of the clip's speaker in self.speakers
        clip     int    index of the clip in self.clips (words of one clip share it)
    Words without timings, and those too close to a clip's end to centre, are skipped. With silences=True,
    every timed pause at least a window long adds an item centred in it (word NO_WORD), so that a model
    generating from word windows also learns what a closed, silent mouth looks like.
    """

    def __init__(self, cache: str | os.PathLike, split: str | None = "train", window: int = WORD_FRAMES,
                 faces: bool = False, by_speaker: bool = False, clips: list[str] | None = None, seed: int = 0,
                 silences: bool = False, vocabulary: list[str] | None = None):
        super().__init__(cache, split, window, window, faces, by_speaker, clips, seed, vocabulary)
        self.speakers = sorted({c["speaker"] for c in self.clips})
        self.items, self.labels = [], []
        for c, meta in enumerate(self.clips):
            for w in meta["words"]:
                if w["start"] is None:
                    continue
                if w["word"] in self.word_index:
                    label = self.word_index[w["word"]]
                elif silences and w["word"] in SILENCE and w["end"] - w["start"] >= window:
                    label = NO_WORD
                else:
                    continue
                start = int(round((w["start"] + w["end"]) / 2 - window / 2))
                self.items.append((c, min(max(start, 0), meta["n_frames"] - window)))
                self.labels.append(label)
        if not self.items:
            raise ValueError(f"{self.cache}: no timed words for split={split!r}: word items need word timings (GRID's "
                             ".align files, or transcripts that preprocessing aligned: GRID file names, LRW word "
                             "folders, a folder corpus's <clip>.txt).")

    def __getitem__(self, index: int) -> dict:
        item = super().__getitem__(index)
        item["word"] = self.labels[index]
        item["speaker"] = self.speakers.index(self.clips[self.items[index][0]]["speaker"])
        item["clip"] = self.items[index][0]
        return item


def clip_ids(path: str | os.PathLike) -> list[str]:
    """Clip ids listed in a manifest (JSON lines with an "id" field, e.g. one written by `lipgen select`) or in a
    plain list (one id a line, e.g. s1/bbaf2n)."""
    ids = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if not line.startswith("{"):
            ids.append(line)
            continue
        try:
            ids.append(json.loads(line)["id"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path}, line {n}: not a clip id nor a JSON object with an \"id\" ({e}). List clip ids "
                             "one a line, or give a manifest from `lipgen select`.") from e
    if not ids:
        raise ValueError(f"{path}: no clip ids in it. List clip ids one a line, or give a manifest from `lipgen select`.")
    return ids
