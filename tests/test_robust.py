"""Issue 13: nothing hangs, nothing is silently wrong. One test (or a few) per class of bad input."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lipgen import media
from lipgen.errors import MediaError

from .conftest import GRID

CLIP = GRID / "s1" / "video" / "bbaf2n.mp4"  # 360x288, 75 frames, H.264 + AAC
S4_CLIP = GRID / "s4" / "video" / "bbilzs.mp4"  # 720x576: the clip that hung the decoder
FLAC = media.Path(media.__file__).parent / "assets" / "jfk.flac"


def corrupt_copy(src, dst, n_bytes: int, seed: int = 0, at: float = 0.5):
    """Copy src to dst with n_bytes random bytes written over the middle (at: share of the file)."""
    data = bytearray(src.read_bytes())
    start = int(len(data) * at)
    data[start:start + n_bytes] = np.random.default_rng(seed).integers(0, 256, n_bytes, np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst


# 1. Hang -----------------------------------------------------------------------------------------------------


def test_dropping_half_read_videos_never_hangs():
    """Reading the first frame and dropping the generator (FaceSource's pattern) used to deadlock within ~50
    tries: freeing a threaded decoder waited for a thread that waited for the GIL."""
    script = textwrap.dedent(f"""
        from lipgen import media
        for i in range(200):
            next(media.iter_video({str(S4_CLIP)!r}))  # first frame, generator dropped half-read
        for i in range(20):  # FaceSource.frames: the audio ends before the video
            for _ in zip(range(3), media.iter_video({str(S4_CLIP)!r})):
                pass
        print("done")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0 and "done" in result.stdout, result.stderr[-2000:]


# 2. Damaged media --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_h264_with_corrupt_middle_is_refused(tmp_path, seed):
    bad = corrupt_copy(CLIP, tmp_path / "bad.mp4", 2000, seed)
    with pytest.raises(MediaError, match="damaged video"):
        for _ in media.iter_video(bad):
            pass


def test_h264_decoded_in_threads_before_is_checked_too(tmp_path):
    """The 720x576 clip's errors were logged by decoder threads, where a thread-local capture missed them."""
    bad = corrupt_copy(S4_CLIP, tmp_path / "bad.mp4", 2000, 0)
    with pytest.raises(MediaError, match="damaged video"):
        media.read_video(bad)
    assert len(media.read_video(S4_CLIP)) == 75  # and the intact file reads


def test_damaged_flac_and_truncated_wav_are_refused(tmp_path):
    with pytest.raises(MediaError, match="damaged audio"):
        media.read_audio(corrupt_copy(FLAC, tmp_path / "bad.flac", 20_000))
    cut = tmp_path / "cut.flac"
    cut.write_bytes(FLAC.read_bytes()[: FLAC.stat().st_size // 2])
    with pytest.raises(MediaError, match="damaged audio"):
        media.read_audio(cut)
    speech = media.read_audio(CLIP)
    whole = media.write_wav(tmp_path / "whole.wav", speech)
    assert media.read_audio(whole).size == speech.size
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(MediaError, match="cut short"):
        media.read_audio(truncated)


def test_the_same_damage_is_seen_twice():
    """FFmpeg's logger skips a message equal to the last one: a second read of a damaged file must still fail."""
    for _ in range(2):
        with pytest.raises(MediaError, match="damaged video"):
            media.read_video(GRID / "s4" / "damaged" / "bbaf2a.mpg")


# 3. Orientation ----------------------------------------------------------------------------------------------


def test_jpeg_exif_orientation_is_applied(tmp_path):
    from PIL import Image

    upright = media.read_video(CLIP)[0]  # (288, 360, 3)
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # as a camera held sideways stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation 6: rotate 90 degrees clockwise to display
    Image.fromarray(stored).save(tmp_path / "side.jpg", exif=exif, quality=95)
    image = media.read_image(tmp_path / "side.jpg")
    assert image.shape == upright.shape
    assert np.abs(image.astype(int) - upright).mean() < 4


def test_video_rotation_metadata_is_applied(tmp_path):
    import av

    upright = media.read_video(CLIP)[:10]  # (10, 288, 360, 3)
    with av.open(str(tmp_path / "phone.mp4"), "w") as out:  # a phone's portrait video: stored sideways
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 288, 360, "yuv420p"
        stream.set_display_rotation(-90)  # shown turned 90 degrees clockwise
        for frame in upright:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(frame, 1)),
                                                                   format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    frames = media.read_video(tmp_path / "phone.mp4")
    assert frames.shape == upright.shape
    assert np.abs(frames.astype(int) - upright).mean() < 4


def _combing(frames: np.ndarray) -> float:
    """Mean distance of each row from the mean of its neighbours: large where two fields are woven."""
    grey = frames.astype(float).mean(-1)
    return float(np.abs(grey[:, 1:-1] - (grey[:, :-2] + grey[:, 2:]) / 2).mean())


def test_interlaced_video_is_read_from_one_field(tmp_path):
    import av

    moving = media.read_video(CLIP)[:20]
    woven = moving[0::2].copy()  # 50i: the top field from one moment, the bottom field from the next,
    woven[:, 1::2] = np.roll(moving[1::2, 1::2], 6, axis=2)  # the camera panning between them
    with av.open(str(tmp_path / "tv.mp4"), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"x264-params": "interlaced=1:tff=1", "crf": "12"})
        stream.width, stream.height, stream.pix_fmt = 360, 288, "yuv420p"
        for frame in woven:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    frames = media.read_video(tmp_path / "tv.mp4")
    assert frames.shape == woven.shape
    assert _combing(woven) > 1.5 * _combing(moving[0::2])  # the weave shows
    assert _combing(frames) < 1.1 * _combing(moving[0::2])  # and is gone
    assert np.abs(frames.astype(int) - moving[0::2]).mean() < 4  # the top field's moment, whole


# 7. Size guard -----------------------------------------------------------------------------------------------


def test_huge_photo_is_scaled_to_the_documented_limit(tmp_path, caplog):
    from PIL import Image

    from lipgen.generate import SAMPLE_FACE

    big = np.asarray(Image.open(SAMPLE_FACE).convert("RGB").resize((6000, 4500)))
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=90)
    with caplog.at_level("WARNING", logger="lipgen.media"):
        image = media.read_image(tmp_path / "big.jpg")
    assert image.shape == (1536, media.MAX_IMAGE_SIDE, 3)
    assert "2048-pixel limit" in caplog.text and "6000x4500" in caplog.text


