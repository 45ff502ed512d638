"""The any-face path: speaker-normalised audio features, the motion model, the warp renderer, and the
shipped motion model on a face it never saw (the bundled astronaut photo) with GRID speech."""

import cv2
import numpy as np
import pytest
import torch
from scipy import signal
from scipy.ndimage import binary_erosion

from .conftest import GRID, trainer
from lipgen import face, media, render, speech as whisper, voice
from lipgen.checkpoint import load_system
from lipgen.data.corpora import SILENCE
from lipgen.generate import SAMPLE_FACE, generate
from lipgen.models import shipped_checkpoint
from lipgen.models.motion import (MOTION_POINTS, PRESETS, SILENCE_MARGIN, Motion, MotionConfig, closed, motion_index,
                                  opening, rest_shape)


@pytest.fixture(scope="module")
def speech():
    return media.read_audio(GRID / "s1" / "video" / "bbaf2n.mp4")


def _silent_frames(n_frames):
    silent = np.zeros(n_frames, bool)
    for line in (GRID / "s1" / "align" / "bbaf2n.align").read_text().split("\n"):
        if line.strip():
            start, end, word = line.split()
            if word in SILENCE:
                silent[int(start) // 1000:int(end) // 1000] = True
    return silent


def test_features_cancel_the_microphone_and_the_level(speech):
    n = speech.size // media.SAMPLES_PER_FRAME
    tilt = signal.sosfilt(signal.butter(1, 1500, btype="high", fs=media.SAMPLE_RATE, output="sos"), speech)
    other_mic = (0.1 * (0.5 * speech + tilt)).astype(np.float32)  # quieter, brighter
    raw = [media.log_mel(x, n)[:, 10:70] for x in (speech, other_mic)]
    norm = [voice.features(x, n)[:, 10:70] for x in (speech, other_mic)]
    assert norm[0].shape == (n * media.MELS_PER_FRAME, 60)
    assert np.abs(norm[0].mean(0)).max() < 1e-4  # CMVN: every bin zero-mean over the utterance
    raw_gap, norm_gap = np.abs(raw[0] - raw[1]).mean(), np.abs(norm[0] - norm[1]).mean()
    assert norm_gap < 0.5 * raw_gap / raw[0].std() * norm[0].std()  # relative change at least halved
    loud = voice.features(speech, n)[:, -1]
    assert loud.max() == 0 and loud.min() >= -1


def test_augment_keeps_length_and_changes_the_sound(speech):
    rng = np.random.default_rng(0)
    outs = [voice.augment(speech, rng, babble=speech[::-1].copy()) for _ in range(6)]
    assert all(o.shape == speech.shape and o.dtype == np.float32 and np.isfinite(o).all() for o in outs)
    assert all(np.abs(o - speech).mean() > 1e-4 for o in outs)
    assert abs(voice.stretch(speech, 1.25).size - speech.size / 1.25) < 200


def test_features_by_pieces_equal_the_whole(speech, monkeypatch):
    long = np.tile(speech, 5)[:-777]  # ~15 s, not a whole number of frames
    n = long.size // media.SAMPLES_PER_FRAME + 1  # one frame more than the audio covers: zero-padded
    whole = voice.features(long, n)
    monkeypatch.setattr(voice, "STATS_ROWS", 1000)  # the statistics gathered over several blocks
    lazy = voice.Features(long, n)
    assert len(lazy) == len(whole) == n * media.MELS_PER_FRAME
    assert np.abs(lazy[:] - whole).max() < 1e-4
    assert np.abs(lazy[1001:2777] - whole[1001:2777]).max() < 1e-4
    assert lazy[len(lazy) - 3:len(lazy) + 9].shape == (3, voice.N_FEATURES)


def test_long_speech_is_predicted_in_pieces_like_one_pass(speech, monkeypatch):
    from lipgen.models import motion

    system = load_system(shipped_checkpoint("motion"), strict=False)[0]
    long = np.tile(speech, 8)  # ~24 s
    feats = system.features(long)
    feats = feats[0:len(feats)]
    whole = system.predict(feats)
    monkeypatch.setattr(motion, "PREDICT_FRAMES", 100)  # 6 pieces with their margins, instead of one pass
    pieces = system.predict(feats)
    assert pieces.shape == whole.shape == (len(feats) // system.rows_per_frame, len(MOTION_POINTS), 2)
    gap = [system.gap(torch.from_numpy(m[None]))[0].numpy() for m in (whole, pieces)]
    assert np.corrcoef(*gap)[0, 1] > 0.98
    assert np.abs(gap[0] - gap[1]).mean() < 0.1 * gap[0].std()


def test_the_motion_is_the_same_on_any_thread_count(speech):
    system = load_system(shipped_checkpoint("motion"), strict=False)[0]
    feats = system.features(np.tile(speech, 3))  # 9 s: a 3 s sentence's sums are too short to be split
    feats = feats[0:len(feats)]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # two threads sum a convolution in another order (the last bit moved, and with it
        two = system.predict(feats)  # a pixel where the renderer rounds a point)
        assert torch.get_num_threads() == 2  # and the caller's setting is kept
        torch.set_num_threads(1)
        one = system.predict(feats)
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(one, two)


def test_encoded_versions_serve_a_longer_window_than_they_were_made_for(grid_cache):
    from lipgen.data.motion import MotionDataset

    short = MotionDataset(grid_cache, split=None, window=16, speech="whisper", versions=3, seed=7)
    window = min(len(c["motion"]) for c in short.clips)  # every clip fits, its sped-up versions may not
    assert any(len(m) < window for c in short.clips for _, m, _ in c["versions"])
    data = MotionDataset(grid_cache, split=None, window=window, speech="whisper", versions=3, seed=7)
    for i in range(len(data.clips) * 2):
        item = data[i]
        assert item["motion"].shape == (window, 31, 2) and item["features"].shape[0] == 2 * window


@pytest.mark.parametrize("front_end", ["whisper", "mel"])
def test_motion_model_fits_real_clips(grid_cache, front_end):
    from lipgen.data.motion import MotionDataset

    data = MotionDataset(grid_cache, split=None, window=16, augment=False, speech=front_end)
    batch = {k: torch.stack([data[i][k] for i in range(4)]) for k in ("features", "motion", "silent")}
    n_features, rows = {"whisper": (whisper.N_FEATURES, 2), "mel": (voice.N_FEATURES, 4)}[front_end]
    assert batch["features"].shape == (4, 16 * rows, n_features) and batch["motion"].shape == (4, 16, 31, 2)
    torch.manual_seed(0)
    model = Motion(MotionConfig(n_frames=16, channels=32, dilations=(1, 2), speech=front_end))
    update = trainer(model)
    first = model.training_step(batch, 0, update)["loss"]
    for step in range(150):
        last = model.training_step(batch, step, update)["loss"]
    assert last < 0.5 * first


def test_long_pauses_are_trained_towards_the_closed_mouth():
    silent = torch.tensor([[1] * 4 + [0] * 3 + [1] * 9], dtype=torch.bool)  # pause, word, long pause
    motion = torch.ones(1, 16, 31, 2)
    model = Motion(MotionConfig(n_frames=16, channels=8, dilations=(1,), speech="whisper", silence_margin=2))
    quiet = model.quiet(silent)[0].tolist()
    # quiet: silent, more than 2 frames from the word and from the window's edges (speech may lie beyond)
    assert quiet == [False] * 9 + [True] * 5 + [False] * 2
    batch = {"features": torch.zeros(1, 32, whisper.N_FEATURES), "motion": motion, "silent": silent}
    target = model.losses(batch)["target"][0]
    assert (target[torch.tensor(quiet)] == 0).all() and (target[~torch.tensor(quiet)] > 0).all()
    model.config.silence_margin = -1  # off: the speaker's own motion everywhere
    assert not model.quiet(silent).any() and (model.losses(batch)["target"] > 0).all()


def test_tiny_motion_model_trains_and_predicts(grid_cache, tmp_path):
    from lipgen.train import TrainConfig, train

    path = train(TrainConfig(model="motion", preset="tiny", cache=str(grid_cache), out=str(tmp_path), steps=2,
                             batch_size=2, workers=0, val_every=1000, sample_every=1000))
    system, header = load_system(path)
    assert header["model"] == "motion" and system.config.speech == "whisper"
    motion = system.predict(system.features(np.zeros(10 * media.SAMPLES_PER_FRAME, np.float32)))
    assert motion.shape == (10, len(MOTION_POINTS), 2) and np.isfinite(motion).all()
    versions = list(grid_cache.glob("*/speech-*-aug6-seed0.npz"))  # the encoded versions, kept for the next run
    assert versions and all(len(np.load(v).files) == 3 * 6 for v in versions)


def test_more_speakers_train_beside_grid_from_their_own_cache(grid_cache, tmp_path):
    """--add-cache: a folder corpus (here one speaker, "ann") trains beside GRID's cache, every clip of it; the
    run records it; models that learn one corpus's words or crops refuse it."""
    import json
    import shutil

    from lipgen.data.preprocess import preprocess
    from lipgen.train import TrainConfig, train

    (tmp_path / "mine/ann").mkdir(parents=True)
    for name in ("bbaf3s", "bbaf4p"):
        shutil.copy(GRID / "s1/video" / f"{name}.mp4", tmp_path / "mine/ann" / f"{name}.mp4")
    mine = tmp_path / "cache_mine"
    assert preprocess(tmp_path / "mine", mine, corpus="folder", workers=1, progress=False)["clips_ok"] == 2

    def run(out, model="motion", added=(str(mine),), steps=2, resume=False):
        return train(TrainConfig(model=model, preset="tiny", cache=str(grid_cache), out=str(tmp_path / out),
                                 steps=steps, batch_size=2, workers=0, val_every=1000, sample_every=1000, add_caches=list(added),
                                 resume=resume))

    assert not list(mine.glob("*/speech-*.npz"))
    load_system(run("both"))
    assert len(list(mine.glob("ann__*/speech-*-aug6-seed0.npz"))) == 2  # both of its clips were made training data
    assert json.loads((tmp_path / "both/config.json").read_text())["train"]["add_caches"] == [str(mine)]
    run("both", added=[str(mine) + "/."], steps=3, resume=True)  # the same cache, spelt otherwise: it goes on
    with pytest.raises(ValueError, match="add_caches"):  # without it: not the same run
        run("both", added=[], steps=4, resume=True)
    with pytest.raises(ValueError, match="--add-cache: glance learns from windows of one corpus"):
        run("glance", model="glance")


def test_an_ensemble_trains_each_member_and_predicts_their_mean(grid_cache, tmp_path):
    from lipgen.checkpoint import export, read_header
    from lipgen.data.motion import MotionDataset
    from lipgen.train import TrainConfig, train

    def run(out, seed=0, **overrides):
        return train(TrainConfig(model="motion", preset="tiny", cache=str(grid_cache), out=str(tmp_path / out),
                                 steps=2, batch_size=2, workers=0, val_every=1000, sample_every=1000, seed=seed,
                                 overrides=overrides))

    one, other = load_system(run("a"))[0], load_system(run("b", seed=1))[0]
    pair = load_system(run("pair", members=2))[0]  # trained in one run, each member on its own loss
    assert len(pair.net.members) == 2
    a, b = (dict(m.named_parameters()) for m in pair.net.members)
    assert any(not torch.allclose(a[k], b[k]) for k in a)
    feats = torch.from_numpy(pair.features(np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32))[0:50])
    with torch.no_grad():
        halves = [m(feats[None]) for m in pair.net.members]
        assert torch.allclose(pair.net(feats[None]), (halves[0] + halves[1]) / 2)
        # each member's loss, not the loss of their mean
        data = MotionDataset(grid_cache, split=None, window=16, augment=False, speech="whisper")
        batch = {k: torch.stack([data[i][k] for i in range(2)]) for k in ("features", "motion", "silent")}
        out = pair.losses(batch)
        each = [torch.nn.functional.smooth_l1_loss(m(batch["features"]), out["target"]) for m in pair.net.members]
        assert torch.isclose(out["points"], (each[0] + each[1]) / 2)
        assert not torch.isclose(out["points"], torch.nn.functional.smooth_l1_loss(out["pred"], out["target"]))
    # joined from separate runs: member i is run i
    joined = export([tmp_path / "a" / "model.safetensors", tmp_path / "b" / "model.safetensors"],
                    tmp_path / "joined.safetensors", half=False, members=2)
    assert read_header(joined)["config"]["members"] == 2
    ensemble = load_system(joined, strict=False)[0]
    with torch.no_grad():
        assert torch.allclose(ensemble.net(feats[None]), (one.net(feats[None]) + other.net(feats[None])) / 2, atol=1e-6)
    # a run that trained an ensemble brings all its members
    three = load_system(export([tmp_path / "pair" / "model.safetensors", tmp_path / "a" / "model.safetensors"],
                               tmp_path / "three.safetensors", half=False, members=2), strict=False)[0]
    assert len(three.net.members) == 3
    with torch.no_grad():
        assert torch.allclose(three.net(feats[None]), (2 * pair.net(feats[None]) + one.net(feats[None])) / 3, atol=1e-6)
    with pytest.raises(ValueError, match="equal groups"):
        export([tmp_path / "a" / "model.safetensors"] * 3, tmp_path / "bad.safetensors", members=2)


@pytest.fixture(scope="module")
def photo():
    image = media.read_image(SAMPLE_FACE)
    landmarks, _ = face.track_landmarks(image[None])
    face_matrix, _ = face.crop_matrices(landmarks)
    return image, landmarks[0].astype(np.float64), face_matrix[0]


def _rest_and_motion(photo, amount, close=True):
    """The photo's rest shape (lips brought together unless close=False) and a motion opening it by `amount`."""
    _, points, matrix = photo
    rest = rest_shape(face.transform_points(points[None], matrix[None]))
    rest = closed(rest) if close else rest
    motion = np.zeros((31, 2))
    motion[motion_index([57, 58, 59, 65, 66, 67, 56, 55]), 1] = amount  # lower lip down
    motion[motion_index(range(5, 12)), 1] = 0.6 * amount  # chin with it
    return rest, motion


def _open(photo, amount, close=True):
    _, points, matrix = photo
    return render.target_points(points, matrix, *_rest_and_motion(photo, amount, close))


def test_render_opens_the_mouth_and_leaves_the_rest(photo):
    image, points, _ = photo
    still = render.render(image, points, _open(photo, 0.0, close=False))
    assert np.abs(still.astype(int) - image).max() <= 2  # no motion: the photo itself
    assert opening(_open(photo, 0.0)) < 0.2 * opening(points)  # her smile, lips brought together
    dst = _open(photo, 14.0)
    moved = render.render(image, points, dst)
    assert opening(dst) > opening(points) + 5
    changed = np.abs(moved.astype(int) - image).max(-1) > 8
    ys, xs = np.nonzero(changed)
    width = np.linalg.norm(points[16] - points[0])
    assert changed.sum() > 200
    assert ys.min() > points[29, 1] - 0.05 * width  # nothing above the nose tip moves
    assert np.all(np.abs(xs - points[48:68, 0].mean()) < 0.6 * width)  # nor beyond the cheeks
    inner = np.zeros(image.shape[:2], np.uint8)

    cv2.fillPoly(inner, [np.round(dst[60:68]).astype(np.int32)], 1)
    assert moved[inner > 0].mean() < image[inner > 0].mean() - 15  # the opened lips show a dark mouth


def test_a_mouth_opened_as_grids_speakers_open_closes_back(photo):
    """Closing a mouth open wide brings its upper lip down as well as its lower lip up, and its corners back up, as
    GRID's speakers' lips part (UPPER_SHARE, CORNER_SHARE of the gap): the lips meet level with their corners, not
    on the open upper lip's arch (a frown on a photo taken mid-word). A smile's upturned corners stay as they are."""
    _, points, matrix = photo
    smile = closed(rest_shape(face.transform_points(points[None], matrix[None])))
    inner = motion_index(range(60, 68))
    level = smile.copy()
    level[inner, 1] = smile[inner, 1].mean()  # closed lips meeting on a level line
    lips = motion_index(range(48, 68))
    middle, half = level[inner, 0].mean(), np.ptp(level[motion_index([60, 64]), 0]) / 2
    sides = np.clip(np.abs(level[lips, 0] - middle) / half, 0, 1) ** 2
    gap = 10.0
    wide = level.copy()
    wide[motion_index([61, 62, 63]), 1] -= 0.2 * gap  # the upper lip rises a fifth of the opening ...
    wide[motion_index([50, 51, 52]), 1] -= 0.1 * gap
    wide[motion_index([65, 66, 67, 56, 57, 58]), 1] += 0.8 * gap  # ... the lower lip falls the rest
    wide[motion_index([55, 59, 6, 7, 8, 9, 10]), 1] += 0.4 * gap
    wide[motion_index([5, 11]), 1] += 0.2 * gap
    wide[lips, 1] += 0.3 * gap * sides  # ... and the corners fall
    assert opening(face.transform_points(render.target_points(points, matrix, wide, 0 * wide), matrix)) > 9
    assert np.abs(closed(wide) - level).max() < 0.5
    assert np.abs(closed(smile) - smile).max() < 0.5  # closed already, smiling: left as it is
    upturned = closed(smile)[motion_index([60, 64]), 1].mean() - closed(smile)[motion_index([62])[0], 1]
    assert upturned < -0.5  # her corners stay above the middle of her lips


def test_a_photo_draws_every_opening_beyond_its_closed_rest(photo):
    """A photo's own interior is gone at its closed rest: an opening smaller than its smile is drawn, not the
    smile's teeth brought back (what a video frame, whose landmarks follow real lips, keeps)."""
    image, points, matrix = photo
    dst = _open(photo, 4.0)
    assert 1.5 < opening(dst) < 0.8 * opening(points)
    rest, motion = _rest_and_motion(photo, 4.0)
    video_dst = render.target_points(points, matrix, rest, motion, own_jaw=True)  # a video keeps its jaw's sides
    as_video, as_photo = render.render(image, points, video_dst), render.render(image, points, dst, photo=True)
    for still, expected in ((True, as_photo), (False, as_video)):  # what animate draws for a photo, a video
        drawn = list(render.animate([(image, points, matrix)] * 2, rest, [motion] * 2, photo=still))
        assert len(drawn) == 2 and all(np.array_equal(d, expected) for d in drawn)
    inner = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.round(dst[60:68]).astype(np.int32)], 1)
    assert as_photo[inner > 0].mean() < as_video[inner > 0].mean() - 15  # a dark mouth, not her teeth
    x0, y0 = np.floor(dst[60:68].min(0)).astype(int) - 3  # the interior painted, and the photo's own (shut before
    x1, y1 = np.ceil(dst[60:68].max(0)).astype(int) + 4  # the warp) at its soft edge
    elsewhere = np.ones(image.shape[:2], bool)
    elsewhere[y0:y1, x0:x1] = False
    as_video_at_dst = render.render(image, points, dst)
    assert np.abs(as_photo[elsewhere].astype(int) - as_video_at_dst[elsewhere]).max() <= 2  # only the interior differs


