"""Draw predicted mouth motion onto any face: a dense warp of the face's own pixels plus a mouth interior.

The motion model (lipgen.models.motion) says where the 31 lower-face points (jaw 3-13, mouth 48-67)
should be in every frame; this module moves the target's own pixels there, at the source's own
resolution, so identity, skin, lighting, paint or marble, and sharpness are kept by construction
(FOMM / LivePortrait's principle, MakeItTalk's warp for faces it never trained on). Only what a warp
cannot show is synthesised: the inside of lips that open wider than in the source (a dark cavity with
a hint of upper teeth), blended in with a soft mask.

The warp: a thin-plate spline through the moved points, pinned by the eyes, brows, nose, the upper jaw
and a ring around the lower face (all of which stay put), gives every output pixel of the lower-face
box the source pixel it shows (backward mapping: out(x) = src(x - d(x)), d interpolated at the target
positions). Outside that box the frame is untouched. A frame whose motion would fold the face (a chin dropped
past the neck, a turned head's far lip torn: high expressiveness) is moved only as far as it can be without
(unfolded).

Coordinates are (x, y) frame pixels; points are dlib's 68 (lipgen.face).
"""

from __future__ import annotations

import cv2
import numpy as np

from .face import INNER_LIP_PAIRS, MOUTH_CORNERS, invert, transform_points
from .models.motion import MOTION_POINTS, closed, opening, rest_shape
from .pixels import LUMA, grey_as

REVISION = 21  # of what is drawn: part of the evaluations' cached videos' key (2: a photo's openings all drawn;
# 3: the painted interior's edge 3x sharper; 4: a video's jaw sides keep their own outline; 5: the interior between
# smooth curves through the inner lips, not straight lines; 6: the warp kept off the eyes; 7: ... of bowed heads only;
# 8: the interior the union of the curves and the straight lines; 9: ... a video frame's between the curves alone;
# 10: a photo's closed lips meet at a dark seam; 11: ... and its own interior is shut before the warp; 12: neither
# lightens a pixel; 13: no fold (the jaw's halo where the jaw goes, motion scaled down), teeth fade at the corners
# and are taken from a photo only where they look like teeth; 14: ... a video frame's own always; 15: after a
# frame drawn part of the way the motion returns gradually; 16: the closed rest's lips meet where GRID's part, the
# upper lip brought down a fifth of the gap; 17: ... and an arched mouth's corners raised towards level; 18: a video's
# face looked for again when its followed points shrink or grow (lipgen.face.DRIFT_LIMIT), not drawn where they slid;
# 19: the motion the same on any thread count (a video made with two threads before it is made again); 20: inner
# lips read crossed are closed as lips that part, and nothing is painted or shut between them; 21: behind lips that
# are not red (a statue's, a tinted photo's, a drawing's) the cavity is as dark but no redder than they are
PINNED = np.r_[0:3, 14:17, 17:48]  # brows, nose, eyes, upper jaw: do not move with speech
UPPER_LIP = [49, 50, 51, 52, 53, 61, 62, 63]
LOWER_LIP = [55, 56, 57, 58, 59, 65, 66, 67]
UPPER_PART = [p for p in MOTION_POINTS if p not in LOWER_LIP and not 5 <= p <= 11]  # what moves above the parting
LOWER_PART = [p for p in MOTION_POINTS if p not in UPPER_LIP]  # ... and below it
PARTING_BLEND = 0.5  # beyond the mouth corners the parting softens by this many pixels per pixel
BOX_MARGIN = 0.3  # lower-face box margin, in face widths (jaw point 0 to 16)
MASK_SOFTNESS = 0.04  # the warp fades out over this share of the box beyond the jaw line
EYES_CLEAR = 0.25  # share of the way from the lower eyelids to the nose base that the warp leaves untouched
JAW_HALO = 1.3  # pinned points this many times further from the nose tip than the jaw line
RING_POINTS = 6  # pinned points per side of the box border
JAW_LINE = np.arange(2, 15)  # the jaw points pinned JAW_HALO times further out
GRID_STEP = 4  # pixels between thin-plate spline evaluations (bilinear in between)
# mask blur, in mouth widths. 0.06 until session 13: its blur spread the dark interior over the lips, and dlib read a
# drawn mouth about 1.3x as open as asked (GRID, the real motion drawn; docs/eval/unseen/README.md, "Ceilings")
FILL_SOFTNESS = 0.02
UPPER_TEETH = 0.3  # share of the opening the upper teeth may take ...
TEETH_MAX = 0.12  # ... but at most this many mouth widths, ...
TEETH_SHARE = 0.5  # ... and at most this share of any column's opening (towards the corners the opening narrows)
TEETH_SIDES = (0.55, 0.85)  # the teeth fade out between these shares of the way from the centre to a corner, into
# the dark at the mouth's sides (a band drawn corner to corner looked like a denture's rim)
TEETH_NEUTRAL = 0.25  # a source's own teeth are its open mouth's brightest fifth when that is this near grey ...
TEETH_BRIGHTER = 1.3  # ... and this many times as bright as its lips (else it is lip, tongue or moustache)
CAVITY = np.array([0.30, 0.13, 0.12])  # cavity colour at the lip edge, as a share of the lip colour (red lips) ...
CAVITY_GREY = float(CAVITY @ LUMA)  # ... and as dark but no redder than the lips, where they are not red
LIP_RED = 0.25  # how much redder the lips are than grey ((R - mean(G, B)) / max): at or above it the cavity is
# CAVITY's, below it (a statue's, a tinted photo's, a drawing's blue lips) in proportion towards CAVITY_GREY
DEEP = 0.35  # the deepest cavity is this much darker than its edge
ENAMEL = np.array([0.95, 0.93, 0.88])  # teeth a photo does not show, under white light
SEAM = 0.7  # opacity of the dark line where a photo's closed lips meet ...
SEAM_WIDTH = 0.012  # ... its width (Gaussian sigma) in mouth widths ...
SEAM_DARK = 0.45  # ... and its colour, as a share of the lip colour
FOLD_LIMIT = 0.05  # the warp's least area ratio outside the lips: below it a frame's motion is scaled down (unfolded)
UNFOLD_RELEASE = 0.1  # ... and the next frames' back up by at most this share a frame (no frame-to-frame pumping)


