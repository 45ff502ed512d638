"""Evaluation on any folder of talking-face videos, with no preprocessing cache.

    lipgen evaluate-videos FOLDER --out DIR [--models glance crgan] [--seconds 8] [--manifest F] [--work DIR]

Each clip is cut to its first `seconds`, brought to 25 fps and, if larger, downscaled so its longer
side is MAX_SIDE pixels: one prepared copy in the work folder that every row uses, so all rows are
compared on the same frames. Rows:
- "ground truth": the prepared clip itself (the ceiling: LMD 0, opening correlation 1);
- "static": its first frame held for the whole clip (the floor: a face that never moves);
- per model, "from photo": the first frame as the face photo + the clip's own audio (self-reenactment),
  "dubbing": the clip's own frames as the face video + its own audio, and "voice only": a face the models
  know (GRID s1's first frame, VOICE_FACE) + the clip's audio, scored only by how its mouth opening follows
  the real speaker's (the audio side alone).
Sync is judged by two experts: the landmark expert (lipgen.models.lmsync, the judge in the wild) and
lipgen's GRID pixel expert (kept for comparison).
Every row is an mp4 at the prepared resolution; lipgen's tracker finds the 68 landmarks on it and each
measure compares them with the real clip's, or reads the row's own pixels and sound (sharpness, identity,
sync). Silence comes from the audio (an energy detector, `speech_frames`). Still portraits driven by
speech with word timings: lipgen.evaluation.portraits. Column definitions: docs/metrics.md, "In the wild".

Generated videos and landmarks stay in the work folder (--work), keyed by clip, row and the model
checkpoint's size and modification time: a re-run, or a run with one more model, redoes only what changed.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import itertools
import json
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage
from tqdm import tqdm

from .. import face as geometry
from ..face import EYES, eye_distance
from .. import media
from ..errors import EXPRESSIVENESS_RANGE, MultipleFacesError, check_number
from ..files import json_text, save_figure, write_atomic
from ..generate import generate
from .. import ASSETS
from ..models import model_classes, shipped_checkpoint, shipped_models
from . import metrics
from .cpbd import BLOCK_SIZE, cpbd
from .evaluate import IDENTITY_EVERY
from .sync import MAX_OFFSET, SYNC_FRAMES

log = logging.getLogger(__name__)

MAX_SIDE = 720  # pixels: longer side of the prepared frames; larger inputs are downscaled to it
MIN_SIDE = 128  # pixels: the least --max-side that leaves a face large enough to find and read
DEFAULT_SECONDS = 8.0  # seconds of each clip evaluated (from its start)
# degrees: a still head tilted more is read turned upright (evaluate-portraits). Read upright, dlib's inner-lip gap of
# a portrait turned 10-30 degrees is as close or closer to the upright portrait's (three times at 30 degrees); below
# 10 the two readings are alike, and near-upright faces are read as they always were (docs/eval/unseen, "Framing").
ROLL_LIMIT = 10.0
CPBD_BOX = 1.5  # mouth widths (points 48-54): side of the square around the mouth that CPBD reads (whole blocks)
SPEECH_PERCENTILE = 95  # the clip's speech level: this percentile of the per-frame (40 ms) RMS
SPEECH_SHARE = 0.2  # a frame is speech if its RMS is at least this share of the speech level (-14 dB)
SPEECH_GAP = 6  # frames: speech frames at most this far apart are joined (gaps up to 200 ms: stops, word joins)
SPEECH_PAD = 2  # frames (80 ms) added to each side of speech: lips move before and after the sound
SYNC_MIN_FRAMES = MAX_OFFSET + SYNC_FRAMES  # shortest clip the sync expert can score (20 frames)
PLOTTED = 3  # clips (or portraits) whose opening curves are drawn
REFERENCE = "reference"  # the mode of the ground truth and static rows
# x264 preset of the prepared clips and the static row: "fast" keeps a held frame's pixels, so its landmarks,
# exactly still; generation's faster "veryfast" lets them drift by encoding noise (opening correlation ~0.1)
REFERENCE_PRESET = "fast"
# and two x264 threads on any machine: x264's choices depend on its thread count (with one, a held frame drifts
# as with "veryfast"), so a reference is the same bytes wherever it is made
REFERENCE_THREADS = 2
# and the models' videos with one x264 thread, whatever the machine (generation's default, the cores but one, gave
# one on the 2-core machines every committed report was made on; with two, a quarter of the pixels differ)
GENERATED_THREADS = 1
MODES = ("from photo", "dubbing", "voice only")
# "voice only": a face the models know well (GRID s1's first frame, bundled) driven by each clip's audio, scored
# by the correlation of its mouth opening with the real speaker's: does the audio side generalise to the voice?
VOICE_FACE = ASSETS / "clips" / "s1_bbaf2n.mp4"

COLUMNS = {  # key: (header, better: "lower" / "higher" / "" for a plain reading)
    "lmd_iod": ("LMD / IOD", "lower"),
    "lmd_vs_static": ("LMD vs static", "lower"),
    "opening_corr": ("opening corr.", "higher"),
    "opening_speech": ("opening in speech", ""),
    "opening_silence": ("opening in silence", "lower"),
    "opening_ratio": ("speech / silence", "higher"),
    "identity_distance": ("identity dist.", "lower"),
    "identity_kept": ("identity kept", "higher"),
    "cpbd": ("CPBD mouth", "higher"),
    "cpbd_vs_real": ("CPBD vs real", "higher"),
    "wild_conf": ("sync conf. (landmark expert)", "higher"),
    "wild_dist": ("sync dist. (landmark expert)", "lower"),
    "wild_abs_offset": ("|offset| (landmark expert)", "lower"),
    "wild_offset": ("offset (landmark expert)", ""),
    "sync_conf": ("sync conf. (GRID pixel expert)", "higher"),
    "sync_dist": ("sync dist. (GRID pixel expert)", "lower"),
    "sync_abs_offset": ("|offset| (GRID pixel expert)", "lower"),
    "sync_offset": ("offset (GRID pixel expert)", ""),
}
# What each column means, in a line: written under every report, so that a report read without lipgen's docs
# (docs/metrics.md, "In the wild": the full definitions) still says what its numbers are.
MEANINGS = {
    "lmd_iod": "the 20 mouth points of each frame, each set centred, against the real frame's; mean distance in "
               "shares of the real frame's inter-ocular distance (IOD)",
    "lmd_vs_static": "LMD / IOD over the static row's on the same clip: below 1 beats a face that never moves",
    "opening_corr": "Pearson correlation of the mouth opening, frame by frame, with the real clip's",
    "opening_speech": "mean inner-lip gap over the row's own IOD in frames with speech",
    "opening_silence": "the same in silent frames (videos: from the sound's energy; portraits: the word timings)",
    "opening_ratio": "opening in speech over opening in silence: the mouth opens to speak and rests between words",
    "ratio_at_least_2": "1 where speech / silence is at least 2; its mean is the share of inputs that reach it",
    "envelope_corr": "Pearson correlation of the mouth opening with the speech's loudness (RMS per frame)",
    "identity_distance": "dlib's face-descriptor distance of every 5th frame to the first real frame (or the "
                         "photo); under 0.6 is dlib's same person",
    "identity_kept": "share of those frames under 0.6",
    "cpbd": "CPBD sharpness of a square about the mouth, at the output's own resolution",
    "cpbd_vs_real": "the row's CPBD over the real clip's: near 1 keeps the source's sharpness",
    "cpbd_vs_photo": "the row's CPBD over the photo's: near 1 keeps the source's sharpness",
    "wild_conf": "sync confidence (LSE-C) of lipgen's landmark sync expert, which judges lip motion against "
                 "the sound for any face and voice",
    "wild_dist": "its sync distance (LSE-D) at the best offset",
    "wild_abs_offset": "the size of its best offset, in frames",
    "wild_offset": "its best offset in frames (+: the sound is later)",
    "sync_conf": "sync confidence (LSE-C) of lipgen's GRID pixel expert (trained on GRID only: weaker elsewhere)",
    "sync_dist": "its sync distance (LSE-D) at the best offset",
    "sync_abs_offset": "the size of its best offset, in frames",
    "sync_offset": "its best offset in frames (+: the sound is later)",
    "frames": "frames of the row's video (25 fps)",
}
CLIP_TABLE = ("lmd_iod", "lmd_vs_static", "opening_corr", "opening_ratio", "identity_kept", "cpbd", "wild_conf",
              "wild_offset")  # the per-clip table of report.md (report.csv has every column)


# ---------------------------------------------------------------- measures on landmarks, pixels and sound


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap per frame over the same frame's IOD: mean of the pairs (61, 67), (62, 66), (63, 65).
    (T, 68, 2) -> (T,) float64; about 0 with closed lips, 0.1-0.3 while speaking."""
    from ..models.motion import opening

    landmarks = np.asarray(landmarks, np.float64)
    return opening(landmarks) / eye_distance(landmarks)