def test_a_photos_closed_lips_meet_at_a_seam(photo, monkeypatch):
    """Closed by the warp, a photo's lips would meet without the dark line real lips show, and dlib then read
    them as parted (its inner-lip points spread over the lower lip): a seam is drawn along where they meet, and
    fades as the mouth opens. A video frame keeps its own."""
    image, points, _ = photo
    closed_lips = _open(photo, 0.0)
    assert opening(closed_lips) < 1.0
    as_photo = render.render(image, points, closed_lips, photo=True)
    as_video = render.render(image, points, closed_lips, source_gap=0.0)
    middle = np.round((closed_lips[[61, 62, 63]] + closed_lips[[67, 66, 65]]) / 2).astype(int)  # where they meet
    darker = as_video[middle[:, 1], middle[:, 0]].astype(int).sum(-1) - as_photo[middle[:, 1], middle[:, 0]].sum(-1)
    assert (darker > 60).all()
    lips = render.colours(image, points)[0]  # her smile's teeth, squeezed between the closed lips, do not show
    assert (as_photo[middle[:, 1], middle[:, 0]].mean(-1) < 0.8 * lips.mean()).all()
    changed = np.abs(as_photo.astype(int) - as_video).max(-1) > 10
    # a thin band where the lips meet (the seam, over her teeth squeezed there by the warp), nothing else
    assert changed.sum() < 5 * np.linalg.norm(closed_lips[64] - closed_lips[60])
    ys, xs = np.nonzero(changed)
    assert closed_lips[48, 0] - 3 < xs.min() and xs.max() < closed_lips[54, 0] + 3
    assert closed_lips[51, 1] - 3 < ys.min() and ys.max() < closed_lips[57, 1] + 3
    wide = _open(photo, 14.0)
    opened = render.render(image, points, wide, photo=True)
    monkeypatch.setattr(render, "SEAM", 0.0)
    assert np.array_equal(opened, render.render(image, points, wide, photo=True))  # open: no seam left
    assert not np.array_equal(as_photo, render.render(image, points, closed_lips, photo=True))


