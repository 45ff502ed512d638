"""Media I/O: read video, images and audio with PyAV; log-mel features; write H.264+AAC mp4.

Every signal constant lives here, with its unit, derived from the others. Any code that
maps audio to video frames uses these names, never literal numbers.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import tempfile
import wave
from fractions import Fraction
from pathlib import Path

import av
import av.logging
import cv2
import numpy as np

from .errors import MediaError, SilentAudioError
from .files import remove_leftovers, temporary_suffix, umask

log = logging.getLogger(__name__)

VIDEO_FPS = 25  # video frames per second, everything is brought to this rate
SAMPLE_RATE = 16000  # audio samples per second, mono
N_FFT = 400  # samples in a 25 ms STFT window
HOP_LENGTH = 160  # samples between STFT windows: 10 ms
N_MELS = 80  # mel bins
SAMPLES_PER_FRAME = SAMPLE_RATE // VIDEO_FPS  # 640 audio samples per video frame
MELS_PER_FRAME = SAMPLES_PER_FRAME // HOP_LENGTH  # 4 mel frames per video frame
SYNC_FRAMES = 5  # video frames per sync window (0.2 s), as in SyncNet and Wav2Lip
BT601_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma weights for R, G, B
assert MELS_PER_FRAME * HOP_LENGTH * VIDEO_FPS == SAMPLE_RATE

MIN_SPEECH_RMS = 1e-4  # below this the audio is treated as silent/empty (full scale = 1.0)
TARGET_SPEECH_RMS = 0.05  # loudness the log-mel front end normalises speech to (about -26 dBFS)
LOG_MEL_FLOOR = 1e-9  # power floor before log10, so silence maps to a fixed value
MAX_SECONDS = 600.0  # longest input lipgen accepts by default (10 min); pass max_seconds to change
MAX_IMAGE_SIDE = 2048  # pixels: a larger photo is scaled down to this on reading (logged)
RATE_TOLERANCE = 0.05  # a video's measured frame rate this close to its nominal one is taken as the nominal

VIDEO_SUFFIXES = {".mp4", ".mpg", ".mpeg", ".avi", ".mov", ".webm", ".mkv", ".m4v", ".3gp", ".3g2", ".ts", ".mts", ".flv",
                  ".wmv"}
# GIF, WebP, AVIF: see is_still
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".jfif", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".avif"}
ANIMATED_SUFFIXES = (".gif", ".webp", ".avif")  # one image or several
UNREAD_PHOTO_SUFFIXES = {".heic", ".heif", ".jxl", ".dng", ".cr2", ".nef", ".arw"}  # phones' and cameras' own
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".aifc", ".amr",
                  ".caf", ".wma", ".weba", ".mka", ".ac3"}
LIMIT_HINT = "--max-seconds where the command has it, max_seconds in Python"  # how a length limit is raised
FLOAT_PEAK_LIMIT = 64.0  # a float array peaking above this holds integer samples (int16 values), not full scale 1


def _open(path: str | os.PathLike) -> av.container.InputContainer:
    path = _check_file(path)
    if path.suffix.lower() in UNREAD_PHOTO_SUFFIXES:  # FFmpeg may decode one tile of such a photo: refused, not cut
        raise MediaError(f"{path}: lipgen does not read {path.suffix[1:].upper()} photos. Save it as JPEG or PNG "
                         "first.")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as e:
        raise MediaError(f"{path}: not a readable media file ({e.strerror or e}). Give a photo (png, jpg, webp), "
                         "video (mp4, mpg, avi, mov, webm, mkv) or audio (wav, flac, mp3, m4a) file.") from e


def _check_file(path: str | os.PathLike) -> Path:
    """The path of an existing file, or MediaError naming what it is instead."""
    if not str(path):  # Path("") is "." (a folder): say what was given
        raise MediaError("an empty file name was given. Give the path of a file.")
    path = Path(path)
    if path.is_dir():
        raise MediaError(f"{path}: is a folder. Give a file in it.")
    if not path.is_file():
        raise MediaError(f"{path}: no such file. Check the path.")
    return path


@contextlib.contextmanager
def _ffmpeg_errors():
    """FFmpeg's error messages logged while the block runs, in this thread: a list of (level, name, message).

    PyAV's log callback takes the GIL, so it is installed only for the block (the caller decodes in its
    own thread there, see _decoded) and the previous logging is restored after: FFmpeg threads that run
    while lipgen is not decoding (an encoder's, a caller's) never wait for Python, and freeing a decoder
    can never deadlock on one.
    """
    level, skip = av.logging.get_level(), av.logging.get_skip_repeated()
    with av.logging.Capture(local=True) as logs:
        av.logging.set_level(av.logging.ERROR)
        av.logging.set_skip_repeated(False)  # the same error as the last file's must still be seen
        try:
            yield logs
        finally:
            av.logging.set_level(level)
            av.logging.set_skip_repeated(skip)


def _decoded(path, container, stream, kind: str):
    """Decode one stream in the calling thread, one frame per next(); MediaError for a damaged file.

    Damage is any FFmpeg error logged while decoding, a decode exception, or a frame the decoder marks
    corrupt (concealed errors). Decoding runs without codec threads: their log messages would come
    from other threads (missed by a thread-local capture), and freeing a threaded decoder half-way
    (a dropped generator) could deadlock on a thread waiting for the GIL.
    """
    stream.codec_context.thread_count = 1
    frames = container.decode(stream)
    for index in itertools.count():
        with _ffmpeg_errors() as logs:
            try:
                frame = next(frames, None)
            except av.error.FFmpegError as e:
                raise MediaError(f"{path}: damaged {kind}, decoding failed ({e}). Re-encode it from a good copy "
                                 "or leave it out.") from e
        errors = [msg.strip() for level, _, msg in logs if level <= av.logging.ERROR]
        if errors:
            raise MediaError(f"{path}: damaged {kind}, decode errors (first: '{errors[0]}'). "
                             f"Its {'frames' if kind == 'video' else 'sound'} would be corrupt: re-encode it from a "
                             "good copy or leave it out.")
        if frame is None:
            return
        if frame.is_corrupt:
            raise MediaError(f"{path}: damaged {kind}, frame {index} decoded with concealed errors. "
                             "Re-encode it from a good copy or leave it out.")
        yield frame


def iter_video(path: str | os.PathLike, fps: int = VIDEO_FPS, max_seconds: float = MAX_SECONDS):
    """Yield the frames of a video as RGB (H, W, 3) uint8 C-contiguous arrays, brought to `fps`.

    Output tick k shows the last source frame whose time is <= k / fps (frames are dropped or
    repeated; a 25 fps source passes through unchanged). Interlaced frames are made progressive from their
    first field; frames are turned upright by the video's
    rotation metadata (phones record portrait video sideways), and scaled down to MAX_IMAGE_SIDE
    pixels on the longer side if larger (logged once). Memory stays at one frame however long
    the video, and the generator may be dropped at any point. Raises MediaError for a file with no
    video stream, decode errors (a damaged file: its frames would be corrupt; raised when the damage is
    met), or more than max_seconds.
    """
    container = _open(path)
    with container:
        if not container.streams.video:
            raise MediaError(f"{path}: has no video stream. Give a video file, or an image for a still face.")
        stream = container.streams.video[0]
        sar, bottom_first = stream.sample_aspect_ratio, stream.codec_context.field_order in BOTTOM_FIRST
        tick, previous, first_time, t = 0, None, None, 0.0
        for frame in _decoded(path, container, stream, "video"):
            t = float(frame.time) if frame.time is not None else tick / fps
            first_time = t if first_time is None else first_time
            t -= first_time
            if t > max_seconds:
                raise MediaError(f"{path}: longer than {max_seconds:g} s. Cut it, or raise the limit "
                                 f"({LIMIT_HINT}).")
            while previous is not None and tick / fps < t - 1e-6:
                yield previous
                tick += 1
            progressive = _one_field(_rgb(frame), bottom_first) if frame.interlaced_frame else _rgb(frame)
            previous = _fit_side(_upright(_square(progressive, sar), frame), path)
        if previous is None:
            raise MediaError(f"{path}: no video frames could be decoded. Check that the file is a complete video.")
        while tick / fps < t + _frame_period(stream) - 1e-6:
            yield previous
            tick += 1


BOTTOM_FIRST = 3, 4  # FFmpeg's field orders whose bottom field is shown first (BB, TB)


def _one_field(image: np.ndarray, bottom: bool) -> np.ndarray:
    """An interlaced frame (two fields, a field time apart, woven into alternate rows) as one progressive
    picture: the field shown first, each missing row the mean of its neighbours (the one there is, at an edge).
    A moving mouth then has no combing, which would otherwise be read as lip edges and drawn into the output."""
    height = image.shape[0]
    if height < 2:
        return image
    missing = np.arange(1 - int(bottom), height, 2)
    above = np.where(missing > 0, missing - 1, missing + 1)
    below = np.where(missing < height - 1, missing + 1, missing - 1)
    out = image.copy()
    out[missing] = ((image[above].astype(np.uint16) + image[below] + 1) // 2).astype(np.uint8)
    return out


def _square(image: np.ndarray, sar) -> np.ndarray:
    """The frame in square pixels: stretched by its stream's sample aspect ratio (DV, HDV and some broadcast video
    store pixels wider or narrower than tall)."""
    if not sar or sar == 1:
        return image
    width = max(2, int(round(image.shape[1] * float(sar))))
    return np.ascontiguousarray(cv2.resize(image, (width, image.shape[0]), interpolation=cv2.INTER_AREA if sar < 1
                                           else cv2.INTER_LINEAR))


def _upright(image: np.ndarray, frame: av.VideoFrame) -> np.ndarray:
    """The frame as it is meant to be shown: rotated by its display matrix (counter-clockwise degrees)."""
    quarter_turns = round((frame.rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(image, quarter_turns)) if quarter_turns else image


BT709, FULL_RANGE = 1, 2  # FFmpeg's codes for a frame's colorspace and color_range


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a decoded frame, by its own colour matrix and range. Limited-range BT.601 (or
    untagged) yuv420p goes through OpenCV's BT.601 code (what every measurement here was made with); BT.709
    (as phones tag HD video), full range (JPEG-style, some VP9/AV1) and other formats through PyAV's swscale,
    which reads the frame's tags."""
    if (frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0
            and frame.colorspace != BT709 and frame.color_range != FULL_RANGE):
        return cv2.cvtColor(frame.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2RGB_I420)
    return np.ascontiguousarray(frame.to_ndarray(format="rgb24"))


