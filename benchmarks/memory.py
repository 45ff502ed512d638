"""Peak memory of `lipgen generate` against the length of the speech: it should stay flat.

    python benchmarks/memory.py [--minutes 1 10 60] [--model glance]

Speech-like audio of each length (plus half a video frame, as real recordings are) is made by tiling
the sound of the repo's GRID fixture clips (six sentences, ~18 s, one after another) and written as a
16 kHz WAV; each length is then generated onto the bundled 512x512 face photo by the CLI in a fresh
process (--max-seconds set to fit), and that process's peak resident memory (ru_maxrss) is printed
with its wall time.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lipgen import media
from lipgen.generate import DEFAULT_MODEL, SAMPLE_FACE

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def speech(seconds: float) -> np.ndarray:
    """(N,) float32 at SAMPLE_RATE: the fixture clips' speech, repeated to `seconds`."""
    clips = sorted((FIXTURES / "grid" / "s1" / "video").glob("*.mp4")) + sorted(
        (FIXTURES / "heldout" / "s1" / "video").glob("*.mp4"))
    one = np.concatenate([media.read_audio(c) for c in clips])
    n = int(seconds * media.SAMPLE_RATE)
    return np.resize(one, n)  # repeats `one` to length n


def peak_rss(cmd: list[str]) -> tuple[float, float, int, str]:
    """Run cmd; return (its peak RSS in MB, wall seconds, exit code, last line of its stderr)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        last = (err.read().replace("\r", "\n").strip().splitlines() or [""])[-1]
    return usage.ru_maxrss / 1024, time.perf_counter() - start, proc.returncode, last


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60], help="speech lengths (default 1 10 60)")
    parser.add_argument("--model", help="model (default: lipgen generate's default)")
    args = parser.parse_args()
    print(f"lipgen generate --model {args.model or DEFAULT_MODEL} onto {SAMPLE_FACE.name}; peak RSS of the whole process")
    print(f"{'minutes':>8} {'peak RSS MB':>12} {'wall s':>8} {'exit':>5}")
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            # half a video frame over: real speech is rarely a whole number of frames long (generate then pads)
            wav = media.write_wav(Path(tmp) / f"speech_{minutes:g}min.wav", speech(minutes * 60 + 0.02))
            cmd = [sys.executable, "-m", "lipgen", "generate", "--audio", str(wav), "--face", str(SAMPLE_FACE),
                   "-o", str(Path(tmp) / "out.mp4"), "--max-seconds", str(minutes * 60 + 60)] + (
                ["--model", args.model] if args.model else [])
            mb, seconds, code, last = peak_rss(cmd)
            print(f"{minutes:>8g} {mb:>12.0f} {seconds:>8.0f} {code:>5}" + (f"  {last}" if code else ""), flush=True)
            wav.unlink()


if __name__ == "__main__":
    main()
