"""lipgen stream: causal features, the motion model over a sliding window, frames out while speech arrives."""

import dataclasses
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


def _streamed(system, audio, lookahead=None):
    motion = StreamingMotion(system, lookahead)
    parts = [motion.push(audio[i:i + 320]) for i in range(0, audio.size, 320)]
    return parts, motion.push(np.zeros(0, np.float32), final=True)


@pytest.mark.parametrize("front_end", ["whisper", "mel"])
def test_streamed_motion_follows_the_whole_file_motion(speech, front_end):
    """Both front ends stream: the shipped model (Whisper's encoder, which hears the last few seconds at each step)
    and a log-mel one (its features made causally, once)."""
    from lipgen.checkpoint import load_system
    from lipgen.stream import STREAM_CHECKPOINT

    system = streaming_model(load_generator() if front_end == "whisper" else load_system(STREAM_CHECKPOINT)[0])
    assert system.config.speech == front_end
    assert lookahead_frames(system) == system.config.context_frames + 4  # + smoothing radius 3 + log-mel's frame
    n = -(-speech.size // media.SAMPLES_PER_FRAME)
    whole = predicted_motion(system, speech, n)  # with the silence gate, which streaming applies too
    full, short = (np.concatenate([*parts, last]) for parts, last in
                   (_streamed(system, speech), _streamed(system, speech, 2)))
    assert full.shape == whole.shape == short.shape
    corr = lambda m: np.corrcoef(m.ravel(), whole.ravel())[0, 1]  # noqa: E731
    assert corr(full) > (0.97 if front_end == "whisper" else 0.9) and corr(full) > corr(short)  # whisper: 0.99


def test_whisper_streaming_is_causal(speech):
    """Motion already out never depends on audio that arrived after it: with the speech's second half replaced by
    loud noise, every frame pushed out before the noise began is the same; a model of another front end is
    refused, clearly."""
    from lipgen.models.motion import PRESETS, Motion

    system = streaming_model(load_generator())
    cut = speech.size // 2 // 320 * 320
    noisy = speech.copy()
    noisy[cut:] = np.random.default_rng(0).normal(0, 0.5, speech.size - cut)
    (clean, _), (changed, _) = _streamed(system, speech), _streamed(system, noisy)
    before = np.concatenate(clean[: cut // 320])
    assert len(before) >= cut // media.SAMPLES_PER_FRAME - lookahead_frames(system) - 4  # all but the look-ahead
    assert np.array_equal(before, np.concatenate(changed[: cut // 320]))
    assert not np.array_equal(np.concatenate(clean), np.concatenate(changed))
    other = Motion(dataclasses.replace(PRESETS["tiny"]))  # a copy: the preset itself is shared by other tests
    other.config.speech = "phones"
    with pytest.raises(LipgenError, match="cannot stream"):
        streaming_model(other)


def test_a_rooms_noise_before_the_speech_neither_talks_nor_mutes_it(speech):
    """A microphone hears the room before anyone speaks. The mouth stays closed in that noise and moves with the
    speech after it (the running normalisation used to learn the noise as speech: the face talked through 5 s of
    room tone and then kept its mouth shut while the person spoke)."""
    import torch

    system = streaming_model(load_generator())
    noise = np.random.default_rng(0).normal(0, 10 ** (-70 / 20), 5 * media.SAMPLE_RATE).astype(np.float32)
    audio = np.concatenate([noise, speech[: 6 * media.SAMPLE_RATE]])
    motion = StreamingMotion(system)
    parts = [motion.push(audio[i:i + 320]) for i in range(0, audio.size, 320)]
    streamed = np.concatenate([*parts, motion.push(np.zeros(0, np.float32), final=True)])
    gap = system.gap(torch.from_numpy(streamed[None]))[0].numpy()
    alone = StreamingMotion(system)
    parts = [alone.push(speech[i:i + 320]) for i in range(0, 6 * media.SAMPLE_RATE, 320)]
    alone = system.gap(torch.from_numpy(np.concatenate([*parts, alone.push(np.zeros(0, np.float32), True)])[None]))
    assert np.abs(gap[:120]).max() == 0  # closed in the noise (its last 5 frames: within the gate's margin)
    assert gap[125:].mean() > 0.7 * alone[0].numpy().mean()  # as open in speech as without the noise before it


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
    assert "50 frames; look-ahead 11 frames (440 ms)" in capsys.readouterr().out
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


def test_ctrl_c_ends_a_live_take_and_keeps_it(tmp_path):
    import os
    import signal
    import time

    speech = media.read_audio(GRID / "s1/video/bbaf2n.mp4")
    handler = signal.getsignal(signal.SIGINT)

    def live():  # a microphone: real-time chunks until the user presses Ctrl-C after 1 s
        for i, chunk in enumerate(file_chunks(speech)):
            if i == 50:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(3)  # a microphone goes on listening; the take must end without it
            yield chunk

    r = stream(live(), SAMPLE_FACE, tmp_path / "take.mp4", progress=False, finish_on_interrupt=True)
    assert 20 <= r["frames"] <= 30 == 50 * 320 // media.SAMPLES_PER_FRAME + 5  # 1 s heard: 25 frames
    assert len(media.read_video(r["out"])) == r["frames"] and signal.getsignal(signal.SIGINT) is handler


def _encoded(path, speech, codec) -> bytes:
    """speech (16 kHz mono) written by PyAV with `codec`: the file's bytes."""
    import av

    with av.open(str(path), "w") as container:
        out = container.add_stream(codec, rate=48000 if codec == "libopus" else media.SAMPLE_RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray((np.clip(speech, -1, 1) * 32767).astype(np.int16)[None], format="s16",
                                           layout="mono")
        frame.sample_rate = media.SAMPLE_RATE
        resampler = av.AudioResampler(format=out.codec_context.format, layout="mono", rate=out.codec_context.sample_rate,
                                      frame_size=out.codec_context.frame_size or None)
        for piece in [*resampler.resample(frame), *resampler.resample(None)]:
            container.mux(out.encode(piece))
        container.mux(out.encode(None))
    return path.read_bytes()


def test_stream_refuses_what_it_cannot_use(tmp_path, capsys):
    speech = media.read_audio(GRID / "s1/video/bbaf2n.mp4")[: media.SAMPLE_RATE]
    wav = media.write_wav(tmp_path / "s.wav", speech)
    floats = speech.astype("<f4").tobytes()
    encoded = [(_encoded(tmp_path / f"s.{suffix}", speech, codec), f"stdin holds {kind}")
               for suffix, codec, kind in [("flac", "flac", "a FLAC"), ("mp3", "libmp3lame", "an MP3"),
                                           ("ogg", "libopus", "an Ogg"), ("m4a", "aac", "an MP4 or M4A")]]
    mp3 = encoded[1][0]
    bare = mp3[10 + ((mp3[6] << 21) | (mp3[7] << 14) | (mp3[8] << 7) | mp3[9]):]  # its frames without the ID3 tag
    for data, error in [(wav.read_bytes(), "stdin holds a WAV file"), (floats, "32-bit float"), *encoded,
                        (bare, "stdin holds an MP3")]:
        with pytest.raises(media.MediaError, match=error):
            list(pcm_chunks(io.BufferedReader(io.BytesIO(data))))
    for first in ([-1, 0], [-1, 3], [-3841, 0]):  # raw PCM that starts like an MP3 or AAC frame header is PCM
        pcm = np.r_[np.array(first, "<i2"), (speech * 32767).astype("<i2")].tobytes()
        assert sum(len(c) for c in pcm_chunks(io.BufferedReader(io.BytesIO(pcm)))) == len(pcm) // 2
    for args, error in [(["--audio", str(wav), "-o", str(wav.with_suffix(".mp4")), "--seconds", "3"], "--seconds is for --mic"),
                        (["--audio", "-", "--fast"], "--fast is for --audio FILE")]:
        assert cli.main(["stream", *args]) == 2 and error in capsys.readouterr().err
    video = tmp_path / "talk.mp4"
    video.write_bytes((GRID / "s1/video/bbaf2n.mp4").read_bytes())
    assert cli.main(["stream", "--audio", str(video), "-o", str(video), "--fast"]) == 2
    assert "the output is the --audio input file" in capsys.readouterr().err
    assert video.read_bytes() == (GRID / "s1/video/bbaf2n.mp4").read_bytes()
