"""Face geometry: dlib detection and 68-point landmarks, tracking through a clip, smoothing,
similarity alignment to one template, stable face/mouth crops, and pasting a crop back.

Coordinates are (x, y) pixels. A crop is described by a 2x3 affine matrix M that maps frame
pixels to crop pixels (crop = warpAffine(frame, M)); pasting back uses its inverse.

Landmark layout (dlib / iBUG 68): jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67
(outer lip 48-59, inner lip 60-67).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import ASSETS
from .errors import FaceNotFoundError, MultipleFacesError

FACE_SIZE = 128  # aligned face crop, pixels per side
MOUTH_SIZE = 64  # mouth crop, pixels per side
MOUTH = slice(48, 68)  # dlib-68 mouth points: outer lip 48..59, inner lip 60..67
MOUTH_CORNERS = (48, 54)  # outer mouth corners: their distance is the mouth width
EYES = (slice(36, 42), slice(42, 48))  # dlib-68 eye points; the inter-ocular distance (IOD) joins their centres
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))  # upper / lower inner-lip points facing each other
STABLE_POINTS = np.r_[0, 1, 15, 16, 27:48]  # outer jaw near the ears, nose, eyes: rigid with the skull
MOUTH_SIDE = 1.5  # mouth crop side, in template mouth widths (Glance used 1.3 x the mouth box)
ALIGN_SIGMA = 2.0  # frames: temporal Gaussian smoothing of the points the alignment is fitted to
MOUTH_CENTRE_SIGMA = 12.0  # frames: smoothing of the mouth centre, so speech does not shake the crop
REDETECT_EVERY = 50  # frames: run the detector again this often even when tracking looks fine
MIN_IMAGE_SIDE = 16  # pixels: a narrower image holds no face the detectors can find (and crashes dlib's CNN)
SMALL_IMAGE_SIDE = 640  # pixels: below this (longer side) the detectors also look for faces upsampled
CNN_FIRST_SIDE = 1024  # pixels: a larger image is searched by the CNN detector at this size first (4x+ faster)
WEAK_DETECTION = 0.5  # a detection scoring under this share of the image's best is taken for a false one
FOLLOW_LIMIT = 0.8  # share of a box shift its landmarks follow, from which a detection is taken for no face
CUT_GREY_LEVELS = 24.0  # mean grey-level change (0-255) of a 32x32 thumbnail between frames that marks a scene cut
MAX_LOST = 5  # frames (allow_missing): a face the detector cannot find this long has left the picture
# share by which a followed face's eye distance may grow or shrink from where the detector last looked before it is
# checked: each frame's box comes from the last frame's points, and a turning, blurred head's points shrank 10-15% a
# frame, under the per-frame limit, to a third of the face in 1 s (latentsync_demo3, frames 125-149, until the next
# detection)
DRIFT_LIMIT = 0.3
NEAR_SHARE = 0.5  # a check's detection is the followed face's only within this share of its size from it
FEATHER = 0.18  # share of a crop's side over which paste-back fades from crop to frame
# pixels: a face box narrower than this has its landmarks read from its surroundings upsampled to this width. dlib puts
# each point on a whole pixel, and a small face's mouth is a few pixels tall: the 66 validation portraits shrunk to a
# 70 px box, read where they are, have their mouth points 0.017 of the eye distance (median) from their own reading at
# full size, read upsampled 0.009 (docs/eval/unseen/README.md, "Session 28")
LANDMARK_SIDE = 250

TEMPLATE_PATH = ASSETS / "face_template.npy"


def dlib_model_path(name: str) -> str:
    """Path of a model file shipped in the face-recognition-models package (found without importing it:
    its __init__ imports pkg_resources, which current setuptools no longer has)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("face-recognition-models is not installed: pip install face-recognition-models")
    path = os.path.join(os.path.dirname(spec.origin), "models", name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: reinstall face-recognition-models")
    return path


@functools.cache
def _dlib():
    import dlib  # on first use: the models import this module for its geometry alone

    return dlib


@functools.cache
def _detector():
    return _dlib().get_frontal_face_detector()


@functools.cache
def _predictor():
    return _dlib().shape_predictor(dlib_model_path("shape_predictor_68_face_landmarks.dat"))


@functools.cache
def template() -> np.ndarray:
    """(68, 2) canonical landmarks in FACE_SIZE crop pixels (made by scripts/make_face_template.py)."""
    return np.load(TEMPLATE_PATH).astype(np.float64) * FACE_SIZE


def _gray(image: np.ndarray) -> np.ndarray:
    # dlib silently finds nothing in non-contiguous arrays (e.g. PyAV frames): always hand it a fresh copy
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))


