"""Real framing: does the default model handle faces that are tilted, small or large in the frame, turned away,
or moving, in 30 fps video? (issue 15, "Real framing")

    python scripts/framing.py ../shared/data/unseen/portraits --out docs/eval/unseen/framing \
        --work cache/unseen/framing [--pattern 'liveportrait_*'] [--yaw-report docs/eval/unseen/portraits_motion/report.csv]

Each portrait (longer side brought to 512 px) is framed several ways, and every framing is judged by
`lipgen evaluate-portraits` (the bundled GRID speech, 9 s, with word timings; one folder of images per framing):
- upright: the portrait as it is;
- tilted +-30: turned about its face centre by 30 degrees either way, the canvas keeping its size;
- small: shrunk until its eyes are SMALL_IOD px apart (a face ~60 px wide, as in a wide shot), on a canvas
  of the photo's own size filled with its blurred self;
- large: cropped to the face, which then fills the 512 px frame (the chin near the edge);
- moving: a 30 fps video of the portrait, rotating by up to +-15 degrees, zooming by +-15% and drifting by
  +-8% of the frame, dubbed with the same speech (`lipgen generate` with the video as --face); the output's
  face is tracked frame by frame, and the pixels above the nose are compared with the input's.
With --yaw-report, the portraits of an evaluate-portraits report are also grouped by how far their heads
are turned (yaw from the dlib landmarks: where the nose tip sits between the jaw's ends).

Writes OUT/report.md, report.json and framing.jpg (the astronaut in every framing; give her with --extra); the
framings' own reports go to OUT/<framing>/.
"""

import argparse
import csv
import fnmatch
import json
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from lipgen import face as geometry
from lipgen import media
from lipgen.evaluation.portraits import DEFAULT_SPEECH, PORTRAIT_COLUMNS, evaluate_portraits, prepare_speech
from lipgen.evaluation.wild import (GENERATED_THREADS, REFERENCE_THREADS, face_descriptors, frame_rms, load_sync_expert,
                                   measure, still_landmarks)
from lipgen.generate import generate
from lipgen.models.motion import opening

SIDE = 512  # pixels: the longer side of every framed portrait
TILT = 30  # degrees
SMALL_IOD = 24  # pixels between the eye centres of a "small" face
LARGE_PAD = 1.25  # a "large" face: the frame is this many face boxes wide
MOVING_FPS = 30
SHOWN = ("opening_ratio", "ratio_at_least_2", "envelope_corr", "wild_conf", "identity_kept", "cpbd_vs_photo")


