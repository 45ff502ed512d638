"""Make tests/fixtures/lrw: an LRW-layout corpus (<WORD>/{train,test}/<WORD>_0000N.mp4 + .txt) cut from GRID.

    python scripts/make_lrw_fixture.py ../shared/data/grid tests/fixtures/lrw

Each clip is LRW-shaped: 29 frames (1.16 s) centred on one word of a GRID s1 sentence (its neighbours heard
at the edges, as in LRW), with a .txt giving the word's duration. GRID: Cooke et al. 2006, CC BY 4.0.
"""

import argparse
from pathlib import Path

import numpy as np

from lipgen import media
from lipgen.data.corpora import LRW_CLIP_FRAMES, read_align

WORDS = ("blue", "green", "white")
SPLITS = ("train", "train", "train", "test")  # clips per word, in order
CRF = 30  # small files; dlib still finds the face

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("grid", type=Path, help="GRID folder (with s1/video and s1/align)")
parser.add_argument("out", type=Path, help="folder to write")
args = parser.parse_args()

for word in WORDS:
    counts = {}
    for align in sorted((args.grid / "s1" / "align").glob("*.align")):
        if len(counts.get("done", [])) == len(SPLITS):
            break
        spoken = [w for w in read_align(align) if w.word == word]
        video = args.grid / "s1" / "video" / f"{align.stem}.mp4"
        if not spoken or not video.is_file():
            continue
        w = spoken[0]
        start = int(round((w.start + w.end) / 2 - LRW_CLIP_FRAMES / 2))
        frames = media.read_video(video)
        if start < 0 or start + LRW_CLIP_FRAMES > len(frames):
            continue
        audio = media.read_audio(video)
        split = SPLITS[len(counts.setdefault("done", []))]
        counts["done"].append(align.stem)
        name = f"{word.upper()}_{len(counts['done']):05d}"
        path = args.out / word.upper() / split / f"{name}.mp4"
        clip_audio = audio[start * media.SAMPLES_PER_FRAME:(start + LRW_CLIP_FRAMES) * media.SAMPLES_PER_FRAME]
        with media.Mp4Writer(path, audio=np.ascontiguousarray(clip_audio), crf=CRF) as writer:
            for frame in frames[start:start + LRW_CLIP_FRAMES]:
                writer.write(frame)
        seconds = (w.end - w.start) / media.VIDEO_FPS
        path.with_suffix(".txt").write_text(f"Text: {word.upper()}\nSource: GRID s1/{align.stem}\n"
                                            f"Duration: {seconds:.2f} seconds\n")
        print(path, align.stem, f"{seconds:.2f} s")