@functools.cache
def _cnn_detector():
    return _dlib().cnn_face_detection_model_v1(dlib_model_path("mmod_human_face_detector.dat"))


def detect_faces(image: np.ndarray, upsample: int | None = None, fallback: bool | None = None) -> np.ndarray:
    """Faces in an RGB image, largest first: (N, 4) float boxes (x0, y0, x1, y1).

    With upsample None, tries dlib's HOG detector on the image as is, then upsampled x2 (finds faces
    ~40 px wide), and a small image (longer side under SMALL_IMAGE_SIDE) also x4 (~20 px). fallback
    (default: when upsample is None): if HOG finds nothing, dlib's CNN detector (MMOD; finds turned,
    tilted and badly lit faces HOG misses; ~1 s per 0.1 Mpx on a CPU core, so a large image is searched at
    CNN_FIRST_SIDE first), upsampled x2 on images under half SMALL_IMAGE_SIDE. Detections scoring under
    WEAK_DETECTION of the best one are dropped (upsampling finds false faces in small images).
    """
    gray = _gray(image)
    if min(gray.shape) < MIN_IMAGE_SIDE:
        return np.zeros((0, 4))
    fallback = upsample is None if fallback is None else fallback
    if upsample is not None:
        tries = [upsample]
    else:
        tries = [0, 1, 2] if max(gray.shape) < SMALL_IMAGE_SIDE else [0, 1]
    for up in tries:
        rects, scores, _ = _detector().run(gray, up, 0.0)
        if len(rects):
            return _confident_largest_first(rects, scores)
    if fallback:
        return _cnn_faces(image)
    return np.zeros((0, 4))


def _cnn_faces(image: np.ndarray) -> np.ndarray:
    """dlib's CNN detector: on an image larger than CNN_FIRST_SIDE, first on a copy scaled down to it (a face
    it then misses is under ~80 / CNN_FIRST_SIDE of the longer side, and the full image is searched)."""
    side = max(image.shape[:2])
    scales = [CNN_FIRST_SIDE / side, 1.0] if side > CNN_FIRST_SIDE else [1.0]
    for scale in scales:
        small = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        found = _cnn_detector()(np.ascontiguousarray(small), 1 if side < SMALL_IMAGE_SIDE // 2 else 0)
        if len(found):
            return _confident_largest_first([d.rect for d in found], [d.confidence for d in found]) / scale
    return np.zeros((0, 4))


def _confident_largest_first(rects, scores) -> np.ndarray:
    """(N, 4) boxes, largest first, without those scoring under WEAK_DETECTION of the best in the image."""
    scores = np.asarray(scores, np.float64)
    boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], np.float64)
    boxes = boxes[scores >= WEAK_DETECTION * scores.max()]
    return boxes[np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), kind="stable")]


