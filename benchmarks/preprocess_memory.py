"""Peak memory of `lipgen preprocess` against the length of a 1080p clip: it should stay flat.

    python benchmarks/preprocess_memory.py [--minutes 1 5 20] [--keep DIR]

Each length gets one 1920x1080, 25 fps H.264 + AAC talking-face clip, made from the repo's GRID fixture
clips (six sentences, one after another, looped): each frame upscaled 3.75x to 1350x1080 and centred on
a grey canvas, their sound tiled under it. Then `lipgen preprocess --corpus folder --workers 1` caches it
in a fresh process (one worker: the worker is the process measured), and that process's peak resident
memory (ru_maxrss) is printed with its wall time and whether the clip was cached. --keep keeps the
made clips in DIR (and reuses them on the next run); by default they go with a temporary folder.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np

from lipgen import media
from memory import FIXTURES, peak_rss

WIDTH, HEIGHT, SCALE = 1920, 1080, 3.75  # 288 px GRID frames -> 1080 px


def fixture_clips() -> list[Path]:
    return sorted((FIXTURES / "grid" / "s1" / "video").glob("*.mp4")) + sorted(
        (FIXTURES / "heldout" / "s1" / "video").glob("*.mp4"))


def make_clip(path: Path, minutes: float) -> Path:
    """Write a minutes-long 1080p clip (see the module docstring), a frame at a time."""
    clips = fixture_clips()
    frames = [media.read_video(c) for c in clips]  # (T, 288, 360, 3) each, ~23 MB in all
    sound = np.concatenate([media.fit_audio(media.read_audio(c), len(f)) for c, f in zip(clips, frames)])
    frames = np.concatenate(frames)
    n = int(minutes * 60 * media.VIDEO_FPS)
    canvas = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    h, w = int(frames.shape[1] * SCALE), int(frames.shape[2] * SCALE)
    top, left = (HEIGHT - h) // 2, (WIDTH - w) // 2
    tmp = path.with_name(f".{path.name}")
    with av.open(str(tmp), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=media.VIDEO_FPS, options={"crf": "23", "preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        audio = out.add_stream("aac", rate=media.SAMPLE_RATE, layout="mono")
        for t in range(n):
            canvas[top:top + h, left:left + w] = cv2.resize(frames[t % len(frames)], (w, h),
                                                            interpolation=cv2.INTER_LINEAR)
            for packet in video.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                out.mux(packet)
            if t % media.VIDEO_FPS == media.VIDEO_FPS - 1 or t == n - 1:  # a second of sound at a time
                first = (t // media.VIDEO_FPS) * media.VIDEO_FPS
                idx = (np.arange(first * media.SAMPLES_PER_FRAME, (t + 1) * media.SAMPLES_PER_FRAME)
                       % sound.size)
                block = av.AudioFrame.from_ndarray(sound[idx][None].astype(np.float32), format="flt",
                                                   layout="mono")
                block.sample_rate, block.pts = media.SAMPLE_RATE, first * media.SAMPLES_PER_FRAME
                for packet in audio.encode(block):
                    out.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode():
                out.mux(packet)
    tmp.replace(path)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 5, 20], help="clip lengths (default 1 5 20)")
    parser.add_argument("--keep", help="folder to keep (and reuse) the made 1080p clips in")
    args = parser.parse_args()
    print(f"lipgen preprocess --workers 1 on one {WIDTH}x{HEIGHT} 25 fps clip; peak RSS of the whole process")
    print(f"{'minutes':>8} {'frames':>7} {'peak RSS MB':>12} {'wall s':>8} {'cached':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        clips = Path(args.keep or tmp)
        for minutes in args.minutes:
            root = clips / f"{minutes:g}min"
            clip = root / "speaker" / "talk.mp4"
            if not clip.is_file():
                clip.parent.mkdir(parents=True, exist_ok=True)
                make_clip(clip, minutes)
            cache = Path(tmp) / f"cache_{minutes:g}"
            cmd = [sys.executable, "-m", "lipgen", "preprocess", "--corpus", "folder", "--root", str(root),
                   "--cache", str(cache), "--workers", "1", "--max-seconds", str(minutes * 60 + 60)]
            mb, seconds, code, last = peak_rss(cmd)
            metas = list(cache.glob("*/meta.json"))
            frames = json.loads(metas[0].read_text())["n_frames"] if metas else 0
            print(f"{minutes:>8g} {frames:>7} {mb:>12.0f} {seconds:>8.0f} {'yes' if metas else 'no':>7}"
                  + (f"  {last}" if code or not metas else ""), flush=True)


if __name__ == "__main__":
    main()