def read_video(path: str | os.PathLike, fps: int = VIDEO_FPS, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """All frames of a video at `fps` (see iter_video): (T, H, W, 3) uint8."""
    return np.stack(list(iter_video(path, fps, max_seconds)))


def video_fps(path: str | os.PathLike) -> Fraction:
    """A video's own frame rate (e.g. 30, or 30000/1001 for 29.97), from its header: what `lipgen generate`
    keeps for a video face. Raises MediaError for a file with no video stream."""
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path}: has no video stream. Give a video file, or an image for a still face.")
        return Fraction(_rate(container.streams.video[0])).limit_denominator(1001)


def _rate(stream) -> Fraction:
    """Frames per second of a video stream: its nominal rate (25, 30000/1001) where the measured average (frames
    over duration) is within RATE_TOLERANCE of it, as it is for a constant-rate video whose duration is off by
    a frame or a start offset; else the average (variable frame rate)."""
    average, nominal = stream.average_rate, stream.guessed_rate
    if nominal and (not average or abs(average / nominal - 1) < RATE_TOLERANCE):
        return Fraction(nominal)
    return Fraction(average or nominal or VIDEO_FPS)


def _frame_period(stream) -> float:
    return float(1 / _rate(stream))


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a still image as RGB, upright (its EXIF Orientation applied, as viewers show it).

    Returns (H, W, 3) uint8, C-contiguous. A photo whose longer side is over MAX_IMAGE_SIDE pixels is
    scaled down to that (logged): lipgen works on faces, not on pixels beyond what the models use.
    """
    path = _check_file(path)
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            stored = im.size
            if max(stored) > MAX_IMAGE_SIDE:
                im.draft("RGB", (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))  # JPEG: decode at 1/2, 1/4 or 1/8 size
            im = ImageOps.exif_transpose(im)
            if im.mode.startswith(("I", "F")):  # 16-bit or float greys: PIL's own conversion clips them to white
                im = Image.fromarray(_to_uint8(np.asarray(im), im.mode))
            if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                im = _on_white(im, path)
            return _fit_side(np.asarray(im.convert("RGB")), path, original=stored)
    except Image.DecompressionBombError as e:
        raise MediaError(f"{path}: image too large to read safely ({e}). Give a photo of at most "
                         f"{MAX_IMAGE_SIDE} pixels a side.") from e
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise MediaError(f"{path}: not a readable image ({e}). Give a png or jpg photo of a face.") from e


def _on_white(im, path):
    """An image with transparency as a viewer on a white page shows it (an mp4 has no transparency; what lies
    under transparent pixels is often garbage or black)."""
    from PIL import Image

    rgba = im.convert("RGBA")
    if rgba.getextrema()[3][0] == 255:  # fully opaque
        return im
    log.info("%s: transparent parts are shown on white.", path)
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)


def _to_uint8(grey: np.ndarray, mode: str) -> np.ndarray:
    """A 16-bit (I;16*, or I holding 16-bit values) or float (F, 0-1 or 0-255) grey image as 8 bits."""
    x = grey.astype(np.float64)
    top = 1.0 if mode == "F" and x.max() <= 1 else 255.0 if x.max() <= 255 and not mode.startswith("I;16") else 65535.0
    return np.clip(np.round(x * (255.0 / top)), 0, 255).astype(np.uint8)


def is_still(path: str | os.PathLike) -> bool:
    """A photo (one frame) rather than a video: by its name, and a GIF, WebP or AVIF by its frame count."""
    suffix = Path(path).suffix.lower()
    if suffix in ANIMATED_SUFFIXES and Path(path).is_file():
        from PIL import Image

        try:
            with Image.open(path) as im:
                return getattr(im, "n_frames", 1) == 1
        except Exception:  # unreadable: read_image says why
            return True
    return suffix in IMAGE_SUFFIXES


def _fit_side(image: np.ndarray, path, original: tuple[int, int] | None = None) -> np.ndarray:
    """The image with its longer side at most MAX_IMAGE_SIDE (INTER_AREA, noted once per file), C-contiguous.
    original: (width, height) of the file, for the note, when the image was already decoded smaller."""
    h, w = image.shape[:2]
    if max(h, w) <= MAX_IMAGE_SIDE and (original is None or max(original) <= MAX_IMAGE_SIDE):
        return np.ascontiguousarray(image)
    scale = min(1.0, MAX_IMAGE_SIDE / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    _note_scaled(str(path), *(original or (w, h)), *size)
    if size == (w, h):
        return np.ascontiguousarray(image)
    return np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))


@functools.lru_cache(maxsize=64)
def _note_scaled(path: str, width: int, height: int, new_width: int, new_height: int) -> None:
    """Say once per file (not for every frame, nor for every pass over a video) that it was scaled down."""
    log.warning("%s: %dx%d pixels is over lipgen's %d-pixel limit: scaled to %dx%d for analysis and output.",
                path, width, height, MAX_IMAGE_SIDE, new_width, new_height)


def longer_side(path: str | os.PathLike) -> int:
    """The longer side, in pixels, of an image or video file as it is shown (square pixels), before lipgen scales it
    to MAX_IMAGE_SIDE: what coordinates a user reads off the file (e.g. --face-box) are measured in."""
    if is_still(path):
        from PIL import Image

        with Image.open(path) as im:
            return max(im.size)
    with _open(path) as container:
        stream = container.streams.video[0]
        sar = float(stream.sample_aspect_ratio or 1)
        return max(round(stream.codec_context.width * sar), stream.codec_context.height)


def read_frames(path: str | os.PathLike, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """A face source: an image becomes one frame, a video gives all its frames. (T, H, W, 3) uint8."""
    if is_still(path):
        return read_image(path)[None]
    return read_video(path, max_seconds=max_seconds)


def has_video(path: str | os.PathLike) -> bool:
    """Whether a media file has a video stream (MediaError if it cannot be opened)."""
    with _open(path) as container:
        return bool(container.streams.video)


def has_audio(path: str | os.PathLike) -> bool:
    """Whether a media file has an audio stream (MediaError if it cannot be opened)."""
    with _open(path) as container:
        return bool(container.streams.audio)


def read_audio(path: str | os.PathLike, max_seconds: float = MAX_SECONDS, dtype=np.float32,
               first: float | None = None) -> np.ndarray:
    """Decode the first audio stream, mixed to mono and resampled to SAMPLE_RATE.

    Returns (N,) float32, full scale 1 (a stereo mix may exceed it), or with dtype=np.float16 the same values
    to 3 significant digits in half the memory (made float32 a piece at a time where they are used). Raises
    MediaError for no audio stream, decode errors, a file cut short (fewer samples than its header
    declares), empty or silent audio, or more than max_seconds. first: only the first this many seconds are
    decoded and returned (a longer file is neither read to its end nor refused).
    Memory: the samples once (4 bytes each, 230 MB for an hour; 2 bytes as float16), no copies.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float16):
        raise ValueError(f"read_audio gives float32 or float16 samples, not {dtype}")
    container = _open(path)
    with container:
        if not container.streams.audio:
            raise MediaError(f"{path}: has no audio stream. Give a speech recording (wav, flac, mp3, m4a) "
                             "or a video with sound.")
        stream = container.streams.audio[0]
        declared = _declared_seconds(container, stream)
        limit = int(max_seconds * SAMPLE_RATE)
        # room for the declared length: pages never written cost no memory, so guessing high is free
        audio = np.empty(min(limit, int((declared or 60.0) * SAMPLE_RATE)) + SAMPLE_RATE, dtype)
        n, decoded = 0, [0]

        def append(block):
            nonlocal audio, n
            if n + block.size > audio.size:
                bigger = np.empty(max(2 * audio.size, n + block.size), dtype)
                bigger[:n] = audio[:n]
                audio = bigger
            audio[n:n + block.size] = block
            n += block.size

        wanted = None if first is None else int(round(first * SAMPLE_RATE))
        with contextlib.closing(_placed_sound(path, container, SAMPLE_RATE, "mono", decoded)) as pieces:
            for piece in pieces:
                append(piece[0])
                if wanted is not None and n >= wanted:
                    n = wanted
                    break
                if n > max_seconds * SAMPLE_RATE:
                    raise MediaError(f"{path}: audio longer than {max_seconds:g} s. Cut it, or raise the limit "
                                     f"({LIMIT_HINT}).")
    if wanted is None or n < wanted:
        _refuse_truncated(path, container, decoded[0] / SAMPLE_RATE, declared)
    try:
        return check_speech(audio[:n], path)
    except SilentAudioError as e:
        if (stream.channels or 1) > 1:
            raise SilentAudioError(f"{e} If it is not, its {stream.channels} channels may cancel out when mixed to "
                                   "mono (one the other inverted): keep one of them.") from None
        raise


