import cv2
import numpy as np
import pytest

from lipgen import face, media
from lipgen.errors import FaceNotFoundError, MultipleFacesError
from lipgen.generate import SAMPLE_FACE



@pytest.fixture(scope="module")
def tracked(clip):
    frames = media.read_video(clip)
    return frames, face.track_face(frames)


def test_tracking_detects_rarely_and_finds_68_points(tracked):
    frames, track = tracked
    assert track.landmarks.shape == (len(frames), 68, 2)
    assert track.detections <= 3  # detector once plus periodic checks, not per frame
    # the naive per-frame detector agrees with the tracked landmarks (within a few pixels on the mouth)
    for t in (10, 40, 70):
        box = face.detect_faces(frames[t])[0]
        direct = face.landmarks_in_box(frames[t], box)
        assert np.abs(direct[48:] - track.landmarks[t, 48:]).mean() < 3


def test_mouth_crop_centre_sits_on_the_mouth(tracked):
    _, track = tracked
    centre = face.transform_points(np.array([[face.MOUTH_SIZE / 2] * 2]), face.invert(track.mouth_matrix))[:, 0]
    mouth = track.landmarks[:, face.MOUTH].mean(1)
    width = np.linalg.norm(track.landmarks[:, 54] - track.landmarks[:, 48], axis=1)
    assert (np.linalg.norm(centre - mouth, axis=1) < 0.15 * width).all()
    in_crop = track.landmarks_in(track.mouth_matrix)[:, face.MOUTH]
    assert (in_crop > 0).all() and (in_crop < face.MOUTH_SIZE).all()


def test_crops_are_stable_over_the_clip(tracked):
    _, track = tracked
    rigid = track.landmarks_in(track.face_matrix)[:, face.STABLE_POINTS]
    assert rigid.std(0).mean() < 1.5  # pixels of the 128 crop: the aligned face does not jitter
    corners = np.array([[[0, 0], [64, 0], [0, 64], [64, 64.0]]])
    window = face.transform_points(corners, face.invert(track.mouth_matrix))  # (T, 4, 2) in frame pixels
    step = np.linalg.norm(np.diff(window, axis=0), axis=-1)
    assert step.max() < 1.0  # the mouth window's corners move under a pixel between frames


def test_paste_back_of_unmodified_crop_reproduces_frame(tracked):
    frames, track = tracked
    for t in (0, 37):
        patch = face.crop(frames[t:t + 1], track.mouth_matrix[t:t + 1], face.MOUTH_SIZE)[0]
        pasted = face.paste_back(frames[t], patch, track.mouth_matrix[t])
        mouth = track.landmarks[t, face.MOUTH].astype(int)
        x0, y0 = mouth.min(0) - 5
        x1, y1 = mouth.max(0) + 5
        region = np.abs(pasted[y0:y1, x0:x1].astype(int) - frames[t, y0:y1, x0:x1])
        assert region.mean() < 3
        assert np.abs(pasted.astype(int) - frames[t])[:, :x0 - 30].max() == 0  # far from the mouth: untouched


def test_a_tinted_crop_is_pasted_in_the_frames_colour(tracked):
    """A model's crop a few levels redder than the face (GRID's light) would show as a pink box: the paste takes
    the crop's mean colour at its fading edge to the frame's there, and keeps what differs inside it."""
    frames, track = tracked
    matrix = track.mouth_matrix[0]
    patch = face.crop(frames[:1], matrix[None], face.MOUTH_SIZE)[0].astype(np.int16)
    patch[24:40, 24:40] = 20  # a dark mouth the model drew ...
    tinted = np.clip(patch + [12, -6, -6], 0, 255).astype(np.uint8)  # ... in a redder light
    matched = face.match_colour(tinted, frames[0], matrix)
    edge = face.feather_mask(face.MOUTH_SIZE) < 0.5
    shift = (matched.astype(int) - patch)[edge].mean(0)
    assert np.abs(shift).max() < 1.5  # the tint is gone at the edge (12 levels before)
    assert matched[24:40, 24:40].mean() < 30  # the drawn mouth is kept


def test_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (30, 2))
    a = 1.7 * np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
    m = np.c_[a, [5.0, -8.0]]
    assert np.allclose(face.similarity(src, face.transform_points(src, m)), m, atol=1e-8)
    assert np.allclose(face.transform_points(face.transform_points(src, m), face.invert(m)), src)


def test_no_face_is_a_clear_error():
    blank = np.full((1, 200, 200, 3), 128, np.uint8)
    with pytest.raises(FaceNotFoundError, match="no face found"):
        face.track_face(blank, where="blank.png")


def test_two_faces_need_a_face_index(tracked):
    frames, _ = tracked
    pair = np.concatenate([frames[0], frames[0][:, ::-1]], axis=1)[None]  # the speaker and a mirror image
    with pytest.raises(MultipleFacesError, match="--face-index"):
        face.track_face(pair)
    left = face.track_face(pair, face_index=0).landmarks[0, :, 0].mean()
    right = face.track_face(pair, face_index=1).landmarks[0, :, 0].mean()
    assert abs(left - right) > 200
    with pytest.raises(FaceNotFoundError, match="face index 5"):
        face.track_face(pair, face_index=5)


