"""Score any talking-face video: is the mouth in sync with its sound, still in silence, steady and sharp?

    lipgen score out.mp4 other_tool.mp4 --json scores.json

No preprocessing cache and no reference clip: the measures are the judge's of lipgen.evaluation.wild
(`lipgen evaluate-videos`), on the video alone:
- sync: the landmark sync expert (lipgen.models.lmsync) over offsets of +-MAX_OFFSET frames
  (lipgen.evaluation.sync): confidence (LSE-C: median minus best distance, higher = surer), distance at the best
  offset (LSE-D), and the offset in frames (+ = the audio is later than the video; 0 for a video in sync);
- mouth opening (inner-lip gap over the inter-ocular distance) in speech and in silence (energy voice activity);
- jitter: the mouth shape's frame-to-frame acceleration (lipgen.evaluation.metrics.mouth_jitter) in % of the
  inter-ocular distance;
- sharpness: CPBD of the square around the mouth at the video's resolution (every SHARPNESS_EVERY-th frame).
Videos are read at 25 fps (media.VIDEO_FPS), the rate the expert was trained at.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from . import face as geometry
from . import media
from .errors import one_line
from .files import json_text, write_atomic

log = logging.getLogger(__name__)

SHARPNESS_EVERY = 5  # frames: CPBD reads every 5th frame's mouth (it is slow, and mouth sharpness changes slowly)
COLUMNS = {  # key: (header, what is better)
    "sync_conf": ("sync confidence", "higher"), "sync_dist": ("sync distance", "lower"),
    "sync_offset": ("offset (frames)", "0"), "opening_speech": ("opening in speech", "higher"),
    "opening_silence": ("opening in silence", "lower"), "jitter": ("jitter (% IOD)", "lower"),
    "cpbd": ("mouth CPBD", "higher"), "seconds": ("seconds", ""),
}


def score_video(path: str | os.PathLike, expert=None, face_index: int | None = None,
                max_seconds: float = media.MAX_SECONDS) -> dict:
    """The COLUMNS of one video (see the module doc). expert: a loaded landmark expert (default: the shipped one).
    Raises MediaError (no video or sound, too short for the sync expert), FaceNotFoundError, MultipleFacesError."""
    from .evaluation import metrics, wild
    from .evaluation.sync import landmark_sync_scores, load_landmark_expert

    expert = expert or load_landmark_expert()
    sampled = []  # every SHARPNESS_EVERY-th frame, for CPBD; the others pass through one at a time

    def frames():
        for t, frame in enumerate(media.iter_video(path, max_seconds=max_seconds)):  # at 25 fps
            if t % SHARPNESS_EVERY == 0:
                sampled.append(frame)
            yield frame

    landmarks, _ = geometry.track_landmarks(frames(), face_index, where=str(path))
    n = len(landmarks)
    if n < wild.SYNC_MIN_FRAMES:
        raise media.MediaError(f"{path}: {n} frames; the sync expert needs at least {wild.SYNC_MIN_FRAMES} "
                               f"({wild.SYNC_MIN_FRAMES / media.VIDEO_FPS:.1f} s). Give a longer video.")
    audio = media.fit_audio(media.read_audio(path, max_seconds=max_seconds), n)
    sync = landmark_sync_scores(expert, landmarks, audio)
    speech = wild.speech_frames(audio, n)
    opening = wild.openings(wild.mouth_opening(landmarks), speech)
    iod = float(np.median(wild.eye_distance(landmarks)))
    return {"video": str(path), "sync_conf": sync["lse_c"], "sync_dist": sync["lse_d"], "sync_offset": sync["offset"],
            "opening_speech": opening["opening_speech"], "opening_silence": opening["opening_silence"],
            "jitter": 100 * metrics.mouth_jitter(landmarks / iod),
            "cpbd": wild.mouth_sharpness(sampled, landmarks[::SHARPNESS_EVERY]), "seconds": n / media.VIDEO_FPS}


def score(videos, face_index: int | None = None, max_seconds: float = media.MAX_SECONDS,
          out: str | os.PathLike | None = None) -> list[dict]:
    """score_video for each video (a list of paths, or one path), the expert loaded once; a video that cannot be
    scored gets {"video", "error"} and the rest go on. out: also write the list as JSON (atomically)."""
    from .errors import LipgenError
    from .evaluation.sync import load_landmark_expert

    videos = [videos] if isinstance(videos, (str, os.PathLike)) else list(videos)
    if out is not None:  # refused before any work: an input, a folder, an unwritable place
        media.check_output(out, {f"scored video no. {i}": v for i, v in enumerate(videos, 1)},
                           suffix=None, flag="--json")
    expert = load_landmark_expert()
    rows = []
    for path in videos:
        try:
            rows.append(score_video(path, expert, face_index, max_seconds))
        except (LipgenError, OSError, ValueError) as e:
            log.warning("%s: cannot score: %s", path, one_line(e))
            rows.append({"video": str(path), "error": one_line(e)})
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, json_text(rows) + "\n")
    return rows


def table(rows: list[dict]) -> str:
    """The scores as a markdown table (a row per video; errors in the last column)."""
    head = ["video", *(f"{h} {'↑' if b == 'higher' else '↓' if b == 'lower' else ''}".strip()
                       for h, b in COLUMNS.values())]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['video']} | error: {row['error']} |")
            continue
        cells = [f"{row[k]:.0f}" if k == "sync_offset" else f"{row[k]:.3f}" for k in COLUMNS]
        lines.append("| " + " | ".join([row["video"], *cells]) + " |")
    return "\n".join(lines)
