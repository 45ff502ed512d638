"""How far the judge lets a photo-driven model go: the real speaker's own mouth motion, drawn on the photo.

    python scripts/ceilings.py [--work cache/unseen/videos] [--grid cache/grid]
        [--portraits ../shared/data/unseen/portraits] [--out docs/eval/unseen/ceilings]

Self-reenactment from a photo is scored against the real clip, whose head turns, nods and comes closer
while the photo's does not. This script asks what a model with a perfect voice would score: it takes each
real clip's lower-face motion in lipgen's aligned face frame (the tracked points minus the clip's closed
rest shape, head pose removed) and puts it on the first frame, as generation
puts a prediction there. Rows, against the real clip (the judge's columns, docs/metrics.md "In the wild"):

- geometric (no pixels, no second landmark reading): the photo's points held (static), the photo moved by the
  real motion (oracle), and moved by the shipped model's motion (model);
- blends: w x the real motion + (1 - w) x the model's, for w in BLENDS: how LMD falls as a model's motion
  comes nearer the real one (geometric and rendered);
- rendered (lipgen.render, written to mp4 and read back by dlib in the held head's box, as the judge reads the
  "from photo" row): the judge's own static row, the real motion (oracle) and the shipped model's motion.

With --grid CACHE, the same on GRID's held-out clips (`lipgen evaluate`'s protocol: 64 px mouth crops of the
first frame moved, pasted into the real frames and read there): the real motion rendered, against the
ground truth, static and shipped model rows.

With --portraits FOLDER, the portraits' test (speech / silence opening, share at 2x) with the real GRID
speakers' own motion for the bundled speech drawn on each portrait, beside the shipped model.

Reads the clips `lipgen evaluate-videos` prepared and its videos (scripts/evaluate_unseen.sh); writes
report.md and clips.csv to --out. The videos drawn are cached in the
work folders (ceiling-*-KEY.mp4, KEY naming the model, the renderer and what reads a photo's lips).
"""

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lipgen import face as geometry, media, render
from lipgen.evaluation import wild
from lipgen.generate import FaceSource
from lipgen.inference import load_spec, predicted_motion
from lipgen.models.motion import EXPRESSIVENESS, MOTION_POINTS

BLENDS = (0.25, 0.5, 0.75)  # shares of the real motion mixed into the model's: a model part way to a perfect voice


def real_motion(landmarks: np.ndarray) -> np.ndarray:
    """A track's real lower-face motion, as generation applies a prediction: (T, 68, 2) frame landmarks -> (T, 31, 2)
    aligned-face pixels from the track's closed rest shape (render.rest_of), so a speaker who rests with parted
    lips keeps them parted (the motion model's training target is the same less that resting gap)."""
    points = landmarks.astype(np.float64)
    face_matrix, _ = geometry.crop_matrices(points)
    aligned = geometry.transform_points(points, face_matrix)
    return aligned[:, MOTION_POINTS] - render.rest_of(points, face_matrix)


def placed(source: FaceSource, motion: np.ndarray) -> np.ndarray:
    """The photo's landmarks moved by motion (T, 31, 2), as generation places it, no pixels: (T, 68, 2)."""
    points, matrix = source.landmarks[0].astype(np.float64), source.face_matrix[0]
    rest = render.rest_of(source.landmarks, source.face_matrix)
    return np.stack([render.target_points(points, matrix, rest, m) for m in motion])


def scores(landmarks: np.ndarray, real: np.ndarray) -> dict:
    return {"lmd_iod": wild.lmd_iod(landmarks, real),
            "opening_corr": wild.correlation(wild.mouth_opening(landmarks), wild.mouth_opening(real))}


def drawn(video: Path, source: FaceSource, motion: np.ndarray, audio: np.ndarray) -> Path:
    """The photo moved by motion, as generation draws it, written to `video` (once; atomically)."""
    if not video.is_file():
        tracked = ((source.image, source.landmarks[0], source.face_matrix[0]) for _ in range(len(motion)))
        frames = render.animate(tracked, render.rest_of(source.landmarks, source.face_matrix), motion, photo=True)
        tmp = video.with_name(f".{video.stem}.tmp.mp4")
        media.write_mp4(tmp, frames, audio, threads=wild.GENERATED_THREADS)  # as the judge encodes generation
        tmp.replace(video)
    return video