def check_speech(audio: np.ndarray, where) -> np.ndarray:
    """Refuse (MediaError) speech that is empty, shorter than one video frame, silent, or has NaN/infinite samples;
    returns it."""
    if audio.size < SAMPLES_PER_FRAME:
        raise MediaError(f"{where}: audio is empty or shorter than one video frame "
                         f"({audio.size} samples at {SAMPLE_RATE} Hz). Give a recording with speech in it.")
    if np.sqrt(check_finite(audio, where)) < MIN_SPEECH_RMS:  # one pass over the samples for both checks
        raise SilentAudioError(f"{where}: audio is silent (RMS below {MIN_SPEECH_RMS}). Give a recording with speech "
                               "in it.")
    return audio


def samples_of(array, where: str = "the audio array") -> np.ndarray:
    """Speech handed over as an array, as read_audio gives it: (N,) float32, full scale 1. Integer samples (int16
    as a WAV holds them) are scaled to full scale 1; (N, C) or (C, N) with up to 8 channels are mixed to mono."""
    array = np.asarray(array)
    if array.dtype.kind not in "iuf" or array.ndim > 2:
        raise MediaError(f"{where}: {array.ndim}-D {array.dtype} array; give speech as (N,) samples (float, full "
                         "scale 1, or int16), or a file path.")
    peak = float(np.nanmax(np.abs(array), initial=0.0)) if array.dtype.kind == "f" and array.size else 0.0
    if FLOAT_PEAK_LIMIT < peak < np.inf:  # NaN and infinities: check_speech names them
        raise MediaError(f"{where}: float samples peaking at {peak:g} look like int16 values (full scale is 1); "
                         "divide them by 32768, or pass the int16 array itself.")
    if array.dtype.kind in "iu":
        info = np.iinfo(array.dtype)
        middle = (int(info.max) + int(info.min) + 1) / 2  # 0 for signed, 128 for uint8
        array = (array.astype(np.float32) - middle) / (int(info.max) + 1 - middle)
    if array.ndim == 2:
        channels = [axis for axis in (0, 1) if array.shape[axis] <= 8]  # the short side holds the channels
        if min(array.shape) > 1 and len(channels) != 1:
            raise MediaError(f"{where}: shape {array.shape} does not say which side holds the channels; give "
                             "(N,) mono samples.")
        if min(array.shape) > 1:
            mixed = array.mean(axis=channels[0])
            if _mean_square(mixed) < MIN_SPEECH_RMS ** 2 <= _mean_square(np.ravel(array)):
                raise MediaError(f"{where}: its channels cancel out when mixed to mono (one is the other inverted); "
                                 "give one channel of it.")
            array = mixed
        else:
            array = array.reshape(-1)
    return check_speech(np.ascontiguousarray(array, np.float32), where)


