"""How well forced alignment (lipgen.data.align) times words, against GRID's own .align timings.

    python scripts/alignment_quality.py --root ../shared/data/grid --clips 200 | tee docs/eval/alignment_quality.txt

For each clip with an .align file: align its transcript to its audio, then compare every word's start
and end with the given ones (in 25 fps video frames), and check that the aligned word's centre frame
lies inside the given word (what WordDataset's word windows rely on).
"""

import argparse

import numpy as np
from tqdm import tqdm

from lipgen import media
from lipgen.data.align import align_words
from lipgen.data.corpora import SILENCE, grid
from lipgen.errors import LipgenError

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--root", required=True, help="GRID folder (speakers with align/ folders)")
parser.add_argument("--clips", type=int, default=200, help="clips to check, evenly spread (default 200)")
args = parser.parse_args()

clips = [u for u in grid(args.root) if u.words and all(w.start is not None for w in u.words)]
clips = [clips[i] for i in np.linspace(0, len(clips) - 1, min(args.clips, len(clips))).astype(int)]
errors, centred, failed = [], [], []
for utt in tqdm(clips, desc="align", unit="clip"):
    given = [w for w in utt.words if w.word not in SILENCE]
    try:
        aligned = [w for w in align_words(media.read_audio(utt.path), [w.word for w in given]) if w.word != "sil"]
    except LipgenError as e:
        failed.append(f"{utt.id}: {e}")
        continue
    for g, a in zip(given, aligned):
        errors += [abs(a.start - g.start), abs(a.end - g.end)]
        centred.append(g.start <= (a.start + a.end) / 2 < g.end)

e = np.array(errors)
print(f"forced alignment vs GRID .align: {len(clips) - len(failed)} of {len(clips)} clips aligned, "
      f"{len(centred)} words, {len(e)} boundaries")
print(f"boundary error (video frames of 40 ms): median {np.median(e):.2f}, mean {e.mean():.2f}, "
      f"90th percentile {np.percentile(e, 90):.2f}")
print(f"boundaries within 1 frame: {np.mean(e <= 1):.1%}, within 2 frames: {np.mean(e <= 2):.1%}")
print(f"aligned word centre inside the given word: {np.mean(centred):.1%}")
for line in failed:
    print("failed:", line)