# Video frames: the share of each MOTION_POINT's own position kept (the rest, the rest shape's). A turned, tilted or
# nodding head's jaw outline is its pose's, not speech's; forcing the cheeks' points onto the rest shape (taken from
# other frames, and mapped by a similarity fitted to the eyes and nose) pulled them up to 0.3 eye distances and tore
# the cheek (latentsync_demo1's head turning, frames 66-80). The chin (6-10) and the lips still go where speech says.
OWN_JAW = np.zeros(len(MOTION_POINTS))
for _point, _share in {3: 1.0, 13: 1.0, 4: 0.6, 12: 0.6, 5: 0.3, 11: 0.3}.items():
    OWN_JAW[list(MOTION_POINTS).index(_point)] = _share


def _part(points, n_still: int = len(PINNED) + len(JAW_LINE) + 4 * RING_POINTS) -> np.ndarray:
    """Indices, into warp's centres (MOTION_POINTS, then its still points), of a part's moving points and
    every still point."""
    moving = [list(MOTION_POINTS).index(p) for p in points]
    return np.r_[moving, len(MOTION_POINTS) + np.arange(n_still)]


_PARTS = (_part(UPPER_PART), _part(LOWER_PART))
_t = np.linspace(0, 1, RING_POINTS, endpoint=False)
_RING = np.concatenate([np.c_[_t, 0 * _t], np.c_[1 + 0 * _t, _t], np.c_[1 - _t, 1 + 0 * _t], np.c_[0 * _t, 1 - _t]])


def parted(points: np.ndarray) -> float:
    """How far apart the inner lips of (68, 2) points are across the mouth (pixels, the mean of the facing pairs along
    the normal of the line between the inner corners): below 0 where a reading crosses them (the lower above the upper:
    dlib on a small closed mouth), which opening(), a distance, reads as open."""
    axis = points[64] - points[60]
    length = float(np.linalg.norm(axis))
    normal = np.array([-axis[1], axis[0]]) / length if length >= 1.0 else np.array([0.0, 1.0])  # to the lower lip
    return float(np.mean([(points[b] - points[a]) @ normal for a, b in INNER_LIP_PAIRS]))


def source_opening(points: np.ndarray) -> float:
    """The opening (pixels) a frame's own lips show between them: opening(), or 0 where the reading crosses them.
    (opening() itself stays a distance: it is also what the judges and the motion model's training measure.)"""
    return float(opening(points)) if parted(points) > 0 else 0.0


