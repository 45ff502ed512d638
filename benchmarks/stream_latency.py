"""Real-time streaming on this machine: latency per frame, sustained frame rate, and drift.

    python benchmarks/stream_latency.py [--seconds 300] [--lookahead N]

Speech (the bundled speech and GRID clips, repeated to --seconds) is handed to `lipgen.stream.stream` in 20 ms
chunks at real-time pace, onto the bundled 512x512 photo. Prints:
- latency: from the arrival of a frame's last audio sample to the frame leaving (written to the mp4), median
  and 95th percentile, and the same beyond the model's stated look-ahead;
- sustained fps: frames out per second between the first and the last frame (real time: 25);
- drift at the end: frames made against the audio received, the mp4's video length against its audio (AAC
  adds up to a frame of padding), and the last frame's latency against the median;
- capacity: frames per second with the same speech handed over as fast as it is used (first 30 s).
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lipgen import media
from lipgen.evaluation.portraits import DEFAULT_SPEECH
from lipgen.generate import SAMPLE_AUDIO, SAMPLE_FACE
from lipgen.stream import file_chunks, stream


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300.0, help="seconds of speech (default 300)")
    parser.add_argument("--lookahead", type=int, help="frames of look-ahead (default: the model's whole context)")
    args = parser.parse_args()
    pieces = [media.read_audio(p) for p in (SAMPLE_AUDIO, *DEFAULT_SPEECH)]
    speech = np.concatenate(pieces * int(np.ceil(args.seconds * media.SAMPLE_RATE / sum(p.size for p in pieces))))
    speech = speech[: int(args.seconds * media.SAMPLE_RATE)]
    print(f"torch threads {torch.get_num_threads()}; {speech.size / media.SAMPLE_RATE:.0f} s of speech onto "
          f"{SAMPLE_FACE.name}, 20 ms chunks at real-time pace")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "live.mp4"
        r = stream(file_chunks(speech), SAMPLE_FACE, out, lookahead=args.lookahead, progress=False)
        latency = r["latency_s"] * 1000
        ahead = r["lookahead_frames"] * 1000 / media.VIDEO_FPS
        video_s = len(media.read_video(out)) / media.VIDEO_FPS
        audio_s = media.read_audio(out).size / media.SAMPLE_RATE
        print(f"frames: {r['frames']} of {r['expected_frames']} expected")
        print(f"look-ahead: {r['lookahead_frames']} frames = {ahead:.0f} ms")
        print(f"latency: median {np.median(latency):.0f} ms, 95th percentile {np.percentile(latency, 95):.0f} ms; "
              f"beyond the look-ahead: median {np.median(latency) - ahead:.0f} ms, "
              f"95th percentile {np.percentile(latency, 95) - ahead:.0f} ms")
        print(f"sustained: {r['frames'] / r['span_s']:.2f} fps over {r['span_s']:.1f} s (first to last frame out)")
        print(f"drift at the end: {r['frames'] - r['expected_frames']} frames made vs the audio received; "
              f"in the mp4: video {video_s:.3f} s vs audio {audio_s:.3f} s in the mp4 "
              f"({abs(video_s - audio_s) * media.VIDEO_FPS:.2f} frames); last frame's latency {latency[-1]:.0f} ms "
              f"vs median {np.median(latency):.0f} ms")
        n = min(speech.size, 30 * media.SAMPLE_RATE)
        start = time.perf_counter()
        fast = stream(file_chunks(speech[:n], realtime=False), SAMPLE_FACE, out, lookahead=args.lookahead,
                      progress=False)
        print(f"capacity: {fast['frames'] / (time.perf_counter() - start):.1f} fps with the speech handed over at "
              f"once ({n / media.SAMPLE_RATE:.0f} s, face preparation included)")


if __name__ == "__main__":
    main()