def plausible_faces(gray: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Of several detections, those whose landmarks behave like a face's (all of them if none does).

    Landmarks are predicted in the box and in the box shifted by 15% of its side, four ways: on a real
    face they stay on the features (they follow the shift by ~10%); in a box without a face they are
    the mean shape dragged along with the box (>= FOLLOW_LIMIT). So a false detection, however large,
    does not win over the face. gray: the image as _gray() gives it; boxes: (N, 4) largest first.
    """
    if len(boxes) < 2:
        return boxes
    keep = [_shift_following(gray, box) < FOLLOW_LIMIT for box in boxes]
    return boxes[keep] if any(keep) else boxes


def _shift_following(gray: np.ndarray, box: np.ndarray) -> float:
    """How far landmarks move with their box, as a share of the box's shift (mean of four 15% shifts)."""
    base = landmarks_in_box(None, box, gray)
    side = box[2] - box[0]
    moved = [np.linalg.norm((landmarks_in_box(None, box + np.r_[d, d] * side, gray) - base).mean(0)) / (0.15 * side)
             for d in ([0.15, 0], [-0.15, 0], [0, 0.15], [0, -0.15])]
    return float(np.mean(moved))


def landmarks_in_box(image: np.ndarray, box: np.ndarray, gray: np.ndarray | None = None) -> np.ndarray:
    """68 landmarks of the face in `box` (x0, y0, x1, y1): (68, 2) float32. A box narrower than LANDMARK_SIDE is
    read in a copy of it and its surroundings scaled up to that width (cubic), so its points fall between pixels."""
    gray = _gray(image) if gray is None else gray
    box = np.asarray(box, np.float64)
    side = box[2] - box[0]
    origin, scale = np.zeros(2), np.ones(2)
    if 0 < side < LANDMARK_SIDE:
        pad = side / 2  # the predictor looks a little beyond its box
        x0, y0 = max(0, int(box[0] - pad)), max(0, int(box[1] - pad))
        x1, y1 = min(gray.shape[1], int(box[2] + pad) + 1), min(gray.shape[0], int(box[3] + pad) + 1)
        if x1 > x0 and y1 > y0:
            crop = gray[y0:y1, x0:x1]
            size = (round((x1 - x0) * LANDMARK_SIDE / side), round((y1 - y0) * LANDMARK_SIDE / side))
            gray = np.ascontiguousarray(cv2.resize(crop, size, interpolation=cv2.INTER_CUBIC))
            origin, scale = np.array([x0, y0], np.float64), np.array(size) / [x1 - x0, y1 - y0]
            box = (box - np.r_[origin, origin] + 0.5) * np.r_[scale, scale] - 0.5  # pixel centres map to centres
    rect = _dlib().rectangle(*(int(round(v)) for v in box))
    shape = _predictor()(gray, rect)
    points = np.array([[p.x, p.y] for p in shape.parts()], np.float64)
    return ((points + 0.5) / scale - 0.5 + origin).astype(np.float32)


def eye_distance(landmarks: np.ndarray) -> np.ndarray:
    """Inter-ocular distance (IOD) per frame: between the centres of points 36-41 and 42-47. (T, 68, 2) -> (T,)."""
    return np.linalg.norm(landmarks[:, EYES[0]].mean(1) - landmarks[:, EYES[1]].mean(1), axis=-1)


def _box_of(points: np.ndarray) -> np.ndarray:
    return np.array([*points.min(0), *points.max(0)], np.float64)


def choose_face(boxes: np.ndarray, face_index: int | None, where: str = "the image") -> np.ndarray:
    """Pick one detected face; raise a clear error for none, several without a choice, or a bad index."""
    if len(boxes) == 0:
        raise FaceNotFoundError(f"no face found in {where}. Use a frontal, well-lit photo or video where the "
                                "face is at least ~40 pixels wide.")
    if face_index is None:
        if len(boxes) > 1:
            listing = ", ".join(f"{i}: box {b.astype(int).tolist()}" for i, b in enumerate(boxes))
            raise MultipleFacesError(f"{len(boxes)} faces found in {where} ({listing}; largest first). "
                                     "Pick one with --face-index N (face_index=N in Python).")
        face_index = 0
    if not 0 <= face_index < len(boxes):
        raise FaceNotFoundError(f"face index {face_index} asked for, but {len(boxes)} face(s) found in {where} "
                                f"(valid: 0..{len(boxes) - 1}, largest first).")
    return boxes[face_index]


def face_index_at(image: np.ndarray, box, where: str = "the image", scale: float = 1.0) -> int:
    """The face_index (in track_landmarks' order) of the detected face that overlaps `box` (x0, y0, x1, y1,
    pixels of the file) the most: a face pinned by a box. scale: image pixels per file pixel (< 1 for a file
    read scaled down). Raises FaceNotFoundError when no detected face overlaps it."""
    box = np.asarray(box, np.float64).reshape(-1)
    if box.size != 4 or not (box[2] > box[0] and box[3] > box[1]):
        raise ValueError(f"a face box is x0,y0,x1,y1 with x1 > x0 and y1 > y0, got {box.tolist()}")
    boxes = plausible_faces(_gray(image), detect_faces(image)) / scale  # in the file's pixels
    if len(boxes):
        x0, y0 = np.maximum(boxes[:, :2], box[:2]).T
        x1, y1 = np.minimum(boxes[:, 2:], box[2:]).T
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
        iou = inter / (area(boxes) + area(box) - inter)
        if iou.max() > 0:
            return int(np.argmax(iou))
    found = ", ".join(str(b.astype(int).tolist()) for b in boxes) or "none"
    raise FaceNotFoundError(f"no face in {where} overlaps the box {box.astype(int).tolist()} (faces found: {found}). "
                            "Give a box around the face, x0,y0,x1,y1 in pixels of the first frame.")


def padded(matrix: np.ndarray, size: int, pad: float) -> np.ndarray:
    """A frame -> crop matrix (..., 2, 3) whose size x size crop shows `pad` more of its side on every side
    (0.1: the crop covers 1.2x the side), about the same centre; pad 0 returns it unchanged."""
    scale = 1.0 / (1.0 + 2.0 * pad)
    out = np.array(matrix, np.float64) * scale
    out[..., 2] += (1 - scale) * size / 2
    return out


def track_landmarks(frames, face_index: int | None = None, redetect_every: int = REDETECT_EVERY,
                    where: str = "the clip", allow_missing: bool = False,
                    cuts: list | None = None) -> tuple[np.ndarray, int]:
    """68-point landmarks through a clip, detecting only when needed.

    The detector runs on the first frame, at a scene cut, and whenever the tracked face jumps or changes
    size implausibly in a frame. In between, each frame's box comes from the previous frame's landmarks,
    mapped through the detector-box / landmark-box relation measured at the last detection (the predictor
    expects detector-like boxes); every `redetect_every` frames, and when the face's eye distance has drifted
    DRIFT_LIMIT from where the detector last looked, the followed face is checked: a detection where it is
    (_near) takes over, and a face the detector cannot find there is followed on. frames: (T, H, W, 3) uint8 or
    any iterable of frames (streamed: one in memory). `where` names the source in errors.

    allow_missing=False: the first frame must show the face; a frame where it is lost (blur, occlusion)
    keeps the last detection. allow_missing=True (videos with cutaways): frames without a face get NaN
    landmarks - before the face first appears, from a scene cut with no face, and once the detector has
    not found it for MAX_LOST frames (it left the picture), until a face is found again (looked for on
    every frame, thoroughly at cuts and every redetect_every frames); only a clip with no face at all is an
    error. cuts: a list to which the indices of frames that start a new scene are appended.
    Returns ((T, 68, 2) float32, number of detector runs).
    """
    out = []
    rel = None  # detector box expressed in the landmark box's frame: (dx0, dy0, dx1, dy1) / size
    det_box = prev = last_seen = thumb = detected = looked = None  # looked: the points where the detector last ran
    n_detect = lost = 0
    for t, frame in enumerate(frames):
        gray = _gray(frame)
        thumb, before = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32), thumb
        cut = before is not None and np.abs(thumb - before).mean() > CUT_GREY_LEVELS
        if cut and cuts is not None:
            cuts.append(t)
        points = check = None
        if prev is not None and not (allow_missing and (cut or lost)):  # follow the face
            points = landmarks_in_box(frame, _box_from(prev, rel), gray)
            if _implausible(prev, points) or (allow_missing and _leaving(points, detected, gray.shape)):
                points = None
            elif not t % redetect_every or _drifted(looked, points):
                check = points
        if check is not None:  # a plausible face checked: a detection where it is, else it is followed on
            n_detect += 1
            quick = bool(t % redetect_every)  # drifted: no CNN (a blurred face it cannot find costs ~1 s a frame)
            boxes = _near(detect_faces(frame, upsample=0, fallback=False) if quick else detect_faces(frame), check)
            if len(boxes):
                det_box = _nearest(boxes, check)
                points = landmarks_in_box(frame, det_box, gray)
                rel, detected = _box_relation(det_box, points), points
            looked = points
        elif points is None:
            n_detect += 1
            # looking for a face that is gone: a quick look, a thorough one at cuts and every redetect_every frames
            quick = allow_missing and prev is None and not cut and t % redetect_every
            boxes = detect_faces(frame, upsample=0, fallback=False) if quick else detect_faces(frame)
            if last_seen is None:  # the face is not chosen yet
                if allow_missing and not len(boxes):
                    out.append(np.full((68, 2), np.nan, np.float32))
                    continue
                det_box = choose_face(plausible_faces(gray, boxes), face_index,
                                      f"the first frame of {where}" if t == 0 else f"frame {t} of {where}")
            elif len(boxes):  # the face nearest to the tracked one
                det_box = _nearest(boxes, prev if prev is not None else last_seen)
            elif allow_missing and (cut or prev is None or lost >= MAX_LOST):  # cut away, still away, or left
                out.append(np.full((68, 2), np.nan, np.float32))
                prev, lost = None, 0
                continue
            # else: lost for a frame (blur, occlusion): keep the last detection (looked for again next frame)
            lost = 0 if len(boxes) else lost + 1
            points = landmarks_in_box(frame, det_box, gray)
            rel = _box_relation(det_box, points)
            detected = points if len(boxes) else detected
            looked = points
        out.append(points)
        prev = last_seen = points
    if not out:
        raise FaceNotFoundError(f"{where} has no frames to find a face in.")
    if last_seen is None:
        raise FaceNotFoundError(f"no face found in any of the {len(out)} frames of {where}. Use a frontal, well-lit "
                                "video where the face is at least ~40 pixels wide.")
    return np.stack(out), n_detect


