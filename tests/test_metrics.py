"""Metrics on constructed inputs whose answer is known, plus a few checks on real GRID frames."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from lipgen.evaluation import metrics
from lipgen.evaluation.cpbd import cpbd, cpbd_video, edge_widths

from .conftest import SHARED, needs_shared

GRID = SHARED / "grid"
GRID_S1 = GRID / "s1" / "video" / "bbaf2n.mp4"
GRID_S1_OTHER = GRID / "s1" / "video" / "bbaf3s.mp4"
GRID_S4 = GRID / "s4" / "video" / "bbilzs.mp4"


def grid_frames(path: Path, frames) -> np.ndarray:
    from lipgen.media import read_video
    return read_video(path)[frames]


# ---------------------------------------------------------------- landmark fixtures

MOUTH_CENTRE = np.array([32.0, 40.0])
MOUTH_HALF_WIDTH = 20.0  # outer corners 48 and 54 are 40 px apart


def mouth_landmarks(inner_half_gap: float) -> np.ndarray:
    """(68, 2) landmarks: a dlib-ordered mouth whose inner lips are 2 * inner_half_gap apart.

    Outer lip 48..59 on an ellipse (48 left corner, 54 right corner); inner lip 60 and 64 corners,
    61-63 upper and 67-65 lower at x = -7, 0, 7. Other points on a fixed circle (unused).
    """
    pts = np.zeros((68, 2))
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    pts[:48] = MOUTH_CENTRE + 30 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    outer = np.pi - np.arange(12) * (2 * np.pi / 12)  # 48 at the left, going over the top to 54 at the right
    pts[48:60] = MOUTH_CENTRE + np.stack([MOUTH_HALF_WIDTH * np.cos(outer), -10 * np.sin(outer)], axis=1)
    g = inner_half_gap
    pts[60:68] = MOUTH_CENTRE + np.array([[-14, 0], [-7, -g], [0, -g], [7, -g],
                                          [14, 0], [7, g], [0, g], [-7, g]], float)
    return pts


def circle_mouth(radius: float = 10.0, centre=(30.0, 40.0)) -> np.ndarray:
    """(68, 2) landmarks whose 20 mouth points lie evenly on a circle: their mean is the centre."""
    pts = np.zeros((68, 2))
    angles = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    pts[48:68] = np.asarray(centre) + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return pts


# ---------------------------------------------------------------- LMD


def test_lmd_identical_and_translated_are_zero():
    rng = np.random.default_rng(0)
    true = rng.uniform(0, 64, (5, 68, 2))
    assert metrics.lmd(true, true) == 0.0
    shifted = true + np.array([3.5, -2.0])  # every point of every frame moved by the same vector
    assert metrics.lmd(shifted, true) == pytest.approx(0.0, abs=1e-12)
    moved_per_frame = true + rng.normal(0, 5, (5, 1, 2))  # a different translation in each frame
    assert metrics.lmd(moved_per_frame, true) == pytest.approx(0.0, abs=1e-12)


def test_lmd_of_scaled_mouth_is_known():
    true = np.stack([circle_mouth(10.0)] * 4)
    pred = np.stack([circle_mouth(15.0, centre=(20.0, 50.0))] * 4)  # 1.5x larger, elsewhere
    assert metrics.lmd(pred, true) == pytest.approx(5.0)
    assert metrics.lmd_authors(pred, true) == pytest.approx(100.0)


def test_lmd_authors_is_20_times_lmd():
    rng = np.random.default_rng(1)
    true = rng.uniform(0, 64, (6, 68, 2))
    pred = true + rng.normal(0, 2, true.shape)
    assert metrics.lmd(pred, true) > 0.5
    assert metrics.lmd_authors(pred, true) == pytest.approx(20 * metrics.lmd(pred, true))


def test_lmd_rejects_mismatched_or_missing_landmarks():
    true = np.zeros((3, 68, 2))
    with pytest.raises(ValueError):
        metrics.lmd(np.zeros((4, 68, 2)), true)
    with pytest.raises(ValueError):
        metrics.lmd(np.zeros((3, 20, 2)), true)
    bad = true.copy()
    bad[1, 50] = np.nan
    with pytest.raises(ValueError):
        metrics.lmd(bad, true)


# ---------------------------------------------------------------- SSIM, PSNR


def random_clip(seed: int = 0, shape=(3, 40, 48, 3)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = cv2.GaussianBlur(rng.uniform(0, 255, shape[1:]).astype(np.float32), (0, 0), 2)
    base = np.stack([np.roll(smooth, t, axis=1) for t in range(shape[0])])
    return np.clip(base * 3 - 250, 0, 255).astype(np.uint8)


def test_ssim_psnr_identical_clips():
    a = random_clip()
    assert metrics.ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    assert metrics.psnr(a, a) == float("inf")


def test_noise_lowers_ssim_and_psnr():
    a = random_clip()
    rng = np.random.default_rng(2)
    little = np.clip(a + rng.normal(0, 4, a.shape), 0, 255).astype(np.uint8)
    much = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    assert 1.0 > metrics.ssim(a, little) > metrics.ssim(a, much)
    assert math.isfinite(metrics.psnr(a, little))
    assert metrics.psnr(a, little) > metrics.psnr(a, much)


@pytest.mark.parametrize("offset", [1, 5, 40])
def test_psnr_of_constant_offset(offset):
    a = np.full((2, 16, 16, 3), 100, np.uint8)
    b = a + np.uint8(offset)
    assert metrics.psnr(a, b) == pytest.approx(20 * math.log10(255 / offset))


def test_ssim_is_on_luma_and_checks_shapes():
    a = random_clip()
    assert not np.array_equal(metrics.luma(a), metrics.luma(a[..., ::-1]))
    assert metrics.ssim(a, a[..., ::-1].copy()) < 0.999  # swapping R and B changes luma
    grey = np.repeat(metrics.luma(a).round().astype(np.uint8)[..., None], 3, axis=-1)
    assert metrics.ssim(a, grey) > 0.99  # colour dropped, luma kept (to rounding)
    with pytest.raises(ValueError):
        metrics.ssim(a, a[:, :-1])
    with pytest.raises(ValueError):
        metrics.ssim(a[:, :8, :8], a[:, :8, :8])


# ---------------------------------------------------------------- CPBD


def rectangles_scene(seed: int = 1, size: int = 128) -> np.ndarray:
    """(size, size, 3) uint8 grey scene of overlapping sharp-edged rectangles, contrasts 5..90."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size), 128.0)
    for _ in range(40):
        x0, y0 = rng.integers(0, size - 8, 2)
        w, h = rng.integers(4, 24, 2)
        img[y0:y0 + h, x0:x0 + w] += rng.choice([-1, 1]) * rng.uniform(5, 90)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return np.repeat(img[..., None], 3, axis=-1)