EXACT_DURATION_FORMATS = {"flac", "mov,mp4,m4a,3gp,3g2,mj2"}  # headers that state the length exactly
TRUNCATION_TOLERANCE = 0.25  # seconds an audio stream may fall short of its declared length (codec priming)


def _declared_seconds(container, stream) -> float | None:
    """The audio length a header states exactly (FLAC STREAMINFO, mp4 sample tables, WAV data size, an MP3's frame
    count), or None."""
    if container.format.name == "wav":
        return _wav_declared_seconds(container.name, stream)
    exact = container.format.name in EXACT_DURATION_FORMATS or (container.format.name == "mp3"
                                                                 and _mp3_counts_frames(container.name))
    if exact and stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


def _mp3_counts_frames(path) -> bool:
    """Whether an MP3's first frame holds a Xing, Info or VBRI header (its frame count: an exact length; without one
    the length is guessed from the bit rate)."""
    with open(path, "rb") as f:
        head = f.read(10)
        skip = 10 + sum((b & 0x7F) << 7 * (3 - i) for i, b in enumerate(head[6:10])) if head[:3] == b"ID3" else 0
        f.seek(skip)
        frame = f.read(200)  # the tag sits 4 + 9..32 side-info bytes (+ 32 for VBRI) into the first frame
    return any(tag in frame for tag in (b"Xing", b"Info", b"VBRI"))


