"""Glance's Table 1 ablation, the table: each row (full model and one part removed) over the seeds that
scripts/glance_ablation.sh evaluated, with the per-clip paired difference of each row against the full
model, and a verdict per metric.

    python scripts/ablation_table.py docs/eval/ablation/seed* > docs/eval/ablation/table.md

A difference counts as measured ("better" / "worse") when its mean over the (seed, clip) pairs is more than
two standard errors from 0 AND the paired mean of every seed has the same sign; otherwise "no measurable
difference". The standard error is over clip x seed pairs, so it holds the clip-to-clip spread; with 2 seeds
the seed-to-seed spread of training is only checked by the sign rule.
"""

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from lipgen.evaluation.evaluate import COLUMNS

KEYS = ["lmd", "lmd_authors", "ssim", "psnr", "cpbd", "lse_d", "lse_c", "sync_offset", "opening_corr",
        "silence_opening", "speech_opening"]
ROWS = {  # run folder name -> Table 1 row
    "full": "full model",
    "no_corr": "without l_corr",
    "no_pix": "without l_pix",
    "no_perc": "without l_perc",
    "two_stream": "two-stream D",
    "raw_frames": "raw frames in the third stream",
}
REFERENCE = ["ground truth", "static"]


def header(k: str) -> str:
    return COLUMNS[k][0] + (" ↓" if COLUMNS[k][1] == "lower" else " ↑")


def run_name(row: str) -> str:
    """A report row -> its run folder name: `lipgen evaluate` labels a checkpoint "glance (full)"."""
    return row[row.index("(") + 1:-1] if row.endswith(")") and "(" in row else row


def load(folders: list[Path]):
    """(means[row][key] -> [per seed], per_clip[row][key][(seed, clip)] -> value)."""
    means = defaultdict(lambda: defaultdict(list))
    per_clip = defaultdict(lambda: defaultdict(dict))
    for folder in folders:
        summary = json.loads((folder / "report.json").read_text())
        for row, values in summary["rows"].items():
            for k in KEYS:
                means[run_name(row)][k].append(values[k])
        with open(folder / "report.csv") as f:
            for r in csv.DictReader(f):
                for k in KEYS:
                    if r[k] not in ("", "nan"):
                        per_clip[run_name(r["row"])][k][(folder.name, r["clip"])] = float(r[k])
    return means, per_clip


def paired(per_clip, row: str, k: str, seeds: list[str]):
    """row minus full on the same (seed, clip): mean, standard error, n, and the mean per seed."""
    pairs = sorted(set(per_clip[row][k]) & set(per_clip["full"][k]))
    d = np.array([per_clip[row][k][p] - per_clip["full"][k][p] for p in pairs])
    by_seed = [np.mean([x for x, p in zip(d, pairs) if p[0] == s]) for s in seeds if any(p[0] == s for p in pairs)]
    se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.nan
    return d.mean(), se, len(d), by_seed


def verdict(k: str, mean: float, se: float, by_seed: list[float], columns: dict = COLUMNS) -> str:
    """better / worse / =; with a single seed, better? / worse?: two trainings differ, but whether the switch
    or the training's own randomness made the difference is not measured. `columns`: key -> (header, "lower" /
    "higher" / "" for a plain reading, which gets no verdict)."""
    if not (np.isfinite(se) and abs(mean) > 2 * se and len(set(np.sign(by_seed))) == 1 and columns[k][1]):
        return "="
    lower_better = columns[k][1] == "lower"
    return ("better" if (mean < 0) == lower_better else "worse") + ("?" if len(by_seed) < 2 else "")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", nargs="+", type=Path, help="lipgen evaluate output folders, one per seed")
    args = parser.parse_args()
    folders = sorted(args.reports)
    seeds = [f.name for f in folders]
    means, per_clip = load(folders)
    rows = [r for r in ROWS if r in means]
    clips = len({c for (_, c) in per_clip["full"]["lmd"]}) if "full" in per_clip else 0

    print(f"# Glance Table 1 ablation: reports {', '.join(seeds)} ({clips} held-out clips each)")
    print()
    print("Mean over seeds (each seed: the mean over the held-out clips); the per-seed values in brackets.")
    print()
    print("| row | " + " | ".join(header(k) for k in KEYS) + " |")
    print("|---|" + "---|" * len(KEYS))
    for row in REFERENCE + rows:
        cells = []
        for k in KEYS:
            v = np.array(means[row][k], dtype=float)
            if not np.isfinite(v).any():
                cells.append("-")
            elif row in REFERENCE or len(v) == 1:
                cells.append(f"{np.nanmean(v):.3f}")
            else:
                cells.append(f"{v.mean():.3f} ({', '.join(f'{x:.3f}' for x in v)})")
        print(f"| {ROWS.get(row, row)} | " + " | ".join(cells) + " |")
    print()
    print("Row minus full model, paired by (seed, clip): mean ± standard error over the pairs, then the verdict "
          "(better / worse: beyond 2 s.e. with the same sign in every seed; =: no measurable difference). "
          "Per-seed paired means in brackets.")
    print()
    print("| row | " + " | ".join(header(k) for k in KEYS) + " |")
    print("|---|" + "---|" * len(KEYS))
    summary = {}
    for row in rows[1:] if rows and rows[0] == "full" else []:
        cells, summary[row] = [], defaultdict(list)
        for k in KEYS:
            mean, se, n, by_seed = paired(per_clip, row, k, seeds)
            v = verdict(k, mean, se, by_seed)
            summary[row][v].append(COLUMNS[k][0])
            cells.append(f"{mean:+.3f} ± {se:.3f} {v} "
                         f"({', '.join(f'{x:+.3f}' for x in by_seed)})")
        print(f"| {ROWS[row]} | " + " | ".join(cells) + " |")
    if summary:
        n = paired(per_clip, next(iter(summary)), "lmd", seeds)[2]
        print()
        print(f"{n} (seed, clip) pairs per row (opening in silence: only clips with silent frames).")
    print()
    print("Measured against the full model (what switching the part off does):")
    print()
    if len(seeds) < 2:
        print("One seed only: a ? marks a difference between two single trainings, which a second seed must "
              "confirm before it counts as an effect of the switch.")
        print()
    for row, s in summary.items():
        parts = [f"{word}: {', '.join(s[word])}" for word in ("better", "worse", "better?", "worse?") if s[word]]
        print(f"- {ROWS[row]}: " + ("; ".join(parts) if parts else f"no measurable difference at {len(seeds)} seeds"))


if __name__ == "__main__":
    main()