def lmd_iod(landmarks: np.ndarray, real: np.ndarray) -> float:
    """Mouth LMD (metrics.lmd: the 20 mouth points centred on their mean, mean point distance) with both
    clips' points divided by the REAL frame's IOD first: a share of the eye distance. (T, 68, 2) each."""
    scale = eye_distance(real)[:, None, None]
    return metrics.lmd(landmarks / scale, real / scale)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two curves (T,); 0 when either is flat (a face that never moves)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def frame_rms(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """RMS of each video frame's 40 ms of audio: (n_frames * SAMPLES_PER_FRAME,) -> (n_frames,)."""
    frames = media.fit_audio(audio, n_frames).reshape(n_frames, media.SAMPLES_PER_FRAME)
    return np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))


def speech_frames(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """Energy voice-activity detection: (n_frames,) bool, True for speech.

    A frame is speech if its RMS is at least SPEECH_SHARE of the clip's speech level (the
    SPEECH_PERCENTILE-th percentile of frame RMS); gaps of at most SPEECH_GAP - 1 frames between speech
    frames are filled; speech is then widened by SPEECH_PAD frames each side. On GRID it agrees with the
    word timings (sil/sp = silence) on about 95 % of frames.
    """
    rms = frame_rms(audio, n_frames)
    speech = rms >= SPEECH_SHARE * max(np.percentile(rms, SPEECH_PERCENTILE), media.MIN_SPEECH_RMS)
    voiced = np.flatnonzero(speech)
    for a, b in zip(voiced[:-1], voiced[1:]):
        if b - a <= SPEECH_GAP:
            speech[a:b] = True
    return ndimage.binary_dilation(speech, iterations=SPEECH_PAD) if speech.any() else speech


def openings(curve: np.ndarray, speech: np.ndarray) -> dict:
    """Mean mouth opening in speech and in silence frames, and speech / silence (NaN where a side is empty)."""
    in_speech = float(curve[speech].mean()) if speech.any() else float("nan")
    in_silence = float(curve[~speech].mean()) if (~speech).any() else float("nan")
    return {"opening_speech": in_speech, "opening_silence": in_silence,
            "opening_ratio": in_speech / in_silence if in_silence > 0 else float("nan")}


@functools.cache
def _recogniser():
    import dlib

    return dlib.face_recognition_model_v1(geometry.dlib_model_path("dlib_face_recognition_resnet_model_v1.dat"))


def face_descriptors(frames: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """dlib's 128-d face descriptors of the tracked face: (T, H, W, 3) uint8 + (T, 68, 2) -> (T, 128).

    Unlike metrics.face_descriptors (largest detected face), the chip is aligned on the given landmarks,
    so the face measured is the one tracked (clips with several faces) and no detector runs.
    """
    import dlib

    out = np.empty((len(frames), 128))
    for t, (frame, points) in enumerate(zip(frames, landmarks)):
        x0, y0 = points.min(0)
        x1, y1 = points.max(0)
        shape = dlib.full_object_detection(dlib.rectangle(int(x0), int(y0), int(x1), int(y1)),
                                           [dlib.point(int(round(x)), int(round(y))) for x, y in points])
        chip = dlib.get_face_chip(np.ascontiguousarray(frame), shape, size=metrics.FACE_CHIP_SIZE)
        out[t] = np.asarray(_recogniser().compute_face_descriptor(np.ascontiguousarray(chip)))
    return out


def identity(frames: np.ndarray, landmarks: np.ndarray, reference: np.ndarray) -> dict:
    """Descriptor distance of every IDENTITY_EVERY-th frame to the reference descriptor (128,): its mean,
    and the share of frames closer than dlib's same-person distance (0.6)."""
    distances = np.linalg.norm(face_descriptors(frames[::IDENTITY_EVERY], landmarks[::IDENTITY_EVERY]) - reference,
                               axis=1)
    return {"identity_distance": float(distances.mean()),
            "identity_kept": float(np.mean(distances < metrics.SAME_PERSON_DISTANCE))}


def mouth_box(frame: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The square around the mouth that CPBD reads, at the frame's resolution: side CPBD_BOX mouth widths
    rounded to whole CPBD blocks (64 px, at least one: CPBD leaves out a part narrower than a block), centred
    on the mean of points 48-67, moved inside the frame. (H, W, 3) + (68, 2) -> (S, S, 3)."""
    width = np.linalg.norm(points[geometry.MOUTH_CORNERS[0]] - points[geometry.MOUTH_CORNERS[1]])
    side = min(BLOCK_SIZE * max(1, int(round(CPBD_BOX * width / BLOCK_SIZE))), *frame.shape[:2])
    y0, x0 = geometry.mouth_square(points, side)
    x0 = int(np.clip(x0, 0, frame.shape[1] - side))
    y0 = int(np.clip(y0, 0, frame.shape[0] - side))
    return frame[y0:y0 + side, x0:x0 + side]


def mouth_sharpness(frames: np.ndarray, landmarks: np.ndarray) -> float:
    """Mean CPBD of the mouth boxes (see mouth_box) over the frames where it is defined; NaN if nowhere."""
    values = np.array([cpbd(mouth_box(frame, points)) for frame, points in zip(frames, landmarks)])
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def sync_of(frames: np.ndarray, landmarks: np.ndarray, audio: np.ndarray, expert) -> dict:
    """Audio-visual sync of a video by the two sync experts (expert: load_sync_expert's pair, or None):
    the landmark expert that works in the wild (wild_*) and lipgen's GRID pixel expert (sync_*), each as
    conf (LSE-C), dist (LSE-D), offset (frames, + = audio later) and its absolute value. frames (T, H, W, 3)
    uint8, landmarks (T, 68, 2), audio (T * SAMPLES_PER_FRAME,) at SAMPLE_RATE. The pixel expert sees lipgen's
    own 64 px mouth crops (face.crop_matrices). NaN without an expert or for clips shorter than SYNC_MIN_FRAMES."""
    keys = [f"{p}_{k}" for p in ("wild", "sync") for k in ("conf", "dist", "offset", "abs_offset")]
    if expert is None or len(frames) < SYNC_MIN_FRAMES:
        return dict.fromkeys(keys, float("nan"))
    from .sync import landmark_sync_scores, sync_scores

    _, mouth_matrix = geometry.crop_matrices(landmarks)
    mouths = geometry.crop(frames, mouth_matrix, geometry.MOUTH_SIZE)  # (T, 64, 64, 3)
    scores = {"sync": sync_scores(expert["pixel"], mouths, media.log_mel(audio, len(frames))),
              "wild": landmark_sync_scores(expert["landmark"], landmarks, audio)}
    return {f"{p}_{k}": v for p, s in scores.items() for k, v in
            (("conf", s["lse_c"]), ("dist", s["lse_d"]), ("offset", s["offset"]), ("abs_offset", abs(s["offset"])))}


def measure(frames: np.ndarray, landmarks: np.ndarray, audio: np.ndarray, expert, reference: np.ndarray,
            speech: np.ndarray) -> tuple[dict, np.ndarray]:
    """The measures that need no real clip, for one row's video: openings in speech and silence (speech: (T,)
    bool), identity against the reference descriptor (128,), mouth CPBD and sync. Returns (values, opening (T,))."""
    curve = mouth_opening(landmarks)
    values = {**openings(curve, speech), **identity(frames, landmarks, reference),
              "cpbd": mouth_sharpness(frames, landmarks), **sync_of(frames, landmarks, audio, expert)}
    return values, curve


# ---------------------------------------------------------------- inputs, rows and the work folder


def downscale(image: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """Shrink an (H, W, 3) image so that its longer side is max_side (even sides: H.264 needs them); smaller
    images are returned unchanged."""
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    size = (max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def inputs_in(folder: str | os.PathLike, suffixes: set[str], what: str) -> list[Path]:
    """The files directly in `folder` with these suffixes, sorted by name."""
    folder = Path(folder)
    if folder.is_file():
        raise NotADirectoryError(f"{folder}: is a file; this command takes a folder of {what}. Put it in a folder "
                                 "of its own and give that.")
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder. Give a folder of {what}.")
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes and p.is_file())
    if not found:
        raise FileNotFoundError(f"{folder}: no {what} in it ({', '.join(sorted(suffixes))}).")
    return found


def read_face_indices(path: str | os.PathLike | None, inputs: list[Path] = ()) -> dict[str, int]:
    """A manifest of face indices for inputs with several faces: JSON {"clip.mp4": 1}, or lines "clip.mp4,1"
    (comma or spaces; '#' starts a comment). Keys are file names (or stems); an index counts the faces of the
    input's first frame at its own resolution, largest first (as `lipgen generate --face-index`). Entries that
    name none of `inputs` (a typo) are warned about."""
    indices = _face_indices(path)
    names = {p.name for p in inputs} | {p.stem for p in inputs}
    stray = sorted(set(indices) - names)
    if inputs and stray:
        log.warning("%s: %d entr%s name%s no input in the folder: %s", path, len(stray), "y" if len(stray) == 1 else
                    "ies", "s" if len(stray) == 1 else "", ", ".join(stray[:10]))
    return indices


def _face_indices(path: str | os.PathLike | None) -> dict[str, int]:
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest. Give a JSON or CSV file of file name -> face index.")
    form = "an object of file name -> face index (0 = largest face), e.g. {\"clip.mp4\": 1}"
    if path.suffix.lower() == ".json":
        try:
            entries = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e}). Give {form}.") from None
        if not isinstance(entries, dict):
            raise ValueError(f"{path}: holds a JSON {type(entries).__name__}. Give {form}.")
        entries = entries.items()
    else:  # CSV: a name with commas or spaces in quotes; or "name index" separated by spaces
        lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
        entries = [row if len(row) == 2 else re.split(r"[,\s]+", line, maxsplit=1)
                   for line in lines if line for row in csv.reader([line], skipinitialspace=True)]
    try:
        indices = {}
        for name, index in entries:
            if isinstance(index, bool) or float(index) != int(float(index)) or int(float(index)) < 0:
                raise ValueError(f"{index!r} is not a face index")
            indices[str(name).strip()] = int(float(index))
        return indices
    except (ValueError, TypeError, OverflowError) as e:
        raise ValueError(f"{path}: each entry must be a file name and a face index (a whole number, 0 = largest "
                         f"face), e.g. 'clip.mp4,1' or '\"my clip.mp4\",1' ({e}).") from None


def face_index_of(path: Path, indices: dict[str, int]) -> int | None:
    return indices.get(path.name, indices.get(path.stem))


def model_specs(models: list[str] | None,
                expressiveness: float | None = None) -> dict[str, tuple[str, Path, float | None]]:
    """label -> (model name, checkpoint, expressiveness) for shipped model names (default: every shipped model that
    generates) or files from `lipgen train`. expressiveness: the motion models' (lipgen generate --expressiveness;
    None: their default), named in their labels when given; the other models have None."""
    from ..checkpoint import read_header

    if expressiveness is not None:
        check_number("expressiveness", expressiveness, *EXPRESSIVENESS_RANGE)
    specs = {}
    shipped = [name for name in shipped_models() if model_classes(name)[0].crop != "none"]
    for spec in shipped if models is None else models:
        if spec in shipped:
            label, name, checkpoint = spec, spec, shipped_checkpoint(spec)
        elif Path(spec).is_file():
            name = read_header(spec)["model"]
            run = Path(spec).parent.name if Path(spec).name == "model.safetensors" else Path(spec).stem
            label, checkpoint = f"{name} ({run})", Path(spec)
        else:
            raise ValueError(f"unknown model {spec!r}: give one of {', '.join(shipped)} or a checkpoint "
                             "file from `lipgen train`.")
        gain = expressiveness if name == "motion" else None
        specs[label if gain is None else f"{label}, expressiveness {gain:g}"] = (name, checkpoint, gain)
    return specs


def file_key(*paths: Path, **settings) -> str:
    """A short key for files (resolved path, size, modification time) and settings: what a cached result
    was made from. It includes how lipgen reads landmarks, which every cached reading and video depends on."""
    parts = [f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths]
    parts += [f"{k}={v}" for k, v in sorted({**settings, "landmark_side": geometry.LANDMARK_SIDE}.items())]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]


def model_key(spec: tuple, **settings) -> str:
    """file_key of a row's (model name, checkpoint, expressiveness), with what generation does beyond the checkpoint
    (the motion model's silence gate, drawing, what reads a photo's lips, how its speech is heard), so videos made
    before a change of it are made again."""
    from ..lips import reader
    from ..models.motion import SILENCE_MARGIN
    from ..render import REVISION
    from ..speech import LEAD_SECONDS, TAIL_SECONDS

    extra = {"silence_margin": SILENCE_MARGIN, "render": REVISION, "lips": reader(),
             "heard": [LEAD_SECONDS, TAIL_SECONDS]} if spec[0] == "motion" else {}
    if spec[2] is not None:
        extra["expressiveness"] = spec[2]
    return file_key(spec[1], **settings, **extra)


def slug(text: str) -> str:
    """A file-name-safe name for `text`, one per text: where characters had to be replaced ("a b.png", "a_b.png",
    names in other scripts), a short hash of the text keeps two names apart."""
    safe = re.sub(r"[^A-Za-z0-9._]+", "_", text).strip("_")
    return safe if safe == text else f"{safe}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def check_folders(folder: str | os.PathLike, out: str | os.PathLike, work: str | os.PathLike | None,
                  max_side: int) -> None:
    """Refuse, before any work, an --out or --work that is the input folder (the next run would read the reports and
    work files as inputs, or the work files would overwrite inputs) and a --max-side too small to hold a face."""
    check_number("--max-side (pixels)", max_side, MIN_SIDE, integer=True)
    for flag, path in (("--out", out), ("--work", work)):
        if path is not None and Path(path).resolve() == Path(folder).resolve():
            raise ValueError(f"{path}: {flag} is the input folder; its files would be read as inputs or written over "
                             f"them. Give another folder, e.g. {flag} {Path(path).name}-{flag[2:]}.")


def fresh_folder(folder: Path, key: str) -> bool:
    """True if `folder` was prepared from `key`; otherwise empties it (its rows are stale) and returns False."""
    stamp = folder / "prepared.key"
    if stamp.is_file() and stamp.read_text() == key:
        return True
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return False


def tracked(video: Path, face_index: int | None, where: str,
            box: np.ndarray | None = None, upright: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A row's frames (T, H, W, 3) uint8 and their landmarks (T, 68, 2), cached beside the video.

    Without a box, lipgen's tracker follows the face. box: the detector box (x0, y0, x1, y1) of a head that
    does not move (a held photo, and what a model makes of one): the landmarks are found in that same box in
    every frame, so they cannot drift (tracked from frame to frame, a hard face's points can wander by tens of
    pixels on identical frames). upright (with a box): a head tilted by more than ROLL_LIMIT is read turned
    upright (still_landmarks).
    """
    frames = media.read_video(video)
    suffix = (".landmarks.npy" if box is None else f".upright{ROLL_LIMIT:g}-landmarks.npy" if upright
              else ".still-landmarks.npy")
    cache = video.with_suffix(suffix)
    if cache.is_file() and cache.stat().st_mtime_ns >= video.stat().st_mtime_ns:
        landmarks = np.load(cache)
        if len(landmarks) == len(frames):
            return frames, landmarks
    if box is None:
        landmarks, _ = geometry.track_landmarks(frames, face_index, where=where)
    else:
        landmarks = still_landmarks(frames, box, upright)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.npy")
    np.save(tmp, landmarks)
    os.replace(tmp, cache)
    return frames, landmarks


def roll_degrees(points: np.ndarray) -> float:
    """How far a face is tilted in the picture: the angle of the line from its right eye to its left (68, 2)."""
    eyes = points[EYES[1]].mean(0) - points[EYES[0]].mean(0)
    return float(np.degrees(np.arctan2(eyes[1], eyes[0])))


def still_landmarks(frames: np.ndarray, box: np.ndarray, upright: bool = False,
                    limit: float = ROLL_LIMIT) -> np.ndarray:
    """Landmarks (T, 68, 2) in one fixed box of every frame. upright: if the first frame's face is tilted by
    more than `limit` degrees, each frame is turned about the box's centre until the eyes are level, read
    there, and the points turned back: dlib's 68-point model learnt roughly upright faces, and on a head
    tilted 30 degrees its inner-lip points read a closed mouth as open (docs/eval/unseen/framing)."""
    first = geometry.landmarks_in_box(frames[0], box)
    roll = roll_degrees(first)
    if not upright or abs(roll) <= limit:
        return np.stack([first] + [geometry.landmarks_in_box(frame, box) for frame in frames[1:]])
    centre = (float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2)
    turn = cv2.getRotationMatrix2D(centre, roll, 1.0)
    back = cv2.invertAffineTransform(turn)
    size = frames.shape[2], frames.shape[1]
    points = [geometry.landmarks_in_box(cv2.warpAffine(frame, turn, size, flags=cv2.INTER_LINEAR,
                                                       borderMode=cv2.BORDER_REPLICATE), box) for frame in frames]
    return geometry.transform_points(np.stack(points), back[None]).astype(np.float32)


def held(frame: np.ndarray, audio: np.ndarray, n_frames: int):
    """make(path) for a video of one frame held for n_frames, with audio: the static row."""
    return lambda path: media.write_mp4(path, np.broadcast_to(frame, (n_frames, *frame.shape)), audio,
                                        preset=REFERENCE_PRESET, threads=REFERENCE_THREADS)


def generated(spec: tuple[str, Path, float | None], audio: np.ndarray, face: Path, face_index: int | None):
    """make(path) for a model's video of `face` (photo or video) saying `audio`."""
    name, checkpoint, expressiveness = spec
    return lambda path: generate(audio, face, path, model=name, checkpoint=checkpoint, face_index=face_index,
                                 expressiveness=expressiveness, progress=False, encoder_threads=GENERATED_THREADS)


def prepared_face_index(original: np.ndarray, prepared: np.ndarray, face_index: int | None) -> int | None:
    """Face `face_index` of the original first frame (H, W, 3), as an index among the faces of the prepared
    (downscaled) first frame: the detector's largest-first order can change with the resolution."""
    if face_index is None:
        return None
    box = geometry.choose_face(geometry.detect_faces(original), face_index, "the first frame")
    boxes = geometry.detect_faces(prepared)
    if len(boxes) == 0:
        return face_index  # the tracker will say that no face is found
    centre = (box[:2] + box[2:]) / 2 * prepared.shape[1] / original.shape[1]
    return int(np.argmin(np.linalg.norm((boxes[:, :2] + boxes[:, 2:]) / 2 - centre, axis=1)))


def prepare_clip(path: Path, folder: Path, seconds: float, max_side: int,
                 face_index: int | None = None) -> tuple[Path, np.ndarray, int | None]:
    """The prepared copy of a clip in its work folder: (clip.mp4: its first `seconds` at 25 fps, longer side
    at most max_side; its audio (T * SAMPLES_PER_FRAME,) float32, kept as audio.npy so that every row gets
    the same samples, not an AAC round trip; the face index in the prepared frames (see prepared_face_index))."""
    clip, sound, index_file = folder / "clip.mp4", folder / "audio.npy", folder / "face_index.json"
    key = file_key(path, seconds=seconds, max_side=max_side, face_index=face_index)
    if fresh_folder(folder, key) and clip.is_file() and sound.is_file() and index_file.is_file():
        return clip, np.load(sound), json.loads(index_file.read_text())
    n = max(1, int(round(seconds * media.VIDEO_FPS)))
    frames, original = [], None
    with contextlib.closing(media.iter_video(path, max_seconds=float("inf"))) as video:  # only what is judged
        for frame in itertools.islice(video, n):
            original = frame if original is None else original
            frames.append(downscale(frame, max_side))
    if len(frames) < SYNC_MIN_FRAMES:
        raise media.MediaError(f"{path}: {len(frames)} frames ({len(frames) / media.VIDEO_FPS:.2f} s), too short to "
                               f"judge: the sync experts need {SYNC_MIN_FRAMES} ({SYNC_MIN_FRAMES / media.VIDEO_FPS:g} "
                               "s). Give a longer clip.")
    audio = media.read_audio(path, first=len(frames) / media.VIDEO_FPS)
    audio = media.fit_audio(audio, len(frames))  # (T * 640,): zero-padded if the sound is short
    index = prepared_face_index(original, frames[0], face_index)
    media.write_mp4(clip, frames, audio, preset=REFERENCE_PRESET, threads=REFERENCE_THREADS)
    np.save(sound, audio)
    index_file.write_text(json.dumps(index))
    (folder / "prepared.key").write_text(key)
    return clip, audio, index


def load_sync_expert(expert: str | None):
    """The sync experts: {"landmark": the in-the-wild expert (lmsync), "pixel": the GRID pixel expert}, each
    the shipped one for `expert` = "default", or with a checkpoint path for the pixel expert; None: no sync
    columns."""
    if expert is None:
        return None
    from .sync import load_expert, load_landmark_expert

    return {"landmark": load_landmark_expert(), "pixel": load_expert(None if expert == "default" else expert)}


# ---------------------------------------------------------------- videos


def voice_face_box(face: Path) -> np.ndarray:
    """The detector box of the voice-only face (the first frame of `face`)."""
    first = media.read_frames(face)[0]
    return geometry.choose_face(geometry.detect_faces(first), 0, str(face))


def evaluate_clip(path: Path, work: Path, specs: dict, expert, seconds: float, max_side: int,
                  face_index: int | None, voice_face: Path | None = None) -> tuple[list[dict], dict]:
    """All rows of one clip: ([row dicts: input, row, mode, reason, measures], plot data: {"curves": {(row, mode):
    opening (T,)}, "speech": (T,) bool}). Raises for a clip that cannot be evaluated at all (no face, several
    faces without a face index, no sound, unreadable)."""
    folder = work / slug(path.name)
    clip, audio, face_index = prepare_clip(path, folder, seconds, max_side, face_index)
    try:
        real_frames, real = tracked(clip, face_index, path.name)
    except MultipleFacesError as e:
        raise MultipleFacesError(f"{e} To evaluate it, list it with its face index in --manifest.") from e
    first = folder / "first_frame.png"
    if not first.is_file():
        cv2.imwrite(str(first), cv2.cvtColor(real_frames[0], cv2.COLOR_RGB2BGR))
    n = len(real_frames)
    index = 0 if face_index is None else face_index
    still = geometry.choose_face(geometry.detect_faces(real_frames[0]), index, path.name)  # the held head's box
    speech = speech_frames(audio, n)
    reference = face_descriptors(real_frames[:1], real[:1])[0]
    # (video, make(path) when it is not there yet, the fixed face box of a row whose head does not move)
    videos = {("ground truth", REFERENCE): (clip, None, None),
              ("static", REFERENCE): (folder / "static.mp4", held(real_frames[0], audio, n), still)}
    for label, spec in specs.items():
        tag = model_key(spec)
        videos[(label, "from photo")] = (folder / f"{slug(label)}-photo-{tag}.mp4",
                                         generated(spec, audio, first, face_index), still)
        videos[(label, "dubbing")] = (folder / f"{slug(label)}-dubbing-{tag}.mp4",
                                      generated(spec, audio, clip, face_index), None)
        if voice_face is not None:
            videos[(label, "voice only")] = (folder / f"{slug(label)}-voice-{tag}.mp4",
                                             generated(spec, audio, voice_face, 0), voice_face_box(voice_face))
    rows, curves = [], {}
    for (label, mode), (video, make, box) in videos.items():
        row = {"input": path.name, "row": label, "mode": mode, "reason": ""}
        try:
            if not video.is_file():
                make(video)  # written atomically: an interrupted run leaves no half file
            frames, landmarks = tracked(video, index, path.name, box)
            if len(frames) != n:
                raise ValueError(f"{len(frames)} frames made for a clip of {n}")
            values, curves[(label, mode)] = measure(frames, landmarks, audio, expert, reference, speech)
            row.update(values, lmd_iod=lmd_iod(landmarks, real),
                       opening_corr=correlation(curves[(label, mode)], mouth_opening(real)))
            if mode == "voice only":  # another face: only the opening's course and sync compare with the clip
                row.update(lmd_iod=float("nan"), identity_distance=float("nan"), identity_kept=float("nan"),
                           cpbd=float("nan"))
        except Exception as e:  # reported in the row; the other rows and clips go on
            row["reason"] = f"{type(e).__name__}: {e}"
        rows.append(row)
    real_row, static = rows[0], rows[1]
    for row in rows:  # relative to the clip's own reference rows
        row["lmd_vs_static"] = _ratio(row.get("lmd_iod"), static.get("lmd_iod"))
        row["cpbd_vs_real"] = _ratio(row.get("cpbd"), real_row.get("cpbd"))
    return rows, {"curves": curves, "speech": speech}


def _ratio(a, b) -> float:
    return a / b if a is not None and b is not None and np.isfinite(a) and np.isfinite(b) and b > 0 else float("nan")


def evaluate_all(paths: list[Path], work: str | os.PathLike | None, desc: str, evaluate_one,
                 progress: bool) -> tuple[list[dict], dict, dict[str, str]]:
    """evaluate_one(path, work folder) -> (row dicts, plot data) for every input, under a progress bar; an input
    that fails is listed with its reason and the run goes on. work None: a temporary folder, deleted after.
    Returns (rows, {input: plot data} for the first PLOTTED inputs with every row measured, {input: reason})."""
    rows, plotted, skipped = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="lipgen-evaluate-") as temporary:
        work_dir = Path(work) if work is not None else Path(temporary)
        for path in tqdm(paths, desc=desc, unit="input", disable=not progress):
            try:
                these, extra = evaluate_one(path, work_dir)
            except Exception as e:  # reported with its reason; the run goes on
                skipped[path.name] = f"{type(e).__name__}: {e}"
                continue
            rows += these
            if len(plotted) < PLOTTED and not any(r["reason"] for r in these):
                plotted[path.name] = extra
    return rows, plotted, skipped


def evaluate_videos(folder: str | os.PathLike, out: str | os.PathLike, models: list[str] | None = None,
                    seconds: float = DEFAULT_SECONDS, manifest: str | os.PathLike | None = None,
                    work: str | os.PathLike | None = None, limit: int | None = None, max_side: int = MAX_SIDE,
                    expert: str | None = "default", progress: bool = True,
                    voice_face: str | os.PathLike | None = VOICE_FACE, expressiveness: float | None = None) -> dict:
    """Evaluate models on a folder of talking-face videos with sound (module doc: rows and protocol).

    models: shipped model names or checkpoint files (default: every shipped model); expressiveness: the motion
    models' (default: theirs; see model_specs). manifest: face index
    per clip with several faces (see read_face_indices); such clips without an entry are skipped, with the
    reason in the report, like any clip that fails. work: folder of prepared clips, generated videos and
    landmarks, reused by later runs (default: a temporary folder, deleted after). Writes <out>/report.md,
    report.csv (per clip and row), report.json and opening.png. Returns the JSON summary.
    """
    started = time.time()
    if limit is not None:
        check_number("limit (videos to evaluate)", limit, 1, integer=True)
    check_number("seconds (of each clip, from its start)", seconds, SYNC_MIN_FRAMES / media.VIDEO_FPS,
                 media.MAX_SECONDS)
    check_folders(folder, out, work, max_side)
    specs = model_specs(models, expressiveness)
    found = inputs_in(folder, media.VIDEO_SUFFIXES, "videos")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)  # before any work: a file in the way is said at once
    paths, indices = found[:limit], read_face_indices(manifest, found)
    sync_expert = load_sync_expert(expert)
    rows, plotted, skipped = evaluate_all(
        paths, work, "evaluate videos",
        lambda path, work_dir: evaluate_clip(path, work_dir, specs, sync_expert, seconds, max_side,
                                             face_index_of(path, indices),
                                             None if voice_face is None else Path(voice_face)), progress)
    order = [("ground truth", REFERENCE), ("static", REFERENCE)] + [(label, mode) for mode in MODES for label in specs]
    summary = summarise(rows, order, skipped, COLUMNS)
    summary["settings"] = {"folder": str(folder), "models": {k: str(v[1]) for k, v in specs.items()},
                           "expressiveness": expressiveness,
                           "seconds": seconds, "max_side": max_side,
                           "manifest": None if manifest is None else str(manifest),
                           "sync_expert": expert, "run_seconds": round(time.time() - started, 1),
                           "versions": library_versions()}
    tables = {mode: [r for r in order if r[1] in (REFERENCE, mode)] for mode in MODES}
    notes = [f"{summary['complete']} of {len(paths)} clips of `{folder}` evaluated with every row, first "
             f"{seconds:g} s of each at 25 fps, longer side at most {max_side} px. Means over the clips where "
             "the row was measured (n). "
             "Reference rows: ground truth (the clip) and static (its first frame held). IOD = inter-ocular distance "
             "of the real frame; silence from the audio's energy. What each column means: \"Columns\", at the end.",
             "", versions_line(summary["settings"]["versions"])]
    write_reports(out, "lipgen evaluation on videos", notes, summary, tables, rows, COLUMNS, CLIP_TABLE)
    plot_videos(out / "opening.png", plotted, specs)
    return summary