def _wav_declared_seconds(path, stream) -> float | None:
    """Seconds of sound a WAV header's data chunk declares (None for streamed WAVs, which leave it unset)."""
    with open(path, "rb") as f:
        if f.read(12)[8:12] != b"WAVE":
            return None
        fmt = None
        while header := f.read(8):
            if len(header) < 8:
                return None
            chunk, size = header[:4], int.from_bytes(header[4:], "little")
            if chunk == b"fmt ":
                fmt = f.read(size)
                size = size % 2  # only the pad byte remains to skip
            elif chunk == b"data":
                if fmt is None or len(fmt) < 16 or size in (0, 0xFFFFFFFF):
                    return None
                bytes_per_second = int.from_bytes(fmt[8:12], "little")
                return size / bytes_per_second if bytes_per_second else None
            f.seek(size + size % 2, os.SEEK_CUR)
    return None


def _refuse_truncated(path, container, decoded: float, declared: float | None) -> None:
    if declared is not None and decoded < declared - TRUNCATION_TOLERANCE:
        raise MediaError(f"{path}: damaged audio, cut short: its header declares {declared:.2f} s but only "
                         f"{decoded:.2f} s are in the file (an interrupted download or copy?). Use a complete copy.")


def _mean_square(x: np.ndarray, block: int = 1 << 20) -> float:
    """Mean of x**2 in float64, a block at a time (no full-size temporaries)."""
    total = 0.0
    for i in range(0, x.size, block):
        b = x[i:i + block].astype(np.float64)
        total += float(b @ b)
    return total / max(x.size, 1)


