"""The field's metrics, each defined once and exactly: arrays in, floats (or arrays) out.

Conventions:
- clips are (T, H, W, 3) uint8 RGB arrays; a generated clip and its real counterpart are the
  same crop at the same resolution;
- landmarks are (T, 68, 2) float arrays, (x, y) in pixels of the crop being evaluated, dlib's
  68-point layout (mouth = indices 48..67: outer lip 48..59, inner lip 60..67).

docs/metrics.md publishes these definitions with crop, resolution and which way is better.
CPBD (no-reference sharpness) lives in cpbd.py.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

from ..face import INNER_LIP_PAIRS, MOUTH, MOUTH_CORNERS  # dlib-68 point indices, defined in face
from ..media import BT601_LUMA

N_LANDMARKS = 68

PIXEL_MAX = 255.0  # peak value of uint8 pixels (PSNR MAX, SSIM dynamic range L)
SSIM_WINDOW = 11  # pixels, side of the Gaussian window (Wang et al. 2004)
SSIM_SIGMA = 1.5  # pixels, standard deviation of the Gaussian window
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_C1 = (SSIM_K1 * PIXEL_MAX) ** 2
SSIM_C2 = (SSIM_K2 * PIXEL_MAX) ** 2

SAME_PERSON_DISTANCE = 0.6  # dlib convention: descriptor distance below this = same person
FACE_CHIP_SIZE = 150  # pixels, side of the aligned face chip dlib's recognition network expects
DETECTOR_UPSAMPLE = 1  # times dlib's HOG detector upsamples the frame (finds faces down to ~40 px)


# ---------------------------------------------------------------- landmarks: LMD


def _check_landmarks(landmarks: np.ndarray, name: str) -> np.ndarray:
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (N_LANDMARKS, 2):
        raise ValueError(f"{name}: expected (T, {N_LANDMARKS}, 2) dlib-68 landmarks, got shape {landmarks.shape}.")
    if not np.isfinite(landmarks).all():
        raise ValueError(f"{name}: landmarks contain NaN or inf (a frame without a detected face?). "
                         "Leave such frames out before measuring.")
    return landmarks


def _centred_point_distances(pred: np.ndarray, true: np.ndarray, points) -> np.ndarray:
    """(T, P): distance per frame and point after centring each frame's point set on its own mean."""
    pred = _check_landmarks(pred, "pred_landmarks")[:, points]  # (T, P, 2)
    true = _check_landmarks(true, "true_landmarks")[:, points]  # (T, P, 2)
    if pred.shape != true.shape:
        raise ValueError(f"LMD: generated and real landmarks differ in shape ({pred.shape} vs {true.shape}); "
                         "give the same frames of both clips.")
    pred = pred - pred.mean(axis=1, keepdims=True)
    true = true - true.mean(axis=1, keepdims=True)
    return np.linalg.norm(pred - true, axis=-1)


def lmd(pred_landmarks: np.ndarray, true_landmarks: np.ndarray, points=MOUTH) -> float:
    """LipGen's landmark distance (LMD), in pixels of the crop the landmarks were measured on.

    pred_landmarks, true_landmarks: (T, 68, 2) float, generated and real frames, same T.
    In each frame the chosen points (default: the 20 mouth points 48..67) are centred on their own
    mean, separately for generated and real; LMD = mean over frames and points of the Euclidean
    distance between corresponding points:  mean_t mean_i || (p_ti - mean_j p_tj) - (q_ti - mean_j q_tj) ||.
    lipgen's evaluation passes landmarks measured on the 64x64 mouth crop, so the unit is pixels of
    that 64x64 crop. Lower is better; 0 for identical mouth shapes (a translation is ignored).
    """
    return float(_centred_point_distances(pred_landmarks, true_landmarks, points).mean())


def lmd_authors(pred_landmarks: np.ndarray, true_landmarks: np.ndarray, points=MOUTH) -> float:
    """LMD as the original authors' code computes it: per-frame SUM over the points, mean over frames.

    Same centring and distances as `lmd` (landmarks on the 64x64 mouth crop, pixels of that crop),
    but summed over the 20 mouth points instead of averaged: lmd_authors = 20 * lmd for the mouth.
    Reported only to compare with numbers computed that way. Lower is better.
    """
    return float(_centred_point_distances(pred_landmarks, true_landmarks, points).sum(axis=1).mean())


# ---------------------------------------------------------------- pixels: SSIM, PSNR