def _box_relation(box: np.ndarray, points: np.ndarray) -> np.ndarray:
    """A detector box relative to its landmarks' bounding box, in units of that box's size."""
    lb = _box_of(points)
    size = lb[2:] - lb[:2]
    return np.r_[(box[:2] - lb[:2]) / size, (box[2:] - lb[2:]) / size]


def _box_from(points: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """The detector-like box for landmarks, by the relation measured at the last detection."""
    lb = _box_of(points)
    size = lb[2:] - lb[:2]
    return np.r_[lb[:2] + rel[:2] * size, lb[2:] + rel[2:] * size]


def _leaving(points: np.ndarray, seen: np.ndarray, shape: tuple[int, int]) -> bool:
    """Whether the face is leaving the (H, W) picture: its landmarks' box is at the left, right or top edge and
    under 2/3 as wide as when it was last detected (`seen`: those landmarks); the predictor squeezes the points
    of a face half out of the picture inside it."""
    box, width = _box_of(points), np.ptp(seen[:, 0])
    at_edge = box[0] <= 2 or box[1] <= 2 or box[2] >= shape[1] - 3
    return bool(at_edge and box[2] - box[0] < 2 / 3 * width)


def _implausible(prev: np.ndarray, points: np.ndarray) -> bool:
    a, b = _box_of(prev), _box_of(points)
    size_a, size_b = (a[2:] - a[:2]).mean(), (b[2:] - b[:2]).mean()
    moved = np.linalg.norm((a[:2] + a[2:]) / 2 - (b[:2] + b[2:]) / 2)
    return abs(size_b / size_a - 1) > 0.2 or moved > 0.25 * size_a


def _nearest(boxes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The detector box whose centre is nearest the centre of the landmarks `points`."""
    centre = (points.min(0) + points.max(0)) / 2
    return boxes[np.argmin(np.linalg.norm((boxes[:, :2] + boxes[:, 2:]) / 2 - centre, axis=1))]


def _near(boxes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The detector boxes that can be the followed face whose landmarks are `points`: centred within NEAR_SHARE of its
    size of it, and 0.5-2 times as large (a check must not hand the track to another face or a false detection)."""
    if not len(boxes):
        return boxes
    box = _box_of(points)
    size = (box[2:] - box[:2]).mean()
    sizes = (boxes[:, 2:] - boxes[:, :2]).mean(1)
    apart = np.linalg.norm((boxes[:, :2] + boxes[:, 2:]) / 2 - (box[:2] + box[2:]) / 2, axis=1)
    return boxes[(apart < NEAR_SHARE * size) & (sizes > 0.5 * size) & (sizes < 2 * size)]


def _drifted(seen: np.ndarray | None, points: np.ndarray) -> bool:
    """Whether a followed face's eye distance has grown or shrunk by more than DRIFT_LIMIT since the detector last
    looked for it (`seen`: the landmarks then)."""
    if seen is None:
        return False
    return abs(eye_distance(points[None])[0] / eye_distance(seen[None])[0] - 1) > DRIFT_LIMIT


SMOOTH_BLOCK = 4096  # frames smoothed at a time


def smooth(series: np.ndarray, sigma: float, out: np.ndarray | None = None) -> np.ndarray:
    """Gaussian smoothing along axis 0 (time), the first and last frames held beyond the ends: scipy's
    gaussian_filter1d(mode="nearest", truncate=4) in numpy (generation need not import SciPy's 26 MB), computed
    in float64 a block at a time into `out` (default: a new float64 array; may be `series` itself)."""
    out = np.array(series, np.float64) if out is None else out
    if len(series) < 2 or sigma <= 0:
        out[...] = series
        return out
    radius = int(4 * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    n = len(series)
    before = np.repeat(np.asarray(series[:1], np.float64), radius, axis=0)  # the rows before a block, unsmoothed
    for b0 in range(0, n, SMOOTH_BLOCK):
        b1 = min(n, b0 + SMOOTH_BLOCK)
        block = np.asarray(series[b0:b1], np.float64)
        after = np.asarray(series[np.minimum(np.arange(b1, b1 + radius), n - 1)], np.float64)  # not yet written
        rows = np.concatenate([before, block, after])
        result = sum(w * rows[k:k + b1 - b0] for k, w in enumerate(taps))
        before = np.concatenate([before, block])[-radius:]
        out[b0:b1] = result
    return out


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation; Umeyama 1991) taking
    src (N, 2) to dst (N, 2). Returns the 2x3 matrix."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / s.var(0).sum()
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply 2x3 matrices to points: (..., N, 2) with (..., 2, 3) -> (..., N, 2)."""
    return points @ np.swapaxes(matrix[..., :2], -1, -2) + matrix[..., None, :, 2]


def invert(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix (or a stack of them)."""
    a = matrix[..., :2]
    inv = np.linalg.inv(a)
    return np.concatenate([inv, -(inv @ matrix[..., 2:])], axis=-1)


@dataclass
class FaceTrack:
    """A face followed through a clip.

    landmarks: (T, 68, 2) in frame pixels, as detected (unsmoothed).
    face_matrix: (T, 2, 3) frame -> aligned FACE_SIZE crop.
    mouth_matrix: (T, 2, 3) frame -> MOUTH_SIZE mouth crop.
    detections: how many times the face detector ran.
    """

    landmarks: np.ndarray
    face_matrix: np.ndarray
    mouth_matrix: np.ndarray
    detections: int

    def landmarks_in(self, matrix: np.ndarray) -> np.ndarray:
        """Landmarks in the coordinates of a crop: (T, 68, 2) float32."""
        return transform_points(self.landmarks.astype(np.float64), matrix).astype(np.float32)


def crop_matrices(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stable face and mouth crop matrices from (T, 68, 2) landmarks.

    Face: similarity fit of the time-smoothed STABLE_POINTS to the template (the mouth and lower jaw
    move with speech, so they do not steer the alignment). Mouth: a square of MOUTH_SIDE template mouth
    widths, inside the aligned face, centred on the smoothed mouth centre.
    """
    tmpl = template()
    steady = smooth(landmarks[:, STABLE_POINTS], ALIGN_SIGMA)
    face = np.stack([similarity(p, tmpl[STABLE_POINTS]) for p in steady])  # (T, 2, 3)
    mouth_in_face = transform_points(landmarks[:, MOUTH].astype(np.float64), face).mean(1)  # (T, 2)
    centre = smooth(mouth_in_face, MOUTH_CENTRE_SIGMA)
    side = MOUTH_SIDE * np.linalg.norm(tmpl[MOUTH_CORNERS[1]] - tmpl[MOUTH_CORNERS[0]])
    scale = MOUTH_SIZE / side
    mouth = face * scale
    mouth[:, :, 2] += (MOUTH_SIZE / 2 - scale * centre)
    return face, mouth


def crop_matrices_in_runs(landmarks: np.ndarray, cuts=()) -> tuple[np.ndarray, np.ndarray]:
    """crop_matrices for a track with gaps: (T, 68, 2) landmarks, NaN where a frame has no face; smoothed within
    each run of frames that show the face in one scene, never across a gap or a cut (frame indices that start
    a scene). Returns face and mouth matrices (T, 2, 3), NaN where there is no face."""
    face = np.full((len(landmarks), 2, 3), np.nan)
    mouth = face.copy()
    seen = ~np.isnan(landmarks[:, 0, 0])
    starts = np.union1d(np.flatnonzero(np.diff(seen)) + 1, list(cuts)).astype(int)
    for run in np.split(np.arange(len(seen)), starts):
        if len(run) and seen[run[0]]:
            face[run], mouth[run] = crop_matrices(landmarks[run])
    return face, mouth


def track_face(frames: np.ndarray, face_index: int | None = None, where: str = "the clip") -> FaceTrack:
    """Landmarks and stable crop matrices for a clip (T, H, W, 3) or a single photo (1, H, W, 3)."""
    landmarks, n = track_landmarks(frames, face_index, where=where)
    face, mouth = crop_matrices(landmarks)
    return FaceTrack(landmarks, face, mouth, n)


def mouth_square(points: np.ndarray, side: float) -> tuple[int, int]:
    """(y0, x0), the top-left pixel of the side x side square centred on the mean of the mouth points of
    (68, 2) landmarks (rounded half to even), whether it stays inside the image or not."""
    x0, y0 = np.round(np.asarray(points)[MOUTH].mean(0) - side / 2).astype(int)
    return int(y0), int(x0)


def crop(frames: np.ndarray, matrices: np.ndarray, size: int) -> np.ndarray:
    """Warp each frame by its matrix into a size x size crop: (T, H, W, 3) -> (T, size, size, 3)."""
    return np.stack([cv2.warpAffine(f, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                     for f, m in zip(frames, matrices)])


@functools.cache
def feather_mask(size: int, feather: float = FEATHER) -> np.ndarray:
    """(size, size) float32 weights: 1 inside, a raised-cosine fade to 0 over `feather` of the side at the edges."""
    ramp_len = max(1, int(round(feather * size)))
    x = np.ones(size, np.float32)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp_len) + 0.5) / ramp_len)
    x[:ramp_len], x[-ramp_len:] = ramp, ramp[::-1]
    return np.outer(x, x)


def match_colour(patch: np.ndarray, frame: np.ndarray, matrix: np.ndarray, feather: float = FEATHER) -> np.ndarray:
    """A generated (S, S, 3) crop shifted, channel by channel, so that its mean colour where paste_back fades it
    into the frame (weighted towards the edge) is the frame's there: a model's tint (GRID's light and skin) does
    not show as a coloured box around the mouth. matrix: the frame -> crop matrix."""
    size = patch.shape[0]
    source = crop(frame[None], matrix[None], size)[0]
    ring = (1 - feather_mask(size, feather))[..., None]
    offset = ((patch.astype(np.float32) - source) * ring).sum((0, 1)) / ring.sum()
    return np.clip(patch - offset, 0, 255).round().astype(np.uint8)


def paste_back(frame: np.ndarray, patch: np.ndarray, matrix: np.ndarray, feather: float = FEATHER) -> np.ndarray:
    """Put a (S, S, 3) crop back into its (H, W, 3) frame, blending over a feathered seam.

    matrix: the 2x3 frame -> crop matrix the crop was made with. Returns a new uint8 frame.
    """
    h, w = frame.shape[:2]
    size = patch.shape[0]
    inverse = dict(dsize=(w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)
    warped = cv2.warpAffine(patch, matrix, **inverse).astype(np.float32)
    alpha = cv2.warpAffine(feather_mask(size, feather), matrix, **inverse)[..., None]
    return np.clip(alpha * warped + (1 - alpha) * frame, 0, 255).round().astype(np.uint8)