def target_points(points: np.ndarray, face_matrix: np.ndarray, rest: np.ndarray, motion: np.ndarray,
                  own_jaw: bool = False) -> np.ndarray:
    """Where the 68 points should be: MOTION_POINTS at rest + motion (aligned face), mapped back into
    the frame by this frame's alignment; every other point stays. own_jaw (a video): the jaw's sides keep the
    frame's own outline (OWN_JAW) and only move by the motion. points (68, 2) frame pixels, face_matrix (2, 3)
    frame -> aligned face, rest and motion (31, 2) aligned pixels -> (68, 2)."""
    points = np.asarray(points, np.float64)
    moved = rest + motion
    if own_jaw:
        moved = moved + OWN_JAW[:, None] * (transform_points(points[MOTION_POINTS], face_matrix) - rest)
    out = points.copy()
    out[MOTION_POINTS] = transform_points(moved, invert(face_matrix))
    return out


_LOWER_FACE = np.r_[2:15, 31:36, 48:68]  # jaw line, nose base, lips


def _box(points: np.ndarray, shape, pad: float = 0.0) -> tuple[int, int, int, int]:
    lower = points[_LOWER_FACE]
    width = np.linalg.norm(points[16] - points[0])
    m = (BOX_MARGIN + pad) * width
    x0, y0 = np.floor(lower.min(0) - m).astype(int)
    x1, y1 = np.ceil(lower.max(0) + m).astype(int)
    h, w = shape[:2]
    return max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)


def _tps_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """U(r) = r^2 log r between (N, 2) and (M, 2) points: (N, M)."""
    r2 = np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T, 0)
    return 0.5 * r2 * np.log(r2 + 1e-12)