# ---------------------------------------------------------------- summary and report files


def summarise(rows: list[dict], order: list[tuple[str, str]], skipped: dict[str, str], columns: dict) -> dict:
    """Means per (row, mode) over the inputs where that row was measured ("n"); NaN values (e.g. no silent
    frame) are left out of a mean. "complete": inputs where every row was measured."""
    means = {}
    for label, mode in order:
        mine = [r for r in rows if r["row"] == label and r["mode"] == mode and not r["reason"]]
        means[f"{label} | {mode}"] = {"n": len(mine), **{k: _mean(r.get(k) for r in mine) for k in columns}}
    failed = {r["input"] for r in rows if r["reason"]}
    return {"means": means, "complete": len({r["input"] for r in rows} - failed), "skipped": skipped,
            "failed_rows": [{k: r[k] for k in ("input", "row", "mode", "reason")} for r in rows if r["reason"]]}


def _mean(values) -> float:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def _cell(value) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.3f}"


def _header(keys, columns: dict) -> list[str]:
    arrows = {"lower": " ↓", "higher": " ↑", "": ""}
    return [columns[k][0] + arrows[columns[k][1]] for k in keys]


def _label(row: str, mode: str) -> str:
    return row if mode == REFERENCE else f"{row} ({mode})"


def markdown_table(head: list[str], lines: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(x) + " |" for x in lines]


