"""How good is the sync expert? Its own LSE-D / LSE-C / offset on held-out real clips of a cache.

    python scripts/syncnet_quality.py --cache cache/grid                       # the shipped expert
    python scripts/syncnet_quality.py --cache cache/grid --checkpoint runs/syncnet/model.safetensors

Each clip of the split (whole clips: the cache's mouth.npy and mel.npy) is scored
- with its own audio: the offset found should be 0;
- with its audio delayed by s frames (video frames s.., audio frames ..T-s, so the true offset is +s,
  positive = audio later than video): the offset should follow the shift, and the distance at offset 0
  (what a model whose lips lag by s frames would be charged) should rise;
- with the audio of another utterance of the split (both cut to the shorter length): LSE-C should drop
  and the offset is arbitrary.
Distances are on this expert's scale (see lipgen.evaluation.sync): compare experts with each other, not
with SyncNet's published numbers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from lipgen.checkpoint import read_header
from lipgen.data.preprocess import clip_dir_name
from lipgen.evaluation.sync import EXPERT_PATH, MAX_OFFSET, load_expert, sync_scores
from lipgen.media import MELS_PER_FRAME


def test_clips(cache: Path, split: str) -> list[dict]:
    metas = [json.loads(p.read_text()) for p in sorted(cache.glob("*/meta.json"))
             if not p.parent.name.startswith((".", "_"))]
    metas = [m for m in metas if m["split"] == split]
    if not metas:
        raise SystemExit(f"{cache}: no clips with split={split!r}. Check --cache and --split.")
    return metas


def load_clip(cache: Path, meta: dict) -> tuple[np.ndarray, np.ndarray]:
    d = cache / clip_dir_name(meta["id"])
    return np.load(d / "mouth.npy"), np.load(d / "mel.npy")  # (T, 64, 64, 3) uint8, (4T, 80) float32


def summarise(name: str, rows: list[dict], expected: int | None) -> str:
    off = np.array([r["offset"] for r in rows])
    d0 = np.mean([r["distances"][MAX_OFFSET] for r in rows])
    hit = f"{np.mean(off == expected):6.1%} {np.mean(np.abs(off - expected) <= 1):6.1%}" if expected is not None \
        else f"{'-':>6} {'-':>6}"
    return (f"{name:<22} {len(rows):>5} {'-' if expected is None else expected:>8} {hit} "
            f"{np.mean([r['lse_d'] for r in rows]):7.3f} {np.mean([r['lse_c'] for r in rows]):7.3f} {d0:7.3f} "
            f"{np.median(off):7.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cache", default="cache/grid", help="preprocessing cache (lipgen preprocess) to read clips from")
    p.add_argument("--split", default="test", help="which split of the cache to score (default: test)")
    p.add_argument("--checkpoint", default=None, help=f"expert checkpoint (default: the shipped {EXPERT_PATH.name})")
    p.add_argument("--shifts", type=int, nargs="*", default=[5, 10, -5], help="audio delays to test, in frames")
    args = p.parse_args()
    torch.set_num_threads(1)

    cache = Path(args.cache)
    path = Path(args.checkpoint) if args.checkpoint else EXPERT_PATH
    expert = load_expert(path)
    metas = test_clips(cache, args.split)
    clips = [load_clip(cache, m) for m in metas]
    header = read_header(path)
    n_params = sum(p.numel() for p in expert.parameters())
    print(f"expert {path} (step {header['step']}, {n_params / 1e6:.2f} M parameters); "
          f"{len(clips)} {args.split!r} clips of {cache}; offsets +-{MAX_OFFSET} frames")

    results: dict[str, tuple[list[dict], int | None]] = {}
    results["own audio"] = ([sync_scores(expert, m, a) for m, a in clips], 0)
    for s in args.shifts:
        rows = []
        for mouth, mel in clips:
            T = len(mouth)
            if s >= 0:  # audio delayed: video frames s..T-1 with audio frames 0..T-1-s
                rows.append(sync_scores(expert, mouth[s:], mel[:(T - s) * MELS_PER_FRAME]))
            else:  # audio early: video frames 0..T-1+s with audio frames -s..T-1
                rows.append(sync_scores(expert, mouth[:T + s], mel[-s * MELS_PER_FRAME:]))
        results[f"audio later by {s:+d}"] = (rows, s)
    rows = []
    for i, (mouth, _) in enumerate(clips):
        j = (i + len(clips) // 2) % len(clips)  # another utterance of the split
        other = clips[j][1]
        T = min(len(mouth), len(other) // MELS_PER_FRAME)
        rows.append(sync_scores(expert, mouth[:T], other[:T * MELS_PER_FRAME]))
    results["another utterance"] = (rows, None)

    print(f"\n{'audio':<22} {'clips':>5} {'expected':>8} {'=exp':>6} {'+-1':>6} {'LSE-D':>7} {'LSE-C':>7} "
          f"{'d(0)':>7} {'med.off':>7}")
    for name, (rows, expected) in results.items():
        print(summarise(name, rows, expected))
    print("\n=exp / +-1: share of clips whose offset (argmin over +-15 frames) is the expected one / within 1 frame."
          "\nLSE-D = min of the per-offset mean distance, LSE-C = median - min, d(0) = mean distance at offset 0;"
          "\ndistances between unit embeddings, in [0, 2], on this expert's scale only.")


if __name__ == "__main__":
    main()
