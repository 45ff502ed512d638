"""scripts/voice_probe.py's per-band split: where a prediction's correlation with the real opening is made or lost."""
import importlib.util
from pathlib import Path

import numpy as np

_spec = importlib.util.spec_from_file_location("voice_probe", Path(__file__).parents[1] / "scripts" / "voice_probe.py")
voice_probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(voice_probe)


def test_bands_put_each_rhythm_in_its_band_and_correlate_within_it():
    t = np.arange(200) / 25.0  # 8 s at 25 fps
    slow, syllables = np.sin(2 * np.pi * 0.5 * t), np.sin(2 * np.pi * 5.0 * t)
    real = slow + syllables
    bands = voice_probe._bands(slow - syllables, real)  # the slow rhythm right, the syllables inverted
    names = [f"{lo}-{hi}" for lo, hi in voice_probe.BANDS_HZ]
    share = bands[:, 0] / bands[:, 0].sum()
    assert share[names.index("0-1")] > 0.45 and share[names.index("4-6")] > 0.45
    assert bands[names.index("0-1"), 2] > 0.99
    assert bands[names.index("4-6"), 2] < -0.99
    assert np.isnan(bands[names.index("1-2.5"), 2])  # nothing in the band: no correlation to report
