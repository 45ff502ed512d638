"""The portraits' test read by a second landmark model: MediaPipe's face mesh instead of dlib's 68 points.

    pip install -e ".[mesh]"
    python scripts/mesh_reading.py [--work cache/unseen/portraits]

Of a portrait's videos of one kind, only the newest is read (the judge's work folder keeps those of earlier
models and renderers beside it).

`lipgen evaluate-portraits` reads every video with dlib, whose inner-lip points on 256 px faces read closed lips
apart (under a moustache, by up to 0.17 of the eye distance) and a mouth open wide shut (on the teeth). This reads
the same videos of its work folder again with the face mesh (lipgen.lips.mesh_points, in the box of the judge's own
dlib points of that frame, so that the same face is read): lipgen.lips.mesh_opening, the inner-lip gap over the
distance between the eyes' corner midpoints, its mean in speech and in silence (the bundled speech's word
timings), and their ratio. Prints, per kind of video (static, and each model's), the mean ratio and the share of
portraits at 2x or more, and writes them per portrait to --csv.
"""

import argparse
import csv
import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lipgen import media
from lipgen.evaluation.portraits import DEFAULT_SPEECH, prepare_speech
from lipgen.lips import mesh_opening, mesh_points, reader


def mesh_openings(frames: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The mesh's inner-lip gap over its eye distance per frame (T,), NaN where it finds no face."""
    out = np.full(len(frames), np.nan)
    for t, (frame, points) in enumerate(zip(frames, landmarks)):
        mesh = mesh_points(frame, points)
        if mesh is not None:
            out[t] = mesh_opening(mesh)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="cache/unseen/portraits", help="evaluate-portraits work folder")
    parser.add_argument("--kinds", nargs="+", help="only these kinds of video (e.g. static motion ceiling-model)")
    parser.add_argument("--csv", default="docs/eval/unseen/portraits_mesh/mesh_reading.csv")
    args = parser.parse_args()
    if reader() != "dlib+mesh":
        raise SystemExit("MediaPipe is not installed: pip install -e \".[mesh]\"")
    _, silent = prepare_speech(DEFAULT_SPEECH)
    videos = sorted(Path(args.work).glob("*/*.upright10-landmarks.npy"))
    if not videos:
        raise SystemExit(f"{args.work}: no judged portrait videos; run `lipgen evaluate-portraits` first")
    kinds = {m: re.sub(r"-[0-9a-f]{12}$", "", m.name.replace(".upright10-landmarks.npy", "")) for m in videos}
    videos = [m for m in videos if args.kinds is None or kinds[m] in args.kinds]  # static-<key> -> static
    newest = {}  # a portrait's videos of one kind made again (another model or renderer) leave the older behind
    for m in videos:
        key = (m.parent, kinds[m])
        if key not in newest or m.stat().st_mtime > newest[key].stat().st_mtime:
            newest[key] = m
    videos = sorted(newest.values())
    rows = []
    for marks in tqdm(videos, desc="mesh reading", unit="video"):
        video, kind = marks.with_name(marks.name.replace(".upright10-landmarks.npy", ".mp4")), kinds[marks]
        frames, landmarks = media.read_video(video), np.load(marks)
        gap = mesh_openings(frames, landmarks)[:len(silent)]
        quiet = silent[:len(gap)]
        speech, pause = np.nanmean(gap[~quiet]), np.nanmean(gap[quiet])
        rows.append({"portrait": marks.parent.name, "video": kind, "opening_speech": speech,
                     "opening_silence": pause, "opening_ratio": speech / pause if pause > 0 else float("nan")})
    with open(args.csv, "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for kind in sorted({r["video"] for r in rows}):
        ratios = np.array([r["opening_ratio"] for r in rows if r["video"] == kind])
        print(f"{kind}: {len(ratios)} portraits, speech / silence {np.nanmean(ratios[np.isfinite(ratios)]):.2f}, "
              f"share at 2x {100 * np.mean(ratios >= 2):.0f}%")


if __name__ == "__main__":
    main()
