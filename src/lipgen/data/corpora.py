"""Corpora as manifests: one Utterance per clip, with speaker, words and timings, and splits.

Supported layouts:
- GRID: <root>/<speaker>/**/<utt>.(mp4|mpg|...), word timings in <root>/<speaker>/align/<utt>.align
  (times in 1/25000 s); without an .align, the words come from the file name's grammar, untimed
  (preprocessing then times them by forced alignment, lipgen.data.align).
- LRW: <root>/<WORD>/{train,val,test}/<WORD>_00001.mp4 (+ optional .txt with "Duration: 0.53 seconds").
- folder: any videos with sound under <root>; the speaker is the name of the folder under <root> that holds the
  clip ("unknown" for clips directly in <root>); an optional <clip>.txt beside a clip holds its transcript, untimed
  (preprocessing times it by forced alignment).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..files import write_atomic
from ..media import VIDEO_FPS, VIDEO_SUFFIXES

log = logging.getLogger(__name__)

ALIGN_UNITS_PER_FRAME = 1000  # GRID .align times are 1/25000 s: 1000 units per 25 fps frame
SILENCE = {"sil", "sp"}
LRW_CLIP_FRAMES = 29  # every LRW clip: 1.16 s at 25 fps
SPLIT_SHARES = {"test": 0.05, "val": 0.05}  # utterance split; the rest is train

# GRID's grammar: the six letters of a file name spell the sentence
GRID_WORDS = [
    {"b": "bin", "l": "lay", "p": "place", "s": "set"},
    {"b": "blue", "g": "green", "r": "red", "w": "white"},
    {"a": "at", "b": "by", "i": "in", "w": "with"},
    {c: c for c in "abcdefghijklmnopqrstuvxyz"},
    {"1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven", "8": "eight",
     "9": "nine", "z": "zero"},
    {"a": "again", "n": "now", "p": "please", "s": "soon"},
]
GRID_VOCABULARY = sorted({w for slot in GRID_WORDS for w in slot.values()})  # 51 words


@dataclass
class Word:
    """A spoken word; start/end in 25 fps video frames (floats), None when untimed."""

    word: str
    start: float | None = None
    end: float | None = None


@dataclass
class Utterance:
    id: str  # unique within the corpus: "<speaker>/<utterance>"
    speaker: str
    path: str
    words: list[Word] = field(default_factory=list)
    split: str = "train"  # by utterance: train / val / test
    speaker_split: str = "train"  # by speaker: a held-out speaker's clips are all "test"

    @property
    def transcript(self) -> str:
        return " ".join(w.word for w in self.words if w.word not in SILENCE)


def utterance_split(key: str, shares: dict[str, float] = SPLIT_SHARES) -> str:
    """Deterministic split from a hash of the key (stable across machines and runs)."""
    u = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 16**8
    for name, share in shares.items():
        if u < share:
            return name
        u -= share
    return "train"


def _utterance(uid: str, speaker: str, path: Path, words: list[Word], test_speakers: tuple[str, ...]) -> Utterance:
    """A clip split by a hash of its id, or, for a held-out speaker (--test-speakers), test whatever its hash: its
    speaker is never trained on, and `lipgen evaluate` reports it in a row of its own."""
    held_out = speaker in test_speakers
    return Utterance(uid, speaker, str(path), words, "test" if held_out else utterance_split(uid),
                     "test" if held_out else "train")


def grid_words_from_name(stem: str) -> list[Word] | None:
    """'bbaf2n' -> bin blue at f two now (untimed); None if the name does not follow GRID's grammar."""
    if len(stem) != 6:
        return None
    words = []
    for letter, slot in zip(stem.lower(), GRID_WORDS):
        if letter not in slot:
            return None
        words.append(Word(slot[letter]))
    return words


def read_align(path: Path) -> list[Word]:
    """GRID .align file -> words (silences included) with times in video frames."""
    words = []
    for number, line in enumerate(Path(path).read_text().split("\n"), 1):
        parts = line.split()
        if len(parts) == 3:
            start, end, word = parts
            try:
                words.append(Word(word, int(start) / ALIGN_UNITS_PER_FRAME, int(end) / ALIGN_UNITS_PER_FRAME))
            except ValueError:
                raise ValueError(f"{path}, line {number}: not a GRID alignment line ('start end word', times in "
                                 f"1/25000 s): {line.strip()!r}. Fix or remove the .align file.") from None
        elif parts:
            raise ValueError(f"{path}, line {number}: not a GRID alignment line ('start end word'): "
                             f"{line.strip()!r}. Fix or remove the .align file.")
    if not words:
        raise ValueError(f"{path}: no words in it (GRID alignment lines read 'start end word'). Fix or remove it.")
    return words


