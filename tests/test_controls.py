"""The Generator and the controls: frame rate kept, ping-pong loop, padding, a face pinned by a box, quiet."""

import re

import cv2
import numpy as np
import pytest

import lipgen
from lipgen import cli, face, media
from lipgen.errors import FaceNotFoundError
from lipgen.face import padded
from lipgen.generate import SAMPLE_FACE, FaceSource, generate, loop_index

from .conftest import GRID

VIDEO = GRID / "s1/video/bbaf2n.mp4"  # 75 frames at 25 fps, 3 s


@pytest.fixture(scope="module")
def motion():
    return lipgen.load_model()


@pytest.fixture(scope="module")
def video30(tmp_path_factory):
    """The fixture clip re-encoded at 30 fps (90 frames)."""
    path = tmp_path_factory.mktemp("fps") / "v30.mp4"
    media.write_mp4(path, media.read_video(VIDEO, fps=30), media.read_audio(VIDEO), fps=30)
    return path


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory):
    """A frame of the fixture clip beside its mirror image: two faces, the right one at x >= 360."""
    from PIL import Image

    frame = media.read_video(VIDEO)[0]
    path = tmp_path_factory.mktemp("two") / "two.png"
    Image.fromarray(np.concatenate([frame, frame[:, ::-1]], axis=1)).save(path)
    return path, frame.shape[1]


