import av
import numpy as np
import pytest

from lipgen import media
from lipgen.errors import MediaError, SilentAudioError

from .conftest import GRID


def test_constants_tie_audio_to_video():
    assert media.MELS_PER_FRAME == 4
    assert media.HOP_LENGTH * media.MELS_PER_FRAME * media.VIDEO_FPS == media.SAMPLE_RATE
    assert media.N_FFT == media.SAMPLE_RATE * 25 // 1000


def test_mel_frames_are_four_per_video_frame(clip):
    frames = media.read_video(clip)
    audio = media.read_audio(clip)
    assert frames.shape == (75, 288, 360, 3) and frames.flags["C_CONTIGUOUS"]
    mel = media.log_mel(audio, len(frames))
    assert mel.shape == (4 * len(frames), media.N_MELS)
    assert media.log_mel(audio).shape[0] == 4 * (audio.size // media.SAMPLES_PER_FRAME)


def test_log_mel_is_loudness_normalised_and_silence_is_low(clip):
    audio = media.read_audio(clip)
    loud, quiet = media.log_mel(audio), media.log_mel(audio * 0.1)
    assert np.abs(loud - quiet).mean() < 0.05
    mel = media.log_mel(np.concatenate([np.zeros(16000, np.float32), audio]))
    assert mel[:50].mean() < mel[100:].mean() - 0.3  # the added second of silence is darker than speech


def test_mp4_round_trip_keeps_frames_and_audio(clip, tmp_path):
    frames, audio = media.read_video(clip), media.read_audio(clip)
    out = media.write_mp4(tmp_path / "x.mp4", frames, audio)
    back, back_audio = media.read_video(out), media.read_audio(out)
    assert back.shape == frames.shape
    assert np.abs(back.astype(int) - frames).mean() < 4
    assert abs(back_audio.size - len(frames) * media.SAMPLES_PER_FRAME) < media.SAMPLES_PER_FRAME / 2
    # the speech stays in place: envelopes correlate
    env = lambda a: np.abs(a[: 46000]).reshape(-1, 400).mean(1)
    assert np.corrcoef(env(audio), env(back_audio))[0, 1] > 0.9
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_what_a_killed_writer_left_is_removed_by_the_next(clip, tmp_path):
    """kill -9 mid-write leaves the temporary file (a rename never came): the next writer of that output removes
    it, and leaves alone what a living process is writing and other outputs' files."""
    import subprocess
    import sys

    from lipgen.files import temporary_suffix, write_atomic

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = tmp_path / f".x.mp4{temporary_suffix(gone.pid)}.abc123.mp4"
    busy = tmp_path / f".x.mp4{temporary_suffix()}.def456.mp4"  # this process: alive
    other = tmp_path / f".y.mp4{temporary_suffix(gone.pid)}.abc123.mp4"
    for f in (stale, busy, other):
        f.write_bytes(b"")
    media.write_mp4(tmp_path / "x.mp4", media.read_video(clip)[:3])
    assert not stale.exists() and busy.exists() and other.exists()
    report = tmp_path / f".r.json{temporary_suffix(gone.pid)}.zz"
    report.write_bytes(b"{")
    write_atomic(tmp_path / "r.json", "{}")
    assert not report.exists()


def test_other_frame_rates_become_25fps(clip, tmp_path):
    frames = media.read_video(clip)[:30]
    media.write_mp4(tmp_path / "x30.mp4", frames, fps=30)  # 1 s at 30 fps
    assert len(media.read_video(tmp_path / "x30.mp4")) == 25


def test_mpeg1_original_reads(tmp_path):
    assert media.read_video(GRID / "multi" / "lbax4n.mpg").shape[0] == 75
    assert media.read_audio(GRID / "multi" / "lbax4n.mpg").size > 2.9 * media.SAMPLE_RATE


def test_damaged_video_is_refused():
    with pytest.raises(MediaError, match="damaged video"):
        media.read_video(GRID / "s4" / "damaged" / "bbaf2a.mpg")


def test_text_file_renamed_mp4_is_refused(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 20)
    with pytest.raises(MediaError, match="not a readable media file"):
        media.read_video(fake)
    with pytest.raises(MediaError, match="not a readable media file"):
        media.read_audio(fake)


def test_empty_and_silent_audio_are_refused(tmp_path):
    for name, samples in [("empty.wav", np.zeros(0)), ("silent.wav", np.zeros(16000))]:
        media.write_wav(tmp_path / name, samples)
        with pytest.raises(MediaError, match="empty|silent") as refused:
            media.read_audio(tmp_path / name)
        assert isinstance(refused.value, SilentAudioError) == (name == "silent.wav")


def test_too_long_and_wrong_rate_are_refused(clip):
    with pytest.raises(MediaError, match="longer than"):
        media.read_audio(clip, max_seconds=1)
    with pytest.raises(MediaError, match="longer than"):
        media.read_video(clip, max_seconds=1)
    with pytest.raises(MediaError, match="44100 Hz"):
        media.check_sample_rate(44100)
    whole = media.read_audio(clip)
    first = media.read_audio(clip, max_seconds=1, first=0.5)  # only what is asked for is read: a longer file is fine
    assert first.size == media.SAMPLE_RATE // 2 and np.array_equal(first, whole[:first.size])


def test_missing_file_and_no_audio_stream(tmp_path, clip):
    with pytest.raises(MediaError, match="no such file"):
        media.read_audio(tmp_path / "nothing.wav")
    silent_video = media.write_mp4(tmp_path / "mute.mp4", media.read_video(clip)[:10])
    with pytest.raises(MediaError, match="no audio stream"):
        media.read_audio(silent_video)


def test_float16_speech_is_the_same_speech_in_half_the_memory(clip, tmp_path):
    """Generation's motion path holds long speech as float16 (media.read_audio(dtype=np.float16)): the same
    samples to 3 significant digits, the same motion to a small share of a pixel, and the same sound muxed."""
    import torch

    from lipgen import ASSETS
    from lipgen.checkpoint import load_system
    from lipgen.generate import SAMPLE_AUDIO
    from lipgen.inference import predicted_motion

    full, half = media.read_audio(SAMPLE_AUDIO), media.read_audio(SAMPLE_AUDIO, dtype=np.float16)
    assert half.dtype == np.float16 and half.nbytes * 2 == full.nbytes
    assert np.abs(half.astype(np.float32) - full).max() < 1e-3 * max(1.0, np.abs(full).max())
    system = load_system(ASSETS / "motion.safetensors", strict=False)[0]
    n = full.size // media.SAMPLES_PER_FRAME
    a, b = predicted_motion(system, full, n), predicted_motion(system, half, n)
    assert np.abs(a - b).max() < 0.05 * np.abs(a).max()  # the motion: the same to within 5% of its range
    gap = system.gap(torch.from_numpy(np.stack([a, b])))
    assert np.corrcoef(gap[0], gap[1])[0, 1] > 0.999
    frames = np.zeros((n, 32, 32, 3), np.uint8)
    muxed = media.read_audio(media.write_mp4(tmp_path / "half.mp4", frames, half))
    assert abs(muxed.size - full.size) < media.SAMPLES_PER_FRAME
    env = lambda x: np.abs(x[:160000]).reshape(-1, 400).mean(1)  # noqa: E731
    assert np.corrcoef(env(full), env(muxed))[0, 1] > 0.95
    with pytest.raises(ValueError, match="float32 or float16"):
        media.read_audio(SAMPLE_AUDIO, dtype=np.int16)


def _stereo_wav(path, seconds: float, rate: int = 44100):
    """Speech-like noise bursts on the left, a 880 Hz tone on the right: (2, N) float32 as written."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    left = rng.normal(0, 0.2, t.size) * (np.sin(2 * np.pi * 3 * t) > 0)
    x = np.stack([left, 0.2 * np.sin(2 * np.pi * 880 * t)]).astype(np.float32)
    media.write_wav(path, x, rate)
    return x


def _sound_of(path):
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        return s.codec_context.sample_rate, s.codec_context.layout.name, np.concatenate(
            [f.to_ndarray() for f in c.decode(s)], axis=1)


def test_a_sound_file_is_muxed_at_its_own_rate_and_channels(clip, tmp_path):
    frames = media.read_video(clip)[:50]  # 2 s
    for seconds in (3.0, 1.0):  # trimmed to the frames, or padded with silence
        x = _stereo_wav(tmp_path / "st.wav", seconds)
        out = media.write_mp4(tmp_path / "x.mp4", frames, media.read_audio(tmp_path / "st.wav"),
                              sound=tmp_path / "st.wav")
        rate, layout, y = _sound_of(out)
        assert (rate, layout) == (44100, "stereo")
        assert abs(y.shape[1] - 2 * 44100) <= 1024  # the video's length, to one AAC frame
        n = min(x.shape[1], y.shape[1])
        assert np.corrcoef(y[1, :n], x[1, :n])[0, 1] > 0.95  # the channels kept apart, in time
        assert abs(np.corrcoef(y[0, :n], x[1, :n])[0, 1]) < 0.05
        lags = np.correlate(y[0, :44100], x[0, 500:44100 - 500], "valid")
        assert abs(int(np.argmax(lags)) - 500) <= 2  # the left's speech where it was
        assert np.abs(y[:, int(seconds * 44100) + 1024:]).max(initial=0) < 0.01  # silence after a short sound
    # a rate AAC lacks becomes 48 kHz; one channel stays one
    odd = media.write_wav(tmp_path / "odd.wav", 0.3 * np.sin(np.arange(37800 * 2) / 9), 37800)
    rate, layout, y = _sound_of(media.write_mp4(tmp_path / "odd.mp4", frames, sound=odd))
    assert (rate, layout, abs(y.shape[1] - 2 * 48000) <= 1024) == (48000, "mono", True)


@pytest.mark.parametrize("tags", [{"dst_color_range": 2}, {"dst_colorspace": 1}])  # full range; BT.709 (phones' HD)
def test_a_videos_own_colour_matrix_and_range_are_read(tmp_path, tags):
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[:, :32], rgb[:, 32:], rgb[:32, :, 0] = 20, 230, 200  # dark, light, and red stripes
    path = tmp_path / "tagged.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=25)  # lossless: only the conversion is measured
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        if "dst_color_range" in tags:
            s.codec_context.color_range = 2
        else:
            s.codec_context.colorspace = 1
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p", **tags)
        for p in [*s.encode(frame), *s.encode()]:
            c.mux(p)
    back = media.read_video(path)[0].astype(int)
    assert np.abs(back[4:28, 4:28] - rgb[4:28, 4:28]).max() <= 3  # away from the stripes' edges (chroma halved)
    assert np.abs(back[40:60, 40:60] - rgb[40:60, 40:60]).max() <= 3


@pytest.mark.parametrize("sound_at", [0.4, -0.4])  # seconds after (before) the first picture
def test_a_videos_sound_is_placed_where_its_picture_has_it(tmp_path, sound_at):
    from fractions import Fraction

    path, rate = tmp_path / "offset.mp4", media.SAMPLE_RATE
    beep = np.zeros(2 * rate, np.float32)
    beep[int(0.6 * rate):int(0.7 * rate)] = 0.5 * np.sin(np.arange(int(0.1 * rate)) / 3)  # at 0.6 s of the sound
    with av.open(str(path), "w") as c:
        video, sound = c.add_stream("libx264", rate=25), c.add_stream("aac", rate=rate, layout="mono")
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        packets = []
        for i in range(50):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 90, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i + max(0, round(-sound_at * 25)), Fraction(1, 25)
            packets += video.encode(frame)
        packets += video.encode()
        for i in range(0, beep.size, 1024):
            frame = av.AudioFrame.from_ndarray(beep[None, i:i + 1024].copy(), format="fltp", layout="mono")
            frame.sample_rate, frame.time_base = rate, Fraction(1, rate)
            frame.pts = i + max(0, round(sound_at * rate))
            packets += sound.encode(frame)
        packets += sound.encode()
        for p in sorted(packets, key=lambda p: float(p.dts * p.time_base)):
            c.mux(p)
    heard = media.read_audio(path)
    loud = np.flatnonzero(np.abs(heard) > 0.2)
    assert abs(loud[0] / rate - (0.6 + sound_at)) < 0.03  # the beep as the picture has it, not 0.6 s in
    out = media.write_mp4(tmp_path / "o.mp4", media.read_video(path), sound=path)  # muxed likewise
    again = np.flatnonzero(np.abs(media.read_audio(out)) > 0.2)
    assert abs(again[0] / rate - (0.6 + sound_at)) < 0.03


def test_pixels_wider_than_tall_are_made_square(tmp_path):
    from fractions import Fraction

    path = tmp_path / "sar.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 48, 64, "yuv420p"
        s.codec_context.sample_aspect_ratio = Fraction(4, 3)  # shown 64 wide, as DV and HDV store it
        for i in range(3):
            for p in s.encode(av.VideoFrame.from_ndarray(np.full((64, 48, 3), 90, np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    assert media.read_video(path).shape[1:] == (64, 64, 3)


def test_speech_whose_channels_cancel_or_whose_floats_are_integers_is_refused(clip, tmp_path):
    """Two mistakes that gave a still or garbled face without a word: a stereo recording whose channels cancel when
    mixed (one inverted) read as silent, and int16 values held in a float array played as clipped noise."""
    speech = media.read_audio(clip)
    with pytest.raises(MediaError, match="channels cancel out"):
        media.samples_of(np.c_[speech, -speech])
    inverted = media.write_wav(tmp_path / "inverted.wav", np.stack([speech, -speech]))
    with pytest.raises(MediaError, match="silent.*2 channels may cancel out"):
        media.read_audio(inverted)
    with pytest.raises(MediaError, match="look like int16 values"):
        media.samples_of((speech * 32767).astype(np.float32))
    assert np.allclose(media.samples_of(np.c_[speech, speech]), speech)  # a plain stereo pair is mixed as before
    assert np.allclose(media.samples_of(1.5 * speech), 1.5 * speech)  # a loud float mix is still speech


def test_an_mp3_cut_short_is_refused(clip, tmp_path):
    """An MP3 whose first frame counts its frames (LAME's Info or Xing header) states its length exactly: one cut
    short (an interrupted download) is refused as a WAV, FLAC or M4A is, not read as shorter speech."""
    from .test_stream import _encoded

    speech = media.read_audio(clip)[: 3 * media.SAMPLE_RATE]
    whole = _encoded(tmp_path / "whole.mp3", speech, "libmp3lame")
    assert abs(media.read_audio(tmp_path / "whole.mp3").size / media.SAMPLE_RATE - 3.0) < 0.1
    (tmp_path / "cut.mp3").write_bytes(whole[: len(whole) // 3])
    with pytest.raises(MediaError, match="cut short"):
        media.read_audio(tmp_path / "cut.mp3")