def test_a_wide_video_is_noted_once_however_often_it_is_read(tmp_path, caplog):
    frames = np.zeros((5, 64, 2304, 3), np.uint8)
    media.write_mp4(tmp_path / "wide.mp4", frames)
    with caplog.at_level("WARNING", logger="lipgen.media"):
        for _ in range(2):  # generate reads a video face twice: to track it, then to draw on it
            shape = media.read_video(tmp_path / "wide.mp4").shape
    assert shape[1:] == (57, 2048, 3)
    assert caplog.text.count("2048-pixel limit") == 1


# 4. Output equal to an input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--face", "--audio", "--drive-video"])
def test_output_that_is_an_input_is_refused_before_any_work(tmp_path, flag, capsys):
    from lipgen.cli import main

    video = tmp_path / "me.mp4"
    video.write_bytes(CLIP.read_bytes())
    before = video.read_bytes()
    args = {"--face": ["--face", str(video)], "--audio": ["--audio", str(video)],
            "--drive-video": ["--drive-video", str(video), "--model", "davs"]}[flag]
    alias = tmp_path / "sub" / ".." / "me.mp4"  # the same file by another spelling
    (tmp_path / "sub").mkdir()
    assert main(["generate", *args, "-o", str(alias)]) != 0
    err = capsys.readouterr().err
    assert f"the output is the {flag} input" in err and len(err.strip().splitlines()) == 1
    assert video.read_bytes() == before and not list(tmp_path.glob(".me.*"))


def test_output_folder_is_refused(tmp_path):
    from lipgen.generate import SAMPLE_FACE, generate

    with pytest.raises(MediaError, match="is a folder"):
        generate(CLIP, SAMPLE_FACE, tmp_path, progress=False)


