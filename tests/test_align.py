import numpy as np
import pytest

from lipgen import media
from lipgen.data.align import align_words, spoken
from lipgen.data.corpora import SILENCE, read_align
from lipgen.errors import LipgenError

from .conftest import GRID


@pytest.mark.parametrize("name", ["bbaf2n", "bbaf3s", "bbaf4p"])
def test_forced_alignment_matches_grid_timings(name):
    given = [w for w in read_align(GRID / "s1" / "align" / f"{name}.align") if w.word not in SILENCE]
    audio = media.read_audio(GRID / "s1" / "video" / f"{name}.mp4")
    aligned = align_words(audio, [w.word for w in given])
    assert aligned[0].word == aligned[-1].word == "sil" and aligned[0].start == 0
    words = [w for w in aligned if w.word != "sil"]
    assert [w.word for w in words] == [w.word for w in given]
    errors = np.array([abs(a.start - g.start) for a, g in zip(words, given)]
                      + [abs(a.end - g.end) for a, g in zip(words, given)])
    assert np.median(errors) <= 1 and errors.max() <= 3, errors  # video frames (40 ms)
    assert all(g.start <= (a.start + a.end) / 2 < g.end for a, g in zip(words, given))  # centres inside


def test_forced_alignment_errors_name_the_problem():
    audio = media.read_audio(GRID / "s1" / "video" / "bbaf2n.mp4")
    with pytest.raises(LipgenError, match="pronouncing dictionary"):
        align_words(audio, ["bin", "qzxv"])
    with pytest.raises(LipgenError, match="transcript"):
        align_words(audio, [])


def test_a_transcripts_punctuation_is_not_read_as_words():
    assert spoken(["And", "so,", "my", "fellow", "Americans:", "-", "don't", "'quote'"]) == \
        ["and", "so", "my", "fellow", "americans", "don't", "quote"]
    audio = media.read_audio(GRID / "s1" / "video" / "bbaf2n.mp4")
    plain = align_words(audio, "bin blue at f two now".split())
    assert align_words(audio, "Bin blue, at F two now.".split()) == plain
    with pytest.raises(LipgenError, match="holds none"):
        align_words(audio, ["...", "--"])
