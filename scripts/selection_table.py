"""The sample-selection experiment's table: each arm (all clips, phoneme-matched half, random half) over
the repetitions (seeds) that scripts/selection_experiment.sh evaluated, with the per-clip paired
difference of matched vs random.

    python scripts/selection_table.py docs/eval/selection/seed* > docs/eval/selection/README.md
"""

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from lipgen.evaluation.evaluate import COLUMNS

KEYS = ["lmd", "ssim", "psnr", "lse_d", "lse_c", "opening_corr", "silence_opening", "jitter"]
ARMS = ["all", "matched", "random"]

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("reports", nargs="+", help="lipgen evaluate output folders, one per seed")
args = parser.parse_args()


def arm(row: str) -> str | None:
    return next((a for a in ARMS if row.endswith(f"({a})")), None)


per_clip = defaultdict(lambda: defaultdict(dict))  # arm -> key -> (seed, clip) -> value
table = defaultdict(lambda: defaultdict(list))  # arm -> key -> [mean per seed]
for folder in map(Path, args.reports):
    summary = json.loads((folder / "report.json").read_text())
    for row, values in summary["rows"].items():
        if arm(row):
            for k in KEYS:
                table[arm(row)][k].append(values[k])
    for name, rep in summary.get("representation", {}).items():
        if arm(name):
            table[arm(name)]["lip_reader_accuracy"].append(rep["lip_reader_accuracy"])
    with open(folder / "report.csv") as f:
        for r in csv.DictReader(f):
            if arm(r["row"]):
                for k in KEYS:
                    if r[k] not in ("", "nan"):
                        per_clip[arm(r["row"])][k][(folder.name, r["clip"])] = float(r[k])

keys = KEYS + (["lip_reader_accuracy"] if table["all"]["lip_reader_accuracy"] else [])
header = [COLUMNS[k][0] + (" ↓" if COLUMNS[k][1] == "lower" else " ↑") if k in COLUMNS else "lip reader acc. ↑"
          for k in keys]
print(f"# CRGAN sample selection: reports {', '.join(Path(r).name for r in args.reports)}")
print()
print("Mean over repetitions (each repetition: the mean over the held-out clips); [min, max] over repetitions.")
print()
print("| arm | " + " | ".join(header) + " |")
print("|---|" + "---|" * len(keys))
for a in ARMS:
    cells = []
    for k in keys:
        v = np.array(table[a][k])
        cells.append(f"{v.mean():.3f}" + (f" [{v.min():.3f}, {v.max():.3f}]" if len(v) > 1 else ""))
    print(f"| {a} | " + " | ".join(cells) + " |")
print()
print("Matched minus random, paired by clip and repetition (mean ± standard error; the sign that is better):")
print()
for k in KEYS:
    pairs = sorted(set(per_clip["matched"][k]) & set(per_clip["random"][k]))
    d = np.array([per_clip["matched"][k][p] - per_clip["random"][k][p] for p in pairs])
    better = "lower" if COLUMNS[k][1] == "lower" else "higher"
    print(f"- {COLUMNS[k][0]}: {d.mean():+.4f} ± {d.std(ddof=1) / np.sqrt(len(d)):.4f} over {len(d)} pairs "
          f"({better} is better)")
