"""Speech + a face (photo or video) -> an mp4 of that face saying it.

    lipgen generate --audio speech.wav --face photo.png -o out.mp4

The audio's log-mel is cut into the model's windows (16 frames for Glance, every 12); the model makes each
window's mouth crops, overlapping frames are cross-faded, and every crop is pasted back into its
full frame with a feathered seam. Frames stream from the source to the encoder, so memory stays
bounded however long the audio is. A still photo becomes a video; a video source keeps its own
frames and frame rate (played back and forth if shorter than the audio) and gets new lips.

`generate` is one call of a `Generator`, which holds a loaded model for many generations (`lipgen.load_model()`,
like whisper's); the base of `lipgen generate`, `lipgen batch`, `lipgen stream` and `lipgen demo`:

    import lipgen
    model = lipgen.load_model()                 # the shipped motion model; load_model("davs"), checkpoint=...
    model.generate("a.wav", "face.jpg", "a.mp4")
    model.generate("b.wav", "face.jpg", "b.mp4")  # the model is not loaded again, the face not tracked again

Each face source (a photo or video, with its face choice, frame rate, loop and padding) is tracked once and
kept (the most recent FACE_CACHE of them), so a batch of speeches onto one face tracks it once.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
from collections import OrderedDict
from fractions import Fraction
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import face as geometry
from . import media, render
from .errors import EXPRESSIVENESS_RANGE, check_number
from .lips import wider_inner_lips
from .inference import (driven_crops, inference_autocast, model_crops, predicted_motion,  # noqa: F401
                        video_mouths, windowed)
from .inference import load_model as load_generator  # the network alone (scripts use it); load_model: a Generator
from . import ASSETS
from .models import DEFAULT_MODEL  # noqa: F401
from .models.base import DRIVEN, can
from .pixels import grey_as

SAMPLE_AUDIO = ASSETS / "jfk.flac"
SAMPLE_FACE = ASSETS / "astronaut.png"


# Eyes closer than this many pixels: dlib's 68 points are unsteady (on portraits shrunk to 24 px, two of 15 had their
# mouth points partly on the chin, and the opening was drawn there; docs/eval/unseen, "Framing"), so generation warns
SMALL_FACE_IOD = 30
# A photo whose lips are further apart than this share of the eye distance: generation closes its mouth by warping
# the lower lip up to the upper, and dlib's inner-lip points on a mouth open that wide can sit on the tongue or teeth
# rather than on the lips (vexpress_AOC's first frame, 0.35: the tongue stayed between the closed lips; the bundled
# astronaut smiling with her teeth shows 0.16), so generation warns.
WIDE_OPEN = 0.25
log = logging.getLogger(__name__)
LOOPS = ("pingpong", "forward")  # how a video shorter than the speech goes on: back and forth, or from its start
PINGPONG_MAX_BYTES = 4 << 30  # a ping-pong loop keeps the video's decoded frames in memory: at most this much
MIN_FPS, MAX_FPS = 1, 240  # output frame rates one may ask for (--fps)
# a face video slower than this (a slideshow, a timelapse, a GIF) is drawn at media.VIDEO_FPS unless --fps says
# otherwise: at its own rate the mouth could change only that often, too seldom to follow speech
MIN_LIP_FPS = 20
CROP_PAD = 0.1  # most --pad the crop models take without a warning: more shows them a crop unlike their training
FACE_CACHE = 16  # prepared face sources kept by a Generator (landmarks and matrices: ~1 MB per minute of video)


def loop_index(t: int, n: int, loop: str = "pingpong") -> int:
    """Which of a video's n frames shows at output frame t: forward 0..n-1, 0..n-1, ...; pingpong 0..n-1, n-2..1,
    0..n-1, ... (no frame twice at a turn, so the motion never stops or jumps)."""
    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {', '.join(LOOPS)}, got {loop!r}")
    if n == 1:
        return 0
    if loop == "forward":
        return t % n
    p = t % (2 * n - 2)
    return p if p < n else 2 * n - 2 - p


class FaceSource:
    """Frames of the target face, with their mouth-crop matrices, streamed for output frame 0, 1, 2, ...

    A video's frames without the face (a cutaway, an opening before the face appears) have NaN landmarks
    and matrices, and frames() gives None as their matrix: they are passed through untouched.
    fps: the output frame rate (default: a video's own rate, media.VIDEO_FPS for a photo or a video under
    MIN_LIP_FPS); loop: how a video shorter than the speech goes on (LOOPS); face_box: (x0, y0, x1, y1) pixels
    of the first frame, pins the face overlapping it (instead of face_index); pad: extra share of the crop side
    the crop models' mouth and face crops show on every side (see face.padded).
    """

    def __init__(self, path: str | os.PathLike, face_index: int | None = None, max_seconds: float = media.MAX_SECONDS,
                 fps=None, loop: str = "pingpong", face_box=None, pad: float = 0.0):
        self.path, self.max_seconds = Path(path), max_seconds
        loop_index(0, 1, loop)  # an unknown loop is refused before any work
        self.loop, self.pad = loop, check_number("padding (pad: a share of the changed region's size)", pad, 0, 1)
        if fps is not None:
            check_number("the output frame rate (fps; or leave it out: a video's own rate, "
                         f"{media.VIDEO_FPS} for a photo)", fps, MIN_FPS, MAX_FPS)
        self.still = media.is_still(self.path)
        if self.still:
            self.image = media.read_image(path)
            self.fps = Fraction(fps or media.VIDEO_FPS).limit_denominator(1001)  # exact: 29.97 -> 2997/100
            frames = self.image[None]
        else:  # first pass: landmarks only (a frame at a time), so long videos fit in memory
            self.fps = Fraction(fps).limit_denominator(1001) if fps else media.video_fps(path)
            if not fps and self.fps < MIN_LIP_FPS:
                log.info("%s plays at %.3g fps, too few frames for lips to follow speech: drawn at %d fps (its frames "
                         "held); --fps N chooses", path, float(self.fps), media.VIDEO_FPS)
                self.fps = Fraction(media.VIDEO_FPS)
            frames = media.iter_video(path, fps=self.fps, max_seconds=max_seconds)
        if face_box is not None:
            first = self.image if self.still else next(media.iter_video(path, fps=self.fps, max_seconds=max_seconds))
            face_index = geometry.face_index_at(first, face_box, f"the first frame of {path}",
                                                scale=max(first.shape[:2]) / media.longer_side(path))
        cuts = []
        landmarks, _ = geometry.track_landmarks(frames, face_index, where=str(path), allow_missing=not self.still,
                                                cuts=cuts)
        if self.still:  # a photo's inner lips read again where MediaPipe is installed (lipgen.lips)
            landmarks[0] = wider_inner_lips(self.image, landmarks[0])
        self.landmarks = landmarks  # (T, 68, 2) frame pixels, NaN where a frame has no face
        iod = np.nanmedian(geometry.eye_distance(landmarks))
        if iod < SMALL_FACE_IOD:
            log.warning("the face in %s is small (eyes %.0f px apart): its lip landmarks may be off and the mouth "
                        "drawn in the wrong place; a closer or larger picture (eyes %d+ px apart) works better",
                        path, iod, SMALL_FACE_IOD)
        gap = render.source_opening(landmarks[0]) / iod if self.still else 0.0
        if gap > WIDE_OPEN:
            log.warning("the mouth in %s is open wide (lips %.2f of the eye distance apart): lipgen closes it by "
                        "warping, and teeth or tongue can show between the closed lips; a photo with closed or "
                        "slightly parted lips works better", path, gap)
        self.face_matrix, self.mouth_matrix = geometry.crop_matrices_in_runs(landmarks, cuts)  # NaN where no face
        seen = ~np.isnan(landmarks[:, 0, 0])
        self.cuts = [t for t in cuts if seen[t]]  # frames that start a scene with a face in it
        t = int(np.argmax(seen))  # the first frame with the face gives the identity crops
        video = None if self.still else media.iter_video(path, fps=self.fps, max_seconds=max_seconds)
        first = self.image if self.still else next(itertools.islice(video, t, None))
        self.shape = first.shape  # (H, W, 3)
        at = slice(t, t + 1)
        mouth, face = self.crop_matrices("mouth")[at], self.crop_matrices("face")[at]
        self.identity_mouth = geometry.crop(first[None], mouth, geometry.MOUTH_SIZE)[0]  # (64, 64, 3)
        self.identity_face = geometry.crop(first[None], face, geometry.FACE_SIZE)[0]  # (128, 128, 3)

    def crop_matrices(self, crop: str = "mouth") -> np.ndarray:
        """(T, 2, 3) frame -> crop matrices of the crop models' mouth (64 px) or face (128 px) crops, padded."""
        if crop == "mouth":
            return geometry.padded(self.mouth_matrix, geometry.MOUTH_SIZE, self.pad)
        return geometry.padded(self.face_matrix, geometry.FACE_SIZE, self.pad)

    def index(self, t: int) -> int:
        """The source frame shown at output frame t (loop_index)."""
        return loop_index(t, len(self.landmarks), self.loop)

    def check_length(self, n_frames: int) -> None:
        """Refuse before any work a ping-pong loop whose frames would not fit in memory (PINGPONG_MAX_BYTES)."""
        n = len(self.landmarks)
        need = n * int(np.prod(self.shape))
        if not self.still and self.loop == "pingpong" and n_frames > n and need > PINGPONG_MAX_BYTES:
            raise media.MediaError(f"{self.path}: {n} frames are too many to play back and forth in memory "
                                   f"({need / 2**30:.1f} GB). Use loop 'forward' (--loop forward), or a shorter clip.")

    def frames(self, crop: str = "mouth", count: int | None = None):
        """Yield (frame, frame -> crop matrix, or None where the frame has no face) for output frames 0, 1, ...
        (count of them, default forever): the photo, or the video looped (self.loop). crop: "mouth" or "face"
        (the crop models' padded crops), or "align" (the aligned face, unpadded: the motion model's)."""
        matrices = self.face_matrix if crop == "align" else self.crop_matrices(crop)
        matrices = [None if np.isnan(m).any() else m for m in matrices]
        ticks = range(count) if count is not None else itertools.count()
        if self.still:
            for _ in ticks:
                yield self.image, matrices[0]
            return
        n = len(matrices)
        keep = self.loop == "pingpong" and (count is None or count > n)  # frames kept for the way back
        kept, video, frame = [], None, None
        for t in ticks:
            i = self.index(t)
            if t < n or (not keep and i == 0):
                if i == 0:
                    video = media.iter_video(self.path, fps=self.fps, max_seconds=self.max_seconds)
                frame = next(video, frame)  # a decoder one frame short of the first pass: the last one held
                if keep:
                    kept.append(frame)
            elif keep:
                frame = kept[i]
            else:
                frame = next(video)
            yield frame, matrices[i]