def _tps_fit(kernel: np.ndarray, centres: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Thin-plate spline coefficients through (N, 2) centres (their (N, N) _tps_kernel) with (N, 2) values:
    (N + 3, 2)."""
    n = len(centres)
    p = np.c_[np.ones(n), centres]
    a = np.zeros((n + 3, n + 3))
    a[:n, :n], a[:n, n:], a[n:, :n] = kernel + 1e-6 * np.eye(n), p, p.T
    b = np.zeros((n + 3, 2))
    b[:n] = values
    return np.linalg.solve(a, b)


def warp(frame: np.ndarray, src: np.ndarray, dst: np.ndarray, pad: float = 0.0) -> np.ndarray:
    """Move the lower face so that points `src` (68, 2) land on `dst` (68, 2): (H, W, 3) uint8 -> new frame.

    The lips part along the mouth line: above it the upper lip (and the upper teeth, if the source shows
    them) follow one spline, below it the lower lip and jaw follow another, so lips can close over
    teeth and open without stretching what lies between them; beyond the mouth corners the two
    blend smoothly into one. pad: how much further beyond the jaw line the warp may fade out, in shares of
    the lower-face box (on top of MASK_SOFTNESS), the box growing with it by pad face widths.
    """
    return _remap(frame, *_displacement(frame.shape, src, dst, pad))


def _remap(frame: np.ndarray, d: np.ndarray | None, box) -> np.ndarray:
    """frame with out(x) = frame(x - d(x)) inside box (x0, y0, x1, y1); d None: the frame unchanged."""
    if d is None:
        return frame.copy()
    x0, y0, x1, y1 = box
    xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    out = frame.copy()
    out[y0:y1, x0:x1] = cv2.remap(frame, xs - d[..., 0], ys - d[..., 1], cv2.INTER_CUBIC,
                                  borderMode=cv2.BORDER_REPLICATE)
    return out


def _displacement(shape, src: np.ndarray, dst: np.ndarray, pad: float = 0.0):
    """warp's displacement d (H, W, 2) float32 over its lower-face box (x0, y0, x1, y1): (d, box); d None where the
    box is too small to warp."""
    both = np.concatenate([src, dst])
    x0, y0, x1, y1 = box = _box(both, shape, pad)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None, box
    size = (y1 - y0, x1 - x0)
    origin = np.array([x0, y0], np.float64)
    scale = max(size)
    ring = origin + _RING * (x1 - x0, y1 - y0)
    nose = src[30]
    # pinned just outside the jaw line, where it is or goes, whichever is further (a chin dropped past a point held
    # still folds the neck over it): cheeks, neck and background beside them stay put
    jaw_src, jaw_dst = src[JAW_LINE] - nose, dst[JAW_LINE] - nose
    further = (np.linalg.norm(jaw_dst, axis=1) > np.linalg.norm(jaw_src, axis=1))[:, None]
    beyond_jaw = nose + JAW_HALO * np.where(further, jaw_dst, jaw_src)
    still = np.concatenate([src[PINNED], beyond_jaw, ring])
    centres = np.concatenate([dst[MOTION_POINTS], still]) - origin
    shift = np.concatenate([dst[MOTION_POINTS] - src[MOTION_POINTS], np.zeros((len(still), 2))])
    fields = _fields(centres, shift, _PARTS, scale, size)
    below = _below_mouth_line(dst, origin, size)[..., None]  # 0 above the lips' parting, 1 below
    d = (1 - below) * fields[0] + below * fields[1]
    d *= (_lower_face_mask(both - origin, size, scale, pad) * _below_eyes(src, origin, size))[..., None]
    return d, box


def _folded(d: np.ndarray, box, dst: np.ndarray) -> bool:
    """Whether the backward map x - d(x) folds (its Jacobian determinant under FOLD_LIMIT: the source's pixels shown
    twice, flipped) anywhere but inside the lips, where the parting is meant to tear and the interior is painted."""
    jx, jy = np.gradient(-d[..., 0]), np.gradient(-d[..., 1])  # each (d/dy, d/dx)
    det = (1 + jx[1]) * (1 + jy[0]) - jx[0] * jy[1]
    inside = np.zeros(det.shape, np.uint8)
    cv2.fillPoly(inside, [np.round(dst[60:68] - box[:2]).astype(np.int32)], 1)
    grow = int(max(3, 0.08 * np.linalg.norm(dst[MOUTH_CORNERS[1]] - dst[MOUTH_CORNERS[0]]))) | 1
    inside = cv2.dilate(inside, np.ones((grow, grow), np.uint8))
    return bool((det[inside == 0] < FOLD_LIMIT).any())


def unfolded(shape, src: np.ndarray, dst: np.ndarray, pad: float = 0.0, most: float = 1.0):
    """Where to draw: src + k (dst - src) for the largest k up to `most` (found to 1/16 by bisection) whose warp does
    not fold the face (a chin dropped past the neck, a turned head's far lip torn: high expressiveness), with warp's
    displacement to it: (those points, d, box, k)."""
    moved = dst if most >= 1 else src + most * (dst - src)
    d, box = _displacement(shape, src, moved, pad)
    if d is None or not _folded(d, box, moved):
        return moved, d, box, min(most, 1.0)
    low, high, best = 0.0, min(most, 1.0), (src, None, box, 0.0)
    for _ in range(4):
        k = (low + high) / 2
        moved = src + k * (dst - src)
        d, box = _displacement(shape, src, moved, pad)
        if _folded(d, box, moved):
            high = k
        else:
            low, best = k, (moved, d, box, k)
    return best


def _below_eyes(src: np.ndarray, origin: np.ndarray, size) -> np.ndarray:
    """(H, W) weight that keeps the warp off the eyes of a head bowed towards the camera, whose jaw's moving ends
    (3, 13) reach up towards eye level: the spline between the pinned eyes and them shook a pair of glasses' rims
    by 2-3 pixels (makeittalk_harry). There the weight is 0 down to EYES_CLEAR of the way from the line through
    the lower eyelids to the nose base, rising to 1 at EYES_CLEAR + 0.5 of it; it fades in as the jaw's ends rise
    from the nose base (every validation clip's and the astronaut's, 1.05-2.2 of the way) to 0.8 of the way
    (Harry's 0.67), and an upright face is warped as before."""
    left, right = src[40:42].mean(0), src[46:48].mean(0)
    along = (right - left) / (np.linalg.norm(right - left) + 1e-6)
    down = np.array([-along[1], along[0]])
    down = down if (src[33] - left) @ down >= 0 else -down  # towards the mouth
    reach = max(float((src[33] - left) @ down), 1.0)
    jaw_ends = min(float((src[j] - left) @ down) for j in (3, 13)) / reach
    guard = np.clip((1.0 - jaw_ends) / 0.2, 0, 1)
    if guard == 0:
        return np.ones(size, np.float32)
    xs, ys = np.meshgrid(np.arange(size[1]) + origin[0] + 0.5 - left[0], np.arange(size[0]) + origin[1] + 0.5 - left[1])
    share = (xs * down[0] + ys * down[1]) / reach
    return (1 - guard * (1 - np.clip((share - EYES_CLEAR) / 0.5, 0, 1))).astype(np.float32)


def _fields(centres: np.ndarray, shift: np.ndarray, parts, scale: float, size) -> list[np.ndarray]:
    """Thin-plate spline displacements, one per part: through the centres `part` (indices into (N, 2) centres,
    box pixels) with their (N, 2) shifts, evaluated every GRID_STEP pixels and interpolated: [(H, W, 2)
    float32]. The parts share most centres, so the spline kernel at the grid is computed once for all."""
    c = centres / scale  # normalised coordinates: well-conditioned systems
    # samples at pixel k * step + (step - 1) / 2: cv2.resize (pixel-centre aligned) then lands them exactly
    gx = np.arange(-(-size[1] // GRID_STEP)) * GRID_STEP + (GRID_STEP - 1) / 2
    gy = np.arange(-(-size[0] // GRID_STEP)) * GRID_STEP + (GRID_STEP - 1) / 2
    grid = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2) / scale
    at_grid = _tps_kernel(grid.astype(np.float32), c.astype(np.float32))  # (G, N)
    at_centres = _tps_kernel(c, c)
    out = []
    for part in parts:
        coef = _tps_fit(at_centres[np.ix_(part, part)], c[part], shift[part])
        weights = np.zeros((len(c), 2), np.float32)
        weights[part] = coef[:-3]  # centres outside the part weigh nothing
        d = at_grid @ weights + (coef[-3] + grid @ coef[-2:]).astype(np.float32)
        d = cv2.resize(d.reshape(len(gy), len(gx), 2), (len(gx) * GRID_STEP, len(gy) * GRID_STEP),
                       interpolation=cv2.INTER_LINEAR)
        out.append(d[: size[0], : size[1]])
    return out


def _below_mouth_line(dst: np.ndarray, origin: np.ndarray, size) -> np.ndarray:
    """(H, W) weight of the lower part: a sharp step at the middle of the target lips' opening between the
    mouth corners, widening to a smooth blend beyond them."""
    xs = np.arange(size[1]) + origin[0] + 0.5
    mid = 0.5 * (_lip_curve(dst, (60, 61, 62, 63, 64), xs) + _lip_curve(dst, (64, 65, 66, 67, 60), xs))
    left, right = sorted((dst[60, 0], dst[64, 0]))
    outside = np.maximum(left - xs, 0) + np.maximum(xs - right, 0)
    soft = 0.5 + PARTING_BLEND * outside  # pixels
    yy = np.arange(size[0])[:, None] + origin[1] + 0.5
    return (1 / (1 + np.exp(-np.clip((yy - mid) / soft, -50, 50)))).astype(np.float32)


_HULL = np.r_[2:15, 31:36, 68 + 2:68 + 15]  # of source and target points: both jaw lines, the nose base


def _lower_face_mask(points: np.ndarray, shape, scale: float, pad: float = 0.0) -> np.ndarray:
    """1 inside the hull of the jaw line and nose base (source and target, (136, 2) in box pixels), fading
    to 0 a little outside it: the warp may move nothing beyond the jaw (cheek edges, neck, background)."""
    hull_points = points[_HULL]
    mask = np.zeros(shape, np.float32)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(hull_points).astype(np.int32)), 1.0)
    soft = max(1.0, (MASK_SOFTNESS + pad) * scale)
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(2 * soft) | 1,) * 2))
    return cv2.GaussianBlur(mask, (0, 0), soft / 2)


def _lip_curve(points: np.ndarray, idx, xs: np.ndarray) -> np.ndarray:
    p = points[list(idx)]
    order = np.argsort(p[:, 0])
    return np.interp(xs, p[order, 0], p[order, 1])


def _smooth_curve(u: np.ndarray, v: np.ndarray, at: np.ndarray) -> np.ndarray:
    """v(at) along a smooth curve through the points (u, v), sorted by u: cubic Hermite pieces with tangents from
    the neighbours (one-sided at the ends). Lips are curves; the straight lines between dlib's points alone drew
    an octagon of a mouth. Beyond the ends, the end values."""
    order = np.argsort(u, kind="stable")
    u, v = u[order], v[order]
    du = np.maximum(np.diff(u), 1e-6)
    slope = np.diff(v) / du
    tangent = np.r_[slope[0], (slope[:-1] * du[1:] + slope[1:] * du[:-1]) / (du[:-1] + du[1:]), slope[-1]]
    i = np.clip(np.searchsorted(u, at) - 1, 0, len(u) - 2)
    t = np.clip((at - u[i]) / du[i], 0, 1)
    h00, h10, h01, h11 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t, -2 * t**3 + 3 * t**2, t**3 - t**2
    return h00 * v[i] + h10 * du[i] * tangent[i] + h01 * v[i + 1] + h11 * du[i] * tangent[i + 1]


def fill_mouth(frame: np.ndarray, dst: np.ndarray, source_gap: float, lips: np.ndarray,
               teeth_colour: np.ndarray, photo: bool = True) -> np.ndarray:
    """Paint the inside of the lips at `dst` (68, 2) where they open wider than the source's own
    opening `source_gap` (pixels; up to that, the source's real interior, warped, is kept): a cavity
    shaded from the lip colour `lips` (RGB) and a band of upper teeth of `teeth_colour` (RGB), inside smooth
    curves through the inner lips (drawn in the mouth's own frame: u along the line between its inner corners, v
    across it, so a tilted mouth is drawn as a level one).
    photo: also inside the straight lines between the points (where dlib's points bend inwards the curves pass
    inside the lines, and dlib read such drawn photos' mouths 10-15% less open), and lips closed or barely parted
    meet at a dark seam, as real lips do (a photo's own seam is squeezed away when its lips are closed by the warp).
    A video frame's interior is kept up to its own opening and only the rest is painted: there the curves alone
    follow the real opening more closely, and its own seam is kept (docs/eval/unseen/README.md, "Session 19")."""
    gap = float(opening(dst))
    mouth_w = np.linalg.norm(dst[MOUTH_CORNERS[1]] - dst[MOUTH_CORNERS[0]])
    strength = np.clip((gap - source_gap) / (0.3 * gap + 1e-6), 0, 1) * np.clip((gap - 0.5) / 1.5, 0, 1)
    seam = SEAM * (1 - strength) if photo else 0.0  # fades as the cavity opens
    corner, across_line = dst[60], dst[64] - dst[60]
    length = float(np.linalg.norm(across_line))
    if max(strength, seam) <= 0 or mouth_w < 4 or length < 2:
        return frame
    inner = dst[60:68]
    x0, y0 = np.floor(inner.min(0)).astype(int) - 2
    x1, y1 = np.ceil(inner.max(0)).astype(int) + 3
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return frame
    axis = across_line / length
    normal = np.array([-axis[1], axis[0]])  # v grows towards the lower lip
    uv = (inner - corner) @ np.c_[axis, normal]  # (8, 2): the inner lips in the mouth's frame
    gx, gy = np.meshgrid(np.arange(x0, x1) + 0.5 - corner[0], np.arange(y0, y1) + 0.5 - corner[1])
    u, v = gx * axis[0] + gy * axis[1], gx * normal[0] + gy * normal[1]
    upper = _smooth_curve(uv[[0, 1, 2, 3, 4], 0], uv[[0, 1, 2, 3, 4], 1], u)  # 60 61 62 63 64
    lower = _smooth_curve(uv[[4, 5, 6, 7, 0], 0], uv[[4, 5, 6, 7, 0], 1], u)  # 64 65 66 67 60
    lower = np.maximum(lower, upper)
    inside = np.clip(v - upper + 0.5, 0, 1) * np.clip(lower - v + 0.5, 0, 1) * ((u > 0) & (u < length))
    if photo:  # the straight lines, at 1/4 px
        polygon = np.zeros((y1 - y0, x1 - x0), np.float32)
        cv2.fillPoly(polygon, [np.round((inner - [x0, y0]) * 4).astype(np.int32)], 1.0, cv2.LINE_AA, shift=2)
        inside = np.maximum(inside, polygon)
    mask = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), max(0.5, FILL_SOFTNESS * mouth_w)) * strength
    span = np.maximum(lower - upper, 1e-3)
    depth = np.clip((v - upper) / span, 0, 1)  # 0 at the upper lip, 1 at the lower
    across = np.clip(np.abs(u - length / 2) / (length / 2), 0, 1)[..., None]  # 0 centre, 1 corner
    cavity = lips * _cavity_share(lips) * (1 - DEEP * np.sin(np.pi * depth)[..., None]) * (1 - 0.3 * across ** 2)
    teeth_depth = np.minimum(min(UPPER_TEETH * gap, TEETH_MAX * mouth_w) / span, TEETH_SHARE)  # share of each column
    teeth = np.clip((teeth_depth - depth) * max(gap, 1.0), 0, 1)  # 1 in the band, soft lower edge ...
    teeth = (teeth * np.clip((TEETH_SIDES[1] - across[..., 0]) / (TEETH_SIDES[1] - TEETH_SIDES[0]), 0, 1))[..., None]
    teeth_shaded = teeth_colour * (1 - 0.5 * across ** 2) * (0.8 + 0.2 * (1 - depth[..., None]))
    interior = teeth * teeth_shaded + (1 - teeth) * cavity
    out = frame.copy()
    region = out[y0:y1, x0:x1].astype(np.float32)
    region = mask[..., None] * interior + (1 - mask[..., None]) * region
    if seam > 0:
        middle, width = (upper + lower) / 2, max(0.5, SEAM_WIDTH * mouth_w)
        taper = np.sqrt(np.sin(np.pi * np.clip(u / length, 0, 1)))  # thinning out to the corners
        line = (seam * taper * np.exp(-0.5 * ((v - middle) / width) ** 2))[..., None]
        region = np.minimum(region, line * lips * SEAM_DARK + (1 - line) * region)  # never lighter than it was
    out[y0:y1, x0:x1] = np.clip(region, 0, 255).round().astype(np.uint8)
    return out


