"""Voice activity: how likely someone is speaking, frame by frame, in any voice, room or noise.

The network is Silero VAD's (v6, MIT; trained by its authors on speech and noise in many languages):
an STFT as a convolution, four convolutions, an LSTM across 32 ms chunks, a sigmoid. Its weights come
from the PyPI package `silero-vad` (read from its TorchScript file silero_vad/data/silero_vad.jit),
installed with lipgen; nothing is downloaded. The package's own TorchScript runner calls the network once
per chunk (1.0 s for 60 s of speech on one thread); here every chunk's convolutions run as one batch and
the LSTM over the sequence, which gives the same probabilities (tests/test_vad.py) about 12x faster (60 min
of speech in 4.8 s), a block of chunks at a time, so memory stays flat in the audio's length.

lipgen.inference uses it to let the mouth rest closed where nobody speaks (`silence_gate`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .media import SAMPLE_RATE

CHUNK = 512  # samples per probability (32 ms)
CONTEXT = 64  # samples of the previous chunk each chunk also sees
BLOCK = 1875  # chunks run at a time (60 s)
THRESHOLD = 0.5  # a probability above it is speech (Silero's default)


@lru_cache(maxsize=1)
def _weights() -> dict:  # name -> tensor, and "lstm" -> the nn.LSTM holding the LSTMCell's weights
    from importlib.metadata import PackageNotFoundError, distribution

    try:  # located, not imported: importing silero_vad sets torch's thread count to 1 for the whole process
        path = Path(distribution("silero-vad").locate_file("silero_vad/data/silero_vad.jit"))
    except PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise FileNotFoundError("Silero VAD's weights are missing (package silero-vad). Reinstall lipgen's "
                                "dependencies: pip install 'silero-vad==6.2.3'")
    state = torch.jit.load(str(path), map_location="cpu").state_dict()
    w = {"stft": state["_model.stft.forward_basis_buffer"], "head.weight": state["_model.decoder.decoder.2.weight"],
         "head.bias": state["_model.decoder.decoder.2.bias"]}
    for i in range(4):
        w[f"conv{i}.weight"] = state[f"_model.encoder.{i}.reparam_conv.weight"]
        w[f"conv{i}.bias"] = state[f"_model.encoder.{i}.reparam_conv.bias"]
    lstm = torch.nn.LSTM(128, 128, batch_first=True)  # the LSTMCell's weights, the same gate order
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(lstm, f"{name}_l0").copy_(state[f"_model.decoder.rnn.{name}"])
    w["lstm"] = lstm.eval()
    return w


def _chunk_features(w: dict, x: torch.Tensor) -> torch.Tensor:
    """(N, CONTEXT + CHUNK) samples -> (N, 128) per-chunk features, before the LSTM."""
    x = F.pad(x, (0, CONTEXT), mode="reflect")[:, None]
    x = F.conv1d(x, w["stft"], stride=128)  # (N, 258, 4): real and imaginary parts
    x = torch.sqrt(x[:, :129] ** 2 + x[:, 129:] ** 2)
    for i, stride in enumerate((1, 2, 2, 1)):
        x = F.relu(F.conv1d(x, w[f"conv{i}.weight"], w[f"conv{i}.bias"], stride=stride, padding=1))
    return x[:, :, 0]


class ChunkProbability:
    """The network run over consecutive pieces of one recording: push(samples) -> the probabilities of the 32 ms
    chunks they complete ((k,) float32). It is causal (an LSTM), so pieces give what the whole recording gives."""

    def __init__(self):
        self.state, self.context, self.pending = None, torch.zeros(CONTEXT), np.zeros(0, np.float32)

    @torch.no_grad()
    def push(self, samples: np.ndarray, final: bool = False) -> np.ndarray:
        """final: the last piece; its incomplete chunk is completed with silence."""
        w = _weights()
        self.pending = np.concatenate([self.pending, np.asarray(samples, np.float32).reshape(-1)])
        n = -(-len(self.pending) // CHUNK) if final else len(self.pending) // CHUNK
        probs = np.empty(n, np.float32)
        for c0 in range(0, n, BLOCK):
            c1 = min(n, c0 + BLOCK)
            x = torch.from_numpy(self.pending[c0 * CHUNK:c1 * CHUNK].copy())
            x = F.pad(x, (0, (c1 - c0) * CHUNK - len(x)))
            chunks = torch.cat([self.context, x]).unfold(0, CONTEXT + CHUNK, CHUNK)  # (c1 - c0, 576)
            self.context = x[-CONTEXT:]
            h, self.state = w["lstm"](_chunk_features(w, chunks)[None], self.state)  # (1, c1 - c0, 128)
            logits = F.conv1d(F.relu(h[0])[:, :, None], w["head.weight"], w["head.bias"])
            probs[c0:c1] = torch.sigmoid(logits).flatten().numpy()
        self.pending = self.pending[n * CHUNK:]
        return probs


def speech_probability(samples: np.ndarray, n_frames: int | None = None, fps: int = 25,
                       gain: float = 1.0) -> np.ndarray:
    """Speech ((N,) float at 16 kHz) -> probability that someone speaks, per video frame ((n_frames,) float32;
    default: the frames the audio covers), interpolated from the 32 ms chunks' probabilities. gain: the samples are
    heard times it (clipped to full scale), a block at a time: no copy of the whole speech."""
    network = ChunkProbability()
    step = BLOCK * CHUNK
    probs = np.concatenate([network.push(np.clip(np.asarray(samples[i:i + step], np.float32) * gain, -1, 1)
                                         if gain != 1 else samples[i:i + step], final=i + step >= len(samples))
                            for i in range(0, max(len(samples), 1), step)])
    n = n_frames if n_frames is not None else int(round(len(samples) / SAMPLE_RATE * fps))
    return at_frames(probs, n, fps)


def at_frames(probs: np.ndarray, n_frames: int, fps: int = 25, offset: float = 0.0) -> np.ndarray:
    """The chunks' probabilities interpolated at n_frames video frames' centres, the first chunk starting `offset`
    frames before the first frame."""
    centres = (np.arange(len(probs)) + 0.5) * CHUNK / SAMPLE_RATE
    return np.interp((np.arange(n_frames) + offset + 0.5) / fps, centres, probs).astype(np.float32)


def silence_gate(probability: np.ndarray, margin: int, ramp: int = 3) -> np.ndarray:
    """(T,) speech probabilities -> (T,) gain in [0, 1]: 1 within `margin` frames of a speech frame (the lips
    move before the sound starts and settle after it ends), falling to 0 over `ramp` more frames, 0 beyond.
    No speech anywhere: all 0 (room tone, noise or music: the mouth rests)."""
    speech = np.flatnonzero(probability > THRESHOLD)
    if speech.size == 0:
        return np.zeros(len(probability), np.float32)
    t = np.arange(len(probability))
    after = np.searchsorted(speech, t).clip(max=speech.size - 1)  # nearest speech frame at or after t
    before = (after - 1).clip(min=0)
    distance = np.minimum(np.abs(speech[after] - t), np.abs(t - speech[before]))
    return np.clip(1 - (distance - margin) / (ramp + 1), 0, 1).astype(np.float32)
