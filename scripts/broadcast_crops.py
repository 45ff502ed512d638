"""Broadcast-style face crops of real clips: does the default model hold on low-resolution, face-centred video
such as LRS2's (160 px) and VoxCeleb2's (224 px) crops? (issue 15, "Real framing")

    python scripts/broadcast_crops.py cache/unseen/videos --side 160 --scale 1.6 --out cache/unseen/crops160
    lipgen evaluate-videos cache/unseen/crops160 --models motion --manifest cache/unseen/faces.json \
        --work cache/unseen/crops160_work --out docs/eval/unseen/crops160

WORK is a work folder `lipgen evaluate-videos` prepared (one folder per clip holding clip.mp4, the clip's first
seconds at 25 fps, and clip.landmarks.npy, its tracked face). Each clip is cut to one fixed square about the
face's median landmarks, `--scale` times the face's width (jaw end to jaw end) on a side, so the head moves in it
as it did in the frame, and resized to `--side` px with the clip's own sound. Outside the frame the crop is
padded with the edge's pixels.
"""

import argparse
from pathlib import Path

import cv2
import numpy as np

from lipgen import media
from lipgen.evaluation.wild import REFERENCE_THREADS


def crop_clip(folder: Path, out: Path, side: int, scale: float) -> None:
    landmarks = np.load(folder / "clip.landmarks.npy")
    frames = media.read_video(folder / "clip.mp4")
    width = np.nanmedian(np.linalg.norm(landmarks[:, 16] - landmarks[:, 0], axis=1))
    cx, cy = np.nanmedian(landmarks[..., 0]), np.nanmedian(landmarks[..., 1])
    half = scale * width / 2
    size = int(round(2 * half))
    x0, y0 = int(round(cx - half)), int(round(cy - 1.05 * half))  # a little more above the face than below
    h, w = frames.shape[1:3]
    pad = max(0, -x0, -y0, x0 + size - w, y0 + size - h)
    if pad:
        frames = np.pad(frames, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
        x0, y0 = x0 + pad, y0 + pad
    crops = [cv2.resize(f[y0:y0 + size, x0:x0 + size], (side, side), interpolation=cv2.INTER_AREA) for f in frames]
    media.write_mp4(out, np.stack(crops), sound=folder / "clip.mp4", threads=REFERENCE_THREADS)  # same bytes anywhere


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path, help="a work folder of lipgen evaluate-videos")
    parser.add_argument("--out", type=Path, required=True, help="folder for the cropped clips")
    parser.add_argument("--side", type=int, default=160, help="pixels on a side (LRS2: 160, VoxCeleb2: 224)")
    parser.add_argument("--scale", type=float, default=1.6, help="the crop's side in face widths")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for folder in sorted(p for p in args.work.iterdir() if (p / "clip.landmarks.npy").is_file()):
        crop_clip(folder, args.out / folder.name, args.side, args.scale)
        print(folder.name)


if __name__ == "__main__":
    main()
