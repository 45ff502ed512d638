"""The any-voice front end (lipgen.speech): Whisper's encoder hears the words, any length of audio is covered
window by window with the same values however it is sliced, and packed clips hear what they hear alone."""

import numpy as np
import pytest

from .conftest import GRID
from lipgen import media, speech


@pytest.fixture(scope="module")
def sentence():
    return media.read_audio(GRID / "s1" / "video" / "bbaf2n.mp4")  # "bin blue at f two now"


def test_the_encoder_is_whisper_and_hears_the_words(sentence):
    import ctranslate2

    mel = speech.whisper_log_mel(sentence)[None]
    assert mel.shape == (1, speech.N_MELS, 3000) and -1.6 < mel.min() and mel.max() < 3
    result = speech.encoder().generate(ctranslate2.StorageView.from_array(mel), [[50257, 50362]], max_length=30)
    words = "".join(result[0].sequences[0]).replace("\u0120", " ").lower()  # tiny.en: <|startoftranscript|><|notimestamps|>
    # the int8 products depend on the CPU (MKL's kernels): "bimblue f2 now." on one, "bimblu f2 now." on another
    assert "blu" in words and "now" in words, words


def test_loading_the_encoder_keeps_the_callers_thread_count():
    import torch

    threads = torch.get_num_threads()
    try:
        torch.ones(300, 300) @ torch.ones(300, 300)  # torch's thread pool started, as in any process that ran a model
        torch.set_num_threads(1)
        speech.encoder.cache_clear()
        speech.encoder()  # CTranslate2's set-up had set it back to the cores
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


def test_features_cover_any_length_the_same_however_sliced(sentence):
    long = np.tile(sentence, 24)[:70 * media.SAMPLE_RATE]  # 70 s: three windows
    n = long.size // media.SAMPLES_PER_FRAME
    feats = speech.SpeechFeatures(long, n)
    whole = feats[0:len(feats)]
    assert whole.shape == (n * speech.ROWS_PER_FRAME, speech.N_FEATURES) and np.isfinite(whole).all()
    pieces = np.concatenate([feats[r:r + 1234] for r in range(0, len(feats), 1234)])
    assert np.array_equal(pieces, whole)
    hop = speech.HOP_SECONDS * media.SAMPLE_RATE // speech.SAMPLES_PER_ROW
    # across a window boundary the features go on like one utterance: neighbours as alike as anywhere
    step = np.linalg.norm(np.diff(whole, axis=0), axis=1)
    assert step[hop - 1] < np.percentile(step, 99)
    short = speech.features(sentence)  # up to 30 s: one window, zero rows past the audio never read
    assert len(short) == sentence.size // media.SAMPLES_PER_FRAME * speech.ROWS_PER_FRAME


def test_packed_clips_hear_what_they_hear_alone(sentence, monkeypatch):
    clips = [media.fit_audio(sentence[i * 8000:], 50) for i in range(4)]  # 2 s each, 0.5 s apart: one window
    packed = speech.encode_clips(clips)
    monkeypatch.setattr(speech, "LEAD", 0)  # alone at the window's start, as the first packed clip is
    alone = [speech.features(c) for c in clips]
    assert all(p.shape == (100, speech.N_FEATURES) for p in packed)
    r = np.array([[np.corrcoef(p.ravel(), a.ravel())[0, 1] for a in alone] for p in packed])
    # Whisper's features shift with the position in its window (the first clip, at 0 in both, matches at
    # 0.97; later ones 0.5-0.65), but each packed clip is still far nearer its own sound than the others'
    assert r[0, 0] > 0.95
    for i in range(4):
        assert r[i, i] > max(np.delete(r[i], i)) + 0.15, r.round(2)


def test_speech_is_heard_as_within_a_recording_even_at_its_ends(sentence, monkeypatch):
    """An utterance that starts and ends mid-speech is heard after a lead and before a tail of silence, as the model
    was trained to hear GRID's (which begin and end in silence): the features at its ends come out nearly as they
    do for the same speech inside a longer recording. Heard bare, Whisper's features at the very start and end of
    its input come out otherwise."""
    cut = sentence[int(0.7 * media.SAMPLE_RATE):int(2.3 * media.SAMPLE_RATE)]  # "blue at f two": speech at both ends
    n = cut.size // media.SAMPLES_PER_FRAME
    rows, second = 20, media.SAMPLE_RATE  # the first and last 0.4 s
    silence = np.zeros(second, np.float32)
    inside = speech.features(np.concatenate([silence, cut, silence]), n + 50)[50:50 + 2 * n, :speech.N_ENCODER]

    def ends_alike(feats):  # how alike the ends' features are to the same speech's inside the longer recording
        a, b = feats[:, :speech.N_ENCODER], inside
        return [np.corrcoef(a[s].ravel(), b[s].ravel())[0, 1] for s in (slice(0, rows), slice(-rows, None))]

    heard = ends_alike(speech.features(cut, n))
    monkeypatch.setattr(speech, "LEAD", 0)
    monkeypatch.setattr(speech, "TAIL", 0)
    bare = ends_alike(speech.features(cut, n))
    assert min(heard) > 0.78, heard
    assert all(h > b + 0.05 for h, b in zip(heard, bare)), (heard, bare)