def check_finite(audio: np.ndarray, where) -> float:
    """Refuse audio with NaN or infinite samples (a damaged float file), which would reach the model as NaN.
    Returns the samples' mean square."""
    mean_square = _mean_square(audio)
    if not np.isfinite(mean_square):
        raise MediaError(f"{where}: the audio has NaN or infinite samples (a damaged float recording). "
                         "Export it again, e.g. as 16-bit WAV.")
    return mean_square


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
    if not len(frames):
        return float(TARGET_SPEECH_RMS / MIN_SPEECH_RMS)
    step = MEL_CHUNK_FRAMES * MELS_PER_FRAME
    rms = np.concatenate([np.sqrt(np.mean(frames[i:i + step].astype(np.float64) ** 2, axis=1))
                          for i in range(0, len(frames), step)])  # a chunk at a time: no full float64 copy
    return float(TARGET_SPEECH_RMS / max(np.percentile(rms, 95), MIN_SPEECH_RMS))


MEL_CHUNK_FRAMES = 250  # video frames (10 s) of log-mel computed at a time, so memory is flat in audio length


def log_mel(audio: np.ndarray, n_frames: int | None = None, rows: tuple[int, int] | None = None,
            gain: float | None = None) -> np.ndarray:
    """Loudness-normalised log-mel spectrogram, MELS_PER_FRAME rows per video frame.

    audio: (N,) float32 at SAMPLE_RATE. With n_frames, audio is first fitted to n_frames video
    frames; otherwise to floor(N / SAMPLES_PER_FRAME) frames. Windows are centred (reflect padding),
    Hann, N_FFT long, every HOP_LENGTH; the last, half-outside window is dropped, so the result is
    exactly (n_frames * MELS_PER_FRAME, N_MELS) float32, and row 4i..4i+3 covers video frame i.
    Values: log10(max(mel power, LOG_MEL_FLOOR)) after the waveform is scaled by speech_gain(),
    then shifted and scaled to roughly [-1, 1]: (x + 4.5) / 4.5. Computed MEL_CHUNK_FRAMES at a time:
    beyond the result itself (1.3 kB per frame), memory does not grow with the audio's length.
    rows=(r0, r1): only those rows of the result, exactly as the whole computation gives them (gain:
    speech_gain(audio), passed in when the caller computes many pieces of one audio, or a streaming caller's
    own, which cannot see the whole utterance's level).
    """
    if n_frames is None:
        n_frames = audio.size // SAMPLES_PER_FRAME
    if n_frames < 1:
        raise MediaError(f"audio of {audio.size} samples is shorter than one video frame "
                         f"({SAMPLES_PER_FRAME} samples). Give longer speech.")
    audio = np.asarray(audio, np.float32)
    gain = speech_gain(audio) if gain is None else gain
    length = n_frames * SAMPLES_PER_FRAME  # the fitted signal: audio trimmed or zero-padded to n_frames
    first, n_windows = rows or (0, n_frames * MELS_PER_FRAME)
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)  # periodic Hann
    offsets = np.arange(N_FFT)[None] + HOP_LENGTH * np.arange(MEL_CHUNK_FRAMES * MELS_PER_FRAME)[:, None]
    out = np.empty((n_windows - first, N_MELS), np.float32)
    for w0 in range(first, n_windows, MEL_CHUNK_FRAMES * MELS_PER_FRAME):
        w1 = min(w0 + MEL_CHUNK_FRAMES * MELS_PER_FRAME, n_windows)
        # samples under windows w0..w1-1 of the centred (reflect-padded) fitted signal
        j = np.arange(w0 * HOP_LENGTH - N_FFT // 2, (w1 - 1) * HOP_LENGTH + N_FFT - N_FFT // 2)
        j = np.where(j < 0, -j, np.where(j >= length, 2 * (length - 1) - j, j))
        x = np.where(j < audio.size, audio[np.minimum(j, audio.size - 1)], np.float32(0)) * gain
        power = np.abs(np.fft.rfft(x[offsets[:w1 - w0]] * window, axis=1)) ** 2  # (windows, N_FFT//2+1)
        mel = power.astype(np.float32) @ MEL_FILTERS.T
        out[w0 - first:w1 - first] = (np.log10(np.maximum(mel, LOG_MEL_FLOOR)) + 4.5) / 4.5
    return out


def check_output(out: str | os.PathLike, inputs: dict[str, object], suffix: str | None = ".mp4",
                 flag: str = "-o") -> None:
    """Refuse, before any work, an output path that cannot end well: one of the inputs (it would be
    replaced while still read), a folder, a name that says another format than `suffix` (what is written),
    or a place that cannot be written.

    inputs: {name shown in the error (e.g. "--face"): path, array or None}; flag: the option that named `out`, for
    the errors. Raises MediaError.
    """
    example = f"{flag} {Path(out) / ('out' + (suffix or '.json'))}"
    if str(out).endswith(("/", os.sep)):
        raise MediaError(f"{out}: names a folder. Give the output file's path, e.g. {example}.")
    out = Path(out)
    for name, path in inputs.items():
        if path is None or not isinstance(path, (str, os.PathLike)):
            continue
        path = Path(path)
        if out.resolve() == path.resolve() or (out.exists() and path.exists() and os.path.samefile(out, path)):
            raise MediaError(f"{out}: the output is the {name} input file; writing it would destroy the input. "
                             f"Give another output path ({flag}).")
    if out.is_dir():
        raise MediaError(f"{out}: is a folder. Give the output file's path, e.g. {example}.")
    if suffix and out.suffix.lower() != suffix:
        raise MediaError(f"{out}: lipgen writes {suffix[1:]} files; name the output {out.with_suffix(suffix).name}.")
    folder = next((p for p in [out.parent, *out.parent.parents] if p.exists()), None)
    if folder is not None and not (folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)):
        raise MediaError(f"{out}: cannot write there ({folder} is not a writable folder). Give another output path.")


