"""Speech features that do not know who speaks, and the augmentation that teaches a model so.

GRID gives lipgen five voices from one quiet studio; the wild brings other voices, microphones, rooms,
noise and languages. Two things keep a model trained on GRID from hinging on its voices:

- `features`: log-mel with per-utterance mean and variance normalisation (CMVN: a microphone's
  colouring and a voice's average spectrum are constant offsets per mel bin, so they cancel) plus one
  loudness row (energy relative to the utterance's speech level: identity-free, it opens the mouth in
  speech and closes it in silence).
- `augment`: what the wild does to speech, applied to training audio: gain, reverberation from
  synthetic room responses, band-limiting (phones, laptops), lossy quantisation and telephone
  bandwidth, additive noise of several colours and babble at 0-30 dB SNR; and `warp_vocal_tract`
  (VTLP: the mel axis stretched by 0.85-1.15, i.e. shorter and longer vocal tracts: other voices).
Tempo changes need the video timeline stretched too, so the motion dataset does those.

Shapes: N audio samples at SAMPLE_RATE, T video frames, MELS_PER_FRAME rows per frame, F = N_FEATURES.
"""

from __future__ import annotations

import numpy as np

from .media import HOP_LENGTH, MELS_PER_FRAME, N_MELS, SAMPLE_RATE, SAMPLES_PER_FRAME, log_mel, speech_gain

N_FEATURES = N_MELS + 1  # CMVN log-mel bins + the loudness row
LOUDNESS_FLOOR_DB = -60.0  # loudness row: energy below the speech level, clipped here, mapped to [-1, 0]
CMVN_EPS = 1e-3
STATS_ROWS = 6000  # rows (1 min) of log-mel read at a time when Features gathers its statistics


SPEECH_LEVEL_PERCENTILE = 95  # the speech level: this percentile of the hops' energy


