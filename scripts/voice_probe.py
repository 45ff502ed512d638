"""How well a motion model hears strangers, without rendering: the correlation of its predicted inner-lip
gap with the real speaker's mouth opening (dlib, over the inter-ocular distance), per clip, at lag 0.

    python scripts/voice_probe.py MODEL.safetensors [...] [--work cache/unseen/videos]

Reads the clips that `lipgen evaluate-videos` prepared in its work folder (audio.npy: the first 8 s at
16 kHz; clip.landmarks.npy: the real frames' landmarks), so run scripts/evaluate_unseen.sh first. This is
the "model space" number of docs/eval/unseen/README.md: the rendered "voice only" row adds the warp and
a second landmark detection on top of it.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from lipgen.checkpoint import load_system
from lipgen.evaluation.wild import mouth_opening


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="motion model files")
    parser.add_argument("--work", default="cache/unseen/videos", help="evaluate-videos work folder")
    args = parser.parse_args()
    clips = sorted(p.parent for p in Path(args.work).glob("*/clip.landmarks.npy"))
    if not clips:
        raise SystemExit(f"{args.work}: no prepared clips; run scripts/evaluate_unseen.sh first")
    for path in args.models:
        system = load_system(path, strict=False)[0]
        rs = []
        for clip in clips:
            audio, landmarks = np.load(clip / "audio.npy"), np.load(clip / "clip.landmarks.npy")
            n = len(landmarks)
            motion = system.predict(system.features(audio, n))
            gap = system.gap(torch.from_numpy(motion[None]))[0].numpy()
            real = mouth_opening(landmarks)
            ok = np.isfinite(real)
            rs.append(np.corrcoef(gap[ok], real[ok])[0, 1])
            print(f"  {clip.name:40s} r = {rs[-1]:+.3f}")
        print(f"{path}: {system.config.speech} front end, mean r = {np.mean(rs):.3f} over {len(rs)} clips")


if __name__ == "__main__":
    main()