def clip_rows(folder: Path, system, tag: str) -> list[dict]:
    """All rows of one prepared clip (its work folder)."""
    audio, real = np.load(folder / "audio.npy"), np.load(folder / "clip.landmarks.npy")
    photo = folder / "first_frame.png"
    face_index = json.loads((folder / "face_index.json").read_text())
    source = FaceSource(photo, face_index)
    oracle = real_motion(real)
    model = predicted_motion(system, audio, len(real))
    rows = {}
    rows["static, geometric"] = scores(np.repeat(source.landmarks[:1], len(real), 0), real)  # the photo as it is
    rows["oracle, geometric"] = scores(placed(source, oracle), real)
    rows[f"oracle x{EXPRESSIVENESS:g}, geometric"] = scores(placed(source, EXPRESSIVENESS * oracle), real)
    rows["model, geometric"] = scores(placed(source, model), real)
    rows["model (expressiveness 1), geometric"] = scores(placed(source, model / EXPRESSIVENESS), real)
    blends = {w: w * oracle + (1 - w) * model for w in BLENDS}  # between a model and a perfect voice
    for w, motion in blends.items():
        rows[f"{w:g} oracle + {1 - w:g} model, geometric"] = scores(placed(source, motion), real)
    n = 0 if face_index is None else face_index
    still = geometry.choose_face(geometry.detect_faces(source.image), n, folder.name)
    videos = {"static, rendered": folder / "static.mp4",
              "oracle, rendered": drawn(folder / f"ceiling-oracle-{tag}.mp4", source, oracle, audio),
              "model, rendered": drawn(folder / f"ceiling-model-{tag}.mp4", source, model, audio)}
    for w, motion in blends.items():
        videos[f"{w:g} oracle + {1 - w:g} model, rendered"] = drawn(folder / f"ceiling-blend{w:g}-{tag}.mp4",
                                                                    source, motion, audio)
    for label, path in videos.items():
        _, landmarks = wild.tracked(path, n, folder.name, still)
        rows[label] = scores(landmarks, real)
    out = []
    for label, values in rows.items():
        kind = label.split(",")[1].strip()
        values["lmd_vs_static"] = values["lmd_iod"] / rows[f"static, {kind}"]["lmd_iod"]
        out.append({"clip": folder.name, "row": label, **values})
    return out


def grid_rows(cache: str, system, limit: int | None) -> list[dict]:
    """GRID's held-out clips by `lipgen evaluate`'s protocol: ground truth, static, the real motion drawn on
    the first frame (x1 and x EXPRESSIVENESS), and the model (its default expressiveness, and 1)."""
    from lipgen.data import cache as cached
    from lipgen.data.dataset import LipDataset
    from lipgen.evaluation.evaluate import _clip_frames, _measure

    data = LipDataset(cache, "test", window=1, stride=10**9)
    out = []
    for meta in tqdm(data.clips[:limit], desc="GRID", unit="clip"):
        arrays = {k: cached.load_array(cache, meta["id"], k, mmap=False) for k in
                  (cached.MOUTH, cached.MEL, cached.MOUTH_MATRIX, cached.FACE_MATRIX, cached.LANDMARKS)}
        arrays["silent"] = data.silent_frames(data.clips.index(meta))
        frames = _clip_frames(meta)
        n = len(frames)
        points = arrays[cached.LANDMARKS][:n].astype(np.float64)
        lead = meta.get("trimmed_start_frames", 0) * media.SAMPLES_PER_FRAME
        audio = media.fit_audio(media.read_audio(meta["path"])[lead:], n)
        face_matrix = arrays["face_matrix"][:1].astype(np.float64)
        rest = render.rest_of(points[:1], face_matrix)
        oracle, model = real_motion(points), predicted_motion(system, audio, n)
        motions = {"oracle": oracle, f"oracle x{EXPRESSIVENESS:g}": EXPRESSIVENESS * oracle,
                   f"model (expressiveness {EXPRESSIVENESS:g})": model, "model (expressiveness 1)": model / EXPRESSIVENESS}
        rows = {"ground truth": arrays["mouth"], "static": np.repeat(arrays["mouth"][:1], n, 0)}
        matrix = arrays["mouth_matrix"][:1].astype(np.float64)
        for label, motion in motions.items():
            tracked = ((frames[0], points[0], face_matrix[0]) for _ in range(n))
            moved = render.animate(tracked, rest, motion, photo=True)
            rows[label] = np.concatenate([geometry.crop(f[None], matrix, geometry.MOUTH_SIZE) for f in moved])
        real_lm = None
        for label, mouths in rows.items():
            result, lm = _measure(label, meta, mouths, frames, arrays, None, real_lm, [])
            real_lm = lm if real_lm is None else real_lm
            out.append({"clip": meta["id"], "row": label, "lmd": result.values["lmd"],
                        "opening_corr": result.values["opening_corr"]})
    return out