def generate(audio: str | os.PathLike | np.ndarray | None, face: str | os.PathLike, out: str | os.PathLike = "out.mp4",
             model: str | None = None, checkpoint: str | os.PathLike | None = None, face_index: int | None = None,
             drive_video: str | os.PathLike | None = None, sample_rate: int = media.SAMPLE_RATE,
             max_seconds: float = media.MAX_SECONDS, progress=True,
             expressiveness: float | None = None, fps=None, loop: str = "pingpong", pad: float = 0.0,
             face_box=None, batch_size: int = 8, encoder_threads: int | None = None) -> Path:
    """Make `out` (mp4 with the speech file's own sound): the face in `face` saying `audio`. One call of
    lipgen.Generator, which holds the model for repeated calls.

    audio: a file ffmpeg reads, or an array of samples at `sample_rate` (must be SAMPLE_RATE): (N,) float, full scale
    1, or int16; (N, C) or (C, N) channels are mixed to mono (media.samples_of).
    face: a photo (png, jpg, ...) or a video; face_index picks one of several faces (largest first), or
    face_box (x0, y0, x1, y1 pixels of the first frame) the one it overlaps most.
    model: a shipped model's name (default DEFAULT_MODEL, "motion"); checkpoint: a trained model file instead.
    drive_video: instead of audio, drive the face with the mouth movements of the person in this video
    (models that read lips: DAVS); its own sound is muxed unless `audio` is given too.
    expressiveness: how far the motion model moves the mouth, times its prediction (default
    lipgen.models.motion.EXPRESSIVENESS); other models ignore it.
    fps: output frame rate (default: a video face's own rate; 25 for a photo or a video under 20 fps); loop: a
    video shorter than the speech plays "pingpong" (back and forth, default) or "forward" (from its start again);
    pad: share of the changed region's size added around it (crop models: their crops; motion: the warp's fade
    beyond the jaw);
    batch_size: windows per forward pass (glance, davs); progress: True (a bar), False, or a function called with
    (frames written, frames in all) after each frame, whose exception stops the job (no output is left).
    encoder_threads: x264's threads (default: the cores but one). x264's output depends on its thread count (a
    quarter of the pixels differ between 1 and 2 threads), so the judges fix it to compare runs across machines.
    Raises MediaError (unreadable/empty/too-long audio or video), FaceNotFoundError, MultipleFacesError.
    """
    return Generator(model, checkpoint, batch_size=batch_size).generate(
        audio, face, out, face_index=face_index, face_box=face_box, drive_video=drive_video, sample_rate=sample_rate,
        max_seconds=max_seconds, progress=progress, expressiveness=expressiveness, fps=fps, loop=loop, pad=pad,
        encoder_threads=encoder_threads)


