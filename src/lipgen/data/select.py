"""Phoneme-based training-sample selection (CRGAN, Song et al. 2018, arXiv 1804.04786 v1).

Each clip's phonemes come from its transcript through the CMU pronouncing dictionary (the copy that
ships with pocketsphinx, 39 ARPAbet phones without stress). `select_clips` then picks a subset whose
phoneme histogram matches the full set's, greedily: each step adds the clip that brings the subset's
normalised histogram closest (L1) to the target, after first making sure every phoneme of the full
set is covered. The result is a manifest that `lipgen train --clips` accepts.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import check_number
from .cache import VOCABULARY_FILE, clip_metas
from .corpora import SILENCE, Utterance, write_manifest

log = logging.getLogger(__name__)
CACHE_FILES = ("manifest.jsonl", "report.json", "corpus.json", VOCABULARY_FILE)  # a cache's own files at its top


@functools.cache
def pronouncing_dictionary() -> dict[str, list[str]]:
    """word -> phones, from pocketsphinx's cmudict-en-us.dict (first pronunciation of each word)."""
    import pocketsphinx

    path = Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"
    words: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        word, *phones = line.split()
        if "(" not in word:  # "(2)" marks alternative pronunciations
            words.setdefault(word.lower(), phones)
    return words


def phonemes(words: list[str], unknown: set[str] | None = None) -> list[str]:
    """Phones of a word sequence. A word the dictionary lacks (a name, a typo) raises KeyError naming it, or, with
    `unknown` given, is added to it and contributes no phones."""
    lexicon = pronouncing_dictionary()
    out = []
    for w in words:
        if w in SILENCE:
            continue
        if w.lower() not in lexicon:
            if unknown is None:
                raise KeyError(f"'{w}' is not in the pronouncing dictionary: its clip cannot be phonemised")
            unknown.add(w)
            continue
        out += lexicon[w.lower()]
    return out


@functools.cache
def phone_set() -> list[str]:
    return sorted({p for phones in pronouncing_dictionary().values() for p in phones})


@functools.cache
def _said_unknown(words: tuple[str, ...]) -> None:
    log.warning("%d word(s) not in the pronouncing dictionary count no phones (their clips are matched by their "
                "other words): %s", len(words), ", ".join(words[:10]) + (" ..." if len(words) > 10 else ""))


def phoneme_counts(utterances: list[Utterance]) -> np.ndarray:
    """(N, P) phone counts per clip, P = len(phone_set()); words the dictionary lacks are left out (warned once)."""
    index = {p: i for i, p in enumerate(phone_set())}
    counts = np.zeros((len(utterances), len(index)))
    unknown: set[str] = set()
    for n, u in enumerate(utterances):
        for p in phonemes([w.word for w in u.words], unknown):
            counts[n, index[p]] += 1
    if unknown:
        _said_unknown(tuple(sorted(unknown)))
    return counts


def histogram_distance(counts: np.ndarray, chosen: np.ndarray) -> float:
    """L1 distance (0..2) between the phone distribution of the chosen rows and of all rows."""
    target = counts.sum(0) / counts.sum()
    subset = counts[chosen].sum(0)
    return float(np.abs(subset / subset.sum() - target).sum())


def select_clips(utterances: list[Utterance], size: int, method: str = "match", seed: int = 0) -> list[Utterance]:
    """Pick `size` clips. method "match": greedy phoneme-histogram matching with full coverage;
    "random": a uniform random subset (the baseline selection is compared with)."""
    if not 0 < size <= len(utterances):
        raise ValueError(f"size must be in 1..{len(utterances)}, got {size}")
    rng = np.random.default_rng(seed)
    if method == "random":
        return [utterances[i] for i in sorted(rng.choice(len(utterances), size, replace=False))]
    if method != "match":
        raise ValueError(f"unknown selection method {method!r}: match or random")
    counts = phoneme_counts(utterances)
    target = counts.sum(0) / counts.sum()
    chosen: list[int] = []
    subset = np.zeros(counts.shape[1])
    free = np.ones(len(utterances), bool)
    for phone in np.argsort(counts.sum(0)):  # coverage first: the rarest phones' clips
        if counts[:, phone].sum() and not subset[phone]:
            i = int(np.flatnonzero(free & (counts[:, phone] > 0))[0])
            chosen.append(i)
            free[i] = False
            subset += counts[i]
    while len(chosen) < size:
        candidates = np.flatnonzero(free)
        trial = subset[None] + counts[candidates]  # (C, P)
        dist = np.abs(trial / trial.sum(1, keepdims=True) - target).sum(1)
        i = int(candidates[np.argmin(dist + 1e-9 * rng.random(len(candidates)))])
        chosen.append(i)
        free[i] = False
        subset += counts[i]
    return [utterances[i] for i in sorted(chosen[:size])]


def select(cache: str | os.PathLike, out: str | os.PathLike, size: int | None = None, fraction: float | None = None,
           method: str = "match", split: str = "train", seed: int = 0) -> dict:
    """Select from the cached clips of a split (those with a transcript) and write a manifest to `out`: `size`
    clips, or a `fraction` of them (default half).

    Returns {size, of, method, distance (L1 of phone histograms, selected vs all), coverage}."""
    if size is not None and fraction is not None:
        raise ValueError("give --size or --fraction, not both")
    if size is not None:
        check_number("--size (clips to keep)", size, 1, integer=True)
    fraction = 0.5 if fraction is None else fraction
    if size is None and not 0 < fraction <= 1:
        raise ValueError(f"--fraction {fraction}: give a share of the clips above 0 and at most 1")
    check_number("--seed", seed, 0, integer=True)
    if Path(out).is_dir():
        raise ValueError(f"--out {out} is a folder: give the manifest's file path, e.g. {Path(out) / 'selected.jsonl'}")
    if not Path(cache).is_dir():
        raise FileNotFoundError(f"{cache}: no such cache folder. Make one with `lipgen preprocess`, or check the path.")
    if Path(out).resolve().parent == Path(cache).resolve() and Path(out).name in CACHE_FILES:
        raise ValueError(f"--out {out} is the cache's own {Path(out).name}; writing it would change the cache. "
                         f"Give another name, e.g. {Path(out).with_name('selected.jsonl')}.")
    metas = clip_metas(cache)
    from .corpora import Word

    utterances = []
    for m in metas:  # matching reads the clips' words; a random choice needs none
        if m["split"] == split and (method == "random" or any(w["word"] not in SILENCE for w in m["words"])):
            fields = {k: m[k] for k in ("id", "speaker", "path", "split", "speaker_split")}
            utterances.append(Utterance(words=[Word(**w) for w in m["words"]], **fields))
    if not utterances:
        raise ValueError(f"{cache}: no cached {split} clips with transcripts to select from (phoneme matching reads "
                         "their words; --method random needs none)" if method != "random" else
                         f"{cache}: no cached {split} clips to select from")
    size = size if size is not None else max(1, round(fraction * len(utterances)))
    chosen = select_clips(utterances, size, method, seed)
    counts = phoneme_counts(utterances)
    ids = {u.id for u in chosen}
    mask = np.array([u.id in ids for u in utterances])
    covered = (counts[mask].sum(0) > 0).sum() / max((counts.sum(0) > 0).sum(), 1)
    write_manifest(chosen, out)  # last: a failed run leaves no manifest
    said = counts.sum() > 0 and counts[mask].sum() > 0  # phones to compare (none without transcripts)
    return {"size": len(chosen), "of": len(utterances), "method": method,
            "distance": round(histogram_distance(counts, mask), 4) if said else None,
            "coverage": round(float(covered), 4) if said else None}