def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma Y = 0.299 R + 0.587 G + 0.114 B. (..., 3) uint8 -> (...) float64 in [0, 255]."""
    return np.asarray(rgb, dtype=np.float64) @ np.asarray(BT601_LUMA)


def _check_clip_pair(a: np.ndarray, b: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"{name}: expected (T, H, W, 3) RGB clips, got shape {a.shape}.")
    if a.shape != b.shape:
        raise ValueError(f"{name}: clips differ in shape ({a.shape} vs {b.shape}); compare the same crop "
                         "at the same resolution and the same number of frames.")
    return a, b


def _gaussian_window() -> np.ndarray:
    """(SSIM_WINDOW,) normalised 1-D Gaussian; its outer product is MATLAB's fspecial('gaussian', 11, 1.5)."""
    x = np.arange(SSIM_WINDOW) - SSIM_WINDOW // 2
    g = np.exp(-(x ** 2) / (2 * SSIM_SIGMA ** 2))
    return g / g.sum()


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang, Bovik, Sheikh, Simoncelli 2004) on luma, averaged over frames.

    a, b: (T, H, W, 3) uint8 RGB, the same crop, H and W >= 11. Per frame: BT.601 luma in [0, 255];
    local statistics under an 11x11 Gaussian window (sigma 1.5); C1 = (0.01 * 255)^2,
    C2 = (0.03 * 255)^2; the SSIM map is kept only where the window fits inside the frame ("valid",
    as Wang's ssim_index.m; no automatic downsampling) and averaged; then the mean over frames.
    In [-1, 1]; higher is better, 1 for identical clips.
    """
    a, b = _check_clip_pair(a, b, "ssim")
    if min(a.shape[1:3]) < SSIM_WINDOW:
        raise ValueError(f"ssim: frames of {a.shape[1]}x{a.shape[2]} are smaller than the "
                         f"{SSIM_WINDOW}x{SSIM_WINDOW} window.")
    x, y = luma(a), luma(b)  # (T, H, W)
    g = _gaussian_window()
    r = SSIM_WINDOW // 2

    def local_mean(img: np.ndarray) -> np.ndarray:  # (T, H, W) -> (T, H - 10, W - 10)
        out = ndimage.correlate1d(ndimage.correlate1d(img, g, axis=1), g, axis=2)
        return out[:, r:-r, r:-r]

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x ** 2
    var_y = local_mean(y * y) - mu_y ** 2
    cov = local_mean(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)) / (
        (mu_x ** 2 + mu_y ** 2 + SSIM_C1) * (var_x + var_y + SSIM_C2))
    return float(ssim_map.mean(axis=(1, 2)).mean())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB on RGB: 10 log10(255^2 / MSE), MSE over every pixel and channel of the whole clip.

    a, b: (T, H, W, 3) uint8 RGB, the same crop. The MSE is pooled over the clip (not a mean of
    per-frame PSNRs). float('inf') for identical clips. Higher is better.
    """
    a, b = _check_clip_pair(a, b, "psnr")
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(PIXEL_MAX ** 2 / mse))


# ---------------------------------------------------------------- identity: dlib face descriptors


@functools.lru_cache(maxsize=1)
def _dlib_models():
    """(HOG face detector, 5-point shape predictor, ResNet face recogniser), loaded once (the model files of
    the face-recognition-models package, found as lipgen.face finds them)."""
    from ..face import _dlib, _detector, dlib_model_path

    dlib = _dlib()
    return (_detector(), dlib.shape_predictor(dlib_model_path("shape_predictor_5_face_landmarks.dat")),
            dlib.face_recognition_model_v1(dlib_model_path("dlib_face_recognition_resnet_model_v1.dat")))


def face_descriptors(frames: np.ndarray) -> np.ndarray:
    """dlib's 128-d face descriptor of each frame. frames: (T, H, W, 3) uint8 RGB -> (T, 128) float64.

    Per frame: the largest face found by dlib's HOG detector (frame upsampled once); if none is
    found the whole frame is taken as the face box (frames here are often already aligned face
    crops). 5-point landmarks in that box, dlib.get_face_chip(frame, shape, size=150), then
    dlib_face_recognition_resnet_model_v1 on the chip.
    """
    import dlib

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"face_descriptors: expected (T, H, W, 3) uint8 RGB frames, "
                         f"got {frames.dtype} {frames.shape}.")
    detector, shape_predictor, recogniser = _dlib_models()
    out = np.empty((len(frames), 128))
    for t, frame in enumerate(frames):
        frame = np.ascontiguousarray(frame)  # dlib silently misreads non-contiguous arrays
        boxes = detector(frame, DETECTOR_UPSAMPLE)
        if len(boxes):
            box = max(boxes, key=lambda r: r.area())
        else:
            box = dlib.rectangle(0, 0, frame.shape[1] - 1, frame.shape[0] - 1)
        chip = dlib.get_face_chip(frame, shape_predictor(frame, box), size=FACE_CHIP_SIZE)
        out[t] = np.asarray(recogniser.compute_face_descriptor(np.ascontiguousarray(chip)))
    return out


def identity_similarity(a_frames: np.ndarray, b_frames: np.ndarray) -> float:
    """Cosine similarity of the mean dlib face descriptors of two clips (see face_descriptors).

    a_frames: (Ta, H, W, 3), b_frames: (Tb, H', W', 3) uint8 RGB. cos(mean_t d_a, mean_t d_b), in
    [-1, 1]; higher = more alike (same person and same frames give 1).
    """
    da, db = face_descriptors(a_frames).mean(axis=0), face_descriptors(b_frames).mean(axis=0)
    return float(da @ db / (np.linalg.norm(da) * np.linalg.norm(db)))