# 5. Exact --resume -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["crgan", "davs"])
def test_resume_is_exact_for_models_that_draw_random_numbers(grid_cache, tmp_path, model):
    """CRGAN (random frames for its frame discriminator) and DAVS (dropout) draw from torch's RNG while
    training: a resumed run must draw the same numbers as an uninterrupted one."""
    import torch
    from safetensors.torch import load_file

    from lipgen.train import TrainConfig, train

    def cfg(out, steps, resume=False):
        return TrainConfig(model=model, preset="tiny", cache=str(grid_cache), out=str(out), steps=steps,
                           batch_size=2, workers=0, log_every=1, val_every=1000, sample_every=1000,
                           ckpt_every=2, resume=resume)

    straight = load_file(str(train(cfg(tmp_path / "a", 3))))
    train(cfg(tmp_path / "b", 2))  # "killed" after step 2's checkpoint
    resumed = load_file(str(train(cfg(tmp_path / "b", 3, resume=True))))
    assert straight.keys() == resumed.keys()
    different = [k for k in straight if not torch.equal(straight[k], resumed[k])]
    assert not different, f"{len(different)}/{len(straight)} tensors differ, e.g. {different[:3]}"


# 6. Memory flat in audio length ------------------------------------------------------------------------------


def _log_mel_at_once(audio, n_frames):
    """The former log_mel: the whole spectrogram in one go (the reference for the chunked one)."""
    x = media.fit_audio(np.asarray(audio, np.float32), n_frames) * media.speech_gain(audio)
    x = np.pad(x, media.N_FFT // 2, mode="reflect")
    idx = np.arange(media.N_FFT)[None] + media.HOP_LENGTH * np.arange(n_frames * media.MELS_PER_FRAME)[:, None]
    window = np.hanning(media.N_FFT + 1)[:-1].astype(np.float32)
    power = np.abs(np.fft.rfft(x[idx] * window, axis=1)) ** 2
    mel = power.astype(np.float32) @ media.MEL_FILTERS.T
    return ((np.log10(np.maximum(mel, media.LOG_MEL_FLOOR)) + 4.5) / 4.5).astype(np.float32)


def test_chunked_log_mel_equals_the_whole_spectrogram():
    speech = media.read_audio(FLAC)  # 11 s
    long = np.concatenate([speech, speech[::-1], speech])  # 33 s: several chunks
    for audio, n_frames in [(speech, 1), (speech, 10), (speech, 251), (speech, 400), (long, 824), (long, 2000)]:
        chunked, whole = media.log_mel(audio, n_frames), _log_mel_at_once(audio, n_frames)
        assert chunked.shape == whole.shape == (4 * n_frames, media.N_MELS)
        np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-6)