def _face(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(detector box (4,), 68 landmarks) of the largest face."""
    box = geometry.choose_face(geometry.detect_faces(image), 0)
    return box, geometry.landmarks_in_box(image, box)


def _iod(points: np.ndarray) -> float:
    return float(geometry.eye_distance(points[None])[0])


def _even(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return np.ascontiguousarray(image[:h - h % 2, :w - w % 2])


def _folder(framing: str) -> str:
    """A framing's folder name: "tilted +30" -> "tiltedplus30"."""
    return framing.replace(" ", "").replace("+", "plus").replace("-", "minus")


def upright(image):
    return image, np.array([[1.0, 0, 0], [0, 1.0, 0]])


def _turned(image, degrees):
    _, points = _face(image)
    centre = tuple(float(v) for v in points[27:36].mean(0))  # the nose: the face's middle
    matrix = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    return cv2.warpAffine(image, matrix, image.shape[1::-1], flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REFLECT), matrix


def tilted_left(image):
    return _turned(image, TILT)


def tilted_right(image):
    return _turned(image, -TILT)


def small(image):
    _, points = _face(image)
    scale = SMALL_IOD / _iod(points)
    h, w = image.shape[:2]
    shrunk = cv2.resize(image, (max(2, round(w * scale)), max(2, round(h * scale))), interpolation=cv2.INTER_AREA)
    canvas = cv2.GaussianBlur(image, (0, 0), 25)  # the scene around the small person: the photo itself, blurred
    y, x = (h - shrunk.shape[0]) // 2, (w - shrunk.shape[1]) // 2
    canvas[y:y + shrunk.shape[0], x:x + shrunk.shape[1]] = shrunk
    return canvas, np.array([[shrunk.shape[1] / w, 0, x], [0, shrunk.shape[0] / h, y]])


def large(image):
    box, _ = _face(image)
    cx, cy, side = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, (box[2] - box[0]) * LARGE_PAD
    matrix = np.array([[SIDE / side, 0, SIDE / 2 - cx * SIDE / side], [0, SIDE / side, SIDE / 2 - cy * SIDE / side]])
    return cv2.warpAffine(image, matrix, (SIDE, SIDE), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT), matrix


STILL_FRAMINGS = {"upright": upright, "tilted +30": tilted_left, "tilted -30": tilted_right, "small": small,
                  "large": large}


def read_back(folder: Path, silent: np.ndarray, envelope: np.ndarray) -> dict:
    """A framing's outputs brought back to the upright portrait's geometry (the inverse of the framing's
    matrix) and read in the upright photo's face box: what the model drew, measured where dlib reads best.
    -> means of the speech / silence ratio, the share at 2x and the envelope correlation."""
    from lipgen.evaluation.wild import correlation, mouth_opening, openings

    matrices = json.loads((folder / "matrices.json").read_text())
    ratios, envelopes = [], []
    for video in sorted(folder.glob("work/*/motion-*.mp4")):
        stem = video.parent.name.rsplit(".", 1)[0]
        photo = media.read_image(folder.parent / "upright" / "images" / f"{stem}.png")
        box, _ = _face(photo)
        back = cv2.invertAffineTransform(np.array(matrices[stem]))
        size = photo.shape[1], photo.shape[0]
        cached = video.with_suffix(".read-back-landmarks.npy")
        if cached.is_file() and cached.stat().st_mtime_ns >= video.stat().st_mtime_ns:
            marks = np.load(cached)
        else:
            marks = np.stack([geometry.landmarks_in_box(cv2.warpAffine(f, back, size, flags=cv2.INTER_CUBIC,
                                                                       borderMode=cv2.BORDER_REPLICATE), box)
                              for f in media.read_video(video)])
            np.save(cached, marks)
        n = min(len(marks), len(silent))
        curve = mouth_opening(marks[:n])
        ratios.append(openings(curve, ~silent[:n])["opening_ratio"])
        envelopes.append(correlation(curve, envelope[:n]))
    return {"n": len(ratios), "opening_ratio": float(np.mean(ratios)),
            "ratio_at_least_2": float(np.mean(np.array(ratios) >= 2)), "envelope_corr": float(np.mean(envelopes))}


def moving_frames(image: np.ndarray, n: int) -> np.ndarray:
    """(n, H, W, 3): the portrait turning, zooming and drifting smoothly (MOVING_FPS)."""
    _, points = _face(image)
    cx, cy = points[27:36].mean(0)
    h, w = image.shape[:2]
    t = np.arange(n) / MOVING_FPS
    frames = np.empty((n, h, w, 3), np.uint8)
    for i, s in enumerate(t):
        matrix = cv2.getRotationMatrix2D((float(cx), float(cy)), 15 * np.sin(2 * np.pi * s / 3.1),
                                         1 + 0.15 * np.sin(2 * np.pi * s / 4.3))
        matrix[:, 2] += [0.08 * w * np.sin(2 * np.pi * s / 5.7), 0.08 * h * np.sin(2 * np.pi * s / 3.7)]
        frames[i] = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return frames


def reading_accuracy(images: list[Path], angles=(5, 10, 15, 20, 30)) -> list[dict]:
    """How well dlib reads the inner-lip gap of a tilted face, on the face as it is and turned upright first
    (lipgen.evaluation.wild.still_landmarks): each portrait turned by +-angle, its gap read both ways and
    compared with the upright portrait's own reading. -> per angle, mean |gap error| / IOD of each."""
    out = []
    for angle in angles:
        errors = {"as tilted": [], "turned upright": []}
        for path in images:
            image = media.read_image(path)
            box, points = _face(image)
            for sign in (1, -1):
                turned, matrix = _turned(image, sign * angle)
                boxes = geometry.detect_faces(turned)
                if not len(boxes):
                    continue
                for name, upright in (("as tilted", False), ("turned upright", True)):
                    read = still_landmarks(turned[None], boxes[0], upright=upright, limit=0)[0]
                    errors[name].append(abs(opening(read) - opening(points)) / _iod(points))
        out.append({"angle": angle, "n": len(errors["as tilted"]), **{k: float(np.mean(v)) for k, v in errors.items()}})
    return out


def judge_moving(images: list[Path], work: Path, audio: np.ndarray, silent: np.ndarray, expert) -> list[dict]:
    """Dub a moving video of each portrait; measure the output as evaluate-portraits does (at 25 fps), and the
    change above the nose (mean absolute difference from the input, 0-255)."""
    rows = []
    seconds = len(audio) / media.SAMPLE_RATE
    for path in tqdm(images, desc="moving", unit="portrait"):
        row = {"input": path.name, "reason": ""}
        try:
            image = media.read_image(path)
            video, out = work / f"{path.stem}.mp4", work / f"{path.stem}-dubbed.mp4"
            if not video.is_file():
                media.write_mp4(video, moving_frames(image, int(round(seconds * MOVING_FPS))), audio, fps=MOVING_FPS,
                                preset="fast", threads=REFERENCE_THREADS)  # the same bytes on any machine
            if not out.is_file():
                generate(audio, video, out, progress=False, encoder_threads=GENERATED_THREADS)
            row["fps"] = float(media.video_fps(out))
            source, made = media.read_video(video, fps=MOVING_FPS), media.read_video(out, fps=MOVING_FPS)
            marks, _ = geometry.track_landmarks(source, 0, where=video.name)
            row["change_above_nose"] = float(np.mean([_change(a, b, p[17:31]) for a, b, p in zip(source, made, marks)]))
            row["change_at_mouth"] = float(np.mean([_change(a, b, p[48:68]) for a, b, p in zip(source, made, marks)]))
            frames = media.read_video(out)  # 25 fps: the speech's word timings
            landmarks, _ = geometry.track_landmarks(frames, 0, where=out.name)
            _, still = _face(image)
            reference = face_descriptors(image[None], still[None])[0]
            n = min(len(frames), len(silent))
            values, _ = measure(frames[:n], landmarks[:n], audio, expert, reference, ~silent[:n])
            row.update(values, ratio_at_least_2=float(values["opening_ratio"] >= 2))
        except Exception as e:  # reported in the row; the other portraits go on
            row["reason"] = f"{type(e).__name__}: {e}"
        rows.append(row)
    return rows


def _change(a: np.ndarray, b: np.ndarray, points: np.ndarray) -> float:
    """Mean |a - b| (0-255) over the box of these points."""
    x0, y0 = np.floor(points.min(0)).astype(int).clip(0)
    x1, y1 = np.ceil(points.max(0)).astype(int)
    return float(np.abs(a[y0:y1, x0:x1].astype(np.int16) - b[y0:y1, x0:x1]).mean())


def yaw_degrees(points: np.ndarray) -> float:
    """Roughly how far a head is turned: the nose tip's place between the jaw's ends (0 and 16), as asin."""
    share = (points[30, 0] - points[0, 0]) / (points[16, 0] - points[0, 0])
    return float(np.degrees(np.arcsin(np.clip(2 * share - 1, -1, 1))))


def by_yaw(report_csv: Path, folder: Path) -> list[dict]:
    rows = [r for r in csv.DictReader(open(report_csv)) if r["row"] != "static" and not r["reason"]]
    groups = {"under 15": [], "15-30": [], "30-45": [], "over 45": []}
    for r in rows:
        image = media.read_image(folder / r["input"])
        _, points = _face(image)
        yaw = abs(yaw_degrees(points))
        key = "under 15" if yaw < 15 else "15-30" if yaw < 30 else "30-45" if yaw < 45 else "over 45"
        groups[key].append({**{k: float(r[k]) for k in SHOWN}, "input": r["input"], "yaw": yaw})
    return [{"yaw": k, "n": len(v), "inputs": [g["input"] for g in v],
             **{c: float(np.nanmean([g[c] for g in v])) if v else float("nan") for c in SHOWN}}
            for k, v in groups.items()]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="folder of portraits")
    parser.add_argument("--out", type=Path, default=Path("docs/eval/unseen/framing"))
    parser.add_argument("--work", type=Path, default=Path("cache/unseen/framing"))
    parser.add_argument("--pattern", default="liveportrait_*", help="which portraits of the folder (glob)")
    parser.add_argument("--extra", type=Path, nargs="*", default=[], help="more portraits (files)")
    parser.add_argument("--yaw-report", type=Path, help="an evaluate-portraits report.csv of FOLDER, grouped by yaw")
    args = parser.parse_args()
    sources = sorted(p for p in args.folder.iterdir() if fnmatch.fnmatch(p.name, args.pattern)
                     and p.suffix.lower() in media.IMAGE_SUFFIXES) + list(args.extra)
    summary = {"images": [p.name for p in sources], "framings": {}}
    audio, silent = prepare_speech(DEFAULT_SPEECH)
    envelope = frame_rms(audio, len(silent))
    for name, frame in STILL_FRAMINGS.items():
        folder = args.work / _folder(name)
        (folder / "images").mkdir(parents=True, exist_ok=True)
        matrices_file = folder / "matrices.json"
        matrices = json.loads(matrices_file.read_text()) if matrices_file.is_file() else {}
        for path in sources:
            target = folder / "images" / f"{path.stem}.png"
            if not target.is_file() or path.stem not in matrices:
                image = media.read_image(path)
                scale = SIDE / max(image.shape[:2])
                image = _even(cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1
                                         else cv2.INTER_CUBIC))
                framed, matrix = frame(image)
                if not target.is_file():  # (an image made before is kept: its outputs are cached beside it)
                    cv2.imwrite(str(target), cv2.cvtColor(_even(framed), cv2.COLOR_RGB2BGR))
                matrices[path.stem] = matrix.tolist()
        matrices_file.write_text(json.dumps(matrices))
        result = evaluate_portraits(folder / "images", args.out / folder.name, models=["motion"], work=folder / "work")
        means = result["means"]["motion | from photo"]
        summary["framings"][name] = {"n": means["n"], "no_face_found": result["no_face_found"],
                                     **{k: means[k] for k in SHOWN},
                                     "read_back": read_back(folder, silent, envelope)}
        print(name, summary["framings"][name])
    moving_work = args.work / "moving"
    moving_work.mkdir(parents=True, exist_ok=True)
    upright_images = sorted((args.work / "upright" / "images").glob("*.png"))
    rows = judge_moving(upright_images, moving_work, audio, silent, load_sync_expert("default"))
    ok = [r for r in rows if not r["reason"]]
    summary["framings"]["moving (30 fps video)"] = {
        "n": len(ok), "failed": {r["input"]: r["reason"] for r in rows if r["reason"]},
        **{k: float(np.nanmean([r[k] for r in ok])) if ok else float("nan")
           for k in ("opening_ratio", "ratio_at_least_2", "wild_conf", "identity_kept", "change_above_nose",
                     "change_at_mouth", "fps")}}
    summary["moving_rows"] = rows
    summary["reading"] = reading_accuracy(upright_images)
    if args.yaw_report:
        summary["by_yaw"] = by_yaw(args.yaw_report, args.folder)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(summary, indent=1))
    (args.out / "report.md").write_text(markdown(summary))
    dubbed = sorted(p.name[:-len("-dubbed.mp4")] for p in (args.work / "moving").glob("*-dubbed.mp4"))
    if dubbed:  # the astronaut's framings when she was among them (--extra), else the first portrait's
        picture(args.work, args.out / "framing.jpg", "astronaut" if "astronaut" in dubbed else dubbed[0])
    print((args.out / "report.md").read_text())


