"""Build lipgen's canonical 68-point face template (src/lipgen/assets/face_template.npy).

Mean shape, by generalised Procrustes (similarity) alignment, of dlib landmarks on frames of
GRID speakers s1, s4 and the four `multi` clips; then placed so the landmarks' bounding box is
76% of the crop wide, centred, centred. Stored in crop units ([0, 1]).

    python scripts/make_face_template.py --grid ../shared/data/grid
"""

import argparse
from pathlib import Path

import numpy as np

from lipgen import face, media

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--grid", type=Path, default=Path("../shared/data/grid"), help="GRID folder")
parser.add_argument("--out", type=Path, default=face.TEMPLATE_PATH, help="where to write the template")
args = parser.parse_args()

videos = (sorted((args.grid / "s1/video").glob("*.mp4"))[::50] + sorted((args.grid / "s4/video").glob("*.mp4"))[::5]
          + sorted((args.grid / "multi").glob("*.mpg")))
shapes = []
for path in videos:
    frames = media.read_video(path)[::15]
    for frame in frames:
        boxes = face.detect_faces(frame)
        if len(boxes):
            shapes.append(face.landmarks_in_box(frame, boxes[0]).astype(np.float64))
print(f"{len(shapes)} faces from {len(videos)} clips")

mean = shapes[0]
for _ in range(10):  # generalised Procrustes: align all to the mean, re-estimate the mean
    aligned = [face.transform_points(s, face.similarity(s, mean)) for s in shapes]
    new = np.mean(aligned, 0)
    new = (new - new.mean(0)) / np.linalg.norm(new - new.mean(0))
    mean = new

lo, hi = mean.min(0), mean.max(0)
unit = (mean - (lo + hi) / 2) * (0.76 / (hi - lo)[0]) + np.array([0.5, 0.5])
args.out.parent.mkdir(parents=True, exist_ok=True)
np.save(args.out, unit.astype(np.float32))
print(f"wrote {args.out}: x {unit[:, 0].min():.2f}..{unit[:, 0].max():.2f}, y {unit[:, 1].min():.2f}..{unit[:, 1].max():.2f}")
