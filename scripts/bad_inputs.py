"""Every bad input of issue 13 through the `lipgen` CLI, one line per case: exit code, message, leftovers.

    python scripts/bad_inputs.py [--keep DIR]

Each case runs `python -m lipgen ...` in a fresh folder and prints
    case | exit N (s) | the last line lipgen printed on stderr | left: files the run left in its folder
An error case should end with one line, a non-zero exit code and nothing left behind; a case that
should work ends with exit 0 and its output. Inputs are made from the repo's GRID clips and bundled
sample photo. The disk-full and read-only cases mount a small tmpfs (they are skipped where that is
not allowed).
"""

import argparse
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLIPS = REPO / "src" / "lipgen" / "assets" / "clips"
ASSETS = REPO / "src" / "lipgen" / "assets"
GRID = REPO / "tests" / "fixtures" / "grid"
FACE_VIDEO = CLIPS / "s4_bbilzs.mp4"  # the clip that used to hang the decoder
SPEECH = GRID / "s1" / "video" / "bbaf3s.mp4"  # 3 s of speech (its sound)
PHOTO = ASSETS / "astronaut.png"
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def lipgen(args, cwd: Path, timeout: float = 600, stop=None):
    """Run `lipgen args` in cwd; stop=(signal, seconds after the writer's temporary file appears) interrupts it.
    Returns (exit code, seconds, last stderr line)."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "lipgen", *map(str, args)], cwd=cwd, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal
    if stop is not None:
        sig, after = stop
        while proc.poll() is None and not list(cwd.glob(".out.*")) and time.monotonic() - start < timeout:
            time.sleep(0.05)
        time.sleep(after)
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        code = f"TIMEOUT after {timeout:.0f} s"
    lines = [line.strip() for line in err.replace("\r", "\n").splitlines()]
    lines = [line for line in lines if line and "%|" not in line]  # not the progress bars
    return code, time.monotonic() - start, lines[-1] if lines else ""


def left(folder: Path, inputs: set[str]) -> str:
    files = sorted(p.name for p in folder.iterdir() if p.name not in inputs)
    return ", ".join(files) if files else "nothing"


def report(name: str, code, seconds: float, message: str, leftovers: str) -> None:
    print(f"{name:<44} | exit {code} ({seconds:.0f} s) | {message[:170]} | left: {leftovers}", flush=True)


def case(root: Path, name: str, args, make=None, **kw):
    """Make the case's inputs in a fresh folder (make(folder) -> None), run it, print its line."""
    folder = root / name.split(":")[0].replace(" ", "_").replace("/", "_")
    folder.mkdir()
    if make:
        make(folder)
    inputs = {p.name for p in folder.iterdir()}
    code, seconds, message = lipgen(args, folder, **kw)
    cache = folder / "cache" / "report.json"
    if not message and cache.is_file():  # preprocess: what its report says about the failed clips
        failed = json.loads(cache.read_text())["failed"]
        message = "; ".join(f"clip {clip} failed: {reason}" for clip, reason in failed.items()) or "no clip failed"
    report(name, code, seconds, message, left(folder, inputs))


# inputs ---------------------------------------------------------------------------------------------------------


def corrupt(src: Path, dst: Path, n_bytes: int, seed: int = 0) -> None:
    data = bytearray(src.read_bytes())
    start = len(data) // 2
    data[start:start + n_bytes] = np.random.default_rng(seed).integers(0, 256, n_bytes, np.uint8).tobytes()
    dst.write_bytes(bytes(data))


def nan_wav(folder: Path) -> None:
    """A 32-bit float WAV of the speech with ten NaN samples (`wave` writes integers only)."""
    from lipgen import media

    data = media.read_audio(SPEECH)
    data[1000:1010] = np.nan
    data = data.astype("<f4").tobytes()
    (folder / "nan.wav").write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " +
                                     struct.pack("<IHHIIHH", 16, 3, 1, 16000, 64000, 4, 32) + b"data" +
                                     struct.pack("<I", len(data)) + data)


