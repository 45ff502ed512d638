"""The demo page's live mode on this machine: how soon frames are shown, without the browser.

    python benchmarks/live_latency.py [--seconds 30] [--runs 2]

lipgen.demo.LiveRun (what the page's Live button runs: lipgen stream's run of the speech at real-time pace,
frames handed to the page at most LIVE_FPS a second) with the bundled speech (repeated to --seconds) onto the
bundled photo. The first run loads the model and tracks the face; later ones reuse them, as the page does.
Prints per run:
- first frame shown: seconds from the start of the run (the model's loading included) to the first frame
  handed out;
- latency: from the arrival of a frame's last audio sample to the frame handed out, median and 95th
  percentile, and the same beyond the model's stated look-ahead (as benchmarks/stream_latency.py does);
- shown: frames handed out per second between the first and the last.
The browser adds its fetch and paint (tests/test_demo.py's live test prints what it saw).
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lipgen import media
from lipgen.demo import LIVE_FPS, LiveRun
from lipgen.generate import SAMPLE_AUDIO, SAMPLE_FACE
from lipgen.generate import Generator


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of speech (default 30)")
    parser.add_argument("--runs", type=int, default=2, help="runs, the first one cold (default 2)")
    args = parser.parse_args()
    audio = media.read_audio(SAMPLE_AUDIO)
    speech = np.tile(audio, int(np.ceil(args.seconds * media.SAMPLE_RATE / audio.size)))
    speech = speech[: int(args.seconds * media.SAMPLE_RATE)]
    print(f"torch threads {torch.get_num_threads()}; {speech.size / media.SAMPLE_RATE:.0f} s of speech onto "
          f"{SAMPLE_FACE.name} at real-time pace, shown at up to {LIVE_FPS} fps")
    start = time.perf_counter()
    generator = Generator("motion")
    load = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.runs):
            run = LiveRun(generator, speech, SAMPLE_FACE, Path(tmp) / f"live{k}.mp4")
            times = [time.perf_counter() for _ in run.frames()]
            r = run.result
            ms = r["shown_latency_s"] * 1000
            ahead = r["lookahead_frames"] * 1000 / media.VIDEO_FPS
            print(f"run {k + 1} ({'cold: model loaded, face tracked' if k == 0 else 'warm: both reused'}): "
                  f"first frame shown {r['first_shown_s'] + (load if k == 0 else 0):.2f} s after the start; "
                  f"latency median {np.median(ms):.0f} ms, 95th percentile {np.percentile(ms, 95):.0f} ms "
                  f"(beyond the {ahead:.0f} ms look-ahead: {np.median(ms) - ahead:.0f} / "
                  f"{np.percentile(ms, 95) - ahead:.0f} ms); shown {(len(times) - 1) / (times[-1] - times[0]):.1f} "
                  f"fps ({len(times)} of {r['frames']} frames)")


if __name__ == "__main__":
    main()