def identity_distance(a_frames: np.ndarray, b_frames: np.ndarray) -> float:
    """Euclidean distance of the mean dlib face descriptors of two clips (see face_descriptors).

    Lower = more alike; by dlib's convention a distance below SAME_PERSON_DISTANCE (0.6) is the
    same person.
    """
    da, db = face_descriptors(a_frames).mean(axis=0), face_descriptors(b_frames).mean(axis=0)
    return float(np.linalg.norm(da - db))


# ---------------------------------------------------------------- mouth: opening in silence, jitter


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Scale-free inner-lip opening per frame. landmarks: (T, 68, 2) -> (T,) float64.

    opening_t = mean over the pairs (61, 67), (62, 66), (63, 65) of the distance between the
    facing inner-lip points, divided by the mouth width = distance between the outer corners
    48 and 54 (the outer corners are steadier than the inner ones, which merge when the mouth
    closes). 0 = closed lips; on GRID speaker s1 about 0.03 with lips at rest and up to about 0.16
    while speaking.
    """
    landmarks = _check_landmarks(landmarks, "mouth_opening")
    gap = np.mean([np.linalg.norm(landmarks[:, i] - landmarks[:, j], axis=-1) for i, j in INNER_LIP_PAIRS], axis=0)
    width = np.linalg.norm(landmarks[:, MOUTH_CORNERS[0]] - landmarks[:, MOUTH_CORNERS[1]], axis=-1)
    if np.any(width == 0):
        raise ValueError("mouth_opening: mouth corners 48 and 54 coincide in some frame; these are not face landmarks.")
    return gap / width


def silence_opening(landmarks: np.ndarray, silent_mask: np.ndarray) -> float:
    """Mean mouth_opening over the silent frames: how well the mouth stays closed when nobody speaks.

    landmarks: (T, 68, 2); silent_mask: (T,) bool, True for frames inside `sil`/`sp` intervals of the
    word timings. NaN if no frame is silent. Lower is better (closed mouth in silence).
    """
    opening = mouth_opening(landmarks)
    silent_mask = np.asarray(silent_mask)
    if silent_mask.shape != opening.shape or silent_mask.dtype != bool:
        raise ValueError(f"silence_opening: silent_mask must be ({len(opening)},) bool, "
                         f"got {silent_mask.dtype} {silent_mask.shape}.")
    return float(opening[silent_mask].mean()) if silent_mask.any() else float("nan")


def _mouth_acceleration(landmarks: np.ndarray, points) -> np.ndarray:
    """(T-2, P): || m[t+1] - 2 m[t] + m[t-1] || per point, row k centred at frame t = k + 1, where m is
    the mouth point set of each frame centred on its own mean (head translation removed)."""
    landmarks = _check_landmarks(landmarks, "jitter")
    if len(landmarks) < 3:
        raise ValueError(f"jitter needs at least 3 frames, got {len(landmarks)}.")
    m = landmarks[:, points]  # (T, P, 2)
    m = m - m.mean(axis=1, keepdims=True)
    return np.linalg.norm(m[2:] - 2 * m[1:-1] + m[:-2], axis=-1)


def mouth_jitter(landmarks: np.ndarray, points=MOUTH) -> float:
    """Temporal jitter of the mouth shape, in pixels per frame^2 of the crop the landmarks are on.

    landmarks: (T, 68, 2), T >= 3. Each frame's mouth points (48..67) are centred on their own mean,
    giving m_t (20, 2); jitter = mean over t = 1..T-2 and the 20 points of ||m_{t+1} - 2 m_t + m_{t-1}||
    (the norm of the discrete acceleration). A shape that changes linearly in time scores 0;
    a shape flickering by +-d pixels every frame scores 4 d. Lower is better (compare with real video:
    speech itself has acceleration).
    """
    return float(_mouth_acceleration(landmarks, points).mean())


def seam_jitter(landmarks: np.ndarray, seams, points=MOUTH) -> float:
    """mouth_jitter restricted to the accelerations that straddle window seams.

    landmarks: (T, 68, 2), T >= 3; seams: indices s (1 <= s <= T-1) of the first frame of each new
    generation window (the seam lies between frames s-1 and s). Averages the per-point acceleration
    norm of mouth_jitter over the frames t in {s-1, s} (each counted once, kept if 1 <= t <= T-2):
    the two accelerations whose three frames cross the seam. NaN if seams is empty (a recurrent
    generator has none). Lower is better; compare with mouth_jitter of the same clip.
    """
    acceleration = _mouth_acceleration(landmarks, points)  # (T-2, P), row k = frame k + 1
    n_frames = acceleration.shape[0] + 2
    seams = np.unique(np.asarray(seams, dtype=np.int64).reshape(-1))
    if seams.size == 0:
        return float("nan")
    if seams.min() < 1 or seams.max() > n_frames - 1:
        raise ValueError(f"seam_jitter: seam indices must lie in [1, {n_frames - 1}] (first frame of a new window), "
                         f"got {seams.min()}..{seams.max()}.")
    frames = np.unique(np.concatenate([seams - 1, seams]))
    frames = frames[(frames >= 1) & (frames <= n_frames - 2)]
    return float(acceleration[frames - 1].mean())