def grey16(folder: Path) -> None:
    from PIL import Image

    grey = np.asarray(Image.open(PHOTO).convert("L")).astype(np.uint16) * 257
    Image.fromarray(grey).save(folder / "grey16.png")


def truncated_wav(folder: Path) -> None:
    from lipgen import media

    media.write_wav(folder / "whole.wav", media.read_audio(SPEECH))
    data = (folder / "whole.wav").read_bytes()
    (folder / "cut.wav").write_bytes(data[: len(data) // 2])
    (folder / "whole.wav").unlink()


def exif_photo(folder: Path) -> None:
    from PIL import Image

    upright = np.asarray(Image.open(PHOTO).convert("RGB"))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1))).save(folder / "side.jpg", exif=exif)


def phone_video(folder: Path) -> None:
    import av

    from lipgen import media

    frames, audio = media.read_video(SPEECH), media.read_audio(SPEECH)
    with av.open(str(folder / "phone.mp4"), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[1], frames.shape[2], "yuv420p"
        stream.set_display_rotation(-90)
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(frame, 1)),
                                                                   format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    media.write_wav(folder / "speech.wav", audio)


def big_photo(folder: Path) -> None:
    from PIL import Image

    Image.open(PHOTO).convert("RGB").resize((8000, 8000)).save(folder / "big.jpg", quality=85)


def small_face(folder: Path) -> None:
    from PIL import Image

    Image.open(PHOTO).convert("RGB").resize((96, 96)).save(folder / "small.png")


def cutaway_video(folder: Path, spans=((0, 13), (40, 50))) -> None:
    import cv2

    from lipgen import media

    frames, audio = media.read_video(SPEECH), media.read_audio(SPEECH)
    rng = np.random.default_rng(0)
    for a, b in spans:
        scenery = cv2.resize(rng.integers(0, 256, (6, 8, 3), np.uint8), (frames.shape[2], frames.shape[1]),
                             interpolation=cv2.INTER_CUBIC)
        frames[a:b] = scenery
    media.write_mp4(folder / "cutaway.mp4", frames, audio)