def test_log_mel_memory_does_not_grow_with_audio_length():
    import tracemalloc

    speech = media.read_audio(FLAC)
    peaks = []
    for minutes in (1, 4):
        audio = np.tile(speech, int(minutes * 60 * media.SAMPLE_RATE) // speech.size + 1)
        tracemalloc.start()
        mel = media.log_mel(audio)
        peak = tracemalloc.get_traced_memory()[1] - mel.nbytes
        tracemalloc.stop()
        peaks.append(peak)
    assert peaks[1] < 40e6 and peaks[1] < 1.3 * peaks[0], peaks  # the whole-at-once version: 330 MB at 4 min


# 8. Frames without a face ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cutaway_video(tmp_path_factory):
    """CLIP with its first 13 frames (0.5 s) and frames 40-49 replaced by face-less scenery."""
    frames, audio = media.read_video(CLIP), media.read_audio(CLIP)
    import cv2

    rng = np.random.default_rng(0)
    for span in (slice(0, 13), slice(40, 50)):
        coarse = rng.integers(0, 256, (6, 8, 3), np.uint8)  # a smooth, colourful landscape with no face in it
        frames[span] = cv2.resize(coarse, (frames.shape[2], frames.shape[1]), interpolation=cv2.INTER_CUBIC)
    path = tmp_path_factory.mktemp("cutaway") / "cutaway.mp4"
    return media.write_mp4(path, frames, audio)


def test_faceless_frames_are_reported_not_invented(cutaway_video):
    from lipgen.generate import FaceSource

    source = FaceSource(cutaway_video)
    with_face = [m is not None for _, (_, m) in zip(range(75), source.frames())]
    assert with_face == [False] * 13 + [True] * 27 + [False] * 10 + [True] * 25
    assert np.isnan(source.landmarks[:13]).all() and not np.isnan(source.landmarks[13:40]).any()


def test_generate_leaves_faceless_frames_untouched(cutaway_video, tmp_path):
    from lipgen.generate import generate

    out = generate(CLIP, cutaway_video, tmp_path / "out.mp4", progress=False)
    made, source = media.read_video(out), media.read_video(cutaway_video)
    assert made.shape == source.shape
    from lipgen.face import track_face

    mouth = track_face(source[20:21]).landmarks[0, 48:68]
    (x0, y0), (x1, y1) = mouth.min(0).astype(int) - 8, mouth.max(0).astype(int) + 8
    change = np.abs(made[:, y0:y1, x0:x1].astype(int) - source[:, y0:y1, x0:x1]).mean(axis=(1, 2, 3))  # per frame
    faceless = np.r_[0:13, 40:50]
    assert change[faceless].max() < 2.0  # only the encoder's rounding
    assert np.median(np.delete(change, faceless)) > 2 * change[faceless].max()  # a new mouth elsewhere


# 9. One CLI error boundary -----------------------------------------------------------------------------------


def _cli(capsys, *argv):
    """(exit code, stderr) of `lipgen argv`, run in this process."""
    from lipgen.cli import main

    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def float32_glance(tmp_path_factory):
    """The shipped Glance generator saved as float32 (a checkpoint as `lipgen train` writes them)."""
    from lipgen.checkpoint import load_system, save_model
    from lipgen.models import shipped_checkpoint

    system, header = load_system(shipped_checkpoint("glance"), strict=False)
    state = {k: v for k, v in system.state_dict().items() if k.split(".")[0] in system.loaded_parts}
    return save_model(tmp_path_factory.mktemp("ckpt") / "glance.safetensors", "glance", system.config, state)


def _damage_bits(path, key: str, dst, flip: int = 0, set_: int = 0):
    """Copy a safetensors file with bits of tensor `key`'s first float32 element flipped (xor) or set (or)."""
    import json
    import struct

    data = bytearray(path.read_bytes())
    n = struct.unpack("<Q", data[:8])[0]
    start = 8 + n + json.loads(data[8:8 + n])[key]["data_offsets"][0]
    value = (struct.unpack("<I", data[start:start + 4])[0] ^ flip) | set_
    data[start:start + 4] = struct.pack("<I", value)
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_damaged_checkpoint_is_one_clear_line(float32_glance, tmp_path, capsys, damage):
    bad = tmp_path / "bad.safetensors"
    whole = float32_glance.read_bytes()
    bad.write_bytes({"empty": b"", "truncated": whole[: len(whole) // 2],
                     "garbage": np.random.default_rng(0).bytes(5000)}[damage])
    code, err = _cli(capsys, "generate", "--checkpoint", bad, "-o", tmp_path / "out.mp4")
    assert code == 2 and "not a readable model file" in _one_error_line(err)
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".out*"))