def write_reports(out: Path, title: str, notes: list[str], summary: dict, tables: dict, rows: list[dict],
                  columns: dict, input_columns) -> None:
    """report.md (a table of means per mode, a per-input table, what was skipped and why), report.csv (every
    input x row x column) and report.json (the summary and the per-input rows). columns: key -> (header,
    better); tables: title -> [(row, mode)]; input_columns: the keys shown in the per-input table."""
    keys = [k for k in columns if k != "sync_offset"]
    md = [f"# {title}", "", *notes, ""]
    for mode, order in tables.items():
        means = [summary["means"][f"{label} | {m}"] for label, m in order]
        lines = [[_label(label, m), str(mean["n"]), *(_cell(mean[k]) for k in keys)]
                 for (label, m), mean in zip(order, means)]
        md += [f"## {mode}", "", *markdown_table(["row", "n", *_header(keys, columns)], lines), ""]
    per_input = [[r["input"], _label(r["row"], r["mode"]), *(_cell(r.get(k)) for k in input_columns)]
                 for r in rows if not r["reason"]]
    md += ["## per input", "", *markdown_table(["input", "row", *_header(input_columns, columns)], per_input), ""]
    if summary["skipped"] or summary["failed_rows"]:
        md += ["## not evaluated", ""]
        md += [f"- {name}: {reason.splitlines()[0]}" for name, reason in summary["skipped"].items()]
        md += [f"- {r['input']}, {_label(r['row'], r['mode'])}: {r['reason'].splitlines()[0]}"
               for r in summary["failed_rows"]]
        md += [""]
    md += ["![mouth opening](opening.png)", "", *glossary(columns), ""]
    write_atomic(out / "report.md", "\n".join(md))
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(["input", "row", "mode", *columns, "reason"])
    for r in rows:
        writer.writerow([r["input"], r["row"], r["mode"], *(r.get(k, "") for k in columns), r["reason"]])
    for name, reason in summary["skipped"].items():
        writer.writerow([name, "", "", *([""] * len(columns)), reason])
    write_atomic(out / "report.csv", table.getvalue())
    write_atomic(out / "report.json", json_text({**summary, "rows": rows}))


