"""Picture of lipgen on faces it never saw: each face says one GRID sentence; a row of mouth-centred crops
at the face's own resolution across the sentence, the spoken word under each column; for a real video,
its own frames above the generated ones (from its first frame, with its own audio).

    python scripts/anyface_picture.py --faces A.jpg B.png ... --videos C.mp4 -o docs/anyface.jpg
    python scripts/anyface_picture.py -o docs/unseen_identity.png --faces src/lipgen/assets/astronaut.png \
        --models glance crgan davs motion      # one face, a row per model

Speech: a GRID clip with its .align word timings (default: tests/fixtures/grid/s1, "bin blue at f two now").
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from lipgen import face as geometry
from lipgen import media
from lipgen.generate import generate

GRID_CLIP = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "grid" / "s1"
CELL = 112  # pixels per shown crop
LABEL = 130


def words_at(align: Path, frames: list[int]) -> list[str]:
    spans = [(int(a) / 1000, int(b) / 1000, w) for a, b, w in (line.split() for line in align.read_text().split("\n") if line.strip())]
    return [next((w if w not in ("sil", "sp") else "-" for a, b, w in spans if a <= t < b), "-") for t in frames]


def mouth_crops(video: np.ndarray, points: np.ndarray, frames: list[int]) -> list[np.ndarray]:
    """Square crops centred on the mouth of the source (fixed for the row), 1.8 mouth widths... plus the chin."""
    centre = points[48:68].mean(0) + [0, 0.15 * np.linalg.norm(points[54] - points[48])]
    half = 1.1 * np.linalg.norm(points[54] - points[48])
    x0, y0 = np.round(centre - half).astype(int)
    side = int(round(2 * half))
    out = []
    for t in frames:
        frame = np.pad(video[t], ((side, side), (side, side), (0, 0)), mode="edge")
        out.append(cv2.resize(frame[y0 + side:y0 + 2 * side, x0 + side:x0 + 2 * side], (CELL, CELL),
                              interpolation=cv2.INTER_AREA))
    return out


def labelled(name: str, row: np.ndarray) -> np.ndarray:
    label = np.full((row.shape[0], LABEL, 3), 255, np.uint8)
    for i, part in enumerate(name.split("\n")):
        cv2.putText(label, part, (4, row.shape[0] // 2 - 6 + 16 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return np.concatenate([label, row], 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", nargs="*", default=[], help="photos (or paintings, statues, drawings)")
    ap.add_argument("--videos", nargs="*", default=[], help="videos with their own speech: real frames above")
    ap.add_argument("--models", nargs="+", default=["motion"])
    ap.add_argument("--speech", default=str(GRID_CLIP / "video" / "bbaf2n.mp4"))
    ap.add_argument("--align", default=str(GRID_CLIP / "align" / "bbaf2n.align"))
    ap.add_argument("--columns", type=int, default=10)
    ap.add_argument("-o", "--out", default="docs/anyface.jpg")
    args = ap.parse_args()
    speech = media.read_audio(args.speech)
    n = speech.size // media.SAMPLES_PER_FRAME
    shown = [int(t) for t in np.linspace(20, min(n, 60) - 1, args.columns)]
    words = words_at(Path(args.align), shown)
    header = np.full((22, CELL * len(shown), 3), 255, np.uint8)
    for i, w in enumerate(words):
        cv2.putText(header, w, (i * CELL + 6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    rows = [labelled("speech: GRID s1", header)]
    with tempfile.TemporaryDirectory() as tmp:
        for face in args.faces:
            image = media.read_image(face)
            points = geometry.track_landmarks(image[None])[0][0]
            for model in args.models:
                out = generate(speech, face, Path(tmp) / "out.mp4", model=model, progress=False)
                crops = mouth_crops(media.read_video(out), points, shown)
                name = Path(face).stem if len(args.models) == 1 else f"{Path(face).stem}\n{model}"
                rows.append(labelled(name, np.concatenate(crops, 1)))
        for video in args.videos:  # the clip's own audio and frames: real above, generated from its first frame
            real = media.read_video(video, max_seconds=3600)[:100]
            audio = media.fit_audio(media.read_audio(video), len(real))
            first = Path(tmp) / "first.png"
            cv2.imwrite(str(first), cv2.cvtColor(real[0], cv2.COLOR_RGB2BGR))
            points = geometry.track_landmarks(real[:1])[0][0]
            cols = [int(t) for t in np.linspace(10, len(real) - 1, args.columns)]
            rows.append(labelled(f"{Path(video).stem}\nreal", np.concatenate(mouth_crops(real, points, cols), 1)))
            for model in args.models:
                out = generate(audio, first, Path(tmp) / "out.mp4", model=model, progress=False)
                rows.append(labelled(f"{Path(video).stem}\n{model}, from photo",
                                     np.concatenate(mouth_crops(media.read_video(out), points, cols), 1)))
    cv2.imwrite(args.out, cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out}: {len(rows) - 1} rows, frames {shown}")


if __name__ == "__main__":
    main()