def checkpoint_copy(folder: Path, how: str) -> None:
    """A float32 Glance checkpoint, damaged `how`: empty, truncated, garbage, future format, flipped bit, nan."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from lipgen.checkpoint import load_system, save_model

    system, _ = load_system(ASSETS / "glance.safetensors", strict=False)
    state = {k: v for k, v in system.state_dict().items() if k.split(".")[0] in system.loaded_parts}
    good = save_model(folder / "model.safetensors", "glance", system.config, state)
    data = bytearray(good.read_bytes())
    if how == "empty":
        data = b""
    elif how == "truncated":
        data = data[: len(data) // 2]
    elif how == "garbage":
        data = np.random.default_rng(0).bytes(4096)
    elif how == "format":
        with safe_open(str(good), "pt") as f:
            meta = dict(f.metadata(), format="2")
        save_file(load_file(str(good)), str(good), metadata=meta)
        data = good.read_bytes()
    elif how in ("bitflip", "nan"):
        n = struct.unpack("<Q", data[:8])[0]
        at = 8 + n + json.loads(data[8:8 + n])["generator.audio_encoder.0.0.weight"]["data_offsets"][0]
        value = struct.unpack("<I", data[at:at + 4])[0]
        value = value ^ (1 << 30) if how == "bitflip" else value | 0x7F800000
        data[at:at + 4] = struct.pack("<I", value)
    (folder / "model.safetensors").write_bytes(bytes(data))


def copy(src: Path, name: str):
    return lambda folder: (folder / name).write_bytes(src.read_bytes())


class SmallDisk:
    """A tmpfs of `size` (read-only if asked) mounted for a case; None where mounting is not allowed."""

    def __init__(self, path: Path, size: str, read_only: bool = False):
        self.path, self.size, self.read_only = path, size, read_only

    def __enter__(self):
        self.path.mkdir()
        options = f"size={self.size}" + (",ro" if self.read_only else "")
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(self.path)],
                            capture_output=True).returncode == 0
        return self.path if ok else None

    def __exit__(self, *exc):
        subprocess.run(["umount", str(self.path)], capture_output=True)


# the cases ------------------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        run_cases(root)


def run_cases(root: Path) -> None:
    out = ["-o", "out.mp4"]
    print("case | exit code (seconds) | message | left in the case's folder")
    # 1. hang
    case(root, "1 face video (used to hang at 0% CPU)", ["generate", "--audio", SPEECH, "--face", FACE_VIDEO, *out],
         timeout=300)
    # 2. damaged media
    case(root, "2 damaged H.264 as --face", ["generate", "--audio", SPEECH, "--face", "bad.mp4", *out],
         lambda f: corrupt(FACE_VIDEO, f / "bad.mp4", 2000))
    case(root, "2 damaged H.264 as --audio", ["generate", "--audio", "bad.mp4", *out],
         lambda f: corrupt(GRID / "s1/video/bbaf2n.mp4", f / "bad.mp4", 4000))
    case(root, "2 FLAC with 20 kB corrupted", ["generate", "--audio", "bad.flac", *out],
         lambda f: corrupt(ASSETS / "jfk.flac", f / "bad.flac", 20_000))
    case(root, "2 truncated WAV", ["generate", "--audio", "cut.wav", *out], truncated_wav)

    def damaged_corpus(folder):
        (folder / "grid/s1/video").mkdir(parents=True)
        corrupt(GRID / "s1/video/bbaf2n.mp4", folder / "grid/s1/video/bbaf2n.mp4", 2000)

    case(root, "2 damaged clip in preprocess (reported)", ["preprocess", "--root", "grid", "--cache", "cache",
                                                          "--workers", "1"], damaged_corpus)
    # 3. orientation
    case(root, "3 JPEG with EXIF Orientation 6", ["generate", "--audio", SPEECH, "--face", "side.jpg", *out],
         exif_photo)
    case(root, "3 video with rotation metadata", ["generate", "--audio", "speech.wav", "--face", "phone.mp4",
                                                  *out], phone_video)
    # 4. output = input
    case(root, "4 -o is the --face", ["generate", "--audio", SPEECH, "--face", "me.mp4", "-o", "me.mp4"],
         copy(FACE_VIDEO, "me.mp4"))
    case(root, "4 -o is the --audio (other spelling)", ["generate", "--audio", "me.mp4", "-o", "./x/../me.mp4"],
         lambda f: (copy(SPEECH, "me.mp4")(f), (f / "x").mkdir()))
    case(root, "4 -o is the --drive-video", ["generate", "--model", "davs", "--drive-video", "me.mp4",
                                             "-o", "me.mp4"], copy(SPEECH, "me.mp4"))
    # 5. resume
    resume_cases(root)
    # 6. memory: see benchmarks/memory.py
    # 7. size guard
    case(root, "7 8000x8000 photo (scaled, noted)", ["generate", "--audio", SPEECH, "--face", "big.jpg", *out],
         big_photo)
    # 8. faceless frames
    case(root, "8 video whose first 0.5 s has no face", ["generate", "--audio", SPEECH, "--face", "cutaway.mp4",
                                                          *out], lambda f: cutaway_video(f, [(0, 13)]))
    case(root, "8 video with a cutaway mid-clip", ["generate", "--audio", SPEECH, "--face", "cutaway.mp4", *out],
         lambda f: cutaway_video(f, [(40, 50)]))
    # 9. one error boundary
    for how in ("empty", "truncated", "garbage", "format", "bitflip", "nan"):
        case(root, f"9 --checkpoint {how}", ["generate", "--audio", SPEECH, "--checkpoint", "model.safetensors",
                                             *out], lambda f, how=how: checkpoint_copy(f, how))
    case(root, "9 evaluate --expert empty file", ["evaluate", "glance", "--cache", root / "5_resume" / "cache",
                                                  "--split", "train", "--limit", "1", "--expert", "expert.safetensors",
                                                  "--out", "eval"], lambda f: (f / "expert.safetensors").touch())
    case(root, "9 train --set unknown field", ["train", "--cache", "c", "--out", "run", "--set",
                                               '{"no_such_field": 1}'])
    case(root, "9 train --set not JSON", ["train", "--cache", "c", "--out", "run", "--set", "{oops"])
    case(root, "9 train --steps 0", ["train", "--cache", "c", "--out", "run", "--steps", "0"])
    case(root, "9 generate --model nosuch", ["generate", "--model", "nosuch", *out])
    case(root, "9 --max-seconds 1", ["generate", "--audio", SPEECH, "--max-seconds", "1", *out])
    case(root, "9 missing --face file", ["generate", "--face", "nothing.png", *out])
    case(root, "9 -o under a file (not a folder)", ["generate", "--audio", SPEECH, "-o", "notes.txt/out.mp4"],
         lambda f: (f / "notes.txt").write_text("x"))
    case(root, "9 -o is a folder", ["generate", "--audio", SPEECH, "-o", "."])
    case(root, "9 Ctrl-C (SIGINT) while writing", ["generate", *out], stop=(signal.SIGINT, 0.5))
    with SmallDisk(root / "ro", "1m", read_only=True) as disk:
        if disk is None:
            print("9 read-only output folder | skipped: cannot mount a tmpfs here")
        else:
            code, seconds, message = lipgen(["generate", "--audio", SPEECH, "-o", disk / "out.mp4"], root)
            report("9 read-only output folder", code, seconds, message, left(disk, set()))
    with SmallDisk(root / "full", "16k") as disk:  # well under the ~80 kB mp4 of 3 s of speech
        if disk is None:
            print("9 disk full while writing | skipped: cannot mount a tmpfs here")
        else:
            code, seconds, message = lipgen(["generate", "--audio", SPEECH, "-o", disk / "out.mp4"], root)
            report("9 disk full while writing the mp4", code, seconds, message, left(disk, set()))
    # 10. temporary files
    case(root, "10 SIGTERM while writing", ["generate", *out], stop=(signal.SIGTERM, 0.5))
    case(root, "10 SIGHUP while writing", ["generate", *out], stop=(signal.SIGHUP, 0.5))
    full_disk_preprocess(root)
    # 12. face detection
    case(root, "12 small face (96x96 photo)", ["generate", "--audio", SPEECH, "--face", "small.png", *out],
         small_face)
    # 13. odd but plausible (session 16's new-user tour)
    case(root, "13 float WAV with NaN samples", ["generate", "--audio", "nan.wav", *out], nan_wav)
    case(root, "13 16-bit grey PNG photo", ["generate", "--audio", SPEECH, "--face", "grey16.png", *out], grey16)
    case(root, "13 -o x.gif (not an mp4)", ["generate", "--audio", SPEECH, "-o", "x.gif"])
    case(root, "13 -o new/ (a folder that is not there)", ["generate", "--audio", SPEECH, "-o", "new/"])
    case(root, "13 --fps 0", ["generate", "--audio", SPEECH, "--fps", "0", *out])
    case(root, "13 --model syncnet (a judge)", ["generate", "--audio", SPEECH, "--model", "syncnet", *out])
    case(root, "13 score --json onto the scored video", ["score", "me.mp4", "--json", "me.mp4"],
         copy(SPEECH, "me.mp4"))
    case(root, "13 batch with two jobs writing one output", ["batch", "jobs.csv"],
         lambda folder: (folder / "jobs.csv").write_text(f"audio,face,out\n{SPEECH},{PHOTO},o.mp4\n"
                                                         f"{SPEECH},{PHOTO},o.mp4\n"))
    case(root, "13 batch with an unquoted comma in a name", ["batch", "jobs.csv"],
         lambda folder: (folder / "jobs.csv").write_text(f"audio,face,out\n{SPEECH},{PHOTO},my clip, final.mp4\n"))
    # 14. session 17's red-team tours (the Python API's arrays are in tests/test_generate.py)
    case(root, "14 --expressiveness nan", ["generate", "--audio", SPEECH, "--expressiveness", "nan", *out])
    case(root, "14 --pad nan", ["generate", "--audio", SPEECH, "--pad", "nan", *out])
    case(root, "14 evaluate with a cache that is not there", ["evaluate", "motion", "--cache", "c"])
    case(root, "14 lipread a GRID clip (words only where speech is heard)", ["lipread", "--video", FACE_VIDEO])
    case(root, "14 retrieve with two queries", ["retrieve", "--audio", SPEECH, "--videos", FACE_VIDEO,
                                                "--video", FACE_VIDEO, "--audios", SPEECH])
    case(root, "14 demo on port 99999", ["demo", "--port", "99999"])
    case(root, "14 train --log-every 0", ["train", "--model", "glance", "--preset", "tiny", "--cache", "c",
                                          "--out", "run", "--log-every", "0"])
    case(root, "14 generate --checkpoint a run folder", ["generate", "--audio", SPEECH, "--checkpoint", ".", *out])


def resume_cases(root: Path) -> None:
    """5: train tiny CRGAN and DAVS 3 steps straight, and 2 + resumed to 3; compare every tensor."""
    import torch
    from safetensors.torch import load_file

    folder = root / "5_resume"
    folder.mkdir()
    code, seconds, message = lipgen(["preprocess", "--root", GRID, "--cache", "cache", "--workers", "1"], folder)
    report("5 (preprocess the fixture clips for training)", code, seconds, message, "cache")
    for model in ("crgan", "davs"):
        common = ["train", "--model", model, "--preset", "tiny", "--cache", "cache", "--batch-size", "2",
                  "--workers", "0", "--ckpt-every", "2", "--val-every", "1000", "--sample-every", "1000"]
        start = time.monotonic()
        codes = [lipgen([*common, "--out", f"{model}_a", "--steps", "3"], folder)[0],
                 lipgen([*common, "--out", f"{model}_b", "--steps", "2"], folder)[0],
                 lipgen([*common, "--out", f"{model}_b", "--steps", "3", "--resume"], folder)[0]]
        if any(codes):
            report(f"5 --resume {model}", codes, time.monotonic() - start, "a training run failed", "-")
            continue
        a = load_file(str(folder / f"{model}_a" / "model.safetensors"))
        b = load_file(str(folder / f"{model}_b" / "model.safetensors"))
        same = sum(torch.equal(a[k], b[k]) for k in a)
        report(f"5 --resume {model} (stop at 2, resume to 3)", 0, time.monotonic() - start,
               f"{same}/{len(a)} tensors equal to the uninterrupted run", "runs")


def full_disk_preprocess(root: Path) -> None:
    """10: preprocessing into a cache on a full disk ends the run; the clip is not marked failed."""
    with SmallDisk(root / "fullcache", "200k") as disk:
        if disk is None:
            print("10 preprocess on a full disk | skipped: cannot mount a tmpfs here")
            return
        code, seconds, message = lipgen(["preprocess", "--root", GRID / "s1", "--cache", disk, "--corpus",
                                         "folder", "--workers", "1", "--limit", "1"], root)
        failed = list((disk / "_failed").glob("*.json")) if (disk / "_failed").exists() else []
        report("10 preprocess on a full disk", code, seconds, message,
               f"{left(disk, set())}; clips marked failed: {len(failed)}")


if __name__ == "__main__":
    main()
