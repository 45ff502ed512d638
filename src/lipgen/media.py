"""Media I/O: read video, images and audio with PyAV; log-mel features; write H.264+AAC mp4.

Every signal constant lives here, with its unit, derived from the others. Any code that
maps audio to video frames uses these names, never literal numbers.
"""

from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import av.logging
import numpy as np

from .errors import MediaError

VIDEO_FPS = 25  # video frames per second, everything is brought to this rate
SAMPLE_RATE = 16000  # audio samples per second, mono
N_FFT = 400  # samples in a 25 ms STFT window
HOP_LENGTH = 160  # samples between STFT windows: 10 ms
N_MELS = 80  # mel bins
SAMPLES_PER_FRAME = SAMPLE_RATE // VIDEO_FPS  # 640 audio samples per video frame
MELS_PER_FRAME = SAMPLES_PER_FRAME // HOP_LENGTH  # 4 mel frames per video frame
assert MELS_PER_FRAME * HOP_LENGTH * VIDEO_FPS == SAMPLE_RATE

MIN_SPEECH_RMS = 1e-4  # below this the audio is treated as silent/empty (full scale = 1.0)
TARGET_SPEECH_RMS = 0.05  # loudness the log-mel front end normalises speech to (about -26 dBFS)
LOG_MEL_FLOOR = 1e-9  # power floor before log10, so silence maps to a fixed value
MAX_SECONDS = 600.0  # longest input lipgen accepts by default (10 min); pass max_seconds to change

