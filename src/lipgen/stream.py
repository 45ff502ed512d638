"""Real-time generation: speech arrives in chunks, frames leave as soon as they are made.

    lipgen stream --audio speech.wav --face photo.jpg -o live.mp4     # the file played at real-time pace
    arecord -f S16_LE -r 16000 -c 1 | lipgen stream --audio - -o live.mp4   # raw 16 kHz mono PCM on stdin
    lipgen stream --mic -o live.mp4                                   # a microphone (needs `sounddevice`)

The face is prepared once (tracked, its rest shape and colours found) and every frame is drawn from it.
Every audio step is causal: the log-mel gain and the loudness row's speech level are the 95th percentile of
the energy heard in the last LEVEL_SECONDS, and the per-bin normalisation (CMVN) is a running mean and
variance started from a prior (the bundled speech's statistics, worth PRIOR_SECONDS of audio). The motion
model itself hears `context_frames` frames on each side (the shipped model 7, the log-mel one 19) and smooths its
output over 3 more, and a frame's log-mel reaches into the next frame, so a frame can be made only once
lookahead_frames() more frames of audio have arrived: 11 frames, 440 ms, for the shipped model (23, 920 ms, for
the log-mel one). It then runs over a sliding window of
PAST_FRAMES frames before the new ones plus that look-ahead. A smaller `lookahead` lowers the latency; the
model then sees nothing past what has arrived, and its motion differs more from the whole-file one.

Only the motion model streams (the crop models normalise loudness over the whole utterance and draw 16-frame
windows). The shipped one hears speech through Whisper's encoder (lipgen.speech), which attends over all the audio
it is given: streamed, every WHISPER_EVERY frames the encoder hears the last WHISPER_SECONDS of audio that has
arrived, and the new frames are made from those features once lookahead_frames() more frames have arrived (the
frames at the very end of what was heard, which Whisper hears with no future, only feed the model's context). On
the 17 validation clips of strangers this follows the real speakers' mouths at 0.354 against 0.358 for the whole
file at once (model space, `scripts/voice_probe.py --stream`); the log-mel motion model (`--checkpoint` of a model
trained with `--preset mel`, STREAM_CHECKPOINT), which streamed before session 26, follows them at 0.174 streamed
(docs/eval/unseen/README.md, "Session 26"). Output is at media.VIDEO_FPS.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import logging
import math
import os
import queue
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from . import ASSETS, media
from .errors import LipgenError
from .voice import hop_db

log = logging.getLogger(__name__)

CHUNK_SAMPLES = 320  # 20 ms: the size of the chunks a file or stdin is delivered in
HEAD_BYTES = 4096  # bytes of stdin looked at before any is taken for raw PCM (128 ms of it)
KEEP_FLAGS = 500  # frames whose speech flags are kept for the silence gate (20 s: more than any look-ahead)
PRIOR_SECONDS = 1.0  # the CMVN prior weighs as much as this much speech
PAST_FRAMES = 50  # frames before the new ones that the model's window includes (2 s: its GroupNorm statistics)
ENCODE_QUEUE = 8  # frames drawn but not yet encoded, at most
ARRIVAL_QUEUE = 250  # chunks (5 s) arrived but not yet used, at most: a faster source waits, memory stays flat
STREAM_PRESET = "ultrafast"  # x264 preset of the streamed mp4
LEVEL_SECONDS = 60.0  # the speech level is taken over this much of the latest audio
LEVEL_HOPS = int(LEVEL_SECONDS * media.SAMPLE_RATE / media.HOP_LENGTH)
SMOOTH_TRUNCATE = 4.0  # scipy's gaussian_filter1d default: the smoothing reaches 4 sigma
STREAM_CHECKPOINT = ASSETS / "motion_mel.safetensors"  # the shipped motion model of the (causal) log-mel front end
WHISPER_SECONDS = 4.0  # Whisper front end: audio the encoder hears for each step (3 or 6 s followed strangers alike)
WHISPER_EVERY = 4  # ... and frames made per step at least (160 ms; one 4 s encoding takes ~30 ms on one core)


def streaming_model(system):
    """The model that streams for `system`: itself (a motion model, either front end); LipgenError for anything
    else."""
    if system.crop != "motion":
        raise LipgenError(f"lipgen stream needs the motion model (--model motion), not {type(system).__name__}: "
                          "the other models normalise loudness over the whole utterance.")
    if system.config.speech not in ("mel", "whisper"):
        raise LipgenError(f"this motion model hears speech through {system.config.speech!r}, which cannot stream: "
                          "leave --checkpoint out, or give a motion model of the 'whisper' or 'mel' front end.")
    return system


def lookahead_frames(system) -> int:
    """Frames of audio after a frame that the motion model needs before the frame can be made: its receptive
    field's future half (context_frames), the output smoothing's radius, and one frame for the log-mel's
    centred windows (Whisper's features hear all the audio they are given: these frames are what they hear past
    the frame)."""
    cfg = system.config
    smooth = int(SMOOTH_TRUNCATE * cfg.smooth_sigma + 0.5) if cfg.smooth_sigma > 0 else 0
    return cfg.context_frames + smooth + 1


@functools.cache
def _prior() -> tuple[np.ndarray, np.ndarray]:
    """Per-bin mean and standard deviation of the bundled speech's log-mel: the running CMVN's starting point."""
    from .generate import SAMPLE_AUDIO

    mel = media.log_mel(media.read_audio(SAMPLE_AUDIO))
    return mel.mean(0).astype(np.float64), mel.std(0).astype(np.float64)


class StreamingFeatures:
    """lipgen.voice.features computed causally, a frame at a time: push(samples) -> the rows of every frame
    completed so far ((k * MELS_PER_FRAME, N_FEATURES) float32). A frame's rows are ready once one more frame of
    audio has arrived (the log-mel's centred 25 ms windows reach 12.5 ms past a row). The speech level (for the
    log-mel gain and the loudness row) is the 95th percentile of the hop energies of the last LEVEL_SECONDS; the
    CMVN mean and variance run over the frames in which lipgen.vad hears speech (speech_flags), from the prior.
    Work per push does not grow with time. rows=False: only who speaks and how loud speech is (`level`) are kept
    up, and push gives no rows (the Whisper front end makes its own features)."""

    def __init__(self, rows: bool = True):
        from .vad import ChunkProbability

        self.make_rows = rows

        mean, std = _prior()
        w = PRIOR_SECONDS * media.SAMPLE_RATE / media.HOP_LENGTH
        self.count, self.total, self.squares = w, w * mean, w * (std ** 2 + mean ** 2)
        self.voice = ChunkProbability()  # lipgen.vad's network, on the speech raised to the level heard so far
        self.chunk_probs, self.chunk_base = np.zeros(0, np.float32), 0  # the last ones, from chunk chunk_base on
        self.speech, self.speech_base = np.zeros(0, bool), 0  # per frame out, the last ones: someone speaks in it
        self.audio = np.zeros(0, np.float32)  # samples from self.base on (the last frames' worth)
        self.base = 0
        self.heard = 0  # samples pushed
        self.energy = np.zeros(0)  # mean square of the last LEVEL_SECONDS of complete hops
        self.frames = 0  # frames whose features are out
        self.level = 0.0  # the speech level (mean square of a hop) heard so far

    def speech_flags(self, start: int, stop: int) -> np.ndarray:
        """Whether lipgen.vad hears speech in frames start..stop (the last KEEP_FLAGS frames out are kept)."""
        kept = self.speech[max(start - self.speech_base, 0): max(stop - self.speech_base, 0)]
        return np.r_[np.zeros(min(max(self.speech_base - start, 0), max(stop - start, 0)), bool), kept]

    def _spoken_hops(self) -> np.ndarray:
        """Which hops of self.energy lipgen.vad hears as speech (False where it has not heard them yet)."""
        from .vad import CHUNK, THRESHOLD

        first = self.heard // media.HOP_LENGTH - len(self.energy)  # the hop self.energy starts at
        chunk = ((first + np.arange(len(self.energy))) * media.HOP_LENGTH + media.HOP_LENGTH // 2) // CHUNK
        chunk -= self.chunk_base
        known = (chunk >= 0) & (chunk < len(self.chunk_probs))
        spoken = np.zeros(len(chunk), bool)
        spoken[known] = self.chunk_probs[chunk[known]] > THRESHOLD
        return spoken

    def push(self, samples: np.ndarray, final: bool = False) -> np.ndarray:
        from .vad import CHUNK, THRESHOLD, at_frames
        from .voice import CMVN_EPS, SPEECH_LEVEL_PERCENTILE, relative_loudness

        samples = np.asarray(samples, np.float32).reshape(-1)
        hop = media.HOP_LENGTH
        done = self.heard // hop  # complete hops before this push
        self.audio = np.concatenate([self.audio, samples])
        self.heard += samples.size
        new = self.audio[done * hop - self.base: self.heard // hop * hop - self.base].astype(np.float64)
        self.energy = np.concatenate([self.energy, np.mean(new.reshape(-1, hop) ** 2, axis=1)])[-LEVEL_HOPS:]
        level = np.percentile(self.energy, SPEECH_LEVEL_PERCENTILE) if len(self.energy) else 0.0
        gain = media.TARGET_SPEECH_RMS / max(np.sqrt(level), media.MIN_SPEECH_RMS)
        self.chunk_probs = np.concatenate([self.chunk_probs, self.voice.push(
            np.clip(samples * max(gain, 1.0), -1, 1), final)])  # quiet speech raised (inference.silence_gain)
        drop = len(self.chunk_probs) - (LEVEL_HOPS * media.HOP_LENGTH // CHUNK + 8)  # older than the level's window
        if drop > 0:
            self.chunk_probs, self.chunk_base = self.chunk_probs[drop:], self.chunk_base + drop
        spoken = self._spoken_hops()
        if spoken.any():  # the level of the speech itself, once some is heard (not of a room's noise before it)
            level = np.percentile(self.energy[spoken], SPEECH_LEVEL_PERCENTILE)
            gain = media.TARGET_SPEECH_RMS / max(np.sqrt(level), media.MIN_SPEECH_RMS)
        self.level = level  # the speech level now (mean square): the Whisper front end's loudness row uses it too
        spf = media.SAMPLES_PER_FRAME
        ready = -(-self.heard // spf) if final else self.heard // spf - 1  # frames whose rows are complete
        f0, f1 = self.frames, ready
        if f1 <= f0:
            return np.zeros((0, media.N_MELS + 1), np.float32)
        k0 = max(f0 * spf // CHUNK - 2, self.chunk_base)  # the chunks around frames f0..f1, heard by now
        speech = at_frames(self.chunk_probs[k0 - self.chunk_base:], f1 - f0, offset=f0 - k0 * CHUNK / spf) > THRESHOLD
        self.speech = np.concatenate([self.speech, speech])[-KEEP_FLAGS:]
        self.speech_base = f1 - len(self.speech)
        if not self.make_rows:
            self.frames = f1
            self._keep_from((f1 - 1) * spf)
            return np.zeros((0, media.N_MELS + 1), np.float32)
        start = max(f0 - 1, 0)  # one frame before: the rows of f0 see real audio, not reflect padding
        segment = self.audio[start * spf - self.base: (f1 + 1) * spf - self.base]
        mel = media.log_mel(segment, f1 + (0 if final else 1) - start, gain=gain)[(f0 - start) * media.MELS_PER_FRAME:]
        mel = mel[: (f1 - f0) * media.MELS_PER_FRAME].astype(np.float64)
        heard = np.repeat(speech, media.MELS_PER_FRAME)[:, None]  # the statistics follow speech only: a room's
        self.count += heard.sum()  # noise before the first word had become the "speech" the rest was measured by
        self.total += (mel * heard).sum(0)
        self.squares += (mel ** 2 * heard).sum(0)
        mean = self.total / self.count
        std = np.sqrt(np.maximum(self.squares / self.count - mean ** 2, 0))
        db = hop_db(self.audio[f0 * spf - self.base:], f1 - f0)
        loud = relative_loudness(db, 10 * np.log10(level + 1e-12))
        self.frames = f1
        self._keep_from((f1 - 1) * spf)  # the next push starts its segment a frame before its first frame
        return np.concatenate([(mel - mean) / (std + CMVN_EPS), loud[:, None]], axis=1).astype(np.float32)

    def _keep_from(self, sample: int) -> None:
        if sample > self.base:
            self.audio, self.base = self.audio[sample - self.base:], sample


class StreamingMotion:
    """The motion model over a sliding window: push(samples) -> motion (k, 31, 2) of the frames now made.

    lookahead: frames of audio waited for after a frame (default lookahead_frames(system), the model's whole
    future context); gain: expressiveness (default lipgen.models.motion.EXPRESSIVENESS). A Whisper model's
    features are made afresh each step from the last WHISPER_SECONDS of audio (_push_whisper); a log-mel model's
    rows are made once, causally (StreamingFeatures), which also hears who speaks for the silence gate of both."""

    def __init__(self, system, lookahead: int | None = None, gain: float | None = None):
        from .models.motion import EXPRESSIVENESS

        self.system = system = streaming_model(system)
        self.whisper = system.config.speech == "whisper"
        self.features = StreamingFeatures(rows=not self.whisper)
        self.lookahead = lookahead_frames(system) if lookahead is None else lookahead
        if self.lookahead < 0:
            raise ValueError(f"lookahead must be 0 or more frames, got {lookahead}")
        self.gain = EXPRESSIVENESS if gain is None else gain
        self.rows = np.zeros((0, media.N_MELS + 1), np.float32)
        self.made = 0  # frames whose motion is out
        self.dropped = 0  # frames of rows dropped from the front (older than any later window)
        self.audio, self.base = np.zeros(0, np.float32), 0  # Whisper: the latest samples, from sample `base` on

    def push(self, samples: np.ndarray, final: bool = False) -> np.ndarray:
        if self.whisper:
            return self._push_whisper(samples, final)
        self.rows = np.concatenate([self.rows, self.features.push(samples, final)])
        have = len(self.rows) // media.MELS_PER_FRAME + self.dropped
        upto = have if final else have - self.lookahead
        if upto <= self.made:
            return np.zeros((0, 31, 2))
        start = max(self.made - PAST_FRAMES, self.dropped)
        window = self.rows[(start - self.dropped) * media.MELS_PER_FRAME:]
        motion = self.system.predict(window)[self.made - start: upto - start] * self.gain
        motion *= self._gate(upto)[:, None, None]
        self.made = upto
        keep_from = max(self.made - PAST_FRAMES, 0)  # rows older than the next window are dropped
        self.rows = self.rows[(keep_from - self.dropped) * media.MELS_PER_FRAME:]
        self.dropped = keep_from
        return motion

    def _push_whisper(self, samples: np.ndarray, final: bool) -> np.ndarray:
        from . import speech

        self.features.push(samples, final)  # who speaks (the gate) and how loud speech is (the loudness row)
        samples = np.asarray(samples, np.float32).reshape(-1)
        self.audio = np.concatenate([self.audio, samples])
        spf = media.SAMPLES_PER_FRAME
        have = self.features.frames  # frames of audio heard (whose speech flags the gate has: all but the last)
        upto = have if final else have - self.lookahead
        if upto <= self.made or (not final and upto - self.made < WHISPER_EVERY):
            return np.zeros((0, 31, 2))
        heard_frames = int(WHISPER_SECONDS * media.VIDEO_FPS)
        first = max(have - heard_frames, self.base // spf, 0)  # the first frame the encoder hears
        audio = self.audio[first * spf - self.base: have * spf - self.base]
        audio = np.pad(audio, (0, (have - first) * spf - audio.size))  # the last part-frame of a final push
        # heard as a whole file is: before a tail of silence, and at the stream's start after a lead of it (without
        # the tail the streamed motion followed the validation clips at 0.355, with it 0.369)
        encoded = speech.encode_heard(audio, lead=first == 0)  # (2 * (have - first), 384)
        loud = speech.loudness_rows(audio, have - first, 10 * np.log10(self.features.level + 1e-12))  # level so far
        start = max(self.made - PAST_FRAMES, first)  # the model's window: PAST_FRAMES of context, as log-mel's
        r0 = speech.ROWS_PER_FRAME * (start - first)
        feats = np.concatenate([encoded[r0:], loud[r0:, None]], axis=1).astype(np.float32)
        motion = self.system.predict(feats)[self.made - start: upto - start] * self.gain
        motion *= self._gate(upto)[:, None, None]
        self.made = upto
        keep = max(have - heard_frames, 0) * spf  # the next step hears no earlier audio than this one
        if keep > self.base:
            self.audio, self.base = self.audio[keep - self.base:], keep
        return motion

    def _gate(self, upto: int) -> np.ndarray:
        """lipgen.vad's silence gate for frames made..upto, from the frames heard so far: closed until speech is
        first heard, as generation closes it where no speech is heard. A look-ahead of SILENCE_MARGIN + 3 frames or
        more covers the gate's reach; under it the lips open only as a word's sound starts, not before it."""
        from .models.motion import SILENCE_MARGIN
        from .vad import silence_gate

        reach = SILENCE_MARGIN + 4  # the gate's margin and ramp: frames further from speech do not matter
        lo = max(self.made - reach, 0)
        heard = self.features.speech_flags(lo, upto + reach).astype(np.float32)  # 1 and 0: over and under it
        return silence_gate(heard, SILENCE_MARGIN)[self.made - lo: upto - lo]


def file_chunks(path, realtime: bool = True, chunk: int = CHUNK_SAMPLES, max_seconds: float = media.MAX_SECONDS):
    """A speech file (or a (N,) float32 array at SAMPLE_RATE) in chunks of `chunk` samples, each handed over when
    it would have been heard (realtime), or at once."""
    audio = path if isinstance(path, np.ndarray) else media.read_audio(path, max_seconds=max_seconds)
    start = time.perf_counter()
    for i in range(0, audio.size, chunk):
        if realtime:
            time.sleep(max(0.0, start + (i + chunk) / media.SAMPLE_RATE - time.perf_counter()))
        yield audio[i:i + chunk]


def pcm_chunks(stream=None, chunk: int = CHUNK_SAMPLES):
    """Raw 16-bit little-endian mono PCM at SAMPLE_RATE (default: stdin) in chunks, as it arrives."""
    fd = None
    if stream is None:  # stdin's file descriptor itself: a read blocked in another thread holds no lock of Python's
        try:  # buffered stdin, which would stop the interpreter at exit on Ctrl-C
            fd = sys.stdin.fileno()
        except (AttributeError, OSError, ValueError):  # a stdin without one (replaced from Python)
            stream = sys.stdin.buffer

    def read(n):
        if fd is not None:
            return os.read(fd, n)
        return stream.read1(n) if hasattr(stream, "read1") else stream.read(n)
    carry, checked = b"", False
    while True:
        data = read(2 * chunk)
        ended = not data
        data = carry + data
        if not checked:
            if len(data) < HEAD_BYTES and not ended:  # the check reads two encoded frames' headers: wait for them
                carry = data
                continue
            if len(data) >= 4:
                _check_pcm(data)
            checked = True
        cut = len(data) // 2 * 2
        carry = data[cut:]
        if cut:
            yield np.frombuffer(data[:cut], "<i2").astype(np.float32) / 32768.0
        if ended:
            break


_MP3 = {0xFA: (144000, (44100, 48000, 32000), (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)),
        0xF2: (72000, (22050, 24000, 16000), (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)),
        0xE2: (72000, (11025, 12000, 8000), (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160))}


def _mp3_frames(h: bytes) -> bool:
    """Two MPEG-1, 2 or 2.5 Layer III frame headers one frame apart at the start of h (a frame sync alone is also
    where raw PCM's sample -1 is followed by a small one)."""
    if len(h) < 4 or h[0] != 0xFF or h[1] & 0xFE not in _MP3 or h[2] >> 4 in (0, 15) or (h[2] >> 2) & 3 == 3:
        return False
    scale, rates, bitrates = _MP3[h[1] & 0xFE]
    length = scale * bitrates[h[2] >> 4] // rates[(h[2] >> 2) & 3] + ((h[2] >> 1) & 1)
    return len(h) >= length + 2 and h[length] == 0xFF and h[length + 1] & 0xFE == h[1] & 0xFE


def _adts_frames(h: bytes) -> bool:
    """Two AAC ADTS headers one frame apart (its length field) at the start of h."""
    if len(h) < 7 or h[0] != 0xFF or h[1] & 0xF6 != 0xF0:
        return False
    length = ((h[3] & 3) << 11) | (h[4] << 3) | (h[5] >> 5)
    return 7 <= length and len(h) >= length + 2 and h[length] == 0xFF and h[length + 1] & 0xF6 == 0xF0


_ENCODED = (("a FLAC", lambda h: h[:4] == b"fLaC"), ("an Ogg (Vorbis or Opus)", lambda h: h[:4] == b"OggS"),
            ("an MP3", lambda h: h[:3] == b"ID3" or _mp3_frames(h)), ("an AAC (ADTS)", _adts_frames),
            ("an MP4 or M4A", lambda h: h[4:8] == b"ftyp"), ("a Matroska or WebM", lambda h: h[:4] == b"\x1aE\xdf\xa3"),
            ("an AIFF", lambda h: h[:4] == b"FORM"))


def _check_pcm(head: bytes) -> None:
    """Refuse the start of a stdin stream that is not raw 16-bit PCM: a WAV file's header, or 32-bit floats (whose
    upper halves, read as 16-bit samples, hold the exponent: 12288-16320 for any |x| up to 1, where speech does not stay)."""
    if head[:4] in (b"RIFF", b"RIFX", b"RF64"):
        raise media.MediaError("stdin holds a WAV file, not raw PCM: give it with --audio FILE, or pipe raw 16 kHz "
                               "mono s16le (e.g. ffmpeg -i in.wav -f s16le -ar 16000 -ac 1 -)")
    kind = next((name for name, test in _ENCODED if test(head)), None)
    if kind:
        raise media.MediaError(f"stdin holds {kind} file, not raw PCM: give it with --audio FILE, or pipe raw 16 kHz "
                               "mono s16le (e.g. ffmpeg -i in.mp3 -f s16le -ar 16000 -ac 1 -)")
    upper = np.frombuffer(head[: len(head) // 4 * 4], "<u2")[1::2] & 0x7FFF  # a float's upper half, sign dropped
    upper = upper[upper != 0]
    if len(upper) >= 50 and np.mean((upper >= 12288) & (upper <= 16320)) > 0.9:  # |x| from 2^-31 to 1
        raise media.MediaError("stdin looks like 32-bit float samples: pipe 16-bit integers (s16le, e.g. ffmpeg "
                               "-f s16le -ar 16000 -ac 1 -)")


def mic_chunks(seconds: float | None = None, chunk: int = CHUNK_SAMPLES):
    """A microphone's sound (16 kHz mono) in chunks, through the `sounddevice` package; for `seconds`, or until
    Ctrl-C. A missing package or PortAudio library is said at once, before any chunk is asked for."""
    try:
        import sounddevice
    except ImportError as e:
        raise LipgenError(f"no microphone support ({e}): pip install sounddevice, or pipe PCM in with --audio -") from e
    except OSError as e:  # the package is there, the PortAudio system library it wraps is not
        raise LipgenError(f"no microphone support ({e}): install the PortAudio library (e.g. apt install "
                          "libportaudio2), or pipe PCM in with --audio -") from e

    def listen():
        heard: queue.Queue = queue.Queue()
        with sounddevice.InputStream(samplerate=media.SAMPLE_RATE, channels=1, blocksize=chunk, dtype="float32",
                                     callback=lambda data, *_: heard.put(data[:, 0].copy())):
            total = 0
            while seconds is None or total < seconds * media.SAMPLE_RATE:
                block = heard.get()
                total += block.size
                yield block

    return listen()


def stream(chunks, face: str | os.PathLike, out: str | os.PathLike = "live.mp4", model: str | None = None,
           checkpoint: str | os.PathLike | None = None, face_index: int | None = None, face_box=None,
           loop: str = "pingpong", pad: float = 0.0, expressiveness: float | None = None,
           lookahead: int | None = None, on_frame=None, progress: bool = True, generator=None,
           sound: str | os.PathLike | None = None, finish_on_interrupt: bool = False) -> dict:
    """Make `out` from speech that arrives in chunks ((n,) float32 arrays at SAMPLE_RATE, from any iterable:
    file_chunks, pcm_chunks, mic_chunks), each frame written as soon as it is made; the sound (the chunks, or
    `sound`'s own: the file the chunks are read from, at its own rate and channels) is muxed when the speech
    ends. on_frame(t, frame): called with every frame as it leaves (a live view). generator: a loaded
    lipgen.Generator whose model and prepared faces are used (instead of loading `model` or `checkpoint`).
    finish_on_interrupt (a live source: microphone, stdin): Ctrl-C ends the speech there and the video is finished
    with what was heard (a second Ctrl-C abandons it); otherwise Ctrl-C abandons the video.

    Returns {"out", "frames", "expected_frames", "audio_s", "lookahead_frames", "latency_s": (frames,) seconds
    from the arrival of the last audio sample of a frame to that frame leaving, "arrival_end_s", "end_s" (the
    last chunk's arrival and the last frame's leaving, from the first chunk's arrival), "span_s" (first frame
    out to last)}.
    """
    from . import render
    from .errors import EXPRESSIVENESS_RANGE, check_number
    from .generate import FaceSource, load_generator

    media.check_output(out, {"--face": face, "--audio": sound})
    if expressiveness is not None:
        check_number("expressiveness", expressiveness, *EXPRESSIVENESS_RANGE)
    if generator is not None:  # its model, and its face sources tracked once
        system = generator.system
        expressiveness = generator.expressiveness if expressiveness is None else expressiveness
        system = streaming_model(system)  # a model that cannot stream is refused before any tracking
        source = generator.face(face, face_index, face_box, media.VIDEO_FPS, loop, pad)
    else:
        system = streaming_model(load_generator(model, checkpoint))
        source = FaceSource(face, face_index, fps=media.VIDEO_FPS, loop=loop, face_box=face_box, pad=pad)
    motion = StreamingMotion(system, lookahead, expressiveness)
    rest = render.rest_of(source.landmarks, source.face_matrix)
    arrived = queue.Queue(maxsize=ARRIVAL_QUEUE)  # speech handed over faster than it is used waits at its source
    stop = threading.Event()  # set by Ctrl-C when finish_on_interrupt: the speech ends there

    def listen():  # the source's pace is kept by a thread of its own, so a slow frame does not slow the listening
        try:
            for piece in chunks:
                arrived.put((time.perf_counter(), np.asarray(piece, np.float32).reshape(-1)))
        except BaseException as e:  # noqa: BLE001 - handed to the main thread, raised there
            arrived.put(e)
        arrived.put(None)

    threading.Thread(target=listen, daemon=True).start()
    ends, times, samples = [], [], []  # cumulative samples after each chunk, its arrival time; the chunks
    leave = []

    def rows():  # motion rows as the audio allows, blocking on the listener
        total = 0
        while True:
            try:
                item = None if stop.is_set() else arrived.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(item, BaseException):
                raise item
            final = item is None
            if not final:
                arrival, piece = item
                total += piece.size
                ends.append(total)
                times.append(arrival)
                if sound is None:  # muxed at the end; a file's own sound is read from the file
                    samples.append((piece * 32767).round().clip(-32768, 32767).astype(np.int16))
            elif total < media.SAMPLES_PER_FRAME:
                raise media.MediaError("no speech arrived: the audio stream was empty or shorter than one video "
                                       "frame (40 ms).")
            yield from motion.push(np.zeros(0, np.float32) if final else piece, final)
            if final:
                return

    tracked = ((frame, source.landmarks[source.index(t)], matrix)
               for t, (frame, matrix) in enumerate(source.frames("align")))
    from tqdm import tqdm

    bar = tqdm(desc="stream", unit="frame", disable=not progress)
    made: queue.Queue = queue.Queue(maxsize=ENCODE_QUEUE)

    failed = []

    def encode(writer):  # H.264 encoding on a thread of its own: the next frame is drawn meanwhile
        while (item := made.get()) is not None:
            if failed:
                continue  # drained, so the drawing side never waits on a dead encoder
            try:
                t, frame = item
                writer.write(frame)
                leave.append(time.perf_counter())
                if on_frame is not None:
                    on_frame(t, frame)
                bar.update()
            except BaseException as e:  # noqa: BLE001 - raised again on the main thread
                failed.append(e)

    # x264 at its quickest, every frame out at once (no look-ahead buffer): 4x cheaper than generate's settings
    with media.Mp4Writer(out, audio=np.zeros(0, np.float32), preset=STREAM_PRESET, tune="zerolatency",
                         sound=sound) as writer, _interrupt_ends(stop, finish_on_interrupt):
        encoder = threading.Thread(target=encode, args=(writer,), daemon=True)
        encoder.start()
        try:
            with render.one_blas_thread():
                for t, frame in enumerate(render.animate(tracked, rest, rows(), pad, source.still)):
                    if t >= motion.made:  # animate passes one frame beyond the motion's end through: not ours
                        break
                    made.put((t, frame))
        finally:
            made.put(None)
            encoder.join()
        if failed:
            raise failed[0]
        if sound is None:
            writer.audio = np.concatenate(samples).astype(np.float32) / 32767
            if np.sqrt(np.mean(writer.audio.astype(np.float64) ** 2)) < media.MIN_SPEECH_RMS:
                log.warning("the speech that arrived is silent: the video's mouth stays closed")
    bar.close()
    n = len(leave)
    total = ends[-1]
    last_sample = np.minimum((np.arange(n) + 1) * media.SAMPLES_PER_FRAME, total)  # a frame's last sample (1-based)
    arrival = np.array([times[bisect.bisect_left(ends, s)] for s in last_sample])
    t0 = times[0]
    return {"out": Path(out), "frames": n, "lookahead_frames": motion.lookahead,
            "latency_s": np.array(leave) - arrival, "arrival_end_s": times[-1] - t0, "end_s": leave[-1] - t0,
            "span_s": leave[-1] - leave[0],
            "audio_s": total / media.SAMPLE_RATE, "expected_frames": math.ceil(total / media.SAMPLES_PER_FRAME)}


@contextlib.contextmanager
def _interrupt_ends(stop: threading.Event, enabled: bool):
    """With `enabled` (and on the main thread, where signals arrive), the first Ctrl-C sets `stop` instead of
    raising: a live take ends there and is finished. A second Ctrl-C raises KeyboardInterrupt as usual."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupted(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        log.warning("interrupted: finishing the video with the speech heard so far (Ctrl-C again to abandon it)")

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