def library_versions() -> dict:
    """The libraries a judge's numbers depend on beyond lipgen's own code: the video encoder and decoder (PyAV's
    FFmpeg and x264), the landmark reader (dlib), the image operations (OpenCV), the networks (torch, CTranslate2),
    and the processor (CTranslate2's int8 kernels are chosen per processor). Between two installs with the same code,
    a hard clip's reading moved by 0.04 of opening correlation (docs/eval/unseen/README.md, "Sessions 23-24"); a
    report names them so that its numbers can be traced."""
    import importlib
    import importlib.metadata as meta

    out = {"lipgen": meta.version("lipgen")}
    for name in ("torch", "numpy", "av", "cv2", "dlib", "ctranslate2"):  # the modules imported, whichever
        out[name] = importlib.import_module(name).__version__  # package brought them (cv2: headless or contrib)
    out["libavcodec"] = ".".join(map(str, media.av.library_versions["libavcodec"]))
    from ..lips import reader

    out["lips"] = reader()  # MediaPipe's face mesh also reads a photo's lips where it is installed
    out["cpu"] = cpu_name()  # CTranslate2's int8 products (MKL) differ by CPU: Whisper's features by ~2%
    return out


def cpu_name() -> str:
    """The processor and its widest vector instructions, e.g. "Intel(R) Xeon(R) Processor (avx2, avx512, amx)"."""
    import platform

    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = re.search(r"^model name\s*:\s*(.+)$", info, re.M)
    flags = re.search(r"^flags\s*:\s*(.+)$", info, re.M)
    flags = set(flags.group(1).split()) if flags else set()
    wide = [tag for tag, flag in (("avx2", "avx2"), ("avx512", "avx512f"), ("amx", "amx_int8")) if flag in flags]
    return (name.group(1).strip() if name else platform.machine()) + (f" ({', '.join(wide)})" if wide else "")