def picture(work: Path, out: Path, stem: str = "astronaut", frames=(0, 14, 22, 36, 75, 130, 150, 175)) -> None:
    """One portrait in every framing, a row each: its face at a few moments of the speech (75: a pause)."""
    from PIL import Image, ImageDraw

    rows = []
    for name in list(STILL_FRAMINGS) + ["moving"]:
        if name == "moving":
            video = work / "moving" / f"{stem}-dubbed.mp4"
            if not video.is_file():
                continue
        else:
            found = sorted((work / _folder(name) / "work").glob(f"{stem}.png/motion-*.mp4"))
            if not found:
                continue
            video = found[-1]
        clip = media.read_video(video)
        picked = [min(i, len(clip) - 1) for i in frames]
        marks, _ = geometry.track_landmarks(clip, 0, where=video.name)  # the face, followed through the clip
        if name != "moving":  # a still head: one box for every tile (dlib misreads a tilted face in a frame or two)
            marks = np.broadcast_to(np.median(marks, axis=0), marks.shape)
        picked, marks = clip[picked], marks[picked]
        tiles = []
        for frame, points in zip(picked, marks):
            (x0, y0), (x1, y1) = points.min(0), points.max(0)
            cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, 1.5 * max(x1 - x0, y1 - y0)
            x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
            tile = Image.fromarray(frame[y0:int(cy + side / 2), x0:int(cx + side / 2)]).resize((150, 150), Image.LANCZOS)
            tiles.append(tile)
        row = Image.new("RGB", (110 + 150 * len(tiles), 150), "white")
        ImageDraw.Draw(row).text((6, 68), name, fill="black")
        for k, tile in enumerate(tiles):
            row.paste(tile, (110 + 150 * k, 0))
        rows.append(row)
    if not rows:
        return
    sheet = Image.new("RGB", (rows[0].width, 150 * len(rows)), "white")
    for k, row in enumerate(rows):
        sheet.paste(row, (0, 150 * k))
    sheet.save(out, quality=88)