def test_unknown_checkpoint_format_is_refused(float32_glance, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from lipgen.checkpoint import CheckpointError, read_header

    with safe_open(str(float32_glance), "pt") as f:
        meta = dict(f.metadata(), format="99")
    save_file(load_file(str(float32_glance)), str(tmp_path / "future.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="format '99', but this lipgen reads format 1"):
        read_header(tmp_path / "future.safetensors")


def test_bit_flipped_checkpoint_is_refused_not_rendered(float32_glance, tmp_path):
    from lipgen.errors import CheckpointError
    from lipgen.generate import SAMPLE_FACE, generate

    key = "generator.audio_encoder.0.0.weight"
    huge = _damage_bits(float32_glance, key, tmp_path / "huge.safetensors", flip=1 << 30)  # 2^128 times larger: finite
    with pytest.raises(CheckpointError, match="computed NaN/Inf"):
        generate(CLIP, SAMPLE_FACE, tmp_path / "out.mp4", checkpoint=huge, progress=False)
    nan = _damage_bits(float32_glance, key, tmp_path / "nan.safetensors", set_=0x7F800000)  # exponent 255: Inf/NaN
    with pytest.raises(CheckpointError, match="NaN or Inf in"):
        generate(CLIP, SAMPLE_FACE, tmp_path / "out.mp4", checkpoint=nan, progress=False)
    assert not list(tmp_path.glob("*.mp4"))


def test_bad_settings_are_one_line(capsys, tmp_path):
    code, err = _cli(capsys, "train", "--cache", tmp_path, "--out", tmp_path / "run", "--set", '{"no_such_field": 1}')
    assert code == 2 and "no_such_field not in the glance config" in _one_error_line(err)
    code, err = _cli(capsys, "train", "--cache", tmp_path, "--out", tmp_path / "run", "--set", "{oops")
    assert code == 2 and "--set is not valid JSON" in _one_error_line(err)
    code, err = _cli(capsys, "train", "--cache", tmp_path, "--out", tmp_path / "run", "--steps", 0)
    assert code == 2 and "at least 1 step" in _one_error_line(err)
    code, err = _cli(capsys, "generate", "--model", "nosuch", "-o", tmp_path / "x.mp4")
    line = _one_error_line(err)
    assert code == 2 and "unknown model 'nosuch'" in line and "lipgen train" not in line
    code, err = _cli(capsys, "generate", "--max-seconds", 1, "-o", tmp_path / "x.mp4")
    assert code == 2 and "--max-seconds" in _one_error_line(err)


@pytest.mark.parametrize("error, code, words", [
    (OSError(28, "No space left on device", "out.mp4"), 2, "out.mp4: No space left on device - the disk is full"),
    (PermissionError(13, "Permission denied", "/root/x.mp4"), 2, "Permission denied - check the permissions"),
    (NotADirectoryError(20, "Not a directory", "a.txt/b"), 2, "a part of the path is a file"),
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_expected_failures_are_one_line_with_an_exit_code(monkeypatch, capsys, error, code, words):
    import lipgen.generate

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(lipgen.generate, "generate", fail)
    got, err = _cli(capsys, "generate")
    assert got == code and words in _one_error_line(err)


def test_a_bug_keeps_its_traceback(monkeypatch):
    import lipgen.generate
    from lipgen.cli import main

    def bug(*args, **kwargs):
        return None + 1

    monkeypatch.setattr(lipgen.generate, "generate", bug)
    with pytest.raises(TypeError):
        main(["generate"])


# 10. Temporary files -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_signal_removes_the_half_written_output(tmp_path, sig):
    import os
    import signal
    import time

    out = tmp_path / "out.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "lipgen", "generate", "--audio", str(FLAC), "-o", str(out)],
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # until the writer's temporary file exists
    assert list(tmp_path.glob(".out.*")), "the writer never started"
    time.sleep(0.5)
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + getattr(signal, sig), err
    assert f"stopped by {sig}" in err
    assert not list(tmp_path.iterdir())  # neither the output nor its temporary file


def test_full_disk_ends_the_preprocessing_run_without_blaming_the_clip(tmp_path, monkeypatch):
    import errno

    from lipgen.data import preprocess as pre

    root = tmp_path / "grid" / "s1" / "video"
    root.mkdir(parents=True)
    (root / "bbaf2n.mp4").write_bytes(CLIP.read_bytes())
    real_save = np.save

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(pre.np, "save", full)
    with pytest.raises(OSError, match="No space left"):
        pre.preprocess(tmp_path / "grid", tmp_path / "cache", workers=1, progress=False)
    assert not (tmp_path / "cache" / pre.FAILED).exists()  # not marked failed
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["corpus.json", "manifest.jsonl", "vocabulary.json"]  # no clip
    monkeypatch.setattr(pre.np, "save", real_save)  # space again: the next run does the clip
    assert pre.preprocess(tmp_path / "grid", tmp_path / "cache", workers=1, progress=False)["clips_ok"] == 1


# 11. Preprocessing streams the video -------------------------------------------------------------------------


def test_preprocessing_memory_is_neither_the_video_nor_the_crops(tmp_path):
    """A 720x576 clip decodes to 93 MB and its crops take 4.6 MB: process_clip holds a frame or two of the video
    and writes the crops to the cache folder as it makes them."""
    import tracemalloc

    from lipgen.data.corpora import Utterance
    from lipgen.data.preprocess import process_clip

    utt = Utterance(id="s4/bbilzs", speaker="s4", path=str(S4_CLIP))  # no words: no forced alignment
    tracemalloc.start()
    arrays = process_clip(utt, tmp_path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    mouths, faces = np.load(tmp_path / "mouth.npy"), np.load(tmp_path / "face.npy")
    assert mouths.shape == (75, 64, 64, 3) and faces.shape == (75, 128, 128, 3)
    assert arrays["meta"]["frame_size"] == [576, 720] and "mouth" not in arrays
    assert 20 < faces.mean() < 235 and faces.std() > 10  # real face crops, not an unwritten file
    assert peak < 20e6, peak  # reading the whole video first: > 93 MB (flat in length: benchmarks/preprocess_memory.py)


# 12. Face detection ------------------------------------------------------------------------------------------


def test_small_and_turned_faces_are_found():
    import cv2

    from lipgen import face

    frame = media.read_video(CLIP)[0]  # (288, 360, 3), face ~110 px wide
    small = cv2.resize(frame, (72, 58), interpolation=cv2.INTER_AREA)  # face ~22 px wide
    assert len(face.detect_faces(small, upsample=1)) == 0  # what the detector did before
    assert len(face.detect_faces(small)) == 1  # small images are also searched upsampled x4
    turned = cv2.warpAffine(frame, cv2.getRotationMatrix2D((180, 144), 50, 1.0), (360, 288),
                            borderMode=cv2.BORDER_REFLECT)  # head tilted 50 degrees: HOG gives up
    assert len(face.detect_faces(turned, fallback=False)) == 0
    (box,) = face.detect_faces(turned)  # dlib's CNN detector finds it
    assert box[0] < 180 < box[2] and box[1] < 144 < box[3]


def test_a_large_image_is_searched_small_first(monkeypatch):
    """The CNN detector looks at a large image scaled down first, and its box comes back in the image's pixels."""
    import cv2

    from lipgen import face

    frame = media.read_video(CLIP)[0]
    turned = cv2.warpAffine(frame, cv2.getRotationMatrix2D((180, 144), 50, 1.0), (360, 288),
                            borderMode=cv2.BORDER_REFLECT)
    large = cv2.resize(turned, (720, 576), interpolation=cv2.INTER_CUBIC)
    sizes = []
    real = face._cnn_detector()
    monkeypatch.setattr(face, "_cnn_detector", lambda: lambda image, up: sizes.append(image.shape[:2]) or real(image, up))
    monkeypatch.setattr(face, "CNN_FIRST_SIDE", 360)
    (box,) = face.detect_faces(large)
    assert sizes == [(288, 360)]  # found at the first, smaller size
    assert box[0] < 360 < box[2] and box[1] < 288 < box[3] and box[2] - box[0] > 150  # in the large image's pixels


def test_a_small_face_is_warned_about(tmp_path, caplog):
    """Eyes under SMALL_FACE_IOD px apart: generation says the lip landmarks may be off; at full size it does not."""
    import cv2

    from lipgen.generate import SAMPLE_FACE, SMALL_FACE_IOD, FaceSource

    image = media.read_image(SAMPLE_FACE)  # eyes ~43 px apart
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), cv2.cvtColor(cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
                                         cv2.COLOR_RGB2BGR))
    with caplog.at_level("WARNING", logger="lipgen"):
        FaceSource(SAMPLE_FACE)
        assert not caplog.records
        FaceSource(small)
    (record,) = caplog.records
    assert "small (eyes" in record.getMessage() and f"{SMALL_FACE_IOD}+ px" in record.getMessage()


def test_a_wide_open_photo_mouth_is_warned_about(tmp_path, caplog):
    """A photo whose lips are more than WIDE_OPEN eye distances apart: generation says its closed mouth may show teeth
    or tongue; the astronaut as she is (smiling with her teeth, 0.16) is not warned about."""
    import cv2

    from lipgen import render
    from lipgen.face import eye_distance
    from lipgen.generate import SAMPLE_FACE, WIDE_OPEN, FaceSource

    image = media.read_image(SAMPLE_FACE)
    with caplog.at_level("WARNING", logger="lipgen"):
        points = FaceSource(SAMPLE_FACE).landmarks[0].astype(np.float64)
        assert not caplog.records
        iod = eye_distance(points[None])[0]
        opened = points.copy()  # her lower lip and jaw drawn 0.3 eye distances lower: a mouth open wide
        opened[render.LOWER_LIP + list(range(5, 12)), 1] += 0.3 * iod
        opened[[4, 12], 1] += 0.15 * iod
        wide = tmp_path / "wide.png"
        cv2.imwrite(str(wide), cv2.cvtColor(render.render(image, points, opened), cv2.COLOR_RGB2BGR))
        FaceSource(wide)
    (record,) = caplog.records
    assert "open wide" in record.getMessage()
    assert float(record.getMessage().split("(lips ")[1].split()[0]) > WIDE_OPEN


def test_a_large_false_detection_does_not_win_over_the_face(monkeypatch):
    from lipgen import face

    frames = media.read_video(CLIP)[:5]
    real = face.detect_faces(frames[0])[0]
    fake = np.array([228.0, 15, 356, 145])  # larger than the face, on the background: no face in it
    detect = face.detect_faces
    monkeypatch.setattr(face, "detect_faces", lambda image, *a, **k: np.stack([fake, real]) if not a and not k
                        else detect(image, *a, **k))
    landmarks = face.track_face(frames, face_index=0).landmarks
    centre = landmarks[0].mean(0)
    assert real[0] < centre[0] < real[2] and real[1] < centre[1] < real[3]


# 8. Odd but plausible inputs (a new user's, tried in session 16) ----------------------------------------------


def write_float_wav(path, samples: np.ndarray, rate: int = media.SAMPLE_RATE):
    """A 32-bit float WAV (format tag 3), which `wave` cannot write."""
    import struct

    data = samples.astype("<f4").tobytes()
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " +
                     struct.pack("<IHHIIHH", 16, 3, 1, rate, 4 * rate, 4, 32) + b"data" + struct.pack("<I", len(data)) +
                     data)
    return path


def test_nan_samples_are_blamed_on_the_audio_not_the_model(tmp_path):
    from lipgen.generate import speech

    audio = media.read_audio(FLAC)[:media.SAMPLE_RATE]
    assert media.read_audio(write_float_wav(tmp_path / "ok.wav", audio)).size == audio.size
    for bad in (np.nan, np.inf):
        damaged = audio.copy()
        damaged[100:110] = bad
        with pytest.raises(MediaError, match="NaN or infinite samples"):
            media.read_audio(write_float_wav(tmp_path / "bad.wav", damaged))
        with pytest.raises(MediaError, match="NaN or infinite samples"):
            speech(damaged)


def test_a_16_bit_grey_photo_keeps_its_tones(tmp_path):
    from PIL import Image

    from lipgen.generate import SAMPLE_FACE

    grey = np.asarray(Image.open(SAMPLE_FACE).convert("L"))
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I")  # PIL's own RGB of it is nearly all white
    got = media.read_image(tmp_path / "grey16.png")
    assert np.abs(got.astype(int) - grey[..., None]).max() <= 1


def test_a_constant_rate_video_keeps_its_nominal_rate():
    from fractions import Fraction
    from types import SimpleNamespace as Stream  # the two numbers of a PyAV video stream that decide its rate

    # vexpress_10.mp4 (25 fps, every frame 40 ms apart) states an average of 24.59 fps over its duration
    assert media._rate(Stream(average_rate=Fraction(23432, 953), guessed_rate=Fraction(25))) == 25
    assert media._rate(Stream(average_rate=Fraction(20), guessed_rate=Fraction(30))) == 20  # variable: the average
    assert media._rate(Stream(average_rate=None, guessed_rate=Fraction(30000, 1001))) == Fraction(30000, 1001)
    assert media.video_fps(CLIP) == 25


def test_a_one_frame_gif_is_a_photo_and_an_animated_one_a_video(tmp_path):
    from PIL import Image

    from lipgen.generate import SAMPLE_FACE

    image = Image.open(SAMPLE_FACE).convert("RGB")
    image.save(tmp_path / "still.gif")
    image.save(tmp_path / "moving.gif", save_all=True, append_images=[image.rotate(5)], duration=40)
    assert media.is_still(tmp_path / "still.gif") and not media.is_still(tmp_path / "moving.gif")
    assert media.read_frames(tmp_path / "still.gif").shape[0] == 1
    assert media.read_frames(tmp_path / "moving.gif").shape[0] >= 2


def test_a_face_video_too_slow_for_lips_is_drawn_at_25_fps(tmp_path):
    from lipgen.generate import SAMPLE_FACE, FaceSource

    image = media.read_image(SAMPLE_FACE)
    media.write_mp4(tmp_path / "slides.mp4", np.stack([image] * 4), fps=2)  # 2 s of a 2 fps slideshow
    assert media.video_fps(tmp_path / "slides.mp4") == 2
    assert FaceSource(tmp_path / "slides.mp4").fps == media.VIDEO_FPS  # the mouth can change 25 times a second
    assert FaceSource(tmp_path / "slides.mp4", fps=2).fps == 2  # as asked


def test_an_avif_photo_is_a_photo_and_a_heic_one_is_refused_by_name(tmp_path):
    from PIL import Image, features

    from lipgen.generate import SAMPLE_FACE, FaceSource

    if features.check("avif"):  # Pillow's wheels read AVIF; FFmpeg read it as a 1-frame video at 1 fps
        Image.open(SAMPLE_FACE).convert("RGB").save(tmp_path / "phone.avif")
        assert media.is_still(tmp_path / "phone.avif")
        assert FaceSource(tmp_path / "phone.avif").fps == media.VIDEO_FPS
    (tmp_path / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(100))
    with pytest.raises(MediaError, match="does not read HEIC photos. Save it as JPEG or PNG"):
        FaceSource(tmp_path / "phone.heic")


@pytest.mark.parametrize("out, words", [("x.gif", "lipgen writes mp4 files; name the output x.mp4"),
                                        ("x", "name the output x.mp4"), ("new/", "names a folder")])
def test_output_names_of_another_format_or_a_folder_are_refused(tmp_path, out, words):
    with pytest.raises(MediaError, match=words):
        media.check_output(f"{tmp_path}/{out}", {})
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("fps", [0, -1, 1000])
def test_an_output_frame_rate_out_of_range_is_refused(fps):
    from lipgen.generate import SAMPLE_FACE, FaceSource

    with pytest.raises(ValueError, match="frame rate .* from 1 to 240"):
        FaceSource(SAMPLE_FACE, fps=fps)


def test_a_sync_expert_is_not_offered_as_a_generator():
    from lipgen.generate import Generator

    for expert in ("syncnet", "lmsync"):
        with pytest.raises(ValueError, match=f"{expert} is a sync expert"):
            Generator(expert)


def test_driving_inputs_that_cannot_drive_say_why(tmp_path):
    from lipgen.generate import SAMPLE_FACE, Generator

    davs = Generator("davs")
    with pytest.raises(MediaError, match="a still image; --drive-video takes a video"):
        davs.generate(None, SAMPLE_FACE, tmp_path / "a.mp4", drive_video=SAMPLE_FACE, progress=False)
    mute = media.write_mp4(tmp_path / "mute.mp4", media.read_video(CLIP)[:10])
    with pytest.raises(MediaError, match="has no sound. Give the speech with --audio"):
        davs.generate(None, SAMPLE_FACE, tmp_path / "b.mp4", drive_video=mute, progress=False)
    assert not list(tmp_path.glob("[ab].mp4"))


def test_a_folder_given_for_a_file_says_so(tmp_path):
    for read in (media.read_audio, media.read_image, media.read_video):
        with pytest.raises(MediaError, match="is a folder. Give a file in it"):
            read(tmp_path)


def test_transparent_parts_of_an_image_are_read_on_white(tmp_path):
    from PIL import Image

    photo = media.read_video(CLIP)[0]
    alpha = np.zeros(photo.shape[:2], np.uint8)
    alpha[40:250, 60:300] = 255  # a cut-out: what lies under the transparent margin is the old background
    Image.fromarray(np.dstack([photo, alpha]), "RGBA").save(tmp_path / "cut.png")
    image = media.read_image(tmp_path / "cut.png")
    assert (image[alpha == 0] == 255).all() and np.array_equal(image[alpha == 255], photo[alpha == 255])
    Image.fromarray(np.dstack([photo, np.full_like(alpha, 255)]), "RGBA").save(tmp_path / "opaque.png")
    assert np.array_equal(media.read_image(tmp_path / "opaque.png"), photo)