X264_PRESET = "veryfast"  # half the encoding time of "fast" at the same crf (a third of generation's time before)


BT601_TAGS = (6, 1, 6, 6)  # FFmpeg's colorspace, range, primaries, transfer: SMPTE 170M (BT.601), limited range
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)  # the encoder's rates, up to 48 kHz
AAC_BLOCK = 1024  # samples per AAC frame


class Mp4Writer:
    """Stream frames into an H.264 (yuv420p) mp4, then mux AAC audio on close.

    The sound is `sound`'s own first audio stream where a file is given (the speech file, or the driving video),
    at its own rate (48 kHz at most) and as mono or stereo, so the listener hears what was given; otherwise
    `audio`, mono samples at SAMPLE_RATE (what the models hear). Either is fitted to the frames written (trimmed or
    padded with silence), so both streams end together; a file's sound is placed as read_audio places it (from
    a video's first picture), so the picture keeps the timing the model heard.

    threads: x264's encoding threads (default: its own choice, 1.5 per core); lipgen.generate leaves one core
    to the thread that draws the frames meanwhile.

    The file is written under a temporary name and renamed on a clean close: a reader never sees
    half a file, and an error leaves nothing behind (what a killed writer left is removed by the next one). Odd frame sizes are padded by one pixel
    (H.264 needs even sizes).

        with Mp4Writer("out.mp4", audio=samples) as w:
            for frame in frames: w.write(frame)
    """

    def __init__(self, path: str | os.PathLike, audio: np.ndarray | None = None, fps: int | Fraction = VIDEO_FPS,
                 crf: int = 18, preset: str = X264_PRESET, tune: str | None = None, threads: int | None = None,
                 sound: str | os.PathLike | None = None):
        self.path, self.audio, self.fps, self.crf, self.preset = Path(path), audio, fps, crf, preset
        self.options = {"crf": str(crf), "preset": preset, **({"tune": tune} if tune else {}),  # x264's
                        **({"threads": str(threads)} if threads else {})}  # threads: x264's own choice if None
        self.sound_file = sound
        self.rate, self.layout = _sound_format(sound) if sound is not None else (SAMPLE_RATE, "mono")
        self.frames = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(self.path.parent, self.path.name)  # of a writer killed before its rename
        fd, self.tmp = tempfile.mkstemp(suffix=".mp4", dir=self.path.parent,
                                        prefix=f".{self.path.name}{temporary_suffix()}.")
        os.close(fd)
        self.out = av.open(self.tmp, mode="w", format="mp4")
        self.video = None

    def write(self, frame: np.ndarray) -> None:
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"a frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
        h, w = frame.shape[:2]
        if h % 2 or w % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        if self.video is None:
            self.video = self.out.add_stream("libx264", rate=self.fps, options=self.options)
            self.video.width, self.video.height = frame.shape[1], frame.shape[0]
            self.video.pix_fmt = "yuv420p"
            context = self.video.codec_context  # RGB becomes limited-range BT.601 YUV: said so, for every player
            context.colorspace, context.color_range, context.color_primaries, context.color_trc = BT601_TAGS
            if self.audio is not None or self.sound_file is not None:
                self.sound = self.out.add_stream("aac", rate=self.rate, layout=self.layout)
        for packet in self.video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
            self.out.mux(packet)
        self.frames += 1

    def close(self) -> Path:
        if self.video is None:
            raise ValueError("no frames were written")
        for packet in self.video.encode():
            self.out.mux(packet)
        if self.audio is not None or self.sound_file is not None:
            n = int(round(self.frames * self.rate / self.fps))  # fitted to the frames: trimmed, or zero-padded
            pieces = (_file_sound(self.sound_file, self.rate, self.layout) if self.sound_file is not None
                      else (np.asarray(self.audio[i:i + AAC_BLOCK], np.float32)[None]  # float32 or float16 held
                            for i in range(0, len(self.audio), AAC_BLOCK)))
            with contextlib.closing(pieces):  # a file left part-read is closed here, in this thread
                for start, block in _blocks(pieces, n, len(av.AudioLayout(self.layout).channels)):
                    frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=self.layout)
                    frame.sample_rate, frame.pts = self.rate, start
                    for packet in self.sound.encode(frame):
                        self.out.mux(packet)
            for packet in self.sound.encode():
                self.out.mux(packet)
        self.out.close()
        os.chmod(self.tmp, 0o666 & ~umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the container may be half-written; the file goes anyway
            self.out.close()
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is not None:
            self.abort()
            return
        try:
            self.close()
        except BaseException:
            self.abort()
            raise


def _sound_format(path) -> tuple[int, str]:
    """The rate and layout a file's sound is muxed at: its own rate where AAC has it (else 48 kHz), mono or stereo."""
    with _open(path) as container:
        if not container.streams.audio:
            raise MediaError(f"{path}: has no audio stream. Give a speech recording (wav, flac, mp3, m4a) "
                             "or a video with sound.")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        return (rate if rate in AAC_RATES else AAC_RATES[-1]), ("mono" if stream.codec_context.channels == 1
                                                                 else "stereo")


def _file_sound(path, rate: int, layout: str):
    """A file's first audio stream as (channels, k) float32 pieces at `rate` in `layout` (see _placed_sound)."""
    with _open(path) as container:
        yield from _placed_sound(path, container, rate, layout)


def _placed_sound(path, container, rate: int, layout: str, decoded: list | None = None):
    """The container's first audio stream as (channels, k) float32 pieces at `rate` in `layout`, a decoded frame at
    a time, placed where a video's picture has it (read_video starts at the first picture): silence first where
    the sound starts later, its start dropped where it starts earlier. decoded: [samples the file holds], kept up."""
    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    drop = None
    for frame in itertools.chain(_decoded(path, container, stream, "audio"), [None]):
        if drop is None and frame is not None:
            lead = _lead_samples(container, frame, rate)
            drop = max(0, -lead)
            yield np.zeros((len(av.AudioLayout(layout).channels), max(0, lead)), np.float32)
        for out in resampler.resample(frame):
            piece = out.to_ndarray()
            if decoded is not None:
                decoded[0] += piece.shape[1]
            cut = min(drop or 0, piece.shape[1])
            drop = (drop or 0) - cut
            yield piece[:, cut:]


def _lead_samples(container, first_sound: av.AudioFrame, rate: int) -> int:
    """Samples from a video's first picture to its first sound at `rate` (negative: the sound starts earlier);
    0 for a file without pictures or timestamps."""
    if not container.streams.video or first_sound.time is None:
        return 0
    video = container.streams.video[0]
    if video.start_time is None or video.time_base is None or video.disposition & av.stream.Disposition.attached_pic:
        return 0  # no timing, or an audio file's cover picture
    return int(round((first_sound.time - float(video.start_time * video.time_base)) * rate))


def _blocks(pieces, n: int, channels: int):
    """(start, (channels, AAC_BLOCK or fewer) float32) blocks of exactly n samples in all from (channels, k)
    pieces: cut at n, padded with silence up to n."""
    held, start = np.zeros((channels, 0), np.float32), 0
    for piece in itertools.chain(pieces, itertools.repeat(None)):
        if piece is not None:
            held = np.concatenate([held, np.asarray(piece, np.float32)[:, :n - start - held.shape[1]]], axis=1)
        else:
            held = np.pad(held, ((0, 0), (0, min(AAC_BLOCK, n - start) - held.shape[1])))
        while held.shape[1] >= AAC_BLOCK or (held.shape[1] and start + held.shape[1] == n):
            size = min(AAC_BLOCK, held.shape[1])
            yield start, np.ascontiguousarray(held[:, :size])
            held, start = held[:, size:], start + size
        if start >= n:
            return


def write_wav(path: str | os.PathLike, samples: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    """Write (N,) mono or (C, N) samples, full scale 1, as a 16-bit PCM WAV at `rate` (a block at a time)."""
    samples = np.atleast_2d(samples)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(len(samples)), w.setsampwidth(2), w.setframerate(rate)
        for i in range(0, samples.shape[1], 1 << 18):
            block = np.clip(samples[:, i:i + (1 << 18)], -1, 1).T * 32767
            w.writeframes(np.ascontiguousarray(block.astype(np.int16)).tobytes())
    return Path(path)



def write_mp4(path: str | os.PathLike, frames: np.ndarray, audio: np.ndarray | None = None,
              fps: int | Fraction = VIDEO_FPS, crf: int = 18, preset: str = X264_PRESET,
              sound: str | os.PathLike | None = None, threads: int | None = None) -> Path:
    """Write frames (T, H, W, 3) uint8 RGB with optional audio (N,) at SAMPLE_RATE, or a file's own sound, as an
    mp4 (see Mp4Writer)."""
    with Mp4Writer(path, audio, fps, crf, preset, threads=threads, sound=sound) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)