def portrait_rows(folder: str, work: str, system, tag: str, limit: int | None) -> list[dict]:
    """The portraits' test (`lipgen evaluate-portraits`: speech / silence opening, share at 2x) with the real
    GRID speakers' own motion for the bundled speech drawn on each portrait: as they moved (x1), closed where
    lipgen.vad hears no speech as generation does (x1, gated), and as the shipped model's motion is scaled
    (x EXPRESSIVENESS, gated); beside the shipped model."""
    from lipgen.evaluation.portraits import DEFAULT_SPEECH, prepare_photo, prepare_speech
    from lipgen.inference import silence_gain

    audio, silent = prepare_speech(DEFAULT_SPEECH)
    n = len(silent)
    moved = []
    for clip in DEFAULT_SPEECH:  # the speakers' real motion, clip by clip, as prepare_speech joins their sound
        landmarks, _ = geometry.track_landmarks(media.read_video(clip), 0, where=str(clip))
        frames = -(-media.read_audio(clip).size // media.SAMPLES_PER_FRAME)
        motion = real_motion(landmarks)
        moved.append(motion[np.minimum(np.arange(frames), len(motion) - 1)])
    oracle = np.concatenate(moved)[:n]
    gate = silence_gain(audio, n)[:, None, None]
    motions = {"oracle x1": oracle, "oracle x1, gated": gate * oracle,
               f"oracle x{EXPRESSIVENESS:g}, gated": EXPRESSIVENESS * gate * oracle,
               "model": predicted_motion(system, audio, n)}
    paths = wild.inputs_in(folder, media.IMAGE_SUFFIXES, "portraits")[:limit]
    out = []
    for path in tqdm(paths, desc="portraits", unit="portrait"):
        place = Path(work) / wild.slug(path.name)
        try:
            photo_path, face_index = prepare_photo(path, place, wild.MAX_SIDE, None)
            source = FaceSource(photo_path, face_index)
        except Exception as e:  # no face: the judge skips it too
            print(f"{path.name}: skipped ({e})")
            continue
        index = 0 if face_index is None else face_index
        box = geometry.choose_face(geometry.detect_faces(source.image), index, path.name)
        for label, motion in motions.items():
            video = drawn(place / f"ceiling-{wild.slug(label)}-{tag}.mp4", source, motion, audio)
            _, marks = wild.tracked(video, index, path.name, box, upright=True)
            ratio = wild.openings(wild.mouth_opening(marks), ~silent)["opening_ratio"]
            out.append({"clip": path.name, "row": label, "opening_ratio": ratio,
                        "ratio_at_least_2": float(ratio >= 2.0)})
    return out


def means(rows: list[dict], keys: list[str]) -> dict[str, dict]:
    table = {}
    for row in rows:
        table.setdefault(row["row"], []).append(row)
    return {label: {k: float(np.nanmean([r[k] for r in rs])) for k in keys} for label, rs in table.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="cache/unseen/videos", help="evaluate-videos work folder")
    parser.add_argument("--grid", metavar="CACHE", help="also GRID's held-out clips of this preprocessed cache")
    parser.add_argument("--grid-limit", type=int, help="at most this many GRID clips")
    parser.add_argument("--portraits", metavar="FOLDER", help="also the portraits' test on this folder of images")
    parser.add_argument("--portraits-work", default="cache/unseen/portraits", help="evaluate-portraits work folder")
    parser.add_argument("--portraits-limit", type=int, help="at most this many portraits")
    parser.add_argument("--out", default="docs/eval/unseen/ceilings")
    args = parser.parse_args()
    clips = sorted(p.parent for p in Path(args.work).glob("*/clip.landmarks.npy"))
    if not clips:
        raise SystemExit(f"{args.work}: no prepared clips; run scripts/evaluate_unseen.sh first")
    spec = wild.model_specs(["motion"])["motion"]
    tag, system = wild.model_key(spec), load_spec("motion")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [r for c in tqdm(clips, desc="clips", unit="clip") for r in clip_rows(c, system, tag)]
    keys = ["lmd_iod", "lmd_vs_static", "opening_corr"]
    with open(out / "clips.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["clip", "row", *keys])
        writer.writeheader()
        writer.writerows({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
    lines = ["# Ceilings: the real speaker's own motion drawn on the photo", "",
             f"`python scripts/ceilings.py --work {args.work}" + (f" --grid {args.grid}" if args.grid else "") +
             (f" --portraits {args.portraits}" if args.portraits else "") +
             "` (what it does: its docstring). Means; the videos per clip: clips.csv.", "",
             f"## {len(clips)} in-the-wild clips, from the first frame (8 s)", "",
             "| row | mouth LMD / IOD | LMD vs static | opening corr. with real |", "|---|---|---|---|"]
    for label, v in means(rows, keys).items():
        lines.append(f"| {label} | {v['lmd_iod']:.4f} | {v['lmd_vs_static']:.3f} | {v['opening_corr']:.3f} |")
    if args.grid:
        grid = grid_rows(args.grid, system, args.grid_limit)
        n = len({r["clip"] for r in grid})
        lines += ["", f"## GRID, {n} held-out clips (`lipgen evaluate`'s protocol)", "",
                  "| row | mouth LMD (px of the 64 px crop) | opening corr. with real |", "|---|---|---|"]
        for label, v in means(grid, ["lmd", "opening_corr"]).items():
            lines.append(f"| {label} | {v['lmd']:.3f} | {v['opening_corr']:.3f} |")
    if args.portraits:
        portraits = portrait_rows(args.portraits, args.portraits_work, system, tag, args.portraits_limit)
        n = len({r["clip"] for r in portraits})
        lines += ["", f"## {n} portraits saying the bundled GRID speech (`lipgen evaluate-portraits`' test)", "",
                  "| row | speech / silence opening | share at 2x |", "|---|---|---|"]
        for label, v in means(portraits, ["opening_ratio", "ratio_at_least_2"]).items():
            lines.append(f"| {label} | {v['opening_ratio']:.2f} | {100 * v['ratio_at_least_2']:.0f}% |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