def _cell(v) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.2f}"


def markdown(summary: dict) -> str:
    headers = [PORTRAIT_COLUMNS[k][0] if k in PORTRAIT_COLUMNS else k for k in SHOWN]
    lines = ["# Framing: tilted, small, large, turned and moving faces", "",
             f"`python scripts/framing.py` on {len(summary['images'])} portraits ({', '.join(summary['images'])}); "
             "the default motion model, the bundled GRID speech (9 s). Means over the images where a face was found.",
             "", "| framing | n | " + " | ".join(headers) + " | change above the nose / at the mouth (0-255) |",
             "|---|---|" + "---|" * (len(SHOWN) + 1)]
    for name, m in summary["framings"].items():
        lines.append(f"| {name} | {m['n']} | " + " | ".join(_cell(m.get(k)) for k in SHOWN)
                     + f" | {_cell(m.get('change_above_nose'))} / {_cell(m.get('change_at_mouth'))} |")
    lines += ["", "The same outputs brought back to the upright portrait's geometry (each framing undone) and read in "
              "the upright photo's face box: what the model drew, measured where dlib reads best.", "",
              "| framing | n | speech / silence | share >= 2x | opening corr. with envelope |", "|---|---|---|---|---|"]
    for name, m in summary["framings"].items():
        if m.get("read_back"):
            b = m["read_back"]
            lines.append(f"| {name} | {b['n']} | {_cell(b['opening_ratio'])} | {_cell(b['ratio_at_least_2'])} | "
                         f"{_cell(b['envelope_corr'])} |")
    for name, m in summary["framings"].items():
        for what in ("no_face_found", "failed"):
            if m.get(what):
                lines.append(f"\n{name}, {what.replace('_', ' ')}: {m[what]}")
    lines += ["", "## Reading tilted faces", "",
              "Each upright portrait turned by +-angle and its inner-lip gap read by dlib on the tilted face, and turned "
              "upright first (what evaluate-portraits does beyond wild.ROLL_LIMIT degrees): the error against the "
              "upright portrait's own reading, over the inter-ocular distance.", "",
              "| angle (degrees) | readings | gap error, read as tilted | gap error, read turned upright |",
              "|---|---|---|---|"]
    for r in summary["reading"]:
        lines.append(f"| {r['angle']} | {r['n']} | {r['as tilted']:.4f} | {r['turned upright']:.4f} |")
    if "by_yaw" in summary:
        lines += ["", "## By how far the head is turned (yaw from the landmarks)", "",
                  "| yaw (degrees) | n | " + " | ".join(headers) + " |", "|---|---|" + "---|" * len(SHOWN)]
        for g in summary["by_yaw"]:
            lines.append(f"| {g['yaw']} | {g['n']} | " + " | ".join(_cell(g[k]) for k in SHOWN) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