def _videos(root: Path) -> list[Path]:
    found = []
    for folder, _, files in os.walk(root, followlinks=True):  # corpora are often symlinked in
        found += [Path(folder) / f for f in files if Path(f).suffix.lower() in VIDEO_SUFFIXES]
    return sorted(found)


def grid(root: str | os.PathLike, test_speakers: tuple[str, ...] = ()) -> list[Utterance]:
    root = Path(root)
    out = []
    for path in _videos(root):
        speaker = path.relative_to(root).parts[0]
        align = root / speaker / "align" / f"{path.stem}.align"
        words = None
        if align.is_file():
            try:
                words = read_align(align)
            except ValueError as e:  # one bad file does not end the corpus: its words are the name's, untimed
                log.warning("%s; its words are taken from the clip's name, untimed", e)
        if words is None:
            words = grid_words_from_name(path.stem) or []
        uid = f"{speaker}/{path.stem}"
        out.append(_utterance(uid, speaker, path, words, test_speakers))
    return out


def lrw(root: str | os.PathLike, test_speakers: tuple[str, ...] = ()) -> list[Utterance]:
    root = Path(root)
    out = []
    for path in _videos(root):
        word, split = path.parent.parent.name, path.parent.name
        words = [Word(word.lower())]
        info = path.with_suffix(".txt")
        if info.is_file():  # LRW clips are 29 frames with the word centred; the .txt gives its duration
            for line in info.read_text().splitlines():
                if line.startswith("Duration:"):
                    half = float(line.split()[1]) * VIDEO_FPS / 2
                    words = [Word(word.lower(), LRW_CLIP_FRAMES / 2 - half, LRW_CLIP_FRAMES / 2 + half)]
        out.append(Utterance(f"{word}/{split}/{path.stem}", "lrw", str(path), words,
                             {"train": "train", "val": "val", "test": "test"}.get(split, "train"), "train"))
    return out


def folder(root: str | os.PathLike, test_speakers: tuple[str, ...] = ()) -> list[Utterance]:
    root = Path(root)
    out = []
    for path in _videos(root):
        rel = path.relative_to(root)
        speaker = rel.parts[0] if len(rel.parts) > 1 else "unknown"
        uid = str(rel.with_suffix(""))
        text = path.with_suffix(".txt")
        words = [Word(w) for w in re.findall(r"[a-z0-9']+", text.read_text(errors="replace").lower())] \
            if text.is_file() else []
        out.append(_utterance(uid, speaker, path, words, test_speakers))
    return out


CORPORA = {"grid": grid, "lrw": lrw, "folder": folder}


def vocabulary(kind: str, utterances: list[Utterance]) -> list[str]:
    """The word list of a corpus, sorted: GRID's grammar (51 words, whichever clips are present); LRW's word
    folders; a folder's transcript words."""
    if kind == "grid":
        return list(GRID_VOCABULARY)
    return sorted({w.word for u in utterances for w in u.words if w.word not in SILENCE})


def load_corpus(kind: str, root: str | os.PathLike, test_speakers: tuple[str, ...] = ()) -> list[Utterance]:
    """Build the manifest of a corpus. kind: one of CORPORA."""
    if kind not in CORPORA:
        raise ValueError(f"unknown corpus kind {kind!r}: choose one of {sorted(CORPORA)}")
    if not Path(root).is_dir():
        raise FileNotFoundError(f"{root}: no such folder. Point --root at the corpus folder.")
    utterances = CORPORA[kind](root, tuple(test_speakers))
    if not utterances:
        raise FileNotFoundError(f"{root}: no videos found ({', '.join(sorted(VIDEO_SUFFIXES))}).")
    return utterances


def write_manifest(utterances: list[Utterance], path: str | os.PathLike) -> None:
    """JSON lines, one utterance each; written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, "".join(json.dumps(asdict(u)) + "\n" for u in utterances))


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    out = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            d["words"] = [Word(**w) for w in d["words"]]
            out.append(Utterance(**d))
    return out