def test_30fps_video_stays_30fps(motion, video30, tmp_path):
    speech = media.read_audio(VIDEO)
    out = motion.generate(speech, video30, tmp_path / "o.mp4", progress=False)
    assert media.video_fps(out) == 30
    frames = media.read_video(out, fps=30)
    assert len(frames) == -(-speech.size * 30 // media.SAMPLE_RATE)  # 90 frames for 3 s
    assert abs(media.read_audio(out).size / media.SAMPLE_RATE - len(frames) / 30) < 0.07
    assert media.video_fps(motion.generate(speech, video30, tmp_path / "p.mp4", fps=25, progress=False)) == 25


def test_the_speech_files_own_sound_is_muxed(motion, video30, tmp_path):
    """A 48 kHz stereo recording comes out at 48 kHz in stereo, not as the 16 kHz mono the model hears."""
    import av

    speech = media.read_audio(VIDEO)
    stereo = np.stack([speech, 0.3 * speech]).repeat(3, axis=1)  # 48 kHz (held samples), the right quieter
    wav = media.write_wav(tmp_path / "s48.wav", stereo, 48000)
    out = motion.generate(wav, video30, tmp_path / "o.mp4", progress=False)
    with av.open(str(out)) as c:
        sound = c.streams.audio[0].codec_context
        assert (sound.sample_rate, sound.layout.name) == (48000, "stereo")
        back = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
    assert len(media.read_video(out, fps=30)) == 90 and abs(back.shape[1] - 3 * 48000) <= 1024
    assert 0.25 < np.std(back[1]) / np.std(back[0]) < 0.35  # two channels, as given


def test_30fps_with_a_crop_model(tiny_glance, video30, tmp_path):
    speech = media.read_audio(VIDEO)
    out = generate(speech, video30, tmp_path / "g.mp4", checkpoint=tiny_glance, progress=False, batch_size=2)
    assert media.video_fps(out) == 30 and len(media.read_video(out, fps=30)) == 90


def test_pingpong_order():
    assert [loop_index(t, 4) for t in range(10)] == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert [loop_index(t, 4, "forward") for t in range(6)] == [0, 1, 2, 3, 0, 1]
    assert [loop_index(t, 1) for t in range(3)] == [0, 0, 0]
    with pytest.raises(ValueError, match="loop must be"):
        loop_index(0, 4, "bounce")


def test_pingpong_plays_the_video_backwards_after_its_end(motion, tmp_path):
    source = media.read_video(VIDEO)  # 75 frames
    speech = np.concatenate([media.read_audio(VIDEO)] * 2)  # 150 frames: 75 forward, then back from frame 73
    out = media.read_video(motion.generate(speech, VIDEO, tmp_path / "pp.mp4", progress=False))
    fwd = media.read_video(motion.generate(speech, VIDEO, tmp_path / "fw.mp4", loop="forward", progress=False))

    def nearest(frame):  # the source frame that the top of an output frame (far from the mouth) shows
        return int(np.argmin([np.abs(frame[:100].astype(int) - s[:100]).mean() for s in source]))

    # the clip's head moves, so the top rows say which source frame is shown
    assert [nearest(out[t]) for t in (76, 100, 140)] == [loop_index(t, 75) for t in (76, 100, 140)] == [72, 48, 8]
    assert [nearest(fwd[t]) for t in (76, 100)] == [1, 25]


def test_padding_widens_the_changed_region(motion, tmp_path):
    m = np.array([[2.0, 0, 10], [0, 2.0, 20]])
    wide = padded(m, 64, 0.5)  # covers twice the side about the crop's centre
    corner = np.array([0.0, 0, 1])
    assert np.allclose(wide @ corner, 0.5 * (m @ corner) + 16)
    # crop models: the mouth crop (and the identity crop they are given) covers (1 + 2 pad) times the side
    plain, wide = FaceSource(SAMPLE_FACE), FaceSource(SAMPLE_FACE, pad=0.25)
    side = lambda s: 1 / np.sqrt(abs(np.linalg.det(s.crop_matrices("mouth")[0][:, :2])))  # noqa: E731
    assert side(wide) == pytest.approx(1.5 * side(plain))
    small = cv2.resize(wide.identity_mouth, (43, 43), interpolation=cv2.INTER_AREA)[:, :, 0].astype(int)
    centre = cv2.resize(plain.identity_mouth, (29, 29), interpolation=cv2.INTER_AREA)[:, :, 0].astype(int)
    assert np.abs(small[7:36, 7:36] - centre).mean() < np.abs(small[:29, :29] - centre).mean()  # same centre
    # motion: the warp fades out further beyond the jaw line
    speech = media.read_audio(VIDEO)[: 2 * media.SAMPLE_RATE]
    photo = media.read_image(SAMPLE_FACE).astype(int)

    def changed_area(pad):
        frames = media.read_video(motion.generate(speech, SAMPLE_FACE, tmp_path / "x.mp4", pad=pad, progress=False))
        return (np.abs(frames.astype(int) - photo).max(-1).max(0) > 30).sum()

    assert changed_area(0.3) > 1.2 * changed_area(0.0)


def test_face_pinned_by_a_box(motion, two_faces, tmp_path):
    path, width = two_faces
    speech = media.read_audio(VIDEO)
    still = media.read_image(path).astype(int)
    right = motion.generate(speech, path, tmp_path / "r.mp4", face_box=(width + 40, 40, 2 * width - 40, 250),
                            progress=False)
    frames = media.read_video(right).astype(int)
    moved = np.abs(frames - still).max(-1).max(0)  # (H, W)
    assert (moved[:, width:] > 30).sum() > 50 and (moved[:, :width] > 30).sum() == 0  # only the right face's mouth
    with pytest.raises(FaceNotFoundError, match="overlaps the box"):
        motion.generate(speech, path, tmp_path / "n.mp4", face_box=(0, 0, 20, 20), progress=False)
    assert not (tmp_path / "n.mp4").exists()


def test_a_face_box_is_in_the_pixels_of_the_file_even_when_it_is_read_scaled_down(two_faces, tmp_path):
    from PIL import Image

    path, width = two_faces
    big = tmp_path / "big.png"  # 4320 px wide: read at 2048
    Image.open(path).resize((2 * width * 6, 288 * 6)).save(big)
    image = media.read_image(big)
    assert media.longer_side(big) == 12 * width and max(image.shape) == media.MAX_IMAGE_SIDE
    right = face.face_index_at(media.read_image(path), (width + 40, 40, 2 * width - 40, 250))
    box = (6 * (width + 40), 6 * 40, 6 * (2 * width - 40), 6 * 250)
    assert face.face_index_at(image, box, scale=media.MAX_IMAGE_SIDE / (12 * width)) == right
    with pytest.raises(FaceNotFoundError, match="faces found") as refused:
        face.face_index_at(image, (0, 0, 20, 20), scale=media.MAX_IMAGE_SIDE / (12 * width))
    found = [int(v) for v in re.findall(r"\d+", str(refused.value).split("faces found")[1])]
    assert max(found) > media.MAX_IMAGE_SIDE  # told in the file's pixels, not the scaled image's


def test_a_black_and_white_photo_stays_black_and_white(motion, tmp_path):
    from PIL import Image

    grey = tmp_path / "grey.png"
    Image.open(SAMPLE_FACE).convert("L").save(grey)
    speech = media.read_audio(VIDEO)[: 2 * media.SAMPLE_RATE]
    frames = media.read_video(motion.generate(speech, grey, tmp_path / "g.mp4", progress=False)).astype(int)
    still = media.read_image(grey).astype(int)
    assert (np.abs(frames - still).max(-1) > 30).any(-1).any(-1).sum() > 10  # the mouth moves ...
    assert (frames.max(-1) - frames.min(-1)).max() <= 2  # ... with no colour (it was painted red inside)
    colour = media.read_video(motion.generate(speech, SAMPLE_FACE, tmp_path / "c.mp4", progress=False)).astype(int)
    assert (colour.max(-1) - colour.min(-1)).mean() > 10  # a colour photo keeps its colours


def test_generator_tracks_each_face_once(motion):
    assert motion.face(VIDEO) is motion.face(VIDEO)
    assert motion.face(VIDEO, loop="forward") is not motion.face(VIDEO)


def test_cli_controls_quiet_and_errors(tmp_path, capsys):
    out = tmp_path / "q.mp4"
    assert cli.main(["generate", "--audio", str(VIDEO), "--face", str(VIDEO), "-o", str(out), "--quiet",
                     "--loop", "forward", "--pad", "0.1", "--fps", "30", "--batch-size", "4"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out.strip() == str(out)
    assert media.video_fps(out) == 30
    assert cli.main(["generate", "--audio", str(VIDEO), "--face", str(SAMPLE_FACE), "-o", str(tmp_path / "e.mp4"),
                     "--pad", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "padding" in err[0]
    with pytest.raises(SystemExit):
        cli.main(["generate", "--face-box", "1,2,3"])
    assert "x0,y0,x1,y1" in capsys.readouterr().err


def _cut_and_leave(tmp_path):
    """GRID s1 for 40 frames, a cut to s4 placed elsewhere, who from frame 50 slides out of the picture (18 frames,
    no cut) and leaves the studio's backdrop behind (12): 80 frames."""
    s1 = media.read_video(VIDEO)[:40]
    s4 = np.stack([cv2.resize(f, (360, 288), interpolation=cv2.INTER_AREA)
                   for f in media.read_video(GRID / "s4/video/bbilzs.mp4")[:40]])
    s4 = np.roll(s4, 80, axis=2)
    backdrop = cv2.resize(s4[0, :40, 100:140], (360, 288))  # a patch of the wall, stretched
    for t in range(10, 40):  # 20 px further right every frame, the backdrop where it was
        shift = min(360, 20 * (t - 9))
        s4[t, :, shift:] = s4[t, :, :360 - shift].copy()
        s4[t, :, :shift] = backdrop[:, :shift]
    path = media.write_mp4(tmp_path / "cut.mp4", np.concatenate([s1, s4]))
    return path, media.read_video(path)


def test_a_cut_and_a_face_that_leaves(motion, tmp_path):
    """Each scene's face is smoothed on its own (no smear across the cut); frames the face has left pass through."""
    video, source = _cut_and_leave(tmp_path)
    speech = np.concatenate([media.read_audio(VIDEO)] * 2)[:80 * media.SAMPLES_PER_FRAME]
    out = media.read_video(motion.generate(speech, video, tmp_path / "o.mp4", progress=False))
    change = np.abs(out.astype(int) - source).mean(axis=(1, 2, 3))  # per frame, the whole picture
    assert change[36:44].max() < 2.6, change[36:44]  # smeared faces across the cut changed up to 4 levels
    cuts = []
    points, _ = face.track_landmarks(source, allow_missing=True, cuts=cuts)
    assert cuts[0] == 40 and not np.isnan(points[:55, 0, 0]).any()
    assert np.isnan(points[70:, 0, 0]).all()  # gone: no landmarks squeezed against the picture's edge, no mouth drawn
