"""CPBD: no-reference sharpness from the cumulative probability of blur detection.

N. D. Narvekar and L. J. Karam, "A No-Reference Image Blur Metric Based on the Cumulative
Probability of Blur Detection (CPBD)", IEEE Trans. Image Processing 20(9), 2011.

Written from the paper's description. Steps, for one image:

1. Grey levels: ITU-R BT.601 luma Y = 0.299 R + 0.587 G + 0.114 B, float in [0, 255].
2. Edge blocks: Canny edges (see `canny_edges`); the image is cut into whole BLOCK_SIZE x
   BLOCK_SIZE blocks from the top-left corner (a remainder narrower than a block at the right or
   bottom is not used); a block is an edge block if more than EDGE_BLOCK_SHARE of its pixels are
   Canny edge pixels.
3. Edge pixels whose width is measured: vertical Sobel edges (see `sobel_vertical_edges`), as in
   the authors' MATLAB code (`edge(I, 'sobel', [], 'vertical')` for widths, `edge(I, 'canny')`
   for blocks), whose gradient direction is horizontal (within 22.5 degrees).
4. Edge width (Marziliano et al.): along the image row, from the edge pixel walk left and right
   while the intensity keeps changing in the edge's direction; the width is the distance in pixels
   between the two local extrema found (see `edge_widths`).
5. Just-noticeable-blur width of the block: W_JNB = 5 if block contrast (max - min of Y in the
   block) <= 50, else 3.
6. Probability of blur detection at each measured edge pixel: P = 1 - exp(-(w / W_JNB) ** BETA).
7. CPBD = share of measured edge pixels (over all edge blocks) with P <= P_JNB, i.e. the
   cumulative distribution of P at the just-noticeable point. P_JNB is the paper's "63 %": the
   probability at w = W_JNB, 1 - exp(-1) = 0.632. Since widths are whole pixels this means
   w <= W_JNB, so an edge exactly as wide as the JNB width counts as sharp (as in the authors'
   code, which reads a histogram of P in 1 % bins at bin 63; a literal P <= 0.630 would exclude
   those edges and roughly halve the score of real video frames). Higher = sharper; in [0, 1].

Undefined (NaN) when the image has no edge block or no measured edge pixel inside one (flat or
nearly flat images, images smaller than one block). Deviations from the MATLAB reference: OpenCV
Canny on a Gaussian-smoothed image with MATLAB-style automatic thresholds instead of MATLAB's
derivative-of-Gaussian Canny; P <= 1 - exp(-1) exactly instead of a 1 %-bin histogram read at bin
63 (the same for every whole-pixel width).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .metrics import luma

BLOCK_SIZE = 64  # pixels, side of the square blocks
EDGE_BLOCK_SHARE = 0.002  # a block is an edge block if more than 0.2 % of its pixels are Canny edges
JNB_CONTRAST_SPLIT = 50  # grey levels: block contrast at or below this uses the wide JNB width
JNB_WIDTH_LOW_CONTRAST = 5  # pixels, just-noticeable-blur width for contrast <= 50
JNB_WIDTH_HIGH_CONTRAST = 3  # pixels, just-noticeable-blur width for contrast > 50
BETA = 3.6  # slope of the psychometric function P = 1 - exp(-(w / W_JNB) ** BETA)
P_JNB = 1.0 - math.exp(-1.0)  # 0.632: probability of detecting blur at w = W_JNB; CPBD = CDF(P) at P_JNB
P_ROUNDING = 1e-9  # slack so that w == W_JNB (P == P_JNB up to floating-point rounding) counts as sharp
MAX_WIDTH_STEPS = 100  # most steps walked beyond each neighbour of an edge pixel (the reference caps it so)
HORIZONTAL_TOLERANCE_DEG = 22.5  # gradient within this of 0 or 180 degrees counts as horizontal

CANNY_SIGMA = math.sqrt(2.0)  # pixels, Gaussian smoothing before Canny (MATLAB's default)
CANNY_NOT_EDGE_SHARE = 0.7  # high threshold: this quantile of gradient magnitude (MATLAB's default)
CANNY_LOW_RATIO = 0.4  # low threshold = this * high threshold (MATLAB's default)
CANNY_MAGNITUDE_BINS = 64  # the high threshold is rounded up to one of 64 levels of the max magnitude
CANNY_FIXED_POINT = 16.0  # grey levels are scaled by this before the int16 Sobel derivatives
SOBEL_CUTOFF_SCALE = 4.0  # Sobel edge: squared gradient above 4 x its image mean (MATLAB's rule)


def canny_edges(gray: np.ndarray) -> np.ndarray:
    """Canny edge map of a grey image. gray: (H, W) float in [0, 255] -> (H, W) bool.

    Gaussian smoothing (sigma sqrt(2)), 3x3 Sobel derivatives, L2 magnitude; thresholds chosen as
    MATLAB's edge(I, 'canny') does: high = the 70 % quantile of the magnitude rounded up to a
    multiple of max/64, low = 0.4 * high. A flat image has no edges.
    """
    smoothed = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), CANNY_SIGMA) * CANNY_FIXED_POINT
    dx = np.rint(cv2.Sobel(smoothed, cv2.CV_32F, 1, 0, ksize=3)).astype(np.int16)  # (H, W)
    dy = np.rint(cv2.Sobel(smoothed, cv2.CV_32F, 0, 1, ksize=3)).astype(np.int16)  # (H, W)
    magnitude = np.hypot(dx.astype(np.float64), dy.astype(np.float64))
    peak = magnitude.max()
    if peak == 0:
        return np.zeros(gray.shape, bool)
    level = max(math.ceil(CANNY_MAGNITUDE_BINS * np.quantile(magnitude, CANNY_NOT_EDGE_SHARE) / peak), 1)
    high = level / CANNY_MAGNITUDE_BINS * peak
    edges = cv2.Canny(dx, dy, CANNY_LOW_RATIO * high, high, L2gradient=True)
    return edges > 0


def sobel_vertical_edges(gray: np.ndarray) -> np.ndarray:
    """Vertical edges (intensity changing along x) as MATLAB's edge(I, 'sobel', [], 'vertical').

    gray: (H, W) float -> (H, W) bool. b = (horizontal 3x3 Sobel derivative / 8) ** 2; a pixel is an
    edge if b > 4 * mean(b) and b is a local maximum along its row (b[c-1] < b[c] >= b[c+1]).
    The one-pixel image border is never an edge.
    """
    b = (cv2.Sobel(gray.astype(np.float64), cv2.CV_64F, 1, 0, ksize=3) / 8.0) ** 2  # (H, W)
    edges = np.zeros(gray.shape, bool)
    if b.shape[1] < 3:
        return edges
    centre = b[:, 1:-1]
    edges[:, 1:-1] = (centre > SOBEL_CUTOFF_SCALE * b.mean()) & (centre > b[:, :-2]) & (centre >= b[:, 2:])
    edges[0] = edges[-1] = False
    return edges


def _run_ending_at(mask: np.ndarray) -> np.ndarray:
    """(H, N) bool -> (H, N) int: number of consecutive True values along each row ending at each index."""
    idx = np.arange(mask.shape[1])
    last_false = np.maximum.accumulate(np.where(mask, -1, idx), axis=1)
    return idx - last_false


def edge_widths(gray: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Widths in pixels of horizontal-gradient edges. gray: (H, W) float, edges: (H, W) bool -> (H, W) int.

    Gradient direction from central differences (numpy.gradient). For an edge pixel at column c whose
    gradient is within 22.5 degrees of 0 (intensity rising to the right): the left extremum is found
    by stepping left from c - 1 while the pixel further left is strictly darker, the right extremum by
    stepping right from c + 1 while the pixel further right is strictly brighter (at most
    MAX_WIDTH_STEPS steps beyond the neighbour, never past the image border). For a gradient within
    22.5 degrees of 180 (falling) "darker" and "brighter" swap. Width = right extremum column - left
    extremum column (>= 2). Pixels that are not edges, whose gradient is not horizontal, or that lie
    on the image border get width 0 (not measured).
    """
    gray = gray.astype(np.float64)
    height, width = gray.shape
    widths = np.zeros((height, width), np.int64)
    if width < 3 or height < 3:
        return widths
    gy, gx = np.gradient(gray)
    angle = np.degrees(np.arctan2(gy, gx))  # (H, W) in (-180, 180]
    rising = edges & (np.abs(angle) <= HORIZONTAL_TOLERANCE_DEG)
    falling = edges & (np.abs(angle) >= 180.0 - HORIZONTAL_TOLERANCE_DEG)
    step = np.diff(gray, axis=1)  # (H, W-1): step[:, k] = I[:, k+1] - I[:, k]
    for mask, up in ((rising, step > 0), (falling, step < 0)):
        # left walk: from c-1 while I[p-1] -> I[p] keeps the edge's direction: run of `up` ending at c-2
        run_left = np.zeros((height, width), np.int64)
        run_left[:, 2:] = _run_ending_at(up)[:, : width - 2]
        # right walk: from c+1 while I[q] -> I[q+1] keeps it: run of `up` starting at c+1
        run_right = np.zeros((height, width), np.int64)
        run_right[:, : width - 2] = _run_ending_at(up[:, ::-1])[:, ::-1][:, 1:]
        measured = mask.copy()
        measured[:, [0, -1]] = False
        measured[[0, -1], :] = False
        total = 2 + np.minimum(run_left, MAX_WIDTH_STEPS) + np.minimum(run_right, MAX_WIDTH_STEPS)
        widths[measured] = total[measured]
    return widths