def blurred(image: np.ndarray, sigma: float) -> np.ndarray:
    return image if sigma == 0 else cv2.GaussianBlur(image, (0, 0), sigma)


def test_edge_width_is_distance_between_extrema():
    row = np.array([5, 5, 0, 10, 20, 30, 40, 45, 45, 45], float)  # min at 2, max at 7
    gray = np.tile(row, (5, 1))
    edges = np.zeros_like(gray, bool)
    edges[2, 4] = True
    assert edge_widths(gray, edges)[2, 4] == 5
    falling = gray[:, ::-1].copy()  # mirrored: the same edge falling left to right
    assert edge_widths(falling, edges[:, ::-1].copy())[2, 5] == 5
    step = np.tile(np.array([0, 0, 0, 0, 255, 255, 255, 255], float), (3, 1))
    step_edges = np.zeros_like(step, bool)
    step_edges[1, 3] = True
    assert edge_widths(step, step_edges)[1, 3] == 2
    assert edge_widths(step, step_edges).sum() == 2  # nothing measured off the edge map


def ramps(steps: int, contrast: float, period: int = 64, size: int = 128, base: float = 20) -> np.ndarray:
    """(size, size, 3) uint8: every row rises by `contrast` over `steps` pixels and falls back, each period."""
    half = period // 2
    rise = np.linspace(0, contrast, steps + 1)
    row = np.concatenate([np.zeros(half - steps), rise[:-1], np.full(half - steps, contrast), rise[:0:-1]])
    img = np.tile(np.tile(row, size // period) + base, (size, 1)).round().astype(np.uint8)
    return np.repeat(img[..., None], 3, axis=-1)


@pytest.mark.parametrize("contrast, w_jnb", [(200, 3), (40, 5)])
def test_cpbd_edge_as_wide_as_jnb_counts_as_sharp(contrast, w_jnb):
    # ramps `steps` pixels wide measure width `steps` (one truncated at the right border: steps - 1)
    assert cpbd(ramps(w_jnb, contrast)) == 1.0  # P(w = W_JNB) = 1 - 1/e = P_JNB: counted as sharp
    assert cpbd(ramps(w_jnb + 1, contrast)) < 0.3  # only the truncated border edges stay sharp


def test_cpbd_decreases_with_blur():
    scene = rectangles_scene()
    values = [cpbd(blurred(scene, s)) for s in (0, 0.5, 1, 2, 3)]
    assert values[0] > 0.9
    for sharper, blurrier in zip(values, values[1:]):
        assert blurrier < sharper or sharper == blurrier == 0.0
    assert values[1] < values[0] and values[2] < values[1]
    assert values[-1] < 0.05


def test_cpbd_flat_or_small_image_is_nan():
    assert math.isnan(cpbd(np.full((128, 128, 3), 90, np.uint8)))
    assert math.isnan(cpbd(rectangles_scene(size=48)))  # smaller than one 64x64 block


def test_cpbd_ignores_pixels_outside_whole_blocks():
    image = np.full((100, 100, 3), 128, np.uint8)
    image[64:, 64:] = rectangles_scene(size=36)  # edges only in the remainder right of / below the block
    assert math.isnan(cpbd(image))
    image[:36, :36] = rectangles_scene(size=36)  # now the top-left block has edges too
    assert cpbd(image) > 0.5


def test_cpbd_video_is_mean_over_frames():
    scene = rectangles_scene()
    clip = np.stack([scene, blurred(scene, 0.5), np.full_like(scene, 90)])  # the flat frame is NaN, left out
    assert cpbd_video(clip) == pytest.approx((cpbd(clip[0]) + cpbd(clip[1])) / 2)


@needs_shared
@pytest.mark.parametrize("crop", ["full", "mouth"])
def test_cpbd_on_grid_frame_decreases_with_blur(crop):
    frame = grid_frames(GRID_S1, 30)
    if crop == "mouth":
        frame = frame[182:246, 126:190]  # 64x64 around the mouth of s1 in bbaf2n frame 30
    values = [cpbd(blurred(frame, s)) for s in (0, 1, 2, 3)]
    assert 0.0 < values[0] < 1.0
    assert values[1] < values[0]
    assert all(b <= a for a, b in zip(values, values[1:]))


# ---------------------------------------------------------------- identity


def test_identity_falls_back_to_whole_frame_without_face():
    noise = np.random.default_rng(3).integers(0, 256, (1, 80, 80, 3), dtype=np.uint8)
    d = metrics.face_descriptors(noise[:, :, ::-1])  # non-contiguous view on purpose
    assert d.shape == (1, 128) and np.isfinite(d).all() and np.linalg.norm(d) > 0


@needs_shared
def test_identity_same_vs_different_person():
    s1 = grid_frames(GRID_S1, [10, 50])
    s1_other = grid_frames(GRID_S1_OTHER, [40])
    s4 = grid_frames(GRID_S4, [10])
    assert metrics.identity_similarity(s1, s1) > 0.99
    same = metrics.identity_distance(s1[:1], s1_other)
    different = metrics.identity_distance(s1[:1], s4)
    assert same < metrics.SAME_PERSON_DISTANCE < different


# ---------------------------------------------------------------- mouth opening, silence


def test_mouth_opening_open_vs_closed():
    clip = np.stack([mouth_landmarks(0.0), mouth_landmarks(4.0)])
    opening = metrics.mouth_opening(clip)
    assert opening.shape == (2,)
    assert opening[0] == pytest.approx(0.0)
    assert opening[1] == pytest.approx(8.0 / 40.0)  # 8 px inner gap over a 40 px wide mouth
    scaled = MOUTH_CENTRE + 2 * (clip - MOUTH_CENTRE)  # the same mouth twice as large
    assert metrics.mouth_opening(scaled) == pytest.approx(opening)


def test_silence_opening_averages_only_silent_frames():
    clip = np.stack([mouth_landmarks(g) for g in (0.0, 6.0, 2.0, 8.0)])
    silent = np.array([True, False, True, False])
    assert metrics.silence_opening(clip, silent) == pytest.approx((0.0 + 4.0 / 40.0) / 2)
    assert math.isnan(metrics.silence_opening(clip, np.zeros(4, bool)))
    with pytest.raises(ValueError):
        metrics.silence_opening(clip, np.ones(3, bool))


# ---------------------------------------------------------------- jitter


def smooth_clip(n_frames: int = 12) -> np.ndarray:
    """(T, 68, 2): the mouth moving at constant velocity while its shape grows linearly."""
    base = mouth_landmarks(3.0)
    t = np.arange(n_frames)[:, None, None]
    return MOUTH_CENTRE + (1 + 0.02 * t) * (base - MOUTH_CENTRE) + t * np.array([1.5, -0.5])


def flicker_pattern() -> np.ndarray:
    """(68, 2): +1 px in y on mouth points 48..57, -1 px on 58..67: unit norm per point, zero mean."""
    d = np.zeros((68, 2))
    d[48:58, 1], d[58:68, 1] = 1.0, -1.0
    return d


def test_smooth_motion_has_no_jitter():
    assert metrics.mouth_jitter(smooth_clip()) == pytest.approx(0.0, abs=1e-9)


def test_alternating_one_pixel_noise_gives_four():
    clip = smooth_clip()
    signs = (-1.0) ** np.arange(len(clip))
    noisy = clip + signs[:, None, None] * flicker_pattern()
    # m[t+1] - 2 m[t] + m[t-1] = -+4 d for a +-1 px flicker: norm 4 at every point and frame
    assert metrics.mouth_jitter(noisy) == pytest.approx(4.0)


def test_jitter_ignores_head_translation():
    clip = smooth_clip()
    shake = np.where(np.arange(len(clip)) % 2, 1.0, -1.0)[:, None, None] * np.array([1.0, 1.0])
    assert metrics.mouth_jitter(clip + shake) == pytest.approx(0.0, abs=1e-9)  # whole mouth moves: centred away


def test_seam_jitter_averages_the_two_accelerations_across_the_seam():
    n_frames, seam, speed = 10, 5, 2.0
    t = np.minimum(np.arange(n_frames), seam - 1)[:, None, None]  # shape changes until frame 4, then stops
    clip = mouth_landmarks(2.0) + speed * t * flicker_pattern()
    # acceleration norm: 2 at frame seam-1 (the kink), 0 at frame seam
    assert metrics.seam_jitter(clip, [seam]) == pytest.approx(speed / 2)
    assert metrics.mouth_jitter(clip) == pytest.approx(speed / (n_frames - 2))


def test_seam_jitter_sees_a_jump_at_the_seam():
    clip = smooth_clip(12)
    jump, seam = 3.0, 6
    clip[seam:] += jump * flicker_pattern()  # the mouth shape jumps between frames 5 and 6
    assert metrics.seam_jitter(clip, [seam]) == pytest.approx(jump)
    assert metrics.mouth_jitter(clip) == pytest.approx(2 * jump / (len(clip) - 2))
    assert metrics.seam_jitter(smooth_clip(12), [seam]) == pytest.approx(0.0, abs=1e-9)
    assert math.isnan(metrics.seam_jitter(clip, []))
    with pytest.raises(ValueError):
        metrics.seam_jitter(clip, [12])