VIDEO_SUFFIXES = {".mp4", ".mpg", ".mpeg", ".avi", ".mov", ".webm", ".mkv", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def _open(path: str | os.PathLike) -> av.container.InputContainer:
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file. Check the path.")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as e:
        raise MediaError(f"{path}: not a readable media file ({e.strerror or e}). "
                         "Give a video (mp4, mpg, avi, mov, webm, mkv) or audio (wav, flac, mp3, m4a) file.") from e


def read_video(path: str | os.PathLike, fps: int = VIDEO_FPS, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """Decode every frame of a video as RGB, brought to `fps` by picking the frame shown at each tick.

    Returns (T, H, W, 3) uint8, C-contiguous. Raises MediaError for a file with no video stream,
    decode errors (a damaged file: frames would be corrupt), no frames, or more than max_seconds.
    """
    with av.logging.Capture(local=True) as logs:
        previous_level = av.logging.get_level()
        av.logging.set_level(av.logging.ERROR)
        try:
            container = _open(path)
            with container:
                if not container.streams.video:
                    raise MediaError(f"{path}: has no video stream. Give a video file, or an image for a still face.")
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                frames, times = [], []
                for frame in container.decode(stream):
                    t = float(frame.time) if frame.time is not None else len(frames) / fps
                    if t > max_seconds:
                        raise MediaError(f"{path}: longer than {max_seconds:.0f} s. Cut it, or raise max_seconds.")
                    frames.append(frame.to_ndarray(format="rgb24"))
                    times.append(t)
        except av.error.FFmpegError as e:
            raise MediaError(f"{path}: damaged video, decoding failed ({e}). Re-encode it or leave it out.") from e
        finally:
            av.logging.set_level(previous_level)
    errors = [msg.strip() for level, _, msg in logs if level <= av.logging.ERROR]
    if errors:
        raise MediaError(f"{path}: damaged video, {len(errors)} decode errors (first: '{errors[0]}'). "
                         "Its frames would be corrupt: re-encode it from a good copy or leave it out.")
    if not frames:
        raise MediaError(f"{path}: no video frames could be decoded. Check that the file is a complete video.")
    times = np.asarray(times) - times[0]
    n_out = max(1, int(round((times[-1] + _frame_period(stream)) * fps)))
    picks = np.searchsorted(times, np.arange(n_out) / fps + 1e-6, side="right") - 1
    return np.ascontiguousarray(np.stack([frames[i] for i in np.clip(picks, 0, len(frames) - 1)]))


def _frame_period(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or Fraction(VIDEO_FPS)
    return float(1 / rate)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a still image as RGB. Returns (H, W, 3) uint8, C-contiguous."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file. Check the path.")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.ascontiguousarray(np.asarray(im.convert("RGB")))
    except (UnidentifiedImageError, OSError) as e:
        raise MediaError(f"{path}: not a readable image ({e}). Give a png or jpg photo of a face.") from e


def read_frames(path: str | os.PathLike, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """A face source: an image becomes one frame, a video gives all its frames. (T, H, W, 3) uint8."""
    if Path(path).suffix.lower() in IMAGE_SUFFIXES:
        return read_image(path)[None]
    return read_video(path, max_seconds=max_seconds)


def read_audio(path: str | os.PathLike, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """Decode the first audio stream, mixed to mono and resampled to SAMPLE_RATE.

    Returns (N,) float32 in [-1, 1]. Raises MediaError for no audio stream, decode errors,
    empty or silent audio, or more than max_seconds.
    """
    container = _open(path)
    with container:
        if not container.streams.audio:
            raise MediaError(f"{path}: has no audio stream. Give a speech recording (wav, flac, mp3, m4a) "
                             "or a video with sound.")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        chunks = []
        n = 0
        try:
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    n += chunks[-1].size
                if n > max_seconds * SAMPLE_RATE:
                    raise MediaError(f"{path}: audio longer than {max_seconds:.0f} s. Cut it, or raise max_seconds.")
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as e:
            raise MediaError(f"{path}: damaged audio, decoding failed ({e}). Re-encode it or leave it out.") from e
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if audio.size < SAMPLES_PER_FRAME:
        raise MediaError(f"{path}: audio is empty or shorter than one video frame "
                         f"({audio.size} samples at {SAMPLE_RATE} Hz). Give a recording with speech in it.")
    if np.sqrt(np.mean(audio.astype(np.float64) ** 2)) < MIN_SPEECH_RMS:
        raise MediaError(f"{path}: audio is silent (RMS below {MIN_SPEECH_RMS}). Give a recording with speech in it.")
    return audio


def check_sample_rate(sample_rate: int) -> None:
    """Raise MediaError unless audio handed over as an array is at SAMPLE_RATE."""
    if sample_rate != SAMPLE_RATE:
        raise MediaError(f"audio is at {sample_rate} Hz but lipgen works at {SAMPLE_RATE} Hz. "
                         "Pass a file path instead (it is resampled on reading), or resample the array first.")


def fit_audio(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """Trim or zero-pad audio to exactly n_frames video frames: (n_frames * SAMPLES_PER_FRAME,)."""
    n = n_frames * SAMPLES_PER_FRAME
    return audio[:n] if audio.size >= n else np.pad(audio, (0, n - audio.size))


def _mel_filterbank() -> np.ndarray:
    """(N_MELS, N_FFT // 2 + 1) Slaney-style mel filters (area-normalised triangles)."""
    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        linear = f / (200.0 / 3)
        log = 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(f >= 1000.0, log, linear)

    def mel_to_hz(m):
        linear = m * (200.0 / 3)
        log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
        return np.where(m >= 15.0, log, linear)

    fft_hz = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    lower = (fft_hz[None] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    upper = (edges[2:, None] - fft_hz[None]) / (edges[2:] - edges[1:-1])[:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    return (weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)


MEL_FILTERS = _mel_filterbank()


def speech_gain(audio: np.ndarray) -> float:
    """Gain that brings speech to TARGET_SPEECH_RMS; the speech level is the 95th percentile of 10 ms frame RMS."""
    frames = audio[: audio.size // HOP_LENGTH * HOP_LENGTH].reshape(-1, HOP_LENGTH)
    level = np.percentile(np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)), 95) if len(frames) else 0.0
    return float(TARGET_SPEECH_RMS / max(level, MIN_SPEECH_RMS))


def log_mel(audio: np.ndarray, n_frames: int | None = None) -> np.ndarray:
    """Loudness-normalised log-mel spectrogram, MELS_PER_FRAME rows per video frame.

    audio: (N,) float32 at SAMPLE_RATE. With n_frames, audio is first fitted to n_frames video
    frames; otherwise to floor(N / SAMPLES_PER_FRAME) frames. Windows are centred (reflect padding),
    Hann, N_FFT long, every HOP_LENGTH; the last, half-outside window is dropped, so the result is
    exactly (n_frames * MELS_PER_FRAME, N_MELS) float32, and row 4i..4i+3 covers video frame i.
    Values: log10(max(mel power, LOG_MEL_FLOOR)) after the waveform is scaled by speech_gain(),
    then shifted and scaled to roughly [-1, 1]: (x + 4.5) / 4.5.
    """
    if n_frames is None:
        n_frames = audio.size // SAMPLES_PER_FRAME
    if n_frames < 1:
        raise MediaError(f"audio of {audio.size} samples is shorter than one video frame "
                         f"({SAMPLES_PER_FRAME} samples). Give longer speech.")
    x = fit_audio(np.asarray(audio, np.float32), n_frames) * speech_gain(audio)
    x = np.pad(x, N_FFT // 2, mode="reflect")
    n_windows = n_frames * MELS_PER_FRAME
    idx = np.arange(N_FFT)[None] + HOP_LENGTH * np.arange(n_windows)[:, None]
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)  # periodic Hann
    power = np.abs(np.fft.rfft(x[idx] * window, axis=1)) ** 2  # (n_windows, N_FFT//2+1)
    mel = power.astype(np.float32) @ MEL_FILTERS.T
    return ((np.log10(np.maximum(mel, LOG_MEL_FLOOR)) + 4.5) / 4.5).astype(np.float32)


def write_mp4(path: str | os.PathLike, frames: np.ndarray, audio: np.ndarray | None = None,
              fps: int = VIDEO_FPS, crf: int = 18) -> Path:
    """Write frames (T, H, W, 3) uint8 RGB as H.264 yuv420p, with mono AAC audio at SAMPLE_RATE muxed in.

    Odd sizes are padded by one pixel (H.264 needs even sizes). Audio is fitted to the video's
    length so both streams end together. Written to a temporary file, then renamed: a reader
    never sees half a file.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    h, w = frames.shape[1:3]
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".mp4", dir=path.parent, prefix=f".{path.stem}.")
    os.close(fd)
    try:
        with av.open(tmp, mode="w", format="mp4") as out:
            video = out.add_stream("libx264", rate=fps, options={"crf": str(crf), "preset": "fast"})
            video.width, video.height = frames.shape[2], frames.shape[1]
            video.pix_fmt = "yuv420p"
            sound = None
            if audio is not None:
                sound = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
            for frame in frames:
                for packet in video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                    out.mux(packet)
            for packet in video.encode():
                out.mux(packet)
            if sound is not None:
                samples = fit_audio(np.asarray(audio, np.float32), len(frames))
                chunk = 1024
                for start in range(0, samples.size, chunk):
                    block = np.ascontiguousarray(samples[start:start + chunk][None])
                    aframe = av.AudioFrame.from_ndarray(block, format="flt", layout="mono")
                    aframe.sample_rate = SAMPLE_RATE
                    aframe.pts = start
                    for packet in sound.encode(aframe):
                        out.mux(packet)
                for packet in sound.encode():
                    out.mux(packet)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
