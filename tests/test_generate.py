"""lipgen generate: frame count and duration follow the audio; bad inputs give their errors."""

import numpy as np
import pytest

from lipgen import media
from lipgen.errors import FaceNotFoundError, MediaError, MultipleFacesError
from lipgen.generate import SAMPLE_FACE, generate

from .conftest import GRID



def test_generate_from_photo_matches_audio_length(tiny_glance, tmp_path):
    speech = GRID / "s1/video/bbaf3s.mp4"
    out = generate(speech, SAMPLE_FACE, tmp_path / "out.mp4", checkpoint=tiny_glance, progress=False)
    audio = media.read_audio(speech)
    frames = media.read_video(out)
    expected = -(-audio.size // media.SAMPLES_PER_FRAME)
    assert len(frames) == expected
    assert frames.shape[1:3] == (512, 512)
    assert abs(media.read_audio(out).size - expected * media.SAMPLES_PER_FRAME) < media.SAMPLES_PER_FRAME


def test_generate_onto_video_keeps_its_frames_and_loops_back_and_forth(tiny_glance, tmp_path):
    speech = np.concatenate([media.read_audio(GRID / "s1/video/bbaf3s.mp4")] * 2)  # ~6 s onto a 3 s video
    out = generate(speech, GRID / "s1/video/bbaf2n.mp4", tmp_path / "v.mp4", checkpoint=tiny_glance, progress=False)
    frames = media.read_video(out)
    assert len(frames) == -(-speech.size // media.SAMPLES_PER_FRAME)
    source = media.read_video(GRID / "s1/video/bbaf2n.mp4")
    # away from the mouth, output frames are the source's own frames (played back and forth: 80 shows 68)
    assert np.abs(frames[80, :60].astype(int) - source[68, :60]).mean() < 4


def test_generate_errors(tiny_glance, tmp_path):
    speech = GRID / "s1/video/bbaf3s.mp4"
    blank = tmp_path / "wall.png"
    from PIL import Image

    Image.fromarray(np.full((200, 200, 3), 90, np.uint8)).save(blank)
    with pytest.raises(FaceNotFoundError, match="no face"):
        generate(speech, blank, tmp_path / "x.mp4", checkpoint=tiny_glance, progress=False)
    two = tmp_path / "two.png"
    frame = media.read_video(speech)[0]
    Image.fromarray(np.concatenate([frame, frame[:, ::-1]], axis=1)).save(two)
    with pytest.raises(MultipleFacesError, match="--face-index"):
        generate(speech, two, tmp_path / "x.mp4", checkpoint=tiny_glance, progress=False)
    assert generate(speech, two, tmp_path / "y.mp4", checkpoint=tiny_glance, face_index=1, progress=False).is_file()
    fake = tmp_path / "speech.wav"
    fake.write_text("not audio")
    with pytest.raises(MediaError, match="not a readable"):
        generate(fake, SAMPLE_FACE, tmp_path / "x.mp4", checkpoint=tiny_glance, progress=False)
    with pytest.raises(MediaError, match="44100 Hz"):
        generate(np.zeros(44100, np.float32), SAMPLE_FACE, tmp_path / "x.mp4", checkpoint=tiny_glance,
                 sample_rate=44100, progress=False)
    with pytest.raises(MediaError, match="longer than"):
        generate(speech, SAMPLE_FACE, tmp_path / "x.mp4", checkpoint=tiny_glance, max_seconds=1, progress=False)
    assert not (tmp_path / "x.mp4").exists()  # nothing half-written



def test_davs_generates_from_audio_and_from_video(tiny_davs, tiny_glance, tmp_path):
    speech = GRID / "s1/video/bbaf3s.mp4"
    from_audio = generate(speech, SAMPLE_FACE, tmp_path / "a.mp4", model="davs", checkpoint=tiny_davs, progress=False)
    from_video = generate(None, SAMPLE_FACE, tmp_path / "v.mp4", model="davs", checkpoint=tiny_davs,
                          drive_video=speech, progress=False)
    assert len(media.read_video(from_audio)) == len(media.read_video(from_video)) == 75
    assert media.read_audio(from_video).size > 2.9 * media.SAMPLE_RATE  # the driving video's sound
    with pytest.raises(ValueError, match="--model davs"):
        generate(None, SAMPLE_FACE, tmp_path / "g.mp4", checkpoint=tiny_glance, drive_video=speech, progress=False)
    frames = media.read_video(speech)
    late = media.write_mp4(tmp_path / "late.mp4", np.concatenate([np.full_like(frames[:10], 128), frames[:40]]))
    with pytest.raises(MediaError, match=r"2.0 s of lips for 3.0 s of speech; .* or cut the speech"):
        generate(speech, SAMPLE_FACE, tmp_path / "s.mp4", model="davs", checkpoint=tiny_davs, drive_video=late,
                 progress=False)  # the speech would be cut short without a word
    from lipgen.inference import video_mouths

    mouths = video_mouths(late)  # the face comes in at frame 10: the frames before hold its first mouth
    assert len(mouths) == 50 and all(np.array_equal(mouths[t], mouths[10]) for t in range(10))
    assert not np.array_equal(mouths[10], mouths[30])


def test_crgan_streams_any_length(tiny_crgan, tmp_path):
    speech = np.concatenate([media.read_audio(GRID / "s1/video/bbaf3s.mp4")] * 2)
    out = generate(speech, SAMPLE_FACE, tmp_path / "c.mp4", model="crgan", checkpoint=tiny_crgan, progress=False)
    assert len(media.read_video(out)) == -(-speech.size // media.SAMPLES_PER_FRAME)


def test_prefetched_keeps_order_raises_the_makers_error_and_closes_it_when_stopped():
    from lipgen.generate import prefetched

    assert list(prefetched(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        raise MediaError("damaged frame")

    with pytest.raises(MediaError, match="damaged frame"):
        list(prefetched(failing()))

    closed = []

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.append(True)  # what closes a video decoder: the generator's own cleanup

    items = prefetched(endless(), depth=2)
    assert [next(items) for _ in range(5)] == [0, 1, 2, 3, 4]
    items.close()  # the caller stops early (an encoder error, Ctrl-C)
    assert closed == [True]


def test_arrays_and_controls_from_python(tiny_glance, tmp_path):
    """Speech arrays as numpy users hold them, and controls of the wrong kind, each a clear error or the right video."""
    from lipgen.generate import Generator

    speech = media.read_audio(GRID / "s1/video/bbaf3s.mp4")
    n = -(-speech.size // media.SAMPLES_PER_FRAME)
    model = Generator(checkpoint=tiny_glance)
    for i, array in enumerate([np.stack([speech, speech], 1), np.stack([speech, speech]),
                               (speech * 32767).astype(np.int16)]):  # channels mixed down; int16 scaled
        out = model.generate(array, SAMPLE_FACE, tmp_path / f"{i}.mp4", progress=False)
        assert len(media.read_video(out)) == n
        assert 0.05 < np.abs(media.read_audio(out)).max() <= 1.5
    for array, error in [(np.zeros(0, np.float32), "empty"), (np.zeros(16000, np.float32), "silent"),
                         (np.zeros((9, 9)), "channels"), (np.zeros((2, 2, 99)), "3-D")]:
        with pytest.raises(MediaError, match=error):
            model.generate(array, SAMPLE_FACE, tmp_path / "x.mp4", progress=False)
    with pytest.raises(TypeError, match="file path or a numpy array"):
        model.generate(list(speech), SAMPLE_FACE, tmp_path / "x.mp4", progress=False)
    with pytest.raises(TypeError, match="the face is a file path"):
        model.generate(speech, media.read_image(SAMPLE_FACE), tmp_path / "x.mp4", progress=False)
    for control, value in [("expressiveness", float("nan")), ("expressiveness", "2"), ("expressiveness", float("inf")),
                           ("expressiveness", 11), ("pad", float("nan")),
                           ("fps", "30"), ("fps", 0), ("max_seconds", -5), ("encoder_threads", 0),
                           ("encoder_threads", 1.5)]:
        with pytest.raises(ValueError, match=control.split("_")[0]):
            model.generate(speech, SAMPLE_FACE, tmp_path / "x.mp4", progress=False, **{control: value})
    with pytest.raises(ValueError, match="batch_size must be a whole number"):
        Generator(checkpoint=tiny_glance, batch_size=2.5)
    assert not (tmp_path / "x.mp4").exists()


def test_the_judges_videos_are_the_same_bytes_on_any_machine(tmp_path, monkeypatch):
    """x264's output depends on its thread count, which generation sets from the machine's cores; the judges fix it."""
    from lipgen import generate as generation
    from lipgen.evaluation import wild

    speech = media.read_audio(GRID / "s1/video/bbaf3s.mp4")
    one, two = (generate(speech, SAMPLE_FACE, tmp_path / f"{n}.mp4", progress=False, encoder_threads=n).read_bytes()
                for n in (1, 2))
    assert one != two
    monkeypatch.setattr(generation, "_cores", lambda: 16)  # a bigger machine than any report was made on
    spec = ("motion", wild.shipped_checkpoint("motion"), None)
    wild.generated(spec, speech, SAMPLE_FACE, None)(tmp_path / "judged.mp4")
    assert (tmp_path / "judged.mp4").read_bytes() == one
