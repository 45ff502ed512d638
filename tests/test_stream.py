"""lipgen stream: causal features, the motion model over a sliding window, frames out while speech arrives."""

import io

import numpy as np
import pytest

from lipgen import cli, media
from lipgen.errors import LipgenError
from lipgen.generate import SAMPLE_AUDIO, SAMPLE_FACE, load_generator, predicted_motion
from lipgen.stream import (StreamingFeatures, StreamingMotion, file_chunks, lookahead_frames, pcm_chunks, stream,
                           streaming_model)

from .conftest import GRID


@pytest.fixture(scope="module")
def speech():
    return media.read_audio(SAMPLE_AUDIO)  # 11 s


def test_features_are_causal(speech):
    """Rows already out never depend on audio that arrived after them: replacing the second half of the speech
    with loud noise leaves every row pushed out before it untouched."""
    cut = speech.size // 2 // 320 * 320
    noisy = speech.copy()
    noisy[cut:] = np.random.default_rng(0).normal(0, 0.5, speech.size - cut)
    runs = []
    for audio in (speech, noisy):
        features = StreamingFeatures()
        runs.append([features.push(audio[i:i + 320]) for i in range(0, audio.size, 320)])
    before = np.concatenate(runs[0][: cut // 320])
    assert len(before) >= (cut // media.SAMPLES_PER_FRAME - 1) * media.MELS_PER_FRAME
    assert np.array_equal(before, np.concatenate(runs[1][: cut // 320]))
    assert not np.array_equal(np.concatenate(runs[0]), np.concatenate(runs[1]))


def test_streamed_motion_follows_the_whole_file_motion(speech):
    from lipgen.models.motion import PRESETS, Motion

    shipped = load_generator()  # hears speech through Whisper: streams with the shipped log-mel model instead
    system = streaming_model(shipped)
    assert shipped.config.speech == "whisper" and system.config.speech == "mel"
    with pytest.raises(LipgenError, match="cannot stream"):  # a Whisper model of one's own is refused, clearly
        streaming_model(Motion(PRESETS["tiny"]))
    assert lookahead_frames(system) == system.config.context_frames + 4  # + smoothing radius 3 + log-mel's frame
    n = -(-speech.size // media.SAMPLES_PER_FRAME)
    whole = predicted_motion(system, speech, n, rest_in_silence=False)  # streaming does not wait for the gate

    def streamed(lookahead):
        motion = StreamingMotion(system, lookahead)
        parts = [motion.push(speech[i:i + 320]) for i in range(0, speech.size, 320)]
        return np.concatenate([*parts, motion.push(np.zeros(0, np.float32), final=True)])

    full, short = streamed(None), streamed(2)
    assert full.shape == whole.shape == short.shape
    corr = lambda m: np.corrcoef(m.ravel(), whole.ravel())[0, 1]  # noqa: E731
    assert corr(full) > 0.9 and corr(full) > corr(short)


def test_stream_writes_frames_while_speech_arrives(tmp_path):
    speech = media.read_audio(GRID / "s1/video/bbaf2n.mp4")  # 3 s, played at real-time pace
    seen = []
    r = stream(file_chunks(speech), SAMPLE_FACE, tmp_path / "live.mp4", on_frame=lambda t, f: seen.append(t),
               progress=False)
    n = -(-speech.size // media.SAMPLES_PER_FRAME)
    assert r["frames"] == n == len(seen) == len(media.read_video(r["out"])) and seen == list(range(n))
    assert r["end_s"] - r["latency_s"][0] < r["arrival_end_s"]  # the first frame left before the speech ended
    assert abs(media.read_audio(r["out"]).size / media.SAMPLE_RATE - n / media.VIDEO_FPS) < 0.07


def test_stream_from_raw_pcm_and_errors(tmp_path, capsys, monkeypatch):
    speech = media.read_audio(GRID / "s1/video/bbaf2n.mp4")[: 2 * media.SAMPLE_RATE]
    pcm = (np.clip(speech, -1, 1) * 32767).astype("<i2").tobytes()
    chunks = list(pcm_chunks(io.BufferedReader(io.BytesIO(pcm)), chunk=333))
    assert np.abs(np.concatenate(chunks) - np.clip(speech, -1, 1)).max() < 1e-4
    r = stream(iter(chunks), SAMPLE_FACE, tmp_path / "pcm.mp4", progress=False, lookahead=0)
    assert r["frames"] == 50 and r["lookahead_frames"] == 0
    with pytest.raises(media.MediaError, match="no speech arrived"):
        stream(iter([]), SAMPLE_FACE, tmp_path / "none.mp4", progress=False)
    with pytest.raises(LipgenError, match="motion model"):
        stream(iter(chunks), SAMPLE_FACE, tmp_path / "g.mp4", model="glance", progress=False)
    assert not (tmp_path / "none.mp4").exists() and not (tmp_path / "g.mp4").exists()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(pcm))))
    assert cli.main(["stream", "--audio", "-", "-o", str(tmp_path / "cli.mp4"), "-q"]) == 0
    assert "50 frames; look-ahead 23 frames (920 ms)" in capsys.readouterr().out
    assert cli.main(["stream", "-o", str(tmp_path / "x.mp4")]) == 2
    assert "one speech source" in capsys.readouterr().err


def test_stream_from_a_file_carries_its_own_sound(tmp_path):
    import av

    speech = media.read_audio(GRID / "s1/video/bbaf2n.mp4")[: 2 * media.SAMPLE_RATE]
    wav = media.write_wav(tmp_path / "s.wav", np.stack([speech, speech]).repeat(3, axis=1), 48000)
    assert cli.main(["stream", "--audio", str(wav), "--fast", "-o", str(tmp_path / "s.mp4"), "-q"]) == 0
    with av.open(str(tmp_path / "s.mp4")) as c:
        sound = c.streams.audio[0].codec_context
        assert (sound.sample_rate, sound.layout.name) == (48000, "stereo")
    assert len(media.read_video(tmp_path / "s.mp4")) == 50