def _cavity_share(lips: np.ndarray) -> np.ndarray:
    """The cavity's colour as a share of the lip colour: a mouth's red inside (CAVITY) behind red lips, but behind lips
    that are not (a stone statue's, a tinted or faded photo's, a drawing's blue ones) as dark and no redder than they
    are (a red mouth painted into a grey-green statue looked pasted on)."""
    lips = np.asarray(lips, np.float64)
    red = np.clip((lips[0] - lips[1:].mean()) / max(lips.max(), 1.0) / LIP_RED, 0, 1)
    return red * CAVITY + (1 - red) * CAVITY_GREY


def _teeth_colour(frame: np.ndarray, points: np.ndarray, lips: np.ndarray | None = None) -> np.ndarray:
    """Teeth as the source shows them (the brightest fifth of its open mouth), else a light enamel as bright as the
    face's highlights allow (paintings and dim photos get dimmer teeth) and tinted by their colour. lips (a photo's
    lip colour): take the photo's own only if it looks like teeth, near grey and brighter than the lips (a photo's
    one reading of an "open" mouth can be lip, tongue or moustache). A video frame's open mouth is its real interior
    of the moment, and what is painted beyond it continues it (with enamel instead, dubbing followed the real
    opening at 0.40 against 0.46: docs/eval/unseen/README.md, "Session 20")."""
    if source_opening(points) > 2.0:
        mask = np.zeros(frame.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(points[60:68]).astype(np.int32)], 1)
        inside = frame[mask > 0].astype(np.float64)
        if len(inside) >= 10:
            luma = inside.mean(1)
            shown = inside[luma >= np.percentile(luma, 80)].mean(0)
            if lips is None or (np.ptp(shown) <= TEETH_NEUTRAL * shown.mean()
                                and shown.mean() >= TEETH_BRIGHTER * lips.mean()):
                return shown
    x0, y0, x1, y1 = _box(points, frame.shape)
    skin = frame[y0:y1, x0:x1].reshape(-1, 3).astype(np.float64)
    if not len(skin):
        return ENAMEL * 200.0
    luma = skin.mean(1)
    bright = np.percentile(luma, 95)
    highlights = skin[luma >= bright].mean(0)
    cast = np.sqrt(highlights / max(highlights.mean(), 1.0))  # half the light's colour: cream teeth under orange
    return ENAMEL * cast * min(245.0, 1.1 * bright)  # paint, not the blue-grey a neutral white looks beside it


