"""A picture of what preprocessing sees: per video, frames of the aligned face and mouth crops with
their landmarks drawn, to check detection, alignment and crop stability by eye."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from . import ASSETS, face, media

BUNDLED_CLIPS = ASSETS / "clips"
FRAMES_SHOWN = 6


def _draw(image: np.ndarray, points: np.ndarray, radius: int = 1) -> np.ndarray:
    image = image.copy()
    for i, (x, y) in enumerate(points):
        colour = (255, 60, 60) if i >= 48 else (60, 255, 60)
        cv2.circle(image, (int(round(x)), int(round(y))), radius, colour, -1, lineType=cv2.LINE_AA)
    return image


def preview(videos: list[str | os.PathLike] | None = None, out: str | os.PathLike = "preview.png") -> Path:
    """Write a grid: one row per video, FRAMES_SHOWN frames of face crop (128) + mouth crop (64, shown x2)."""
    out = Path(out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ValueError(f"{out}: the preview is a picture; name it .png or .jpg")
    videos = videos or sorted(BUNDLED_CLIPS.glob("*.mp*"))
    rows = []
    for path in videos:
        frames = media.read_video(path)
        track = face.track_face(frames, face_index=0, where=str(path))
        picks = np.linspace(0, len(frames) - 1, FRAMES_SHOWN).round().astype(int)
        faces = face.crop(frames[picks], track.face_matrix[picks], face.FACE_SIZE)
        mouths = face.crop(frames[picks], track.mouth_matrix[picks], face.MOUTH_SIZE)
        lf, lm = track.landmarks_in(track.face_matrix)[picks], track.landmarks_in(track.mouth_matrix)[picks]
        tiles = []
        for f, m, pf, pm in zip(faces, mouths, lf, lm):
            big_mouth = cv2.resize(m, (face.FACE_SIZE, face.FACE_SIZE), interpolation=cv2.INTER_NEAREST)
            tiles.append(np.concatenate([_draw(f, pf), _draw(big_mouth, pm[48:] * 2, 2)], axis=1))
        rows.append(np.concatenate(tiles, axis=1))
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(out)
    return out