def _write(out, frames, samples: np.ndarray, n_frames: int, progress, fps=media.VIDEO_FPS,
           sound=None, threads: int | None = None) -> Path:
    """Write the frames and the sound to `out`. progress: True (a bar), False, or a function called with (frames
    written, n_frames) after each frame, whose errors stop the job (nothing is written). threads: x264's (default:
    the cores but one)."""
    report = progress if callable(progress) else None
    bar = tqdm(total=n_frames, desc="generate", unit="frame", disable=not progress or report is not None)
    # the writer fits the sound (sound's own, else the samples) to the frames written; one core makes the frames,
    # the others encode them
    threads = threads or max(1, _cores() - 1)
    with media.Mp4Writer(out, audio=samples, fps=fps, threads=threads, sound=sound) as writer, \
            render.one_blas_thread():
        for done, frame in enumerate(prefetched(frames), 1):
            writer.write(frame)
            bar.update()
            if report is not None:
                report(done, n_frames)
    bar.close()
    return Path(out)


def _cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def prefetched(items, depth: int = 4):
    """Iterate `items` with a thread making them up to `depth` ahead, so that making frames (the warp, the
    paste-back) runs while the encoder (x264, which releases the GIL) compresses the previous ones. Errors
    of the maker are raised here; if the caller stops early, the maker's own generator is closed in its
    own thread (a video decoder is closed by the thread that read it)."""
    box, stop, done = queue.Queue(depth), threading.Event(), object()

    def offer(item) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def make():
        source = iter(items)
        try:
            for item in source:
                if not offer(item):
                    break
            else:
                offer(done)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, who raises it
            offer(_Failed(e))
        finally:
            getattr(source, "close", lambda: None)()

    maker = threading.Thread(target=make, name="lipgen-frames", daemon=True)
    maker.start()
    try:
        while (item := box.get()) is not done:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        maker.join()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def motion_frames(system, samples: np.ndarray, n_frames: int, source: FaceSource, expressiveness: float | None = None):
    """n_frames frames (at source.fps) of the source face moved by the motion model's prediction for `samples`
    (lipgen.render)."""
    n_model = -(-samples.size // media.SAMPLES_PER_FRAME)  # the model's own frames, at media.VIDEO_FPS
    motion = retime(predicted_motion(system, samples, n_model, expressiveness), n_frames, source.fps)
    tracked = ((frame, source.landmarks[source.index(t)], matrix)
               for t, (frame, matrix) in enumerate(source.frames("align", n_frames)))
    return render.animate(tracked, render.rest_of(source.landmarks, source.face_matrix), motion, source.pad,
                          source.still)


def retime(series: np.ndarray, n_frames: int, fps) -> np.ndarray:
    """A (T, ...) series at media.VIDEO_FPS resampled to n_frames frames at `fps` (linear between frames; the
    last frame held past the end): (n_frames, ...). At VIDEO_FPS it is returned as it is."""
    if fps == media.VIDEO_FPS and len(series) == n_frames:
        return series
    at = np.minimum(np.arange(n_frames) * float(media.VIDEO_FPS / Fraction(fps)), len(series) - 1)
    lo = np.floor(at).astype(int)
    hi = np.minimum(lo + 1, len(series) - 1)
    w = (at - lo).reshape(-1, *[1] * (series.ndim - 1))
    return (1 - w) * series[lo] + w * series[hi]


class Generator:
    """A generation model, loaded once. model: a shipped model's name (default "motion") or None;
    checkpoint: a trained model file instead. batch_size: windows per forward pass (glance, davs);
    expressiveness: the motion model's default mouth scale (see lipgen.generate.generate)."""

    def __init__(self, model: str | None = None, checkpoint: str | os.PathLike | None = None, batch_size: int = 8,
                 expressiveness: float | None = None):
        check_number("batch_size", batch_size, 1, integer=True)
        if expressiveness is not None:
            check_number("expressiveness", expressiveness, *EXPRESSIVENESS_RANGE)
        self.system = load_generator(model, checkpoint)  # the model itself (the network)
        self.model = model or type(self.system).__name__.lower()
        if self.system.crop == "none":
            raise ValueError(f"{self.model} is a sync expert: it scores lip sync and draws nothing. Generate with "
                             "--model motion, glance, crgan or davs.")
        self.batch_size, self.expressiveness = batch_size, expressiveness
        self._faces: OrderedDict[tuple, FaceSource] = OrderedDict()

    def face(self, face: str | os.PathLike, face_index: int | None = None, face_box=None, fps=None,
             loop: str = "pingpong", pad: float = 0.0, max_seconds: float = media.MAX_SECONDS) -> FaceSource:
        """The prepared face source (tracked once per file, options and modification time, then reused)."""
        if not isinstance(face, (str, os.PathLike)):
            raise TypeError(f"the face is a file path (a photo or a video), got {type(face).__name__}; save an image "
                            "array first, e.g. PIL.Image.fromarray(rgb).save('face.png')")
        path = Path(face)
        stat = path.stat() if path.is_file() else None
        key = (str(path.resolve()), stat and stat.st_mtime_ns, stat and stat.st_size, face_index,
               None if face_box is None else tuple(float(v) for v in face_box), fps, loop, pad, max_seconds)
        if key in self._faces:
            self._faces.move_to_end(key)
            return self._faces[key]
        log.info("%s the face in %s", "finding" if path.is_file() and media.is_still(path) else "tracking", path)
        source = FaceSource(path, face_index, max_seconds, fps=fps, loop=loop, face_box=face_box, pad=pad)
        self._faces[key] = source
        while len(self._faces) > FACE_CACHE:
            self._faces.popitem(last=False)
        return source

    def generate(self, audio, face: str | os.PathLike, out: str | os.PathLike = "out.mp4",
                 face_index: int | None = None, face_box=None, drive_video: str | os.PathLike | None = None,
                 sample_rate: int = media.SAMPLE_RATE, max_seconds: float = media.MAX_SECONDS, progress=True,
                 expressiveness: float | None = None, fps=None, loop: str = "pingpong", pad: float = 0.0,
                 encoder_threads: int | None = None) -> Path:
        """Make `out`: the face in `face` saying `audio`; the arguments as lipgen.generate.generate's."""
        if audio is not None and not isinstance(audio, (str, os.PathLike, np.ndarray)):
            raise TypeError(f"audio: give a file path or a numpy array of samples, not {type(audio).__name__}")
        media.check_output(out, {"--audio": audio, "--face": face, "--drive-video": drive_video})
        if expressiveness is not None:
            check_number("expressiveness", expressiveness, *EXPRESSIVENESS_RANGE)
        check_number("max_seconds", max_seconds, 0.001)
        if encoder_threads is not None:
            check_number("encoder_threads", encoder_threads, 1, integer=True)
        if drive_video is not None and media.is_still(drive_video):
            raise media.MediaError(f"{drive_video}: a still image; --drive-video takes a video of someone speaking.")
        system = self.system
        if system.crop != "motion" and expressiveness is not None:
            log.warning("expressiveness moves the motion model's mouths; the %s model ignores it", self.model)
        if system.crop != "motion" and pad > CROP_PAD:
            log.warning("pad %.2f: the %s model is shown its crop widened so, unlike any it was trained on, and its "
                        "output degrades", pad, self.model)
        # the motion path holds its speech as float16, each piece made float32 as it is used: half the memory
        samples = speech(audio, drive_video, sample_rate, max_seconds,
                         np.float16 if system.crop == "motion" and drive_video is None else np.float32)
        sound = drive_video if audio is None else None if isinstance(audio, np.ndarray) else audio
        sound = sound if sound is not None and os.path.isfile(sound) else None  # a file's own sound, read again
        source = self.face(face, face_index, face_box, fps, loop, pad, max_seconds)
        n_frames = -(-samples.size * source.fps.numerator // (media.SAMPLE_RATE * source.fps.denominator))  # ceil
        if drive_video is not None:
            if not can(system, DRIVEN):
                raise ValueError(f"the {type(system).__name__} model generates from audio only; --drive-video needs "
                                 "--model davs")
            mouths = video_mouths(drive_video, max_seconds)
            if audio is not None and len(mouths) * media.SAMPLES_PER_FRAME < samples.size - media.SAMPLES_PER_FRAME:
                raise media.MediaError(
                    f"{drive_video}: {len(mouths) / media.VIDEO_FPS:.1f} s of lips for {samples.size / media.SAMPLE_RATE:.1f}"
                    " s of speech; the video would end with the lips and lose the rest of the speech. Give a drive "
                    "video as long as the speech, or cut the speech.")
            kind, crops = "face", driven_crops(system, mouths, source.identity_face, self.batch_size)
            n_frames = -(-len(mouths) * source.fps.numerator // (media.VIDEO_FPS * source.fps.denominator))
        elif system.crop == "motion":  # any-face path: predicted motion warps the source itself
            source.check_length(n_frames)
            gain = self.expressiveness if expressiveness is None else expressiveness
            frames = motion_frames(system, samples, n_frames, source, gain)
            return _write(out, frames, samples, n_frames, progress, source.fps, sound, encoder_threads)
        else:
            n_model = -(-samples.size // media.SAMPLES_PER_FRAME)  # ceil: the last partial frame is kept
            kind, crops = model_crops(system, media.log_mel(samples, n_model), source.identity_mouth,
                                      source.identity_face, self.batch_size)
        source.check_length(n_frames)
        if source.cuts:
            log.warning("%s cuts to another scene at %.1f s: the %s model draws the first scene's face throughout "
                        "(the motion model, the default, follows each scene's own face)", face, source.cuts[0] /
                        float(source.fps), self.model)
        crops = held_at(crops, n_frames, source.fps) if source.fps != media.VIDEO_FPS else crops
        frames = (frame if matrix is None else  # no face: untouched
                  grey_as(geometry.paste_back(frame, geometry.match_colour(crop, frame, matrix), matrix), frame)
                  for crop, (frame, matrix) in zip(crops, source.frames(kind, n_frames)))
        return _write(out, frames, samples, n_frames, progress, source.fps, sound, encoder_threads)

    __call__ = generate


def load_model(model: str | None = None, checkpoint: str | os.PathLike | None = None, **options) -> Generator:
    """A Generator: the shipped model by name (default "motion"), or a checkpoint file. options: Generator's."""
    return Generator(model, checkpoint, **options)


def speech(audio, drive_video=None, sample_rate: int = media.SAMPLE_RATE,
           max_seconds: float = media.MAX_SECONDS, dtype=np.float32) -> np.ndarray:
    """The speech to say as (N,) float32 at SAMPLE_RATE: `audio` (a file or an array at sample_rate), or else
    the driving video's sound. dtype=np.float16: a file is read into half the memory (media.read_audio)."""
    if isinstance(audio, np.ndarray):
        media.check_sample_rate(sample_rate)
        samples = media.samples_of(audio)
        if samples.size > max_seconds * media.SAMPLE_RATE:
            raise media.MediaError(f"audio longer than {max_seconds:g} s. Cut it, or raise max_seconds.")
        return samples
    if audio is not None:
        return media.read_audio(audio, max_seconds=max_seconds, dtype=dtype)
    if drive_video is not None:
        if not media.has_audio(drive_video):
            raise media.MediaError(f"{drive_video}: the driving video has no sound. Give the speech with --audio.")
        return media.read_audio(drive_video, max_seconds=max_seconds, dtype=dtype)
    raise ValueError("give speech audio, or a driving video (--drive-video)")


def held_at(frames, n_frames: int, fps):
    """Frames made at media.VIDEO_FPS, shown at `fps`: output frame k is the latest input frame at or before
    its time (dropped or repeated, as media.iter_video does). Streamed: n_frames of them."""
    ratio = media.VIDEO_FPS / float(fps)
    made, current = -1, None
    it = iter(frames)
    for k in range(n_frames):
        want = int(np.floor(k * ratio + 1e-9))
        while made < want:
            nxt = next(it, None)
            if nxt is None:
                break
            current, made = nxt, made + 1
        yield current