def versions_line(versions: dict) -> str:
    """A report's "Made with" line from library_versions()."""
    return "Made with " + ", ".join(f"{k} {v}" for k, v in versions.items()) + "."


def glossary(columns: dict, meanings: dict = MEANINGS) -> list[str]:
    """A report's "Columns" section: each column's header, what it means and which way is better."""
    better = {"lower": " (lower is better)", "higher": " (higher is better)", "": ""}
    return ["## Columns", "", *(f"- **{columns[k][0]}**{better[columns[k][1]]}: {meanings[k]}."
                                for k in columns if k in meanings),
            "", "The full definitions: docs/metrics.md in lipgen's source."]


def plot_videos(path: Path, plotted: dict, specs: dict) -> None:
    """Opening curves of the real clip and every row, one line of panels per clip (from photo | dubbing)."""
    plt = pyplot()
    fig, axes = plt.subplots(max(len(plotted), 1), 2, figsize=(12, 2.8 * max(len(plotted), 1)), squeeze=False)
    for (clip, extra), panels in zip(plotted.items(), axes):
        curves = extra["curves"]
        for ax, mode in zip(panels, MODES):
            shade_silence(ax, ~extra["speech"])
            ax.plot(curves[("ground truth", REFERENCE)], color="black", lw=2, label="real")
            ax.plot(curves[("static", REFERENCE)], color="0.5", ls="--", lw=1, label="static")
            for label in specs:
                ax.plot(curves[(label, mode)], lw=1.2, label=label)
            ax.set(title=f"{clip}: {mode}", xlabel="frame (25 fps)", ylabel="opening / IOD")
            ax.legend(fontsize=7, ncol=3)
    fig.suptitle("mouth opening; grey = silence (energy detector)")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def shade_silence(ax, silent: np.ndarray) -> None:
    for t in np.flatnonzero(silent):
        ax.axvspan(t, t + 1, color="0.92", lw=0)
