"""Reading a preprocessing cache (lipgen.data.preprocess writes it): clip metadata, arrays, vocabulary.

    <cache>/<clip>/meta.json, <array>.npy    one folder per clip, named clip_dir_name(id)
    <cache>/vocabulary.json                  the corpus's word list (lipgen.data.corpora.vocabulary)
    <cache>/manifest.jsonl, _failed/         the corpus's clips; those that could not be used, with the reason
    <cache>/corpus.json                      how the cache was made: its corpus layout, how its landmarks were read
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..face import LANDMARK_SIDE
from ..files import write_atomic
from .corpora import SILENCE

# the arrays of a clip folder (shapes in lipgen.data.preprocess)
MOUTH, FACE, MEL = "mouth", "face", "mel"
LANDMARKS, LANDMARKS_MOUTH, LANDMARKS_FACE = "landmarks", "landmarks_mouth", "landmarks_face"
MOUTH_MATRIX, FACE_MATRIX = "mouth_matrix", "face_matrix"
VOCABULARY_FILE = "vocabulary.json"
FAILED = "_failed"  # <cache>/_failed/<clip>.json: a clip preprocessing could not use, with the reason
CORPUS_FILE = "corpus.json"  # {"corpus": the layout (--corpus), "landmark_side": the face.LANDMARK_SIDE read at}
WHOLE_PIXELS = 0  # landmark_side of a cache whose landmarks were read in whole pixels (lipgen before session 28)


def clip_dir_name(clip_id: str) -> str:
    return clip_id.replace("/", "__")


def clip_folder(cache: str | os.PathLike, clip_id: str) -> Path:
    return Path(cache) / clip_dir_name(clip_id)


def source_path(meta: dict) -> Path:
    """The source video of a cached clip; FileNotFoundError (one line) where it is gone, or where a cache made
    before lipgen stored absolute paths names it relative to another folder."""
    path = Path(meta["path"])
    if path.is_file():
        return path
    if not path.is_absolute():
        raise FileNotFoundError(f"{path}: the source video of cached clip {meta['id']}, named relative to the folder "
                                "preprocessing ran in (caches made before lipgen stored absolute paths). Run from "
                                "that folder, or preprocess again.")
    raise FileNotFoundError(f"{path}: the source video of cached clip {meta['id']} is not there (moved or deleted?); "
                            "its sound and frames are read from it. Put the corpus back at that path, or preprocess "
                            "it where it is now.")


def landmark_side(cache: str | os.PathLike) -> int | None:
    """The face.LANDMARK_SIDE a cache's landmarks were read at, as its corpus.json records it; for a cache made
    before that was recorded, as its landmarks show: read in whole pixels, small faces' points are all whole
    numbers (WHOLE_PIXELS); faces wider than LANDMARK_SIDE are read alike either way. None: no clips yet."""
    record = Path(cache) / CORPUS_FILE
    if record.is_file() and "landmark_side" in (made := json.loads(record.read_text())):
        return made["landmark_side"]
    sample = [np.load(p) for p in sorted(Path(cache).glob(f"*/{LANDMARKS}.npy"))[:20]]
    if not sample:
        return None
    whole = all((points == np.round(points)).all() for points in sample)
    small = any((np.ptp(points[:, :17, 0], axis=1) < LANDMARK_SIDE).any() for points in sample)  # jaw width
    return WHOLE_PIXELS if whole and small else LANDMARK_SIDE


def reading_differs(cache: str | os.PathLike) -> str | None:
    """Why a cache's landmarks are not read as this lipgen reads them (generation, the judges), or None."""
    side = landmark_side(cache)
    if side is None or side == LANDMARK_SIDE:
        return None
    how = "in whole pixels" if side == WHOLE_PIXELS else f"with faces narrower than {side} px upsampled"
    return (f"{cache}: its landmarks were read {how}, and this lipgen reads faces narrower than {LANDMARK_SIDE} px "
            "between pixels (lipgen.face.LANDMARK_SIDE)")


def missing_clips(cache: str | os.PathLike) -> list[str]:
    """Ids of the corpus manifest (manifest.jsonl, written by shard 0) that the cache neither holds nor lists as
    failed: shards not run yet, or still running."""
    cache = Path(cache)
    try:
        ids = [json.loads(line)["id"] for line in (cache / "manifest.jsonl").read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []
    return [i for i in ids if not (clip_folder(cache, i) / "meta.json").is_file()
            and not (cache / FAILED / f"{clip_dir_name(i)}.json").is_file()]


def clip_metas(cache: str | os.PathLike, split: str | None = None, key: str = "split",
               clips: list[str] | None = None, min_frames: int = 0) -> list[dict]:
    """meta.json of every complete clip, sorted by folder: of a split (meta[key] == split; None: all), of the
    listed ids only (clips), and at least min_frames long."""
    wanted = set(clips) if clips is not None else None
    out = []
    for path in sorted(Path(cache).glob("*/meta.json")):
        if path.parent.name.startswith((".", "_")):
            continue
        meta = json.loads(path.read_text())
        if ((split is None or meta.get(key) == split) and (wanted is None or meta["id"] in wanted)
                and meta["n_frames"] >= min_frames):
            out.append(meta)
    return out


def no_clips(cache: str | os.PathLike, split: str | None, clips: list[str] | None = None, key: str = "split",
             min_frames: int = 0) -> ValueError:
    """Why clip_metas(cache, split, key, clips, min_frames) found nothing, as the error to raise."""
    cache = Path(cache)
    if not cache.is_dir():
        return ValueError(f"{cache}: no such cache folder. Make one with `lipgen preprocess`, or check the path.")
    every = clip_metas(cache)
    if not every:
        return ValueError(f"{cache}: no usable clips (`lipgen preprocess` made none; its report.json says why).")
    if clips is not None:
        listed = [m for m in every if m["id"] in set(clips)]
        if not listed:
            return ValueError(f"{cache}: none of the {len(clips)} listed clip ids (--clips) is in the cache; list ids "
                              "from its manifest.jsonl.")
        every = listed
    where = sorted({str(m.get(key)) for m in every})
    if split is not None and split not in where:
        return ValueError(f"{cache}: no {'listed ' if clips is not None else ''}clips in split {split!r}: they are in "
                          f"{', '.join(where)}." + (f" List {split} clips (e.g. `lipgen select --split {split}`)."
                                                    if clips is not None else ""))
    longest = max(m["n_frames"] for m in every if split is None or m.get(key) == split)
    return ValueError(f"{cache}: no clip of split {split!r} is {min_frames} frames long or more (the longest: "
                      f"{longest}).")


def load_array(cache: str | os.PathLike, clip_id: str, name: str, mmap: bool = True) -> np.ndarray:
    return np.load(clip_folder(cache, clip_id) / f"{name}.npy", mmap_mode="r" if mmap else None)


def read_vocabulary(cache: str | os.PathLike) -> list[str]:
    """The word list of the corpus a cache was made from (classifiers' label order). A cache written before
    vocabulary.json existed: the sorted words its clips say."""
    path = Path(cache) / VOCABULARY_FILE
    if path.is_file():
        return json.loads(path.read_text())
    words = {w["word"] for m in clip_metas(cache) for w in m["words"] if w["word"] not in SILENCE}
    return sorted(words)


def write_vocabulary(cache: str | os.PathLike, words: list[str]) -> None:
    write_atomic(Path(cache) / VOCABULARY_FILE, json.dumps(list(words)))
