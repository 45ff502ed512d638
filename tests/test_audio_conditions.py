"""scripts/audio_conditions.py's recordings: each keeps the speech's length and timing, and each changes it."""
import importlib.util
from pathlib import Path

import numpy as np

from lipgen import media

_spec = importlib.util.spec_from_file_location("audio_conditions",
                                               Path(__file__).parents[1] / "scripts" / "audio_conditions.py")
audio_conditions = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(audio_conditions)

SPEECH = Path(__file__).parent / "fixtures" / "grid" / "s1" / "video" / "bbaf3s.mp4"


def _envelope(x):
    return np.sqrt(np.mean(np.asarray(x[: x.size // 640 * 640]).reshape(-1, 640) ** 2, axis=1))  # per 40 ms frame


def test_every_condition_keeps_the_speech_in_place_and_changes_it():
    x = media.read_audio(SPEECH).astype(np.float64)
    other = np.roll(x, 8000)
    made = audio_conditions.conditions(x, other, np.random.default_rng(0))
    assert made["clean"] is x and len(made) >= 12
    for name, y in made.items():
        assert y.shape == x.shape and np.isfinite(y).all(), name
        if name == "clean":
            continue
        assert not np.allclose(y, x, atol=1e-3), name
        if "SNR" not in name and "room" not in name:  # speech still on top: its loudness rises and falls in step
            assert np.corrcoef(_envelope(y), _envelope(x))[0, 1] > 0.8, name
    for name in ("phone call (AMR-NB 12.2 kbit/s, 8 kHz)", "MP3 32 kbit/s"):  # a codec keeps the timing (no lag)
        y = made[name]
        lags = range(-640, 641, 80)
        best = max(lags, key=lambda k: np.dot(np.roll(y, k)[2000:-2000], x[2000:-2000]))
        assert abs(best) <= 160, (name, best)
    assert np.abs(made["clipped: 12 dB over full scale"]).max() <= 1.0
