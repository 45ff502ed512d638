"""A picture of what preprocessing sees: per video, frames of the aligned face and mouth crops with
their landmarks drawn, to check detection, alignment and crop stability by eye."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from . import ASSETS, face, media
from .errors import FaceNotFoundError, MediaError
from .files import write_atomic

log = logging.getLogger(__name__)

BUNDLED_CLIPS = ASSETS / "clips"
FRAMES_SHOWN = 6
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _draw(image: np.ndarray, points: np.ndarray, radius: int = 1, first: int = 0) -> np.ndarray:
    """Landmarks drawn on a copy: the mouth's (68-point indices 48-67) red, the others green. first: the index
    of points[0]."""
    image = image.copy()
    for i, (x, y) in enumerate(points, start=first):
        colour = (255, 60, 60) if i >= 48 else (60, 255, 60)
        cv2.circle(image, (int(round(x)), int(round(y))), radius, colour, -1, lineType=cv2.LINE_AA)
    return image


def _frames(path):
    """A video's frames one at a time (a photo: its one frame)."""
    return iter([media.read_image(path)]) if media.is_still(path) else media.iter_video(path)


def _row(path) -> np.ndarray:
    """One video's row of FRAMES_SHOWN face and mouth tiles, from frames spread over those that show the face.
    The video is read twice, a frame at a time: to follow the face, then to cut the chosen frames."""
    landmarks, _ = face.track_landmarks(_frames(path), face_index=0, where=str(path), allow_missing=True)
    seen = np.flatnonzero(np.isfinite(landmarks).all((1, 2)))
    face_matrix, mouth_matrix = face.crop_matrices(landmarks[seen])  # over the frames with the face
    chosen = seen[np.linspace(0, len(seen) - 1, FRAMES_SHOWN).round().astype(int)]  # frame indices
    at = np.searchsorted(seen, chosen)  # their rows in the matrices
    tiles = [None] * FRAMES_SHOWN
    for t, frame in enumerate(_frames(path)):
        for k in np.flatnonzero(chosen == t):  # a short clip or a photo shows one frame in several tiles
            f = face.crop(frame[None], face_matrix[at[k]][None], face.FACE_SIZE)[0]
            m = face.crop(frame[None], mouth_matrix[at[k]][None], face.MOUTH_SIZE)[0]
            pf = face.transform_points(landmarks[t].astype(np.float64), face_matrix[at[k]])
            pm = face.transform_points(landmarks[t, 48:].astype(np.float64), mouth_matrix[at[k]])
            big_mouth = cv2.resize(m, (face.FACE_SIZE, face.FACE_SIZE), interpolation=cv2.INTER_NEAREST)
            tiles[k] = np.concatenate([_draw(f, pf), _draw(big_mouth, pm * 2, 2, first=48)], axis=1)
        if t >= chosen[-1]:
            break
    return np.concatenate(tiles, axis=1)


def preview(videos: list[str | os.PathLike] | None = None, out: str | os.PathLike = "preview.png") -> Path:
    """Write a grid: one row per video (or photo), FRAMES_SHOWN frames of face crop (128) + mouth crop (64, shown
    x2). A video without a face is left out with a warning; if none has one, FaceNotFoundError. The picture is
    written whole or not at all, and never over an input."""
    out = Path(out)
    videos = [Path(v) for v in videos] if videos else sorted(BUNDLED_CLIPS.glob("*.mp*"))
    for video in videos:
        media.check_output(out, {"VIDEO": video}, suffix=None)
    if out.suffix.lower() not in PICTURE_SUFFIXES:
        raise MediaError(f"{out}: the preview is a picture; name it .png or .jpg")
    rows = []
    for path in videos:
        try:
            rows.append(_row(path))
        except FaceNotFoundError as e:
            log.warning("%s: left out of the preview: %s", path, e)
    if not rows:
        raise FaceNotFoundError(f"no face found in any of the {len(videos)} inputs; nothing to preview.")
    out.parent.mkdir(parents=True, exist_ok=True)
    picture = io.BytesIO()
    Image.fromarray(np.concatenate(rows, axis=0)).save(picture, "PNG" if out.suffix.lower() == ".png" else "JPEG")
    write_atomic(out, picture.getvalue())
    return out
