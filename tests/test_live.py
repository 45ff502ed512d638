"""The demo page's jobs without a browser (lipgen.demo.LiveRun and Job need no Gradio): lipgen stream's run of a
speech file at real-time pace, its frames handed out as they are made, the finished mp4, and an early stop; a
Generate job watched, and stopped when the page cancels it."""

import time

import numpy as np
import pytest
from PIL import Image

from lipgen import media
from lipgen.demo import WORKING, Job, LiveRun, check_live, live_summary
from lipgen.errors import FaceNotFoundError, LipgenError
from lipgen.generate import SAMPLE_AUDIO, SAMPLE_FACE
from lipgen.generate import Generator

from .conftest import GRID


@pytest.fixture(scope="module")
def generator():
    return Generator("motion")


def test_live_frames_come_while_the_speech_plays(generator, tmp_path):
    speech = GRID / "s1/video/bbaf2n.mp4"  # 3 s, played at real-time pace
    seconds = media.read_audio(speech).size / media.SAMPLE_RATE
    n = -(-int(seconds * media.SAMPLE_RATE) // media.SAMPLES_PER_FRAME)
    run = LiveRun(generator, speech, SAMPLE_FACE, tmp_path / "live.mp4", fps=10, side=256)
    start, got = time.perf_counter(), []
    for t, frame in run.frames():
        got.append((time.perf_counter() - start, t))
        assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8  # scaled down from 512
    times, shown = np.array([g[0] for g in got]), [g[1] for g in got]
    r = run.result
    assert r["frames"] == n == len(media.read_video(r["out"]))
    assert shown == sorted(set(shown)) and shown[-1] == n - 1 and list(r["shown"]) == shown  # in order, the last
    assert 10 <= len(shown) <= 10 * (times[-1] - times[0]) + 1  # many views, at most 10 a second
    assert times[-1] - times[0] > seconds / 2  # spread over the speech, not a burst at its end
    # nothing is shown before its look-ahead's audio has arrived: the speech really plays at real-time pace
    ahead = r["lookahead_frames"] / media.VIDEO_FPS
    assert np.median(r["shown_latency_s"]) >= ahead and r["first_shown_s"] >= ahead
    assert "frames (3.0 s)" in live_summary(r)


def test_closing_the_live_view_stops_the_stream(generator, tmp_path):
    run = LiveRun(generator, SAMPLE_AUDIO, SAMPLE_FACE, tmp_path / "live.mp4")  # 11 s
    frames = run.frames()
    for k, _ in enumerate(frames):
        if k == 5:
            break
    closed = time.perf_counter()
    frames.close()  # the page went away
    assert time.perf_counter() - closed < 3  # the speech stopped; it did not play to its end
    made = len(media.read_video(tmp_path / "live.mp4"))
    assert 5 <= made < 11 * media.VIDEO_FPS / 2  # the mp4 is finished, with what was made
    assert run.result is None


def test_live_errors(generator, tmp_path):
    with pytest.raises(LipgenError, match="Live needs the motion model, not glance"):
        check_live("glance")
    check_live("motion")
    wall = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 200, 3), 90, np.uint8)).save(wall)
    run = LiveRun(generator, SAMPLE_AUDIO, wall, tmp_path / "x.mp4")
    start = time.perf_counter()
    with pytest.raises(FaceNotFoundError, match="no face"):
        next(run.frames())
    assert time.perf_counter() - start < 5  # refused while preparing the face, not after the speech played


def test_a_cancelled_job_stops_and_writes_nothing(generator, tmp_path):
    """Gradio frees a cancelled job's place in the queue at once; the work must stop too, or the next job runs
    beside it (a 50 s job went on writing its mp4 for nobody while the next one ran)."""
    out = tmp_path / "job.mp4"
    steps = Job(generator, SAMPLE_AUDIO, SAMPLE_FACE, out, every=0.1).steps()  # 11 s of speech
    for done, total in steps:
        if done >= 5:
            break
    assert total == 275
    steps.close()  # the page cancelled it
    start = time.perf_counter()
    with WORKING:  # the next job gets the machine once the work has stopped, at its next frame
        waited = time.perf_counter() - start
    assert waited < 3
    assert not out.exists() and not list(tmp_path.iterdir())  # no mp4, no temporary file left
    finished = tmp_path / "done.mp4"
    progress = list(Job(generator, GRID / "s1/video/bbaf2n.mp4", SAMPLE_FACE, finished, every=0.05).steps())
    assert finished.exists() and len(media.read_video(finished)) == 75
    assert progress[-1] == (75, 75) and all(a <= b for (a, _), (b, _) in zip(progress, progress[1:]))
