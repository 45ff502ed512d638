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
    """Landmarks, 64 px mouth crops (for the pixel expert) and audio of the first `seconds` of a clip, face 0."""
    cached = work / f"{path.stem}.npz"
    if cached.is_file():
        d = np.load(cached)
        if "mouth" in d:
            return {"landmarks": d["landmarks"], "audio": d["audio"], "mouth": d["mouth"]}
    frames = []
    for frame in media.iter_video(path):  # read to the end: a half-read decoder must not be dropped
        if len(frames) < seconds * media.VIDEO_FPS:
            s = ANALYSIS_SIDE / max(frame.shape[:2])
            frames.append(cv2.resize(frame, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else frame)
    frames = np.stack(frames)
    try:
        landmarks = np.load(cached)["landmarks"] if cached.is_file() else \
            face.track_landmarks(frames, face_index=0, where=str(path))[0]
    except Exception as e:  # noqa: BLE001 - reported per clip, the run goes on
        print(f"{path.name}: skipped ({e})")
        return None
    mouth = face.crop(frames, face.crop_matrices(landmarks)[1], face.MOUTH_SIZE)
    audio = media.fit_audio(media.read_audio(path), len(frames))
    work.mkdir(parents=True, exist_ok=True)
    np.savez(cached, landmarks=landmarks, audio=audio, mouth=mouth)
    return {"landmarks": landmarks, "audio": audio, "mouth": mouth}


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


def judge(clips: dict[str, dict], score, max_mismatched: int = 16) -> dict:
    """score(clip, audio) -> sync_scores dict. Each clip is scored with its own audio, with (up to
    max_mismatched) other clips' audio, and with its own audio delayed. Returns per-clip rows and the summary."""
    names = list(clips)
    rows = []
    for name in names:
        c = clips[name]
        wrong = []  # the clip's face with every other clip's audio
        for other_name in names[:max_mismatched + 1]:
            if other_name != name and len(wrong) < max_mismatched:
                other = clips[other_name]["audio"]
                other = media.fit_audio(np.resize(other, max(other.size, c["audio"].size)), len(c["landmarks"]))
                wrong.append(score(c, other)["lse_c"])
        real, shifted = score(c, c["audio"]), score(c, delayed(c["audio"], SHIFT))
        rows.append({"clip": name, "real_conf": real["lse_c"], "mismatched_conf": float(np.mean(wrong)),
                     "above": float(np.mean(real["lse_c"] > np.array(wrong))),
                     "real_offset": real["offset"], "shifted_offset": shifted["offset"]})
    n = len(rows)
    summary = {"clips": n,
               "real_conf": float(np.mean([r["real_conf"] for r in rows])),
               "mismatched_conf": float(np.mean([r["mismatched_conf"] for r in rows])),
               "real_above_mismatched": float(np.mean([r["above"] for r in rows])),
               "offset_within_1": sum(abs(r["real_offset"]) <= 1 for r in rows) / n,
               "shift_found_within_1": sum(abs(r["shifted_offset"] - SHIFT) <= 1 for r in rows) / n,
               "shift_found_relative": sum(abs(r["shifted_offset"] - r["real_offset"] - SHIFT) <= 1 for r in rows) / n}
    return {"rows": rows, "summary": summary}


def motion_lag(c: dict, model, max_lag: int = 10) -> int:
    """An independent look at a clip's own audio-video offset: the lag k at which the shipped motion model's
    opening, predicted from the audio, best correlates with the real opening (+ = audio later)."""
    import torch

    from lipgen.models.motion import opening

    T = len(c["landmarks"])
    pred = model.gap(torch.from_numpy(model.predict(model.features(c["audio"], T))[None]).float())[0].numpy()
    real = opening(c["landmarks"].astype(np.float64))
    r = {k: np.corrcoef(pred[max(k, 0):T + min(k, 0)], real[max(-k, 0):T - max(k, 0)])[0, 1]
         for k in range(-max_lag, max_lag + 1)}
    return max(r, key=r.get)


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
    if not (args.videos or args.cache):
        ap.error("nothing to judge: give --videos FOLDER, --cache GRID_CACHE, or both")
    lm = sync.load_landmark_expert(args.expert)
    landmark_score = lambda c, audio: sync.landmark_sync_scores(lm, c["landmarks"], audio)  # noqa: E731
    px = sync.load_expert()
    pixel_score = lambda c, audio: sync.sync_scores(px, c["mouth"], media.log_mel(audio, len(c["mouth"])))  # noqa: E731
    results = {}
    if args.videos:
        clips = {}
        for path in sorted(Path(args.videos).glob("*.mp4")):
            c = video_clip(path, args.seconds, Path(args.work))
            if c is not None and len(c["landmarks"]) >= sync.MAX_OFFSET + sync.SYNC_FRAMES:
                clips[path.stem] = c
        results["in the wild, landmark expert"] = judge(clips, landmark_score)
        from lipgen.generate import load_generator

        motion = load_generator("motion")
        for row in results["in the wild, landmark expert"]["rows"]:
            row["motion_lag"] = motion_lag(clips[row["clip"]], motion)
        results["in the wild, pixel expert (syncnet)"] = judge(clips, pixel_score)
    if args.cache:
        clips = grid_clips(Path(args.cache), args.grid_limit)
        results["GRID test, landmark expert"] = judge(clips, landmark_score, max_mismatched=4)
        results["GRID test, pixel expert (syncnet)"] = judge(clips, pixel_score, max_mismatched=4)
    lines = ["# Sync experts as judges", "", "Made by `python scripts/sync_expert_quality.py"
             + (f" --videos {args.videos}" if args.videos else "") + (f" --cache {args.cache}" if args.cache else "")
             + (f" --grid-limit {args.grid_limit}" if args.cache and args.grid_limit != 100 else "")
             + (f" --expert {args.expert}" if args.expert else "") + f" --out {args.out}` "
             f"(videos: first {args.seconds:.0f} s; shift check: audio delayed {SHIFT} frames).", "",
             "Mismatched: the clip's face with every other clip's audio (16 others in the wild, 4 on GRID); "
             "'real > mismatched' is the share of those pairs where the clip's own audio scores higher.", "",
             "| set | clips | conf. real | conf. mismatched | real > mismatched | real offset within +-1 "
             f"| +{SHIFT} shift found within +-1 | shift found within +-1 of the clip's own offset + {SHIFT} |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        s = r["summary"]
        lines.append(f"| {name} | {s['clips']} | {s['real_conf']:.3f} | {s['mismatched_conf']:.3f} | "
                     f"{s['real_above_mismatched']:.0%} | {s['offset_within_1']:.0%} | {s['shift_found_within_1']:.0%} | "
                     f"{s['shift_found_relative']:.0%} |")
    for name, r in results.items():
        if name == "in the wild, landmark expert":
            lines += ["", f"## {name}, per clip", "", "| clip | conf. real | conf. mismatched | real offset | "
                      "real > mismatched | shifted offset | motion model's best lag |", "|---|---|---|---|---|---|---|"]
            lines += [f"| {x['clip']} | {x['real_conf']:.3f} | {x['mismatched_conf']:.3f} | {x['real_offset']:+d} | "
                      f"{x['above']:.0%} | {x['shifted_offset']:+d} | {x['motion_lag']:+d} |" for x in r["rows"]]
            agree = np.mean([abs(x["real_offset"] - x["motion_lag"]) <= 1 for x in r["rows"]])
            lines += ["", f"The expert's offset and the motion model's best lag (a different network and objective: "
                      f"regression of the opening, no contrast) agree within +-1 frame on {agree:.0%} of clips."]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:8 + len(results)]))


if __name__ == "__main__":
    main()
