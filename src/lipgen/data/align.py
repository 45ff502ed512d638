"""Word timings for clips whose transcript is known but untimed (GRID's s4 and others: the file name
spells the sentence), by forced alignment with pocketsphinx: its US English acoustic model and CMU
dictionary ship in the package, so this runs offline.

Checked against GRID's own .align timings on s1: `python scripts/alignment_quality.py`.
"""

from __future__ import annotations

import functools
import re

import numpy as np

from ..errors import LipgenError
from ..media import SAMPLE_RATE, VIDEO_FPS
from .corpora import Word

SPHINX_FRAMES_PER_SECOND = 100  # pocketsphinx's 10 ms frames
NON_WORDS = {"<sil>", "<s>", "</s>", "[noise]"}
SILENCE_PROBABILITY = 0.1


@functools.cache
def _decoder():
    from pocketsphinx import Decoder

    # the bundled en-us model and dictionary; silprob raised from 0.005 so that a long opening silence is
    # not swallowed by the first word (seen on GRID s1/bbaf4p: "bin" began 17 frames early)
    return Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", silprob=SILENCE_PROBABILITY)


def spoken(words: list[str]) -> list[str]:
    """A transcript's words as the pronouncing dictionary spells them: lower case, punctuation dropped (a word's
    own apostrophe kept: "don't"), a word of punctuation alone gone."""
    cleaned = (re.sub(r"[^\w']+", "", w.lower()).strip("'") for w in words)
    return [w for w in cleaned if w]


def align_words(audio: np.ndarray, words: list[str]) -> list[Word]:
    """Mono float audio at SAMPLE_RATE + the words it says -> those words with start/end in video frames,
    and the pauses between them as 'sil'. Raises LipgenError if a word is not in the dictionary or the
    audio cannot be aligned to the words."""
    if not words:
        raise LipgenError("forced alignment needs the clip's transcript: no words given")
    decoder = _decoder()
    text = " ".join(spoken(words))
    if not text:
        raise LipgenError(f"forced alignment needs words, and the transcript holds none: {' '.join(words)!r}")
    try:
        decoder.set_align_text(text)
    except (RuntimeError, ValueError, KeyError) as e:
        raise LipgenError(f"cannot align '{text}': {e} (a word missing from the pronouncing dictionary?)") from e
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    scale = VIDEO_FPS / SPHINX_FRAMES_PER_SECOND
    timed = []
    for seg in decoder.seg() or []:  # None where no alignment was found
        word = "sil" if seg.word.lower() in NON_WORDS else seg.word.split("(")[0].lower()  # "word(2)": variant
        start, end = seg.start_frame * scale, (seg.end_frame + 1) * scale
        if word == "sil" and timed and timed[-1].word == "sil":  # one span per pause
            timed[-1].end = end
        else:
            timed.append(Word(word, start, end))
    if [w.word for w in timed if w.word != "sil"] != text.split():
        raise LipgenError(f"forced alignment failed for '{text}' (the audio does not fit the transcript): "
                          "check that the transcript is right and the audio is speech")
    return timed