def hop_db(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """Energy of every 10 ms hop in dB (full scale 0): (n_frames * MELS_PER_FRAME,) float64. Audio past n_frames
    is ignored, missing audio counts as silence; computed a block at a time, so memory beyond the result does
    not grow with the audio's length."""
    hops = n_frames * MELS_PER_FRAME
    db = np.full(hops, -120.0)  # silence (10 * log10(1e-12))
    step = 1 << 12  # hops per block (41 s: 5 MB of float64 samples)
    for h0 in range(0, min(hops, audio.size // HOP_LENGTH + 1), step):
        x = np.asarray(audio[h0 * HOP_LENGTH:(h0 + step) * HOP_LENGTH], np.float64)
        x = np.pad(x, (0, -x.size % HOP_LENGTH))
        energy = np.mean(x.reshape(-1, HOP_LENGTH) ** 2, axis=1)
        db[h0:h0 + energy.size] = 10 * np.log10(energy[:hops - h0] + 1e-12)
    return db


def relative_loudness(db: np.ndarray, level_db) -> np.ndarray:
    """Hop energies (dB) relative to a speech level (dB), in [-1, 0]: the loudness row."""
    return (np.clip(db - level_db, LOUDNESS_FLOOR_DB, 0) / -LOUDNESS_FLOOR_DB).astype(np.float32)


def loudness(audio: np.ndarray, n_frames: int, level_db: float | None = None) -> np.ndarray:
    """Energy of every 10 ms hop relative to the utterance's speech level (its 95th percentile; or level_db, a level
    measured elsewhere: a stream's so far), in [-1, 0] (0 = as loud as speech gets, -1 = LOUDNESS_FLOOR_DB or
    quieter): (n_frames * MELS_PER_FRAME,)."""
    db = hop_db(audio, n_frames)
    return relative_loudness(db, np.percentile(db, SPEECH_LEVEL_PERCENTILE) if level_db is None else level_db)


def cmvn(mel: np.ndarray) -> np.ndarray:
    """Per-bin mean and variance normalisation over the utterance: (R, M) -> (R, M) float32."""
    return ((mel - mel.mean(0)) / (mel.std(0) + CMVN_EPS)).astype(np.float32)


def features(audio: np.ndarray, n_frames: int | None = None, vtlp: float = 1.0) -> np.ndarray:
    """Speaker-normalised features: (n_frames * MELS_PER_FRAME, N_FEATURES) float32, rows as log_mel's.

    audio: (N,) float32 at SAMPLE_RATE; n_frames defaults to floor(N / SAMPLES_PER_FRAME).
    vtlp: vocal-tract warp factor for augmentation (1 = none).
    """
    mel = log_mel(audio, n_frames)
    if vtlp != 1.0:
        mel = warp_vocal_tract(mel, vtlp)
    return np.concatenate([cmvn(mel), loudness(audio, len(mel) // MELS_PER_FRAME)[:, None]], axis=1)


class Features:
    """`features(audio, n_frames)` of a long utterance, computed a slice of rows at a time when indexed
    (`feats[r0:r1]`, the same values as the whole array's rows), so that memory does not grow with the
    audio's length: one pass over the audio gathers the utterance's statistics (CMVN, speech level), each
    slice then computes only its own rows. len() is the number of rows, 4 per video frame."""

    def __init__(self, audio: np.ndarray, n_frames: int | None = None):
        self.audio = np.asarray(audio, np.float32)
        self.n_frames = self.audio.size // SAMPLES_PER_FRAME if n_frames is None else n_frames
        self.gain = speech_gain(self.audio)
        self.loudness = loudness(self.audio, self.n_frames)
        total, total_sq = np.zeros(N_MELS), np.zeros(N_MELS)
        for r0 in range(0, len(self), STATS_ROWS):
            mel = self._mel(r0, min(r0 + STATS_ROWS, len(self)))
            total += mel.sum(0, dtype=np.float64)
            total_sq += np.square(mel, dtype=np.float64).sum(0)
        self.mean = total / len(self)
        self.std = np.sqrt(np.maximum(total_sq / len(self) - self.mean ** 2, 0))

    def __len__(self) -> int:
        return self.n_frames * MELS_PER_FRAME

    def _mel(self, r0: int, r1: int) -> np.ndarray:
        return log_mel(self.audio, self.n_frames, rows=(r0, r1), gain=self.gain)

    def __getitem__(self, rows: slice) -> np.ndarray:
        r0, r1, step = rows.indices(len(self))
        if step != 1:
            raise IndexError("Features takes contiguous row slices")
        out = np.empty((max(r1 - r0, 0), N_FEATURES), np.float32)
        if r1 > r0:
            out[:, :N_MELS] = (self._mel(r0, r1) - self.mean) / (self.std + CMVN_EPS)
            out[:, N_MELS] = self.loudness[r0:r1]
        return out


def warp_vocal_tract(mel: np.ndarray, alpha: float) -> np.ndarray:
    """Stretch the mel axis by alpha (VTLP, Jaitly & Hinton 2013): bin b takes the value at b / alpha."""
    bins = np.arange(mel.shape[1], dtype=np.float64)
    src = np.clip(bins / alpha, 0, mel.shape[1] - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, mel.shape[1] - 1)
    w = (src - lo).astype(np.float32)
    return mel[:, lo] * (1 - w) + mel[:, hi] * w


def room_response(rng: np.random.Generator, rt60: float) -> np.ndarray:
    """A synthetic room impulse response: a direct path and exponentially decaying noise (RT60 seconds)."""
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    tail[: int(0.003 * SAMPLE_RATE)] = 0  # first reflections arrive after ~3 ms
    ir = tail * 10 ** (rng.uniform(-12, -3) / 20) / np.sqrt(np.sum(tail ** 2) + 1e-12)
    ir[0] = 1.0
    return ir


def coloured_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """White, pink or brown noise (power falling as f^0, f^-1, f^-2), unit RMS."""
    exponent = rng.choice([0.0, 1.0, 2.0])
    spectrum = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    x = np.fft.irfft(spectrum / f ** (exponent / 2), n)
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def augment(audio: np.ndarray, rng: np.random.Generator, babble: np.ndarray | None = None) -> np.ndarray:
    """One random draw of what the wild does to speech: (N,) -> (N,) float32, same length.

    babble: other speech (any length) to mix in as background talkers.
    """
    from scipy import signal  # training only: generation need not load it (~50 MB)

    x = np.asarray(audio, np.float64)
    n = x.size
    if rng.random() < 0.4:  # a room
        x = signal.fftconvolve(x, room_response(rng, rng.uniform(0.15, 0.8)))[:n]
    if rng.random() < 0.4:  # a small or cheap microphone, a phone line
        low = rng.uniform(80, 400)
        high = rng.uniform(2800, 7500)
        x = signal.sosfilt(signal.butter(4, [low, high], btype="band", fs=SAMPLE_RATE, output="sos"), x)
    if rng.random() < 0.6:  # noise or other talkers
        speech_rms = np.sqrt(np.mean(x ** 2)) + 1e-9
        if babble is not None and babble.size and rng.random() < 0.4:
            start = rng.integers(0, max(1, babble.size - n))
            noise = np.resize(babble[start:start + n], n).astype(np.float64)
            noise /= np.sqrt(np.mean(noise ** 2)) + 1e-9
        else:
            noise = coloured_noise(rng, n)
        snr_db = rng.uniform(0, 30)
        x = x + noise * speech_rms * 10 ** (-snr_db / 20)
    if rng.random() < 0.2:  # lossy: 8-bit mu-law, or 8 kHz telephone bandwidth
        if rng.random() < 0.5:
            peak = np.abs(x).max() + 1e-9
            mu = 255.0
            y = np.sign(x / peak) * np.log1p(mu * np.abs(x / peak)) / np.log1p(mu)
            y = np.round(y * 127) / 127
            x = np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu * peak
        else:
            x = signal.resample_poly(signal.resample_poly(x, 1, 2), 2, 1)[:n]
    x = x * 10 ** (rng.uniform(-20, 10) / 20)  # gain
    return np.clip(x, -1, 1).astype(np.float32)


def stretch(audio: np.ndarray, rate: float) -> np.ndarray:
    """Play audio `rate` times faster (pitch moves with it, like a tape): (N,) -> (~N / rate,) float32."""
    from scipy import signal

    up, down = int(round(100 / rate)), 100
    return signal.resample_poly(np.asarray(audio, np.float64), up, down).astype(np.float32)