def _lip_colour(frame: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Mean RGB of the lips: a 3x3 patch at each outer-lip point, pulled a little toward the inner lip."""
    h, w = frame.shape[:2]
    samples = []
    for o, i in zip(range(48, 60), (60, 61, 62, 62, 63, 64, 64, 65, 66, 66, 67, 60)):
        x, y = np.round(0.6 * points[o] + 0.4 * points[i]).astype(int)
        patch = frame[max(y - 1, 0):min(y + 2, h), max(x - 1, 0):min(x + 2, w)]
        if patch.size:
            samples.append(patch.reshape(-1, 3).mean(0))
    return np.mean(samples, 0) if samples else np.array([150.0, 80.0, 80.0])


def colours(frame: np.ndarray, src: np.ndarray, photo: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The source's lip and teeth colours (RGB): what render() paints an opened mouth with. photo: see
    _teeth_colour."""
    lips = _lip_colour(frame, src)
    return lips, _teeth_colour(frame, src, lips if photo else None)


def render(frame: np.ndarray, src: np.ndarray, dst: np.ndarray, paints: tuple | None = None,
           pad: float = 0.0, source_gap: float | None = None, photo: bool = False) -> np.ndarray:
    """The frame with its lower face moved from `src` to `dst` (68, 2) and the opened lips filled.
    paints: colours(frame, src) when already known (a photo's, for every frame); pad: see warp; source_gap: the
    opening (pixels) up to which the frame's own interior is kept (default: 0 for a photo, else the landmarks',
    source_opening(src)); photo: the frame is a still image (see animate and fill_mouth)."""
    lips, teeth = paints if paints is not None else colours(frame, src, photo)
    gap = (0.0 if photo else source_opening(src)) if source_gap is None else source_gap
    return _draw(_interior_shut(frame, src, lips) if photo else frame, frame, src, dst, (lips, teeth), pad, gap,
                 photo)[0]


def _draw(base: np.ndarray, frame: np.ndarray, src: np.ndarray, dst: np.ndarray, paints: tuple, pad: float,
          gap: float, photo: bool, most: float = 1.0) -> tuple[np.ndarray, float]:
    """render's drawing: `base` (the frame, a photo's with its interior shut) moved towards dst as far as it unfolds
    (at most `most` of the way) and filled, in frame's colours: (image, the share of the way it moved)."""
    dst, d, box, share = unfolded(frame.shape, src, dst, pad, most)
    return grey_as(fill_mouth(_remap(base, d, box), dst, gap, *paints, photo), frame), share


def _interior_shut(frame: np.ndarray, src: np.ndarray, lips: np.ndarray) -> np.ndarray:
    """A photo with whatever shows between its lips (teeth, tongue) darkened to the seam's lip colour. Every opening
    of a photo is painted (fill_mouth), so its own interior shows only where the warp has squeezed it between
    closed lips: as a bright line of teeth there, which dlib read as parted lips."""
    if source_opening(src) < 1.0:
        return frame
    mask = np.zeros(frame.shape[:2], np.float32)
    cv2.fillPoly(mask, [np.round(src[60:68] * 4).astype(np.int32)], 1.0, cv2.LINE_AA, shift=2)
    h, w = frame.shape[:2]
    (x0, y0), (x1, y1) = np.maximum(np.floor(src[60:68].min(0)).astype(int) - 4, 0), \
        np.minimum(np.ceil(src[60:68].max(0)).astype(int) + 5, [w, h])
    mask = cv2.GaussianBlur(mask[y0:y1, x0:x1], (0, 0), 1.0)[..., None]
    out = frame.copy()
    region = frame[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.minimum(region, mask * lips * SEAM_DARK + (1 - mask) * region).round().astype(np.uint8)
    return out


def one_blas_thread():
    """A context in which numpy's BLAS runs on one thread: wrap any loop that draws frames. The warp's
    matrices are small, and BLAS's threads only spin against the encoder and the drawing thread for the
    cores (whole pipeline 5.4-6.0x -> 9.0-9.4x real time on 2 cores: benchmarks/generate_speed.py)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def rest_of(landmarks: np.ndarray, face_matrix: np.ndarray) -> np.ndarray:
    """The rest shape (31, 2) a face track is animated from: its least-open frames' lower face (a photo: itself),
    lips brought together. landmarks (T, 68, 2) and face_matrix (T, 2, 3), NaN where a frame has no face."""
    seen = ~np.isnan(landmarks[:, 0, 0])
    return closed(rest_shape(transform_points(landmarks[seen].astype(np.float64), face_matrix[seen])))


def animate(tracked, rest: np.ndarray, motion, pad: float = 0.0, photo: bool = False):
    """Yield frame t moved by motion[t] (31, 2) from the rest shape; tracked yields (frame, its (68, 2)
    landmarks, its frame -> aligned face matrix), with matrix None where the frame has no face (passed through).
    motion: (T, 31, 2), or any iterable of (31, 2) rows (a stream: each row is taken when its frame is drawn);
    frames beyond it pass through. pad: see warp. A frame whose motion would fold the face is drawn part of the way
    (unfolded), and the frames after it return to their full motion by UNFOLD_RELEASE a frame.
    photo: the frames are one still image. Its mouth rests closed (rest_of), so whatever its lips showed between
    them is gone at rest, and every opening beyond the rest is drawn as a mouth interior. Without it (a video) the
    frame's own interior is kept up to the frame's own opening: its landmarks follow real lips. A photo's single
    reading is not to be trusted that far: on a beard or moustache dlib reads closed lips as open (makeittalk_dali:
    0.17 of the inter-ocular distance), and then nothing but lips was ever shown between the moved lips."""
    paints, source, share = None, None, 1.0  # share: of the motion drawn in the last frame (unfolded)
    rows = iter(motion)
    for frame, points, matrix in tracked:
        step = next(rows, None)
        if matrix is None or step is None:
            yield frame
            continue
        points = np.asarray(points, np.float64)
        if source is None or frame is not source[0] or not np.array_equal(points, source[1]):
            paints, source = colours(frame, points, photo), (frame, points)  # a photo's once; a video's per frame
            base = _interior_shut(frame, points, paints[0]) if photo else frame  # a photo's shut once
        dst = target_points(points, matrix, rest, step, own_jaw=not photo)
        image, share = _draw(base, frame, points, dst, paints, pad, 0.0 if photo else source_opening(points), photo,
                             min(share + UNFOLD_RELEASE, 1.0))
        yield image
