"""Preprocessing speed: lipgen's pipeline vs the naive one, on the same clips, in one run.

lipgen: detect the face once, then follow it with the landmark predictor (re-detecting only every
REDETECT_EVERY frames or when the track jumps). Naive: dlib's HOG detector on every frame, upsampled
once (`detector(img, 1)`, the usual call in talking-face repos), then landmarks. Both decode, crop,
compute log-mel and write the same arrays, with the same number of worker processes.

    python benchmarks/preprocess_speed.py --root ../shared/data/grid/s1 --clips 60 --full
Prints clips/s and real-time factor (seconds of video per second of processing) for each, and the
ratio; --full also times lipgen on every clip under --root (the 10-minute target is for GRID s1).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from lipgen import face, media
from lipgen.data.corpora import load_corpus
from lipgen.data.preprocess import preprocess


def naive_clip(args: tuple[str, str]) -> int:
    """The per-frame-detection pipeline on one clip; writes the same arrays as lipgen. Returns frames."""
    import cv2

    cv2.setNumThreads(1)
    path, out = args
    frames = media.read_video(path)
    audio = media.read_audio(path)
    landmarks = []
    for frame in frames:
        box = face.detect_faces(frame, upsample=1)
        landmarks.append(face.landmarks_in_box(frame, box[0]) if len(box) else landmarks[-1])
    landmarks = np.stack(landmarks)
    face_m, mouth_m = face.crop_matrices(landmarks)
    target = Path(out) / Path(path).stem
    target.mkdir(parents=True, exist_ok=True)
    np.save(target / "mouth.npy", face.crop(frames, mouth_m, face.MOUTH_SIZE))
    np.save(target / "face.npy", face.crop(frames, face_m, face.FACE_SIZE))
    np.save(target / "mel.npy", media.log_mel(audio, len(frames)))
    np.save(target / "landmarks.npy", landmarks)
    return len(frames)


def run_naive(paths: list[str], workers: int) -> tuple[float, int]:
    out = tempfile.mkdtemp(prefix="naive-")
    start = time.perf_counter()
    with get_context("spawn").Pool(workers) as pool:
        frames = sum(pool.map(naive_clip, [(p, out) for p in paths], chunksize=1))
    seconds = time.perf_counter() - start
    shutil.rmtree(out)
    return seconds, frames


def run_lipgen(root: str, limit: int | None, workers: int) -> tuple[float, int, int]:
    cache = tempfile.mkdtemp(prefix="lipgen-")
    start = time.perf_counter()
    report = preprocess(root, cache, workers=workers, limit=limit, progress=False)
    seconds = time.perf_counter() - start
    frames = sum(int(np.load(Path(cache) / d / "mel.npy", mmap_mode="r").shape[0]) // media.MELS_PER_FRAME
                 for d in os.listdir(cache) if (Path(cache) / d / "mel.npy").is_file())
    shutil.rmtree(cache)
    return seconds, frames, report["this_run"]["ok"]


def line(name: str, clips: int, seconds: float, frames: int) -> str:
    return (f"{name:<8} {clips:5d} clips {seconds:8.1f} s  {clips / seconds:6.2f} clips/s  "
            f"real-time factor {frames / media.VIDEO_FPS / seconds:6.1f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="../shared/data/grid/s1", help="GRID speaker folder (or any GRID root)")
    parser.add_argument("--clips", type=int, default=60, help="clips for the head-to-head comparison")
    parser.add_argument("--workers", type=int, default=2, help="worker processes for both pipelines")
    parser.add_argument("--full", action="store_true", help="also time lipgen on every clip under --root")
    args = parser.parse_args()

    paths = [u.path for u in load_corpus("grid", args.root)][: args.clips]
    print(f"{os.cpu_count()} CPU cores, {args.workers} workers, {len(paths)} clips from {args.root}")
    t_lip, f_lip, n_ok = run_lipgen(args.root, args.clips, args.workers)
    t_naive, f_naive = run_naive(paths, args.workers)
    print(line("lipgen", n_ok, t_lip, f_lip))
    print(line("naive", len(paths), t_naive, f_naive))
    print(f"speed-up: {(f_lip / t_lip) / (f_naive / t_naive):.1f}x (frames per second, same clips)")
    if args.full:
        t_all, f_all, n_all = run_lipgen(args.root, None, args.workers)
        print(line("full", n_all, t_all, f_all))
        print(f"whole corpus: {t_all / 60:.1f} min for {f_all / media.VIDEO_FPS / 60:.1f} min of video")


if __name__ == "__main__":
    main()
