"""Is a sync expert a judge? Real clips vs the same clips with another clip's audio, the offset it finds on
real clips, and on clips whose audio is shifted by 5 frames; on in-the-wild videos and on GRID held-out
utterances, for the landmark expert (lmsync) and, on GRID, the pixel expert (syncnet) beside it.

    python scripts/sync_expert_quality.py --videos ../shared/data/unseen/videos --cache cache/grid \
        --out docs/eval/sync_expert_quality.md

Videos: the first --seconds of each clip (downscaled to <= 720 px for tracking), face 0; landmarks are
kept in --work so a re-run is quick. GRID: the `test` split of a preprocessing cache (landmarks and audio
as preprocessed). The shift check delays the audio by SHIFT frames (audio later than the video), which the
expert must find as offset +SHIFT.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from lipgen import face, media
from lipgen.evaluation import sync

SHIFT = 5
ANALYSIS_SIDE = 720


def video_clip(path: Path, seconds: float, work: Path) -> dict | None:
    cached = work / f"{path.stem}.npz"
    if cached.is_file():
        d = np.load(cached)
        return {"landmarks": d["landmarks"], "audio": d["audio"]}
    frames = []
    for frame in media.iter_video(path):  # read to the end: a half-read decoder must not be dropped
        if len(frames) < seconds * media.VIDEO_FPS:
            s = ANALYSIS_SIDE / max(frame.shape[:2])
            frames.append(cv2.resize(frame, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else frame)
    try:
        landmarks, _ = face.track_landmarks(np.stack(frames), face_index=0, where=str(path))
    except Exception as e:  # noqa: BLE001 - reported per clip, the run goes on
        print(f"{path.name}: skipped ({e})")
        return None
    audio = media.fit_audio(media.read_audio(path), len(frames))
    work.mkdir(parents=True, exist_ok=True)
    np.savez(cached, landmarks=landmarks, audio=audio)
    return {"landmarks": landmarks, "audio": audio}


def grid_clips(cache: Path, limit: int) -> dict[str, dict]:
    clips = {}
    for meta_path in sorted(cache.glob("*/meta.json")):
        meta = json.loads(meta_path.read_text())
        if meta.get("split") != "test":
            continue
        audio = media.read_audio(meta["path"])[meta.get("trimmed_start_frames", 0) * media.SAMPLES_PER_FRAME:]
        clips[meta["id"]] = {"landmarks": np.load(meta_path.parent / "landmarks.npy"),
                             "audio": media.fit_audio(audio, meta["n_frames"]),
                             "mouth": np.load(meta_path.parent / "mouth.npy")}
        if len(clips) >= limit:
            break
    return clips


def delayed(audio: np.ndarray, frames: int) -> np.ndarray:
    """The audio `frames` later (silence in front), same length."""
    n = frames * media.SAMPLES_PER_FRAME
    return np.r_[np.zeros(n, np.float32), audio[:-n]]


def judge(clips: dict[str, dict], score) -> dict:
    """score(clip, audio) -> sync_scores dict. Returns per-clip rows and the summary."""
    names = list(clips)
    rows = []
    for i, name in enumerate(names):
        c = clips[name]
        other = clips[names[(i + 1) % len(names)]]["audio"]
        other = media.fit_audio(np.resize(other, max(other.size, c["audio"].size)), len(c["landmarks"]))
        real, wrong, shifted = score(c, c["audio"]), score(c, other), score(c, delayed(c["audio"], SHIFT))
        rows.append({"clip": name, "real_conf": real["lse_c"], "mismatched_conf": wrong["lse_c"],
                     "real_offset": real["offset"], "shifted_offset": shifted["offset"]})
    n = len(rows)
    summary = {"clips": n,
               "real_conf": float(np.mean([r["real_conf"] for r in rows])),
               "mismatched_conf": float(np.mean([r["mismatched_conf"] for r in rows])),
               "real_above_mismatched": sum(r["real_conf"] > r["mismatched_conf"] for r in rows) / n,
               "offset_within_1": sum(abs(r["real_offset"]) <= 1 for r in rows) / n,
               "shift_found_within_1": sum(abs(r["shifted_offset"] - SHIFT) <= 1 for r in rows) / n}
    return {"rows": rows, "summary": summary}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", help="folder of talking-face videos with sound (validation)")
    ap.add_argument("--cache", help="GRID preprocessing cache: its test split")
    ap.add_argument("--expert", help="landmark expert checkpoint (default: the shipped one)")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--grid-limit", type=int, default=100)
    ap.add_argument("--work", default="runs/sync_quality", help="landmark cache for the videos")
    ap.add_argument("--out", default="docs/eval/sync_expert_quality.md")
    args = ap.parse_args()
    lm = sync.load_landmark_expert(args.expert)
    landmark_score = lambda c, audio: sync.landmark_sync_scores(lm, c["landmarks"], audio)  # noqa: E731
    results = {}
    if args.videos:
        clips = {}
        for path in sorted(Path(args.videos).glob("*.mp4")):
            c = video_clip(path, args.seconds, Path(args.work))
            if c is not None and len(c["landmarks"]) >= sync.MAX_OFFSET + sync.SYNC_FRAMES:
                clips[path.stem] = c
        results["in the wild, landmark expert"] = judge(clips, landmark_score)
    if args.cache:
        clips = grid_clips(Path(args.cache), args.grid_limit)
        results["GRID test, landmark expert"] = judge(clips, landmark_score)
        px = sync.load_expert()
        pixel_score = lambda c, audio: sync.sync_scores(  # noqa: E731
            px, c["mouth"], media.log_mel(audio, len(c["mouth"])))
        results["GRID test, pixel expert (syncnet)"] = judge(clips, pixel_score)
    lines = ["# Sync experts as judges", "", f"Made by `python scripts/sync_expert_quality.py` "
             f"(videos: first {args.seconds:.0f} s; shift check: audio delayed {SHIFT} frames).", "",
             "| set | clips | conf. real | conf. mismatched | real > mismatched | real offset within +-1 "
             f"| +{SHIFT} shift found within +-1 |", "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        s = r["summary"]
        lines.append(f"| {name} | {s['clips']} | {s['real_conf']:.3f} | {s['mismatched_conf']:.3f} | "
                     f"{s['real_above_mismatched']:.0%} | {s['offset_within_1']:.0%} | {s['shift_found_within_1']:.0%} |")
    for name, r in results.items():
        if name.startswith("in the wild"):
            lines += ["", f"## {name}, per clip", "", "| clip | conf. real | conf. mismatched | real offset | "
                      "shifted offset |", "|---|---|---|---|---|"]
            lines += [f"| {x['clip']} | {x['real_conf']:.3f} | {x['mismatched_conf']:.3f} | {x['real_offset']:+d} | "
                      f"{x['shifted_offset']:+d} |" for x in r["rows"]]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:6 + len(results)]))


if __name__ == "__main__":
    main()