def cpbd(image: np.ndarray) -> float:
    """CPBD sharpness of one image (module docstring has the full definition). Higher = sharper.

    image: (H, W, 3) uint8 RGB, or (H, W) grey levels in [0, 255]. Returns a float in [0, 1], or NaN
    when there is no edge block (flat image, or smaller than BLOCK_SIZE in either side).
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 3:
        gray = luma(image)
    elif image.ndim == 2:
        gray = image.astype(np.float64)
    else:
        raise ValueError(f"cpbd: expected an (H, W, 3) RGB or (H, W) grey image, got shape {image.shape}.")
    canny = canny_edges(gray)
    widths = edge_widths(gray, sobel_vertical_edges(gray))
    n_rows, n_cols = gray.shape[0] // BLOCK_SIZE, gray.shape[1] // BLOCK_SIZE
    n_measured, n_sharp = 0, 0
    for i in range(n_rows):
        for j in range(n_cols):
            block = np.s_[i * BLOCK_SIZE:(i + 1) * BLOCK_SIZE, j * BLOCK_SIZE:(j + 1) * BLOCK_SIZE]
            if canny[block].mean() <= EDGE_BLOCK_SHARE:
                continue
            contrast = gray[block].max() - gray[block].min()
            w_jnb = JNB_WIDTH_LOW_CONTRAST if contrast <= JNB_CONTRAST_SPLIT else JNB_WIDTH_HIGH_CONTRAST
            w = widths[block][widths[block] > 0]
            p_blur = 1.0 - np.exp(-((w / w_jnb) ** BETA))
            n_measured += w.size
            n_sharp += int(np.count_nonzero(p_blur <= P_JNB + P_ROUNDING))
    return n_sharp / n_measured if n_measured else float("nan")


def cpbd_video(frames: np.ndarray) -> float:
    """Mean CPBD over the frames of a clip. frames: (T, H, W, 3) uint8 RGB.

    Frames whose CPBD is undefined (NaN) are left out of the mean; NaN if every frame is.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"cpbd_video: expected (T, H, W, 3) RGB frames, got shape {frames.shape}.")
    values = np.array([cpbd(frame) for frame in frames])
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
