"""Picture of every shipped model on a face it never saw: the bundled photo saying the bundled speech.
Rows: the photo's mouth, then one per model: the mouth crop of every `--every`-th output frame from
`--start` s on.

    python scripts/unseen_identity.py -o docs/unseen_identity.png
"""

import argparse

import cv2
import numpy as np

from lipgen import face as geometry
from lipgen import media
from lipgen.generate import (
    SAMPLE_AUDIO,
    SAMPLE_FACE,
    FaceSource,
    load_generator,
    model_crops,
)

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("-o", "--out", default="docs/unseen_identity.png")
parser.add_argument("--models", nargs="+", default=["glance", "crgan", "davs"])
parser.add_argument("--start", type=float, default=1.0, help="first frame shown, in seconds (default 1)")
parser.add_argument("--frames", type=int, default=10, help="frames per row (default 10)")
parser.add_argument("--every", type=int, default=3, help="show every n-th frame (default 3)")
args = parser.parse_args()

audio = media.read_audio(SAMPLE_AUDIO)
n = int(args.start * media.VIDEO_FPS) + args.frames * args.every
mel = media.log_mel(audio[: n * media.SAMPLES_PER_FRAME], n)
source = FaceSource(SAMPLE_FACE)
show = range(int(args.start * media.VIDEO_FPS), n, args.every)
rows = []


def labelled(name: str, row: np.ndarray) -> np.ndarray:
    label = np.full((row.shape[0], 80, 3), 255, np.uint8)
    cv2.putText(label, name, (4, row.shape[0] // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([label, row], 1)


rows = [labelled("photo", np.concatenate([source.identity_mouth] * args.frames, 1))]
for name in args.models:
    kind, crops = model_crops(load_generator(name), mel, source.identity_mouth, source.identity_face)
    picked = []
    for t, crop in enumerate(crops):
        if t in show:
            if kind == "face":  # a face crop: cut its mouth crop out (face -> frame -> mouth coordinates)
                frame = geometry.paste_back(source.image, crop, source.face_matrix[0])
                crop = geometry.crop(frame[None], source.mouth_matrix[:1], geometry.MOUTH_SIZE)[0]
            picked.append(crop)
    rows.append(labelled(name, np.concatenate(picked, 1)))
cv2.imwrite(args.out, cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))
print(f"wrote {args.out}: {', '.join(args.models)}, frames {list(show)}")
