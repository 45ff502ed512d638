"""Voice activity (lipgen.vad): Silero VAD's network run in batches, and the gate that lets the mouth rest."""

import numpy as np
import torch

from lipgen import media, vad
from lipgen.evaluation.portraits import DEFAULT_SPEECH, prepare_speech
from lipgen.generate import SAMPLE_AUDIO


def test_batched_network_gives_the_packages_own_probabilities():
    threads = torch.get_num_threads()
    from silero_vad import load_silero_vad  # its import sets torch to one thread

    torch.set_num_threads(threads)
    reference = load_silero_vad()
    audio = np.tile(media.read_audio(SAMPLE_AUDIO), 2)  # 22 s: crosses a block when blocks are short
    with torch.no_grad():
        expected = reference.audio_forward(torch.from_numpy(audio), vad.SAMPLE_RATE)[0].numpy()
    chunk_rate = vad.SAMPLE_RATE / vad.CHUNK
    original = vad.BLOCK
    try:
        vad.BLOCK = 100  # the LSTM state and the context carried from block to block
        got = vad.speech_probability(audio, len(expected), fps=chunk_rate)
    finally:
        vad.BLOCK = original
    assert np.abs(got - expected).max() < 1e-4 and expected.max() > 0.9 and expected.min() < 0.1


def test_speech_and_silence_of_timed_grid_sentences():
    audio, silent = prepare_speech(DEFAULT_SPEECH)  # three GRID sentences, silences by their word timings
    p = vad.speech_probability(audio, len(silent))
    assert np.mean((p > vad.THRESHOLD) == ~silent) > 0.85
    assert p[~silent].mean() > 0.7 and p[silent].mean() < 0.4


def test_silence_gate():
    p = np.zeros(30, np.float32)
    p[10:14] = 0.9  # a word
    gate = vad.silence_gate(p, margin=2, ramp=1)
    assert (gate[8:16] == 1).all()  # the word and 2 frames either side
    assert gate[7] == gate[16] == 0.5 and (gate[:7] == 0).all() and (gate[17:] == 0).all()
    assert (vad.silence_gate(np.zeros(5), 2) == 0).all()  # nobody speaks at all: the mouth rests


def test_quiet_speech_is_heard_and_noise_is_not(caplog):
    """The mouth's gate (inference.silence_gain) hears speech at any level (Silero's network alone missed a whole
    first word at -70 dBFS), and where it hears none at all, room tone or noise, the mouth rests closed, with a
    warning (it used to talk through the noise)."""
    from lipgen.inference import silence_gain

    audio = media.read_audio(SAMPLE_AUDIO)[: 6 * media.SAMPLE_RATE]
    n = 150
    loud = silence_gain(audio, n)
    quiet = audio / np.sqrt(np.mean(audio ** 2)) * 10 ** (-70 / 20)  # -70 dBFS
    assert (vad.speech_probability(quiet, n) > vad.THRESHOLD).sum() < 0.8 * (loud > 0.5).sum()  # the network alone
    assert np.array_equal(silence_gain(quiet, n) > 0.5, loud > 0.5)
    noise = np.random.default_rng(0).normal(0, 10 ** (-70 / 20), audio.size).astype(np.float32)
    with caplog.at_level("WARNING"):
        assert (silence_gain(noise, n) == 0).all()
    assert "no speech heard" in caplog.text