def test_smooth_is_scipys_gaussian_filter_a_block_at_a_time():
    from scipy.ndimage import gaussian_filter1d

    from lipgen.face import SMOOTH_BLOCK, smooth

    rng = np.random.default_rng(0)
    for n in (2, 3, 7, SMOOTH_BLOCK - 1, 2 * SMOOTH_BLOCK + 5):
        for sigma in (0.7, 2.0, 5.0):
            x = rng.normal(size=(n, 4, 2))
            expected = gaussian_filter1d(x, sigma, axis=0, mode="nearest")
            assert np.allclose(smooth(x, sigma), expected, atol=1e-12)
            inplace = x.astype(np.float32)
            smooth(inplace, sigma, out=inplace)  # as the motion model smooths its prediction
            assert np.allclose(inplace, expected, atol=1e-5)
    one = rng.normal(size=(1, 3))
    assert np.array_equal(smooth(one, 2.0), one)


def test_a_followed_face_that_changes_size_past_the_drift_limit_is_looked_for_again(clip):
    import cv2

    frames = media.read_video(clip)[:40]
    h, w = frames.shape[1:3]
    zoomed = np.full_like(frames, 128)
    for t, frame in enumerate(frames):  # the camera zooms out to half size over 20 frames, then holds
        small = cv2.resize(frame, None, fx=1 - 0.5 * min(t / 20, 1), fy=1 - 0.5 * min(t / 20, 1),
                           interpolation=cv2.INTER_AREA)
        y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
        zoomed[t, y:y + small.shape[0], x:x + small.shape[1]] = small
    landmarks, detections = face.track_landmarks(zoomed)
    assert detections == 2  # the first frame's, and again once the eyes were 30% closer than when detected
    fresh = face.landmarks_in_box(zoomed[-1], face.detect_faces(zoomed[-1])[0])
    assert abs(face.eye_distance(landmarks[-1:])[0] / face.eye_distance(fresh[None])[0] - 1) < 0.05


def test_a_check_never_hands_the_track_to_another_face(clip):
    import cv2

    frames = media.read_video(clip)[:60]
    first, _ = face.track_landmarks(frames[:1])
    centre = (first[0].min(0) + first[0].max(0)) / 2
    h, w = frames.shape[1:3]
    pairs = []
    for t, frame in enumerate(frames):  # the left face shrinks to 0.35 and back (too small to detect), the right stays
        k = np.interp(t, [5, 25, 35, 45], [1, 0.35, 0.35, 1])
        shrink = np.float32([[k, 0, (1 - k) * centre[0]], [0, k, (1 - k) * centre[1]]])
        still = np.float32([[0.9, 0, 0.1 * centre[0]], [0, 0.9, 0.1 * centre[1]]])
        pairs.append(np.hstack([cv2.warpAffine(frame, shrink, (w, h)), cv2.warpAffine(frame, still, (w, h))]))
    for allow_missing in (False, True):
        landmarks, detections = face.track_landmarks(pairs, 0, allow_missing=allow_missing)
        assert detections > 2  # checked as it shrank past the drift limit, and every 50 frames
        assert (landmarks[:, :, 0].max(1) < w).all()  # always on the left face, never NaN


def _astronaut(scale: float) -> np.ndarray:
    photo = media.read_image(SAMPLE_FACE)
    return cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)


def _unscaled(points: np.ndarray, scale: float) -> np.ndarray:
    return (points + 0.5) / scale - 0.5  # pixel centres of an image resized by `scale` back to the photo's

def test_a_small_face_is_read_between_pixels(monkeypatch):
    small = _astronaut(0.6)  # eyes ~26 px apart, a 52 px box: a mouth a few pixels tall
    box = face.detect_faces(small)[0]
    half_right = cv2.warpAffine(small, np.float32([[1, 0, 0.5], [0, 1, 0]]), small.shape[1::-1], flags=cv2.INTER_CUBIC)
    shift = (face.landmarks_in_box(half_right, box) - face.landmarks_in_box(small, box))[:, 0]
    assert 0.3 < np.median(shift) < 0.7  # the points follow half a pixel
    monkeypatch.setattr(face, "LANDMARK_SIDE", 0)  # read where the face is: dlib's whole pixels
    shift = (face.landmarks_in_box(half_right, box) - face.landmarks_in_box(small, box))[:, 0]
    assert np.all(shift == np.round(shift))


def test_small_faces_are_read_as_they_are_at_full_size(monkeypatch):
    big = _astronaut(3.0)  # a 260 px box, read as it is
    box = face.detect_faces(big)[0]
    assert box[2] - box[0] > face.LANDMARK_SIDE
    full = _unscaled(face.landmarks_in_box(big, box), 3.0)
    iod = face.eye_distance(full[None])[0]

    def mouth_error(side: int) -> float:
        monkeypatch.setattr(face, "LANDMARK_SIDE", side)
        errors = []
        for scale in (0.5, 0.6, 0.8):
            small = _astronaut(scale)
            points = _unscaled(face.landmarks_in_box(small, face.detect_faces(small)[0]), scale)
            errors.append(np.linalg.norm(points[face.MOUTH] - full[face.MOUTH], axis=1).mean() / iod)
        return float(np.mean(errors))

    assert mouth_error(250) < 0.6 * mouth_error(0)