def test_lips_read_crossed_rest_closed_with_nothing_painted_between_them(photo):
    """dlib can read a small closed mouth with its inner lower lip above the upper (makeittalk_harry: 3 px). A distance
    reads that as open: the photo then rested with a band of painted teeth between its lips. Crossed lips are
    brought to meet, and what shows between them at rest is the photo's own, warped (a seam may darken it)."""
    image, points, matrix = photo
    crossed = points.copy()
    middle = points[60:68, 1].mean()
    crossed[[61, 62, 63], 1], crossed[[65, 66, 67], 1] = middle + 1.5, middle - 1.5  # the lower lip 3 px above
    assert opening(crossed) > 2.5 and render.parted(crossed) < -2.5 and render.source_opening(crossed) == 0
    profile = crossed.copy()
    profile[64] = profile[60]  # inner corners on one point (a profile): measured upright
    assert render.parted(profile) == pytest.approx(-3.0)
    aligned = face.transform_points(crossed[None], matrix[None])[0]
    rest = closed(rest_shape(aligned[None]))
    inner = [(motion_index([a])[0], motion_index([b])[0]) for a, b in ((61, 67), (62, 66), (63, 65))]
    assert all(abs(rest[b, 1] - rest[a, 1]) < 1e-6 for a, b in inner)  # they meet
    outer = motion_index([*range(48, 60), *range(3, 14)])
    assert np.abs(rest[outer] - aligned[MOTION_POINTS][outer]).max() < 1e-6  # nothing else moves
    drawn = next(render.animate([(image, crossed, matrix)], rest, [np.zeros((31, 2))], photo=True))
    dst = render.target_points(crossed, matrix, rest, np.zeros((31, 2)))
    warped = render.render(image, crossed, dst, source_gap=1e6)  # the warp alone: nothing painted
    assert np.abs(drawn.astype(int) - warped).max() > 10  # the seam
    assert (drawn.astype(int) - warped).max() <= 2  # nothing lighter than the photo's own pixels


def points_of(image):
    return face.track_landmarks(image[None])[0][0]


def test_shipped_motion_model_moves_an_unseen_face_with_speech(tmp_path, speech):
    """The astronaut (never trained on) says a GRID sentence: her mouth opens in speech, stays closed in
    silence, and nothing away from the mouth and jaw changes."""
    out = generate(speech, SAMPLE_FACE, tmp_path / "out.mp4", model="motion", progress=False)
    video = media.read_video(out)
    image = media.read_image(SAMPLE_FACE)
    assert len(video) == -(-speech.size // media.SAMPLES_PER_FRAME)
    landmarks, _ = face.track_landmarks(video)
    iod = np.linalg.norm(landmarks[:, 36:42].mean(1) - landmarks[:, 42:48].mean(1), axis=1)
    gap = opening(landmarks) / iod
    silent = _silent_frames(len(video))
    # deep silence: 9+ frames from speech, where the silence gate (lipgen.vad) has faded the motion to the
    # closed mouth (SILENCE_MARGIN + 3 frames); mouths open ahead of a word and close after it, as GRID's do
    speech, silent = ~silent, binary_erosion(silent, np.ones(2 * (SILENCE_MARGIN + 4) + 1, bool), border_value=True)
    smile = opening(points_of(image)) / iod[0]  # the photo shows her teeth: in silence her lips close
    assert gap[silent].mean() < 0.6 * smile
    points = points_of(image)[None]
    x0, y0 = points[0, 48:68].min(0).astype(int) - 5
    x1, y1 = points[0, 48:68].max(0).astype(int) + 5
    change = np.abs(video[:, y0:y1, x0:x1].astype(int) - video[0, y0:y1, x0:x1]).mean((1, 2, 3))  # vs closed
    assert change[speech].mean() > 10 * change[silent].mean()  # the mouth moves in speech, rests in silence
    assert change[speech].std() > 2  # and keeps moving: not one fixed open mouth
    width = np.linalg.norm(points[0, 16] - points[0, 0])
    top = int(points[0, 29, 1] - 0.05 * width)
    codec = np.abs(video[0, :top].astype(int) - image[:top]).mean()  # H.264 + 4:2:0 chroma on a still
    assert codec < 4
    above = np.abs(video[:, :top].astype(int) - video[0, :top]).mean((1, 2, 3))  # above the nose tip, over time
    assert above.max() < 1.0 and above.max() < 0.1 * change[speech].mean()
    assert shipped_checkpoint("motion").is_file()


def test_a_dubbed_video_says_only_the_new_speech(tmp_path, speech):
    """Dubbing: a GRID video of s1 saying one sentence gets 3 s of silence and then another sentence. Where he spoke
    and the new sound is silent, his mouth stays closed; it opens with the new words."""
    video_in = GRID / "s1" / "video" / "bbaf3s.mp4"
    lead = 3 * media.SAMPLE_RATE
    out = generate(np.r_[np.zeros(lead, np.float32), speech], video_in, tmp_path / "dubbed.mp4", progress=False)
    before, after = (face.track_landmarks(media.read_video(v))[0] for v in (video_in, out))
    gap_before, gap_after = (opening(p) / face.eye_distance(p) for p in (before, after))
    spoke = slice(18, 46)  # bbaf3s.align: "bin blue at f three soon", within the new silence (75 frames)
    assert gap_after[spoke].mean() < 0.4 * gap_before[spoke].mean()  # 0.03 against 0.11 of the eye distance
    new_words = 75 + np.flatnonzero(~_silent_frames(len(gap_after) - 75))
    assert gap_after[new_words].mean() > 2 * gap_after[spoke].mean()


def test_a_tilted_photo_moves_as_the_upright_one_turned(photo):
    """The astronaut turned 30 degrees in the frame: the same motion moves her lips to the upright photo's
    targets turned with her (along her own face's axes, not the image's), and draws the same mouth, turned."""
    image, points, matrix = photo
    turn = cv2.getRotationMatrix2D(tuple(float(v) for v in points[27:36].mean(0)), 30, 1.0)
    tilted = cv2.warpAffine(image, turn, image.shape[1::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    landmarks, _ = face.track_landmarks(tilted[None])
    tilted_photo = (tilted, landmarks[0].astype(np.float64), face.crop_matrices(landmarks)[0][0])
    dst = _open(photo, 14.0)
    tilted_dst = _open(tilted_photo, 14.0)
    turned = face.transform_points(dst[None], turn[None])[0]
    iod = np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0))
    lower = [55, 56, 57, 58, 59, 65, 66, 67]  # the lower lip, which the motion moves down
    moved_by = np.linalg.norm(dst[lower] - points[lower], axis=1).mean()
    assert moved_by > 0.15 * iod
    assert np.linalg.norm(tilted_dst[48:68] - turned[48:68], axis=1).mean() < 0.2 * moved_by
    drawn = render.render(tilted, tilted_photo[1], tilted_dst)
    upright_turned = cv2.warpAffine(render.render(image, points, dst), turn, image.shape[1::-1], flags=cv2.INTER_CUBIC,
                                    borderMode=cv2.BORDER_REFLECT)
    x0, y0 = np.floor(tilted_dst[48:68].min(0)).astype(int) - 3
    x1, y1 = np.ceil(tilted_dst[48:68].max(0)).astype(int) + 3
    box = (slice(y0, y1), slice(x0, x1))
    opened = np.abs(drawn[box].astype(int) - tilted[box]).mean()
    assert opened > 10 and np.abs(drawn[box].astype(int) - upright_turned[box]).mean() < 0.35 * opened


def test_a_video_frame_keeps_its_own_jaw_outline(photo):
    """A turned head's cheeks are where its pose puts them: the sides of the jaw (3, 13) stay where the frame has
    them and move only by the motion, while the chin and lips go where speech says (forcing the cheeks onto the
    rest shape tore them on a head turning in a real clip)."""
    _, points, matrix = photo
    rest, motion = _rest_and_motion(photo, 4.0)
    turned = np.asarray(points, np.float64).copy()
    turned[3:14] += [12.0, 0.0]  # the jaw line seen from the side
    as_photo = render.target_points(turned, matrix, rest, motion)
    as_video = render.target_points(turned, matrix, rest, motion, own_jaw=True)
    sides = motion_index([3, 13])
    expected = face.transform_points(face.transform_points(turned[[3, 13]], matrix) + motion[sides], face.invert(matrix))
    assert np.allclose(as_video[[3, 13]], expected, atol=1e-6)  # the frame's own, moved by the motion
    assert np.allclose(as_video[6:11], as_photo[6:11]) and np.allclose(as_video[48:68], as_photo[48:68])
    assert np.abs(as_photo[[3, 13]] - turned[[3, 13]]).max() > 5  # the photo's rule would have pulled them in


def test_the_painted_interior_follows_curved_lips():
    """Inner lips on an ellipse: the painted mouth fills the ellipse (lips are curves), not the octagon through
    dlib's eight points (which leaves a tenth of it unpainted)."""
    a, b, centre = 40.0, 16.0, np.array([100.0, 60.0])
    angles = np.radians([180, 135, 90, 45, 0, -45, -90, -135])  # 60-67: corner, upper lip, corner, lower lip
    dst = np.zeros((68, 2))
    dst[60:68] = centre + np.c_[a * np.cos(angles), -b * np.sin(angles)]
    dst[48], dst[54] = centre - [1.1 * a, 0], centre + [1.1 * a, 0]
    frame = np.zeros((120, 200, 3), np.uint8)
    frame[..., 1] = 255  # green: unlike both teeth and cavity
    painted = render.fill_mouth(frame, dst, 0.0, np.array([200.0, 80.0, 80.0]), np.array([240.0, 240.0, 230.0]))
    changed = (np.abs(painted.astype(int) - frame).max(-1) > 20).sum()  # soft edge included: the octagon alone
    assert 1.18 * np.pi * a * b < changed < 1.3 * np.pi * a * b  # paints 1.13 of the ellipse's area, this 1.23


def test_the_warp_leaves_the_eyes_alone(photo):
    """Whatever the jaw does, nothing moves from the eyes down to a quarter of the way to the nose base: a bowed
    head's jaw ends reach eye level, and the spline from them shook a pair of glasses' rims."""
    image, points, _ = photo
    points = np.asarray(points, np.float64)
    lid, nose = points[[40, 41, 46, 47], 1].mean(), points[33, 1]
    src = points.copy()
    src[[3, 4, 12, 13], 1] = lid + 0.15 * (nose - lid)  # the jaw's ends at eye level
    dst = src.copy()
    dst[3:14, 1] += 10
    dst[48:68, 1] += 6
    moved = np.abs(render.warp(image, src, dst).astype(int) - image).max(-1)
    band = slice(int(points[36, 0]), int(points[45, 0]) + 1)
    assert moved[: int(lid + 0.25 * (nose - lid)), band].max() <= 2  # 58 grey levels without the guard
    assert moved[int(nose):].max() > 50  # while the mouth and jaw move


def test_a_motion_that_would_fold_the_face_is_scaled_down(photo):
    """A chin dropped far (expressiveness 3 and more) pulled the neck up over it in rings; the warp now moves such a
    frame only as far as it can without folding the face outside the lips, and leaves a moderate motion as asked."""
    image, points, matrix = photo
    rest, motion = _rest_and_motion(photo, 4.0)
    moderate = render.target_points(points, matrix, rest, motion)
    assert render.unfolded(image.shape, points, moderate)[0] is moderate
    rest, motion = _rest_and_motion(photo, 40.0)
    far = render.target_points(points, matrix, rest, motion)
    d, box = render._displacement(image.shape, points, far)
    assert render._folded(d, box, far)
    drawn, d, box, share = render.unfolded(image.shape, points, far)
    assert not render._folded(d, box, drawn)
    assert 0.1 < share < 1  # moved part of the way, along the asked motion
    assert np.allclose(drawn, points + share * (far - points), atol=1e-6)
    assert render.unfolded(image.shape, points, moderate, most=0.5)[3] == 0.5


def test_after_a_fold_the_motion_returns_gradually(photo):
    """The frames after one drawn part of the way (unfolded) go back to the full motion by UNFOLD_RELEASE a frame:
    frame by frame shares of 0.5, 1, 0.6, 1 made the mouth pump."""
    image, points, matrix = photo
    rest, far = _rest_and_motion(photo, 40.0)
    _, moderate = _rest_and_motion(photo, 4.0)
    frames = list(render.animate([(image, points, matrix)] * 12, rest, [far] + [moderate] * 11, photo=True))
    full = render.render(image, points, render.target_points(points, matrix, rest, moderate), photo=True)
    first_share = render.unfolded(image.shape, points, render.target_points(points, matrix, rest, far))[3]
    back = int(np.ceil((1 - first_share) / render.UNFOLD_RELEASE))  # frames until the full motion again
    assert 1 < back < 11
    assert not np.array_equal(frames[1], full) and np.array_equal(frames[back + 1], full)


def test_teeth_fade_out_towards_the_mouth_corners():
    """An open mouth's upper teeth show in its middle and fade into the dark towards its corners (a band drawn corner
    to corner looked like a denture's rim)."""
    a, b, centre = 40.0, 16.0, np.array([100.0, 60.0])
    angles = np.radians([180, 135, 90, 45, 0, -45, -90, -135])
    dst = np.zeros((68, 2))
    dst[60:68] = centre + np.c_[a * np.cos(angles), -b * np.sin(angles)]
    dst[48], dst[54] = centre - [1.1 * a, 0], centre + [1.1 * a, 0]
    frame = np.full((120, 200, 3), 30, np.uint8)  # dark around the mouth: only teeth are bright
    painted = render.fill_mouth(frame, dst, 0.0, np.array([200.0, 80.0, 80.0]), np.array([240.0, 240.0, 230.0]))
    luma = painted.astype(float).mean(-1)
    middle = luma[44:60, 95:106].max()  # the teeth under the upper lip's middle
    corner = luma[48:72, 62:70].max()  # the mouth's left end: its inner corner at x 60, across 0.85 at x 66
    assert middle > 200 and corner < 60, (middle, corner)  # before: 229 and 157


def test_the_inside_of_a_mouth_with_colourless_lips_is_no_redder_than_they_are():
    """A person's lips open onto a red-dark inside; a stone statue's or a tinted photo's grey-green lips onto one as dark
    but no redder than they are (a red mouth painted into a grey-green statue looked pasted on)."""
    a, b, centre = 40.0, 16.0, np.array([100.0, 60.0])
    angles = np.radians([180, 135, 90, 45, 0, -45, -90, -135])
    dst = np.zeros((68, 2))
    dst[60:68] = centre + np.c_[a * np.cos(angles), -b * np.sin(angles)]
    dst[48], dst[54] = centre - [1.1 * a, 0], centre + [1.1 * a, 0]
    frame = np.full((120, 200, 3), 128, np.uint8)
    teeth = np.array([240.0, 240.0, 230.0])

    def cavity(lips):  # the painted inside's mean colour below the teeth band
        return render.fill_mouth(frame, dst, 0.0, lips, teeth)[66:72, 90:111].reshape(-1, 3).astype(float).mean(0)

    def redness(rgb):
        return (rgb[0] - rgb[1:].mean()) / rgb.mean()

    person, statue, cartoon = np.array([200.0, 80.0, 80.0]), np.array([150.0, 160.0, 155.0]), np.array([60, 90, 200.0])
    assert redness(cavity(person)) > 1.0  # deep red, as before
    for lips in (statue, cartoon):
        assert redness(cavity(lips)) <= redness(lips) + 0.02, lips  # CAVITY alone: statue +0.94, cartoon +0.74
    grey = np.full(3, statue @ render.LUMA)
    assert abs(cavity(statue) @ render.LUMA - cavity(grey) @ render.LUMA) < 2  # as dark as behind grey lips as bright


def test_only_teeth_are_taken_for_teeth():
    """A photo's own teeth colour is its open mouth's brightest part when that is near grey and brighter than the
    lips; a pink or red interior (lips, tongue, a lip's highlight) gives the enamel colour instead. A video frame's
    open mouth is its real interior, taken as it is."""
    a, b, centre = 30.0, 10.0, np.array([100.0, 60.0])
    angles = np.radians([180, 135, 90, 45, 0, -45, -90, -135])
    src = np.zeros((68, 2))
    src[60:68] = centre + np.c_[a * np.cos(angles), -b * np.sin(angles)]
    lips = np.array([150.0, 70.0, 70.0])
    for inside, taken in (([235, 230, 220], True), ([200, 110, 110], False), ([150, 70, 70], False)):
        frame = np.full((120, 200, 3), 128, np.uint8)
        frame[48:73, 68:133] = inside  # the whole inner-lip polygon
        teeth = render._teeth_colour(frame, src, lips)
        assert np.allclose(teeth, inside, atol=1) == taken, (inside, teeth)
        assert np.allclose(render._teeth_colour(frame, src), inside, atol=1)  # a video frame's own, whatever it is
